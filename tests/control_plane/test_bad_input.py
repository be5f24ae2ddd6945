"""Every kind of bad input is INVALID_ARGUMENT naming the field at fault (or,
for a body that is not a message at all, the message type), never UNKNOWN
or INTERNAL: undecodable bodies, out-of-range enums, control characters in
names and labels, over-long slugs, corrupt Any resources, page tokens the
server did not issue, and messages over the size limit."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2

from stigmer.api.v1 import (
    agent_pb2,
    agent_pb2_grpc,
    agentinstance_pb2,
    environment_pb2,
    environment_pb2_grpc,
    execution_pb2,
    execution_pb2_grpc,
    manifest_pb2,
    manifest_pb2_grpc,
    meta_pb2,
)
from stigmer.client import Client
from stigmer.engine.options import EngineOptions
from stigmer.errors import FailedPrecondition, InvalidArgument
from stigmer.message_limits import CHANNEL_OPTIONS, MAX_MESSAGE_BYTES
from stigmer.server.rpc_errors import MAX_STATUS_BYTES, MAX_STATUS_MESSAGE_BYTES
from stigmer.testing.server import ServerThread
from tests.control_plane.manifests import agent
from tests.control_plane.test_status_codes import code, rpc_status


@pytest.fixture
def channel(server: ServerThread) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as opened:
        yield opened


def fields_at_fault(error: grpc.RpcError) -> list[str]:
    bad_request = error_details_pb2.BadRequest()
    for detail in rpc_status(error).details:
        if detail.Unpack(bad_request):
            return [violation.field for violation in bad_request.field_violations]
    raise AssertionError("no BadRequest in the status details")


def details(error: grpc.RpcError) -> str:
    assert isinstance(error, grpc.Call)
    return error.details() or ""


def raw(data: bytes) -> bytes:
    return data


def refused(call: Callable[[Any], object], request: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call(request)
    return raised.value


# -- undecodable bodies -------------------------------------------------------

GET_AGENT = "/stigmer.agentic.v1.AgentQueryController/Get"
SUBSCRIBE = "/stigmer.agentic.v1.AgentExecutionQueryController/Subscribe"


def test_a_truncated_body_is_invalid_argument_naming_the_message_type(
    channel: grpc.Channel,
) -> None:
    error = refused(channel.unary_unary(GET_AGENT, raw, raw), b"\x0a\x05ab")
    assert code(error) == grpc.StatusCode.INVALID_ARGUMENT
    assert "stigmer.agentic.v1.GetRequest" in details(error)


def test_invalid_utf8_in_a_string_field_is_invalid_argument(channel: grpc.Channel) -> None:
    error = refused(channel.unary_unary(GET_AGENT, raw, raw), b"\x0a\x02\xff\xfe")
    assert code(error) == grpc.StatusCode.INVALID_ARGUMENT
    assert "UTF-8" in details(error)


def test_an_undecodable_body_on_a_streaming_method_is_invalid_argument(
    channel: grpc.Channel,
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        list(channel.unary_stream(SUBSCRIBE, raw, raw)(b"\xff\xff\xff", timeout=10))
    assert code(raised.value) == grpc.StatusCode.INVALID_ARGUMENT
    assert "SubscribeExecutionRequest" in details(raised.value)


def test_an_undecodable_health_check_is_invalid_argument(channel: grpc.Channel) -> None:
    error = refused(channel.unary_unary("/grpc.health.v1.Health/Check", raw, raw), b"\x0a\x05ab")
    assert code(error) == grpc.StatusCode.INVALID_ARGUMENT


# -- enums ----------------------------------------------------------------


def test_an_undefined_phase_filter_is_invalid_argument_naming_phase(
    channel: grpc.Channel,
) -> None:
    stub = execution_pb2_grpc.AgentExecutionQueryControllerStub(channel)
    error = refused(stub.List, execution_pb2.ListExecutionsRequest(phase=99))  # type: ignore[arg-type]
    assert code(error) == grpc.StatusCode.INVALID_ARGUMENT
    assert fields_at_fault(error) == ["phase"]


def test_an_undefined_cascade_policy_is_invalid_argument_naming_cascade(
    channel: grpc.Channel,
) -> None:
    stub = agent_pb2_grpc.AgentCommandControllerStub(channel)
    stub.Create(agent("PR Reviewer"))
    request = meta_pb2.DeleteRequest(
        ref=meta_pb2.ResourceReference(slug="pr-reviewer"),
        cascade=7,  # type: ignore[arg-type]
    )
    error = refused(stub.Delete, request)
    assert code(error) == grpc.StatusCode.INVALID_ARGUMENT
    assert fields_at_fault(error) == ["cascade"]
    assert (
        agent_pb2_grpc.AgentQueryControllerStub(channel)
        .GetByReference(meta_pb2.ResourceReference(slug="pr-reviewer"))
        .metadata.slug
        == "pr-reviewer"
    )


def test_an_undefined_busy_session_policy_is_invalid_argument_naming_the_field(
    client: Client,
) -> None:
    created = client.create(agent("PR Reviewer"))
    request = execution_pb2.AgentExecution(
        spec=execution_pb2.AgentExecutionSpec(
            agent_id=created.metadata.id,
            message="Review this change.",
            on_busy_session=-3,  # type: ignore[arg-type]
        )
    )
    with grpc.insecure_channel(client.address) as channel:
        stub = execution_pb2_grpc.AgentExecutionCommandControllerStub(channel)
        error = refused(stub.Create, request)
    assert code(error) == grpc.StatusCode.INVALID_ARGUMENT
    assert fields_at_fault(error) == ["spec.on_busy_session"]
    assert client.list_executions() == []


# -- names, labels and slugs ---------------------------------------------------


@pytest.mark.parametrize(
    ("name", "labels", "field"),
    [
        ("PR\x00Reviewer", {}, "metadata.name"),
        ("PR Reviewer\n", {}, "metadata.name"),
        ("PR Reviewer", {"team": "a\x00b"}, "metadata.labels['team']"),
        ("PR Reviewer", {"team": "\x1b[31m"}, "metadata.labels['team']"),
        ("PR Reviewer", {"te\x00am": "a"}, "metadata.labels['te\\x00am']"),
    ],
    ids=["nul-in-name", "newline-in-name", "nul-in-label", "escape-in-label", "nul-in-key"],
)
def test_control_characters_in_names_and_labels_are_invalid_argument_naming_the_field(
    channel: grpc.Channel, name: str, labels: dict[str, str], field: str
) -> None:
    given = agent("Placeholder")
    given.metadata.name = name
    given.metadata.labels.update(labels)
    error = refused(agent_pb2_grpc.AgentCommandControllerStub(channel).Create, given)
    assert code(error) == grpc.StatusCode.INVALID_ARGUMENT
    assert fields_at_fault(error) == [field]


def test_a_nul_in_an_annotation_is_invalid_argument_and_a_newline_is_fine(
    client: Client,
) -> None:
    given = agent("PR Reviewer")
    given.metadata.annotations["note"] = "two\nlines\x00"
    with pytest.raises(InvalidArgument) as raised:
        client.create(given)
    assert [v.field for v in raised.value.violations] == ["metadata.annotations['note']"]
    given.metadata.annotations["note"] = "two\nlines"
    assert client.create(given).metadata.annotations["note"] == "two\nlines"


def test_a_slug_over_63_characters_is_refused_at_the_agent_naming_the_limit(
    client: Client,
) -> None:
    given = agent("PR Reviewer")
    given.metadata.slug = "a" * 64
    with pytest.raises(InvalidArgument) as raised:
        client.create(given)
    assert [v.field for v in raised.value.violations] == ["metadata.slug"]
    assert "at most 63 characters" in raised.value.message
    # Refused at the agent itself, before any default instance was tried.
    assert raised.value.step == "agent.create/resolve-slug"


def test_an_agent_with_a_63_character_slug_gets_its_default_instance(client: Client) -> None:
    given = agent("PR Reviewer")
    given.metadata.slug = "a" * 63
    created = client.create(given)
    instance = client.get("agentinstance", created.status.default_instance_id)
    assert instance.metadata.slug == "a" * 63 + "-default"
    # What `get -o yaml` shows can be applied back.
    applied = client.apply_one(instance)
    assert applied.outcome == "unchanged"


def test_an_agent_instance_slug_over_63_characters_is_refused_unless_a_default_slug(
    client: Client,
) -> None:
    created = client.create(agent("PR Reviewer"))
    given = agentinstance_pb2.AgentInstance(
        metadata=meta_pb2.ApiResourceMetadata(name="Long", slug="b" * 64),
        spec=agentinstance_pb2.AgentInstanceSpec(agent_id=created.metadata.id),
    )
    with pytest.raises(InvalidArgument) as raised:
        client.create(given)
    assert [v.field for v in raised.value.violations] == ["metadata.slug"]


# -- Any, page tokens ---------------------------------------------------------


def test_a_corrupt_any_in_a_manifest_is_invalid_argument_naming_the_resource(
    channel: grpc.Channel,
) -> None:
    good = any_pb2.Any()
    good.Pack(environment_pb2.Environment(metadata=meta_pb2.ApiResourceMetadata(name="Shared")))
    corrupt = any_pb2.Any(type_url=good.type_url, value=good.value[:-3] + b"\xff\xff\xff")
    request = manifest_pb2.ApplyManifestRequest(resources=[good, corrupt])
    error = refused(manifest_pb2_grpc.ManifestControllerStub(channel).Apply, request)
    assert code(error) == grpc.StatusCode.INVALID_ARGUMENT
    assert fields_at_fault(error) == ["resources[1]"]
    listed = environment_pb2_grpc.EnvironmentQueryControllerStub(channel).List(
        meta_pb2.ListRequest()
    )
    assert list(listed.items) == []


@pytest.mark.parametrize(
    "token",
    ["not a token", "!!!", "bm9wZQ==", "ZW52LTAx", "YWd0LTAx\n"],
    ids=["text", "punctuation", "base64-of-text", "id-of-another-kind", "trailing-newline"],
)
def test_a_page_token_the_server_did_not_issue_is_invalid_argument(
    channel: grpc.Channel, token: str
) -> None:
    stub = agent_pb2_grpc.AgentQueryControllerStub(channel)
    error = refused(stub.List, meta_pb2.ListRequest(page_token=token))
    assert code(error) == grpc.StatusCode.INVALID_ARGUMENT
    assert fields_at_fault(error) == ["page_token"]


def test_a_page_token_the_server_issued_continues_the_list(client: Client) -> None:
    for index in range(3):
        client.create(agent(f"Reviewer {index}"))
    with grpc.insecure_channel(client.address) as channel:
        stub = agent_pb2_grpc.AgentQueryControllerStub(channel)
        first = stub.List(meta_pb2.ListRequest(page_size=2))
        second = stub.List(meta_pb2.ListRequest(page_size=2, page_token=first.next_page_token))
    slugs = [item.metadata.slug for item in [*first.items, *second.items]]
    assert slugs == ["reviewer-0", "reviewer-1", "reviewer-2"]
    assert second.next_page_token == ""


# -- message size -------------------------------------------------------------


def big_agent(name: str, megabytes: int) -> agent_pb2.Agent:
    given = agent(name)
    for index in range(megabytes * 16):
        given.metadata.annotations[f"n{index}"] = "x" * 65_536
    return given


def test_an_oversize_request_is_invalid_argument_naming_the_limit(client: Client) -> None:
    with pytest.raises(InvalidArgument) as raised:
        client.create(big_agent("Huge", 17))
    assert "16 MiB" in raised.value.message
    assert raised.value.facts["limit_bytes"] == str(MAX_MESSAGE_BYTES)


def test_the_server_refuses_a_request_over_the_limit_with_resource_exhausted(
    server: ServerThread,
) -> None:
    options = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
    with grpc.insecure_channel(server.address, options=options) as channel:
        stub = agent_pb2_grpc.AgentCommandControllerStub(channel)
        error = refused(stub.Create, big_agent("Huge", 17))
    assert code(error) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert str(MAX_MESSAGE_BYTES) in details(error)


def test_an_oversize_manifest_says_to_apply_it_in_smaller_files(client: Client) -> None:
    resources = [big_agent(f"Big {index}", 4) for index in range(5)]
    with pytest.raises(InvalidArgument) as raised:
        client.apply(resources)
    assert "apply it in smaller files" in raised.value.message
    assert "16 MiB" in raised.value.message
    assert client.list("agent") == []


def ai_message(megabytes: int) -> execution_pb2.ExecutionEvent:
    return execution_pb2.ExecutionEvent(
        message_added=execution_pb2.ExecutionMessage(
            type=execution_pb2.MESSAGE_TYPE_AI, content="y" * (megabytes * 1024 * 1024)
        )
    )


def grow(client: Client, execution_id: str, megabytes: int) -> None:
    """Adds AI messages of 1 MiB each, as a worker reporting would (each
    answer is the whole execution, hence the SDK's channel options)."""
    with grpc.insecure_channel(client.address, options=CHANNEL_OPTIONS) as channel:
        stub = execution_pb2_grpc.AgentExecutionCommandControllerStub(channel)
        for _ in range(megabytes):
            stub.RecordEvents(
                execution_pb2.RecordExecutionEventsRequest(id=execution_id, events=[ai_message(1)])
            )


@pytest.fixture
def idle_server(store_url: str) -> Iterator[ServerThread]:
    """A server that runs no execution: they stay PENDING while the test
    records events into them."""
    with ServerThread(store_url, engine=EngineOptions(workers=0)) as running:
        yield running


@pytest.mark.slow
def test_a_large_execution_near_the_limit_is_readable_and_lists_in_short_pages(
    idle_server: ServerThread,
) -> None:
    with Client(idle_server.address) as client:
        client.create(agent("PR Reviewer"))
        executions = [client.run("pr-reviewer", f"Question {index}") for index in range(2)]
        for execution in executions:
            grow(client, execution.metadata.id, 15)
        read = client.get_execution(executions[0].metadata.id)
        assert len(read.status.messages) == 16
        assert read.ByteSize() > 15 * 1024 * 1024
        # Both do not fit in one answer: the list is cut into pages, and
        # the SDK follows them.
        with grpc.insecure_channel(idle_server.address, options=CHANNEL_OPTIONS) as channel:
            stub = execution_pb2_grpc.AgentExecutionQueryControllerStub(channel)
            first = stub.List(execution_pb2.ListExecutionsRequest())
        assert len(first.items) == 1
        assert first.next_page_token
        assert len(client.list_executions()) == 2


def test_an_execution_past_the_limit_is_failed_precondition_naming_the_limit(
    idle_server: ServerThread,
) -> None:
    with Client(idle_server.address) as client:
        client.create(agent("PR Reviewer"))
        execution = client.run("pr-reviewer", "A question with a long answer")
        executions = idle_server.server.domains.executions
        for _ in range(2):
            idle_server.run(executions.record_events(execution.metadata.id, [ai_message(9)]))
        with pytest.raises(FailedPrecondition) as raised:
            client.get_execution(execution.metadata.id)
    assert "more than the 16 MiB" in raised.value.message
    assert raised.value.facts["limit_bytes"] == str(MAX_MESSAGE_BYTES)


# -- found by the fuzzer ------------------------------------------------------


def test_a_nul_in_any_request_string_is_invalid_argument_naming_the_field(
    channel: grpc.Channel,
) -> None:
    stub = agent_pb2_grpc.AgentQueryControllerStub(channel)
    error = refused(stub.Get, meta_pb2.GetRequest(id="agt-01\x00"))
    assert code(error) == grpc.StatusCode.INVALID_ARGUMENT
    assert fields_at_fault(error) == ["id"]
    given = agent("Tool User")
    given.spec.mcp_servers.add(ref="tools\x00")
    error = refused(agent_pb2_grpc.AgentCommandControllerStub(channel).Create, given)
    assert fields_at_fault(error) == ["spec.mcp_servers[0].ref"]


def test_a_nul_inside_a_manifest_resource_names_the_resource_and_field(
    channel: grpc.Channel,
) -> None:
    given = agent("Tool User")
    given.spec.skill_refs.add(slug="skill", version="v1\x00")
    packed = any_pb2.Any()
    packed.Pack(given)
    request = manifest_pb2.ApplyManifestRequest(resources=[packed])
    # The NUL sits inside the Any's bytes: found once the resource is unpacked.
    error = refused(manifest_pb2_grpc.ManifestControllerStub(channel).Apply, request)
    assert code(error) == grpc.StatusCode.INVALID_ARGUMENT
    assert fields_at_fault(error) == ["resources[0].spec.skill_refs[0].version"]


def test_a_label_selector_key_outside_the_label_rules_is_invalid_argument(
    channel: grpc.Channel,
) -> None:
    stub = agent_pb2_grpc.AgentQueryControllerStub(channel)
    error = refused(stub.List, meta_pb2.ListRequest(label_selector={'team"]': "a"}))
    assert code(error) == grpc.StatusCode.INVALID_ARGUMENT
    assert fields_at_fault(error) == ["label_selector['team\"]']"]


def test_an_error_quoting_a_huge_input_still_reaches_the_client_whole(
    channel: grpc.Channel,
) -> None:
    given = agent("PR Reviewer")
    given.kind = "K" * 70_000
    error = refused(agent_pb2_grpc.AgentCommandControllerStub(channel).Create, given)
    assert code(error) == grpc.StatusCode.INVALID_ARGUMENT
    assert fields_at_fault(error) == ["kind"]
    assert len(details(error).encode()) <= MAX_STATUS_MESSAGE_BYTES


def test_an_error_with_many_fields_at_fault_keeps_to_the_metadata_budget(
    channel: grpc.Channel,
) -> None:
    given = agent("PR Reviewer")
    for index in range(60):
        given.metadata.labels[f"key{index}"] = f"bad\n{'v' * 200}"
    error = refused(agent_pb2_grpc.AgentCommandControllerStub(channel).Create, given)
    assert code(error) == grpc.StatusCode.INVALID_ARGUMENT
    assert rpc_status(error).ByteSize() <= MAX_STATUS_BYTES
    assert 0 < len(fields_at_fault(error)) < 60
    assert details(error).startswith("60 fields at fault")
