"""The controllers every kind builds on.

    ResourceController               get, find, list, delete (with the cascade)
    └── WritableResourceController   create, update, apply

Executions are a ResourceController only: the system writes them through
their own pipelines; users never create, update or apply them. A kind adds
its steps by passing them to the constructor (resolving and checking
references before persisting; ensuring an agent's default instance after)
and says which indexed relations its resources have (`relations_of`). Each
public operation runs its pipeline in one store transaction: the caller's
when one is passed (an in-process client of another domain joins the
transaction it is part of), else a new one. `pipelines` lists every
pipeline a controller runs; the crash matrix reads it.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from stigmer.api.v1 import meta_pb2
from stigmer.errors import AlreadyExists, InvalidArgument, NotFound
from stigmer.message_limits import MAX_PAGE_BYTES
from stigmer.pipeline.context import DeleteContext, WriteContext
from stigmer.pipeline.envelope import Envelope, Relations, decode
from stigmer.pipeline.framework import Pipeline, Step
from stigmer.pipeline.steps import (
    BuildStateStep,
    DecideOutcomeStep,
    DeleteStep,
    LoadExistingStep,
    LoadForDeleteStep,
    PersistStep,
    RejectServerFieldsStep,
    ResolveSlugStep,
    ValidateStep,
)
from stigmer.resources.kinds import DEFAULT_ORG, KindInfo
from stigmer.store.base import ListQuery, Record, Store, Transaction

T = TypeVar("T")
DEFAULT_PAGE_SIZE = 100


@dataclass(frozen=True)
class Page:
    items: list[Envelope]
    next_page_token: str


def encode_page_token(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode()


# What a token this server issued decodes to: the id of the last item of a
# page of this kind. Anything else (text that only looks like base64, an id
# of another kind) is refused rather than silently listing from the start.
_TOKEN_ID = re.compile(r"[a-z]+-[0-9a-z]{1,64}")


def decode_page_token(token: str, prefix: str) -> str:
    """The id a page token continues after; "" for the first page.

    Raises:
        InvalidArgument: the token is not one this server issued for this kind.
    """
    if not token:
        return ""
    try:
        last_id = base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeError):
        last_id = ""
    if not _TOKEN_ID.fullmatch(last_id) or not last_id.startswith(prefix + "-"):
        raise InvalidArgument.for_field("page_token", "is not a token this server issued")
    return last_id


def _fitting_in_one_message(records: Sequence[Record]) -> list[Record]:
    """The first records whose page fits in one gRPC message (at least one,
    so that a list always moves on): large executions make short pages."""
    total = 0
    for count, record in enumerate(records):
        total += len(record.data)
        if count and total > MAX_PAGE_BYTES:
            return list(records[:count])
    return list(records)


class OwnedKind(Protocol):
    """How an owner reaches a kind it owns, to delete it in the cascade."""

    @property
    def kind(self) -> KindInfo: ...

    async def delete(
        self, request: meta_pb2.DeleteRequest, transaction: Transaction
    ) -> Envelope: ...


class ResourceController:
    kind: KindInfo

    def __init__(self, store: Store, *, before_delete: Sequence[Step[DeleteContext]] = ()) -> None:
        self.store = store
        self._owned: list[OwnedKind] = []
        self.delete_pipeline = Pipeline[DeleteContext](
            f"{self.kind.name.lower()}.delete",
            [LoadForDeleteStep(), *before_delete, DeleteStep(self._delete_owned)],
        )

    @property
    def pipelines(self) -> tuple[Pipeline[Any], ...]:
        return (self.delete_pipeline,)

    def relations_of(self, resource: Envelope) -> Relations:
        return Relations()

    def owns(self, owned: OwnedKind) -> None:
        """Deletes resources of `owned`'s kind with their owner, this kind.

        Wired once every controller exists: executions, owned by sessions,
        also start sessions, so neither controller can take the other at
        construction.
        """
        if owned.kind.owner_kind != self.kind.name:
            raise ValueError(f"{owned.kind.name} is not owned by {self.kind.name}")
        self._owned.append(owned)

    # -- operations -------------------------------------------------------

    async def _in_transaction(
        self,
        transaction: Transaction | None,
        work: Callable[[Transaction], Awaitable[T]],
        *,
        is_dry_run: bool = False,
    ) -> T:
        if transaction is not None:
            return await work(transaction)
        async with self.store.transaction() as own:
            result = await work(own)
            if is_dry_run:
                own.discard()
            return result

    async def delete(
        self, request: meta_pb2.DeleteRequest, *, transaction: Transaction | None = None
    ) -> Envelope:
        async def work(tx: Transaction) -> Envelope:
            context = DeleteContext(
                kind=self.kind, transaction=tx, relations_of=self.relations_of, request=request
            )
            await self.delete_pipeline.run(context)
            return context.require_existing()[1]

        return await self._in_transaction(transaction, work)

    async def _delete_owned(self, context: DeleteContext) -> None:
        """Deletes, through their own kinds' clients, the resources this one owns."""
        record, _ = context.require_existing()
        for owned in self._owned:
            while True:
                page = await context.transaction.list(
                    ListQuery(kind=owned.kind.name, owner_id=record.id, limit=DEFAULT_PAGE_SIZE)
                )
                if not page:
                    break
                for item in page:
                    await owned.delete(
                        meta_pb2.DeleteRequest(
                            id=item.id, cascade=meta_pb2.CASCADE_POLICY_BACKGROUND
                        ),
                        context.transaction,
                    )

    async def get(self, resource_id: str, *, transaction: Transaction | None = None) -> Envelope:
        async def work(tx: Transaction) -> Envelope:
            record = await tx.get(self.kind.name, resource_id)
            if record is None:
                raise NotFound(self.kind.name, resource_id)
            return decode(self.kind, record)

        return await self._in_transaction_read(transaction, work)

    async def find_by_slug(
        self, org: str, slug: str, *, transaction: Transaction | None = None
    ) -> Envelope | None:
        async def work(tx: Transaction) -> Envelope | None:
            record = await tx.get_by_slug(self.kind.name, org or DEFAULT_ORG, slug)
            return decode(self.kind, record) if record is not None else None

        return await self._in_transaction_read(transaction, work)

    async def get_by_reference(
        self, org: str, slug: str, *, transaction: Transaction | None = None
    ) -> Envelope:
        found = await self.find_by_slug(org, slug, transaction=transaction)
        if found is None:
            raise NotFound(self.kind.name, slug)
        return found

    async def list(
        self,
        query: ListQuery,
        *,
        page_token: str = "",
        transaction: Transaction | None = None,
    ) -> Page:
        limit = query.limit or DEFAULT_PAGE_SIZE
        after = decode_page_token(page_token, self.kind.prefix)

        async def work(tx: Transaction) -> Page:
            records = await tx.list(
                replace(query, kind=self.kind.name, after_id=after, limit=limit + 1)
            )
            has_more = len(records) > limit
            records = records[:limit]
            fitting = _fitting_in_one_message(records)
            has_more = has_more or len(fitting) < len(records)
            records = fitting
            token = encode_page_token(records[-1].id) if has_more else ""
            return Page([decode(self.kind, r) for r in records], token)

        return await self._in_transaction_read(transaction, work)

    async def _in_transaction_read(
        self, transaction: Transaction | None, work: Callable[[Transaction], Awaitable[T]]
    ) -> T:
        if transaction is not None:
            return await work(transaction)
        async with self.store.transaction(write=False) as own:
            return await work(own)


