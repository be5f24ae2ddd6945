"""MCP tools for one run: the request's tool servers, connected, listed and callable.

`ToolBox` is entered once per run. It starts every server of the request at
once (stdio: a child process; streamable HTTP: a session with the URL), keeps
the tools each server is allowed to offer, and calls them by the name the model
knows them by. Tool names are unique across servers: a name two servers share
is offered as `<server>__<tool>` for both. With a tool policy
(resources/tool_policy.py), denied tools are not offered at all, and
`decision_of` says whether a person must be asked before a call.

Each server's session lives in a task of its own. The `mcp` SDK keeps anyio
task groups open for a session's whole life, and those must be left in the
task that entered them; a transport failing inside one would otherwise cancel
whatever the agent loop happened to be awaiting, a model stream included. Here a
dying server only ends its own task, and its next call reports that it stopped.

What fails how:

- a server that cannot start, connect or list its tools, or lacks a tool named
  in `enabled_tools`: `ToolServerError` from `__aenter__`, naming the server,
  its command or URL and the cause; nothing is left running;
- a tool that reports an error, a server that dies mid-call, a call past its
  deadline, an unknown tool name: a `ToolResult` with `is_error=True`, data the
  model sees, so the run goes on.

Every await on a server has a deadline: `start_timeout_seconds` for connecting
and listing; for calls, an HTTP server's own `timeout_seconds`, and the
ToolBox's `call_timeout_seconds` for stdio servers. Closing (also on
cancellation) ends every session and child process within the SDK's bounded
shutdown.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shlex
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, AsyncExitStack, nullcontext
from types import TracebackType
from typing import Any, NamedTuple, Self, TextIO, cast

import httpx2
import mcp.types
from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from stigmer.resources.tool_policy import ToolDecision, ToolPolicy
from stigmer.runtime.contract import HttpServer, StdioServer, ToolServer, ToolServerError
from stigmer.runtime.conversation import ToolSpec

__all__ = ["ToolBox", "ToolResult"]

logger = logging.getLogger(__name__)

# Besides what the SDK passes on (HOME, LOGNAME, PATH, SHELL, TERM, USER): locale and temp
# dir, so that tools decode text and find scratch space as they would in a shell.
INHERITED_ENV = ("LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ")
MAX_TOOL_PAGES = 100
STDERR_TAIL_BYTES = 2000
_UNSAFE_NAME = re.compile(r"[^a-zA-Z0-9_-]")


class _StartFailure(Exception):
    """A server that cannot start for a reason found before asking the SDK."""


class ToolResult(NamedTuple):
    """A tool's answer as text; with `is_error`, the text says what went wrong."""

    text: str
    is_error: bool


