"""What the execution page reads off an execution: the timeline's spans and
which AI turn each tool call belongs to (pure functions, no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stigmer.api.v1 import execution_pb2
from stigmer.console.execution_view import timeline_view, tool_call_owners

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HUMAN, AI, TOOL = (
    execution_pb2.MESSAGE_TYPE_HUMAN,
    execution_pb2.MESSAGE_TYPE_AI,
    execution_pb2.MESSAGE_TYPE_TOOL,
)


def _queued_run_with_one_tool_call() -> execution_pb2.AgentExecution:
    """Asked at 0 s, started at 5 s (it was queued), a tool call from 7 s to
    8 s, answered at 9 s, ended at 10 s."""
    execution = execution_pb2.AgentExecution()
    status = execution.status
    status.phase = execution_pb2.EXECUTION_PHASE_COMPLETED
    status.started_at.FromDatetime(T0 + timedelta(seconds=5))
    status.completed_at.FromDatetime(T0 + timedelta(seconds=10))
    for kind, second, call_id in ((HUMAN, 0, ""), (AI, 6, ""), (TOOL, 8, "c1"), (AI, 9, "")):
        message = status.messages.add(type=kind, tool_call_id=call_id)
        message.timestamp.FromDatetime(T0 + timedelta(seconds=second))
    call = status.tool_calls.add(
        id="c1", name="add", status=execution_pb2.TOOL_CALL_STATUS_COMPLETED
    )
    call.started_at.FromDatetime(T0 + timedelta(seconds=7))
    call.completed_at.FromDatetime(T0 + timedelta(seconds=8))
    return execution


def test_a_tool_call_belongs_to_the_ai_turn_before_its_result() -> None:
    assert tool_call_owners(_queued_run_with_one_tool_call()) == {"c1": 1}


def test_the_timeline_starts_a_queued_run_when_it_starts_and_spans_model_and_tools() -> None:
    timeline = timeline_view(_queued_run_with_one_tool_call(), T0 + timedelta(days=1))

    assert [(s.kind, s.label, s.duration) for s in timeline.spans] == [
        ("model", "model call 1", "2.0 s"),
        ("tool", "tools add", "1.0 s"),
        ("model", "model call 2", "2.0 s"),
    ]
    assert [s.left_percent for s in timeline.spans] == [0.0, 40.0, 60.0]
    assert [s.width_percent for s in timeline.spans] == [40.0, 20.0, 40.0]
    assert (timeline.model_seconds, timeline.tool_seconds, timeline.total_seconds) == (
        "4.0 s",
        "1.0 s",
        "5.0 s",
    )
