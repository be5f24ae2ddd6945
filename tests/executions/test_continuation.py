"""An execution's continuation read off its recorded status alone: the
conversation the model saw, and what becomes of each open call."""

from __future__ import annotations

from google.protobuf import struct_pb2

from stigmer.api.v1 import execution_pb2
from stigmer.engine.continuation import (
    INTERRUPTED_RESULT,
    has_run,
    recorded_conversation,
)
from stigmer.resources.execution_events import (
    apply_event,
    approval_decided_event,
    message_event,
    tool_call_event,
)

AI = execution_pb2.MESSAGE_TYPE_AI
TOOL = execution_pb2.MESSAGE_TYPE_TOOL
HUMAN = execution_pb2.MESSAGE_TYPE_HUMAN
S = execution_pb2


def message(kind: int, content: str = "", call_id: str = "") -> execution_pb2.ExecutionEvent:
    return message_event(
        execution_pb2.ExecutionMessage(type=kind, content=content, tool_call_id=call_id)  # type: ignore[arg-type]
    )


def call(call_id: str, status: int, **args: object) -> execution_pb2.ExecutionEvent:
    arguments = struct_pb2.Struct()
    arguments.update(args)
    return tool_call_event(
        execution_pb2.ToolCall(
            id=call_id,
            name="add",
            server="calc",
            args=arguments,
            status=status,  # type: ignore[arg-type]
            requires_approval=status == S.TOOL_CALL_STATUS_WAITING_APPROVAL,
        )
    )


def decision(call_id: str, action: int, **edited: object) -> execution_pb2.ExecutionEvent:
    approval = execution_pb2.ToolApproval(action=action, decided_by="ana", comment="not now")  # type: ignore[arg-type]
    if edited:
        approval.edited_args.update(edited)
    return approval_decided_event(call_id, approval)


def recorded(*events: execution_pb2.ExecutionEvent) -> execution_pb2.AgentExecution:
    execution = execution_pb2.AgentExecution()
    for sequence, event in enumerate(events, 1):
        apply_event(execution, event, sequence)
    return execution


def test_a_decided_turn_continues_with_each_open_call_settled_as_decided() -> None:
    execution = recorded(
        message(HUMAN, "add things"),
        message(AI, "adding"),
        call("run", S.TOOL_CALL_STATUS_WAITING_APPROVAL, a=1, b=2),
        call("free", S.TOOL_CALL_STATUS_PENDING),
        call("edit", S.TOOL_CALL_STATUS_WAITING_APPROVAL, a=1, b=1),
        call("no", S.TOOL_CALL_STATUS_WAITING_APPROVAL),
        call("free", S.TOOL_CALL_STATUS_COMPLETED),
        message(TOOL, call_id="free"),
        decision("run", S.APPROVAL_ACTION_APPROVE),
        decision("edit", S.APPROVAL_ACTION_EDIT, a=10, b=1),
        decision("no", S.APPROVAL_ACTION_REJECT),
    )
    assert has_run(execution)
    assert list(execution.status.messages[1].tool_call_ids) == ["run", "free", "edit", "no"]

    conversation = recorded_conversation(execution)

    roles = [m.role for m in conversation.continuation.conversation]
    assert roles == ["user", "assistant", "tool"]
    assistant = conversation.continuation.conversation[1]
    assert [c.id for c in assistant.tool_calls] == ["run", "free", "edit", "no"]
    assert conversation.included == (0, 1, 2)
    opened = {o.call.id: o for o in conversation.continuation.open_calls}
    assert set(opened) == {"run", "edit", "no"}
    assert opened["run"].result is None and dict(opened["run"].call.arguments) == {"a": 1, "b": 2}
    assert opened["edit"].result is None and dict(opened["edit"].call.arguments) == {
        "a": 10,
        "b": 1,
    }
    assert (opened["no"].result, opened["no"].is_recorded) == ("not now", True)


def test_a_running_call_is_never_run_again_and_empty_ai_messages_are_left_out() -> None:
    execution = recorded(
        message(HUMAN, "go"),
        message(AI),
        message(AI, "trying"),
        call("busy", S.TOOL_CALL_STATUS_RUNNING),
    )

    conversation = recorded_conversation(execution)

    assert conversation.included == (0, 2)
    (busy,) = conversation.continuation.open_calls
    assert (busy.result, busy.is_error) == (INTERRUPTED_RESULT, True)


def test_executions_recorded_before_ai_messages_named_their_calls_still_continue() -> None:
    execution = recorded(message(HUMAN, "go"))
    execution.status.messages.add(type=AI, content="")
    execution.status.tool_calls.add(
        id="old", name="add", status=S.TOOL_CALL_STATUS_COMPLETED, result="3"
    )
    execution.status.messages.add(type=TOOL, tool_call_id="old")

    conversation = recorded_conversation(execution).continuation

    assert [c.id for c in conversation.conversation[1].tool_calls] == ["old"]
    assert conversation.conversation[2].content == "3"
    assert conversation.open_calls == ()
