"""The invariants (invariants.py) checked over one page of one kind.

Each check looks at a record of the page and, where the invariant spans
kinds, at the few records it names (its owner, its default instance, the
McpServers it refers to), read by indexed point lookups in the same
transaction as the page. So a violation is always judged on one consistent
view of the records it involves, and the checker never holds more than one
page and its lookups in memory, however large the store.

Lookups go through the store's indexes (id, and kind+org+slug): a record
whose indexed columns disagree with its stored envelope is found by its
columns, and is itself reported as INDEX_MISMATCH.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from stigmer.api.v1 import agent_pb2, agentinstance_pb2, execution_pb2, skill_pb2
from stigmer.consistency.invariants import OWNERSHIPS, Code, Ownership, Violation
from stigmer.domain.skill.versions import requested_version, resolve_version
from stigmer.resources.execution_events import (
    IN_PROGRESS,
    OPEN_TOOL_CALL_STATES,
    TERMINAL_PHASES,
    phase_name,
)
from stigmer.resources.kinds import (
    AGENT,
    AGENT_EXECUTION,
    AGENT_INSTANCE,
    ENVIRONMENT,
    MCP_SERVER,
    SKILL,
    KindInfo,
)
from stigmer.resources.slugs import default_instance_slug
from stigmer.store.base import Record, Transaction

_OWNERSHIP_OF = {ownership.child.name: ownership for ownership in OWNERSHIPS}


@dataclass
class Findings:
    """The violations found so far, one list per invariant, so the report
    lists them in the same order whatever order the pages came in."""

    index_mismatches: list[Violation] = field(default_factory=list)
    default_instances: list[Violation] = field(default_factory=list)
    orphans: list[Violation] = field(default_factory=list)
    leases: list[Violation] = field(default_factory=list)
    open_tool_calls: list[Violation] = field(default_factory=list)
    references: list[Violation] = field(default_factory=list)

    def all(self) -> tuple[Violation, ...]:
        return (
            *self.index_mismatches,
            *self.default_instances,
            *self.orphans,
            *self.leases,
            *self.open_tool_calls,
            *self.references,
        )


def _ref(kind: str, resource_id: str) -> str:
    return f"{kind}/{resource_id}"


def _field_at(message: Any, path: str) -> str:
    value: str = functools.reduce(getattr, path.split("."), message)
    return value


class _Lookups:
    """Point lookups of one page, each asked once per page (many sessions of
    a page share an instance, many agents an McpServer)."""

    def __init__(self, transaction: Transaction) -> None:
        self.transaction = transaction
        self._by_id: dict[tuple[str, str], Record | None] = {}
        self._by_slug: dict[tuple[str, str, str], Record | None] = {}

    async def get(self, kind: KindInfo, resource_id: str) -> Record | None:
        key = (kind.name, resource_id)
        if key not in self._by_id:
            self._by_id[key] = await self.transaction.get(kind.name, resource_id)
        return self._by_id[key]

    async def get_by_slug(self, kind: KindInfo, org: str, slug: str) -> Record | None:
        key = (kind.name, org, slug)
        if key not in self._by_slug:
            self._by_slug[key] = await self.transaction.get_by_slug(kind.name, org, slug)
        return self._by_slug[key]


async def check_page(
    transaction: Transaction, kind: KindInfo, page: Sequence[Record], findings: Findings
) -> None:
    """Checks every record of `page` (records of `kind`), adding what it finds."""
    lookups = _Lookups(transaction)
    ownership = _OWNERSHIP_OF.get(kind.name)
    for record in page:
        message: Any = kind.new_message()
        message.ParseFromString(record.data)
        _check_index(kind, record, message, findings)
        if ownership is not None:
            await _check_owner(ownership, record, message, lookups, findings)
        if kind is AGENT:
            await _check_default_instance(record, message, lookups, findings)
            await _check_mcp_references(record, message, lookups, findings)
            await _check_skill_references(record, message, lookups, findings)
        elif kind is AGENT_INSTANCE:
            await _check_environment_references(record, message, lookups, findings)
        elif kind is AGENT_EXECUTION:
            await _check_lease(record, message, transaction, findings)
            _check_open_tool_calls(record, message, findings)


def _check_index(kind: KindInfo, record: Record, message: Any, findings: Findings) -> None:
    metadata = message.metadata
    stored = (metadata.id, metadata.org, metadata.slug)
    indexed = (record.id, record.org, record.slug)
    if stored != indexed:
        findings.index_mismatches.append(
            Violation(
                Code.INDEX_MISMATCH,
                (_ref(kind.name, record.id),),
                f"{kind.name} {record.id}: stored id/org/slug {stored} differ from the "
                f"indexed {indexed}",
            )
        )


async def _check_default_instance(
    record: Record, agent: agent_pb2.Agent, lookups: _Lookups, findings: Findings
) -> None:
    agent_id = record.id
    slug = default_instance_slug(agent.metadata.slug)
    holder_record = await lookups.get_by_slug(AGENT_INSTANCE, agent.metadata.org, slug)
    holder = (
        agentinstance_pb2.AgentInstance.FromString(holder_record.data)
        if holder_record is not None
        else None
    )
    pointer = agent.status.default_instance_id
    involved = (_ref(AGENT.name, agent_id),)
    found = findings.default_instances
    if holder is not None and holder.spec.agent_id != agent_id:
        found.append(
            Violation(
                Code.DEFAULT_INSTANCE_OWNED_BY_ANOTHER_AGENT,
                (*involved, _ref(AGENT_INSTANCE.name, holder.metadata.id)),
                f"agent {agent.metadata.slug} ({agent_id}): its default slug {slug!r} is held by "
                f"instance {holder.metadata.id} of agent {holder.spec.agent_id or '(none)'}",
            )
        )
        return
    if holder is None:
        found.append(
            Violation(
                Code.AGENT_WITHOUT_DEFAULT_INSTANCE,
                involved,
                f"agent {agent.metadata.slug} ({agent_id}) has no default instance {slug!r}",
            )
        )
    elif not pointer:
        found.append(
            Violation(
                Code.DEFAULT_INSTANCE_POINTER_EMPTY,
                (*involved, _ref(AGENT_INSTANCE.name, holder.metadata.id)),
                f"agent {agent.metadata.slug} ({agent_id}): status.default_instance_id is empty "
                f"though its default instance {holder.metadata.id} exists",
            )
        )
    elif (
        holder_record is not None
        and pointer != holder_record.id
        and await lookups.get(AGENT_INSTANCE, pointer) is None
    ):
        found.append(
            Violation(
                Code.DEFAULT_INSTANCE_POINTER_DANGLING,
                involved,
                f"agent {agent.metadata.slug} ({agent_id}): status.default_instance_id "
                f"{pointer} names no instance",
            )
        )
    elif pointer != holder.metadata.id:
        found.append(
            Violation(
                Code.DEFAULT_INSTANCE_POINTER_WRONG,
                (*involved, _ref(AGENT_INSTANCE.name, pointer)),
                f"agent {agent.metadata.slug} ({agent_id}): status.default_instance_id "
                f"{pointer} is not its default instance {holder.metadata.id}",
            )
        )


async def _check_owner(
    ownership: Ownership, record: Record, message: Any, lookups: _Lookups, findings: Findings
) -> None:
    owner = _field_at(message, ownership.owner_field)
    if await lookups.get(ownership.parent, owner) is not None:
        return
    child_id = record.id
    named = f"{record.slug} ({child_id})" if ownership.is_child_named_by_slug else child_id
    findings.orphans.append(
        Violation(
            ownership.code,
            (_ref(ownership.child.name, child_id),),
            f"{ownership.child_noun} {named} belongs to {ownership.parent_noun} {owner}, "
            "which is gone",
        )
    )


async def _check_lease(
    record: Record,
    execution: execution_pb2.AgentExecution,
    transaction: Transaction,
    findings: Findings,
) -> None:
    if execution.status.phase != IN_PROGRESS:
        return
    # The lease counts only while the indexed phase agrees (the engine finds
    # running executions by that column).
    if record.phase == phase_name(IN_PROGRESS):
        lease = await transaction.get_lease(record.id)
        if lease is not None and lease.expires_at > time.time():
            return
    findings.leases.append(
        Violation(
            Code.EXECUTION_WITHOUT_LEASE,
            (_ref(AGENT_EXECUTION.name, record.id),),
            f"execution {record.id} is IN_PROGRESS but no worker holds a live lease on it",
        )
    )


def _check_open_tool_calls(
    record: Record, execution: execution_pb2.AgentExecution, findings: Findings
) -> None:
    """An ended execution's tool calls have ended too (INTERRUPTED at worst)."""
    if execution.status.phase not in TERMINAL_PHASES:
        return
    open_calls = [c for c in execution.status.tool_calls if c.status in OPEN_TOOL_CALL_STATES]
    if not open_calls:
        return
    named = ", ".join(f"{c.id} ({_tool_call_status_name(c.status)})" for c in open_calls)
    findings.open_tool_calls.append(
        Violation(
            Code.ENDED_EXECUTION_WITH_OPEN_TOOL_CALL,
            (_ref(AGENT_EXECUTION.name, record.id),),
            f"execution {record.id} is {phase_name(execution.status.phase)} but its "
            f"tool calls {named} never ended",
        )
    )


