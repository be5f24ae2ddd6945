"""Context benchmark: what measuring the conversation before each model call
costs a run, as a ratio to the same run without it.

    .venv/bin/python bench/context.py            # ~1 min on 2 cores
    .venv/bin/python bench/context.py --quick    # smoke run

Two Stigmer servers (embedded engine, SQLite, each in its own process) run
the same plain agent against the same instant scripted model (its own
process); they differ only in their context settings:

- without: no context window is known (the scripted model names none and
  `llm.context_window` is 0), so nothing is measured;
- with: `llm.context_window` is 1,000,000 tokens, so every model call's
  conversation is measured (the documented estimate: token_count.py) and
  never reaches the trigger, so nothing is summarized.

Every run continues one session that first gets HISTORY runs of its own, so
each measured run's model call carries a long memory (the last 50 executions
of the session, 100 messages: engine inputs keep at most that many), the case
where measuring costs most. Runs are sequential (1 client); the two servers
are measured in alternation, ROUNDS times each, and each figure is the
median over its rounds. Printed: server CPU per run and p50 latency per run
for each, their ratios (with / without), and the in-process cost of one
measurement of such a conversation. Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import harness
from run_measurement import (
    agent_message,
    engine_options,
    scripted_model_main,
    stigmer_server_main,
)

from stigmer.client import AsyncClient
from stigmer.resources.execution_events import COMPLETED
from stigmer.runtime.contract import ContextSettings
from stigmer.runtime.conversation import AssistantMessage, Message, UserMessage
from stigmer.runtime.token_count import measure

HISTORY = 50
MEASURED_WINDOW = 1_000_000


@dataclass(frozen=True)
class Settings:
    runs: int
    rounds: int
    measure_calls: int


FULL = Settings(runs=40, rounds=5, measure_calls=2000)
QUICK = Settings(runs=10, rounds=1, measure_calls=200)


@dataclass(frozen=True)
class Round:
    cpu_per_run: float
    p50: float


async def _runs(address: str, pid: int, count: int, session: str) -> Round:
    async with AsyncClient(address) as client:
        cpu = harness.process_cpu_seconds(pid)
        latencies = []
        for number in range(count):
            started = time.perf_counter()
            created = await client.run(None, f"Question {number}?", session=session)
            final = await client.wait(created.metadata.id)
            latencies.append(time.perf_counter() - started)
            if final.status.phase != COMPLETED:
                raise RuntimeError(f"run {created.metadata.id} failed: {final.status.error}")
        cpu = harness.process_cpu_seconds(pid) - cpu
    return Round(cpu / count, harness.percentile(sorted(latencies), 0.5))


async def _session_with_history(address: str) -> str:
    async with AsyncClient(address) as client:
        applied = await client.apply(agent_message())
        agent_id: str = applied[0].resource.metadata.id
        first = await client.wait((await client.run(agent_id, "Question?")).metadata.id)
        session: str = first.status.session_id
        for number in range(HISTORY - 1):
            created = await client.run(None, f"Earlier question {number}?", session=session)
            await client.wait(created.metadata.id)
        return session


def _measurement_seconds(calls: int) -> float:
    """One measurement of a 100-message conversation, in process, by the estimate."""
    conversation: list[Message] = []
    for number in range(HISTORY):
        conversation += [UserMessage(f"Earlier question {number}?"), AssistantMessage("ok")]

    async def measure_all() -> float:
        started = time.perf_counter()
        for _ in range(calls):
            await measure("Answer every question with one short word.", conversation, [])
        return (time.perf_counter() - started) / calls

    return asyncio.run(measure_all())


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    settings = QUICK if parser.parse_args(argv).quick else FULL
    variants = {
        "without": ContextSettings(),
        "with": ContextSettings(window=MEASURED_WINDOW),
    }
    results: dict[str, list[Round]] = {name: [] for name in variants}
    with (
        tempfile.TemporaryDirectory(prefix="stigmer-bench-context-") as folder,
        harness.SpawnedServer("scripted-model", scripted_model_main) as model,
    ):
        servers = {}
        sessions = {}
        try:
            for name, context in variants.items():
                options = replace(engine_options(model.address), context=context)
                server = harness.SpawnedServer(
                    f"stigmer-{name}",
                    stigmer_server_main,
                    str(Path(folder) / f"{name}.db"),
                    options,
                    None,
                )
                server.start()
                servers[name] = server
                sessions[name] = asyncio.run(_session_with_history(server.address))
            for _ in range(settings.rounds):
                for name, server in servers.items():
                    results[name].append(
                        asyncio.run(
                            _runs(server.address, server.pid, settings.runs, sessions[name])
                        )
                    )
        finally:
            for server in servers.values():
                server.stop()
    one_measurement = _measurement_seconds(settings.measure_calls)
    cpu = {
        name: harness.median([r.cpu_per_run for r in rounds]) for name, rounds in results.items()
    }
    p50 = {name: harness.median([r.p50 for r in rounds]) for name, rounds in results.items()}
    print(
        f"context measurement: {settings.rounds} rounds of {settings.runs} sequential runs per "
        f"server, each run's model call carrying a {2 * HISTORY}-message session memory"
    )
    print(
        harness.table(
            ["", "server CPU / run", "p50 / run"],
            [
                [name, harness.format_seconds(cpu[name]), harness.format_seconds(p50[name])]
                for name in variants
            ]
            + [
                [
                    "with / without",
                    harness.format_ratio(harness.ratio(cpu["with"], cpu["without"])),
                    harness.format_ratio(harness.ratio(p50["with"], p50["without"])),
                ]
            ],
        )
    )
    print(
        f"one measurement of that conversation in process: "
        f"{harness.format_seconds(one_measurement)} "
        f"({harness.format_ratio(harness.ratio(one_measurement, cpu['without']))} of a run's "
        "server CPU without it)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
