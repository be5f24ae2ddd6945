"""Roles: what each token may call, the command boundary, and the worker
boundary (a worker serves only executions the Temporal engine holds, and
every event it reports is checked)."""

from __future__ import annotations

import time

import pytest
from google.protobuf import timestamp_pb2

from stigmer.api.v1 import execution_pb2
from stigmer.client import Client
from stigmer.engine.lease_owners import TEMPORAL_LEASE_OWNER
from stigmer.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from stigmer.store.base import Lease
from stigmer.testing.scripted_model import Reply
from stigmer.worker.server_api import WorkerApiClient
from tests.agents import PLAIN_AGENT, stdio_tools_agent
from tests.auth.conftest import AuthServer

STDIO_MCP_SERVER = """\
apiVersion: agentic.stigmer.ai/v1
kind: McpServer
metadata:
  name: Toucher
spec:
  stdio:
    command: touch
    args: ["/tmp/stigmer-should-never-exist"]
"""
HTTP_MCP_SERVER = """\
apiVersion: agentic.stigmer.ai/v1
kind: McpServer
metadata:
  name: Remote Tools
spec:
  http:
    url: http://127.0.0.1:1/mcp
"""
AGENT_USING_A_REFERENCE = """\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata:
  name: Referrer
spec:
  instructions: Use the tools an admin set up for you.
  mcp_servers:
    - name: tools
      ref: toucher
"""


def _denied(error: pytest.ExceptionInfo[PermissionDenied]) -> str:
    assert error.value.facts["grpc_code"] == "PERMISSION_DENIED"
    return error.value.message


def test_developer_cannot_send_a_stdio_command_by_any_method(auth_server: AuthServer) -> None:
    with auth_server.client("developer") as developer:
        # Manifest.Apply (what `stigmer apply -f` sends)
        with pytest.raises(PermissionDenied) as refused:
            developer.apply(STDIO_MCP_SERVER)
        assert "resources[0].spec.stdio" in _denied(refused)
        assert "only an admin" in refused.value.message
        with pytest.raises(PermissionDenied) as refused:
            developer.apply(stdio_tools_agent())
        assert "resources[0].spec.mcp_servers[0].stdio" in _denied(refused)
        # The kind's own Create and Apply
        from stigmer.resources.manifests import parse_manifest

        (document,) = parse_manifest(STDIO_MCP_SERVER, "toucher.yaml")
        with pytest.raises(PermissionDenied) as refused:
            developer.create(document.resource)
        assert "spec.stdio" in _denied(refused)
        with pytest.raises(PermissionDenied):
            developer.apply(document.resource)
        assert developer.list("mcpserver") == []
        assert developer.list("agent") == []


def test_developer_uses_a_stdio_server_an_admin_applied_by_reference(
    auth_server: AuthServer,
) -> None:
    with auth_server.client("admin") as admin:
        (result,) = admin.apply(STDIO_MCP_SERVER)
        assert result.outcome == "created"
    with auth_server.client("developer") as developer:
        developer.apply(HTTP_MCP_SERVER)
        developer.apply(AGENT_USING_A_REFERENCE)
        agent = developer.get("agent", "referrer")
        assert agent.status.audit.created_by == "developer-1"
        # Changing the admin's stdio server is changing a command: refused.
        mcp = developer.get("mcpserver", "toucher")
        mcp.spec.stdio.args.append("/tmp/another")
        with pytest.raises(PermissionDenied):
            developer.update(mcp)
        # Deleting starts nothing: allowed.
        developer.delete("mcpserver", "remote-tools")


def test_viewer_reads_but_cannot_apply_run_or_manage_tokens(auth_server: AuthServer) -> None:
    with auth_server.client("admin") as admin:
        admin.apply(PLAIN_AGENT)
    with auth_server.client("viewer") as viewer:
        assert [agent.metadata.slug for agent in viewer.list("agent")] == ["greeter"]
        assert viewer.check().violations is not None
        with pytest.raises(PermissionDenied) as refused:
            viewer.apply(HTTP_MCP_SERVER)
        assert "viewer role may not call" in _denied(refused)
        with pytest.raises(PermissionDenied):
            viewer.run("greeter", "hello")
        with pytest.raises(PermissionDenied):
            viewer.delete("agent", "greeter")
        with pytest.raises(PermissionDenied):
            viewer.create_token("mine", "admin")
        with pytest.raises(PermissionDenied):
            viewer.repair(dry_run=True)


def test_developer_cannot_manage_tokens_or_repair(auth_server: AuthServer) -> None:
    with auth_server.client("developer") as developer:
        for call in (
            developer.list_tokens,
            lambda: developer.create_token("more", "admin"),
            lambda: developer.revoke_token("admin"),
            lambda: developer.repair(dry_run=True),
        ):
            with pytest.raises(PermissionDenied):
                call()


def _finished_execution(auth_server: AuthServer, model_reply: str) -> str:
    with auth_server.client("developer") as developer:
        execution = developer.run("greeter", "hello")
        done = developer.wait(execution.metadata.id)
    assert done.status.phase == execution_pb2.EXECUTION_PHASE_COMPLETED
    return str(execution.metadata.id)


def _put_temporal_lease(auth_server: AuthServer, execution_id: str) -> None:
    async def put() -> None:
        async with auth_server.server.server.store.transaction() as transaction:
            await transaction.put_lease(
                Lease(execution_id, TEMPORAL_LEASE_OWNER, time.time() + 600)
            )

    auth_server.server.run(put())


def _event(**change: object) -> execution_pb2.ExecutionEvent:
    return execution_pb2.ExecutionEvent(**change)  # type: ignore[arg-type]


