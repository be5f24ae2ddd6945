"""Every failure reaches the client as its real gRPC status code, with the
facts in the status details: never UNKNOWN, never a message to parse."""

from __future__ import annotations

import logging
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc.aio import AioRpcError, Metadata
from grpc_status import rpc_status as grpc_rpc_status

from stigmer.api.v1 import agent_pb2, agent_pb2_grpc, meta_pb2
from stigmer.client import Client
from stigmer.client.rpc_errors import error_from_rpc
from stigmer.errors import (
    ERROR_CLASSES,
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    StigmerError,
    Unauthenticated,
    Unavailable,
)
from stigmer.pipeline.context import ResourceContext
from stigmer.pipeline.steps import BuildStateStep
from stigmer.server.rpc_errors import rpc_status_of
from stigmer.testing.server import ServerThread
from tests.control_plane.manifests import agent


def rpc_status(error: grpc.RpcError) -> Any:
    """The google.rpc.Status the server attached to the failed call."""
    assert isinstance(error, grpc.Call)
    found = grpc_rpc_status.from_call(error)
    assert found is not None, "no status details in the trailing metadata"
    return found


def code(error: grpc.RpcError) -> grpc.StatusCode:
    assert isinstance(error, grpc.Call)
    return error.code()


def error_info(error: grpc.RpcError) -> Any:
    for detail in rpc_status(error).details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info
    raise AssertionError("no ErrorInfo in the status details")


def test_second_create_of_same_slug_is_already_exists_with_existing_id(
    server: ServerThread,
) -> None:
    with grpc.insecure_channel(server.address) as channel:
        stub = agent_pb2_grpc.AgentCommandControllerStub(channel)
        first = stub.Create(agent("PR Reviewer"))
        with pytest.raises(grpc.RpcError) as raised:
            stub.Create(agent("PR Reviewer"))
    assert code(raised.value) == grpc.StatusCode.ALREADY_EXISTS
    info = error_info(raised.value)
    assert info.reason == "ALREADY_EXISTS"
    assert info.metadata["existing_id"] == first.metadata.id
    assert info.metadata["slug"] == "pr-reviewer"


def test_sdk_raises_already_exists_with_the_existing_id(client: Client) -> None:
    first = client.create(agent("PR Reviewer"))
    with pytest.raises(AlreadyExists) as raised:
        client.create(agent("PR Reviewer", "Another set of instructions."))
    assert raised.value.existing_id == first.metadata.id
    assert raised.value.step == "agent.create/persist"


def test_update_with_stale_version_is_aborted(server: ServerThread) -> None:
    with grpc.insecure_channel(server.address) as channel:
        stub = agent_pb2_grpc.AgentCommandControllerStub(channel)
        created = stub.Create(agent("PR Reviewer"))
        fresh = agent_pb2.Agent()
        fresh.CopyFrom(created)
        fresh.spec.instructions = "Review code very carefully."
        updated = stub.Update(fresh)
        assert updated.metadata.version == created.metadata.version + 1
        stale = agent_pb2.Agent()
        stale.CopyFrom(created)
        stale.spec.instructions = "A writer that read version 1."
        with pytest.raises(grpc.RpcError) as raised:
            stub.Update(stale)
    assert code(raised.value) == grpc.StatusCode.ABORTED
    assert error_info(raised.value).metadata["actual_version"] == str(updated.metadata.version)


def test_update_without_version_is_last_writer_wins(client: Client) -> None:
    created = client.create(agent("PR Reviewer"))
    blind = agent("PR Reviewer", "Instructions from a blind writer.")
    updated = client.update(blind)
    assert updated.metadata.id == created.metadata.id
    assert updated.metadata.version == 2
    assert updated.spec.instructions == "Instructions from a blind writer."


