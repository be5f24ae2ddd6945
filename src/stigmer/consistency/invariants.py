"""The invariants of a Stigmer store, written down once.

The checker, the repair and the tests share these codes. Each violation
names its code, the resources involved and a sentence a person can act on.

- Every agent has exactly one default instance (`<slug>-default`), its
  `status.default_instance_id` points at it, and that instance's
  `spec.agent_id` is the agent.
- Every instance's agent, every session's instance and every execution's
  session exists.
- No execution is IN_PROGRESS without a live lease (PENDING ones are the
  queue itself; PAUSED ones hold none, however long they wait).
- An execution that has ended (COMPLETED, FAILED, CANCELLED, TERMINATED)
  has no tool call still PENDING, RUNNING or WAITING_APPROVAL: whatever was
  open when it ended is INTERRUPTED.
- Every resource's stored envelope agrees with its indexed columns (kind,
  id, org, slug).
- Every reference by slug (an agent's McpServers, an instance's
  Environments) resolves.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Code(StrEnum):
    AGENT_WITHOUT_DEFAULT_INSTANCE = "AGENT_WITHOUT_DEFAULT_INSTANCE"
    DEFAULT_INSTANCE_POINTER_EMPTY = "DEFAULT_INSTANCE_POINTER_EMPTY"
    DEFAULT_INSTANCE_POINTER_DANGLING = "DEFAULT_INSTANCE_POINTER_DANGLING"
    DEFAULT_INSTANCE_POINTER_WRONG = "DEFAULT_INSTANCE_POINTER_WRONG"
    DEFAULT_INSTANCE_OWNED_BY_ANOTHER_AGENT = "DEFAULT_INSTANCE_OWNED_BY_ANOTHER_AGENT"
    ORPHAN_INSTANCE = "ORPHAN_INSTANCE"
    ORPHAN_SESSION = "ORPHAN_SESSION"
    ORPHAN_EXECUTION = "ORPHAN_EXECUTION"
    EXECUTION_WITHOUT_LEASE = "EXECUTION_WITHOUT_LEASE"
    ENDED_EXECUTION_WITH_OPEN_TOOL_CALL = "ENDED_EXECUTION_WITH_OPEN_TOOL_CALL"
    INDEX_MISMATCH = "INDEX_MISMATCH"
    DANGLING_REFERENCE = "DANGLING_REFERENCE"


# What `repair` can fix without a person deciding (orphans: with --orphans=delete).
REPAIRABLE = frozenset(
    {
        Code.AGENT_WITHOUT_DEFAULT_INSTANCE,
        Code.DEFAULT_INSTANCE_POINTER_EMPTY,
        Code.DEFAULT_INSTANCE_POINTER_DANGLING,
        Code.DEFAULT_INSTANCE_POINTER_WRONG,
        Code.ORPHAN_INSTANCE,
        Code.ORPHAN_SESSION,
        Code.ORPHAN_EXECUTION,
        Code.EXECUTION_WITHOUT_LEASE,
        Code.ENDED_EXECUTION_WITH_OPEN_TOOL_CALL,
        Code.INDEX_MISMATCH,
    }
)


@dataclass(frozen=True)
class Violation:
    code: Code
    resources: tuple[str, ...]  # "Kind/id"
    message: str

    @property
    def is_repairable(self) -> bool:
        return self.code in REPAIRABLE

    @property
    def subject_id(self) -> str:
        """The id of the first resource involved (the one a repair acts on)."""
        return self.resources[0].split("/", 1)[1] if self.resources else ""
