"""Context that never overflows, on both engines: a session whose history
grows past a small context window keeps completing, every request the model
receives (the agent's and the summaries') stays under the window with every
tool call beside its result, the summaries are recorded in status.context,
and later executions start from them; with summarization off, a conversation
over the window fails before the model is called."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import stigmer
from stigmer.api.v1 import execution_pb2
from stigmer.client import Client
from stigmer.engine.temporal_dev_server import TemporalDevServer
from stigmer.engine.temporal_engine import TemporalOptions
from stigmer.resources.execution_events import COMPLETED, FAILED
from stigmer.runtime.contract import ContextSettings
from stigmer.runtime.summarize import SUMMARY_PREFIX
from stigmer.testing.cli import Cli
from stigmer.testing.scripted_model import Reply, ScriptedModel, ToolCallStep
from stigmer.testing.server import ServerThread
from stigmer.testing.worker import WorkerThread
from tests.backends import HEARTBEAT_SECONDS, engine_options, model_settings

pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)

WINDOW = 2000  # tokens
SUMMARY_MODEL = "summarizer"
CONTEXT = ContextSettings(window=WINDOW, summary_model=SUMMARY_MODEL)
SOURCE = str(Path(stigmer.__file__).resolve().parents[1])
SUMMARY = "The user asked several times for a long text; the repeat tool produced each."
INSTRUCTIONS = "You write long texts with the repeat tool."
TOOL_TEXT = "abcdefghij"
TOOL_TIMES = 400  # a 4,000-character result: ~1,000 tokens a turn


def _agent(run_config: str = "") -> str:
    return f"""\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata: {{name: Writer}}
spec:
  instructions: {INSTRUCTIONS}{run_config}
  mcp_servers:
    - name: tools
      stdio:
        command: {sys.executable}
        args: ["-m", "stigmer.testing.mcp_server"]
        env: {{PYTHONPATH: {SOURCE}}}
"""


@pytest.fixture
def server(
    store_url: str, model: ScriptedModel, engine: str, request: pytest.FixtureRequest
) -> Iterator[ServerThread]:
    """The server with a small context window, on the test's engine."""
    options = replace(engine_options(model.base_url), context=CONTEXT)
    if engine == "embedded":
        with ServerThread(store_url, engine=options) as running:
            yield running
        return
    temporal_server: TemporalDevServer = request.getfixturevalue("temporal_server")
    queue: str = request.getfixturevalue("task_queue")
    temporal = TemporalOptions(
        address=temporal_server.address, task_queue=queue, heartbeat_seconds=HEARTBEAT_SECONDS
    )
    with (
        ServerThread(store_url, engine=options, temporal=temporal) as running,
        WorkerThread(
            running.address,
            temporal_server.address,
            model_settings(model.base_url),
            task_queue=queue,
            context=CONTEXT,
        ),
    ):
        yield running


def _is_summary_request(request: dict[str, Any]) -> bool:
    first = request["messages"][0]
    return bool(first["role"] == "system" and first["content"].startswith("You summarize"))


def _writer(request: dict[str, Any]) -> Reply:
    """Summaries for summary requests; otherwise a tool call per human message, then an answer."""
    if _is_summary_request(request):
        return Reply(content=SUMMARY)
    if request["messages"][-1]["role"] == "tool":
        return Reply(content="Here is your text.")
    return Reply(tool_calls=(ToolCallStep("repeat", {"text": TOOL_TEXT, "times": TOOL_TIMES}),))


def _wire_tokens(request: dict[str, Any]) -> int:
    """The request as sent, counted by the documented estimate (characters / 4
    rounded up, 4 a message, the tool schemas, 3 for the reply)."""
    total = 3
    if request.get("tools"):
        functions = [tool["function"] for tool in request["tools"]]
        schemas = [
            {"name": f["name"], "description": f["description"], "parameters": f["parameters"]}
            for f in functions
        ]
        total += math.ceil(len(json.dumps(schemas)) / 4)
    for message in request["messages"]:
        text = message.get("content") or ""
        for call in message.get("tool_calls") or ():
            arguments = json.dumps(json.loads(call["function"]["arguments"]))
            text += call["function"]["name"] + arguments
        total += math.ceil(len(text) / 4) + 4
    return total


def _assert_pairs_intact(request: dict[str, Any]) -> None:
    """Every AI message that asked for tools is followed by exactly their
    results, and no tool result stands anywhere else."""
    messages = [m for m in request["messages"] if m["role"] != "system"]
    index = 0
    while index < len(messages):
        message = messages[index]
        assert message["role"] != "tool", f"a tool result without its call at {index}"
        index += 1
        calls = message.get("tool_calls") or []
        if calls:
            results = messages[index : index + len(calls)]
            assert [r["role"] for r in results] == ["tool"] * len(calls), request
            assert {r["tool_call_id"] for r in results} == {c["id"] for c in calls}
            index += len(calls)