class ToolBox:
    """The tools of a run's MCP servers; `async with` starts and stops them all."""

    def __init__(
        self,
        servers: Sequence[ToolServer],
        *,
        start_timeout_seconds: float = 30.0,
        call_timeout_seconds: float = 300.0,
        stop_timeout_seconds: float = 15.0,
        policy: ToolPolicy | None = None,
    ) -> None:
        self._servers = tuple(servers)
        self._policy = policy or ToolPolicy()
        self._decisions: dict[str, ToolDecision] = {}
        self._start_timeout = start_timeout_seconds
        self._call_timeout = call_timeout_seconds
        self._stop_timeout = stop_timeout_seconds
        self._connections: list[_ServerConnection] = []
        self._routes: dict[str, tuple[_ServerConnection, str]] = {}
        self._specs: tuple[ToolSpec, ...] = ()

    @property
    def tools(self) -> tuple[ToolSpec, ...]:
        """What the model is offered, in server order then each server's own order."""
        return self._specs

    def server_of(self, name: str) -> str | None:
        """The server that offers the tool the model calls `name`, or None."""
        route = self._routes.get(name)
        return route[0].server.name if route else None

    def tool_of(self, name: str) -> str | None:
        """The tool's own name on its server (the model's name may carry a
        server prefix when two servers offer the same tool), or None."""
        route = self._routes.get(name)
        return route[1] if route else None

    def decision_of(self, name: str) -> ToolDecision:
        """What the tool policy says of the tool the model calls `name`
        (ALLOW for a name nobody offers: its call answers with an error)."""
        return self._decisions.get(name, ToolDecision.ALLOW)

    def input_schema_of(self, name: str) -> Mapping[str, Any] | None:
        """The JSON schema of the tool the model calls `name`, or None."""
        for spec in self._specs:
            if spec.name == name:
                return spec.input_schema
        return None

    def is_destructive(self, name: str) -> bool:
        """Whether the tool's server annotates it destructiveHint: true."""
        route = self._routes.get(name)
        if route is None:
            return False
        connection, tool = route
        return any(is_destructive(t) for t in connection.tools if t.name == tool)

    async def __aenter__(self) -> Self:
        names = Counter(server.name for server in self._servers)
        if twice := sorted(name for name, count in names.items() if count > 1):
            raise ToolServerError(f"tool server names must be unique: {', '.join(twice)}")
        self._connections = [
            _ServerConnection(
                server,
                start_timeout=self._start_timeout,
                call_timeout=_call_timeout(server, self._call_timeout),
            )
            for server in self._servers
        ]
        try:
            outcomes = await asyncio.gather(
                *(connection.start() for connection in self._connections),
                return_exceptions=True,
            )
            _raise_start_failures(outcomes)
            self._index_tools()
        except BaseException:
            await self._stop_all()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._stop_all()

    async def call(self, name: str, arguments: Mapping[str, Any]) -> ToolResult:
        """Calls the tool the model knows as `name`; every failure is an error result."""
        route = self._routes.get(name)
        if route is None:
            offered = ", ".join(spec.name for spec in self._specs) or "none"
            return ToolResult(f"unknown tool {name!r}; the available tools are: {offered}", True)
        connection, tool = route
        return await connection.call(tool, arguments)

    def _index_tools(self) -> None:
        offered = Counter(tool.name for c in self._connections for tool in c.tools)
        specs: list[ToolSpec] = []
        for connection in self._connections:
            for tool in connection.tools:
                decision = self._policy.decide(
                    connection.server.name, tool.name, is_destructive=is_destructive(tool)
                )
                if decision == ToolDecision.DENY:
                    continue
                name = tool.name
                if offered[name] > 1:
                    name = f"{_UNSAFE_NAME.sub('_', connection.server.name)}__{tool.name}"
                if name in self._routes:
                    raise ToolServerError(
                        f"tool {name!r} is offered twice; rename a tool server to tell them apart"
                    )
                self._routes[name] = (connection, tool.name)
                self._decisions[name] = decision
                specs.append(ToolSpec(name, tool.description or "", tool.input_schema))
        self._specs = tuple(specs)

    async def _stop_all(self) -> None:
        connections, self._connections = self._connections, []
        self._routes.clear()
        self._decisions.clear()
        self._specs = ()
        if connections:
            await asyncio.gather(*(c.stop(self._stop_timeout) for c in connections))


def is_destructive(tool: mcp.types.Tool) -> bool:
    """The server's own word only: a missing annotation is not destructive
    (see resources/tool_policy.py for why)."""
    return bool(tool.annotations and tool.annotations.destructive_hint)


def _raise_start_failures(outcomes: Sequence[object]) -> None:
    """Raises what went wrong starting the servers: every server's failure in one error."""
    failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    for failure in failures:
        if not isinstance(failure, ToolServerError):
            raise failure
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise ToolServerError("; ".join(str(failure) for failure in failures))


def _call_timeout(server: ToolServer, default: float) -> float:
    if isinstance(server.transport, HttpServer):
        return server.transport.timeout_seconds
    return default


