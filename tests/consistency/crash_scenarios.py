"""For every write pipeline, a request that runs it: what to set up first,
the request itself, and the state to expect once the request succeeds.

The crash matrix takes its cells from the pipelines' own step lists
(`pipelines_and_steps`), so a new step is covered by the existing scenario
and a new pipeline fails the matrix until it has one here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from stigmer.api.v1 import (
    agentinstance_pb2,
    environment_pb2,
    mcpserver_pb2,
    meta_pb2,
    session_pb2,
)
from stigmer.client import Client
from stigmer.domain.registry import Domains
from stigmer.errors import Unavailable
from stigmer.pipeline.framework import Pipeline
from stigmer.resources.execution_events import (
    CANCELLED,
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    TERMINAL_PHASES,
    WAITING_FOR_APPROVAL,
)
from stigmer.store.base import Lease, Transaction
from stigmer.store.sqlite import SqliteStore
from stigmer.testing.scripted_model import Reply, ToolCallStep
from tests.agents import gated_tools_agent
from tests.consistency.broken_states import _insert_execution, _insert_session
from tests.control_plane.manifests import agent
from tests.control_plane.seeding import in_store
from tests.executions.approvals import APPROVE, submit
from tests.waiting import wait_until

Action = Callable[[Client], object]
Responder = Callable[[dict[str, Any]], Reply]
# A request that writes into the store directly (given its URL), the way a
# crashed worker leaves it, for the server to find.
StoreAction = Callable[[Client, str], object]


def pipelines_and_steps() -> list[tuple[str, str]]:
    """Every (pipeline, step) of every controller, read off the objects."""
    cells = [(pipeline.name, step) for pipeline in _pipelines() for step in pipeline.step_names]
    return sorted(set(cells))


def pipelines_and_last_steps() -> list[tuple[str, str]]:
    """Each pipeline with its last step: a crash there leaves every write of
    the request staged in the open transaction, none committed."""
    return sorted({(pipeline.name, pipeline.step_names[-1]) for pipeline in _pipelines()})


def _pipelines() -> list[Pipeline[Any]]:
    # Only the pipelines' step lists are read: the store is never opened.
    return list(Domains(SqliteStore("/nonexistent/never-opened.db")).pipelines)


def _nothing(client: Client) -> None:
    return None


def environment(name: str = "prod", region: str = "eu") -> environment_pb2.Environment:
    return environment_pb2.Environment(
        metadata=meta_pb2.ApiResourceMetadata(name=name),
        spec=environment_pb2.EnvironmentResourceSpec(
            data={"REGION": meta_pb2.EnvironmentValue(value=region)}
        ),
    )


def mcp_server(command: str = "true") -> mcpserver_pb2.McpServer:
    return mcpserver_pb2.McpServer(
        metadata=meta_pb2.ApiResourceMetadata(name="tools"),
        spec=mcpserver_pb2.McpServerSpec(stdio=mcpserver_pb2.StdioTransport(command=command)),
    )


def instance(description: str = "staging") -> agentinstance_pb2.AgentInstance:
    return agentinstance_pb2.AgentInstance(
        metadata=meta_pb2.ApiResourceMetadata(name="Staging"),
        spec=agentinstance_pb2.AgentInstanceSpec(agent_ref="reviewer", description=description),
    )


def session(client: Client, subject: str = "first") -> session_pb2.Session:
    instance_id = client.get("agent", "reviewer").status.default_instance_id
    return session_pb2.Session(
        metadata=meta_pb2.ApiResourceMetadata(name="talk", slug="talk"),
        spec=session_pb2.SessionSpec(agent_instance_id=instance_id, subject=subject),
    )


def _reviewer(client: Client) -> None:
    client.create(agent("Reviewer"))


def _reviewer_with_instance(client: Client) -> None:
    _reviewer(client)
    client.create(instance())


def _reviewer_with_finished_run(client: Client) -> None:
    _reviewer(client)
    wait_for_executions_of(client, client.run("reviewer", "hi").metadata.id)


def _reviewer_with_session(client: Client) -> None:
    _reviewer(client)
    client.create(session(client))


def wait_for_executions(client: Client, *, phase: int = COMPLETED) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        executions = client.list_executions()
        if executions and all(e.status.phase in TERMINAL_PHASES for e in executions):
            assert {e.status.phase for e in executions} == {phase}, [
                (e.metadata.id, e.status.phase, e.status.error) for e in executions
            ]
            return
        time.sleep(0.05)
    raise AssertionError("executions did not end")


def wait_for_executions_of(client: Client, execution_id: str) -> None:
    wait_for_executions(client)
    assert client.get_execution(execution_id).status.phase == COMPLETED


def _start_slow_run(client: Client) -> None:
    _reviewer(client)
    started = client.run("reviewer", "slow please").metadata.id
    # The cell is about cancelling a running execution: one still pending
    # would test another state, so not getting there fails the setup.
    wait_until(
        lambda: client.get_execution(started).status.phase == IN_PROGRESS,
        what=f"execution {started} to be in progress",
    )


def _abandon_a_run(client: Client, store_url: str) -> None:
    """An IN_PROGRESS execution with some output, leased to a worker that is
    gone: the server's reaper ends it (execution.end-abandoned) within a
    lease period."""
    reviewer = client.get("agent", "reviewer")
    session_id = _insert_session(
        store_url, reviewer.status.default_instance_id, reviewer.metadata.id
    )
    execution_id = _insert_execution(store_url, session_id, IN_PROGRESS, reviewer.metadata.id)

    async def lease(transaction: Transaction) -> None:
        await transaction.put_lease(Lease(execution_id, "embedded/gone/1/0", time.time() - 1))

    in_store(store_url, lease)


def _gated_add(request: dict[str, Any]) -> Reply:
    """Asks for the gated tool until its result is in the conversation."""
    if any(message.get("role") == "tool" for message in request["messages"]):
        return Reply(content="ok")
    return Reply(tool_calls=(ToolCallStep("add", {"a": 1, "b": 2}, id="gated"),))


def _wait_for_a_decision(client: Client) -> None:
    client.apply(gated_tools_agent())
    started = client.run("careful", "add please").metadata.id
    wait_until(
        lambda: client.get_execution(started).status.phase == WAITING_FOR_APPROVAL,
        what=f"execution {started} to wait for approval",
    )


def _approve_the_call(client: Client) -> object:
    (execution,) = client.list_executions()
    try:
        return submit(client.address, execution.metadata.id, "gated", APPROVE)
    except grpc.RpcError as error:
        # As the SDK would answer a server that died under the call.
        raise Unavailable(str(error)) from error


def _cancel_the_run(client: Client) -> object:
    (execution,) = client.list_executions()
    return client.cancel(execution.metadata.id)


@dataclass(frozen=True)
class Scenario:
    setup: Action
    request: Action
    verify: Action
    # Whether the request's effect happens in the engine after the RPC
    # returned (the crash then comes later, not during the call).
    is_asynchronous: bool = False
    # The scripted model answers slowly (cancel needs a running execution).
    is_model_slow: bool = False
    # Set: the request is this, given the store's URL, instead of `request`.
    store_request: StoreAction | None = None
    # Set: the scripted model answers with this (else plain text).
    responder: Responder | None = None


def _created(kind: str, name: str) -> Action:
    return lambda client: client.get(kind, name)


SCENARIOS: dict[str, Scenario] = {
    "environment.create": Scenario(
        _nothing, lambda c: c.create(environment()), _created("env", "prod")
    ),
    "environment.update": Scenario(
        lambda c: c.create(environment()),
        lambda c: c.update(environment(region="us")),
        lambda c: _expect(c.get("env", "prod").spec.data["REGION"].value == "us"),
    ),
    "environment.apply": Scenario(
        _nothing, lambda c: c.apply(environment()), _created("env", "prod")
    ),
    "environment.delete": Scenario(
        lambda c: c.create(environment()),
        lambda c: c.delete("env", "prod"),
        lambda c: _expect(c.list("env") == []),
    ),
    "mcpserver.create": Scenario(
        _nothing, lambda c: c.create(mcp_server()), _created("mcp", "tools")
    ),
    "mcpserver.update": Scenario(
        lambda c: c.create(mcp_server()),
        lambda c: c.update(mcp_server("false")),
        lambda c: _expect(c.get("mcp", "tools").spec.stdio.command == "false"),
    ),
    "mcpserver.apply": Scenario(
        _nothing, lambda c: c.apply(mcp_server()), _created("mcp", "tools")
    ),
    "mcpserver.delete": Scenario(
        lambda c: c.create(mcp_server()),
        lambda c: c.delete("mcp", "tools"),
        lambda c: _expect(c.list("mcp") == []),
    ),
    "agent.create": Scenario(_nothing, _reviewer, _created("agent", "reviewer")),
    "agentinstance.ensure-default": Scenario(
        _nothing, _reviewer, _created("agentinstance", "reviewer-default")
    ),
    "agent.update": Scenario(
        _reviewer,
        lambda c: c.update(agent("Reviewer", "New instructions for the reviewer.")),
        lambda c: _expect(
            c.get("agent", "reviewer").spec.instructions == "New instructions for the reviewer."
        ),
    ),
    "agent.apply": Scenario(
        _nothing,
        lambda c: c.apply(agent("Reviewer")),
        _created("agentinstance", "reviewer-default"),
    ),
    "agent.delete": Scenario(
        _reviewer_with_session,
        lambda c: c.delete("agent", "reviewer"),
        lambda c: _expect(c.list("agent") == [] and c.list("session") == []),
    ),
    "agentinstance.create": Scenario(
        _reviewer, lambda c: c.create(instance()), _created("agentinstance", "staging")
    ),
    "agentinstance.update": Scenario(
        _reviewer_with_instance,
        lambda c: c.update(instance("renamed")),
        lambda c: _expect(c.get("agentinstance", "staging").spec.description == "renamed"),
    ),
    "agentinstance.apply": Scenario(
        _reviewer, lambda c: c.apply(instance()), _created("agentinstance", "staging")
    ),
    "agentinstance.delete": Scenario(
        _reviewer_with_instance,
        lambda c: c.delete("agentinstance", "staging"),
        lambda c: _expect([i.metadata.slug for i in c.list("ain")] == ["reviewer-default"]),
    ),
    "session.create": Scenario(
        _reviewer, lambda c: c.create(session(c)), _created("session", "talk")
    ),
    "session.update": Scenario(
        _reviewer_with_session,
        lambda c: c.update(session(c, "second")),
        lambda c: _expect(c.get("session", "talk").spec.subject == "second"),
    ),
    "session.apply": Scenario(
        _reviewer, lambda c: c.apply(session(c)), _created("session", "talk")
    ),
    "session.delete": Scenario(
        _reviewer_with_session,
        lambda c: c.delete("session", "talk"),
        lambda c: _expect(c.list("session") == []),
    ),
    "execution.create": Scenario(
        _reviewer, lambda c: c.run("reviewer", "hello"), wait_for_executions
    ),
    "agent.ensure-default-instance": Scenario(
        _reviewer, lambda c: c.run("reviewer", "hello"), wait_for_executions
    ),
    "execution.record-events": Scenario(
        _reviewer,
        lambda c: c.run("reviewer", "hello"),
        wait_for_executions,
        is_asynchronous=True,
    ),
    "execution.cancel": Scenario(
        _start_slow_run,
        _cancel_the_run,
        lambda c: wait_for_executions(c, phase=CANCELLED),
        is_model_slow=True,
    ),
    "execution.claim": Scenario(
        _reviewer,
        lambda c: c.run("reviewer", "hello"),
        wait_for_executions,
        is_asynchronous=True,
    ),
    "execution.end-abandoned": Scenario(
        _reviewer,
        _nothing,
        lambda c: wait_for_executions(c, phase=FAILED),
        is_asynchronous=True,
        store_request=_abandon_a_run,
    ),
    "execution.submit-approval": Scenario(
        _wait_for_a_decision,
        _approve_the_call,
        wait_for_executions,
        responder=_gated_add,
    ),
    "agentexecution.delete": Scenario(
        _reviewer_with_finished_run,
        lambda c: c.delete_execution(c.list_executions()[0].metadata.id),
        lambda c: _expect(c.list_executions() == []),
    ),
    # A commit of any write, here an agent's.
    "store": Scenario(_nothing, _reviewer, _created("agentinstance", "reviewer-default")),
}


def _expect(condition: bool) -> None:
    assert condition
