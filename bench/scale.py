"""Scale benchmark: lookups and the consistency check at 1k, 100k and 1M agents.

    .venv/bin/python bench/scale.py                        # SQLite: 1k, 100k, 1M (~10 min)
    .venv/bin/python bench/scale.py --sizes 1000,100000    # fewer sizes
    .venv/bin/python bench/scale.py --store both           # PostgreSQL too (1k, 100k)

For each size a fresh store is loaded in bulk (each agent with its default
instance, as the server stores them, written in plain SQL in large
transactions: the rows are what is measured here, not how they got in), then
one Stigmer server runs on it in its own process, with its periodic check
turned off. At each size it prints:

- get-by-slug (GetByReference) and list-by-agent (ListByAgent: the instances
  of an agent) through the server, one call in flight, p50 and p99, beside
  the same lookups as plain SQL on a plain driver connection (the floor);
- a consistency check (the Check RPC): its duration, beside the floor of
  reading every row once in plain SQL; the server's peak RSS during the check
  and its RSS at rest;
- the p99 of gets made while the check runs, divided by the p99 of gets
  without it (the check must not stall requests: within 2x).

Then the growth of each figure from the smallest size to the others. Only
ratios measured in the same run mean much on a shared machine; nothing here
asserts on timings.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import random
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import harness
import stores
from controlplane import raw_by_agent, raw_by_slug, seeded_pair, size_label
from google.protobuf.timestamp_pb2 import Timestamp
from harness import format_ratio, format_seconds, ratio
from stores import BenchStore

from stigmer.client.aio import AsyncClient
from stigmer.domain.registry import Domains
from stigmer.errors import Unavailable
from stigmer.pipeline.envelope import now
from stigmer.resources.kinds import AGENT, AGENT_INSTANCE, DEFAULT_ORG
from stigmer.server.app import ServerOptions, StigmerServer
from stigmer.store.rows import COLUMN_LIST, row_from_record
from stigmer.store.urls import store_from_url

SQLITE_SIZES = (1_000, 100_000, 1_000_000)
POSTGRES_SIZES = (1_000, 100_000)
LOAD_BATCH = 10_000
LOOKUPS = 2_000  # per lookup and size, after WARMUP
WARMUP = 200
SAMPLED_AGENTS = 5_000  # agents the lookups pick from
RSS_SAMPLE_SECONDS = 0.05
CHECK_TIMEOUT_SECONDS = 3_600.0


def say(text: str = "") -> None:
    print(text, flush=True)


# -- the server ---------------------------------------------------------------------


@asynccontextmanager
async def quiet_server(store_url: str) -> AsyncIterator[str]:
    # No periodic check: the bench asks for its checks and times them.
    options = ServerOptions(store_url=store_url, port=0, check_interval_seconds=0)
    async with StigmerServer(options) as server:
        yield server.address


def quiet_server_main(connection: Connection, store_url: str) -> None:
    harness.run_server_child(connection, functools.partial(quiet_server, store_url))


def rss_kib(pid: int, field_name: str = "VmRSS") -> int:
    """A field of /proc/<pid>/status in KiB (VmRSS now, VmHWM the peak); 0 elsewhere."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak_rss(pid: int) -> bool:
    """Resets the process's VmHWM to its current RSS (Linux 4.0+)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def format_mib(kib: float) -> str:
    return "-" if not kib or math.isnan(kib) else f"{kib / 1024:.0f} MB"


# -- loading ------------------------------------------------------------------------


@dataclass
class Loaded:
    size: int
    url: str
    slugs: list[str] = field(default_factory=list)
    agent_ids: list[str] = field(default_factory=list)
    seconds: float = 0.0


def loaded_rows(
    size: int, domains: Domains, sampled: set[int], loaded: Loaded
) -> Iterator[list[tuple[object, ...]]]:
    moment = Timestamp()
    moment.FromDatetime(now())
    batch: list[tuple[object, ...]] = []
    for index in range(size):
        agent, instance = seeded_pair(index, moment, domains)
        if index in sampled:
            loaded.slugs.append(agent.slug)
            loaded.agent_ids.append(agent.id)
        for record in (agent, instance):
            batch.append(row_from_record(record, lambda labels: json.dumps(labels, sort_keys=True)))
        if len(batch) >= LOAD_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


async def load(bench_store: BenchStore, size: int) -> Loaded:
    url = bench_store.new_url(f"scale_{size_label(size)}")
    store = store_from_url(url)
    await store.open()  # the schema, by the code under test
    domains = Domains(store)
    await store.close()
    loaded = Loaded(size, url)
    sampled = set(random.Random(size).sample(range(size), min(size, SAMPLED_AGENTS)))
    started = time.perf_counter()
    marks = ", ".join([bench_store.placeholder] * len(COLUMN_LIST.split(", ")))
    insert = f"INSERT INTO resources ({COLUMN_LIST}) VALUES ({marks})"
    if bench_store.name == "SQLite":
        import sqlite3

        with closing(sqlite3.connect(url, isolation_level=None)) as sqlite_connection:
            sqlite_connection.execute("BEGIN IMMEDIATE")
            for batch in loaded_rows(size, domains, sampled, loaded):
                sqlite_connection.executemany(insert, batch)
            sqlite_connection.execute("COMMIT")
    else:
        import psycopg

        with (
            psycopg.connect(url, autocommit=True) as connection,
            connection.transaction(),
            connection.cursor() as cursor,
            cursor.copy(f"COPY resources ({COLUMN_LIST}) FROM STDIN") as copy,
        ):
            for batch in loaded_rows(size, domains, sampled, loaded):
                for row in batch:
                    copy.write_row(row)
        bench_store.refresh_statistics(url)
    loaded.seconds = time.perf_counter() - started
    return loaded


# -- measuring ----------------------------------------------------------------------


@dataclass
class Figures:
    size: int
    raw_slug: tuple[float, ...] = ()
    raw_agent: tuple[float, ...] = ()
    raw_scan_seconds: float = math.nan
    by_slug: tuple[float, ...] = ()
    by_agent: tuple[float, ...] = ()
    check_seconds: float = math.nan
    checked: int = 0
    violations: int = 0
    rss_rest_kib: int = 0
    rss_peak_kib: int = 0
    gets_before: tuple[float, ...] = ()
    gets_during: tuple[float, ...] = ()
    is_check_finished: bool = True

    @staticmethod
    def p(values: Sequence[float], fraction: float) -> float:
        return harness.percentile(values, fraction)


def measure_raw(bench_store: BenchStore, loaded: Loaded, figures: Figures) -> None:
    rng = random.Random(11)
    slugs = [rng.choice(loaded.slugs) for _ in range(LOOKUPS)]
    agent_ids = [rng.choice(loaded.agent_ids) for _ in range(LOOKUPS)]
    by_slug = raw_by_slug(bench_store.placeholder)
    by_agent = raw_by_agent(bench_store.placeholder)
    with bench_store.raw_connection(loaded.url) as connection:
        figures.raw_slug = harness.time_each(
            lambda i: connection.execute(by_slug, (AGENT.name, DEFAULT_ORG, slugs[i])).fetchone(),
            LOOKUPS,
        )
        figures.raw_agent = harness.time_each(
            lambda i: connection.execute(by_agent, (AGENT_INSTANCE.name, agent_ids[i])).fetchall(),
            LOOKUPS,
        )
        # The floor of a check: every row read once, in one statement.
        started = time.perf_counter()
        cursor = connection.execute("SELECT kind, id, org, slug, data FROM resources", ())
        rows = 0
        for _ in cursor:  # type: ignore[attr-defined]
            rows += 1
        figures.raw_scan_seconds = time.perf_counter() - started
        if rows != 2 * loaded.size:
            raise RuntimeError(f"raw scan read {rows} rows, expected {2 * loaded.size}")


async def timed_gets(
    client: AsyncClient, slugs: Sequence[str], until: asyncio.Task[object] | None, count: int
) -> tuple[float, ...]:
    """Gets by slug, one in flight: `count` of them, or (with `until`) as many
    as fit before that task ends."""
    latencies: list[float] = []
    index = 0
    while (until is None and index < count) or (until is not None and not until.done()):
        started = time.perf_counter()
        try:
            await client.get("agent", slugs[index % len(slugs)])
        except Unavailable as error:
            # A get the check held past the client's deadline: its latency
            # is at least the deadline, and it counts as such.
            say(f"  a get failed after {time.perf_counter() - started:.1f} s: {error.message}")
        latencies.append(time.perf_counter() - started)
        index += 1
    return tuple(sorted(latencies))


async def sample_rss(pid: int, until: asyncio.Task[object]) -> int:
    peak = 0
    while not until.done():
        peak = max(peak, rss_kib(pid))
        await asyncio.sleep(RSS_SAMPLE_SECONDS)
    return peak


async def measure_server(loaded: Loaded, figures: Figures, check_timeout: float) -> None:
    rng = random.Random(23)
    slugs = [rng.choice(loaded.slugs) for _ in range(LOOKUPS + WARMUP)]
    agent_ids = [rng.choice(loaded.agent_ids) for _ in range(LOOKUPS + WARMUP)]
    with harness.SpawnedServer(f"scale-{loaded.size}", quiet_server_main, loaded.url) as server:
        async with (
            AsyncClient(server.address) as client,
            AsyncClient(server.address, timeout=check_timeout) as checker,
        ):

            async def by_slug(i: int) -> object:
                return await client.get("agent", slugs[i])

            async def by_agent(i: int) -> object:
                instances = await client.list_instances_by_agent(agent_ids[i])
                if len(instances) != 1:
                    raise RuntimeError(f"agent {agent_ids[i]} has {len(instances)} instances")
                return instances

            figures.by_slug = (
                await harness.measure(by_slug, calls=LOOKUPS, in_flight=1, warmup=WARMUP)
            ).latencies
            figures.by_agent = (
                await harness.measure(by_agent, calls=LOOKUPS, in_flight=1, warmup=WARMUP)
            ).latencies
            figures.rss_rest_kib = rss_kib(server.pid)
            figures.gets_before = await timed_gets(client, slugs, None, LOOKUPS)

            is_peak_reset = reset_peak_rss(server.pid)
            started = time.perf_counter()
            check = asyncio.create_task(checker.check())
            sampler = asyncio.create_task(sample_rss(server.pid, check))
            figures.gets_during = await timed_gets(client, slugs, check, 0)
            try:
                report = await check
            except Exception as error:  # a deadline: the check did not finish
                say(f"  the check did not finish in {check_timeout:.0f} s: {error}")
                figures.is_check_finished = False
                figures.check_seconds = time.perf_counter() - started
            else:
                figures.check_seconds = time.perf_counter() - started
                figures.checked = report.resources_checked
                figures.violations = len(report.violations)
            sampled_peak = await sampler
            # The baseline spans the check, before and after: a shared
            # machine's noise drifts over a minute-long check.
            figures.gets_before += await timed_gets(client, slugs, None, LOOKUPS)
            figures.gets_before = tuple(sorted(figures.gets_before))
            figures.rss_peak_kib = rss_kib(server.pid, "VmHWM") if is_peak_reset else sampled_peak


# -- printing -----------------------------------------------------------------------


def figures_table(all_figures: Sequence[Figures]) -> str:
    headers = ("figure", *(f"@{size_label(f.size)}" for f in all_figures))
    p = Figures.p

    def row(name: str, cells: Sequence[str]) -> list[str]:
        return [name, *cells]

    rows = [
        row("raw get-by-slug p50", [format_seconds(p(f.raw_slug, 0.5)) for f in all_figures]),
        row("gRPC get-by-slug p50", [format_seconds(p(f.by_slug, 0.5)) for f in all_figures]),
        row("gRPC get-by-slug p99", [format_seconds(p(f.by_slug, 0.99)) for f in all_figures]),
        row(
            "  p50 vs raw",
            [format_ratio(ratio(p(f.by_slug, 0.5), p(f.raw_slug, 0.5))) for f in all_figures],
        ),
        row("raw list-by-agent p50", [format_seconds(p(f.raw_agent, 0.5)) for f in all_figures]),
        row("gRPC list-by-agent p50", [format_seconds(p(f.by_agent, 0.5)) for f in all_figures]),
        row("gRPC list-by-agent p99", [format_seconds(p(f.by_agent, 0.99)) for f in all_figures]),
        row(
            "  p50 vs raw",
            [format_ratio(ratio(p(f.by_agent, 0.5), p(f.raw_agent, 0.5))) for f in all_figures],
        ),
        row("raw scan of every row", [format_seconds(f.raw_scan_seconds) for f in all_figures]),
        row(
            "consistency check",
            [
                format_seconds(f.check_seconds) + ("" if f.is_check_finished else " (unfinished)")
                for f in all_figures
            ],
        ),
        row(
            "  vs raw scan",
            [format_ratio(ratio(f.check_seconds, f.raw_scan_seconds)) for f in all_figures],
        ),
        row("  resources checked", [f"{f.checked:,}" for f in all_figures]),
        row("  violations found", [str(f.violations) for f in all_figures]),
        row("server RSS at rest", [format_mib(f.rss_rest_kib) for f in all_figures]),
        row("server peak RSS in check", [format_mib(f.rss_peak_kib) for f in all_figures]),
        row("get p99 without check", [format_seconds(p(f.gets_before, 0.99)) for f in all_figures]),
        row("get p99 during check", [format_seconds(p(f.gets_during, 0.99)) for f in all_figures]),
        row(
            "  during/without (goal <= 2x)",
            [
                format_ratio(ratio(p(f.gets_during, 0.99), p(f.gets_before, 0.99)))
                for f in all_figures
            ],
        ),
        row("  gets made during check", [str(len(f.gets_during)) for f in all_figures]),
    ]
    return harness.table(headers, rows)


def growth_table(all_figures: Sequence[Figures]) -> str:
    base = all_figures[0]
    others = all_figures[1:]
    headers = ("growth from @" + size_label(base.size), *(f"@{size_label(f.size)}" for f in others))
    p = Figures.p

    def grown(value: float, base_value: float) -> str:
        return format_ratio(ratio(value, base_value))

    rows = [
        ["resources", *(f"{f.size // base.size}x" for f in others)],
        [
            "raw get-by-slug p50",
            *(grown(p(f.raw_slug, 0.5), p(base.raw_slug, 0.5)) for f in others),
        ],
        ["gRPC get-by-slug p50", *(grown(p(f.by_slug, 0.5), p(base.by_slug, 0.5)) for f in others)],
        [
            "raw list-by-agent p50",
            *(grown(p(f.raw_agent, 0.5), p(base.raw_agent, 0.5)) for f in others),
        ],
        [
            "gRPC list-by-agent p50",
            *(grown(p(f.by_agent, 0.5), p(base.by_agent, 0.5)) for f in others),
        ],
        ["raw scan", *(grown(f.raw_scan_seconds, base.raw_scan_seconds) for f in others)],
        ["consistency check", *(grown(f.check_seconds, base.check_seconds) for f in others)],
        ["server peak RSS in check", *(grown(f.rss_peak_kib, base.rss_peak_kib) for f in others)],
    ]
    return harness.table(headers, rows)


def remove_sqlite_files(path: str) -> None:
    """A size's store is done with once measured: 1M agents take ~1 GB of disk."""
    for suffix in ("", "-wal", "-shm"):
        Path(path + suffix).unlink(missing_ok=True)


