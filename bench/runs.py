"""Run benchmark: what one whole agent execution costs, next to one control-plane call.

    .venv/bin/python bench/runs.py                 # full run on SQLite (~1 min on 2 cores)
    .venv/bin/python bench/runs.py --quick         # smoke run (< 60 s)
    .venv/bin/python bench/runs.py --store both    # SQLite, then PostgreSQL
    .venv/bin/python bench/runs.py --engine both   # embedded, then Temporal + stigmer worker

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
import collections
import functools
import math
import os
import platform
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

import engines
import grpc
import harness
import openai
import stores
from engines import BenchEngine, WorkerPids
from google.protobuf.timestamp_pb2 import Timestamp
from harness import Call, Sample, format_rate, format_ratio, format_seconds, ratio
from openai.types.chat import ChatCompletionMessageParam
from stores import BenchStore

from stigmer.api.v1 import agent_pb2, execution_pb2, meta_pb2
from stigmer.client.aio import AsyncClient
from stigmer.engine.options import EngineOptions
from stigmer.engine.temporal_engine import TemporalOptions
from stigmer.resources.execution_events import COMPLETED, phase_name
from stigmer.runtime.contract import ModelSettings
from stigmer.server.app import ServerOptions, StigmerServer
from stigmer.testing.scripted_model import Reply, ScriptedModel

WORKERS = 8
MODEL_NAME = "scripted"
MODEL_ANSWER = "ok"
INSTRUCTIONS = "Answer every question with one short word."
MESSAGE = "Are you there?"
RUN_TIMEOUT_SECONDS = 60.0
FAILURES_SHOWN = 10


@dataclass(frozen=True)
class Settings:
    quick: bool
    many: int
    runs_one: int
    runs_many: int
    run_warmup_one: int
    run_warmup_many: int
    get_calls: int
    get_warmup: int
    model_calls: int
    model_warmup: int
    client_builds: int
    bare_workflow_calls: int

    def runs(self, clients: int) -> int:
        return self.runs_one if clients == 1 else self.runs_many

    def run_warmup(self, clients: int) -> int:
        return self.run_warmup_one if clients == 1 else self.run_warmup_many


FULL = Settings(
    quick=False,
    many=32,
    runs_one=200,
    runs_many=640,
    run_warmup_one=10,
    run_warmup_many=32,
    get_calls=1000,
    get_warmup=100,
    model_calls=300,
    model_warmup=30,
    client_builds=20,
    bare_workflow_calls=200,
)
QUICK = Settings(
    quick=True,
    many=32,
    runs_one=40,
    runs_many=160,
    run_warmup_one=5,
    run_warmup_many=32,
    get_calls=300,
    get_warmup=50,
    model_calls=100,
    model_warmup=20,
    client_builds=5,
    bare_workflow_calls=50,
)


def say(text: str = "") -> None:
    print(text, flush=True)


# -- the processes: scripted model and Stigmer server ---------------------------------


@asynccontextmanager
async def scripted_model() -> AsyncIterator[str]:
    """An instant scripted model; yields its base_url."""
    with ScriptedModel(default=Reply(content=MODEL_ANSWER)) as model:
        yield model.base_url


def scripted_model_main(connection: Connection) -> None:
    """Target of the scripted model's process."""
    harness.run_server_child(connection, scripted_model)


def engine_options(model_base_url: str) -> EngineOptions:
    return EngineOptions(
        workers=WORKERS,
        model=ModelSettings(provider="openai", model=MODEL_NAME, base_url=model_base_url),
    )


@asynccontextmanager
async def stigmer_server(
    store_url: str, engine: EngineOptions, temporal: TemporalOptions | None
) -> AsyncIterator[str]:
    options = ServerOptions(store_url=store_url, port=0, engine=engine, temporal=temporal)
    async with StigmerServer(options) as server:
        yield server.address


def stigmer_server_main(
    connection: Connection,
    store_url: str,
    engine: EngineOptions,
    temporal: TemporalOptions | None,
) -> None:
    """Target of the Stigmer server's process."""
    harness.run_server_child(
        connection, functools.partial(stigmer_server, store_url, engine, temporal)
    )
    if temporal is not None:
        engines.exit_without_finalizing()


# -- runs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """How one run ended; `error` is empty for a run that ended COMPLETED."""

    execution_id: str
    seconds: float
    error: str = ""
    events: int = 0
    queued_seconds: float = math.nan
    running_seconds: float = math.nan

    @property
    def is_completed(self) -> bool:
        return not self.error


