"""Shared pieces of the benchmarks: servers in child processes, a load
generator with N calls in flight, latency statistics, a bare gRPC echo
server (the floor every gRPC number is compared with) and table printing.

Servers run in processes started with multiprocessing's "spawn" method, so the
client's event loop and the server's never share one interpreter (or one GIL).
A child serves until its parent says stop or disappears (the pipe to the parent
closes), so no server outlives a benchmark, even one killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any

import grpc

Call = Callable[[int], Awaitable[object]]
"""One call of a measured operation; the argument is the call's index."""

OpenServer = Callable[[], AbstractAsyncContextManager[str]]
"""Starts a server when entered and yields its address ("host:port")."""

ECHO_SERVICE = "bench.Echo"
ECHO_METHOD = f"/{ECHO_SERVICE}/Echo"
# Generous: on a shared 2-core machine under load, a spawned interpreter can
# take over a minute to import grpc and Stigmer.
_START_TIMEOUT_SECONDS = 300.0
_STOP_TIMEOUT_SECONDS = 10.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# -- statistics ---------------------------------------------------------------


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted values (0 < fraction <= 1)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True)
class Sample:
    """What one measurement saw: wall time, per-call latencies and CPU spent."""

    label: str
    in_flight: int
    seconds: float
    latencies: tuple[float, ...]
    client_cpu_seconds: float = math.nan
    server_cpu_seconds: float = math.nan

    @property
    def calls(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        return self.calls / self.seconds if self.seconds > 0 else math.nan

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 0.50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 0.99)

    @property
    def server_cpu_per_call(self) -> float:
        return self.server_cpu_seconds / self.calls if self.calls else math.nan

    @property
    def client_cpu_per_call(self) -> float:
        return self.client_cpu_seconds / self.calls if self.calls else math.nan


def ratio(value: float, floor: float) -> float:
    return value / floor if floor > 0 and not math.isnan(floor) else math.nan


def median(values: Sequence[float]) -> float:
    ordered = sorted(v for v in values if not math.isnan(v))
    if not ordered:
        return math.nan
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


# -- load generation ------------------------------------------------------------


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (Linux /proc); NaN elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    # After the ")" closing the command name, utime and stime are fields 12 and 13.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


async def drive(
    call: Call,
    *,
    calls: int,
    in_flight: int,
    label: str = "",
    first_index: int = 0,
    server_pid: int | None = None,
) -> Sample:
    """Makes `calls` calls with `in_flight` of them outstanding at any moment.

    Each of `in_flight` workers takes the next index and awaits its call, so
    the count of calls is fixed and the concurrency is exact. A failing call
    fails the measurement (and cancels the other workers).
    """
    latencies = [0.0] * calls
    indexes = iter(range(calls))

    async def worker() -> None:
        for index in indexes:
            started = time.perf_counter()
            await call(first_index + index)
            latencies[index] = time.perf_counter() - started

    server_cpu = process_cpu_seconds(server_pid) if server_pid is not None else math.nan
    client_cpu = time.process_time()
    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(min(in_flight, calls)):
            group.create_task(worker())
    seconds = time.perf_counter() - started
    client_cpu = time.process_time() - client_cpu
    if server_pid is not None:
        server_cpu = process_cpu_seconds(server_pid) - server_cpu
    return Sample(
        label=label,
        in_flight=in_flight,
        seconds=seconds,
        latencies=tuple(sorted(latencies)),
        client_cpu_seconds=client_cpu,
        server_cpu_seconds=server_cpu,
    )


async def measure(
    call: Call,
    *,
    calls: int,
    in_flight: int,
    warmup: int,
    label: str = "",
    first_index: int = 0,
    server_pid: int | None = None,
) -> Sample:
    """`drive` after `warmup` unmeasured calls (indexes before the measured ones)."""
    if warmup:
        await drive(call, calls=warmup, in_flight=in_flight, first_index=first_index)
    return await drive(
        call,
        calls=calls,
        in_flight=in_flight,
        label=label,
        first_index=first_index + warmup,
        server_pid=server_pid,
    )


def time_each(operation: Callable[[int], object], count: int) -> tuple[float, ...]:
    """Sorted per-call wall times of a synchronous operation called `count` times."""
    timings = [0.0] * count
    clock = time.perf_counter
    for index in range(count):
        started = clock()
        operation(index)
        timings[index] = clock() - started
    return tuple(sorted(timings))


# -- servers in child processes -------------------------------------------------------