class WritableResourceController(ResourceController):
    """A kind users write: create, update and apply pipelines around the
    kind's own steps."""

    def __init__(
        self,
        store: Store,
        *,
        before_persist: Sequence[Step[WriteContext]] = (),
        after_persist: Sequence[Step[WriteContext]] = (),
        before_delete: Sequence[Step[DeleteContext]] = (),
    ) -> None:
        super().__init__(store, before_delete=before_delete)
        name = self.kind.name.lower()
        tail: list[Step[WriteContext]] = [
            BuildStateStep(),
            *before_persist,
            DecideOutcomeStep(),
            PersistStep(),
            *after_persist,
        ]
        self.create_pipeline = Pipeline[WriteContext](
            f"{name}.create", [ValidateStep(), RejectServerFieldsStep(), ResolveSlugStep(), *tail]
        )
        self.update_pipeline = Pipeline[WriteContext](
            f"{name}.update",
            [
                ValidateStep(),
                ResolveSlugStep(is_id_enough=True),
                LoadExistingStep(is_required=True),
                *tail,
            ],
        )
        self.apply_pipeline = Pipeline[WriteContext](
            f"{name}.apply",
            [ValidateStep(), ResolveSlugStep(), LoadExistingStep(is_required=False), *tail],
        )

    @property
    def pipelines(self) -> tuple[Pipeline[Any], ...]:
        return (*super().pipelines, self.create_pipeline, self.update_pipeline, self.apply_pipeline)

    async def _write(
        self,
        pipeline: Pipeline[WriteContext],
        given: Envelope,
        transaction: Transaction | None,
        *,
        is_dry_run: bool = False,
    ) -> WriteContext:
        async def work(tx: Transaction) -> WriteContext:
            context = WriteContext(
                kind=self.kind, transaction=tx, relations_of=self.relations_of, given=given
            )
            await pipeline.run(context)
            return context

        return await self._in_transaction(transaction, work, is_dry_run=is_dry_run)

    async def create(self, given: Envelope, *, transaction: Transaction | None = None) -> Envelope:
        context = await self._write(self.create_pipeline, given, transaction)
        return context.require_state()

    async def update(self, given: Envelope, *, transaction: Transaction | None = None) -> Envelope:
        context = await self._write(self.update_pipeline, given, transaction)
        return context.require_state()

    async def apply(
        self,
        given: Envelope,
        *,
        is_dry_run: bool = False,
        transaction: Transaction | None = None,
    ) -> tuple[Envelope, int]:
        try:
            context = await self._write(
                self.apply_pipeline, given, transaction, is_dry_run=is_dry_run
            )
        except AlreadyExists:
            # Another writer created the slug between our lookup and insert
            # (possible on stores that let writers run concurrently): the
            # second attempt sees it and updates instead.
            if transaction is not None:
                raise
            context = await self._write(self.apply_pipeline, given, None, is_dry_run=is_dry_run)
        return context.require_state(), context.outcome
