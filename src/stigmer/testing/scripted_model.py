"""A scripted OpenAI-compatible model: deterministic answers over real HTTP.

Agents talk to their model through the `openai` SDK over HTTP. To test an agent without a real
model, and without mocking the SDK (which we do not own), `ScriptedModel` runs a small
chat-completions server on 127.0.0.1 that answers each request with the next scripted `Reply`:
a text answer, a request to call tools, a slow answer, or an HTTP error. The agent under test
uses the real client against `base_url`, so streaming, tool-call assembly, error mapping and
retries are exercised exactly as in production, and every request the agent sent is kept in
`requests` for the test to assert on.

    with ScriptedModel([Reply(tool_calls=(ToolCallStep("add", {"a": 1, "b": 2}),)),
                        Reply(content="1 + 2 = 3")]) as model:
        client = openai.OpenAI(base_url=model.base_url, api_key="test", max_retries=0)
        ...
        assert model.requests[1]["messages"][-1]["role"] == "tool"

Each chat-completion request consumes one reply, in order. When the script runs out, the
responder given to `reply_with` computes the reply from the request (an echo, an answer built
from the last tool result); without one the `default` reply is used; without that the server
answers HTTP 500 "script exhausted", so a test that makes more model calls than it scripted
fails loudly instead of hanging. Clients that retry consume one reply per attempt: tests
normally pass `max_retries=0`.

It is stdlib only (`http.server` on a background thread) so that it ships with the package.
Each connection carries one request (HTTP/1.0), which keeps `stop()` simple: it interrupts
delayed replies, closes open connections and joins every thread it started.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import select
import socket
import socketserver
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast

__all__ = ["Reply", "ScriptedModel", "ToolCallStep"]

logger = logging.getLogger(__name__)

MODEL_ID = "scripted"
DELAY_SLICE_SECONDS = 0.05
JOIN_TIMEOUT_SECONDS = 10.0

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
    """

    content: str = ""
    tool_calls: tuple[ToolCallStep, ...] = ()
    status: int = 200
    delay_seconds: float = 0.0
    input_tokens: int = 10
    output_tokens: int = 5
    is_cut: bool = False

    def __post_init__(self) -> None:
        # Accept a list of steps too, and keep the value immutable.
        object.__setattr__(self, "tool_calls", tuple(self.tool_calls))


class ScriptedModel:
    """An OpenAI-compatible chat-completions server answering from a script.

    `start()`/`stop()` or `with`; `base_url` is valid while it runs.
    """

    def __init__(
        self,
        replies: Iterable[Reply] = (),
        *,
        default: Reply | None = None,
        chunk_size: int = 4,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        self.default = default
        self.chunk_size = chunk_size
        self.requests: list[Request] = []
        self._host = host
        self._port = port
        self._replies: deque[Reply] = deque(replies)
        self._responder: Responder | None = None
        self._lock = threading.Lock()
        self._completion_ids = itertools.count(1)
        self._call_ids = itertools.count(1)
        self._stopping = threading.Event()
        self._server: _ScriptedHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Binds the port and serves on a background thread.

        Raises:
            RuntimeError: it is already running.
        """
        if self._server is not None:
            raise RuntimeError("ScriptedModel is already running")
        self._stopping = threading.Event()
        server = _ScriptedHTTPServer((self._host, self._port), self)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": DELAY_SLICE_SECONDS},
            name=f"scripted-model:{server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stops serving, drops open connections and joins all threads; idempotent."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join()
        self._server = None
        self._thread = None

    def __enter__(self) -> ScriptedModel:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/v1`, for `openai.OpenAI(base_url=...)`.

        Raises:
            RuntimeError: it is not running.
        """
        if self._server is None:
            raise RuntimeError("ScriptedModel is not running: call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    # -- the script ------------------------------------------------------------------------

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

    def _record_and_choose(self, request: Request) -> Reply:
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

    def _tool_call_ids(self, reply: Reply) -> list[str]:
        with self._lock:
            return [step.id or f"call_{next(self._call_ids)}" for step in reply.tool_calls]

    def _completion_id(self) -> str:
        with self._lock:
            return f"chatcmpl-scripted-{next(self._completion_ids)}"


# -- response bodies -------------------------------------------------------------------------


def _error_body(status: int, message: str, code: str | None) -> dict[str, Any]:
    error_type = "invalid_request_error" if 400 <= status < 500 else "server_error"
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


def _usage(reply: Reply) -> dict[str, int]:
    return {
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": reply.output_tokens,
        "total_tokens": reply.input_tokens + reply.output_tokens,
    }


def _finish_reason(reply: Reply) -> str:
    return "tool_calls" if reply.tool_calls else "stop"


def _completion(reply: Reply, ids: list[str], completion_id: str, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.content or (None if reply.tool_calls else ""),
        "refusal": None,
    }
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": step.name, "arguments": json.dumps(step.arguments)},
            }
            for step, call_id in zip(reply.tool_calls, ids, strict=True)
        ]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": _finish_reason(reply),
                "logprobs": None,
            }
        ],
        "usage": _usage(reply),
    }


def _split(text: str, size: int) -> list[str]:
    return [text[start : start + size] for start in range(0, len(text), size)]


