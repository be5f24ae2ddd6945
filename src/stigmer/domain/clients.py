"""In-process clients: how one domain reaches another.

A domain never reads another domain's records; it calls that domain's
controller through these clients, inside the caller's transaction, so the
same validation and errors apply as to a network call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stigmer.errors import NotFound
from stigmer.pipeline.envelope import Envelope
from stigmer.store.base import Transaction

if TYPE_CHECKING:
    from stigmer.domain.resource_controller import ResourceController


class ResourceClient:
    def __init__(self, controller: ResourceController) -> None:
        self._controller = controller

    async def create(self, resource: Envelope, transaction: Transaction) -> Envelope:
        return await self._controller.create(resource, transaction=transaction)

    async def get(self, resource_id: str, transaction: Transaction) -> Envelope:
        return await self._controller.get(resource_id, transaction=transaction)

    async def find_by_slug(self, org: str, slug: str, transaction: Transaction) -> Envelope | None:
        return await self._controller.find_by_slug(org, slug, transaction=transaction)

    async def find(self, resource_id: str, transaction: Transaction) -> Envelope | None:
        try:
            return await self.get(resource_id, transaction)
        except NotFound:
            return None

    async def require_slug(
        self, org: str, slug: str, transaction: Transaction, *, field: str
    ) -> Envelope:
        """The resource with this slug.

        Raises:
            NotFound: naming the field that referenced it.
        """
        found = await self.find_by_slug(org, slug, transaction)
        if found is None:
            raise NotFound(self._controller.kind.name, slug, field=field)
        return found

    async def require_id(
        self, resource_id: str, transaction: Transaction, *, field: str
    ) -> Envelope:
        """The resource with this id.

        Raises:
            NotFound: naming the field that referenced it.
        """
        found = await self.find(resource_id, transaction)
        if found is None:
            raise NotFound(self._controller.kind.name, resource_id, field=field)
        return found
