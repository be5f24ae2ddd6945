"""Approving tool calls from the command line and the SDK, end to end: an
agent whose tool policy asks about the MCP test server's tools, the scripted
model calling them, a real server deciding. What the model reads after each
decision is asserted on the scripted model's recorded requests."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from stigmer.api.v1 import execution_pb2
from stigmer.client import AsyncClient, Client, Decision
from stigmer.resources.execution_events import COMPLETED, WAITING_FOR_APPROVAL
from stigmer.testing.cli import COMMAND, Cli
from stigmer.testing.scripted_model import Reply, ScriptedModel, ToolCallStep
from stigmer.testing.server import ServerThread
from tests.agents import gated_tools_agent
from tests.backends import engine_options
from tests.executions.approvals import tool_results_of, wait_for_approvals
from tests.waiting import WAIT_SECONDS, wait_for_end, wait_until

ADD = ToolCallStep("add", {"a": 2, "b": 3}, id="c1")
ECHO = ToolCallStep("echo", {"text": "hello"}, id="c2")
BOTH_ASKED = ("calc/add", "calc/echo")


@pytest.fixture
def server(store_url: str, model: ScriptedModel) -> Iterator[ServerThread]:
    with ServerThread(store_url, engine=engine_options(model.base_url)) as running:
        yield running


@pytest.fixture
def client(server: ServerThread) -> Iterator[Client]:
    with Client(server.address) as connected:
        yield connected


def _run_waiting(cli: Cli, client: Client, count: int = 1) -> str:
    started = cli("run", "careful", "What is 2 + 3?", "--no-follow")
    assert started.exit_code == 0, started.stderr
    execution_id = started.stdout.strip()
    wait_for_approvals(client, execution_id, count)
    return execution_id


def test_approve_without_a_tool_call_decides_the_only_one_and_the_result_is_used(
    cli: Cli, client: Client, model: ScriptedModel
) -> None:
    client.apply(gated_tools_agent())
    model.add(Reply(content="Let me add.", tool_calls=(ADD,)), Reply(content="2 + 3 = 5"))
    execution_id = _run_waiting(cli, client)

    listed = cli("get", "executions", "--phase", "waiting_for_approval")
    approved = cli("approve", execution_id)
    final = wait_for_end(client, execution_id)
    replay = cli("logs", execution_id)

    assert listed.exit_code == 0, listed.stderr
    assert "WAITING_FOR_APPROVAL (1 call)" in listed.stdout
    assert approved.exit_code == 0, approved.stderr
    assert approved.stdout == (
        f"execution/{execution_id} tool call c1 (calc/add) approved; execution goes on\n"
    )
    assert final.status.phase == COMPLETED, final.status.error
    assert tool_results_of(model.requests[1]) == {"c1": "5"}
    (call,) = final.status.tool_calls
    assert (call.approval.action, call.approval.decided_by) == (
        execution_pb2.APPROVAL_ACTION_APPROVE,
        "local",
    )
    assert replay.exit_code == 0, replay.stderr
    assert replay.stdout.splitlines()[1:5] == [
        "agent: Let me add.",
        '  tool add({"a":2,"b":3}) waits for approval',
        "  tool add approved by local",
        '  tool add({"a":2,"b":3})',
    ]


def test_reject_with_a_comment_is_what_the_model_reads_as_the_result(
    cli: Cli, client: Client, model: ScriptedModel
) -> None:
    client.apply(gated_tools_agent())
    model.add(Reply(tool_calls=(ADD,)), Reply(content="I will not add."))
    execution_id = _run_waiting(cli, client)

    rejected = cli("reject", execution_id, "c1", "-m", "not now")
    final = wait_for_end(client, execution_id)

    assert rejected.exit_code == 0, rejected.stderr
    assert "tool call c1 (calc/add) rejected" in rejected.stdout
    assert final.status.phase == COMPLETED
    assert tool_results_of(model.requests[1]) == {"c1": "not now"}
    assert "  tool add rejected by local: not now" in cli("logs", execution_id).stdout
    described = cli("describe", "execution", execution_id).stdout
    assert "Approvals (1)" in described
    (row,) = [line for line in described.splitlines() if line.strip().startswith("c1 ")]
    assert row.split()[:4] == ["c1", "add", "REJECT", "local"]
    assert row.rstrip().endswith("not now")


def test_with_two_waiting_calls_the_tool_call_must_be_named_and_both_go_back_together(
    cli: Cli, client: Client, model: ScriptedModel
) -> None:
    client.apply(gated_tools_agent(ask=BOTH_ASKED))
    model.add(Reply(tool_calls=(ADD, ECHO)), Reply(content="done"))
    execution_id = _run_waiting(cli, client, count=2)

    unnamed = cli("approve", execution_id)
    skipped = cli("skip", execution_id, "c2")
    still = client.get_execution(execution_id)
    requests_while_waiting = len(model.requests)
    approved = cli("approve", execution_id)
    final = wait_for_end(client, execution_id)

    assert unnamed.exit_code == 2
    assert unnamed.stderr.strip() == (
        f"error: tool_call: execution {execution_id} waits on 2 tool calls; "
        "name one: c1 (calc/add), c2 (calc/echo)"
    )
    assert skipped.exit_code == 0, skipped.stderr
    assert skipped.stdout.rstrip().endswith("skipped; execution still waits on 1 tool call")
    assert still.status.phase == WAITING_FOR_APPROVAL
    assert requests_while_waiting == 1
    assert approved.exit_code == 0, approved.stderr
    assert "tool call c1 (calc/add) approved" in approved.stdout
    assert final.status.phase == COMPLETED
    results = tool_results_of(model.requests[1])
    assert results["c1"] == "5"
    assert "skipped" in results["c2"]


def test_a_tool_call_that_does_not_wait_exits_2_listing_those_that_do(
    cli: Cli, client: Client, model: ScriptedModel
) -> None:
    client.apply(gated_tools_agent())
    model.add(Reply(tool_calls=(ADD,)), Reply(content="done"))
    execution_id = _run_waiting(cli, client)

    wrong = cli("skip", execution_id, "c9")
    described = cli("describe", "execution", execution_id)
    waiting_logs = cli("logs", execution_id)

    assert wrong.exit_code == 2
    assert wrong.stderr.strip() == (
        f"error: tool_call: 'c9' does not wait in execution {execution_id}; waiting: c1 (calc/add)"
    )
    assert "Pending Approvals (1)" in described.stdout
    assert f"Decide: stigmer approve|reject|skip {execution_id}" in described.stdout
    assert waiting_logs.exit_code == 0, waiting_logs.stderr
    assert f"    approve: stigmer approve {execution_id} c1" in waiting_logs.stderr


def test_approve_all_lets_the_later_calls_of_that_tool_run_unasked(
    cli: Cli, client: Client, model: ScriptedModel
) -> None:
    client.apply(gated_tools_agent())
    again = ToolCallStep("add", {"a": 5, "b": 5}, id="c3")
    model.add(Reply(tool_calls=(ADD,)), Reply(tool_calls=(again,)), Reply(content="5 then 10"))
    execution_id = _run_waiting(cli, client)

    approved = cli("approve", execution_id, "--all")
    final = wait_for_end(client, execution_id)

    assert approved.exit_code == 0, approved.stderr
    assert "approved with all its later calls" in approved.stdout
    assert final.status.phase == COMPLETED, final.status.error
    assert tool_results_of(model.requests[2]) == {"c1": "5", "c3": "10"}
    assert [c.status for c in final.status.tool_calls] == [
        execution_pb2.TOOL_CALL_STATUS_COMPLETED
    ] * 2


def test_approve_with_edited_arguments_runs_the_call_with_them(
    cli: Cli, client: Client, model: ScriptedModel
) -> None:
    client.apply(gated_tools_agent())
    model.add(Reply(tool_calls=(ADD,)), Reply(content="done"))
    execution_id = _run_waiting(cli, client)

    edited = cli("approve", execution_id, "--args", '{"a": 40, "b": 2}')
    final = wait_for_end(client, execution_id)

    assert edited.exit_code == 0, edited.stderr
    assert "approved with edited arguments" in edited.stdout
    assert final.status.phase == COMPLETED
    assert tool_results_of(model.requests[1]) == {"c1": "42"}


def test_a_piped_run_prints_the_commands_that_decide_and_follows_to_the_end(
    cli: Cli, client: Client, model: ScriptedModel
) -> None:
    client.apply(gated_tools_agent())
    model.add(Reply(content="Let me add.", tool_calls=(ADD,)), Reply(content="2 + 3 = 5"))
    running = subprocess.Popen(
        [*COMMAND, "run", "careful", "What is 2 + 3?"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli.env,
        cwd=cli.cwd,
    )
    try:
        (execution,) = _listed_soon(client)
        execution_id = execution.metadata.id
        wait_for_approvals(client, execution_id)
        approved = cli("approve", execution_id, "c1")
        stdout, stderr = running.communicate(timeout=WAIT_SECONDS)
    finally:
        if running.poll() is None:
            running.kill()
            running.communicate(timeout=WAIT_SECONDS)

    assert approved.exit_code == 0, approved.stderr
    assert running.returncode == 0, stderr
    assert f"execution {execution_id} waits for approval of a tool call:" in stderr
    assert f"    approve: stigmer approve {execution_id} c1" in stderr
    assert f"    reject:  stigmer reject {execution_id} c1 -m COMMENT" in stderr
    assert f"    skip:    stigmer skip {execution_id} c1" in stderr
    assert "  tool add approved by local" in stdout.splitlines()
    assert stdout.splitlines()[-1].startswith(f"COMPLETED ({execution_id}")
    replay = cli("logs", execution_id)
    assert (replay.exit_code, replay.stdout) == (0, stdout)


def _listed_soon(client: Client) -> list[execution_pb2.AgentExecution]:
    found: list[execution_pb2.AgentExecution] = []

    def is_listed() -> bool:
        found[:] = client.list_executions()
        return bool(found)

    wait_until(is_listed, what="the run's execution")
    return found


def test_sdk_run_with_on_approval_gets_every_call_of_the_turn_at_once(
    client: Client, model: ScriptedModel
) -> None:
    client.apply(gated_tools_agent(ask=BOTH_ASKED))
    model.add(Reply(tool_calls=(ADD, ECHO)), Reply(content="done"))
    asked: list[list[str]] = []

    def decide(pending: list[execution_pb2.PendingApproval]) -> list[Decision]:
        asked.append([p.tool_call_id for p in pending])
        return [Decision.edit("c1", {"a": 1, "b": 1}), Decision.reject("c2", "no echo")]

    final = client.run("careful", "What is 2 + 3?", on_approval=decide)

    assert asked == [["c1", "c2"]]
    assert final.status.phase == COMPLETED, final.status.error
    assert tool_results_of(model.requests[1]) == {"c1": "2", "c2": "no echo"}


def test_async_sdk_awaits_an_async_callback_and_approve_all_settles_the_turn(
    server: ServerThread, model: ScriptedModel
) -> None:
    again = ToolCallStep("add", {"a": 1, "b": 2}, id="c3")
    model.add(Reply(tool_calls=(ADD, again)), Reply(content="done"))
    asked: list[list[str]] = []

    async def decide(pending: list[execution_pb2.PendingApproval]) -> list[Decision]:
        asked.append([p.tool_call_id for p in pending])
        return [Decision.approve_all(pending[0]), Decision.approve(pending[1])]

    async def run() -> execution_pb2.AgentExecution:
        async with AsyncClient(server.address) as client:
            await client.apply(gated_tools_agent())
            return await client.run("careful", "add twice", on_approval=decide)

    final = asyncio.run(run())

    assert asked == [["c1", "c3"]]
    assert final.status.phase == COMPLETED, final.status.error
    assert tool_results_of(model.requests[1]) == {"c1": "5", "c3": "3"}


def test_run_with_auto_approve_asks_nobody(cli: Cli, client: Client, model: ScriptedModel) -> None:
    client.apply(gated_tools_agent())
    model.add(Reply(tool_calls=(ADD,)), Reply(content="2 + 3 = 5"))

    done = cli("run", "careful", "What is 2 + 3?", "--auto-approve")

    assert done.exit_code == 0, done.stderr
    assert "waits for approval" not in done.stderr
    assert "  tool add → 5" in done.stdout.splitlines()


def test_a_waiting_execution_survives_a_server_restart_and_is_approved_after_it(
    store_url: str, stigmer_home: Path, tmp_path: Path, model: ScriptedModel
) -> None:
    model.add(Reply(tool_calls=(ADD,)), Reply(content="2 + 3 = 5"))
    with ServerThread(store_url, engine=engine_options(model.base_url)) as first:
        cli = Cli.isolated(stigmer_home, {"SERVER": first.address}, cwd=tmp_path)
        with Client(first.address) as client:
            client.apply(gated_tools_agent())
            execution_id = _run_waiting(cli, client)
    with ServerThread(store_url, engine=engine_options(model.base_url)) as second:
        cli = Cli.isolated(stigmer_home, {"SERVER": second.address}, cwd=tmp_path)
        with Client(second.address) as client:
            still = client.get_execution(execution_id)
            approved = cli("approve", execution_id)
            final = wait_for_end(client, execution_id)

    assert still.status.phase == WAITING_FOR_APPROVAL
    assert [p.tool_call_id for p in still.status.pending_approvals] == ["c1"]
    assert approved.exit_code == 0, approved.stderr
    assert final.status.phase == COMPLETED, final.status.error
    assert tool_results_of(model.requests[1]) == {"c1": "5"}


def test_run_o_json_in_a_pipe_prints_the_decide_commands_then_the_final_execution(
    cli: Cli, client: Client, model: ScriptedModel
) -> None:
    client.apply(gated_tools_agent())
    model.add(Reply(tool_calls=(ADD,)), Reply(content="2 + 3 = 5"))
    running = subprocess.Popen(
        [*COMMAND, "run", "careful", "What is 2 + 3?", "-o", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli.env,
        cwd=cli.cwd,
    )
    try:
        (execution,) = _listed_soon(client)
        execution_id = execution.metadata.id
        wait_for_approvals(client, execution_id)
        skipped = cli("skip", execution_id)
        stdout, stderr = running.communicate(timeout=WAIT_SECONDS)
    finally:
        if running.poll() is None:
            running.kill()
            running.communicate(timeout=WAIT_SECONDS)

    assert skipped.exit_code == 0, skipped.stderr
    assert running.returncode == 0, stderr
    assert f"    skip:    stigmer skip {execution_id} c1" in stderr
    final = json.loads(stdout)
    assert final["status"]["phase"] == "EXECUTION_PHASE_COMPLETED"
    (call,) = final["status"]["tool_calls"]
    assert call["status"] == "TOOL_CALL_STATUS_SKIPPED"


def test_sync_wait_that_leaves_calls_undecided_times_out_and_the_client_stays_usable(
    client: Client, model: ScriptedModel
) -> None:
    client.apply(gated_tools_agent())
    model.add(Reply(tool_calls=(ADD,)), Reply(content="2 + 3 = 5"))
    execution_id = client.run("careful", "What is 2 + 3?").metadata.id
    wait_for_approvals(client, execution_id)
    asked: list[list[str]] = []

    def leave_waiting(pending: list[execution_pb2.PendingApproval]) -> list[Decision]:
        asked.append([p.tool_call_id for p in pending])
        return []

    with pytest.raises(TimeoutError):
        client.wait(execution_id, timeout=3.0, on_approval=leave_waiting)
    decided = client.approve(execution_id, "c1")
    final = client.wait(execution_id, timeout=WAIT_SECONDS)

    assert asked == [["c1"]]
    assert decided.status.tool_calls[0].approval.decided_by == "local"
    assert final.status.phase == COMPLETED
