"""SubmitApproval through the generated stub (the SDK's methods for it are
not what these tests are about), and waits on an execution's phase."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc
from google.protobuf import struct_pb2

from stigmer.api.v1 import execution_pb2, execution_pb2_grpc
from stigmer.client import Client
from stigmer.engine.embedded import EmbeddedEngine
from stigmer.resources.execution_events import WAITING_FOR_APPROVAL
from stigmer.testing.server import ServerThread
from tests.waiting import wait_until

APPROVE = execution_pb2.APPROVAL_ACTION_APPROVE
APPROVE_ALL = execution_pb2.APPROVAL_ACTION_APPROVE_ALL
SKIP = execution_pb2.APPROVAL_ACTION_SKIP
REJECT = execution_pb2.APPROVAL_ACTION_REJECT
EDIT = execution_pb2.APPROVAL_ACTION_EDIT


def submit(
    address: str,
    execution_id: str,
    tool_call_id: str,
    action: int,
    *,
    comment: str = "",
    edited_args: Mapping[str, Any] | None = None,
    token: str = "",
) -> execution_pb2.AgentExecution:
    """Raises grpc.RpcError with the server's status code."""
    request = execution_pb2.SubmitApprovalRequest(
        execution_id=execution_id,
        tool_call_id=tool_call_id,
        action=action,  # type: ignore[arg-type]
        comment=comment,
    )
    if edited_args is not None:
        edited = struct_pb2.Struct()
        edited.update(dict(edited_args))
        request.edited_args.CopyFrom(edited)
    with grpc.insecure_channel(address) as channel:
        stub = execution_pb2_grpc.AgentExecutionCommandControllerStub(channel)
        metadata = [("authorization", f"Bearer {token}")] if token else None
        answer: execution_pb2.AgentExecution = stub.SubmitApproval(
            request, timeout=30, metadata=metadata
        )
        return answer


def status_code_of(error: grpc.RpcError) -> grpc.StatusCode:
    code: grpc.StatusCode = error.code()  # type: ignore[attr-defined]
    return code


def wait_for_approvals(
    client: Client, execution_id: str, count: int = 1, *, within: float = 60
) -> execution_pb2.AgentExecution:
    """The execution once it waits for `count` decisions."""
    found: list[execution_pb2.AgentExecution] = []

    def is_waiting() -> bool:
        found[:] = [client.get_execution(execution_id)]
        status = found[0].status
        return status.phase == WAITING_FOR_APPROVAL and len(status.pending_approvals) == count

    wait_until(is_waiting, what=f"execution {execution_id} to wait for approval", within=within)
    return found[0]


def tool_results_of(request: Mapping[str, Any]) -> dict[str, str]:
    """The tool results a model request carries, by call id; each id once."""
    results: dict[str, str] = {}
    for message in request["messages"]:
        if message.get("role") == "tool":
            assert message["tool_call_id"] not in results, message
            results[message["tool_call_id"]] = message["content"]
    return results


def asked_call_ids(request: Mapping[str, Any]) -> list[str]:
    """Every tool call id the assistant messages of a model request carry."""
    return [
        call["id"]
        for message in request["messages"]
        if message.get("role") == "assistant"
        for call in message.get("tool_calls") or []
    ]


def create_execution(
    address: str, execution: execution_pb2.AgentExecution
) -> execution_pb2.AgentExecution:
    """Create through the generated stub: for the spec fields `Client.run` has no option for."""
    with grpc.insecure_channel(address) as channel:
        stub = execution_pb2_grpc.AgentExecutionCommandControllerStub(channel)
        created: execution_pb2.AgentExecution = stub.Create(execution, timeout=30)
        return created


def holds_nothing(server: ServerThread, execution_id: str) -> bool:
    """No lease on the execution, and on the embedded engine no worker slot."""

    async def lease_of() -> object:
        async with server.server.store.transaction(write=False) as transaction:
            return await transaction.get_lease(execution_id)

    engine = server.server.engine
    is_slot_free = not isinstance(engine, EmbeddedEngine) or engine.running_count == 0
    return server.run(lease_of()) is None and is_slot_free
