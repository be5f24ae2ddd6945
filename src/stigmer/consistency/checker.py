"""Finding every broken invariant (see invariants.py) in one read of the store.

The checker reads the records as they are stored, not through the domain,
because what it checks includes the storage itself: envelopes against their
indexed columns, references between kinds, leases. It reads one consistent
snapshot (one read transaction) so concurrent writes cannot produce false
alarms.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from stigmer.api.v1 import agent_pb2, agentinstance_pb2, execution_pb2
from stigmer.consistency.invariants import Code, Violation
from stigmer.pipeline.envelope import decode
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
    KINDS,
    MCP_SERVER,
    SESSION,
    KindInfo,
)
from stigmer.resources.slugs import default_instance_slug
from stigmer.store.base import ListQuery, Record, Store, Transaction

PAGE = 500


@dataclass
class Snapshot:
    records: dict[str, dict[str, Record]] = field(default_factory=dict)  # kind -> id -> record
    live_leases: set[str] = field(default_factory=set)

    def of(self, kind: str) -> dict[str, Record]:
        return self.records.setdefault(kind, {})

    @property
    def size(self) -> int:
        return sum(len(by_id) for by_id in self.records.values())


async def _all(transaction: Transaction, kind: str) -> list[Record]:
    records: list[Record] = []
    after = ""
    while True:
        page = await transaction.list(ListQuery(kind=kind, after_id=after, limit=PAGE))
        records += page
        if len(page) < PAGE:
            return records
        after = page[-1].id


async def read_snapshot(store: Store) -> Snapshot:
    snapshot = Snapshot()
    async with store.transaction(write=False) as transaction:
        for kind in KINDS:
            snapshot.records[kind.name] = {r.id: r for r in await _all(transaction, kind.name)}
        now = time.time()
        for execution_id, record in snapshot.of(AGENT_EXECUTION.name).items():
            if record.phase == phase_name(IN_PROGRESS):
                lease = await transaction.get_lease(execution_id)
                if lease is not None and lease.expires_at > now:
                    snapshot.live_leases.add(execution_id)
    return snapshot


def _ref(kind: str, resource_id: str) -> str:
    return f"{kind}/{resource_id}"


def _index_mismatches(snapshot: Snapshot) -> Iterator[Violation]:
    by_name = {kind.name: kind for kind in KINDS}
    for kind_name, records in snapshot.records.items():
        kind = by_name[kind_name]
        for record in records.values():
            metadata = decode(kind, record).metadata
            stored = (metadata.id, metadata.org, metadata.slug)
            indexed = (record.id, record.org, record.slug)
            if stored != indexed:
                yield Violation(
                    Code.INDEX_MISMATCH,
                    (_ref(kind_name, record.id),),
                    f"{kind_name} {record.id}: stored id/org/slug {stored} differ from the "
                    f"indexed {indexed}",
                )


def _default_instances(snapshot: Snapshot) -> Iterator[Violation]:
    instances = {
        instance_id: agentinstance_pb2.AgentInstance.FromString(record.data)
        for instance_id, record in snapshot.of(AGENT_INSTANCE.name).items()
    }
    by_slug = {(i.metadata.org, i.metadata.slug): i for i in instances.values()}
    for agent_id, record in snapshot.of(AGENT.name).items():
        agent = agent_pb2.Agent.FromString(record.data)
        slug = default_instance_slug(agent.metadata.slug)
        holder = by_slug.get((agent.metadata.org, slug))
        pointer = agent.status.default_instance_id
        involved = (_ref(AGENT.name, agent_id),)
        if holder is not None and holder.spec.agent_id != agent_id:
            yield Violation(
                Code.DEFAULT_INSTANCE_OWNED_BY_ANOTHER_AGENT,
                (*involved, _ref(AGENT_INSTANCE.name, holder.metadata.id)),
                f"agent {agent.metadata.slug} ({agent_id}): its default slug {slug!r} is held by "
                f"instance {holder.metadata.id} of agent {holder.spec.agent_id or '(none)'}",
            )
            continue
        if holder is None:
            yield Violation(
                Code.AGENT_WITHOUT_DEFAULT_INSTANCE,
                involved,
                f"agent {agent.metadata.slug} ({agent_id}) has no default instance {slug!r}",
            )
        elif not pointer:
            yield Violation(
                Code.DEFAULT_INSTANCE_POINTER_EMPTY,
                (*involved, _ref(AGENT_INSTANCE.name, holder.metadata.id)),
                f"agent {agent.metadata.slug} ({agent_id}): status.default_instance_id is empty "
                f"though its default instance {holder.metadata.id} exists",
            )
        elif pointer not in instances:
            yield Violation(
                Code.DEFAULT_INSTANCE_POINTER_DANGLING,
                involved,
                f"agent {agent.metadata.slug} ({agent_id}): status.default_instance_id "
                f"{pointer} names no instance",
            )
        elif pointer != holder.metadata.id:
            yield Violation(
                Code.DEFAULT_INSTANCE_POINTER_WRONG,
                (*involved, _ref(AGENT_INSTANCE.name, pointer)),
                f"agent {agent.metadata.slug} ({agent_id}): status.default_instance_id "
                f"{pointer} is not its default instance {holder.metadata.id}",
            )


@dataclass(frozen=True)
class Ownership:
    """A kind whose every resource must have its owner: the owner's id is at
    `owner_field` (a dotted path) of the child's message."""

    child: KindInfo
    owner_field: str
    parent: KindInfo
    code: Code
    # How the violation's message names each side ("instance", "agent").
    child_noun: str
    parent_noun: str
    is_child_named_by_slug: bool = False