def _tool_call_status_name(status: int) -> str:
    return execution_pb2.ToolCallStatus.Name(status).removeprefix("TOOL_CALL_STATUS_")  # type: ignore[arg-type]


async def _check_mcp_references(
    record: Record, agent: agent_pb2.Agent, lookups: _Lookups, findings: Findings
) -> None:
    for index, usage in enumerate(agent.spec.mcp_servers):
        if usage.ref and await lookups.get_by_slug(MCP_SERVER, record.org, usage.ref) is None:
            findings.references.append(
                Violation(
                    Code.DANGLING_REFERENCE,
                    (_ref(AGENT.name, record.id),),
                    f"agent {record.slug}: spec.mcp_servers[{index}].ref names McpServer "
                    f"{usage.ref!r}, which does not exist",
                )
            )


async def _check_skill_references(
    record: Record, agent: agent_pb2.Agent, lookups: _Lookups, findings: Findings
) -> None:
    """An agent's skill ref that resolves to no version: its runs would fail
    (a skill deleted with --force, or a tag that was never pushed)."""
    for index, ref in enumerate(agent.spec.skill_refs):
        found = await lookups.get_by_slug(SKILL, record.org, ref.slug)
        skill = None if found is None else skill_pb2.Skill.FromString(found.data)
        if skill is not None and resolve_version(skill, ref.version) is not None:
            continue
        what = (
            f"Skill {ref.slug!r}, which does not exist"
            if skill is None
            else f"version {requested_version(ref.version)!r} of Skill {ref.slug!r}, "
            "which it does not have"
        )
        findings.references.append(
            Violation(
                Code.DANGLING_REFERENCE,
                (_ref(AGENT.name, record.id),),
                f"agent {record.slug}: spec.skill_refs[{index}] names {what}",
            )
        )


async def _check_environment_references(
    record: Record,
    instance: agentinstance_pb2.AgentInstance,
    lookups: _Lookups,
    findings: Findings,
) -> None:
    for index, slug in enumerate(instance.spec.environment_refs):
        if await lookups.get_by_slug(ENVIRONMENT, record.org, slug) is None:
            findings.references.append(
                Violation(
                    Code.DANGLING_REFERENCE,
                    (_ref(AGENT_INSTANCE.name, record.id),),
                    f"instance {record.slug}: spec.environment_refs[{index}] names Environment "
                    f"{slug!r}, which does not exist",
                )
            )
