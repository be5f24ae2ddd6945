"""The script of a scripted model: the replies, in order, and what it was asked.

Each chat-completion request consumes one queued `Reply`. Once the queue is
empty, the responder given to `reply_with` computes the reply from the
request; without one the `default` reply is used; without that the answer is
HTTP 500 "script exhausted", so a test that makes more model calls than it
scripted fails loudly instead of hanging. The HTTP handler threads and the
test's thread share a script, so every method takes its lock.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

Request = dict[str, Any]
Responder = Callable[[Request], "Reply"]


@dataclass(frozen=True)
class ToolCallStep:
    """The model asks for one tool call; `id` defaults to a generated `call_<n>`."""

    name: str
    arguments: dict[str, object] = field(hash=False)
    id: str = ""

    def __post_init__(self) -> None:
        try:
            json.dumps(self.arguments)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"tool call {self.name!r}: arguments are not JSON: {exc}") from exc


@dataclass(frozen=True)
class Reply:
    """One scripted model turn.

    `content` is the answer text (streamed in chunks when the client asks for a stream); with
    `status` other than 200 it is the error message instead. `delay_seconds` makes the model
    slow; `stop()` interrupts the wait. `is_cut` ends a streamed reply after its text, without
    the finish_reason chunk, the usage or `[DONE]`, as when a connection drops mid-answer.
    `cached_tokens` and `reasoning_tokens` are reported in the usage's details, as OpenAI does.
    """

    content: str = ""
    tool_calls: tuple[ToolCallStep, ...] = ()
    status: int = 200
    delay_seconds: float = 0.0
    input_tokens: int = 10
    output_tokens: int = 5
    # Reported as OpenAI does: of input_tokens, read from the prompt cache;
    # of output_tokens, spent reasoning (omitted from the usage when 0).
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    # False: the reply carries no usage at all, as some servers answer.
    is_usage_reported: bool = True
    is_cut: bool = False

    def __post_init__(self) -> None:
        # Accept a list of steps too, and keep the value immutable.
        object.__setattr__(self, "tool_calls", tuple(self.tool_calls))


class Script:
    """The queued replies, the fallbacks after them, and every request received."""

    def __init__(self, replies: Iterable[Reply] = (), *, default: Reply | None = None) -> None:
        self.default = default
        self.requests: list[Request] = []
        self._replies: deque[Reply] = deque(replies)
        self._responder: Responder | None = None
        self._lock = threading.Lock()
        self._completion_ids = itertools.count(1)
        self._call_ids = itertools.count(1)

    def add(self, *replies: Reply) -> None:
        """Queues more replies after the ones already scripted."""
        with self._lock:
            self._replies.extend(replies)

    def reply_with(self, responder: Responder) -> None:
        """Computes replies from the request once the queue is empty (before `default`)."""
        with self._lock:
            self._responder = responder

    @property
    def pending(self) -> int:
        """How many queued replies have not been used yet."""
        with self._lock:
            return len(self._replies)

    def record_and_choose(self, request: Request) -> Reply:
        """Keeps the request and returns the reply it gets."""
        with self._lock:
            self.requests.append(request)
            if self._replies:
                return self._replies.popleft()
            responder = self._responder
            number = len(self.requests)
        if responder is not None:
            try:
                return responder(request)
            except Exception as exc:
                logger.exception("scripted model responder failed")
                return Reply(status=500, content=f"scripted model: responder failed: {exc!r}")
        if self.default is not None:
            return self.default
        return Reply(
            status=500,
            content=f"scripted model: script exhausted at request #{number} "
            "(no queued reply, no responder, no default)",
        )

    def tool_call_ids(self, reply: Reply) -> list[str]:
        """The ids of the reply's tool calls: scripted, or the next `call_<n>`."""
        with self._lock:
            return [step.id or f"call_{next(self._call_ids)}" for step in reply.tool_calls]

    def completion_id(self) -> str:
        with self._lock:
            return f"chatcmpl-scripted-{next(self._completion_ids)}"
