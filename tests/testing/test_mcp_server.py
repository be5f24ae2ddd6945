"""The MCP test server, driven through the real MCP client SDK over stdio and HTTP."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CONNECTION_CLOSED, CallToolResult, TextContent

import stigmer
from stigmer.testing.mcp_server import HttpMcpServer
from tests.processes import child_pids, linux_only
from tests.waiting import wait_until

TOOLS = ["add", "echo", "repeat", "read_env", "pid", "fail", "crash", "sleep", "discard"]
CALL_DEADLINE = 20.0


def stdio_parameters(env: Mapping[str, str] | None = None) -> StdioServerParameters:
    # The SDK passes the child only a few variables: PYTHONPATH makes it run
    # the same source as the tests.
    source = str(Path(stigmer.__file__).resolve().parents[1])
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "stigmer.testing.mcp_server"],
        env={"PYTHONPATH": source, **(env or {})},
    )


@asynccontextmanager
async def stdio_session(env: Mapping[str, str] | None = None) -> AsyncIterator[ClientSession]:
    async with (
        stdio_client(stdio_parameters(env)) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


@asynccontextmanager
async def http_session(url: str) -> AsyncIterator[ClientSession]:
    async with (
        streamable_http_client(url) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def text_of(result: CallToolResult) -> str:
    return "".join(block.text for block in result.content if isinstance(block, TextContent))


def test_stdio_server_lists_the_eight_tools_with_their_input_schemas() -> None:
    async def scenario() -> None:
        async with stdio_session() as session:
            listed = await session.list_tools()
        tools = {tool.name: tool for tool in listed.tools}
        assert [tool.name for tool in listed.tools] == TOOLS

        def properties(name: str) -> dict[str, str]:
            schema = tools[name].input_schema
            assert schema["type"] == "object"
            return {arg: spec["type"] for arg, spec in schema.get("properties", {}).items()}

        assert properties("add") == {"a": "integer", "b": "integer"}
        assert tools["add"].input_schema["required"] == ["a", "b"]
        assert properties("echo") == {"text": "string"}
        assert properties("read_env") == {"name": "string"}
        assert properties("fail") == {"message": "string"}
        assert properties("crash") == {}
        assert properties("sleep") == {"seconds": "number"}

    asyncio.run(scenario())


def test_add_over_stdio_returns_the_sum_as_text() -> None:
    async def scenario() -> None:
        async with stdio_session() as session:
            result = await session.call_tool("add", {"a": 2, "b": 3})
        assert not result.is_error
        assert text_of(result) == "5"
        assert result.structured_content == {"result": 5}

    asyncio.run(scenario())


def test_echo_over_stdio_returns_its_text_unchanged() -> None:
    async def scenario() -> None:
        async with stdio_session() as session:
            result = await session.call_tool("echo", {"text": "héllo, wörld"})
        assert not result.is_error
        assert text_of(result) == "héllo, wörld"

    asyncio.run(scenario())


def test_fail_over_stdio_returns_an_error_result_carrying_the_message() -> None:
    async def scenario() -> None:
        async with stdio_session() as session:
            result = await session.call_tool("fail", {"message": "the tool said no"})
            # The session survives a failed call.
            after = await session.call_tool("echo", {"text": "still here"})
        assert result.is_error
        assert "the tool said no" in text_of(result)
        assert text_of(after) == "still here"

    asyncio.run(scenario())


def test_read_env_sees_the_stdio_env_and_records_each_read_in_the_canary_file(
    tmp_path: Path,
) -> None:
    canary = tmp_path / "canary.txt"
    env = {"STIGMER_TEST_SECRET": "s3cret-value", "STIGMER_TEST_CANARY_FILE": str(canary)}

    async def scenario() -> None:
        async with stdio_session(env) as session:
            secret = await session.call_tool("read_env", {"name": "STIGMER_TEST_SECRET"})
            missing = await session.call_tool("read_env", {"name": "STIGMER_TEST_NEVER_SET"})
        assert text_of(secret) == "s3cret-value"
        assert text_of(missing) == "<unset>"

    asyncio.run(scenario())
    assert canary.read_text() == (
        "STIGMER_TEST_SECRET=s3cret-value\nSTIGMER_TEST_NEVER_SET=<unset>\n"
    )


def test_sleep_returns_slept_and_a_cancelled_sleep_leaves_the_session_usable() -> None:
    async def scenario() -> None:
        async with stdio_session() as session:
            slept = await session.call_tool("sleep", {"seconds": 0.05})
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(session.call_tool("sleep", {"seconds": 60}), 0.5)
            after = await session.call_tool("echo", {"text": "awake"})
        assert text_of(slept) == "slept"
        assert text_of(after) == "awake"

    asyncio.run(scenario())


@linux_only
def test_crash_over_stdio_fails_the_call_promptly_and_the_server_process_is_gone() -> None:
    before = child_pids()

    async def scenario() -> int:
        async with stdio_session() as session:
            spawned = child_pids() - before
            assert len(spawned) == 1
            with pytest.raises(MCPError) as raised:
                await asyncio.wait_for(session.call_tool("crash", {}), CALL_DEADLINE)
            assert raised.value.code == CONNECTION_CLOSED
            return spawned.pop()

    started = time.monotonic()
    pid = asyncio.run(scenario())
    assert time.monotonic() - started < CALL_DEADLINE
    wait_until(lambda: pid not in child_pids(), what=f"the server process {pid} to exit", within=10)


def test_http_server_lists_tools_and_adds_and_sees_its_env() -> None:
    async def scenario(url: str) -> None:
        async with http_session(url) as session:
            listed = await session.list_tools()
            added = await session.call_tool("add", {"a": 2, "b": 3})
            secret = await session.call_tool("read_env", {"name": "STIGMER_TEST_SECRET"})
        assert [tool.name for tool in listed.tools] == TOOLS
        assert not added.is_error
        assert text_of(added) == "5"
        assert text_of(secret) == "over-http"

    with HttpMcpServer(env={"STIGMER_TEST_SECRET": "over-http"}) as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert server.url.endswith("/mcp")
        asyncio.run(scenario(server.url))


@linux_only
def test_stopping_the_http_server_leaves_no_child_process_behind() -> None:
    server = HttpMcpServer()
    server.start()
    pid = server.pid
    assert pid is not None
    assert pid in child_pids()

    server.stop()
    assert pid not in child_pids()
    assert not Path(f"/proc/{pid}").exists()
    server.stop()


def test_http_server_that_exits_before_listening_raises_with_its_output() -> None:
    # A bogus PYTHONHOME makes the interpreter die at startup, printing why.
    server = HttpMcpServer(env={"PYTHONHOME": "/nonexistent-python-home"})
    with pytest.raises(RuntimeError, match="exited with code") as raised:
        server.start()
    assert "nonexistent-python-home" in str(raised.value)
    server.stop()


def test_http_server_that_misses_its_start_deadline_raises_and_is_killed() -> None:
    server = HttpMcpServer()
    server.START_DEADLINE = 0.01
    with pytest.raises(RuntimeError, match="did not start within"):
        server.start()
    pid = server.pid
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    server.stop()
