"""A small MCP server with deterministic tools, for running agents against real MCP.

Run it over stdio (the default) or streamable HTTP on 127.0.0.1::

    python -m stigmer.testing.mcp_server
    python -m stigmer.testing.mcp_server --http --port 0

In HTTP mode it prints one line, ``listening on http://127.0.0.1:PORT/mcp``, to
stdout once it accepts connections. `HttpMcpServer` starts it that way as a
subprocess and reads the URL from that line.

Tools: ``add``, ``echo``, ``repeat``, ``read_env``, ``pid``, ``fail``, ``crash``,
``sleep`` and ``discard``; ``discard`` is annotated ``destructiveHint: true``
(it changes nothing), so a tool policy asks about it by default. If
``STIGMER_TEST_CANARY_FILE`` is set in the server's environment, every
``read_env`` call appends ``name=value`` to that file, so a test can check what
the tool process saw without the value crossing any API.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import IO, Any, NoReturn, Self

import anyio
import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

CANARY_FILE_ENV = "STIGMER_TEST_CANARY_FILE"
HOST = "127.0.0.1"
PATH = "/mcp"
READY_PREFIX = "listening on "
CRASH_EXIT_CODE = 3


def add(a: int, b: int) -> int:
    """Return the sum of a and b."""
    return a + b


def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


def repeat(text: str, times: int) -> str:
    """Return the text repeated the given number of times (a result as large as wanted)."""
    return text * times


def read_env(name: str) -> str:
    """Return the value of an environment variable in the tool server, or "<unset>"."""
    value = os.environ.get(name, "<unset>")
    canary = os.environ.get(CANARY_FILE_ENV)
    if canary:
        with open(canary, "a", encoding="utf-8") as file:
            file.write(f"{name}={value}\n")
    return value


def pid() -> int:
    """Return the tool server's process id (shows whether two calls reached one process)."""
    return os.getpid()


def fail(message: str) -> NoReturn:
    """Fail with the given message (the call returns an error result)."""
    # ToolError, not a plain exception: MCPServer hides the text of unexpected
    # exceptions from the client, and the message must reach it.
    raise ToolError(message)


def crash() -> NoReturn:
    """Terminate the tool server process immediately, mid-call."""
    os._exit(CRASH_EXIT_CODE)


async def sleep(seconds: float) -> str:
    """Sleep for the given number of seconds, then return "slept"."""
    await anyio.sleep(seconds)
    return "slept"


def discard(name: str) -> str:
    """Discard the named item for good (a stand-in: nothing is kept anywhere)."""
    return f"discarded {name}"


def build_server() -> MCPServer[Any]:
    """The MCP server with all nine tools registered.

    Call it only in the process that serves: constructing an MCPServer
    configures process-wide logging.
    """
    server: MCPServer[Any] = MCPServer("stigmer-test-tools", log_level="WARNING")
    server.add_tool(add)
    server.add_tool(echo)
    # Text only: a structured copy would double a large result.
    server.add_tool(repeat, structured_output=False)
    server.add_tool(read_env)
    server.add_tool(pid)
    # These never return a value, so they publish no output schema.
    server.add_tool(fail, structured_output=False)
    server.add_tool(crash, structured_output=False)
    server.add_tool(sleep)
    server.add_tool(discard, annotations=ToolAnnotations(destructive_hint=True))
    return server


class _AnnouncingServer(uvicorn.Server):
    """Prints the ready line once bound, since with port 0 only the socket knows the port."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            bound = self.servers[0].sockets[0].getsockname()[1]
            print(f"{READY_PREFIX}http://{HOST}:{bound}{PATH}", flush=True)


async def _serve_http(server: MCPServer[Any], port: int) -> None:
    app = server.streamable_http_app(streamable_http_path=PATH, host=HOST)
    config = uvicorn.Config(
        app,
        host=HOST,
        port=port,
        log_level="warning",
        access_log=False,
        # Bounds a SIGTERM shutdown while clients still hold event streams open.
        timeout_graceful_shutdown=2,
    )
    await _AnnouncingServer(config).serve()


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point: serve over stdio, or over HTTP with --http."""
    parser = argparse.ArgumentParser(
        prog="python -m stigmer.testing.mcp_server",
        description="An MCP server with deterministic test tools.",
    )
    parser.add_argument("--http", action="store_true", help=f"serve streamable HTTP on {HOST}")
    parser.add_argument("--port", type=int, default=0, help="HTTP port (0 picks a free one)")
    args = parser.parse_args(argv)
    server = build_server()
    if args.http:
        asyncio.run(_serve_http(server, args.port))
    else:
        server.run("stdio")


class HttpMcpServer:
    """The test MCP server over streamable HTTP, in a subprocess on a free port.

    ``env`` is merged over the current environment. Use as a context manager,
    or call `start` and `stop`; `url` is the MCP endpoint once started.
    """

    START_DEADLINE = 20.0
    STOP_GRACE = 5.0

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = {**os.environ, **(env or {})}
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._url: str | None = None
        # Everything the process printed, for error messages; bounded because the
        # reader keeps draining the pipe for the server's whole life.
        self._output: collections.deque[str] = collections.deque(maxlen=200)
        self._output_lock = threading.Lock()

    @property
    def url(self) -> str:
        """The MCP endpoint, ``http://127.0.0.1:PORT/mcp``."""
        if self._url is None:
            raise RuntimeError("HttpMcpServer is not started")
        return self._url

    @property
    def pid(self) -> int | None:
        """The server process id, or None before `start`."""
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        if self._process is not None:
            raise RuntimeError("an HttpMcpServer can be started only once")
        process = subprocess.Popen(
            [sys.executable, "-m", "stigmer.testing.mcp_server", "--http", "--port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self._env,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        self._process = process
        assert process.stdout is not None
        lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(
            target=self._drain, args=(process.stdout, lines), name="mcp-server-output", daemon=True
        )
        self._reader.start()
        try:
            self._url = self._await_url(lines)
        except BaseException:
            self.stop()
            raise

    def _drain(self, stream: IO[str], lines: queue.Queue[str | None]) -> None:
        # Keeps reading after the ready line so a chatty server never blocks on a full pipe.
        for line in stream:
            with self._output_lock:
                self._output.append(line)
            lines.put(line)
        lines.put(None)

    def _await_url(self, lines: queue.Queue[str | None]) -> str:
        deadline = time.monotonic() + self.START_DEADLINE
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = lines.get(timeout=max(remaining, 0))
            except queue.Empty:
                raise RuntimeError(
                    f"MCP test server did not start within {self.START_DEADLINE:g} s; "
                    f"output:\n{self._output_text()}"
                ) from None
            if line is None:
                assert self._process is not None
                code = self._process.wait()
                raise RuntimeError(
                    f"MCP test server exited with code {code} before listening; "
                    f"output:\n{self._output_text()}"
                )
            if line.startswith(READY_PREFIX):
                return line.removeprefix(READY_PREFIX).strip()

    def _output_text(self) -> str:
        with self._output_lock:
            return "".join(self._output)

    def stop(self) -> None:
        """Stop the server: terminate, wait, kill if it lingers. Idempotent."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(self.STOP_GRACE)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._reader is not None:
            self._reader.join()
            self._reader = None
        if process.stdout is not None:
            process.stdout.close()
        self._url = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


if __name__ == "__main__":
    main()
