"""Fixing what the checker finds, each fix in its own transaction.

Repairs go through the domain (the agent controller ensures a default
instance, the execution controller ends an abandoned execution, deletes
cascade through each kind's controller), so a repair obeys the same rules as
any request. Orphans are deleted only when asked (`orphans="delete"`);
dangling references and a default slug held by another agent's instance
need a person's decision and are reported, not touched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from stigmer.api.v1 import meta_pb2
from stigmer.consistency.checker import Report, check
from stigmer.consistency.invariants import Code, Violation
from stigmer.domain.registry import Domains
from stigmer.errors import StigmerError
from stigmer.pipeline.envelope import decode, encode
from stigmer.resources.kinds import kind_by_name

logger = logging.getLogger(__name__)
POINTER_CODES = frozenset(
    {
        Code.AGENT_WITHOUT_DEFAULT_INSTANCE,
        Code.DEFAULT_INSTANCE_POINTER_EMPTY,
        Code.DEFAULT_INSTANCE_POINTER_DANGLING,
        Code.DEFAULT_INSTANCE_POINTER_WRONG,
    }
)
ORPHAN_CODES = frozenset({Code.ORPHAN_INSTANCE, Code.ORPHAN_SESSION, Code.ORPHAN_EXECUTION})
MAX_ROUNDS = 3


@dataclass(frozen=True)
class RepairAction:
    violation: Violation
    description: str
    is_done: bool = False
    error: str = ""


@dataclass(frozen=True)
class RepairResult:
    actions: tuple[RepairAction, ...]
    remaining: Report
    is_dry_run: bool


def plan(violation: Violation, *, is_deleting_orphans: bool) -> str | None:
    """What repair would do about a violation, or None when it leaves it."""
    subject = violation.resources[0] if violation.resources else ""
    if violation.code in POINTER_CODES:
        return f"adopt or create the default instance of {subject} and point its status at it"
    if violation.code in ORPHAN_CODES:
        return f"delete {subject} and what it owns" if is_deleting_orphans else None
    if violation.code == Code.EXECUTION_WITHOUT_LEASE:
        return f"end {subject}: re-queue it if nothing happened yet, else FAILED (worker lost)"
    if violation.code == Code.ENDED_EXECUTION_WITH_OPEN_TOOL_CALL:
        return f"settle the open tool calls of {subject} INTERRUPTED"
    if violation.code == Code.INDEX_MISMATCH:
        return f"rewrite the indexed columns of {subject} from its stored envelope"
    return None


async def _fix(domains: Domains, violation: Violation) -> None:
    subject = violation.subject_id
    if violation.code in POINTER_CODES:
        async with domains.store.transaction() as transaction:
            await domains.agents.ensure_default_instance(subject, transaction, field="agent")
    elif violation.code in ORPHAN_CODES:
        kind = kind_by_name(violation.resources[0].split("/", 1)[0])
        await domains.controller(kind).delete(
            meta_pb2.DeleteRequest(id=subject, cascade=meta_pb2.CASCADE_POLICY_BACKGROUND)
        )
    elif violation.code == Code.EXECUTION_WITHOUT_LEASE:
        await domains.execution_queue.end_abandoned(
            subject, "worker lost: the execution was running without a live lease"
        )
    elif violation.code == Code.ENDED_EXECUTION_WITH_OPEN_TOOL_CALL:
        await domains.executions.lifecycle.settle_open_tool_calls(subject)
    elif violation.code == Code.INDEX_MISMATCH:
        kind = kind_by_name(violation.resources[0].split("/", 1)[0])
        controller = domains.controller(kind)
        async with domains.store.transaction() as transaction:
            record = await transaction.get(kind.name, subject)
            if record is None:
                return
            resource = decode(kind, record)
            rewritten = encode(kind, resource, controller.relations_of(resource))
            await transaction.delete(kind.name, record.id)
            await transaction.insert(rewritten)


async def repair(
    domains: Domains, *, is_dry_run: bool = False, is_deleting_orphans: bool = False
) -> RepairResult:
    """Checks, fixes what can be fixed, and checks again.

    A fix can make another possible (deleting an orphan instance frees the
    default slug an agent needs), so it runs a few rounds until nothing
    changes.
    """
    actions: list[RepairAction] = []
    report = await check(domains.store)
    for _ in range(1 if is_dry_run else MAX_ROUNDS):
        progressed = False
        for violation in report.violations:
            description = plan(violation, is_deleting_orphans=is_deleting_orphans)
            if description is None:
                continue
            if is_dry_run:
                actions.append(RepairAction(violation, description))
                continue
            try:
                await _fix(domains, violation)
            except StigmerError as error:
                actions.append(RepairAction(violation, description, error=error.message))
                continue
            logger.info("Repaired %s: %s", violation.code, description)
            actions.append(RepairAction(violation, description, is_done=True))
            progressed = True
        if is_dry_run or not progressed:
            break
        report = await check(domains.store)
    return RepairResult(tuple(actions), report, is_dry_run)