def test_sdk_raises_conflict_on_stale_version(client: Client) -> None:
    created = client.create(agent("PR Reviewer"))
    client.update(agent("PR Reviewer", "Second version of the text."))
    with pytest.raises(Conflict) as raised:
        client.update(created)
    assert raised.value.kind == "Agent"
    assert raised.value.resource_id == created.metadata.id
    assert raised.value.expected_version == 1
    assert raised.value.actual_version == 2


def test_get_of_missing_name_is_not_found(server: ServerThread) -> None:
    with grpc.insecure_channel(server.address) as channel:
        stub = agent_pb2_grpc.AgentQueryControllerStub(channel)
        with pytest.raises(grpc.RpcError) as by_slug:
            stub.GetByReference(meta_pb2.ResourceReference(slug="nobody"))
        with pytest.raises(grpc.RpcError) as by_id:
            stub.Get(meta_pb2.GetRequest(id="agt-01jf0000000000000000000000"))
    assert code(by_slug.value) == grpc.StatusCode.NOT_FOUND
    assert code(by_id.value) == grpc.StatusCode.NOT_FOUND


def test_sdk_raises_not_found(client: Client) -> None:
    with pytest.raises(NotFound) as raised:
        client.get("agent", "nobody")
    assert raised.value.kind == "Agent"
    assert raised.value.reference == "nobody"


def test_invalid_resource_is_invalid_argument_naming_each_field(server: ServerThread) -> None:
    with grpc.insecure_channel(server.address) as channel:
        stub = agent_pb2_grpc.AgentCommandControllerStub(channel)
        bad = agent_pb2.Agent(
            metadata=meta_pb2.ApiResourceMetadata(name="x", labels={"bad key!": "v"}),
            spec=agent_pb2.AgentSpec(instructions="short"),
        )
        with pytest.raises(grpc.RpcError) as raised:
            stub.Create(bad)
    assert code(raised.value) == grpc.StatusCode.INVALID_ARGUMENT
    details = rpc_status(raised.value)
    bad_request = error_details_pb2.BadRequest()
    assert any(detail.Unpack(bad_request) for detail in details.details)
    fields = {violation.field for violation in bad_request.field_violations}
    assert "spec.instructions" in fields
    assert any(field.startswith("metadata.labels") for field in fields)


def test_reference_to_missing_mcp_server_is_not_found_with_field(client: Client) -> None:
    bad = agent_pb2.Agent(
        metadata=meta_pb2.ApiResourceMetadata(name="Tool User"),
        spec=agent_pb2.AgentSpec(
            instructions="Use the tools you have.",
            mcp_servers=[agent_pb2.McpServerUsage(ref="nowhere")],
        ),
    )
    with pytest.raises(NotFound) as raised:
        client.create(bad)
    assert raised.value.facts["field"] == "spec.mcp_servers[0].ref"
    with pytest.raises(NotFound):
        client.get("agent", "tool-user")


def test_create_with_an_id_is_invalid_argument(client: Client) -> None:
    given = agent("PR Reviewer")
    given.metadata.id = "agt-01jf0000000000000000000000"
    with pytest.raises(InvalidArgument) as raised:
        client.create(given)
    assert raised.value.violations[0].field == "metadata.id"


def test_every_error_class_comes_back_from_the_wire_as_itself_with_its_facts() -> None:
    sent: list[StigmerError] = [
        InvalidArgument.for_field("spec.instructions", "must not be empty"),
        NotFound("Agent", "nobody", field="spec.agent"),
        AlreadyExists("Agent", "pr-reviewer", "agt-01jf0000000000000000000000"),
        Conflict("Agent", "agt-01jf0000000000000000000000", 1, 2),
        FailedPrecondition("the agent has running executions", facts={"kind": "Agent"}),
        Unavailable("the store cannot be reached", facts={"store": "postgres"}),
        Unauthenticated("a valid token is required"),
        PermissionDenied("the viewer role may not apply", facts={"role": "viewer"}),
        Internal("internal error (request id r-1)", facts={"request_id": "r-1"}),
    ]
    assert {type(error) for error in sent} == set(ERROR_CLASSES.values())
    for error in sent:
        status = rpc_status_of(error)
        call = AioRpcError(
            status.code, Metadata(), Metadata(*status.trailing_metadata), status.details
        )
        restored = error_from_rpc(call, "127.0.0.1:1")
        assert type(restored) is type(error)
        assert status.code.name == error.grpc_code
        assert restored.message == error.message
        # Empty facts are not sent: absent and empty read the same.
        sent_facts = {key: value for key, value in error.facts.items() if value}
        assert restored.facts == {**sent_facts, "grpc_code": error.grpc_code}
        assert restored.violations == error.violations