# -- the run ------------------------------------------------------------------------


async def run_store(bench_store: BenchStore, sizes: Sequence[int], check_timeout: float) -> None:
    say(f"######## {bench_store.name} ########")
    say(bench_store.describe())
    all_figures: list[Figures] = []
    for size in sizes:
        loaded = await load(bench_store, size)
        say(
            f"@{size_label(size)}: loaded {size:,} agents and their default instances "
            f"in {format_seconds(loaded.seconds)}"
        )
        figures = Figures(size)
        measure_raw(bench_store, loaded, figures)
        await measure_server(loaded, figures, check_timeout)
        all_figures.append(figures)
        # Printed as each size is done: the sizes so far survive an interrupted run.
        say(figures_table(all_figures))
        if bench_store.name == "SQLite":
            remove_sqlite_files(loaded.url)
    say()
    say(figures_table(all_figures))
    say()
    if len(all_figures) > 1:
        say(growth_table(all_figures))
        say()
    say(
        "One call in flight throughout. raw: the same lookup as plain SQL on a plain "
        f"{bench_store.driver} connection (the floor); an indexed lookup grows ~1x with the "
        "store, a scan with it. The check is the Check RPC; its floor reads every row once "
        "in one statement. during/without: p99 of gets by slug made while the check ran, "
        "over the p99 of gets just before and just after it."
    )
    say()


def parse_sizes(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    stores.add_store_option(parser)
    parser.add_argument("--sizes", type=parse_sizes, help="agent counts, comma-separated")
    parser.add_argument(
        "--check-timeout",
        type=float,
        default=CHECK_TIMEOUT_SECONDS,
        help="seconds a check may take",
    )
    arguments = parser.parse_args(argv)
    started = time.perf_counter()
    for name in stores.chosen_stores(arguments.store):
        sizes = arguments.sizes or (SQLITE_SIZES if name == "sqlite" else POSTGRES_SIZES)
        with stores.open_bench_store(name) as bench_store:
            try:
                asyncio.run(run_store(bench_store, sizes, arguments.check_timeout))
            except KeyboardInterrupt:
                say("interrupted")
                return 130
    say(f"total runtime: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