# Four executions, each with its tool server and (on Temporal) a workflow.
@pytest.mark.timeout(360)
def test_a_session_past_the_window_completes_under_it_and_starts_from_the_summary(
    client: Client, model: ScriptedModel, server: ServerThread, tmp_path: Path
) -> None:
    client.apply(_agent())
    model.reply_with(_writer)

    first = client.run("writer", "Request number 1: write me a long text, please.")
    ended = [client.wait(first.metadata.id, timeout=120)]
    session = ended[0].status.session_id
    for number in range(2, 5):
        started = client.run(
            "writer", f"Request number {number}: write me a long text, please.", session=session
        )
        ended.append(client.wait(started.metadata.id, timeout=120))

    for execution in ended:
        assert execution.status.phase == COMPLETED, execution.status.error
    # The session's history is far past the window: everything recorded, by the same count.
    recorded = sum(len(m.content) for e in ended for m in e.status.messages) + sum(
        len(c.result) for e in ended for c in e.status.tool_calls
    )
    assert recorded / 4 > 1.5 * WINDOW
    assert model.requests, "the model was never called"
    latest_humans = []
    for request in model.requests:
        assert _wire_tokens(request) <= WINDOW, request
        _assert_pairs_intact(request)
        if not _is_summary_request(request):
            # The system prompt and the latest human message are never summarized away.
            assert request["messages"][0] == {"role": "system", "content": INSTRUCTIONS}
            humans = [
                m["content"]
                for m in request["messages"]
                if m["role"] == "user" and m["content"].startswith("Request number")
            ]
            assert humans, request
            latest_humans.append(humans[-1])
    assert sorted(set(latest_humans)) == [
        f"Request number {n}: write me a long text, please." for n in range(1, 5)
    ]
    assert latest_humans == sorted(latest_humans)
    summaries = [summary for e in ended for summary in e.status.context]
    assert summaries, "nothing was summarized"
    for summary in summaries:
        assert summary.summary == SUMMARY
        assert summary.model == SUMMARY_MODEL
        assert summary.context_window == WINDOW
        assert summary.token_counter == "estimate"
        assert summary.tokens_before > 0.85 * WINDOW
        assert summary.tokens_after <= 0.60 * WINDOW
        assert summary.messages_after < summary.messages_before
        assert 0 <= summary.kept_messages < summary.messages_before
        assert summary.HasField("at")
    # A long transcript is summarized in parts, one request each.
    assert sum(1 for r in model.requests if _is_summary_request(r)) >= len(summaries)
    assert {r["model"] for r in model.requests if _is_summary_request(r)} == {SUMMARY_MODEL}
    assert {r["model"] for r in model.requests if not _is_summary_request(r)} == {"scripted"}
    # Summary calls count in the executions' usage like every other model call.
    reported = Reply().input_tokens * len(model.requests)
    assert sum(e.status.usage.input_tokens for e in ended) == reported
    # The last execution's first model call starts from a summary, not from the first request.
    last_id = ended[-1].metadata.id
    agent_requests = [r for r in model.requests if not _is_summary_request(r)]
    last_first = next(r for r in agent_requests if "Request number 4" in json.dumps(r["messages"]))
    texts = [m.get("content") or "" for m in last_first["messages"]]
    assert any(text.startswith(SUMMARY_PREFIX) for text in texts), texts
    assert not any("Request number 1:" in text for text in texts)
    # What subscribers replay includes the summary event.
    replayed = [
        update.event
        for update in client.subscribe(last_id, after_sequence=1)
        if update.event.WhichOneof("change") == "context_summarized"
    ]
    assert [event.context_summarized for event in replayed] == list(ended[-1].status.context)
    # People see them too: `stigmer describe` lists them, `stigmer logs` places them.
    summarized = next(e for e in ended if e.status.context)
    cli = Cli.isolated(tmp_path, {"SERVER": server.address}, cwd=tmp_path)
    described = cli("describe", "execution", summarized.metadata.id)
    assert described.exit_code == 0, described.stderr
    assert f"Context Summaries ({len(summarized.status.context)})" in described.stdout
    logs = cli("logs", summarized.metadata.id)
    assert logs.exit_code == 0, logs.stderr
    assert f"by {SUMMARY_MODEL}:" in logs.stdout
    assert f"tokens of a {WINDOW}-token window" in logs.stdout


def test_with_summarization_off_a_conversation_over_the_window_fails_before_the_call(
    client: Client, model: ScriptedModel
) -> None:
    client.apply(_agent("\n  run_config: {summarization: SUMMARIZATION_OFF}"))
    model.reply_with(_writer)

    started = client.run("writer", "Read this: " + "x" * (4 * WINDOW + 400))
    final = client.wait(started.metadata.id, timeout=120)

    assert final.status.phase == FAILED
    error = final.status.error
    assert "more than the model's context window of 2000 tokens" in error, error
    assert "summarization is off" in error
    assert "the model was not called" in error
    assert model.requests == []
    assert not final.status.context
    assert not [m for m in final.status.messages if m.type == execution_pb2.MESSAGE_TYPE_AI]


def test_with_summarization_on_a_human_message_over_the_window_fails_clearly(
    client: Client, model: ScriptedModel
) -> None:
    client.apply(_agent())
    model.reply_with(_writer)

    started = client.run("writer", "Read this: " + "x" * (4 * WINDOW + 400))
    final = client.wait(started.metadata.id, timeout=120)

    assert final.status.phase == FAILED
    assert "more than the model's context window of 2000 tokens" in final.status.error
    assert model.requests == []