@pytest.mark.parametrize("cls", list(ERROR_CLASSES.values()), ids=list(ERROR_CLASSES))
def test_a_status_without_details_maps_back_by_its_code(cls: type[StigmerError]) -> None:
    call = AioRpcError(grpc.StatusCode[cls.grpc_code], Metadata(), Metadata(), "from a proxy")
    assert type(error_from_rpc(call, "127.0.0.1:1")) is cls


def test_a_deadline_is_unavailable_and_an_unknown_code_is_internal() -> None:
    deadline = AioRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, Metadata(), Metadata(), "late")
    unknown = AioRpcError(grpc.StatusCode.UNKNOWN, Metadata(), Metadata(), "?")
    assert type(error_from_rpc(deadline, "127.0.0.1:1")) is Unavailable
    assert type(error_from_rpc(unknown, "127.0.0.1:1")) is Internal


def rpc_log_lines(caplog: pytest.LogCaptureFixture, request_id: str) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "stigmer.rpc" and request_id in record.getMessage()
    ]


def test_internal_names_the_callers_request_id_and_logs_it_with_the_traceback(
    server: ServerThread, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("STIGMER_FAIL_STEP", "agent.create/persist")
    with grpc.insecure_channel(server.address) as channel:
        stub = agent_pb2_grpc.AgentCommandControllerStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.Create(agent("PR Reviewer"), metadata=(("x-request-id", "req-7f3a"),))
    assert code(raised.value) == grpc.StatusCode.INTERNAL
    assert isinstance(raised.value, grpc.Call)
    assert raised.value.details() == (
        "internal error (request id req-7f3a); the server log has the details"
    )
    assert ("x-request-id", "req-7f3a") in tuple(raised.value.trailing_metadata() or ())
    info = error_info(raised.value)
    assert info.reason == "INTERNAL"
    assert dict(info.metadata) == {"request_id": "req-7f3a", "step": "agent.create/persist"}
    (logged,) = rpc_log_lines(caplog, "req-7f3a")
    assert logged.levelno == logging.ERROR
    assert "injected failure in step agent.create/persist" in logged.getMessage()
    assert logged.exc_info is not None
    assert isinstance(logged.exc_info[1], Internal)


def test_sdk_raises_internal_with_a_request_id_and_without_the_cause(
    client: Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(self: BuildStateStep, context: ResourceContext) -> None:
        raise RuntimeError("cannot open /var/lib/secret/agent.db")

    monkeypatch.setattr(BuildStateStep, "run", broken)
    with pytest.raises(Internal) as raised:
        client.create(agent("PR Reviewer"))
    request_id = raised.value.request_id
    assert len(request_id) == 16
    assert raised.value.message == (
        f"internal error (request id {request_id}); the server log has the details"
    )
    assert raised.value.step == "agent.create/build-state"
    assert "/var/lib/secret" not in str(raised.value.facts)
    (logged,) = rpc_log_lines(caplog, request_id)
    assert "/var/lib/secret/agent.db" in logged.getMessage()
    assert logged.exc_info is not None
    assert isinstance(logged.exc_info[1], Internal)
    assert isinstance(logged.exc_info[1].__cause__, RuntimeError)