def timestamp_seconds(earlier: Timestamp, later: Timestamp) -> float:
    """Seconds between two set protobuf Timestamps; NaN when either is unset."""
    start_ns, end_ns = earlier.ToNanoseconds(), later.ToNanoseconds()
    if not start_ns or not end_ns:
        return math.nan
    return (end_ns - start_ns) / 1e9


def outcome_of(execution: execution_pb2.AgentExecution, seconds: float) -> Outcome:
    status = execution.status
    execution_id = execution.metadata.id
    if status.phase != COMPLETED:
        detail = f": {status.error}" if status.error else ""
        error = f"ended {phase_name(status.phase)}{detail}"
        return Outcome(execution_id, seconds, error=error, events=status.last_sequence)
    answers = [m.content for m in status.messages if m.type == execution_pb2.MESSAGE_TYPE_AI]
    if answers != [MODEL_ANSWER]:
        error = f"ended COMPLETED, but its AI messages are {answers!r}"
        return Outcome(execution_id, seconds, error=error, events=status.last_sequence)
    return Outcome(
        execution_id,
        seconds,
        events=status.last_sequence,
        queued_seconds=timestamp_seconds(status.audit.created_at, status.started_at),
        running_seconds=timestamp_seconds(status.started_at, status.completed_at),
    )


async def run_once(client: AsyncClient, agent_id: str) -> Outcome:
    """One run + wait; any error or another end than COMPLETED is a failure."""
    execution_id = ""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(RUN_TIMEOUT_SECONDS):
            created = await client.run(agent_id, MESSAGE)
            execution_id = created.metadata.id
            final = await client.wait(execution_id)
    except TimeoutError:
        error = f"no end within {RUN_TIMEOUT_SECONDS:g} s"
        return Outcome(execution_id, time.perf_counter() - started, error=error)
    except Exception as error:
        detail = f"{type(error).__name__}: {error}"
        return Outcome(execution_id, time.perf_counter() - started, error=detail)
    seconds = time.perf_counter() - started
    if not final.metadata.id:  # the stream ended without a snapshot
        return Outcome(execution_id, seconds, error="the stream ended without a state")
    return outcome_of(final, seconds)


RunCall = Callable[[], Awaitable[Outcome]]
"""One run by one client."""


@dataclass(frozen=True)
class RunSample:
    """A run level: the Sample of the COMPLETED runs, and every outcome.

    The Sample's latencies hold only COMPLETED runs, so its throughput is
    completed executions per second of wall time and its CPU per call is per
    completed execution.
    """

    sample: Sample
    outcomes: tuple[Outcome, ...]
    warmup_outcomes: tuple[Outcome, ...]
    model_cpu_seconds: float

    @property
    def completed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.is_completed]

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in (*self.warmup_outcomes, *self.outcomes) if not o.is_completed]

    @property
    def model_cpu_per_execution(self) -> float:
        count = len(self.completed)
        return self.model_cpu_seconds / count if count else math.nan

    def p50_of(self, of: Callable[[Outcome], float]) -> float:
        values = sorted(v for v in map(of, self.completed) if not math.isnan(v))
        return harness.percentile(values, 0.5)


async def drive_runs(run: RunCall, *, runs: int, clients: int) -> tuple[float, tuple[Outcome, ...]]:
    """`runs` runs by `clients` concurrent clients, each looping run after run.

    Unlike harness.drive, a failed run does not stop the measurement: it is
    kept as an Outcome with its error. Returns the wall seconds and outcomes.
    """
    outcomes: list[Outcome] = []
    indexes = iter(range(runs))

    async def one_client() -> None:
        for _ in indexes:
            outcomes.append(await run())

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(min(clients, runs)):
            group.create_task(one_client())
    return time.perf_counter() - started, tuple(outcomes)


