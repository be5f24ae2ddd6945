"""The measuring half of the run benchmark (runs.py): the processes, the runs,
the floors around them, and the Results the report (run_report.py) prints.
"""

from __future__ import annotations

import asyncio
import functools
import math
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

import engines
import harness
import openai
from engines import BenchEngine, WorkerPids
from google.protobuf.timestamp_pb2 import Timestamp
from harness import Call, Sample
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


# -- the measurement ----------------------------------------------------------------------


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
