"""Printing an execution as a conversation, live: you / agent / tool lines.

The same renderer serves `stigmer run` (follow a new execution) and
`stigmer logs` (replay one, optionally following it). It reacts to the
execution's events; secrets arrive already masked from the server.

A replay prints exactly what the live view printed: the lines a live view
prints as things happen (a tool call's arguments when it starts, its result
when it ends, `interrupted` for the calls still open when the execution
stops) are printed from a snapshot too, in the same order, so `stigmer logs
ID` shows what `stigmer run` showed.

Tool calls the policy asked a person about get two lines more, before the
call's own: `tool NAME(ARGS) waits for approval` when it is asked, and the
decision (`tool NAME approved by local`, `... rejected by local: COMMENT`)
when it is made. Both are printed once per call, whether they come from the
call's own updates, the approval events, or a snapshot's recorded decision.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from google.protobuf import json_format, struct_pb2
from rich.console import Console
from rich.text import Text

from stigmer.api.v1 import execution_pb2
from stigmer.resources.execution_events import TERMINAL_PHASES, phase_name

Event = execution_pb2.ExecutionEvent
MAX_RESULT_CHARS = 400
_OPEN_TOOL_CALL_STATES = (
    execution_pb2.TOOL_CALL_STATUS_PENDING,
    execution_pb2.TOOL_CALL_STATUS_RUNNING,
    execution_pb2.TOOL_CALL_STATUS_WAITING_APPROVAL,
)
# How a decision reads after the tool's name.
DECISION_WORDS = {
    execution_pb2.APPROVAL_ACTION_APPROVE: "approved",
    execution_pb2.APPROVAL_ACTION_APPROVE_ALL: "approved with its later calls",
    execution_pb2.APPROVAL_ACTION_SKIP: "skipped",
    execution_pb2.APPROVAL_ACTION_REJECT: "rejected",
    execution_pb2.APPROVAL_ACTION_EDIT: "edited",
}
_ENDED_TOOL_CALL_STATES = (
    execution_pb2.TOOL_CALL_STATUS_COMPLETED,
    execution_pb2.TOOL_CALL_STATUS_FAILED,
    execution_pb2.TOOL_CALL_STATUS_INTERRUPTED,
)


def _plain_numbers(value: object) -> object:
    # A protobuf Struct holds every number as a double: 3 is shown as 3, not 3.0.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _plain_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain_numbers(item) for item in value]
    return value


def _struct_text(struct: struct_pb2.Struct) -> str:
    # Sorted: a Struct keeps no key order, and the live view and a replay
    # must print the same line.
    arguments = _plain_numbers(json_format.MessageToDict(struct))
    return json.dumps(arguments, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _args(call: execution_pb2.ToolCall) -> str:
    return _struct_text(call.args)


def decision_text(approval: execution_pb2.ToolApproval) -> str:
    """`approved by local`, `rejected by local: not now`, `edited by local: {...}`."""
    text = DECISION_WORDS.get(approval.action, "decided")
    if approval.decided_by:
        text += f" by {approval.decided_by}"
    if approval.action == execution_pb2.APPROVAL_ACTION_EDIT and approval.HasField("edited_args"):
        text += f": {_struct_text(approval.edited_args)}"
    if approval.comment:
        text += f": {_short(approval.comment)}"
    return text


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_RESULT_CHARS else text[: MAX_RESULT_CHARS - 1] + "…"


class ConversationPrinter:
    """Prints an execution's conversation from its events or a snapshot.

    `before_output` is called before anything is printed (the live view
    clears its spinner line there).
    """

    def __init__(
        self, console: Console, *, before_output: Callable[[], None] | None = None
    ) -> None:
        self.console = console
        self._before_output = before_output
        self._is_line_open = False
        self._is_prefix_pending = False
        # Every tool call seen, in the order first seen, with its last status.
        self._tool_calls: dict[str, execution_pb2.ToolCall] = {}
        self._shown_tool_states: dict[str, int] = {}
        # The calls whose approval request, and whose decision, are printed.
        self._shown_requests: set[str] = set()
        self._shown_decisions: set[str] = set()

    @property
    def is_line_open(self) -> bool:
        """True while the agent's streamed text has no line end yet."""
        return self._is_line_open

    def _print(self, *objects: Text, end: str = "\n") -> None:
        if self._before_output is not None:
            self._before_output()
        self.console.print(*objects, end=end)

    def _line(self, text: Text) -> None:
        self._end_line()
        self._is_prefix_pending = False
        self._print(text)

    def _end_line(self) -> None:
        if self._is_line_open:
            self._print()
            self._is_line_open = False

    def end_line(self) -> None:
        """Ends an open line of streamed text (before printing elsewhere)."""
        self._end_line()

    def message(self, message: execution_pb2.ExecutionMessage) -> None:
        kind = message.type
        if kind == execution_pb2.MESSAGE_TYPE_HUMAN:
            self._line(Text.assemble(("you: ", "bold cyan"), message.content))
        elif kind == execution_pb2.MESSAGE_TYPE_AI:
            self._end_line()
            # The "agent:" prefix waits for the first text: a turn that only
            # calls tools prints no empty line.
            self._is_prefix_pending = True
            if message.content:
                self.delta(message.content)
        elif kind == execution_pb2.MESSAGE_TYPE_SYSTEM:
            self._line(Text.assemble(("system: ", "bold yellow"), message.content))

    def delta(self, text: str) -> None:
        if not text:
            return
        if self._is_prefix_pending:
            self._end_line()
            self._print(Text("agent: ", style="bold green"), end="")
            self._is_prefix_pending = False
        self._print(Text(text), end="")
        self._is_line_open = True

    def _approval(self, call: execution_pb2.ToolCall) -> None:
        """The approval lines of a call the policy asked about, each once."""
        is_asked = (
            call.requires_approval or call.status == execution_pb2.TOOL_CALL_STATUS_WAITING_APPROVAL
        )
        if is_asked and call.id not in self._shown_requests:
            self._shown_requests.add(call.id)
            self._line(
                Text.assemble(
                    ("  tool ", "yellow"), f"{call.name}({_args(call)}) waits for approval"
                )
            )
        action = call.approval.action
        if action != execution_pb2.APPROVAL_ACTION_UNSPECIFIED and call.id not in (
            self._shown_decisions
        ):
            self._shown_decisions.add(call.id)
            self._line(
                Text.assemble(("  tool ", "yellow"), f"{call.name} {decision_text(call.approval)}")
            )

    def approval_requested(self, pending: execution_pb2.PendingApproval) -> None:
        known = self._tool_calls.get(pending.tool_call_id)
        call = execution_pb2.ToolCall()
        if known is not None:
            call.CopyFrom(known)
        else:
            call.id, call.name, call.server = pending.tool_call_id, pending.tool, pending.server
            call.args.CopyFrom(pending.args)
            call.status = execution_pb2.TOOL_CALL_STATUS_WAITING_APPROVAL
        call.requires_approval = True
        self.tool_call(call)

    def approval_decided(self, decided: execution_pb2.ExecutionEvent.ApprovalDecided) -> None:
        known = self._tool_calls.get(decided.tool_call_id)
        if known is None:
            return
        call = execution_pb2.ToolCall()
        call.CopyFrom(known)
        call.requires_approval = True
        call.approval.CopyFrom(decided.approval)
        self.tool_call(call)

    def tool_call(self, call: execution_pb2.ToolCall) -> None:
        self._tool_calls[call.id] = call
        self._approval(call)
        shown = self._shown_tool_states.get(call.id)
        if shown == call.status:
            return
        self._shown_tool_states[call.id] = call.status
        has_run = call.status == execution_pb2.TOOL_CALL_STATUS_RUNNING or (
            call.status in _ENDED_TOOL_CALL_STATES and call.started_at.seconds > 0
        )
        if has_run and shown != execution_pb2.TOOL_CALL_STATUS_RUNNING:
            # A call seen ended without having been seen running (a replay)
            # gets the line the live view printed when it started, first.
            self._line(Text.assemble(("  tool ", "magenta"), f"{call.name}({_args(call)})"))
        if call.status == execution_pb2.TOOL_CALL_STATUS_COMPLETED:
            self._line(
                Text.assemble(("  tool ", "magenta"), f"{call.name} → ", _short(call.result))
            )
        elif call.status == execution_pb2.TOOL_CALL_STATUS_FAILED:
            self._line(
                Text.assemble(("  tool ", "red"), f"{call.name} failed: ", _short(call.error))
            )
        elif call.status == execution_pb2.TOOL_CALL_STATUS_INTERRUPTED:
            self._line(Text.assemble(("  tool ", "red"), f"{call.name} interrupted"))

    def context_summarized(self, summary: execution_pb2.ContextSummary) -> None:
        # The summary itself is one of the messages after.
        replaced = summary.messages_before - summary.messages_after + 1
        self._line(
            Text.assemble(
                ("  context ", "blue"),
                f"summarized {replaced} older messages by {summary.model}: "
                f"{summary.tokens_before} → {summary.tokens_after} tokens of a "
                f"{summary.context_window}-token window",
            )
        )

    def _phase_changed(self, phase: int) -> None:
        if phase not in TERMINAL_PHASES or phase == execution_pb2.EXECUTION_PHASE_COMPLETED:
            return
        # The execution stopped with these calls open: they end interrupted,
        # as the state (and so a replay) records them.
        for call in list(self._tool_calls.values()):
            if call.status in _OPEN_TOOL_CALL_STATES:
                interrupted = execution_pb2.ToolCall()
                interrupted.CopyFrom(call)
                interrupted.status = execution_pb2.TOOL_CALL_STATUS_INTERRUPTED
                self.tool_call(interrupted)

    def snapshot(self, execution: execution_pb2.AgentExecution) -> None:
        calls = {call.id: call for call in execution.status.tool_calls}
        summaries = sorted(execution.status.context, key=lambda s: s.message_index)
        for index, message in enumerate(execution.status.messages):
            while summaries and summaries[0].message_index <= index:
                self.context_summarized(summaries.pop(0))
            if message.type == execution_pb2.MESSAGE_TYPE_TOOL:
                call = calls.get(message.tool_call_id)
                if call is not None:
                    self.tool_call(call)
            else:
                self.message(message)
        for summary in summaries:
            self.context_summarized(summary)
        for call in execution.status.tool_calls:
            if call.id not in self._shown_tool_states:
                self.tool_call(call)

    def event(self, event: Event) -> None:
        change = event.WhichOneof("change")
        if change == "snapshot":
            self.snapshot(event.snapshot)
        elif change == "message_added":
            self.message(event.message_added)
        elif change == "message_delta":
            self.delta(event.message_delta.text)
        elif change == "tool_call_updated":
            self.tool_call(event.tool_call_updated)
        elif change == "phase_changed":
            self._phase_changed(event.phase_changed.phase)
        elif change == "context_summarized":
            self.context_summarized(event.context_summarized)
        elif change == "approval_requested":
            self.approval_requested(event.approval_requested)
        elif change == "approval_decided":
            self.approval_decided(event.approval_decided)

    def events(self, events: Iterable[Event]) -> None:
        for event in events:
            self.event(event)

    def ending(self, execution: execution_pb2.AgentExecution) -> None:
        self._end_line()
        status = execution.status
        phase = phase_name(status.phase)
        style = {
            "COMPLETED": "green",
            "FAILED": "red",
            "CANCELLED": "yellow",
            "TERMINATED": "yellow",
        }.get(phase, "")
        usage = status.usage
        details = (
            f"{execution.metadata.id}, tokens in/out {usage.input_tokens}/{usage.output_tokens}"
        )
        if usage.cost_micros:
            details += (
                f", cost ${usage.cost_micros // 1_000_000}.{usage.cost_micros % 1_000_000:06d}"
            )
        if status.started_at.seconds and status.completed_at.seconds:
            elapsed = status.completed_at.ToDatetime() - status.started_at.ToDatetime()
            details += f", {elapsed.total_seconds():.1f}s"
        line = Text.assemble((phase, f"bold {style}"), f" ({details})")
        if status.error and phase != "COMPLETED":
            line.append(f": {status.error}")
        self._print(line)
