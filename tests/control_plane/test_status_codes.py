"""Every failure reaches the client as its real gRPC status code, with the
facts in the status details: never UNKNOWN, never a message to parse."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from stigmer.api.v1 import agent_pb2, agent_pb2_grpc, meta_pb2
from stigmer.client import Client
from stigmer.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from stigmer.testing.server import ServerThread
from tests.control_plane.manifests import agent


def rpc_status(error: grpc.RpcError) -> Any:
    assert isinstance(error, grpc.Call)
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            return status_pb2.Status.FromString(value)
    raise AssertionError("no status details in the trailing metadata")


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
    with pytest.raises(Conflict):
        client.update(created)


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
