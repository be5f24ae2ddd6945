"""The in-process client other domains use to reach agents."""

from __future__ import annotations

from stigmer.domain.agent.controller import AgentController
from stigmer.domain.clients import ResourceClient
from stigmer.pipeline.envelope import Envelope
from stigmer.store.base import Transaction


class AgentClient(ResourceClient):
    def __init__(self, controller: AgentController) -> None:
        super().__init__(controller)
        self._agents = controller

    async def ensure_default_instance(
        self, agent_id: str, transaction: Transaction, *, field: str
    ) -> Envelope:
        return await self._agents.ensure_default_instance(agent_id, transaction, field=field)
