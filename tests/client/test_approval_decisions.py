"""The SDK's side of approvals that needs no server: the spelling of actions,
the order decisions are submitted in, and which waiting calls a follower puts
to its callback (each once, all the calls of a turn together)."""

from __future__ import annotations

import pytest

from stigmer.api.v1 import execution_pb2
from stigmer.client import Decision
from stigmer.client.approvals import PendingRound, action_of, pending_of, submission_order
from stigmer.errors import InvalidArgument


def _waiting(
    *call_ids: str, phase: int = execution_pb2.EXECUTION_PHASE_WAITING_FOR_APPROVAL
) -> execution_pb2.AgentExecution:
    execution = execution_pb2.AgentExecution()
    execution.status.phase = phase  # type: ignore[assignment]
    for call_id in call_ids:
        execution.status.pending_approvals.add(tool_call_id=call_id, tool="add", server="calc")
    return execution


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("approve", execution_pb2.APPROVAL_ACTION_APPROVE),
        ("APPROVE_ALL", execution_pb2.APPROVAL_ACTION_APPROVE_ALL),
        ("approve-all", execution_pb2.APPROVAL_ACTION_APPROVE_ALL),
        ("APPROVAL_ACTION_SKIP", execution_pb2.APPROVAL_ACTION_SKIP),
        (execution_pb2.APPROVAL_ACTION_REJECT, execution_pb2.APPROVAL_ACTION_REJECT),
        ("edit", execution_pb2.APPROVAL_ACTION_EDIT),
    ],
)
def test_an_action_is_known_by_name_any_case_or_by_enum_value(
    spelling: str | int, expected: int
) -> None:
    assert action_of(spelling) == expected


@pytest.mark.parametrize("spelling", ["allow", "", execution_pb2.APPROVAL_ACTION_UNSPECIFIED, 99])
def test_an_unknown_action_is_invalid_argument_naming_the_field(spelling: str | int) -> None:
    with pytest.raises(InvalidArgument) as raised:
        action_of(spelling)

    assert raised.value.violations[0].field == "action"
    assert "approve, approve_all, skip, reject, edit" in raised.value.message


def test_a_decision_keeps_one_spelling_of_its_action() -> None:
    assert Decision("call_1", "APPROVE-ALL").action == "approve_all"
    assert Decision("call_1", execution_pb2.APPROVAL_ACTION_SKIP).action == "skip"  # type: ignore[arg-type]
    assert Decision.reject("call_1", "not now") == Decision("call_1", "reject", "not now")


def test_an_edit_without_arguments_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument) as raised:
        Decision("call_1", "edit")

    assert raised.value.violations[0].field == "edited_args"
    assert Decision.edit("call_1", {"a": 1}).edited_args == {"a": 1}


def test_decisions_are_submitted_approve_all_first_then_in_the_calls_order() -> None:
    pending = list(_waiting("call_1", "call_2", "call_3").status.pending_approvals)
    decisions = [
        Decision.skip("call_3"),
        Decision.reject("call_1", "no"),
        Decision.approve_all("call_2"),
    ]

    ordered = submission_order(decisions, pending)

    assert [d.tool_call_id for d in ordered] == ["call_2", "call_1", "call_3"]


def test_the_last_decision_on_a_call_wins() -> None:
    pending = list(_waiting("call_1").status.pending_approvals)

    ordered = submission_order([Decision.approve("call_1"), Decision.skip("call_1")], pending)

    assert ordered == [Decision.skip("call_1")]


def test_a_follower_is_given_every_waiting_call_of_a_turn_once() -> None:
    round_ = PendingRound()

    first = round_.take_new(_waiting("call_1", "call_2"))
    again = round_.take_new(_waiting("call_1", "call_2"))
    next_turn = round_.take_new(_waiting("call_3"))

    assert [p.tool_call_id for p in first] == ["call_1", "call_2"]
    assert again == []
    assert [p.tool_call_id for p in next_turn] == ["call_3"]


def test_calls_listed_while_the_execution_does_not_wait_are_not_asked_about() -> None:
    running = _waiting("call_1", phase=execution_pb2.EXECUTION_PHASE_IN_PROGRESS)

    assert pending_of(running) == []
    assert PendingRound().take_new(running) == []
    assert not PendingRound().needs_listing(running)
    assert PendingRound().needs_listing(_waiting())


def test_the_calls_given_out_do_not_change_with_the_followers_state() -> None:
    state = _waiting("call_1")
    (given,) = PendingRound().take_new(state)

    state.status.pending_approvals[0].tool = "echo"

    assert given.tool == "add"
