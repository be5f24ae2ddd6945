"""The in-process client other domains use to reach sessions."""

from __future__ import annotations

from stigmer.domain.clients import ResourceClient
from stigmer.domain.session.controller import SessionController
from stigmer.pipeline.envelope import Envelope
from stigmer.store.base import Transaction


class SessionClient(ResourceClient):
    def __init__(self, controller: SessionController) -> None:
        super().__init__(controller)
        self._sessions = controller

    async def start_session(
        self, agent: Envelope, instance: Envelope, subject: str, transaction: Transaction
    ) -> Envelope:
        return await self._sessions.start_session(agent, instance, subject, transaction)