def _chunks(
    reply: Reply,
    *,
    ids: list[str],
    completion_id: str,
    model: str,
    chunk_size: int,
    include_usage: bool,
) -> Iterator[dict[str, Any]]:
    """The `chat.completion.chunk` objects of a streamed reply, in order."""
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [
                {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
            ],
        }
        if include_usage:
            body["usage"] = None
        return body

    yield chunk({"role": "assistant", "content": ""})
    for piece in _split(reply.content, chunk_size):
        yield chunk({"content": piece})
    if reply.is_cut:
        return
    for index, (step, call_id) in enumerate(zip(reply.tool_calls, ids, strict=True)):
        yield chunk(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call_id,
                        "type": "function",
                        "function": {"name": step.name, "arguments": ""},
                    }
                ]
            }
        )
        # Arguments arrive in pieces, as from real models, so clients must assemble them.
        for piece in _split(json.dumps(step.arguments), chunk_size):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, _finish_reason(reply))
    if include_usage:
        yield {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": _usage(reply),
        }


# -- HTTP ------------------------------------------------------------------------------------


class _ScriptedHTTPServer(ThreadingHTTPServer):
    """Tracks its connections and handler threads so that `stop()` can end and join them."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], model: ScriptedModel) -> None:
        self.model = model
        self._connections: set[socket.socket] = set()
        self._handler_threads: set[threading.Thread] = set()
        self._tracking = threading.Lock()
        super().__init__(address, _ChatCompletionsHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind also resolves the host's FQDN, a DNS lookup we do not need.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._process_and_forget,
            args=(request, client_address),
            name=f"scripted-model-request:{client_address[1]}",
            daemon=True,
        )
        with self._tracking:
            self._connections.add(request)
            self._handler_threads.add(thread)
        thread.start()

    def _process_and_forget(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._tracking:
                self._handler_threads.discard(threading.current_thread())

    def shutdown_request(self, request: Any) -> None:
        # Under the lock, so that close_connections never shuts down a socket being closed.
        with self._tracking:
            self._connections.discard(request)
            super().shutdown_request(request)

    def close_connections(self) -> None:
        """Ends every open connection, then waits for the handler threads."""
        with self._tracking:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
            threads = list(self._handler_threads)
        deadline = time.monotonic() + JOIN_TIMEOUT_SECONDS
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                logger.warning("scripted model: request thread %s did not stop", thread.name)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.exception("scripted model: request from %s failed", client_address)


class _ChatCompletionsHandler(BaseHTTPRequestHandler):
    server_version = "ScriptedModel/1.0"
    sys_version = ""
    protocol_version = "HTTP/1.0"

    @property
    def model(self) -> ScriptedModel:
        return cast(_ScriptedHTTPServer, self.server).model

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, TimeoutError) as exc:
            # The client went away (or stop() closed the connection): nothing left to answer.
            logger.debug("scripted model: connection ended: %r", exc)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("scripted model: " + format, *args)

    def do_GET(self) -> None:
        if self.path.split("?")[0].rstrip("/") == "/v1/models":
            model = {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "stigmer"}
            self._send_json(200, {"object": "list", "data": [model]})
        else:
            self._send_not_found()

    def do_POST(self) -> None:
        if self.path.split("?")[0].rstrip("/") != "/v1/chat/completions":
            self._send_not_found()
            return
        request = self._read_json()
        if request is None:
            return
        reply = self.model._record_and_choose(request)
        if not self._wait(reply.delay_seconds):
            return
        if reply.status != 200:
            message = reply.content or f"scripted model error (HTTP {reply.status})"
            self._send_json(reply.status, _error_body(reply.status, message, "scripted_error"))
            return
        ids = self.model._tool_call_ids(reply)
        completion_id = self.model._completion_id()
        model_name = str(request.get("model") or MODEL_ID)
        if request.get("stream") is True:
            options = request.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            self._send_stream(
                is_cut=reply.is_cut,
                chunks=_chunks(
                    reply,
                    ids=ids,
                    completion_id=completion_id,
                    model=model_name,
                    chunk_size=self.model.chunk_size,
                    include_usage=include_usage,
                ),
            )
        else:
            self._send_json(200, _completion(reply, ids, completion_id, model_name))

    def _read_json(self) -> Request | None:
        """The request body as a JSON object, or None after answering 400."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length > 0 else None
        except (ValueError, UnicodeDecodeError) as exc:
            self._send_json(400, _error_body(400, f"invalid JSON body: {exc}", "invalid_json"))
            return None
        if not isinstance(body, dict):
            self._send_json(400, _error_body(400, "body must be a JSON object", "invalid_json"))
            return None
        return body

    def _wait(self, seconds: float) -> bool:
        """Sleeps in slices; False when the server stops or the client hangs up meanwhile."""
        deadline = time.monotonic() + seconds
        stopping = self.model._stopping
        while (remaining := deadline - time.monotonic()) > 0:
            if stopping.wait(min(DELAY_SLICE_SECONDS, remaining)):
                return False
            if self._client_hung_up():
                logger.debug("scripted model: client left during a delayed reply")
                return False
        return not stopping.is_set()

    def _client_hung_up(self) -> bool:
        connection = cast(socket.socket, self.connection)
        try:
            readable, _, _ = select.select([connection], [], [], 0)
            return bool(readable) and connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _send_json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_not_found(self) -> None:
        message = f"scripted model: no route for {self.command} {self.path}"
        self._send_json(404, _error_body(404, message, "not_found"))

    def _send_stream(self, *, chunks: Iterable[dict[str, Any]], is_cut: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        stopping = self.model._stopping
        for chunk in chunks:
            if stopping.is_set():
                return
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            self.wfile.flush()
        if is_cut:
            return
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
