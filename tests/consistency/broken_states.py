"""Each kind of broken state the invariants name, written straight into a
store (bypassing the API) the way a crash, an older version or a manual edit
would leave it. Each function returns the code the checker must report.

They write through the store interface (tests/control_plane/seeding.py), so
they break a PostgreSQL store exactly as they break a SQLite one.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from stigmer.api.v1 import agentinstance_pb2, execution_pb2, meta_pb2, session_pb2
from stigmer.client import Client
from stigmer.consistency.invariants import Code
from stigmer.pipeline.envelope import Relations, as_envelope, encode
from stigmer.resources.execution_events import COMPLETED, IN_PROGRESS, TERMINATED, phase_name
from stigmer.resources.ids import new_id
from stigmer.resources.kinds import AGENT, AGENT_EXECUTION, KINDS, SESSION
from stigmer.store.base import Lease, ListQuery, Record, Transaction
from tests.control_plane.manifests import agent
from tests.control_plane.seeding import (
    clear_default_instance_id,
    in_store,
    insert_bare_agent,
    insert_instance,
    point_default_instance_id,
)

Seeder = Callable[[Client, str], Code]


def missing_default_instance(client: Client, store_url: str) -> Code:
    insert_bare_agent(store_url, "Legacy", "legacy")
    return Code.AGENT_WITHOUT_DEFAULT_INSTANCE


def empty_pointer(client: Client, store_url: str) -> Code:
    created = client.create(agent("Empty Pointer"))
    clear_default_instance_id(store_url, created.metadata.id)
    return Code.DEFAULT_INSTANCE_POINTER_EMPTY


def dangling_pointer(client: Client, store_url: str) -> Code:
    created = client.create(agent("Dangling Pointer"))
    point_default_instance_id(store_url, created.metadata.id, "ain-01jf0000000000000000000000")
    return Code.DEFAULT_INSTANCE_POINTER_DANGLING


def wrong_pointer(client: Client, store_url: str) -> Code:
    created = client.create(agent("Wrong Pointer"))
    extra = client.create(
        agentinstance_pb2.AgentInstance(
            metadata=meta_pb2.ApiResourceMetadata(name="Extra"),
            spec=agentinstance_pb2.AgentInstanceSpec(agent_ref="wrong-pointer"),
        )
    )
    point_default_instance_id(store_url, created.metadata.id, extra.metadata.id)
    return Code.DEFAULT_INSTANCE_POINTER_WRONG


def squatted_default_slug(client: Client, store_url: str) -> Code:
    other = client.create(agent("Squatter Owner"))
    insert_bare_agent(store_url, "Squatted", "squatted")
    insert_instance(store_url, "squatted-default", other.metadata.id)
    return Code.DEFAULT_INSTANCE_OWNED_BY_ANOTHER_AGENT


def orphan_instance(client: Client, store_url: str) -> Code:
    insert_instance(store_url, "lost-instance", "agt-01jf0000000000000000000000")
    return Code.ORPHAN_INSTANCE


def _insert_session(store_url: str, instance_id: str, agent_id: str = "") -> str:
    session = session_pb2.Session(
        api_version="agentic.stigmer.ai/v1",
        kind="Session",
        metadata=meta_pb2.ApiResourceMetadata(name="seeded", org="local", version=1),
        spec=session_pb2.SessionSpec(agent_instance_id=instance_id),
        status=session_pb2.SessionStatus(agent_id=agent_id),
    )
    session.metadata.id = session.metadata.slug = new_id(SESSION.prefix)
    relations = Relations(owner_id=instance_id, agent_instance_id=instance_id, agent_id=agent_id)

    async def work(transaction: Transaction) -> None:
        await transaction.insert(encode(SESSION, as_envelope(session), relations))

    in_store(store_url, work)
    return session.metadata.id


def orphan_session(client: Client, store_url: str) -> Code:
    _insert_session(store_url, "ain-01jf0000000000000000000000")
    return Code.ORPHAN_SESSION


def _insert_execution(
    store_url: str,
    session_id: str,
    phase: int,
    agent_id: str = "",
    *,
    tool_call_status: int = 0,
) -> str:
    execution = execution_pb2.AgentExecution(
        api_version="agentic.stigmer.ai/v1",
        kind="AgentExecution",
        metadata=meta_pb2.ApiResourceMetadata(org="local", version=1),
        spec=execution_pb2.AgentExecutionSpec(session_id=session_id, message="hello"),
        status=execution_pb2.AgentExecutionStatus(
            phase=phase,  # type: ignore[arg-type]
            session_id=session_id,
            agent_id=agent_id,
        ),
    )
    execution.status.messages.add(type=execution_pb2.MESSAGE_TYPE_HUMAN, content="hello")
    execution.status.messages.add(type=execution_pb2.MESSAGE_TYPE_AI, content="half an answer")
    if tool_call_status:
        execution.status.tool_calls.add(
            id="call_seeded",
            name="add",
            server="calc",
            status=tool_call_status,
        )
    identifier = new_id(AGENT_EXECUTION.prefix)
    execution.metadata.id = execution.metadata.slug = execution.metadata.name = identifier
    relations = Relations(owner_id=session_id, session_id=session_id, phase=phase_name(phase))

    async def work(transaction: Transaction) -> None:
        await transaction.insert(encode(AGENT_EXECUTION, as_envelope(execution), relations))

    in_store(store_url, work)
    return identifier


def orphan_execution(client: Client, store_url: str) -> Code:
    _insert_execution(store_url, "ses-01jf0000000000000000000000", COMPLETED)
    return Code.ORPHAN_EXECUTION


def execution_without_lease(client: Client, store_url: str) -> Code:
    created = client.create(agent("Leaseless"))
    session_id = _insert_session(store_url, created.status.default_instance_id, created.metadata.id)
    _insert_execution(store_url, session_id, IN_PROGRESS, created.metadata.id)
    return Code.EXECUTION_WITHOUT_LEASE


def ended_execution_with_open_tool_call(client: Client, store_url: str) -> Code:
    """A TERMINATED execution whose tool call still says RUNNING: a version
    before terminate settled them, or a hand edit."""
    created = client.create(agent("Open Call"))
    session_id = _insert_session(store_url, created.status.default_instance_id, created.metadata.id)
    _insert_execution(
        store_url,
        session_id,
        TERMINATED,
        created.metadata.id,
        tool_call_status=execution_pb2.TOOL_CALL_STATUS_RUNNING,
    )
    return Code.ENDED_EXECUTION_WITH_OPEN_TOOL_CALL


def index_mismatch(client: Client, store_url: str) -> Code:
    created = client.create(agent("Renamed By Hand"))

    async def work(transaction: Transaction) -> None:
        record = await transaction.get(AGENT.name, created.metadata.id)
        assert record is not None
        # Only the indexed slug column changes; the stored resource (and its
        # version) keep the old slug, as a hand-written UPDATE would leave them.
        edited = dataclasses.replace(record, slug="edited-by-hand")
        await transaction.update(edited, record.version)

    in_store(store_url, work)
    return Code.INDEX_MISMATCH


def dangling_reference(client: Client, store_url: str) -> Code:
    client.apply(
        """\
