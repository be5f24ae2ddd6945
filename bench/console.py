"""Console benchmark: the execution page of a run with 1,000 messages.

    .venv/bin/python bench/console.py            # ~1-2 min on 2 cores
    .venv/bin/python bench/console.py --quick    # fewer repeats

What is measured, all in one run on one machine:

1. One real execution with more than 1,000 messages: the scripted model asks
   for 66 tool calls (the MCP test server's `add`, over stdio) in each of 15
   turns, then answers; the server records every message and tool call.
2. The page: GET /executions/<id> of that run from the console, served by
   uvicorn on a real server's event loop, timed from request to the last byte
   (median of N), and its size. Beside it, three floors measured the same way
   in the same run: a bare Starlette page (a few bytes) and a Starlette page
   returning a fixed copy of the execution page (the same bytes, no work) on
   the same kind of uvicorn server, and the SDK's get_execution of the same
   execution (the data the page is made from).
3. A live update: the server-side cost of turning one event into the page
   fragments it changes (live.py's ExecutionFragments), for a text delta, a
   message added and a tool call updated, at 1,000 messages.
4. Time to first contentful paint in Debian's chromium (Playwright), for the
   execution page and for the bare page (when chromium is installed).

Numbers are printed with their ratios to the floors: these machines are
shared and noisy, so the ratios are what compare between runs. Nothing here
asserts on timings. The server and the console run on a thread of this
process (stigmer.testing.server.ServerThread), the client on the main thread.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import harness

from stigmer.api.v1 import execution_pb2
from stigmer.client import Client
from stigmer.console.app import ConsoleOptions, templates_environment
from stigmer.console.live import ExecutionFragments
from stigmer.console.serving import ConsoleServer
from stigmer.engine.options import EngineOptions
from stigmer.resources.execution_events import (
    COMPLETED,
    message_delta_event,
    message_event,
    tool_call_event,
)
from stigmer.runtime.contract import ModelSettings
from stigmer.testing.scripted_model import Reply, ScriptedModel, ToolCallStep
from stigmer.testing.server import ServerThread

ROUNDS = 15
CALLS_PER_ROUND = 66
AGENT = f"""\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata:
  name: Counter
spec:
  instructions: You add numbers with the add tool, many at a time.
  mcp_servers:
    - name: calc
      stdio:
        command: {sys.executable}
        args: ["-m", "stigmer.testing.mcp_server"]