class _ServerConnection:
    """One MCP server's session, owned by a task of its own (see the module docstring)."""

    def __init__(self, server: ToolServer, *, start_timeout: float, call_timeout: float) -> None:
        self.server = server
        self.tools: list[mcp.types.Tool] = []
        self._start_timeout = start_timeout
        self._call_timeout = call_timeout
        self._session: ClientSession | None = None
        self._stopped_because = ""
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stderr: TextIO | None = None

    @property
    def description(self) -> str:
        """The server as a user configured it: its command line or its URL."""
        transport = self.server.transport
        if isinstance(transport, StdioServer):
            return f"command {shlex.join([transport.command, *transport.args])!r}"
        return f"url {transport.url}"

    async def start(self) -> None:
        ready: asyncio.Future[list[mcp.types.Tool]] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._own_session(ready), name=f"mcp:{self.server.name}")
        try:
            async with asyncio.timeout(self._start_timeout):
                tools = await ready
        except TimeoutError:
            raise self._start_error(f"no answer within {self._start_timeout:g} s") from None
        self.tools = self._enabled(tools)

    def _enabled(self, tools: list[mcp.types.Tool]) -> list[mcp.types.Tool]:
        if not tools:
            raise self._start_error("it offers no tools")
        wanted = self.server.enabled_tools
        if not wanted:
            return tools
        names = {tool.name for tool in tools}
        if missing := [name for name in wanted if name not in names]:
            raise ToolServerError(
                f"tool server {self.server.name!r} has no tool {', '.join(map(repr, missing))} "
                f"(it offers {', '.join(sorted(names))})"
            )
        return [tool for tool in tools if tool.name in wanted]

    async def _own_session(self, ready: asyncio.Future[list[mcp.types.Tool]]) -> None:
        with _stderr_file(self.server.transport) as stderr:
            self._stderr = stderr
            try:
                async with AsyncExitStack() as stack:
                    session = await self._connect(stack)
                    await session.initialize()
                    tools = await _list_tools(session)
                    if ready.done():  # start() gave up meanwhile
                        return
                    self._session = session
                    ready.set_result(tools)
                    await self._closing.wait()
            except Exception as exc:
                reason = describe_mcp_failure(exc, self._start_timeout)
                if not ready.done():
                    ready.set_exception(self._start_error(reason))
                else:
                    self._stopped_because = reason
                    logger.warning("tool server %r stopped: %s", self.server.name, reason)
            finally:
                self._session = None
                self._stderr = None

    async def _connect(self, stack: AsyncExitStack) -> ClientSession:
        transport = self.server.transport
        if isinstance(transport, StdioServer):
            streams = await stack.enter_async_context(
                stdio_client(_stdio_parameters(transport), errlog=self._stderr or sys.stderr)
            )
        else:
            client = await stack.enter_async_context(
                httpx2.AsyncClient(
                    headers=dict(transport.headers),
                    # Reads wait for a tool's answer, so they get the call deadline.
                    timeout=httpx2.Timeout(
                        transport.timeout_seconds,
                        read=max(transport.timeout_seconds, self._call_timeout),
                    ),
                )
            )
            streams = await stack.enter_async_context(
                streamable_http_client(transport.url, http_client=client)
            )
        read, write = streams
        return await stack.enter_async_context(
            ClientSession(read, write, read_timeout_seconds=self._start_timeout)
        )

    async def call(self, tool: str, arguments: Mapping[str, Any]) -> ToolResult:
        session = self._session
        if session is None:
            return self._stopped(self._stopped_because or "it is closed")
        try:
            result = await session.call_tool(
                tool, dict(arguments), read_timeout_seconds=self._call_timeout
            )
        except MCPError as exc:
            if exc.code == mcp.types.CONNECTION_CLOSED:
                self._session = None
                self._stopped_because = "its connection closed during the call"
                return self._stopped(self._stopped_because)
            return ToolResult(
                f"tool {tool!r} on server {self.server.name!r} failed: "
                f"{describe_mcp_failure(exc, self._call_timeout)}",
                True,
            )
        except Exception as exc:
            logger.warning("tool %r on server %r failed", tool, self.server.name, exc_info=True)
            return ToolResult(
                f"tool {tool!r} on server {self.server.name!r} failed: "
                f"{describe_mcp_failure(exc, self._call_timeout)}",
                True,
            )
        return ToolResult(text_of(result), bool(result.is_error))

    def _stopped(self, reason: str) -> ToolResult:
        stderr = self._stderr_tail()
        detail = f"; its stderr ends with: {stderr}" if stderr else ""
        return ToolResult(f"tool server {self.server.name!r} stopped: {reason}{detail}", True)

    def _start_error(self, reason: str) -> ToolServerError:
        stderr = self._stderr_tail()
        detail = f"; its stderr ends with: {stderr}" if stderr else ""
        return ToolServerError(
            f"tool server {self.server.name!r} ({self.description}) could not start: "
            f"{reason}{detail}"
        )

    def _stderr_tail(self) -> str:
        if self._stderr is None or self._stderr.closed:
            return ""
        descriptor = self._stderr.fileno()
        size = os.fstat(descriptor).st_size
        # pread leaves the offset alone: the child shares it and keeps writing.
        tail = os.pread(descriptor, STDERR_TAIL_BYTES, max(0, size - STDERR_TAIL_BYTES))
        return tail.decode("utf-8", errors="replace").strip()

    async def stop(self, grace_seconds: float) -> None:
        """Ends the session and its process; the SDK bounds each step of the shutdown."""
        task, self._task = self._task, None
        if task is None:
            return
        if self._session is None:
            # Still starting (or already dead): nothing to close politely.
            task.cancel()
        self._closing.set()
        done, _ = await asyncio.wait({task}, timeout=grace_seconds)
        if not done:
            logger.warning(
                "tool server %r did not stop within %g s", self.server.name, grace_seconds
            )
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=grace_seconds)
        for finished in done:
            if not finished.cancelled() and (error := finished.exception()) is not None:
                logger.warning("tool server %r ended with %r", self.server.name, error)


