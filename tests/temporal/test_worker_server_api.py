"""The worker's own client of the server (stigmer.worker.server_api): the
one way to read an execution's secrets unmasked, and to record what a
worker did. Against a server on the Temporal engine with no worker, so the
execution waits and nothing else records into it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from stigmer.api.v1 import execution_pb2
from stigmer.client import AsyncClient, Client
from stigmer.errors import FailedPrecondition, NotFound
from stigmer.resources.execution_events import COMPLETED, phase_event, system_message_event
from stigmer.resources.secrets import MASK
from stigmer.testing.server import ServerThread
from stigmer.worker.server_api import WorkerApiClient
from tests.agents import PLAIN_AGENT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("store_url", ["sqlite"], indirect=True),
]
T = TypeVar("T")
UNKNOWN_EXECUTION = "aex-00000000000000000000000000"


def _with_worker_api(address: str, work: Callable[[WorkerApiClient], Awaitable[T]]) -> T:
    async def run() -> T:
        async with AsyncClient(address) as client:
            return await work(WorkerApiClient(client))

    return asyncio.run(run())


def test_the_worker_reads_the_secrets_the_public_client_sees_masked(
    client: Client, server: ServerThread
) -> None:
    client.apply(PLAIN_AGENT)
    execution_id = client.run("greeter", "hi", secrets={"API_TOKEN": "s3cret-token"}).metadata.id

    inputs = _with_worker_api(server.address, lambda api: api.run_inputs(execution_id))

    assert client.get_execution(execution_id).spec.runtime_env["API_TOKEN"].value == MASK
    assert inputs.execution.spec.runtime_env["API_TOKEN"].value == "s3cret-token"
    assert inputs.execution.metadata.id == execution_id
    assert inputs.agent.metadata.name == "Greeter"
    assert list(inputs.history) == []


def test_events_the_worker_records_are_applied_and_an_ended_execution_refuses_more(
    client: Client, server: ServerThread
) -> None:
    client.apply(PLAIN_AGENT)
    execution_id = client.run("greeter", "hi").metadata.id

    async def record(api: WorkerApiClient) -> execution_pb2.AgentExecution:
        await api.record_events(execution_id, [system_message_event("a note from the worker")])
        return await api.record_events(execution_id, [phase_event(COMPLETED)])

    ended = _with_worker_api(server.address, record)

    assert ended.status.phase == COMPLETED
    assert ended.status.messages[-1].content == "a note from the worker"
    assert ended.status.messages[-1].type == execution_pb2.MESSAGE_TYPE_SYSTEM
    with pytest.raises(FailedPrecondition):
        _with_worker_api(
            server.address,
            lambda api: api.record_events(execution_id, [system_message_event("too late")]),
        )


def test_the_worker_api_on_an_unknown_execution_is_not_found(server: ServerThread) -> None:
    with pytest.raises(NotFound) as raised:
        _with_worker_api(server.address, lambda api: api.run_inputs(UNKNOWN_EXECUTION))

    assert (raised.value.kind, raised.value.reference) == ("AgentExecution", UNKNOWN_EXECUTION)
