"""Control-plane benchmark: what Stigmer's own layers cost on top of gRPC and the store.

    .venv/bin/python bench/controlplane.py                 # full run on SQLite (~1-2 min)
    .venv/bin/python bench/controlplane.py --quick         # smoke run (< 60 s)
    .venv/bin/python bench/controlplane.py --store both    # SQLite, then PostgreSQL

`--store sqlite|postgres|both` picks the store behind the Stigmer servers
(see stores.py; PostgreSQL is a throwaway server started by the run). With
both, each store gets its own block of tables, then the ratios of the two
are printed side by side.

What is measured:

1. The floor: a bare grpc.aio echo server (one generic unary handler returning
   the request bytes) driven by the same client loop, at 1 and at 64 calls in
   flight.
2. Stigmer operations through the SDK (`AsyncClient`) against a real
   `StigmerServer` on the chosen store, at 1 and 64 in flight: get by id,
   create agent (each also creates its default instance), apply of an
   unchanged agent, and list instances by agent. Each is reported as calls/s,
   p50, p99 and server CPU per call, and as ratios to the echo floor.
3. Growth: two stores seeded directly through the store API (1k agents and
   their default instances, and 100k; 10k with --quick), each behind its own
   server. At each size: the p50 of get-by-slug (GetByReference) and
   instances-by-agent (ListByAgent) through the server, beside the same
   lookups in-process (store layer, controller layer) and as raw SQL on a
   plain driver connection (sqlite3 in-process; psycopg over TCP for
   PostgreSQL, so its floor includes the round trip to the database). The
   two sizes are measured in alternating rounds so both see the same machine
   noise. Indexed lookups should grow by ~1x (a scan would grow ~100x).

Why ratios: these machines are shared and noisy, so a bare "1,200 calls/s"
means little from one run to the next. Every server runs in its own spawned
process (client and server never share an event loop), and each operation is
measured between two echo measurements taken just before and just after it;
the floor it is divided by is the mean of those two. The ratios (and server CPU
per call, which noise disturbs much less than wall time) are the numbers to
compare between runs; the raw numbers are printed for context. Nothing here
asserts on timings.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import os
import platform
import random
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection

import grpc
import harness
import stores
from google.protobuf.timestamp_pb2 import Timestamp
from harness import Call, Sample, format_rate, format_ratio, format_seconds, ratio
from stores import BenchStore

from stigmer.api.v1 import agent_pb2, agentinstance_pb2, meta_pb2
from stigmer.client.aio import AsyncClient
from stigmer.domain.registry import Domains
from stigmer.pipeline.envelope import as_envelope, encode, now
from stigmer.resources.ids import new_id
from stigmer.resources.kinds import AGENT, AGENT_INSTANCE, API_VERSION, DEFAULT_ORG
from stigmer.resources.slugs import default_instance_slug
from stigmer.server.app import ServerOptions, StigmerServer
from stigmer.store.base import Record, Store
from stigmer.store.urls import store_from_url

ECHO_PAYLOAD = b"x" * 128
INSTRUCTIONS = "Review pull requests and point out bugs, missing tests and unclear names."
SEED_BATCH = 5_000
RAW_COLUMNS = (
    "kind, id, org, slug, version, data, owner_id, labels, "
    "agent_id, agent_instance_id, session_id, phase"
)


def raw_by_slug(mark: str) -> str:
    """The store's slug lookup as plain SQL, with the driver's parameter marker."""
    return (
        f"SELECT {RAW_COLUMNS} FROM resources "
        f"WHERE kind = {mark} AND org = {mark} AND slug = {mark}"
    )


def raw_by_agent(mark: str) -> str:
    """The store's instances-of-an-agent listing (one page) as plain SQL."""
    return (
        f"SELECT {RAW_COLUMNS} FROM resources WHERE kind = {mark} AND agent_id = {mark} "
        "ORDER BY id LIMIT 101"
    )