async def measure_runs(
    settings: Settings,
    clients: int,
    run: RunCall,
    *,
    server_pids: Sequence[int],
    model_pid: int,
) -> RunSample:
    """`server_pids`: the server and, on Temporal, its worker: their CPU is
    what running the executions costs."""
    _, warmup = await drive_runs(run, runs=settings.run_warmup(clients), clients=clients)
    server_cpu = sum(harness.process_cpu_seconds(pid) for pid in server_pids)
    model_cpu = harness.process_cpu_seconds(model_pid)
    client_cpu = time.process_time()
    seconds, outcomes = await drive_runs(run, runs=settings.runs(clients), clients=clients)
    client_cpu = time.process_time() - client_cpu
    server_cpu = sum(harness.process_cpu_seconds(pid) for pid in server_pids) - server_cpu
    model_cpu = harness.process_cpu_seconds(model_pid) - model_cpu
    sample = Sample(
        label=f"run + wait, {clients} client{'s' if clients > 1 else ''}",
        in_flight=clients,
        seconds=seconds,
        latencies=tuple(sorted(o.seconds for o in outcomes if o.is_completed)),
        client_cpu_seconds=client_cpu,
        server_cpu_seconds=server_cpu,
    )
    return RunSample(sample, outcomes, warmup, model_cpu)


# -- the floors -----------------------------------------------------------------------


@dataclass(frozen=True)
class Floors:
    """One measurement of each floor."""

    get: Sample
    model: Sample
    model_unstreamed: Sample
    bare_workflow: Sample | None = None  # on Temporal only


@dataclass(frozen=True)
class FloorCalls:
    get: Call
    model: Call
    model_unstreamed: Call
    server_pid: int
    model_pid: int
    bare_workflow: Call | None = None
    worker_pids: WorkerPids | None = None  # the Temporal engine's worker processes


