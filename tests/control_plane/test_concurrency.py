"""Uniqueness lives in the store: racing writers end with one resource."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from stigmer.client import AsyncClient, Client
from stigmer.testing.server import ServerThread
from tests.control_plane.manifests import agent
from tests.control_plane.seeding import count

CLIENTS = 32


@pytest.mark.slow
def test_concurrent_applies_of_one_new_agent_make_one_agent_and_one_default_instance(
    server: ServerThread, store_url: str
) -> None:
    async def apply_from_own_client() -> str:
        async with AsyncClient(server.address) as own:
            (result,) = await own.apply(agent("PR Reviewer"))
            return result.outcome

    async def race() -> list[str]:
        return list(await asyncio.gather(*(apply_from_own_client() for _ in range(CLIENTS))))

    outcomes = Counter(asyncio.run(race()))

    assert outcomes["created"] == 1
    assert outcomes["created"] + outcomes["unchanged"] + outcomes["configured"] == CLIENTS
    assert count(store_url, "Agent") == 1
    assert count(store_url, "AgentInstance") == 1
    with Client(server.address) as client:
        stored = client.get("agent", "pr-reviewer")
        instance = client.get("agentinstance", "pr-reviewer-default")
    assert stored.status.default_instance_id == instance.metadata.id


@pytest.mark.slow
def test_concurrent_creates_of_one_slug_succeed_once_and_report_the_winner(
    server: ServerThread,
) -> None:
    async def create() -> str:
        async with AsyncClient(server.address) as own:
            try:
                created = await own.create(agent("PR Reviewer"))
            except Exception as error:
                return f"{type(error).__name__}:{getattr(error, 'existing_id', '')}"
            return f"created:{created.metadata.id}"

    async def race() -> list[str]:
        return list(await asyncio.gather(*(create() for _ in range(16))))

    results = asyncio.run(race())
    winners = [r.split(":")[1] for r in results if r.startswith("created:")]
    assert len(winners) == 1
    assert sorted(set(results) - {f"created:{winners[0]}"}) == [f"AlreadyExists:{winners[0]}"]