@dataclass(frozen=True)
class Settings:
    quick: bool
    calls_one: int
    calls_many: int
    warmup_one: int
    warmup_many: int
    many: int
    growth_sizes: tuple[int, int]
    growth_calls: int
    growth_warmup: int
    growth_rounds: int
    raw_lookups: int

    def calls(self, in_flight: int) -> int:
        return self.calls_one if in_flight == 1 else self.calls_many

    def warmup(self, in_flight: int) -> int:
        return self.warmup_one if in_flight == 1 else self.warmup_many


FULL = Settings(
    quick=False,
    calls_one=2000,
    calls_many=5000,
    warmup_one=200,
    warmup_many=500,
    many=64,
    growth_sizes=(1_000, 100_000),
    growth_calls=2000,
    growth_warmup=200,
    growth_rounds=5,
    raw_lookups=20_000,
)
QUICK = Settings(
    quick=True,
    calls_one=300,
    calls_many=1000,
    warmup_one=50,
    warmup_many=200,
    many=64,
    growth_sizes=(1_000, 10_000),
    growth_calls=600,
    growth_warmup=50,
    growth_rounds=3,
    raw_lookups=6_000,
)


def say(text: str = "") -> None:
    print(text, flush=True)


def size_label(count: int) -> str:
    return f"{count // 1000}k" if count % 1000 == 0 else str(count)


# -- the Stigmer server process ---------------------------------------------------


@asynccontextmanager
async def stigmer_server(store_url: str) -> AsyncIterator[str]:
    async with StigmerServer(ServerOptions(store_url=store_url, port=0)) as server:
        yield server.address


def stigmer_server_main(connection: Connection, store_url: str) -> None:
    """Target of the Stigmer server's process."""
    harness.run_server_child(connection, functools.partial(stigmer_server, store_url))


# -- resources ---------------------------------------------------------------------


def agent_message(name: str) -> agent_pb2.Agent:
    return agent_pb2.Agent(
        metadata=meta_pb2.ApiResourceMetadata(name=name, labels={"team": "bench"}),
        spec=agent_pb2.AgentSpec(description="benchmark agent", instructions=INSTRUCTIONS),
    )


def seeded_pair(index: int, moment: Timestamp, domains: Domains) -> tuple[Record, Record]:
    """An agent and its default instance as the server would store them."""
    name = f"seed agent {index:06d}"
    slug = f"seed-agent-{index:06d}"
    agent_id = new_id(AGENT.prefix)
    instance_id = new_id(AGENT_INSTANCE.prefix)
    audit = meta_pb2.Audit(created_at=moment, updated_at=moment)
    agent = as_envelope(
        agent_pb2.Agent(
            api_version=API_VERSION,
            kind=AGENT.name,
            metadata=meta_pb2.ApiResourceMetadata(
                name=name, slug=slug, id=agent_id, org=DEFAULT_ORG, version=1
            ),
            spec=agent_pb2.AgentSpec(instructions=INSTRUCTIONS),
            status=agent_pb2.AgentStatus(default_instance_id=instance_id, audit=audit),
        )
    )
    instance = as_envelope(
        agentinstance_pb2.AgentInstance(
            api_version=API_VERSION,
            kind=AGENT_INSTANCE.name,
            metadata=meta_pb2.ApiResourceMetadata(
                name=f"{name} default",
                slug=default_instance_slug(slug),
                id=instance_id,
                org=DEFAULT_ORG,
                version=1,
            ),
            spec=agentinstance_pb2.AgentInstanceSpec(
                agent_id=agent_id, description=f"Default instance of agent {slug}"
            ),
            status=agentinstance_pb2.AgentInstanceStatus(audit=audit),
        )
    )
    return (
        encode(AGENT, agent, domains.agents.relations_of(agent)),
        encode(AGENT_INSTANCE, instance, domains.agent_instances.relations_of(instance)),
    )


@dataclass(frozen=True)
class Seeded:
    slugs: list[str]
    agent_ids: list[str]