def _stderr_file(transport: StdioServer | HttpServer) -> AbstractContextManager[TextIO | None]:
    """Where a stdio server's stderr goes: a file, which nobody has to drain while the
    server runs and whose tail explains a failed start."""
    if isinstance(transport, HttpServer):
        return nullcontext()
    return cast(TextIO, tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace"))


def _stdio_parameters(transport: StdioServer) -> StdioServerParameters:
    if transport.working_dir and not os.path.isdir(transport.working_dir):
        raise _StartFailure(f"working directory {transport.working_dir} does not exist")
    inherited = {name: os.environ[name] for name in INHERITED_ENV if name in os.environ}
    return StdioServerParameters(
        command=transport.command,
        args=list(transport.args),
        env={**inherited, **transport.env},
        cwd=transport.working_dir or None,
    )


async def _list_tools(session: ClientSession) -> list[mcp.types.Tool]:
    tools: list[mcp.types.Tool] = []
    cursor: str | None = None
    for _ in range(MAX_TOOL_PAGES):
        params = mcp.types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await session.list_tools(params=params)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions inside (nested) groups: the SDK's task groups wrap what went wrong."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def describe_mcp_failure(exc: BaseException, timeout: float) -> str:
    """What went wrong talking to an MCP server, in words; the one table of MCP failures."""
    reasons: list[str] = []
    for leaf in _leaves(exc):
        match leaf:
            case MCPError(code=mcp.types.CONNECTION_CLOSED):
                reason = "the server closed the connection (did it exit?)"
            case MCPError(code=mcp.types.REQUEST_TIMEOUT):
                reason = f"no answer within {timeout:g} s"
            case MCPError():
                reason = f"the server answered with error {leaf.code}: {leaf.message}"
            case _StartFailure():
                reason = str(leaf)
            case FileNotFoundError():
                reason = "command not found"
            case PermissionError():
                reason = f"permission denied ({leaf})"
            case httpx2.ConnectError():
                reason = f"unreachable: {_connect_reason(leaf)}"
            case httpx2.TimeoutException():
                reason = f"no answer within {timeout:g} s"
            case httpx2.HTTPStatusError():
                reason = f"HTTP {leaf.response.status_code}"
            case _:
                reason = f"{type(leaf).__name__}: {leaf}" if str(leaf) else type(leaf).__name__
        if reason not in reasons:
            reasons.append(reason)
    return "; ".join(reasons)


def _connect_reason(exc: BaseException) -> str:
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        current = current.__cause__ or current.__context__
    return str(exc)


def text_of(result: mcp.types.CallToolResult) -> str:
    """A tool result as the text a model reads: text blocks verbatim, other content named."""
    parts: list[str] = []
    for block in result.content:
        match block:
            case mcp.types.TextContent(text=text):
                parts.append(text)
            case mcp.types.EmbeddedResource(resource=mcp.types.TextResourceContents(text=text)):
                parts.append(text)
            case mcp.types.EmbeddedResource(resource=resource):
                parts.append(f"[resource {resource.uri} ({resource.mime_type or 'binary'})]")
            case mcp.types.ResourceLink(uri=uri):
                parts.append(f"[resource link {uri}]")
            case mcp.types.ImageContent(mime_type=mime_type):
                parts.append(f"[image {mime_type}]")
            case mcp.types.AudioContent(mime_type=mime_type):
                parts.append(f"[audio {mime_type}]")
    if not parts and result.structured_content is not None:
        return json.dumps(result.structured_content)
    return "\n".join(parts)
