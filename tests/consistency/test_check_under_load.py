"""A consistency check of a large store does not stall the server: gets made
while it runs answer about as fast as gets made without it.

The store is seeded straight through the store interface (one transaction,
the records the server itself would write for each agent and its default
instance), then served by a `stigmer server` process of its own, so the
check and the gets it must not stall share that server and nothing else.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from pathlib import Path

import pytest

from stigmer.api.v1 import agent_pb2, agentinstance_pb2, consistency_pb2, meta_pb2
from stigmer.client import Client
from stigmer.domain.registry import Domains
from stigmer.pipeline.envelope import as_envelope, encode
from stigmer.resources.ids import new_id
from stigmer.resources.kinds import AGENT, AGENT_INSTANCE, API_VERSION, DEFAULT_ORG
from stigmer.resources.slugs import default_instance_slug
from stigmer.store.sqlite import SqliteStore
from stigmer.testing.scripted_model import ScriptedModel
from stigmer.testing.server import ServerProcess

AGENTS = 100_000
GETS = 2_000  # before the check, and again after it
MIN_GETS_DURING_CHECK = 500
# The check may cost a get at most this multiple of its p99 without a check.
ALLOWED_P99_GROWTH = 2.0


def seed_agents(path: Path, count: int) -> list[str]:
    """`count` agents, each with its default instance; returns their slugs."""

    async def seed() -> list[str]:
        store = SqliteStore(path)
        await store.open()
        domains = Domains(store)
        slugs: list[str] = []
        try:
            async with store.transaction() as transaction:
                for index in range(count):
                    slug = f"agent-{index:06d}"
                    agent_id, instance_id = new_id(AGENT.prefix), new_id(AGENT_INSTANCE.prefix)
                    agent = as_envelope(
                        agent_pb2.Agent(
                            api_version=API_VERSION,
                            kind=AGENT.name,
                            metadata=meta_pb2.ApiResourceMetadata(
                                name=slug, slug=slug, id=agent_id, org=DEFAULT_ORG, version=1
                            ),
                            spec=agent_pb2.AgentSpec(instructions="Answer briefly."),
                            status=agent_pb2.AgentStatus(default_instance_id=instance_id),
                        )
                    )
                    instance = as_envelope(
                        agentinstance_pb2.AgentInstance(
                            api_version=API_VERSION,
                            kind=AGENT_INSTANCE.name,
                            metadata=meta_pb2.ApiResourceMetadata(
                                name=f"{slug} default",
                                slug=default_instance_slug(slug),
                                id=instance_id,
                                org=DEFAULT_ORG,
                                version=1,
                            ),
                            spec=agentinstance_pb2.AgentInstanceSpec(agent_id=agent_id),
                        )
                    )
                    await transaction.insert(
                        encode(AGENT, agent, domains.agents.relations_of(agent))
                    )
                    await transaction.insert(
                        encode(
                            AGENT_INSTANCE,
                            instance,
                            domains.agent_instances.relations_of(instance),
                        )
                    )
                    slugs.append(slug)
        finally:
            await store.close()
        return slugs

    return asyncio.run(seed())


def p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def timed_gets(client: Client, slugs: list[str], count: int, first: int = 0) -> list[float]:
    latencies = []
    for index in range(first, first + count):
        started = time.perf_counter()
        client.get("agent", slugs[index % len(slugs)])
        latencies.append(time.perf_counter() - started)
    return latencies


@pytest.mark.slow
@pytest.mark.timeout(1800)  # seeding 100k agents and a paced check, on a busy machine
def test_gets_during_a_check_of_100k_agents_keep_their_p99_within_twice(
    tmp_path: Path, model: ScriptedModel
) -> None:
    store_path = tmp_path / "stigmer.db"
    slugs = seed_agents(store_path, AGENTS)
    settings = {
        "CHECK_INTERVAL": "0",
        "LLM_PROVIDER": "openai",
        "LLM_MODEL": "scripted",
        "LLM_BASE_URL": model.base_url,
    }
    reports: list[consistency_pb2.ConsistencyReport] = []
    with (
        ServerProcess(tmp_path / "home", store_path, settings) as server,
        Client(server.address) as client,
        Client(server.address, timeout=900) as checking_client,
    ):
        timed_gets(client, slugs, 200)  # warm-up
        before = timed_gets(client, slugs, GETS)
        checking = threading.Thread(target=lambda: reports.append(checking_client.check()))
        checking.start()
        during: list[float] = []
        while checking.is_alive():
            during += timed_gets(client, slugs, 1, first=len(during))
        checking.join()
        # Gets on both sides of the check: the baseline sees the machine's
        # noise of the whole test, not only of its start.
        after = timed_gets(client, slugs, GETS)

    print(
        f"p99 of a get: {p99(during) * 1e3:.2f} ms during the check ({len(during)} gets), "
        f"{p99(before + after) * 1e3:.2f} ms without"
    )
    assert len(reports) == 1, "the check failed"
    assert list(reports[0].violations) == []
    assert reports[0].resources_checked == 2 * AGENTS
    assert len(during) >= MIN_GETS_DURING_CHECK, f"only {len(during)} gets during the check"
    without = p99(before + after)
    assert p99(during) <= ALLOWED_P99_GROWTH * without, (
        f"p99 of a get: {p99(during) * 1e3:.2f} ms during the check, "
        f"{without * 1e3:.2f} ms without ({len(during)} gets during it)"
    )