async def _until_released(connection: Connection) -> None:
    """Returns when the parent sends anything or its end of the pipe closes."""
    loop = asyncio.get_running_loop()
    released = loop.create_future()

    def on_readable() -> None:
        if not released.done():
            released.set_result(None)

    loop.add_reader(connection.fileno(), on_readable)
    try:
        await released
    finally:
        loop.remove_reader(connection.fileno())


def run_server_child(connection: Connection, open_server: OpenServer) -> None:
    """The body of a server process: serve, report the address, wait, stop.

    SIGINT is ignored: on Ctrl-C the parent stops its children in order.
    A server that fails to start reports the traceback instead of an address.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    async def main() -> None:
        async with open_server() as address:
            connection.send(("ok", address))
            await _until_released(connection)

    try:
        asyncio.run(main())
    except BaseException:
        with suppress(OSError):
            connection.send(("error", traceback.format_exc()))
        raise


class SpawnedServer:
    """A server in a spawned child process, as a context manager.

        with SpawnedServer("echo", echo_server_main) as server:
            server.address, server.pid

    `target(connection, *args)` must be a module-level function that calls
    `run_server_child`.
    """

    def __init__(self, name: str, target: Callable[..., None], *args: Any) -> None:
        self.name = name
        context = multiprocessing.get_context("spawn")
        self._connection, child_connection = context.Pipe()
        self._child_connection: Connection | None = child_connection
        self._process: BaseProcess = context.Process(
            target=target, args=(child_connection, *args), name=f"bench-{name}", daemon=True
        )
        self.address = ""

    @property
    def pid(self) -> int:
        pid = self._process.pid
        if pid is None:
            raise RuntimeError(f"server {self.name} is not running")
        return pid

    def start(self) -> None:
        # The child inherits an ignored SIGINT from the moment it exists: a
        # Ctrl-C while it is still importing must not kill it half-started
        # (the parent stops it in order instead).
        is_main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if is_main_thread else None
        try:
            self._process.start()
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        if self._child_connection is not None:
            self._child_connection.close()  # EOF reaches us if the child dies
            self._child_connection = None
        if not self._connection.poll(_START_TIMEOUT_SECONDS):
            raise RuntimeError(f"server {self.name} did not start in {_START_TIMEOUT_SECONDS}s")
        try:
            status, detail = self._connection.recv()
        except EOFError:
            raise RuntimeError(f"server {self.name} exited while starting") from None
        if status != "ok":
            raise RuntimeError(f"server {self.name} failed to start:\n{detail}")
        self.address = str(detail)

    def stop(self) -> None:
        process = self._process
        try:
            if process.is_alive():
                self._connection.send("stop")
        except (OSError, ValueError):
            pass
        self._connection.close()
        if process.pid is None:
            return
        process.join(_STOP_TIMEOUT_SECONDS)
        if process.is_alive():
            process.terminate()
            process.join(_STOP_TIMEOUT_SECONDS)
        if process.is_alive():
            process.kill()
            process.join()

    def __enter__(self) -> SpawnedServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()


# -- the echo floor ---------------------------------------------------------------


async def _echo(request: bytes, _: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return request


@asynccontextmanager
async def echo_server(host: str = "127.0.0.1") -> AsyncIterator[str]:
    """A bare grpc.aio server whose one unary method returns the request bytes."""
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        ECHO_SERVICE, {"Echo": grpc.unary_unary_rpc_method_handler(_echo)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(f"{host}:0")
    await server.start()
    try:
        yield f"{host}:{port}"
    finally:
        await server.stop(None)


def echo_server_main(connection: Connection) -> None:
    """Target of the echo server's process."""
    run_server_child(connection, echo_server)


@asynccontextmanager
async def echo_client(address: str, payload: bytes) -> AsyncIterator[Call]:
    """A call that sends `payload` to the echo server, on its own channel."""
    async with grpc.aio.insecure_channel(address) as channel:
        method: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(ECHO_METHOD)

        async def call(_: int) -> object:
            response: object = await method(payload)
            return response

        yield call


# -- printing ------------------------------------------------------------------------


def format_seconds(value: float) -> str:
    """A duration with a unit that keeps 3 significant digits readable."""
    if math.isnan(value):
        return "-"
    if value < 1e-3:
        return f"{value * 1e6:.1f} µs"
    if value < 1:
        return f"{value * 1e3:.2f} ms"
    return f"{value:.2f} s"


def format_ratio(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}x"


def format_rate(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.0f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain text table: first column left-aligned, the others right-aligned."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.ljust(width) if index == 0 else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])
