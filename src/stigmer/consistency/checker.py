"""Finding every broken invariant (see invariants.py) in one read of the store.

The checker reads the records as they are stored, not through the domain,
because what it checks includes the storage itself: envelopes against their
indexed columns, references between kinds, leases. It reads one consistent
snapshot (one read transaction) so concurrent writes cannot produce false
alarms.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from stigmer.api.v1 import (
    agent_pb2,
    agentinstance_pb2,
    execution_pb2,
    session_pb2,
)
from stigmer.consistency.invariants import Code, Violation
from stigmer.pipeline.envelope import decode
from stigmer.resources.execution_events import IN_PROGRESS, phase_name
from stigmer.resources.kinds import (
    AGENT,
    AGENT_EXECUTION,
    AGENT_INSTANCE,
    ENVIRONMENT,
    KINDS,
    MCP_SERVER,
    SESSION,
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


def _orphans(snapshot: Snapshot) -> Iterator[Violation]:
    agents = snapshot.of(AGENT.name)
    instances = snapshot.of(AGENT_INSTANCE.name)
    sessions = snapshot.of(SESSION.name)
    for instance_id, record in instances.items():
        owner = agentinstance_pb2.AgentInstance.FromString(record.data).spec.agent_id
        if owner not in agents:
            yield Violation(
                Code.ORPHAN_INSTANCE,
                (_ref(AGENT_INSTANCE.name, instance_id),),
                f"instance {record.slug} ({instance_id}) belongs to agent {owner}, which is gone",
            )
    for session_id, record in sessions.items():
        owner = session_pb2.Session.FromString(record.data).spec.agent_instance_id
        if owner not in instances:
            yield Violation(
                Code.ORPHAN_SESSION,
                (_ref(SESSION.name, session_id),),
                f"session {session_id} belongs to instance {owner}, which is gone",
            )
    for execution_id, record in snapshot.of(AGENT_EXECUTION.name).items():
        owner = execution_pb2.AgentExecution.FromString(record.data).status.session_id
        if owner not in sessions:
            yield Violation(
                Code.ORPHAN_EXECUTION,
                (_ref(AGENT_EXECUTION.name, execution_id),),
                f"execution {execution_id} belongs to session {owner}, which is gone",
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
