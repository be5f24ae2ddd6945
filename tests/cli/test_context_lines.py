"""`stigmer logs` shows where older turns were summarized, live and on replay."""

from __future__ import annotations

import io

from rich.console import Console

from stigmer.api.v1 import execution_pb2
from stigmer.cli.conversation import ConversationPrinter
from stigmer.resources.execution_events import context_summarized_event

SUMMARY = execution_pb2.ContextSummary(
    tokens_before=1800,
    tokens_after=900,
    messages_before=7,
    messages_after=3,
    summary="earlier",
    model="small-model",
    message_index=2,
    kept_messages=1,
    context_window=2000,
)
LINE = (
    "context summarized 5 older messages by small-model: 1800 → 900 tokens of a 2000-token window"
)


def _printed(show: object) -> str:
    output = io.StringIO()
    printer = ConversationPrinter(Console(file=output, width=200, color_system=None))
    if isinstance(show, execution_pb2.AgentExecution):
        printer.snapshot(show)
    else:
        printer.event(context_summarized_event(SUMMARY))
    return output.getvalue()


def test_a_summary_event_prints_one_line_with_its_figures() -> None:
    assert LINE in _printed("event")


def test_a_replayed_execution_shows_the_summary_where_it_was_made() -> None:
    execution = execution_pb2.AgentExecution()
    execution.status.messages.extend(
        [
            execution_pb2.ExecutionMessage(type=execution_pb2.MESSAGE_TYPE_HUMAN, content="hi"),
            execution_pb2.ExecutionMessage(type=execution_pb2.MESSAGE_TYPE_AI, content="one"),
            execution_pb2.ExecutionMessage(type=execution_pb2.MESSAGE_TYPE_AI, content="two"),
        ]
    )
    execution.status.context.append(SUMMARY)

    lines = [line.strip() for line in _printed(execution).splitlines()]

    assert lines == ["you: hi", "agent: one", LINE, "agent: two"]
