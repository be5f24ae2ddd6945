"""In-process clients: how one domain reaches another.

A domain never reads another domain's tables or runs its pipelines: it
reads through a ResourceReader (every kind's records read the same way: the
stored envelope, decoded) and writes through the other kind's client, which
calls that kind's controller inside the caller's transaction, so the same
validation and errors apply as to a network call. A controller gets the
readers and clients it needs at construction (see registry.py).
"""

from __future__ import annotations

from stigmer.api.v1 import meta_pb2
from stigmer.domain.resource_controller import ResourceController
from stigmer.errors import NotFound
from stigmer.pipeline.envelope import Envelope, decode
from stigmer.resources.kinds import DEFAULT_ORG, KindInfo
from stigmer.store.base import Transaction


class ResourceReader:
    def __init__(self, kind: KindInfo) -> None:
        self.kind = kind

    async def find(self, resource_id: str, transaction: Transaction) -> Envelope | None:
        record = await transaction.get(self.kind.name, resource_id)
        return decode(self.kind, record) if record is not None else None

    async def get(self, resource_id: str, transaction: Transaction) -> Envelope:
        """Raises: NotFound."""
        found = await self.find(resource_id, transaction)
        if found is None:
            raise NotFound(self.kind.name, resource_id)
        return found

    async def find_by_slug(self, org: str, slug: str, transaction: Transaction) -> Envelope | None:
        record = await transaction.get_by_slug(self.kind.name, org or DEFAULT_ORG, slug)
        return decode(self.kind, record) if record is not None else None

    async def require_slug(
        self, org: str, slug: str, transaction: Transaction, *, field: str
    ) -> Envelope:
        """The resource with this slug.

        Raises:
            NotFound: naming the field that referenced it.
        """
        found = await self.find_by_slug(org, slug, transaction)
        if found is None:
            raise NotFound(self.kind.name, slug, field=field)
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
            raise NotFound(self.kind.name, resource_id, field=field)
        return found


class ResourceClient(ResourceReader):
    """A kind's reads, and its writes through its controller."""

    def __init__(self, controller: ResourceController) -> None:
        super().__init__(controller.kind)
        self._controller = controller

    async def delete(self, request: meta_pb2.DeleteRequest, transaction: Transaction) -> Envelope:
        return await self._controller.delete(request, transaction=transaction)