def model_calls(model: openai.AsyncOpenAI) -> tuple[Call, Call]:
    """A streamed chat completion shaped like the engine's, and a plain one."""
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": INSTRUCTIONS},
        {"role": "user", "content": MESSAGE},
    ]

    async def streamed(_: int) -> object:
        stream = await model.chat.completions.create(
            model=MODEL_NAME,
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
        content: list[str] = []
        async with stream:
            async for chunk in stream:
                content.extend(c.delta.content or "" for c in chunk.choices)
        if "".join(content) != MODEL_ANSWER:
            raise RuntimeError(f"the scripted model answered {''.join(content)!r}")
        return content

    async def unstreamed(_: int) -> object:
        completion = await model.chat.completions.create(model=MODEL_NAME, messages=messages)
        if completion.choices[0].message.content != MODEL_ANSWER:
            raise RuntimeError(f"the scripted model answered {completion.choices[0].message}")
        return completion

    return streamed, unstreamed


async def measure_floors(settings: Settings, calls: FloorCalls) -> Floors:
    get = await harness.measure(
        calls.get,
        calls=settings.get_calls,
        in_flight=1,
        warmup=settings.get_warmup,
        label="get",
        server_pid=calls.server_pid,
    )
    model = await harness.measure(
        calls.model,
        calls=settings.model_calls,
        in_flight=1,
        warmup=settings.model_warmup,
        label="model",
        server_pid=calls.model_pid,
    )
    model_unstreamed = await harness.measure(
        calls.model_unstreamed,
        calls=settings.model_calls,
        in_flight=1,
        warmup=settings.model_warmup,
        label="model, not streamed",
        server_pid=calls.model_pid,
    )
    bare_workflow = None
    if calls.bare_workflow is not None and calls.worker_pids is not None:
        bare_workflow = await harness.measure(
            calls.bare_workflow,
            calls=settings.bare_workflow_calls,
            in_flight=1,
            warmup=settings.model_warmup,
            label="bare Temporal workflow",
            server_pid=calls.worker_pids.bare,
        )
    return Floors(get, model, model_unstreamed, bare_workflow)


async def client_build_seconds(base_url: str, count: int) -> tuple[float, ...]:
    """Wall times of AsyncOpenAI(...) + close(), as the engine's provider builds it."""
    timings: list[float] = []
    for _ in range(count):
        started = time.perf_counter()
        client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
        await client.close()
        timings.append(time.perf_counter() - started)
    return tuple(sorted(timings))


# -- the measurement and its tables --------------------------------------------------------


@dataclass(frozen=True)
class Compared:
    """A run level and the floors measured just before and just after it."""

    runs: RunSample
    before: Floors
    after: Floors

    def floor(self, which: str, of: str) -> float:
        """The mean of a Sample property of one floor over the two around this level."""
        values: list[float] = [
            getattr(getattr(self.before, which), of),
            getattr(getattr(self.after, which), of),
        ]
        return sum(values) / len(values)


@dataclass
class Results:
    levels: list[Compared] = field(default_factory=list)
    floors: list[Floors] = field(default_factory=list)
    client_builds: tuple[float, ...] = ()
    stored_events: dict[str, int] = field(default_factory=dict)
    event_kinds: list[str] = field(default_factory=list)


def floors_table(results: Results) -> str:
    headers = ("floor (1 in flight)", "runs", "calls/s", "p50", "p99", "CPU/call", "CPU of")
    rows: list[list[str]] = []
    floors = results.floors
    for name, which, cpu_of in (
        ("control-plane get (SDK Get agent by id)", "get", "server"),
        ("model call (AsyncOpenAI, streamed)", "model", "model"),
        ("model call, not streamed (context)", "model_unstreamed", "model"),
        ("bare Temporal workflow (one activity)", "bare_workflow", "its worker"),
    ):
        samples: list[Sample] = [getattr(f, which) for f in floors if getattr(f, which)]
        if not samples:
            continue
        rows.append(
            [
                name,
                str(len(samples)),
                format_rate(harness.median([s.throughput for s in samples])),
                format_seconds(harness.median([s.p50 for s in samples])),
                format_seconds(harness.median([s.p99 for s in samples])),
                format_seconds(harness.median([s.server_cpu_per_call for s in samples])),
                cpu_of,
            ]
        )
    return harness.table(headers, rows)


def runs_table(results: Results) -> str:
    headers = (
        "full run (create -> COMPLETED)",
        "clients",
        "completed",
        "failed",
        "exec/s",
        "p50",
        "p99",
        "server CPU/exec",
        "model CPU/exec",
        "client CPU/exec",
        "events/exec",
    )
    rows: list[list[str]] = []
    for level in results.levels:
        runs = level.runs
        sample = runs.sample
        events = sorted(collections.Counter(o.events for o in runs.completed).items())
        rows.append(
            [
                "run + wait",
                str(sample.in_flight),
                f"{len(runs.completed)}/{len(runs.outcomes)}",
                str(len(runs.failures)),
                f"{sample.throughput:,.1f}",
                format_seconds(sample.p50),
                format_seconds(sample.p99),
                format_seconds(sample.server_cpu_per_call),
                format_seconds(runs.model_cpu_per_execution),
                format_seconds(sample.client_cpu_per_call),
                ", ".join(str(count) for count, _ in events) or "-",
            ]
        )
    return harness.table(headers, rows)


def run_ratios() -> tuple[tuple[str, Callable[[Compared], float]], ...]:
    """The ratios of a run level to its floors: (header, ratio of a level)."""

    def get_floor(level: Compared, of: str) -> float:
        return level.floor("get", of)

    return (
        ("exec/s ÷ get/s", lambda c: ratio(c.runs.sample.throughput, get_floor(c, "throughput"))),
        ("p50 ÷ get p50", lambda c: ratio(c.runs.sample.p50, get_floor(c, "p50"))),
        ("p99 ÷ get p50", lambda c: ratio(c.runs.sample.p99, get_floor(c, "p50"))),
        (
            "server CPU ÷ get's",
            lambda c: ratio(c.runs.sample.server_cpu_per_call, get_floor(c, "server_cpu_per_call")),
        ),
        ("p50 ÷ model p50", lambda c: ratio(c.runs.sample.p50, c.floor("model", "p50"))),
        ("p50 ÷ bare wf p50", lambda c: ratio(c.runs.sample.p50, bare_floor(c, "p50"))),
        (
            "exec/s ÷ bare wf/s",
            lambda c: ratio(c.runs.sample.throughput, bare_floor(c, "throughput")),
        ),
    )


def bare_floor(level: Compared, of: str) -> float:
    """A property of the bare Temporal workflow floor; NaN without Temporal."""
    if level.before.bare_workflow is None:
        return math.nan
    return level.floor("bare_workflow", of)


def ratios_table(results: Results) -> str:
    ratios = run_ratios()
    headers = ("full run vs floors", "clients", *(header for header, _ in ratios))
    rows: list[list[str]] = []
    for level in results.levels:
        rows.append(
            [
                "run + wait",
                str(level.runs.sample.in_flight),
                *(format_share(of(level)) for _, of in ratios),
            ]
        )
    return harness.table(headers, rows)


def stores_ratios_table(by_store: Sequence[tuple[str, Results]]) -> str:
    """The ratios of `ratios_table`, a row per ratio and level, a column per store."""
    headers = ("full run vs floors", "clients", *(store for store, _ in by_store))
    rows: list[list[str]] = []
    for header, of in run_ratios():
        for index, level in enumerate(by_store[0][1].levels):
            rows.append(
                [
                    header,
                    str(level.runs.sample.in_flight),
                    *(format_share(of(results.levels[index])) for _, results in by_store),
                ]
            )
    return harness.table(headers, rows)


def format_share(value: float) -> str:
    """A ratio, with enough digits to read one far below 1; '-' when it does not apply."""
    if math.isnan(value):
        return "-"
    return f"{value:.4f}x" if 0 < value < 0.1 else format_ratio(value)


def phases_table(results: Results) -> str:
    headers = (
        "where a run's time goes (server clock)",
        "clients",
        "queued p50",
        "running p50",
        "outside p50",
        "run p50",
    )
    rows: list[list[str]] = []
    for level in results.levels:
        runs = level.runs
        queued = runs.p50_of(lambda o: o.queued_seconds)
        running = runs.p50_of(lambda o: o.running_seconds)
        outside = runs.p50_of(lambda o: o.seconds - o.queued_seconds - o.running_seconds)
        rows.append(
            [
                "created -> IN_PROGRESS -> COMPLETED",
                str(runs.sample.in_flight),
                format_seconds(queued),
                format_seconds(running),
                format_seconds(outside),
                format_seconds(runs.sample.p50),
            ]
        )
    return harness.table(headers, rows)


def failures_report(results: Results) -> list[str]:
    lines: list[str] = []
    for level in results.levels:
        failures = level.runs.failures
        if not failures:
            continue
        lines.append(
            f"FAILED runs at {level.runs.sample.in_flight} clients: {len(failures)} "
            "(warm-up included; none of them is timed or counted as completed)"
        )
        by_error = collections.Counter(f.error for f in failures)
        for error, count in by_error.most_common(FAILURES_SHOWN):
            example = next(f.execution_id for f in failures if f.error == error)
            lines.append(f"  {count} x {error} (e.g. execution {example or '<not created>'})")
    return lines


def events_report(results: Results) -> list[str]:
    """The events each completed execution reported, checked against the log."""
    completed = [o for level in results.levels for o in level.runs.completed]
    stored = results.stored_events
    mismatched = [o.execution_id for o in completed if stored.get(o.execution_id) != o.events]
    counts = collections.Counter(stored.get(o.execution_id, 0) for o in completed)
    lines = [
        "events per execution in the store's event log: "
        + ", ".join(f"{count} events x {n}" for count, n in sorted(counts.items())),
    ]
    if results.event_kinds:
        lines.append(f"  in order: {', '.join(results.event_kinds)}")
    if mismatched:
        lines.append(
            f"  MISMATCH: {len(mismatched)} executions' last_sequence differs from their "
            f"event log (e.g. {mismatched[0]})"
        )
    else:
        lines.append(f"  last_sequence equals the event log's count for all {len(completed)}")
    return lines


def read_event_log(store: BenchStore, store_url: str, results: Results) -> None:
    """Counts the stored events of each execution, in plain SQL on the store's
    own driver (not through the store code whose writes it checks)."""
    with store.raw_connection(store_url) as connection:
        rows = connection.execute(
            "SELECT resource_id, COUNT(*) FROM resource_events GROUP BY resource_id", ()
        ).fetchall()
        results.stored_events = {str(resource_id): int(count) for resource_id, count in rows}
        completed = [o for level in results.levels for o in level.runs.completed]
        if completed:
            events = connection.execute(
                "SELECT data FROM resource_events WHERE resource_id = "
                f"{store.placeholder} ORDER BY sequence",
                (completed[-1].execution_id,),
            ).fetchall()
            results.event_kinds = [
                describe_event(execution_pb2.ExecutionEvent.FromString(bytes(data)))
                for (data,) in events
            ]


def describe_event(event: execution_pb2.ExecutionEvent) -> str:
    change = event.WhichOneof("change") or "?"
    if change == "phase_changed":
        return f"phase {phase_name(event.phase_changed.phase)}"
    return change


# -- main -------------------------------------------------------------------------------


def agent_message() -> agent_pb2.Agent:
    return agent_pb2.Agent(
        metadata=meta_pb2.ApiResourceMetadata(name="bench runner", labels={"team": "bench"}),
        spec=agent_pb2.AgentSpec(description="benchmark agent", instructions=INSTRUCTIONS),
    )


async def measure_all(settings: Settings, calls: FloorCalls, run: RunCall) -> Results:
    """floors, runs at 1, floors, runs at N, floors: each level between two floors."""
    results = Results()
    before = await measure_floors(settings, calls)
    results.floors.append(before)
    for clients in (1, settings.many):
        runs = await measure_runs(
            settings,
            clients,
            run,
            server_pids=(
                calls.server_pid,
                *([calls.worker_pids.stigmer] if calls.worker_pids else []),
            ),
            model_pid=calls.model_pid,
        )
        after = await measure_floors(settings, calls)
        results.floors.append(after)
        results.levels.append(Compared(runs, before, after))
        before = after
    return results


async def run(settings: Settings, store: BenchStore, engine: BenchEngine) -> Results:
    task = asyncio.current_task()
    if task is not None:  # SIGTERM cleans up as Ctrl-C does: servers stopped, files removed
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    with harness.SpawnedServer("scripted-model", scripted_model_main) as model:
        store_url = store.new_url("runs")
        options = engine_options(model.address)
        with (
            harness.SpawnedServer(
                "stigmer", stigmer_server_main, store_url, options, engine.temporal_options()
            ) as server,
            engine.workers(server.address, options.model) as worker_pids,
        ):
            model_client = openai.AsyncOpenAI(
                base_url=model.address, api_key="bench", max_retries=0
            )
            try:
                async with (
                    AsyncClient(server.address) as client,
                    engine.bare_workflow_call() as bare_workflow,
                ):
                    applied = await client.apply(agent_message())
                    agent_id: str = applied[0].resource.metadata.id

                    async def get(_: int) -> object:
                        return await client.get("agent", agent_id)

                    async def run_one() -> Outcome:
                        return await run_once(client, agent_id)

                    streamed, unstreamed = model_calls(model_client)
                    calls = FloorCalls(
                        get,
                        streamed,
                        unstreamed,
                        server.pid,
                        model.pid,
                        bare_workflow,
                        worker_pids,
                    )
                    results = await measure_all(settings, calls, run_one)
                results.client_builds = await client_build_seconds(
                    model.address, settings.client_builds
                )
            finally:
                await model_client.close()
        # After the server stopped, so that every write it made is in (and
        # SQLite's WAL is checkpointed).
        read_event_log(store, store_url, results)
    return results


def report(part: str, results: Results) -> None:
    say(f"== Full runs vs. floors (instant scripted model), {part} ==")
    say(floors_table(results))
    say(
        f"Floors: medians of {len(results.floors)} measurements (before, between and after "
        "the run levels). CPU/call: of the Stigmer server process for get, of the model "
        "process for model calls."
    )
    say()
    say(runs_table(results))
    say(
        "exec/s: COMPLETED executions per second of wall time; CPU/exec: CPU seconds of "
        "each process over the measurement, per COMPLETED execution (client = this "
        "process; server = the Stigmer server and, on Temporal, its worker); events/exec: "
        "status.last_sequence of the completed executions."
    )
    say()
    say(ratios_table(results))
    say(
        "Ratios divide by the mean of the floors measured just before and just after each "
        "level (get and model floors at 1 in flight for both levels)."
    )
    say()
    say(phases_table(results))
    say(
        "queued: created_at -> started_at (the claim); running: started_at -> completed_at; "
        "outside: the rest of the client's run latency: run()'s agent Get and its Create "
        "before created_at, the Subscribe stream's start and delivery after completed_at."
    )
    say()
    for line in events_report(results):
        say(line)
    builds = results.client_builds
    if builds:
        say(
            "AsyncOpenAI(...) + close() in-process (what the engine saves per execution "
            "by keeping one per model): "
            f"p50 {format_seconds(harness.percentile(builds, 0.5))} over {len(builds)}"
        )
    failures = failures_report(results)
    total = sum(len(level.runs.outcomes) for level in results.levels)
    say()
    if failures:
        for line in failures:
            say(line)
    else:
        warmups = sum(len(level.runs.warmup_outcomes) for level in results.levels)
        say(f"all {total} measured runs (and {warmups} warm-up runs) ended COMPLETED")


def report_parts(by_part: Sequence[tuple[str, Results]]) -> None:
    names = " vs ".join(part for part, _ in by_part)
    say(f"== Side by side: {names} (ratios from the reports above) ==")
    say(stores_ratios_table(by_part))
    say(
        "Each part's runs are divided by floors measured on the same server (the get), "
        "the same model and, on Temporal, the same dev server, just before and after them."
    )
    say()


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