async def seed(store: Store, seeded: Seeded, target: int, *, writers: int = 1) -> float:
    """Grows the store to `target` agents (each with its default instance) through
    the store API, in big transactions, `writers` of them at a time; returns the
    seconds it took."""
    domains = Domains(store)
    moment = Timestamp()
    moment.FromDatetime(now())
    batches = iter(
        range(first, min(target, first + SEED_BATCH))
        for first in range(len(seeded.slugs), target, SEED_BATCH)
    )

    async def writer() -> None:
        for batch in batches:
            async with store.transaction() as tx:
                for index in batch:
                    agent, instance = seeded_pair(index, moment, domains)
                    await tx.insert(agent)
                    await tx.insert(instance)
                    seeded.slugs.append(agent.slug)
                    seeded.agent_ids.append(agent.id)

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(writers):
            group.create_task(writer())
    return time.perf_counter() - started


# -- part 1 and 2: operations against the echo floor -------------------------------------


@dataclass(frozen=True)
class Compared:
    """One operation's sample and the echo samples taken just before and after it."""

    sample: Sample
    before: Sample
    after: Sample

    def floor(self, of: str) -> float:
        """The mean of a Sample property over the two echo runs around this one."""
        values: list[float] = [getattr(self.before, of), getattr(self.after, of)]
        return sum(values) / len(values)

    @property
    def throughput_ratio(self) -> float:
        return ratio(self.sample.throughput, self.floor("throughput"))

    @property
    def p50_ratio(self) -> float:
        return ratio(self.sample.p50, self.floor("p50"))

    @property
    def cpu_ratio(self) -> float:
        return ratio(self.sample.server_cpu_per_call, self.floor("server_cpu_per_call"))


async def operations(client: AsyncClient) -> dict[str, Call]:
    """The measured calls, each on a fixture made here."""
    fixture = agent_message("bench fixture")
    created = await client.create(fixture)
    agent_id: str = created.metadata.id
    results = await client.apply(fixture)
    if results[0].outcome != "unchanged":
        raise RuntimeError(f"apply of an equal agent was {results[0].outcome!r}, not unchanged")
    instances = await client.list_instances_by_agent(agent_id)
    if len(instances) != 1:
        raise RuntimeError(f"agent {agent_id} has {len(instances)} instances, expected 1")
    names = itertools.count()

    async def get(_: int) -> object:
        return await client.get("agent", agent_id)

    async def create(_: int) -> object:
        return await client.create(agent_message(f"bench created {next(names)}"))

    async def apply_unchanged(_: int) -> object:
        return await client.apply(fixture)

    async def list_instances(_: int) -> object:
        return await client.list_instances_by_agent(agent_id)

    return {
        "get agent by id": get,
        "create agent": create,
        "apply unchanged": apply_unchanged,
        "list instances by agent": list_instances,
    }


async def compare_level(
    settings: Settings,
    in_flight: int,
    *,
    echo_call: Call,
    echo_pid: int,
    calls: dict[str, Call],
    stigmer_pid: int,
) -> list[Compared]:
    """echo, op 1, echo, op 2, ..., echo: each op between two floors."""
    count, warmup = settings.calls(in_flight), settings.warmup(in_flight)

    async def echo() -> Sample:
        return await harness.measure(
            echo_call,
            calls=count,
            in_flight=in_flight,
            warmup=warmup,
            label="echo",
            server_pid=echo_pid,
        )

    compared: list[Compared] = []
    before = await echo()
    for name, call in calls.items():
        sample = await harness.measure(
            call,
            calls=count,
            in_flight=in_flight,
            warmup=warmup,
            label=name,
            server_pid=stigmer_pid,
        )
        after = await echo()
        compared.append(Compared(sample, before, after))
        before = after
    return compared


