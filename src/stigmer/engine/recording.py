"""The RunSink that records what the agent loop does as execution events.

Text deltas are coalesced (flushed every FLUSH_SECONDS and before any other
event) so a fast model does not cost one transaction per token while a
watcher still sees the answer grow live. Every text passes the secret masker
before it is stored.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from google.protobuf import struct_pb2

from stigmer.api.v1 import execution_pb2
from stigmer.engine.run_requests import SecretMasker
from stigmer.resources.execution_events import (
    message_delta_event,
    message_event,
    tool_call_event,
    usage_event,
)
from stigmer.runtime.contract import ToolCallRequest

Event = execution_pb2.ExecutionEvent
Record = Callable[[Sequence[Event]], Awaitable[execution_pb2.AgentExecution]]
FLUSH_SECONDS = 0.05


class RecordingSink:
    def __init__(self, record: Record, masker: SecretMasker, message_count: int) -> None:
        self._record = record
        self._masker = masker
        self._message_count = message_count
        self._ai_index = -1
        self._pending_text = ""
        self._last_flush = time.monotonic()
        self._streamed = ""
        self._open_calls: dict[str, execution_pb2.ToolCall] = {}
        self.final_answer = ""

    async def _emit(self, *events: Event) -> None:
        await self._flush()
        await self._record(events)

    async def _flush(self) -> None:
        if not self._pending_text:
            return
        text, self._pending_text = self._pending_text, ""
        self._last_flush = time.monotonic()
        await self._record([message_delta_event(self._ai_index, self._masker.mask(text))])

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
        await self._flush()
        self.final_answer = content
        if tool_calls:
            await self._emit(
                *(
                    tool_call_event(self._tool_call(call, execution_pb2.TOOL_CALL_STATUS_PENDING))
                    for call in tool_calls
                )
            )

    def _tool_call(self, call: ToolCallRequest, status: int) -> execution_pb2.ToolCall:
        masked = struct_pb2.Struct()
        masked.update(_mask_values(dict(call.arguments), self._masker))  # type: ignore[arg-type]
        return execution_pb2.ToolCall(
            id=call.id,
            name=call.name,
            server=call.server,
            args=masked,
            status=status,  # type: ignore[arg-type]
        )

    async def usage(self, input_tokens: int, output_tokens: int) -> None:
        await self._emit(usage_event(input_tokens, output_tokens))

    async def tool_call_started(self, call: ToolCallRequest) -> None:
        running = self._tool_call(call, execution_pb2.TOOL_CALL_STATUS_RUNNING)
        running.started_at.FromDatetime(datetime.now(UTC))
        self._open_calls[call.id] = running
        await self._emit(tool_call_event(running))

    async def tool_call_finished(self, call_id: str, result: str, *, is_error: bool) -> None:
        finished = execution_pb2.ToolCall()
        finished.CopyFrom(self._open_calls.pop(call_id, execution_pb2.ToolCall(id=call_id)))
        masked = self._masker.mask(result)
        if is_error:
            finished.status = execution_pb2.TOOL_CALL_STATUS_FAILED
            finished.error = masked
        else:
            finished.status = execution_pb2.TOOL_CALL_STATUS_COMPLETED
            finished.result = masked
        finished.completed_at.FromDatetime(datetime.now(UTC))
        await self._emit(
            tool_call_event(finished),
            self._message(execution_pb2.MESSAGE_TYPE_TOOL, result, tool_call_id=call_id),
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
        await self._flush()


def _mask_values(value: object, masker: SecretMasker) -> object:
    if isinstance(value, str):
        return masker.mask(value)
    if isinstance(value, dict):
        return {k: _mask_values(v, masker) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_values(v, masker) for v in value]
    return value
