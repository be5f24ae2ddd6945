"""Runs stay bounded: a huge tool result is cut when recorded (and kept
once), a model stream cut mid-answer fails the execution, and an agent's
own deadlines bound its tool calls. Both engines, over SQLite."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import stigmer
from stigmer.api.v1 import execution_pb2
from stigmer.client import Client
from stigmer.errors import InvalidArgument
from stigmer.resources.execution_events import COMPLETED, FAILED
from stigmer.runtime.tool_results import DEFAULT_MAX_BYTES
from stigmer.testing.scripted_model import Reply, ScriptedModel, ToolCallStep
from tests.agents import PLAIN_AGENT
from tests.waiting import wait_for_end

pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
SOURCE = str(Path(stigmer.__file__).resolve().parents[1])
# What a gRPC client reads by default.
DEFAULT_MAX_RECEIVE_BYTES = 4 * 1024 * 1024


def _tools_agent(deadlines: str = "") -> str:
    return f"""\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata: {{name: Reader}}
spec:
  instructions: You read large things with your tools.{deadlines}
  mcp_servers:
    - name: tools
      stdio:
        command: {sys.executable}
        args: ["-m", "stigmer.testing.mcp_server"]
        env: {{PYTHONPATH: {SOURCE}}}
"""


# The MCP SDK takes some 20 s on a busy machine to pass 20 MB over stdio;
# once is enough, and the cut is the same code on both engines (the sink).
@pytest.mark.parametrize("engine", ["embedded"], indirect=True)
def test_a_20_mb_tool_result_is_cut_marked_kept_once_and_the_execution_stays_readable(
    client: Client, model: ScriptedModel
) -> None:
    client.apply(_tools_agent())
    model.add(
        Reply(tool_calls=(ToolCallStep("repeat", {"text": "0123456789", "times": 2_000_000}),)),
        Reply(content="That was long."),
    )

    started = client.run("reader", "Read it all")
    final = client.wait(started.metadata.id, timeout=180)

    assert final.status.phase == COMPLETED, final.status.error
    (call,) = final.status.tool_calls
    assert len(call.result.encode()) <= DEFAULT_MAX_BYTES
    assert call.result.startswith("0123456789" * 100)
    kept = len(call.result.rsplit("\n", 1)[0])
    assert call.result.endswith(f"[result cut: {20_000_000 - kept:,} of 20,000,000 bytes left out]")
    (tool_message,) = [
        m for m in final.status.messages if m.type == execution_pb2.MESSAGE_TYPE_TOOL
    ]
    assert (tool_message.tool_call_id, tool_message.content) == (call.id, "")
    # The model read what the execution recorded.
    assert model.requests[1]["messages"][-1]["content"] == call.result
    assert final.ByteSize() < 2 * DEFAULT_MAX_BYTES
    updates = list(client.subscribe(started.metadata.id, after_sequence=1))
    assert sum(u.ByteSize() for u in updates) < 3 * DEFAULT_MAX_BYTES
    assert final.ByteSize() < DEFAULT_MAX_RECEIVE_BYTES


def test_a_model_stream_cut_mid_answer_fails_the_execution(
    client: Client, model: ScriptedModel
) -> None:
    client.apply(PLAIN_AGENT)
    model.add(Reply(content="The answer is forty", is_cut=True))

    started = client.run("greeter", "What is the answer?")
    final = wait_for_end(client, started.metadata.id)

    assert final.status.phase == FAILED
    assert "ended the answer before it was finished" in final.status.error
    assert "finish_reason" in final.status.error


def test_an_agent_tool_call_deadline_bounds_its_tool_calls(
    client: Client, model: ScriptedModel
) -> None:
    client.apply(_tools_agent("\n  deadlines: {tool_call_seconds: 1}"))
    model.add(
        Reply(tool_calls=(ToolCallStep("sleep", {"seconds": 30}),)),
        Reply(content="The tool took too long."),
    )

    started = client.run("reader", "Sleep")
    final = wait_for_end(client, started.metadata.id)

    assert final.status.phase == COMPLETED, final.status.error
    (call,) = final.status.tool_calls
    assert call.status == execution_pb2.TOOL_CALL_STATUS_FAILED
    assert "no answer within 1 s" in call.error


@pytest.mark.parametrize(
    ("field", "value"), [("model_call_seconds", 601), ("tool_call_seconds", -1)]
)
def test_agent_deadlines_out_of_range_are_invalid_argument_naming_the_field(
    client: Client, field: str, value: int
) -> None:
    with pytest.raises(InvalidArgument) as raised:
        client.apply(_tools_agent(f"\n  deadlines: {{{field}: {value}}}"))
    assert [v.field for v in raised.value.violations] == [f"spec.deadlines.{field}"]
