"""What the agent loop needs and what it reports: the seam between the
runtime (models, tools, the loop) and the engine that records executions.

The runtime knows nothing of the store, gRPC or executions as resources: it
gets a RunRequest, reports everything it does to a RunSink as it happens,
and returns. The engine's sink turns those reports into execution status
writes and stream updates. Inside the runtime, the loop sees a model only
as a ChatProvider (providers.py builds one from ModelSettings).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, Protocol

from stigmer.resources.tool_policy import ApprovalGrants, Gate, ToolPolicy

if TYPE_CHECKING:
    # The conversation's types are built on this module's (HistoryMessage,
    # ModelError), so they are imported here for annotations only.
    from stigmer.runtime.conversation import Message, ModelTurn, ToolSpec


@dataclass(frozen=True)
class ModelSettings:
    """Which model answers, and how to reach it.

    provider: "openai" (any OpenAI-compatible endpoint: OpenAI, Ollama,
    llama.cpp, vLLM) or "anthropic".
    """

    provider: str
    model: str
    base_url: str = ""
    api_key: str = ""
    timeout_seconds: float = 120.0


@dataclass(frozen=True)
class StdioServer:
    command: str
    args: tuple[str, ...] = ()
    working_dir: str = ""
    env: Mapping[str, str] = field(default_factory=dict)  # placeholders already resolved


@dataclass(frozen=True)
class HttpServer:
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)  # placeholders already resolved
    timeout_seconds: float = 30.0


@dataclass(frozen=True)
class ToolServer:
    """One MCP server the agent may use; empty enabled_tools means all."""

    name: str
    transport: StdioServer | HttpServer
    enabled_tools: tuple[str, ...] = ()


@dataclass(frozen=True)
class HistoryToolCall:
    id: str
    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True)
class HistoryMessage:
    """An earlier message of the session (the conversation memory)."""

    role: Literal["user", "assistant", "tool"]
    content: str
    tool_calls: tuple[HistoryToolCall, ...] = ()  # assistant messages that asked for tools
    tool_call_id: str = ""  # tool messages


@dataclass(frozen=True)
class ToolCallRequest:
    id: str
    name: str  # the tool's name as the model called it
    server: str  # the ToolServer.name it belongs to
    arguments: Mapping[str, Any]
    # Whether a person is asked first, or who approved it without asking.
    gate: Gate = field(default_factory=lambda: Gate(is_asked=False))
    # For a call a person is asked about: what an edit of its arguments must keep to.
    input_schema: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class OpenToolCall:
    """A call of the turn an execution stopped in that has no result yet.

    `result` None: run it now (approved, edited, or never started). Else
    the text the model reads as its result: a skip or a reject already
    stored in the call (`is_recorded`), or why it cannot run (`is_error`).
    """

    call: ToolCallRequest
    result: str | None = None
    is_error: bool = False
    is_recorded: bool = False


@dataclass(frozen=True)
class Continuation:
    """Where an execution that stopped between steps (it waited for a
    person, was paused, or failed) goes on from: its own recorded
    conversation, the user's message included, and the open calls of its
    last turn. The loop settles those calls, then calls the model again."""

    conversation: tuple[HistoryMessage, ...]
    open_calls: tuple[OpenToolCall, ...] = ()


@dataclass(frozen=True)
class RunRequest:
    instructions: str  # the system prompt
    history: tuple[HistoryMessage, ...]
    message: str  # the new user message
    model: ModelSettings
    tool_servers: tuple[ToolServer, ...] = ()
    max_steps: int = 16  # model calls before the loop gives up
    tool_call_timeout_seconds: float = 300.0  # for stdio servers (see ToolBox)
    max_tool_result_bytes: int = 64 * 1024  # see runtime/tool_results.py
    tool_policy: ToolPolicy = field(default_factory=ToolPolicy)
    grants: ApprovalGrants = field(default_factory=ApprovalGrants)
    # Set when the execution already ran: `message` is then in it.
    continuation: Continuation | None = None


class RunSink(Protocol):
    """Receives everything the loop does, in order, as it happens.

    Every method may be awaited; the loop awaits each before going on, so
    the sink sees a consistent order. A sink method that raises aborts the
    run with that error.
    """

    async def ai_message_started(self) -> None:
        """The model started answering (a new AI message, empty so far)."""

    async def ai_content_delta(self, text: str) -> None:
        """More text of the current AI message (token streaming)."""

    async def ai_message_finished(
        self, content: str, tool_calls: tuple[ToolCallRequest, ...]
    ) -> None:
        """The AI message is complete: its full text and the tools it asks for."""

    async def usage(self, input_tokens: int, output_tokens: int) -> None:
        """Tokens of one model call (called once per model call, when known)."""

    async def tool_call_started(self, call: ToolCallRequest) -> None: ...

    async def tool_call_finished(self, call_id: str, result: str, *, is_error: bool) -> None:
        """The tool's result (text), or its error message when is_error."""

    def is_pause_requested(self) -> bool:
        """Asked at each point between a model call and a tool call: True
        stops the run there (RunOutcome.is_paused), to be continued later."""

    async def tool_result_added(self, call_id: str) -> None:
        """A call decided without running (skipped, rejected) takes its
        place in the conversation with the result its decision stored."""

    async def approvals_requested(
        self, calls: tuple[ToolCallRequest, ...], model_text: str
    ) -> None:
        """The calls wait for a person; the run stops here and continues
        (from its recorded conversation) once every one is decided."""