def operations_table(results: Sequence[Compared]) -> str:
    headers = (
        "operation",
        "in flight",
        "calls/s",
        "p50",
        "p99",
        "server CPU/call",
        "calls/s vs echo",
        "p50 vs echo",
        "CPU vs echo",
    )
    rows: list[list[str]] = []
    for level in sorted({c.sample.in_flight for c in results}):
        at_level = [c for c in results if c.sample.in_flight == level]
        echoes = [at_level[0].before, *(c.after for c in at_level)]
        rows.append(
            [
                f"echo floor (median of {len(echoes)})",
                str(level),
                format_rate(harness.median([e.throughput for e in echoes])),
                format_seconds(harness.median([e.p50 for e in echoes])),
                format_seconds(harness.median([e.p99 for e in echoes])),
                format_seconds(harness.median([e.server_cpu_per_call for e in echoes])),
                "1.00x",
                "1.00x",
                "1.00x",
            ]
        )
        for c in at_level:
            s = c.sample
            rows.append(
                [
                    s.label,
                    str(level),
                    format_rate(s.throughput),
                    format_seconds(s.p50),
                    format_seconds(s.p99),
                    format_seconds(s.server_cpu_per_call),
                    format_ratio(c.throughput_ratio),
                    format_ratio(c.p50_ratio),
                    format_ratio(c.cpu_ratio),
                ]
            )
    return harness.table(headers, rows)


def echo_spread_table(results: Sequence[Compared]) -> str:
    """How much the floor itself moved during the run (noise indicator)."""
    headers = ("echo floor", "in flight", "runs", "calls/s min", "max", "p50 min", "max")
    rows: list[list[str]] = []
    for level in sorted({c.sample.in_flight for c in results}):
        at_level = [c for c in results if c.sample.in_flight == level]
        echoes = [at_level[0].before, *(c.after for c in at_level)]
        rates = [e.throughput for e in echoes]
        p50s = [e.p50 for e in echoes]
        rows.append(
            [
                "echo",
                str(level),
                str(len(echoes)),
                format_rate(min(rates)),
                format_rate(max(rates)),
                format_seconds(min(p50s)),
                format_seconds(max(p50s)),
            ]
        )
    return harness.table(headers, rows)


async def run_operations(
    settings: Settings, echo: harness.SpawnedServer, store: BenchStore
) -> list[Compared]:
    say(
        f"== 1+2. Operations vs. the bare gRPC echo floor (SDK client -> server process), "
        f"{store.name} store =="
    )
    store_url = store.new_url("operations")
    results: list[Compared] = []
    with harness.SpawnedServer("stigmer", stigmer_server_main, store_url) as server:
        async with (
            AsyncClient(server.address) as client,
            harness.echo_client(echo.address, ECHO_PAYLOAD) as echo_call,
        ):
            calls = await operations(client)
            for in_flight in (1, settings.many):
                results += await compare_level(
                    settings,
                    in_flight,
                    echo_call=echo_call,
                    echo_pid=echo.pid,
                    calls=calls,
                    stigmer_pid=server.pid,
                )
    say(operations_table(results))
    say()
    say(echo_spread_table(results))
    say(
        "calls/s vs echo: share of the floor's throughput (1.00x = as fast as a bare echo); "
        "p50 vs echo, CPU vs echo: multiples of the floor's p50 latency / server CPU per call. "
        "Each ratio divides by the mean of the echo runs just before and after the operation."
    )
    say()
    return results


# -- part 3: growth -------------------------------------------------------------------

# The raw lookups' labels name the store's plain driver ("{driver}").
RAW_SLUG = "raw {driver}: slug lookup (unique index)"
RAW_AGENT = "raw {driver}: instances of an agent"
STORE_SLUG = "store tx.get_by_slug (in-process)"
CONTROLLER_SLUG = "controller get_by_reference (in-process)"
GRPC_SLUG = "gRPC GetByReference (get agent by slug)"
GRPC_AGENT = "gRPC ListByAgent (instances by agent)"
# Each lookup and the raw SQL lookup it is compared with ("" for the raw ones).
LOOKUPS: dict[str, str] = {
    RAW_SLUG: "",
    RAW_AGENT: "",
    STORE_SLUG: RAW_SLUG,
    CONTROLLER_SLUG: RAW_SLUG,
    GRPC_SLUG: RAW_SLUG,
    GRPC_AGENT: RAW_AGENT,
}
Latencies = dict[str, list[float]]


