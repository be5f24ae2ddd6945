"""What the console's forms do: run an agent, cancel, decide on a tool call,
pause, resume, terminate or recover an execution.

Each is a plain HTML form POST answered with a 303 back to the page, which
shows the outcome once (a notice): the buttons work without JavaScript, and
a reload never posts twice. A server that does not serve an RPC yet answers
UNIMPLEMENTED, shown as such rather than as a failure of the console.

Approvals and the lifecycle RPCs are called through the generated stubs on
the SDK's channel, with the SDK's error mapping: the request messages are
the API's own (execution.proto).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any, TypeVar
from urllib.parse import quote

import grpc
from google.protobuf.struct_pb2 import Struct
from starlette.requests import Request
from starlette.responses import Response

from stigmer.api.v1 import execution_pb2, execution_pb2_grpc
from stigmer.client.aio import AsyncClient
from stigmer.client.rpc_errors import error_from_rpc
from stigmer.console.app import client_of, describe_error, redirect_with_notice
from stigmer.errors import InvalidArgument, StigmerError, Unauthenticated

T = TypeVar("T")
APPROVAL_ACTIONS = {
    "approve": execution_pb2.APPROVAL_ACTION_APPROVE,
    "approve_all": execution_pb2.APPROVAL_ACTION_APPROVE_ALL,
    "skip": execution_pb2.APPROVAL_ACTION_SKIP,
    "reject": execution_pb2.APPROVAL_ACTION_REJECT,
    "edit": execution_pb2.APPROVAL_ACTION_EDIT,
}
LIFECYCLE_ACTIONS = {
    "pause": "Pause",
    "resume": "Resume",
    "terminate": "Terminate",
    "recover": "Recover",
}
MAX_REASON_CHARS = 1024
MAX_COMMENT_CHARS = 65536


async def _called(client: AsyncClient, call: Awaitable[T]) -> T:
    try:
        return await call
    except grpc.RpcError as error:
        raise error_from_rpc(error, client.address, is_tls=client.connection.is_tls) from None


def _commands(client: AsyncClient) -> Any:
    return execution_pb2_grpc.AgentExecutionCommandControllerStub(client.channel)


def _execution_url(execution_id: str) -> str:
    return f"/executions/{quote(execution_id, safe='')}"


async def run_agent(request: Request) -> Response:
    form = await request.form()
    slug = request.path_params["slug"]
    message = str(form.get("message", "")).strip()
    session = str(form.get("session", "")).strip()
    back = f"/agents/{quote(slug, safe='')}"
    if not message:
        return redirect_with_notice(back, "message: write what the agent should do")
    try:
        started = await client_of(request).run(slug, message, session=session)
    except Unauthenticated:
        raise
    except StigmerError as error:
        return redirect_with_notice(back, f"not started: {describe_error(error)}")
    return redirect_with_notice(_execution_url(started.metadata.id), "started")


async def cancel(request: Request) -> Response:
    execution_id = request.path_params["id"]
    form = await request.form()
    reason = str(form.get("reason", ""))[:MAX_REASON_CHARS] or "cancelled from the console"
    try:
        await client_of(request).cancel(execution_id, reason)
    except Unauthenticated:
        raise
    except StigmerError as error:
        return redirect_with_notice(
            _execution_url(execution_id), f"cancel: {describe_error(error)}"
        )
    return redirect_with_notice(_execution_url(execution_id), "cancel requested")


def _edited_args(text: str) -> Struct:
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidArgument.for_field("edited_args", f"not JSON: {error.msg}") from None
    if not isinstance(parsed, dict):
        raise InvalidArgument.for_field("edited_args", "must be a JSON object")
    edited = Struct()
    edited.update(parsed)
    return edited


async def submit_approval(request: Request) -> Response:
    execution_id = request.path_params["id"]
    back = _execution_url(execution_id)
    form = await request.form()
    action_name = str(form.get("action", ""))
    client = client_of(request)
    try:
        if action_name not in APPROVAL_ACTIONS:
            raise InvalidArgument.for_field(
                "action", f"must be one of {', '.join(APPROVAL_ACTIONS)}"
            )
        approval = execution_pb2.SubmitApprovalRequest(
            execution_id=execution_id,
            tool_call_id=request.path_params["call_id"],
            action=APPROVAL_ACTIONS[action_name],
            comment=str(form.get("comment", ""))[:MAX_COMMENT_CHARS],
        )
        if action_name == "edit":
            approval.edited_args.CopyFrom(_edited_args(str(form.get("edited_args", ""))))
        await _called(client, _commands(client).SubmitApproval(approval, timeout=client.timeout))
    except Unauthenticated:
        raise
    except StigmerError as error:
        return redirect_with_notice(back, f"{action_name or 'decision'}: {describe_error(error)}")
    return redirect_with_notice(back, f"{action_name.replace('_', ' ')}: sent")


async def change_lifecycle(request: Request) -> Response:
    execution_id = request.path_params["id"]
    action = request.path_params["action"]
    back = _execution_url(execution_id)
    method = LIFECYCLE_ACTIONS.get(action)
    if method is None:
        return redirect_with_notice(back, f"unknown action {action!r}")
    form = await request.form()
    lifecycle = execution_pb2.ExecutionLifecycleRequest(
        id=execution_id, reason=str(form.get("reason", ""))[:MAX_REASON_CHARS]
    )
    client = client_of(request)
    try:
        rpc = getattr(_commands(client), method)
        await _called(client, rpc(lifecycle, timeout=client.timeout))
    except Unauthenticated:
        raise
    except StigmerError as error:
        return redirect_with_notice(back, f"{action}: {describe_error(error)}")
    return redirect_with_notice(back, f"{action}: requested")
