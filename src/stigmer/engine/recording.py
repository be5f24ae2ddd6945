"""The RunSink that records what the agent loop does as execution events.

Text deltas are coalesced (flushed every FLUSH_SECONDS and before any other
event) so a fast model does not cost one transaction per token while a
watcher still sees the answer grow live. Every text passes the secret masker
before it is stored. Streamed text is masked as one text (MaskedStream): the
last few characters wait for the next delta, so a secret split across deltas
never reaches the event log, and so neither the stored message nor what a
subscriber sees live or replays from any sequence, which are all that log.

A tool's result is masked, then capped (runtime/tool_results.py), and kept
once: in its tool call (`result`, or `error`); the TOOL message that places
it in the conversation only names the call.

A call the tool policy asks about is recorded WAITING_APPROVAL with the
model's turn; once the calls that need no one have run, each asked call
becomes a PendingApproval (approval_requested) and the execution enters
WAITING_FOR_APPROVAL. A sink continuing an execution is given its recorded
calls (`known_calls`), so running an approved call keeps its decision.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from google.protobuf import struct_pb2

from stigmer.api.v1 import execution_pb2
from stigmer.resources.execution_events import (
    WAITING_FOR_APPROVAL,
    approval_requested_event,
    message_delta_event,
    message_event,
    phase_event,
    tool_call_event,
    usage_event,
)
from stigmer.resources.secrets import MaskedStream, SecretMasker
from stigmer.runtime.contract import ToolCallRequest
from stigmer.runtime.tool_results import DEFAULT_MAX_BYTES, cap_tool_result

Event = execution_pb2.ExecutionEvent
Record = Callable[[Sequence[Event]], Awaitable[execution_pb2.AgentExecution]]
FLUSH_SECONDS = 0.05


class RecordingSink:
    def __init__(
        self,
        record: Record,
        masker: SecretMasker,
        message_count: int,
        *,
        max_tool_result_bytes: int = DEFAULT_MAX_BYTES,
        known_calls: Sequence[execution_pb2.ToolCall] = (),
    ) -> None:
        self._record = record
        self._known_calls = {call.id: call for call in known_calls}
        self._masker = masker
        self._max_tool_result_bytes = max_tool_result_bytes
        self._message_count = message_count
        self._ai_index = -1
        self._pending_text = ""
        self._stream: MaskedStream = masker.stream()
        self._last_flush = time.monotonic()
        self._streamed = ""
        self._open_calls: dict[str, execution_pb2.ToolCall] = {}
        self.final_answer = ""
        # What the server answered to the last report: a pause asked of the
        # execution shows there, and the loop stops at the next step.
        self.last_recorded: execution_pb2.AgentExecution | None = None

    async def _recorded(self, events: Sequence[Event]) -> None:
        self.last_recorded = await self._record(events)

    async def _emit(self, *events: Event) -> None:
        await self._flush()
        await self._recorded(events)

    def is_pause_requested(self) -> bool:
        last = self.last_recorded
        return last is not None and last.status.is_pause_requested

    async def _flush(self, *, is_text_complete: bool = False, is_abandoned: bool = False) -> None:
        raw, self._pending_text = self._pending_text, ""
        text = self._stream.push(raw)
        if is_text_complete:
            text += self._stream.finish()
        elif is_abandoned:
            text += self._stream.abandon()
        if not text:
            return
        self._last_flush = time.monotonic()
        await self._recorded([message_delta_event(self._ai_index, text)])

    def mask(self, text: str) -> str:
        """The text with this execution's secret values masked (for errors)."""
        return self._masker.mask(text)

    def _message(self, kind: int, content: str, tool_call_id: str = "") -> Event:
        message = execution_pb2.ExecutionMessage(
            type=kind,  # type: ignore[arg-type]
            content=self._masker.mask(content),
            tool_call_id=tool_call_id,
        )
        self._message_count += 1
        return message_event(message)

    async def ai_message_started(self) -> None:
        self._ai_index = self._message_count
        self._streamed = ""
        self._stream = self._masker.stream()
        await self._emit(self._message(execution_pb2.MESSAGE_TYPE_AI, ""))

    async def ai_content_delta(self, text: str) -> None:
        self._pending_text += text
        self._streamed += text
        if time.monotonic() - self._last_flush >= FLUSH_SECONDS:
            await self._flush()

    async def ai_message_finished(
        self, content: str, tool_calls: tuple[ToolCallRequest, ...]
    ) -> None:
        # A provider that does not stream reports the text only here.
        if content.startswith(self._streamed) and len(content) > len(self._streamed):
            self._pending_text += content[len(self._streamed) :]
        await self._flush(is_text_complete=True)
        self.final_answer = content
        if tool_calls:
            await self._emit(
                *(
                    tool_call_event(
                        self._tool_call(
                            call,
                            execution_pb2.TOOL_CALL_STATUS_WAITING_APPROVAL
                            if call.gate.is_asked
                            else execution_pb2.TOOL_CALL_STATUS_PENDING,
                        )
                    )
                    for call in tool_calls
                )
            )

    def _masked_args(self, call: ToolCallRequest) -> struct_pb2.Struct:
        masked = struct_pb2.Struct()
        masked.update(_mask_values(dict(call.arguments), self._masker))  # type: ignore[arg-type]
        return masked

    def _tool_call(self, call: ToolCallRequest, status: int) -> execution_pb2.ToolCall:
        known = self._known_calls.get(call.id)
        if known is not None:
            # Continuing: the call keeps what was recorded (its decision, its
            # arguments as the model asked them).
            recorded = execution_pb2.ToolCall()
            recorded.CopyFrom(known)
            recorded.status = status  # type: ignore[assignment]
            return recorded
        recorded = execution_pb2.ToolCall(
            id=call.id,
            name=call.name,
            server=call.server,
            args=self._masked_args(call),
            status=status,  # type: ignore[arg-type]
            requires_approval=call.gate.requires_approval,
        )
        if call.input_schema is not None:
            recorded.input_schema.update(dict(call.input_schema))
        if call.gate.decided_by:
            recorded.approval.action = (
                execution_pb2.APPROVAL_ACTION_APPROVE_ALL
                if call.gate.is_approve_all
                else execution_pb2.APPROVAL_ACTION_APPROVE
            )
            recorded.approval.decided_by = call.gate.decided_by
            recorded.approval.decided_at.FromDatetime(datetime.now(UTC))
        return recorded

    async def approvals_requested(
        self, calls: tuple[ToolCallRequest, ...], model_text: str
    ) -> None:
        now = datetime.now(UTC)
        pending = []
        for call in calls:
            approval = execution_pb2.PendingApproval(
                tool_call_id=call.id,
                tool=call.name,
                server=call.server,
                args=self._masked_args(call),
                model_text=self._masker.mask(model_text),
            )
            approval.requested_at.FromDatetime(now)
            pending.append(approval_requested_event(approval))
        await self._emit(*pending, phase_event(WAITING_FOR_APPROVAL))

    async def tool_result_added(self, call_id: str) -> None:
        await self._emit(self._message(execution_pb2.MESSAGE_TYPE_TOOL, "", tool_call_id=call_id))

    async def usage(self, input_tokens: int, output_tokens: int) -> None:
        await self._emit(usage_event(input_tokens, output_tokens))

    async def tool_call_started(self, call: ToolCallRequest) -> None:
        running = self._tool_call(call, execution_pb2.TOOL_CALL_STATUS_RUNNING)
        running.started_at.FromDatetime(datetime.now(UTC))
        self._open_calls[call.id] = running
        await self._emit(tool_call_event(running))

    async def tool_call_finished(self, call_id: str, result: str, *, is_error: bool) -> None:
        finished = execution_pb2.ToolCall()
        opened = self._open_calls.pop(call_id, None) or self._known_calls.get(call_id)
        finished.CopyFrom(opened or execution_pb2.ToolCall(id=call_id))
        masked = cap_tool_result(self._masker.mask(result), self._max_tool_result_bytes)
        if is_error:
            finished.status = execution_pb2.TOOL_CALL_STATUS_FAILED
            finished.error = masked
        else:
            finished.status = execution_pb2.TOOL_CALL_STATUS_COMPLETED
            finished.result = masked
        finished.completed_at.FromDatetime(datetime.now(UTC))
        await self._emit(
            tool_call_event(finished),
            self._message(execution_pb2.MESSAGE_TYPE_TOOL, "", tool_call_id=call_id),
        )

    @property
    def ai_message_index(self) -> int:
        """The index of the AI message started last (-1 before any)."""
        return self._ai_index

    @property
    def message_count(self) -> int:
        """The execution's messages, counting those this sink recorded."""
        return self._message_count

    def reopen(self, call: ToolCallRequest) -> None:
        """Takes up a tool call another sink started (another worker's), so
        that finishing it keeps its name, server and arguments."""
        self._open_calls[call.id] = self._tool_call(call, execution_pb2.TOOL_CALL_STATUS_RUNNING)

    def system_message(self, text: str) -> Event:
        return self._message(execution_pb2.MESSAGE_TYPE_SYSTEM, text)

    async def flush(self) -> None:
        """Records the text still held back, as the end of a message that will
        not be finished (the run failed or was cancelled mid-answer)."""
        await self._flush(is_abandoned=True)


def _mask_values(value: object, masker: SecretMasker) -> object:
    if isinstance(value, str):
        return masker.mask(value)
    if isinstance(value, dict):
        return {k: _mask_values(v, masker) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_values(v, masker) for v in value]
    return value
