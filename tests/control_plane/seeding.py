"""Writing state straight into a store, bypassing the API, the way an older
version, a crash or a manual edit would have left it.

Everything goes through the store interface on a store opened from the
server's own URL, so the same seeders work on every backend.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from stigmer.api.v1 import agent_pb2, agentinstance_pb2, meta_pb2
from stigmer.pipeline.envelope import Relations, as_envelope, decode, encode
from stigmer.resources.ids import new_id
from stigmer.resources.kinds import AGENT, AGENT_INSTANCE
from stigmer.store.base import Transaction
from stigmer.store.urls import store_from_url

T = TypeVar("T")


def in_store(store_url: str, work: Callable[[Transaction], Awaitable[T]]) -> T:
    async def run() -> T:
        store = store_from_url(store_url)
        await store.open()
        try:
            async with store.transaction() as transaction:
                return await work(transaction)
        finally:
            await store.close()

    return asyncio.run(run())


def clear_default_instance_id(store_url: str, agent_id: str) -> None:
    async def work(transaction: Transaction) -> None:
        record = await transaction.get(AGENT.name, agent_id)
        assert record is not None
        agent = decode(AGENT, record)
        agent.status.default_instance_id = ""
        agent.metadata.version += 1
        await transaction.update(encode(AGENT, agent, Relations()), record.version)

    in_store(store_url, work)


def point_default_instance_id(store_url: str, agent_id: str, instance_id: str) -> None:
    async def work(transaction: Transaction) -> None:
        record = await transaction.get(AGENT.name, agent_id)
        assert record is not None
        agent = decode(AGENT, record)
        agent.status.default_instance_id = instance_id
        agent.metadata.version += 1
        await transaction.update(encode(AGENT, agent, Relations()), record.version)

    in_store(store_url, work)


def insert_instance(store_url: str, slug: str, agent_id: str) -> str:
    instance = agentinstance_pb2.AgentInstance(
        api_version="agentic.stigmer.ai/v1",
        kind="AgentInstance",
        metadata=meta_pb2.ApiResourceMetadata(name=slug, slug=slug, org="local", version=1),
        spec=agentinstance_pb2.AgentInstanceSpec(agent_id=agent_id),
    )
    instance.metadata.id = new_id(AGENT_INSTANCE.prefix)
    relations = Relations(owner_id=agent_id, agent_id=agent_id)

    async def work(transaction: Transaction) -> None:
        await transaction.insert(encode(AGENT_INSTANCE, as_envelope(instance), relations))

    in_store(store_url, work)
    return instance.metadata.id


def insert_bare_agent(store_url: str, name: str, slug: str) -> str:
    """An agent as an older version wrote it: no default instance, no status."""
    agent = agent_pb2.Agent(
        api_version="agentic.stigmer.ai/v1",
        kind="Agent",
        metadata=meta_pb2.ApiResourceMetadata(name=name, slug=slug, org="local", version=1),
        spec=agent_pb2.AgentSpec(instructions="Review pull requests and point out risky changes."),
    )
    agent.metadata.id = new_id(AGENT.prefix)

    async def work(transaction: Transaction) -> None:
        await transaction.insert(encode(AGENT, as_envelope(agent), Relations()))

    in_store(store_url, work)
    return agent.metadata.id


def count(store_url: str, kind: str) -> int:
    async def work(transaction: Transaction) -> int:
        return await transaction.count(kind)

    return in_store(store_url, work)