OWNERSHIPS = (
    Ownership(
        AGENT_INSTANCE,
        "spec.agent_id",
        AGENT,
        Code.ORPHAN_INSTANCE,
        "instance",
        "agent",
        is_child_named_by_slug=True,
    ),
    Ownership(
        SESSION,
        "spec.agent_instance_id",
        AGENT_INSTANCE,
        Code.ORPHAN_SESSION,
        "session",
        "instance",
    ),
    Ownership(
        AGENT_EXECUTION, "status.session_id", SESSION, Code.ORPHAN_EXECUTION, "execution", "session"
    ),
)


def _field_at(message: Any, path: str) -> str:
    value: str = functools.reduce(getattr, path.split("."), message)
    return value


def _orphans(snapshot: Snapshot) -> Iterator[Violation]:
    for ownership in OWNERSHIPS:
        parents = snapshot.of(ownership.parent.name)
        for child_id, record in snapshot.of(ownership.child.name).items():
            message = ownership.child.message.FromString(record.data)
            owner = _field_at(message, ownership.owner_field)
            if owner in parents:
                continue
            named = f"{record.slug} ({child_id})" if ownership.is_child_named_by_slug else child_id
            yield Violation(
                ownership.code,
                (_ref(ownership.child.name, child_id),),
                f"{ownership.child_noun} {named} belongs to {ownership.parent_noun} {owner}, "
                "which is gone",
            )


def _leases(snapshot: Snapshot) -> Iterator[Violation]:
    for execution_id, record in snapshot.of(AGENT_EXECUTION.name).items():
        execution = execution_pb2.AgentExecution.FromString(record.data)
        if execution.status.phase == IN_PROGRESS and execution_id not in snapshot.live_leases:
            yield Violation(
                Code.EXECUTION_WITHOUT_LEASE,
                (_ref(AGENT_EXECUTION.name, execution_id),),
                f"execution {execution_id} is IN_PROGRESS but no worker holds a live lease on it",
            )


def _tool_call_status_name(status: int) -> str:
    return execution_pb2.ToolCallStatus.Name(status).removeprefix("TOOL_CALL_STATUS_")  # type: ignore[arg-type]


def _open_tool_calls(snapshot: Snapshot) -> Iterator[Violation]:
    for execution_id, record in snapshot.of(AGENT_EXECUTION.name).items():
        execution = execution_pb2.AgentExecution.FromString(record.data)
        if execution.status.phase not in TERMINAL_PHASES:
            continue
        open_calls = [c for c in execution.status.tool_calls if c.status in OPEN_TOOL_CALL_STATES]
        if open_calls:
            named = ", ".join(f"{c.id} ({_tool_call_status_name(c.status)})" for c in open_calls)
            yield Violation(
                Code.ENDED_EXECUTION_WITH_OPEN_TOOL_CALL,
                (_ref(AGENT_EXECUTION.name, execution_id),),
                f"execution {execution_id} is {phase_name(execution.status.phase)} but its "
                f"tool calls {named} never ended",
            )


def _references(snapshot: Snapshot) -> Iterator[Violation]:
    mcp_slugs = {(r.org, r.slug) for r in snapshot.of(MCP_SERVER.name).values()}
    environment_slugs = {(r.org, r.slug) for r in snapshot.of(ENVIRONMENT.name).values()}
    for agent_id, record in snapshot.of(AGENT.name).items():
        agent = agent_pb2.Agent.FromString(record.data)
        for index, usage in enumerate(agent.spec.mcp_servers):
            if usage.ref and (record.org, usage.ref) not in mcp_slugs:
                yield Violation(
                    Code.DANGLING_REFERENCE,
                    (_ref(AGENT.name, agent_id),),
                    f"agent {record.slug}: spec.mcp_servers[{index}].ref names McpServer "
                    f"{usage.ref!r}, which does not exist",
                )
    for instance_id, record in snapshot.of(AGENT_INSTANCE.name).items():
        instance = agentinstance_pb2.AgentInstance.FromString(record.data)
        for index, slug in enumerate(instance.spec.environment_refs):
            if (record.org, slug) not in environment_slugs:
                yield Violation(
                    Code.DANGLING_REFERENCE,
                    (_ref(AGENT_INSTANCE.name, instance_id),),
                    f"instance {record.slug}: spec.environment_refs[{index}] names Environment "
                    f"{slug!r}, which does not exist",
                )


def find_violations(snapshot: Snapshot) -> list[Violation]:
    return [
        *_index_mismatches(snapshot),
        *_default_instances(snapshot),
        *_orphans(snapshot),
        *_leases(snapshot),
        *_open_tool_calls(snapshot),
        *_references(snapshot),
    ]


@dataclass(frozen=True)
class Report:
    violations: tuple[Violation, ...]
    resources_checked: int
    checked_at: float


async def check(store: Store) -> Report:
    snapshot = await read_snapshot(store)
    return Report(tuple(find_violations(snapshot)), snapshot.size, time.time())