def test_worker_reads_and_writes_only_executions_the_temporal_engine_holds(
    auth_server: AuthServer, model: object
) -> None:
    model.add(Reply(content="Hi!"), Reply(content="Hello again!"))  # type: ignore[attr-defined]
    with auth_server.client("admin") as admin:
        admin.apply(PLAIN_AGENT)
    held = _finished_execution(auth_server, "Hi!")
    other = _finished_execution(auth_server, "Hello again!")
    _put_temporal_lease(auth_server, held)
    with auth_server.client("worker") as worker:
        inputs = worker._run(WorkerApiClient(worker._async).run_inputs(held))
        assert inputs.execution.metadata.id == held
        for refused_call in (
            lambda: worker._run(WorkerApiClient(worker._async).run_inputs(other)),
            lambda: worker._run(
                WorkerApiClient(worker._async).run_inputs("aex-00000000000000000000000000")
            ),
            lambda: worker._run(
                WorkerApiClient(worker._async).record_events(
                    other, [_event(usage_added=execution_pb2.Usage(input_tokens=1))]
                )
            ),
        ):
            with pytest.raises(PermissionDenied) as refused:
                refused_call()
            assert "not running on a worker this token may serve" in _denied(refused)
        # A worker calls nothing but the worker API.
        for outside in (
            lambda: worker.get_execution(held),
            lambda: worker.list("agent"),
            lambda: worker.apply(HTTP_MCP_SERVER),
        ):
            with pytest.raises(PermissionDenied):
                outside()
        # Its own execution passes the checks (and is refused only for having ended).
        with pytest.raises(FailedPrecondition):
            worker._run(
                WorkerApiClient(worker._async).record_events(
                    held, [_event(usage_added=execution_pb2.Usage(input_tokens=1))]
                )
            )


def _phase(phase: int) -> execution_pb2.ExecutionEvent:
    changed = execution_pb2.ExecutionEvent.PhaseChanged(phase=phase)  # type: ignore[arg-type]
    return _event(phase_changed=changed)


def _bad_timestamp() -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=1, nanos=2_000_000_000)


@pytest.mark.parametrize(
    ("events", "error", "field"),
    [
        (
            lambda other: [_event(snapshot=other)],
            PermissionDenied,
            "events[0].snapshot",
        ),
        (
            lambda held: [_event(snapshot=held)],
            InvalidArgument,
            "events[0].snapshot",
        ),
        (
            lambda _: [_phase(0)],
            InvalidArgument,
            "events[0].phase_changed.phase",
        ),
        (
            lambda _: [
                _event(usage_added=execution_pb2.Usage()),
                _phase(99),
            ],
            InvalidArgument,
            "events[1].phase_changed.phase",
        ),
        (
            lambda _: [_phase(1)],
            InvalidArgument,
            "events[0].phase_changed.phase",
        ),
        (lambda _: [_event()], InvalidArgument, "events[0]"),
        (
            lambda _: [_event(at=_bad_timestamp(), usage_added=execution_pb2.Usage())],
            InvalidArgument,
            "events[0].at",
        ),
        (
            lambda _: [_event(message_added=execution_pb2.ExecutionMessage(type=42, content="x"))],  # type: ignore[arg-type]
            InvalidArgument,
            "events[0].message_added.type",
        ),
        (
            lambda _: [_event(tool_call_updated=execution_pb2.ToolCall(id="", status=2))],  # type: ignore[arg-type]
            InvalidArgument,
            "events[0].tool_call_updated.id",
        ),
        (
            lambda _: [
                _event(message_delta=execution_pb2.ExecutionEvent.MessageDelta(index=-1, text="x"))
            ],
            InvalidArgument,
            "events[0].message_delta.index",
        ),
    ],
    ids=[
        "foreign-snapshot",
        "own-snapshot",
        "unspecified-phase",
        "out-of-range-phase",
        "back-to-pending",
        "empty-event",
        "bad-timestamp",
        "bad-message-type",
        "tool-call-without-id",
        "negative-delta-index",
    ],
)
def test_record_events_refuses_what_a_worker_may_not_report(
    auth_server: AuthServer, model: object, events: object, error: type[Exception], field: str
) -> None:
    model.add(Reply(content="Hi!"), Reply(content="Hi!"))  # type: ignore[attr-defined]
    with auth_server.client("admin") as admin:
        admin.apply(PLAIN_AGENT)
    held = _finished_execution(auth_server, "Hi!")
    other = _finished_execution(auth_server, "Hi!")
    _put_temporal_lease(auth_server, held)
    is_foreign = field.endswith("snapshot") and error is PermissionDenied
    with auth_server.client("admin") as admin:
        target = admin.get_execution(other if is_foreign else held)
    target.status.phase = execution_pb2.EXECUTION_PHASE_PENDING
    batch = events(target)  # type: ignore[operator]
    with auth_server.client("worker") as worker, pytest.raises(error) as refused:
        worker._run(WorkerApiClient(worker._async).record_events(held, batch))
    assert field in str(refused.value)
    with auth_server.client("admin") as admin:
        after = admin.get_execution(held)
    assert after.status.phase == execution_pb2.EXECUTION_PHASE_COMPLETED
    assert after.metadata.id == held


def test_without_auth_every_call_works_as_before_and_audit_names_no_one(client: Client) -> None:
    client.apply(PLAIN_AGENT)
    agent = client.get("agent", "greeter")
    assert agent.status.audit.created_by == ""
    assert agent.status.audit.HasField("created_at")