"""
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def build_long_execution(client: Client, model: ScriptedModel) -> execution_pb2.AgentExecution:
    client.apply(AGENT)
    for turn in range(ROUNDS):
        calls = tuple(
            ToolCallStep("add", {"a": turn * 1000 + index, "b": 1})
            for index in range(CALLS_PER_ROUND)
        )
        model.add(Reply(tool_calls=calls))
    model.add(Reply(content="All the sums are in the tool results above."))
    started = client.run("counter", "Add one to each of these numbers.")
    deadline = time.monotonic() + 600
    while True:
        found = client.get_execution(started.metadata.id)
        if found.status.phase in (COMPLETED, execution_pb2.EXECUTION_PHASE_FAILED):
            break
        if time.monotonic() > deadline:
            raise SystemExit("the long execution did not end within 600 s")
        time.sleep(0.5)
    if found.status.phase != COMPLETED:
        raise SystemExit(f"the long execution failed: {found.status.error}")
    return found


class FloorPages:
    """A bare Starlette app on uvicorn, as the console is served: `/bare` and
    `/copy` (a fixed copy of the page measured)."""

    def __init__(self, copy: str) -> None:
        async def bare(_: Request) -> HTMLResponse:
            return HTMLResponse("<!doctype html><title>ok</title><p>ok</p>")

        async def copied(_: Request) -> HTMLResponse:
            return HTMLResponse(copy)

        self.app = Starlette(routes=[Route("/bare", bare), Route("/copy", copied)])
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._listener]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise SystemExit("the floor server stopped while starting")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
        self._listener.close()


def fetch_seconds(url: str) -> Callable[[int], object]:
    def fetch(_: int) -> object:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.read()

    return fetch


def fragment_costs(execution: execution_pb2.AgentExecution, repeats: int) -> dict[str, float]:
    fragments = ExecutionFragments(templates_environment())
    state = execution_pb2.AgentExecution()
    state.CopyFrom(execution)
    added = execution_pb2.ExecutionMessage(type=execution_pb2.MESSAGE_TYPE_AI, content="")
    state.status.messages.append(added)
    last_call = execution_pb2.ToolCall()
    last_call.CopyFrom(state.status.tool_calls[-1])
    events = {
        "text delta": message_delta_event(len(state.status.messages) - 1, "more text"),
        "message added": message_event(added),
        "tool call updated": tool_call_event(last_call),
    }
    costs: dict[str, float] = {}
    for name, event in events.items():

        def update(_: int, event: Any = event) -> object:
            return fragments.changed(state, event)

        costs[name] = harness.median(harness.time_each(update, repeats))
    return costs


def first_paints(urls: dict[str, str], repeats: int) -> dict[str, float]:
    executable = shutil.which("chromium")
    if executable is None:
        return {}
    from playwright.sync_api import sync_playwright

    paints: dict[str, list[float]] = {name: [] for name in urls}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            for _ in range(repeats):
                for name, url in urls.items():
                    context = browser.new_context()
                    page = context.new_page()
                    page.goto(url, wait_until="load")
                    painted: Any = page.evaluate(
                        """() => new Promise(done => {
                            const seen = () => performance.getEntriesByName(
                                "first-contentful-paint");
                            if (seen().length) return done(seen()[0].startTime);
                            new PerformanceObserver(() => done(seen()[0].startTime))
                                .observe({type: "paint", buffered: true});
                        })"""
                    )
                    paints[name].append(float(painted) / 1000)
                    context.close()
        finally:
            browser.close()
    return {name: harness.median(values) for name, values in paints.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    arguments = parser.parse_args()
    repeats = 5 if arguments.quick else 20
    with (
        tempfile.TemporaryDirectory() as folder,
        ScriptedModel() as model,
        ServerThread(
            str(Path(folder) / "stigmer.db"),
            engine=EngineOptions(
                model=ModelSettings(provider="openai", model="scripted", base_url=model.base_url)
            ),
        ) as server,
        Client(server.address) as client,
    ):
        print(f"recording one execution of {ROUNDS} turns x {CALLS_PER_ROUND} tool calls...")
        execution = build_long_execution(client, model)
        message_count = len(execution.status.messages)
        web_console = ConsoleServer(ConsoleOptions(server.address))
        server.run(web_console.start())
        page_url = web_console.url + f"executions/{execution.metadata.id}"
        try:
            page = fetch_seconds(page_url)(0)
            assert isinstance(page, bytes)
            floors = FloorPages(page.decode())
            server.run(floors.start())
            try:
                floor_url = f"http://127.0.0.1:{floors.port}/"
                timings = {
                    "execution page": harness.median(
                        harness.time_each(fetch_seconds(page_url), repeats)
                    ),
                    "floor: bare Starlette page": harness.median(
                        harness.time_each(fetch_seconds(floor_url + "bare"), repeats)
                    ),
                    "floor: same bytes, no work": harness.median(
                        harness.time_each(fetch_seconds(floor_url + "copy"), repeats)
                    ),
                    "floor: SDK get_execution": harness.median(
                        harness.time_each(
                            lambda _: client.get_execution(execution.metadata.id), repeats
                        )
                    ),
                }
                paints = first_paints(
                    {"execution page": page_url, "bare Starlette page": floor_url + "bare"},
                    max(3, repeats // 4),
                )
            finally:
                server.run(floors.stop())
        finally:
            server.run(web_console.stop())
        costs = fragment_costs(execution, repeats * 10)

    page_seconds = timings["execution page"]
    print(
        f"\nexecution {execution.metadata.id}: {message_count} messages, "
        f"{len(execution.status.tool_calls)} tool calls; page {len(page):,} bytes "
        f"({len(page) / message_count:,.0f} per message)\n"
    )
    print(
        harness.table(
            [f"GET, median of {repeats}", "time", "execution page / this"],
            [
                [
                    name,
                    harness.format_seconds(value),
                    harness.format_ratio(harness.ratio(page_seconds, value)),
                ]
                for name, value in timings.items()
            ],
        )
    )
    print()
    print(
        harness.table(
            [f"live update at {message_count} messages", "server time", "/ bare page GET"],
            [
                [
                    name,
                    harness.format_seconds(value),
                    harness.format_ratio(
                        harness.ratio(value, timings["floor: bare Starlette page"])
                    ),
                ]
                for name, value in costs.items()
            ],
        )
    )
    if paints:
        print()
        print(
            harness.table(
                ["chromium first contentful paint", "time", "/ bare page"],
                [
                    [
                        name,
                        harness.format_seconds(value),
                        harness.format_ratio(harness.ratio(value, paints["bare Starlette page"])),
                    ]
                    for name, value in paints.items()
                ],
            )
        )
    else:
        print("\n(chromium is not installed: no first-paint figures)")


if __name__ == "__main__":
    main()
