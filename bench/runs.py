"""Run benchmark: what one whole agent execution costs, next to one control-plane call.

    .venv/bin/python bench/runs.py                 # full run on SQLite (~1 min on 2 cores)
    .venv/bin/python bench/runs.py --quick         # smoke run (< 60 s)
    .venv/bin/python bench/runs.py --store both    # SQLite, then PostgreSQL
    .venv/bin/python bench/runs.py --engine both   # embedded, then Temporal + stigmer worker

This file is the command; run_measurement.py measures and run_report.py
prints the tables.

`--store sqlite|postgres|both` picks the store behind the Stigmer server (see
stores.py; PostgreSQL is a throwaway server started by the run). With both,
each store gets its own report, then the ratios of the two side by side.
`--engine embedded|temporal|both` picks the engine the same way (see
engines.py): on Temporal, the server starts a workflow per execution and one
`stigmer worker` process runs its activities; a bare one-activity Temporal
workflow on the same dev server is an extra floor, measured in the same run.
Every store runs with every chosen engine.

What is measured:

1. Full runs of a plain agent (instructions, no tools) against an instant
   scripted model (`ScriptedModel(default=Reply(content="ok"))`, an
   OpenAI-compatible HTTP server in its own process). Each client loops
   `AsyncClient.run(agent, message)` + `wait(execution_id)`; the latency of a
   run is from just before `run()` to when `wait()` returns the execution
   COMPLETED. A fixed count of runs at 1 and at 32 concurrent clients (tasks
   sharing one SDK client and channel): executions/s, p50/p99, server and
   model CPU per execution, and the events each execution recorded
   (status.last_sequence, cross-checked against the event log in the store).
   Every execution must end COMPLETED with the model's answer as its one AI
   message: failures (another phase or answer, an error, no end within
   RUN_TIMEOUT_SECONDS) are counted and printed, never timed.
   From the final state, the server's own timestamps split a run into queued
   (created -> claimed IN_PROGRESS) and running (IN_PROGRESS -> COMPLETED).
2. Two floors, measured against the same processes in the same run:
   - the control-plane `get` (Get agent by id through the SDK, 1 in flight)
     on the same Stigmer server;
   - the model call: one chat completion sent to the same ScriptedModel with
     the `openai` SDK (AsyncOpenAI, max_retries=0, 1 in flight), shaped like
     the engine's (system + user message, streamed, usage included). A
     non-streamed request is shown beside it for context.
   For context too: the cost of building and closing an AsyncOpenAI client
   in-process, which the engine does once per execution.

The Stigmer server runs with EngineOptions(workers=8) (other engine options at
their defaults), a fresh store of the chosen kind and its engine's model
pointing at the scripted model's base_url.

Why ratios: as in controlplane.py, these machines are shared and noisy. A run
is one create transaction, a queue, an engine claim, a model HTTP round trip,
events recorded one transaction each and a live stream to the client; dividing
by a `get` measured on the same server (and by a bare model call to the same
model) shows what a whole execution costs in units of one control-plane call,
which stays comparable between runs where "40 executions/s" does not. Each run
level is measured between two floor measurements (just before and just after)
and divided by their mean. Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from collections.abc import Sequence

import engines
import grpc
import openai
import stores
from run_measurement import FULL, MODEL_ANSWER, MODEL_NAME, QUICK, WORKERS, Results, Settings, run
from run_report import report, report_parts, say


def parse_arguments(
    argv: Sequence[str],
) -> tuple[Settings, tuple[str, ...], tuple[str, ...]]:
    """The settings and the names of the stores and engines to run on, in order."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short smoke run (< 60 s per part)")
    stores.add_store_option(parser)
    engines.add_engine_option(parser)
    arguments = parser.parse_args(argv)
    settings = QUICK if arguments.quick else FULL
    return settings, stores.chosen_stores(arguments.store), engines.chosen_engines(arguments.engine)


def main(argv: Sequence[str]) -> int:
    settings, store_names, engine_names = parse_arguments(argv)
    started = time.perf_counter()
    say(
        f"Stigmer run benchmark ({'quick' if settings.quick else 'full'}): "
        f"Python {platform.python_version()}, grpcio {grpc.__version__}, "
        f"openai {openai.__version__}, {os.cpu_count()} cores, stores: {', '.join(store_names)}, "
        f"engines: {', '.join(engine_names)}"
    )
    say(
        f"server: EngineOptions(workers={WORKERS}), model {MODEL_NAME!r} = "
        f"ScriptedModel(default=Reply(content={MODEL_ANSWER!r})) in its own process"
    )
    say(
        f"runs per level: {settings.runs_one} at 1 client, {settings.runs_many} at "
        f"{settings.many} (after {settings.run_warmup_one}/{settings.run_warmup_many} warm-up "
        f"runs); floors: {settings.get_calls} gets, {settings.model_calls} model calls each "
        f"(after {settings.get_warmup}/{settings.model_warmup} warm-up calls)"
    )
    say()
    by_part: list[tuple[str, Results]] = []
    for store_name in store_names:
        for engine_name in engine_names:
            try:
                with (
                    stores.open_bench_store(store_name) as store,
                    engines.open_bench_engine(engine_name) as engine,
                ):
                    part = f"{store.name} store, {engine.name} engine"
                    say(f"######## {part} ########")
                    say(store.describe())
                    say(engine.describe())
                    say()
                    results = asyncio.run(run(settings, store, engine))
            except (KeyboardInterrupt, asyncio.CancelledError):
                say("interrupted")
                return 130
            report(part, results)
            say()
            by_part.append((part, results))
    if len(by_part) > 1:
        report_parts(by_part)
    say(f"total runtime: {time.perf_counter() - started:.1f} s")
    failed = any(level.runs.failures for _, results in by_part for level in results.levels)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
