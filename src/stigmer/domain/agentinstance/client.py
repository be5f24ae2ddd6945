"""The in-process client other domains use to reach agent instances."""

from __future__ import annotations

from stigmer.domain.agentinstance.controller import AgentInstanceController
from stigmer.domain.clients import ResourceClient
from stigmer.pipeline.envelope import Envelope
from stigmer.store.base import Transaction


class AgentInstanceClient(ResourceClient):
    def __init__(self, controller: AgentInstanceController) -> None:
        super().__init__(controller)
        self._instances = controller

    async def get_or_create_default(self, agent: Envelope, transaction: Transaction) -> Envelope:
        return await self._instances.get_or_create_default(agent, transaction)