apiVersion: agentic.stigmer.ai/v1
kind: McpServer
metadata: {name: doomed}
spec: {stdio: {command: "true"}}
---
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata: {name: Refers}
spec:
  instructions: Use the doomed tool server.
  mcp_servers: [{ref: doomed}]
"""
    )
    client.delete("mcpserver", "doomed")
    return Code.DANGLING_REFERENCE


REPAIRABLE_SEEDERS: dict[str, Seeder] = {
    "missing-default-instance": missing_default_instance,
    "empty-pointer": empty_pointer,
    "dangling-pointer": dangling_pointer,
    "wrong-pointer": wrong_pointer,
    "orphan-instance": orphan_instance,
    "orphan-session": orphan_session,
    "orphan-execution": orphan_execution,
    "execution-without-lease": execution_without_lease,
    "ended-execution-with-open-tool-call": ended_execution_with_open_tool_call,
    "index-mismatch": index_mismatch,
}
DECISION_SEEDERS: dict[str, Seeder] = {
    "squatted-default-slug": squatted_default_slug,
    "dangling-reference": dangling_reference,
}


StoreDump = list[Record | tuple[str, int, bytes] | Lease]
# More leases than any test holds at once: one page lists them all.
_MAX_LEASES = 10_000


def dump_store(store_url: str) -> StoreDump:
    """Every record of every kind (indexed columns and serialized body), every
    logged event and every lease, for exact before/after comparisons."""

    async def work(transaction: Transaction) -> StoreDump:
        dump: StoreDump = []
        for kind in KINDS:
            records = await _all_records(transaction, kind.name)
            dump += records
            for record in records:
                events = await _all_events(transaction, record.id)
                dump += [(record.id, sequence, data) for sequence, data in events]
        # Every lease expires before infinity: this lists them all.
        leases = await transaction.list_expired_leases(math.inf, limit=_MAX_LEASES)
        assert len(leases) < _MAX_LEASES
        leases.sort(key=lambda lease: lease.resource_id)
        dump += leases
        return dump

    return in_store(store_url, work)


async def _all_records(transaction: Transaction, kind: str) -> list[Record]:
    records: list[Record] = []
    while page := await transaction.list(
        ListQuery(kind=kind, after_id=records[-1].id if records else "")
    ):
        records += page
    return records


async def _all_events(transaction: Transaction, resource_id: str) -> list[tuple[int, bytes]]:
    events: list[tuple[int, bytes]] = []
    while page := await transaction.list_events(
        resource_id, after_sequence=events[-1][0] if events else -1
    ):
        events += page
    return events