@dataclass
class GrowthStore:
    """A seeded store, its server and the clients that read it."""

    size: int
    url: str
    store: Store
    seeded: Seeded
    latencies: Latencies

    def p50(self, lookup: str) -> float:
        return harness.percentile(sorted(self.latencies[lookup]), 0.5)


async def seeded_store(bench_store: BenchStore, size: int) -> tuple[GrowthStore, float]:
    url = bench_store.new_url(f"growth_{size_label(size)}")
    store = store_from_url(url)
    await store.open()
    seeded = Seeded([], [])
    try:
        seconds = await seed(store, seeded, size, writers=bench_store.writers)
    except BaseException:
        await store.close()
        raise
    return GrowthStore(size, url, store, seeded, {name: [] for name in LOOKUPS}), seconds


async def check_seeded(client: AsyncClient, seeded: Seeded) -> None:
    """The server reads seeded rows as it reads its own: agent -> default instance."""
    agent = await client.get("agent", seeded.slugs[-1])
    instances = await client.list_instances_by_agent(agent.metadata.id)
    if [i.metadata.id for i in instances] != [agent.status.default_instance_id]:
        raise RuntimeError(f"seeded agent {agent.metadata.slug} has a broken default instance")


def raw_round(bench_store: BenchStore, target: GrowthStore, count: int, rng: random.Random) -> None:
    """Both lookups as plain SQL on a separate connection of the store's own driver."""
    slugs = [rng.choice(target.seeded.slugs) for _ in range(count)]
    agent_ids = [rng.choice(target.seeded.agent_ids) for _ in range(count)]
    by_slug = raw_by_slug(bench_store.placeholder)
    by_agent = raw_by_agent(bench_store.placeholder)
    with bench_store.raw_connection(target.url) as connection:
        found = connection.execute(by_slug, (AGENT.name, DEFAULT_ORG, slugs[0])).fetchone()
        if found is None:
            raise RuntimeError(f"raw lookup found no seeded agent {slugs[0]}")
        target.latencies[RAW_SLUG] += harness.time_each(
            lambda i: connection.execute(by_slug, (AGENT.name, DEFAULT_ORG, slugs[i])).fetchone(),
            count,
        )
        target.latencies[RAW_AGENT] += harness.time_each(
            lambda i: connection.execute(by_agent, (AGENT_INSTANCE.name, agent_ids[i])).fetchall(),
            count,
        )


async def layered_round(
    target: GrowthStore, client: AsyncClient, count: int, warmup: int, rng: random.Random
) -> None:
    """Both lookups through each of our layers, one call in flight."""
    total = count + warmup
    slugs = [rng.choice(target.seeded.slugs) for _ in range(total)]
    agent_ids = [rng.choice(target.seeded.agent_ids) for _ in range(total)]
    store = target.store
    domains = Domains(store)

    async def store_lookup(i: int) -> object:
        async with store.transaction(write=False) as tx:
            return await tx.get_by_slug(AGENT.name, DEFAULT_ORG, slugs[i])

    async def controller_lookup(i: int) -> object:
        return await domains.agents.get_by_reference(DEFAULT_ORG, slugs[i])

    async def grpc_by_slug(i: int) -> object:
        return await client.get("agent", slugs[i])

    async def grpc_by_agent(i: int) -> object:
        instances = await client.list_instances_by_agent(agent_ids[i])
        if len(instances) != 1:
            raise RuntimeError(f"agent {agent_ids[i]} has {len(instances)} instances")
        return instances

    calls: dict[str, Call] = {
        STORE_SLUG: store_lookup,
        CONTROLLER_SLUG: controller_lookup,
        GRPC_SLUG: grpc_by_slug,
        GRPC_AGENT: grpc_by_agent,
    }
    for name, call in calls.items():
        sample = await harness.measure(call, calls=count, in_flight=1, warmup=warmup)
        target.latencies[name] += sample.latencies


