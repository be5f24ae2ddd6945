"""ToolBox against the real MCP test server: naming, deadlines and start failures."""

from __future__ import annotations

import asyncio
import sys

import pytest

from stigmer.local_ports import free_local_port
from stigmer.runtime.contract import HttpServer, StdioServer, ToolServer, ToolServerError
from stigmer.runtime.tools import ToolBox, ToolResult
from tests.processes import child_pids, linux_only
from tests.runtime.servers import stdio_tools
from tests.waiting import wait_until


def python_server(name: str, code: str) -> ToolServer:
    return ToolServer(name=name, transport=StdioServer(command=sys.executable, args=("-c", code)))


def test_a_tool_name_two_servers_share_is_prefixed_with_each_server_name() -> None:
    alpha = stdio_tools("alpha", enabled=("read_env", "add"), env={"STIGMER_TEST_SECRET": "a"})
    beta = stdio_tools("beta", enabled=("read_env", "echo"), env={"STIGMER_TEST_SECRET": "b"})

    async def scenario() -> None:
        async with ToolBox([alpha, beta]) as box:
            assert [tool.name for tool in box.tools] == [
                "add",
                "alpha__read_env",
                "echo",
                "beta__read_env",
            ]
            assert box.server_of("beta__read_env") == "beta"
            assert box.server_of("add") == "alpha"
            assert box.server_of("read_env") is None
            from_beta = await box.call("beta__read_env", {"name": "STIGMER_TEST_SECRET"})
            from_alpha = await box.call("alpha__read_env", {"name": "STIGMER_TEST_SECRET"})
        assert from_beta == ToolResult("b", is_error=False)
        assert from_alpha == ToolResult("a", is_error=False)

    asyncio.run(scenario())


def test_a_call_past_its_deadline_is_an_error_result_and_the_server_keeps_answering() -> None:
    async def scenario() -> None:
        async with ToolBox([stdio_tools()], call_timeout_seconds=0.5) as box:
            slow = await box.call("sleep", {"seconds": 30})
            after = await box.call("echo", {"text": "awake"})
        assert slow == ToolResult(
            "tool 'sleep' on server 'tools' failed: no answer within 0.5 s", is_error=True
        )
        assert after == ToolResult("awake", is_error=False)

    asyncio.run(scenario())


@linux_only
def test_a_server_that_exits_at_start_is_an_error_with_its_stderr_and_stops_the_others() -> None:
    broken = python_server("broken", "import sys; sys.exit('bad config: no token')")
    before = child_pids()

    async def scenario() -> None:
        async with ToolBox([stdio_tools(), broken]):
            pytest.fail("the toolbox must not open")

    with pytest.raises(ToolServerError) as raised:
        asyncio.run(scenario())
    message = str(raised.value)
    assert message.startswith("tool server 'broken' (command ")
    assert "could not start: the server closed the connection" in message
    assert message.endswith("its stderr ends with: bad config: no token")
    wait_until(lambda: not child_pids() - before, what="the tool server to exit", within=5)


@linux_only
def test_a_server_silent_past_the_start_deadline_is_an_error_and_is_stopped() -> None:
    mute = python_server("mute", "import time; time.sleep(60)")
    before = child_pids()

    async def scenario() -> None:
        async with ToolBox([mute], start_timeout_seconds=0.5):
            pytest.fail("the toolbox must not open")

    with pytest.raises(ToolServerError, match=r"'mute' .* could not start: no answer within 0.5 s"):
        asyncio.run(scenario())
    wait_until(lambda: not child_pids() - before, what="the tool server to exit", within=5)


def test_an_unreachable_http_server_is_an_error_naming_its_url() -> None:
    url = f"http://127.0.0.1:{free_local_port()}/mcp"
    remote = ToolServer(name="remote", transport=HttpServer(url=url, timeout_seconds=5))

    async def scenario() -> None:
        async with ToolBox([remote]):
            pytest.fail("the toolbox must not open")

    with pytest.raises(ToolServerError) as raised:
        asyncio.run(scenario())
    assert str(raised.value) == (
        f"tool server 'remote' (url {url}) could not start: unreachable: connection refused"
    )


def test_a_missing_working_directory_is_an_error_naming_it() -> None:
    lost = ToolServer(
        name="lost",
        transport=StdioServer(command=sys.executable, working_dir="/nonexistent/stigmer-dir"),
    )

    async def scenario() -> None:
        async with ToolBox([lost]):
            pytest.fail("the toolbox must not open")

    with pytest.raises(
        ToolServerError, match="working directory /nonexistent/stigmer-dir does not exist"
    ):
        asyncio.run(scenario())


def test_two_tool_servers_with_one_name_are_an_error() -> None:
    async def scenario() -> None:
        async with ToolBox([stdio_tools("twin"), stdio_tools("twin")]):
            pytest.fail("the toolbox must not open")

    with pytest.raises(ToolServerError, match="tool server names must be unique: twin"):
        asyncio.run(scenario())