class ModelErrorKind(StrEnum):
    """What went wrong with the model, for callers that decide on it."""

    TIMEOUT = "timeout"  # the endpoint did not answer within the timeout
    UNREACHABLE = "unreachable"  # no connection: refused, unknown host
    AUTH = "auth"  # the endpoint rejected the API key
    STATUS = "status"  # the endpoint answered with an HTTP error status
    INTERRUPTED = "interrupted"  # the connection broke in the middle of a reply
    MALFORMED = "malformed"  # the reply does not parse, or asks for something impossible
    CONFIG = "config"  # the settings name no usable provider (none, unknown, no key)
    LOCAL_MODEL = "local_model"  # llama.cpp is missing, or it cannot load the model file
    OTHER = "other"  # an SDK failure none of the above describes


DeltaCallback = Callable[[str], Awaitable[None]]


class ChatProvider(Protocol):
    """One model behind one endpoint; the agent loop's only view of an LLM."""

    async def stream_turn(
        self,
        *,
        system: str,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec],
        on_delta: DeltaCallback,
    ) -> ModelTurn:
        """Sends the conversation, awaits `on_delta` for each text piece, returns the turn.

        Raises:
            ModelError: the model could not answer (unreachable, timeout, HTTP error,
                malformed reply). Exceptions raised by `on_delta` propagate unchanged.
        """
        ...

    async def aclose(self) -> None:
        """Releases the HTTP connections."""
        ...


class ModelError(Exception):
    """The model could not answer: unreachable, timed out, HTTP error, bad reply.

    The message says what happened in words a user can act on
    ("model endpoint http://127.0.0.1:9/v1 unreachable: connection refused").
    The facts are attributes, so callers decide on them, never on the words:
    `kind` says what went wrong, and `status` is the HTTP status the endpoint
    answered with, when it answered with one (in the response, or in an error
    event of a streamed reply).
    """

    def __init__(self, message: str, *, kind: ModelErrorKind, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status


class ToolServerError(Exception):
    """An MCP server could not be started or reached, or listed no tools."""


@dataclass(frozen=True)
class RunOutcome:
    """How the loop ended when it did not raise."""

    final_answer: str
    steps: int
    is_step_limit_reached: bool = False
    is_paused: bool = False  # stopped between steps because a pause was asked
    is_waiting: bool = False  # stopped for approvals (see RunSink.approvals_requested)