def growth_table(driver: str, small: GrowthStore, large: GrowthStore) -> str:
    low, high = size_label(small.size), size_label(large.size)
    headers = (
        "lookup (1 in flight)",
        f"p50 @{low}",
        f"p50 @{high}",
        f"growth {high}/{low}",
        f"vs raw @{low}",
        f"vs raw @{high}",
    )
    rows: list[list[str]] = []
    for name, raw in LOOKUPS.items():
        rows.append(
            [
                name.format(driver=driver),
                format_seconds(small.p50(name)),
                format_seconds(large.p50(name)),
                format_ratio(ratio(large.p50(name), small.p50(name))),
                format_ratio(ratio(small.p50(name), small.p50(raw))) if raw else "",
                format_ratio(ratio(large.p50(name), large.p50(raw))) if raw else "",
            ]
        )
    return harness.table(headers, rows)


async def measure_growth(
    settings: Settings, bench_store: BenchStore, small: GrowthStore, large: GrowthStore
) -> None:
    """Alternates between the two stores in rounds, so both see the same noise."""
    rng = random.Random(7234)
    rounds = settings.growth_rounds
    with (
        harness.SpawnedServer("stigmer-small", stigmer_server_main, small.url) as small_server,
        harness.SpawnedServer("stigmer-large", stigmer_server_main, large.url) as large_server,
    ):
        async with (
            AsyncClient(small_server.address) as small_client,
            AsyncClient(large_server.address) as large_client,
        ):
            for target, client in ((small, small_client), (large, large_client)):
                await check_seeded(client, target.seeded)
            for round_index in range(rounds):
                warmup = settings.growth_warmup if round_index == 0 else 0
                for target, client in ((small, small_client), (large, large_client)):
                    raw_round(bench_store, target, settings.raw_lookups // rounds, rng)
                    await layered_round(
                        target, client, settings.growth_calls // rounds, warmup, rng
                    )


async def run_growth(
    settings: Settings, bench_store: BenchStore
) -> tuple[GrowthStore, GrowthStore]:
    low, high = (size_label(s) for s in settings.growth_sizes)
    say(
        f"== 3. Growth: lookups at {low} and {high} agents (+ one default instance each), "
        f"{bench_store.name} store =="
    )
    small, seconds = await seeded_store(bench_store, settings.growth_sizes[0])
    try:
        say(f"seeded {low} agents in {format_seconds(seconds)}")
        large, seconds = await seeded_store(bench_store, settings.growth_sizes[1])
        try:
            rate = large.size / seconds
            say(
                f"seeded {high} agents in {format_seconds(seconds)} "
                f"({format_rate(rate)} agents/s through the store API, 2 rows each, "
                f"{bench_store.writers} transaction{'s' if bench_store.writers > 1 else ''} "
                "at a time)"
            )
            for target in (small, large):
                refreshed = bench_store.refresh_statistics(target.url)
            if refreshed:
                say(refreshed)
            await measure_growth(settings, bench_store, small, large)
        finally:
            await large.store.close()
    finally:
        await small.store.close()
    say(growth_table(bench_store.driver, small, large))
    say(
        f"Measured in {settings.growth_rounds} alternating rounds on two stores, one server "
        f"each. growth: p50 @{high} divided by p50 @{low} (a scan instead of an index would "
        f"grow ~{large.size // small.size}x); vs raw: multiple of the plain SQL lookup on "
        f"the same store, i.e. what our layers add on top of {bench_store.name} and its "
        f"driver ({bench_store.driver})."
    )
    say()
    return small, large


# -- the stores side by side -------------------------------------------------------------


@dataclass(frozen=True)
class StoreResults:
    """What one store's part of the run measured."""

    store: str
    operations: list[Compared]
    growth: tuple[GrowthStore, GrowthStore]


def stores_operations_table(results: Sequence[StoreResults]) -> str:
    """Parts 1+2's ratios, a column per store for each ratio."""
    metrics: tuple[tuple[str, Callable[[Compared], float]], ...] = (
        ("calls/s", lambda c: c.throughput_ratio),
        ("p50", lambda c: c.p50_ratio),
        ("CPU", lambda c: c.cpu_ratio),
    )
    headers = [
        "operation (ratio to echo)",
        "in flight",
        *(f"{name} {r.store}" for name, _ in metrics for r in results),
    ]
    rows: list[list[str]] = []
    for index, compared in enumerate(results[0].operations):
        sample = compared.sample
        rows.append(
            [
                sample.label,
                str(sample.in_flight),
                *(format_ratio(of(r.operations[index])) for _, of in metrics for r in results),
            ]
        )
    return harness.table(headers, rows)


def stores_growth_table(results: Sequence[StoreResults]) -> str:
    """Part 3's ratios, a column per store for each ratio."""
    low, high = (size_label(size) for size in (g.size for g in results[0].growth))
    headers = [
        "lookup (1 in flight)",
        *(f"growth {high}/{low} {r.store}" for r in results),
        *(f"vs raw @{high} {r.store}" for r in results),
    ]
    growth_pairs = [r.growth for r in results]
    rows: list[list[str]] = []
    for name, raw in LOOKUPS.items():
        rows.append(
            [
                name.format(driver="driver"),
                *(
                    format_ratio(ratio(large.p50(name), small.p50(name)))
                    for small, large in growth_pairs
                ),
                *(
                    format_ratio(ratio(large.p50(name), large.p50(raw))) if raw else ""
                    for _, large in growth_pairs
                ),
            ]
        )
    return harness.table(headers, rows)


def report_stores(results: Sequence[StoreResults]) -> None:
    names = " vs ".join(r.store for r in results)
    say(f"== The stores side by side: {names} (ratios from the blocks above) ==")
    say(stores_operations_table(results))
    say(
        "calls/s: share of the echo floor's throughput; p50, CPU: multiples of the echo "
        "floor's p50 / server CPU per call (the floor measured around each operation)."
    )
    say()
    say(stores_growth_table(results))
    say(
        "raw driver: sqlite3 in-process for SQLite, psycopg over TCP to 127.0.0.1 for "
        "PostgreSQL (so PostgreSQL's floor includes a network round trip)."
    )
    say()


# -- main ------------------------------------------------------------------------------


async def run(settings: Settings, store_names: Sequence[str]) -> list[StoreResults]:
    task = asyncio.current_task()
    if task is not None:  # SIGTERM cleans up as Ctrl-C does: servers stopped, files removed
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    results: list[StoreResults] = []
    with harness.SpawnedServer("echo", harness.echo_server_main) as echo:
        for name in store_names:
            with stores.open_bench_store(name) as store:
                say(f"######## {store.name} ########")
                say(store.describe())
                say()
                operations = await run_operations(settings, echo, store)
                growth = await run_growth(settings, store)
                results.append(StoreResults(store.name, operations, growth))
    return results


def parse_arguments(argv: Sequence[str]) -> tuple[Settings, tuple[str, ...]]:
    """The settings and the names of the stores to run on, in order."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short smoke run (< 60 s per store)")
    stores.add_store_option(parser)
    arguments = parser.parse_args(argv)
    return QUICK if arguments.quick else FULL, stores.chosen_stores(arguments.store)


def main(argv: Sequence[str]) -> int:
    settings, store_names = parse_arguments(argv)
    started = time.perf_counter()
    say(
        f"Stigmer control-plane benchmark ({'quick' if settings.quick else 'full'}): "
        f"Python {platform.python_version()}, grpcio {grpc.__version__}, "
        f"{os.cpu_count()} cores, stores: {', '.join(store_names)}"
    )
    say(
        f"calls per measurement: {settings.calls_one} at 1 in flight, {settings.calls_many} "
        f"at {settings.many} (after {settings.warmup_one}/{settings.warmup_many} warm-up calls)"
    )
    say()
    try:
        results = asyncio.run(run(settings, store_names))
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("interrupted")
        return 130
    if len(results) > 1:
        report_stores(results)
    say(f"total runtime: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
