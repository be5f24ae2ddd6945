"""A RunSink that keeps everything the agent loop reports, for tests to assert on."""

from __future__ import annotations

from dataclasses import dataclass, field

from stigmer.runtime.contract import ToolCallRequest


@dataclass(frozen=True)
class ToolCallResult:
    call_id: str
    result: str
    is_error: bool


@dataclass
class CollectingSink:
    """Records each report; `kinds` is the order of reports, text deltas left out."""

    kinds: list[str] = field(default_factory=list)
    deltas: list[str] = field(default_factory=list)
    messages: list[tuple[str, tuple[ToolCallRequest, ...]]] = field(default_factory=list)
    usages: list[tuple[int, int]] = field(default_factory=list)
    started_calls: list[ToolCallRequest] = field(default_factory=list)
    results: list[ToolCallResult] = field(default_factory=list)

    async def ai_message_started(self) -> None:
        self.kinds.append("ai_message_started")

    async def ai_content_delta(self, text: str) -> None:
        self.deltas.append(text)

    async def ai_message_finished(
        self, content: str, tool_calls: tuple[ToolCallRequest, ...]
    ) -> None:
        self.kinds.append("ai_message_finished")
        self.messages.append((content, tool_calls))

    async def usage(self, input_tokens: int, output_tokens: int) -> None:
        self.kinds.append("usage")
        self.usages.append((input_tokens, output_tokens))

    async def tool_call_started(self, call: ToolCallRequest) -> None:
        self.kinds.append("tool_call_started")
        self.started_calls.append(call)

    async def tool_call_finished(self, call_id: str, result: str, *, is_error: bool) -> None:
        self.kinds.append("tool_call_finished")
        self.results.append(ToolCallResult(call_id, result, is_error))

    def is_pause_requested(self) -> bool:
        return False
