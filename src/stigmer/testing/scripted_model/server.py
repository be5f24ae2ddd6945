"""The HTTP side of a scripted model: a small chat-completions server.

It is stdlib only (`http.server` on a background thread) so that it ships with
the package. Each connection carries one request (HTTP/1.0), which keeps
stopping simple: the server interrupts delayed replies, closes open
connections and joins every thread it started.
"""

from __future__ import annotations

import contextlib
import json
import logging
import select
import socket
import socketserver
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from stigmer.testing.scripted_model.script import Request, Script
from stigmer.testing.scripted_model.wire import (
    MODEL_ID,
    chunks,
    completion,
    error_body,
    models_list,
)

logger = logging.getLogger(__name__)

DELAY_SLICE_SECONDS = 0.05
JOIN_TIMEOUT_SECONDS = 10.0


class ScriptedHTTPServer(ThreadingHTTPServer):
    """Answers from `script`; tracks its connections and handler threads so
    that stopping can end and join them. Setting `stopping` interrupts
    delayed replies and streams."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        script: Script,
        *,
        chunk_size: int,
        stopping: threading.Event,
    ) -> None:
        self.script = script
        self.chunk_size = chunk_size
        self.stopping = stopping
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
    def scripted(self) -> ScriptedHTTPServer:
        return cast(ScriptedHTTPServer, self.server)

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
            self._send_json(200, models_list())
        else:
            self._send_not_found()

    def do_POST(self) -> None:
        if self.path.split("?")[0].rstrip("/") != "/v1/chat/completions":
            self._send_not_found()
            return
        request = self._read_json()
        if request is None:
            return
        reply = self.scripted.script.record_and_choose(request)
        if not self._wait(reply.delay_seconds):
            return
        if reply.status != 200:
            message = reply.content or f"scripted model error (HTTP {reply.status})"
            self._send_json(reply.status, error_body(reply.status, message, "scripted_error"))
            return
        ids = self.scripted.script.tool_call_ids(reply)
        completion_id = self.scripted.script.completion_id()
        model_name = str(request.get("model") or MODEL_ID)
        if request.get("stream") is True:
            options = request.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            self._send_stream(
                is_cut=reply.is_cut,
                chunks=chunks(
                    reply,
                    ids=ids,
                    completion_id=completion_id,
                    model=model_name,
                    chunk_size=self.scripted.chunk_size,
                    include_usage=include_usage,
                ),
            )
        else:
            self._send_json(200, completion(reply, ids, completion_id, model_name))

    def _read_json(self) -> Request | None:
        """The request body as a JSON object, or None after answering 400."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length > 0 else None
        except (ValueError, UnicodeDecodeError) as exc:
            self._send_json(400, error_body(400, f"invalid JSON body: {exc}", "invalid_json"))
            return None
        if not isinstance(body, dict):
            self._send_json(400, error_body(400, "body must be a JSON object", "invalid_json"))
            return None
        return body

    def _wait(self, seconds: float) -> bool:
        """Sleeps in slices; False when the server stops or the client hangs up meanwhile."""
        deadline = time.monotonic() + seconds
        stopping = self.scripted.stopping
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
        self._send_json(404, error_body(404, message, "not_found"))

    def _send_stream(self, *, chunks: Iterable[dict[str, Any]], is_cut: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        stopping = self.scripted.stopping
        for chunk in chunks:
            if stopping.is_set():
                return
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            self.wfile.flush()
        if is_cut:
            return
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
