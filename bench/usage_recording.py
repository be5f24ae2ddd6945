"""Usage-recording benchmark: what recording a model call's usage costs a run.

    .venv/bin/python bench/usage_recording.py            # ~1 min on 2 cores
    .venv/bin/python bench/usage_recording.py --quick    # smoke run

Two Stigmer servers on SQLite, each in its own process with its own store,
run the same plain agent against an instant scripted model (in its own
process too). One model reports usage with every answer, so each run prices
the call, writes its usage record and adds to status.usage (all in the
record-events transaction of the call's report); the other reports none, so
its runs record no usage at all. Runs go one at a time, in alternating
batches on the two servers so that the machine's noise falls on both alike.

Printed: per run, the median latency and the server CPU with and without
usage, and their ratios (with / without). Ratios, not times: these machines
are shared and noisy. Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from multiprocessing.connection import Connection
from pathlib import Path

import harness

from stigmer.client.aio import AsyncClient
from stigmer.engine.options import EngineOptions
from stigmer.resources.execution_events import COMPLETED
from stigmer.runtime.contract import ModelSettings
from stigmer.server.app import ServerOptions, StigmerServer
from stigmer.testing.scripted_model import Reply, ScriptedModel

AGENT = """\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata: {name: Bench}
spec:
  instructions: Answer with ok.
"""


@asynccontextmanager
async def scripted_model(is_usage_reported: bool) -> AsyncIterator[str]:
    reply = Reply(content="ok", is_usage_reported=is_usage_reported)
    with ScriptedModel(default=reply) as model:
        yield model.base_url


def scripted_model_main(connection: Connection, is_usage_reported: bool) -> None:
    harness.run_server_child(connection, functools.partial(scripted_model, is_usage_reported))


@asynccontextmanager
async def stigmer_server(store_url: str, model_base_url: str) -> AsyncIterator[str]:
    engine = EngineOptions(
        workers=4, model=ModelSettings(provider="openai", model="gpt-4o", base_url=model_base_url)
    )
    async with StigmerServer(ServerOptions(store_url=store_url, port=0, engine=engine)) as server:
        yield server.address


def stigmer_server_main(connection: Connection, store_url: str, model_base_url: str) -> None:
    harness.run_server_child(
        connection, functools.partial(stigmer_server, store_url, model_base_url)
    )


async def run_batch(client: AsyncClient, runs: int, *, is_usage_expected: bool) -> list[float]:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        final = await client.wait((await client.run("bench", "ok?")).metadata.id)
        seconds.append(time.perf_counter() - started)
        calls = final.status.usage.model_calls
        if final.status.phase != COMPLETED or calls != (1 if is_usage_expected else 0):
            raise RuntimeError(f"unexpected run: {final.status.phase} with {calls} usage calls")
    return seconds


async def measure(batches: int, runs: int, folder: Path) -> None:
    with (
        harness.SpawnedServer("model-usage", scripted_model_main, True) as with_model,
        harness.SpawnedServer("model-plain", scripted_model_main, False) as plain_model,
        harness.SpawnedServer(
            "stigmer-usage", stigmer_server_main, str(folder / "usage.db"), with_model.address
        ) as with_server,
        harness.SpawnedServer(
            "stigmer-plain", stigmer_server_main, str(folder / "plain.db"), plain_model.address
        ) as plain_server,
    ):
        servers = {True: with_server, False: plain_server}
        latencies: dict[bool, list[float]] = {True: [], False: []}
        cpu: dict[bool, float] = {True: 0.0, False: 0.0}
        async with (
            AsyncClient(with_server.address) as with_client,
            AsyncClient(plain_server.address) as plain_client,
        ):
            clients = {True: with_client, False: plain_client}
            for client in clients.values():
                await client.apply(AGENT)
            for is_usage in (True, False):  # warm both up, untimed
                await run_batch(clients[is_usage], 5, is_usage_expected=is_usage)
            for batch in range(batches):
                for is_usage in (True, False) if batch % 2 == 0 else (False, True):
                    before = harness.process_cpu_seconds(servers[is_usage].pid)
                    latencies[is_usage] += await run_batch(
                        clients[is_usage], runs, is_usage_expected=is_usage
                    )
                    cpu[is_usage] += harness.process_cpu_seconds(servers[is_usage].pid) - before
            usage_report = await with_client.usage(agent="bench")
    total = batches * runs
    rows = []
    for label, is_usage in (("with usage recording", True), ("without", False)):
        rows.append(
            [
                label,
                harness.format_seconds(harness.median(latencies[is_usage])),
                harness.format_seconds(cpu[is_usage] / total),
            ]
        )
    latency_ratio = harness.median(latencies[True]) / harness.median(latencies[False])
    cpu_ratio = cpu[True] / cpu[False] if cpu[False] else float("nan")
    rows.append(["ratio (with / without)", f"{latency_ratio:.2f}x", f"{cpu_ratio:.2f}x"])
    print(f"Usage recording, SQLite, embedded engine, {total} runs each, 1 in flight")
    print(harness.table(["runs", "p50 latency", "server CPU per run"], rows))
    print(
        f"usage records summed by `stigmer usage`: {usage_report.total.model_calls} calls "
        f"(warm-up included), cost {usage_report.total.cost_micros} micro-dollars"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    arguments = parser.parse_args()
    batches, runs = (2, 10) if arguments.quick else (6, 40)
    with tempfile.TemporaryDirectory(prefix="stigmer-bench-usage-") as folder:
        asyncio.run(measure(batches, runs, Path(folder)))


if __name__ == "__main__":
    main()
