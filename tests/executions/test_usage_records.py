"""Usage records, on both stores: a model call reported twice counts once,
the server prices it (a worker's cost is replaced), the usage report sums
it, and a worker may not report budget changes."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from stigmer.api.v1 import execution_pb2, execution_pb2_grpc
from stigmer.client import Client
from stigmer.resources.execution_events import IN_PROGRESS, budget_changed_event, usage_event
from stigmer.testing.scripted_model import Reply, ScriptedModel
from stigmer.testing.server import ServerThread
from tests.agents import PLAIN_AGENT
from tests.backends import engine_options
from tests.waiting import wait_until


@pytest.fixture
def server(store_url: str, model: ScriptedModel) -> Iterator[ServerThread]:
    with ServerThread(store_url, engine=engine_options(model.base_url)) as running:
        yield running


def _running(client: Client, model: ScriptedModel) -> str:
    client.apply(PLAIN_AGENT)
    model.add(Reply(content="Slowly.", delay_seconds=60))
    execution_id = client.run("greeter", "hi").metadata.id
    wait_until(
        lambda: (
            client.get_execution(execution_id).status.phase == IN_PROGRESS and bool(model.requests)
        ),
        what="the execution waits for the model",
    )
    return execution_id


def test_a_call_reported_twice_counts_once_at_the_servers_price(
    server: ServerThread, client: Client, model: ScriptedModel
) -> None:
    execution_id = _running(client, model)
    call = execution_pb2.Usage(
        call_id="mc-same", provider="openai", model="gpt-4o", input_tokens=1000,
        output_tokens=10, cost_micros=999_999, model_calls=7,
    )  # fmt: skip
    record = server.server.domains.executions.record_events
    for _ in range(2):
        server.run(record(execution_id, [usage_event(call)]))

    usage = client.get_execution(execution_id).status.usage
    # gpt-4o: $2.50 in, $10 out per million: 2500 + 100 micro-dollars.
    assert (usage.model_calls, usage.input_tokens, usage.cost_micros) == (1, 1000, 2600)
    report = client.usage(agent="greeter", group_by="model")
    assert (report.total.model_calls, report.total.cost_micros) == (1, 2600)
    assert [(g.key, g.usage.model_calls) for g in report.groups] == [("gpt-4o", 1)]
    client.cancel(execution_id)


def test_a_worker_reporting_a_budget_change_is_invalid_argument(
    server: ServerThread, client: Client, model: ScriptedModel
) -> None:
    execution_id = _running(client, model)
    with grpc.insecure_channel(server.address) as channel:
        stub = execution_pb2_grpc.AgentExecutionCommandControllerStub(channel)
        request = execution_pb2.RecordExecutionEventsRequest(
            id=execution_id, events=[budget_changed_event(limit_reached="max_cost_usd")]
        )
        with pytest.raises(grpc.RpcError) as raised:
            stub.RecordEvents(request, timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "events[0].budget_changed" in str(raised.value.details())
    assert client.get_execution(execution_id).status.limit_reached == ""
    client.cancel(execution_id)
