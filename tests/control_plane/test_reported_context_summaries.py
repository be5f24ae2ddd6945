"""A worker's report of a context summary is checked like its other events:
counts that cannot be are INVALID_ARGUMENT naming the field, and nothing of
the report is applied."""

from __future__ import annotations

import pytest

from stigmer.api.v1 import execution_pb2
from stigmer.errors import InvalidArgument
from stigmer.resources.execution_events import (
    apply_event,
    context_summarized_event,
    usage_event,
)
from stigmer.resources.reported_events import check_reported_events


@pytest.mark.parametrize(
    ("summary", "field"),
    [
        (
            execution_pb2.ContextSummary(tokens_before=-1),
            "events[1].context_summarized.tokens_before",
        ),
        (
            execution_pb2.ContextSummary(message_index=-3),
            "events[1].context_summarized.message_index",
        ),
        (
            execution_pb2.ContextSummary(messages_before=2, kept_messages=3),
            "events[1].context_summarized.kept_messages",
        ),
    ],
)
def test_impossible_summary_figures_are_invalid_naming_the_field(
    summary: execution_pb2.ContextSummary, field: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        check_reported_events(
            "aex-1",
            [
                usage_event(execution_pb2.Usage(input_tokens=1, output_tokens=1)),
                context_summarized_event(summary),
            ],
        )
    assert refused.value.facts["field"] == field


def test_a_summary_with_its_figures_is_accepted_and_applied_to_status_context() -> None:
    summary = execution_pb2.ContextSummary(
        tokens_before=1800, tokens_after=900, messages_before=7, messages_after=3, kept_messages=1
    )
    event = context_summarized_event(summary)
    check_reported_events("aex-1", [event])
    execution = execution_pb2.AgentExecution()

    apply_event(execution, event, sequence=4)

    (recorded,) = execution.status.context
    assert (recorded.tokens_before, recorded.kept_messages) == (1800, 1)
    assert recorded.at == event.at
    assert execution.status.last_sequence == 4
