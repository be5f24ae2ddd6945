"""The controller every kind builds on: create, update, apply, delete, get, list.

A kind subclasses it to add its own steps (before persisting: resolve and
check references; after: ensure an agent's default instance) and to say
which indexed relations its resources have. Each public operation runs its
pipeline in one store transaction: the caller's when one is passed (an
in-process client of another domain joins the transaction it is part of),
else a new one.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

from stigmer.api.v1 import meta_pb2
from stigmer.errors import AlreadyExists, InvalidArgument, NotFound
from stigmer.message_limits import MAX_PAGE_BYTES
from stigmer.pipeline.context import ResourceContext
from stigmer.pipeline.envelope import Envelope, Relations, decode
from stigmer.pipeline.framework import Pipeline, Step
from stigmer.pipeline.steps import (
    BuildStateStep,
    DeleteStep,
    DetectUnchangedStep,
    LoadExistingStep,
    LoadForDeleteStep,
    PersistStep,
    RejectServerFieldsStep,
    ResolveSlugStep,
    ValidateStep,
)
from stigmer.resources.kinds import DEFAULT_ORG, KindInfo
from stigmer.store.base import ListQuery, Record, Store, Transaction

if TYPE_CHECKING:
    from stigmer.domain.registry import Domains

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


class ResourceController:
    kind: KindInfo
    # Kinds users write (create/update/apply); others, like executions, are
    # written only by the system through their own pipelines.
    is_user_written = True

    def __init__(self, store: Store, domains: Domains) -> None:
        self.store = store
        self.domains = domains
        name = self.kind.name.lower()
        self.delete_pipeline = Pipeline[ResourceContext](
            f"{name}.delete",
            [LoadForDeleteStep(), *self.before_delete_steps(), DeleteStep(self.delete_owned)],
        )
        if not self.is_user_written:
            return
        common_tail: list[Step[ResourceContext]] = [*self.build_steps(), DetectUnchangedStep()]
        persist: list[Step[ResourceContext]] = [PersistStep(), *self.after_persist_steps()]
        self.create_pipeline = Pipeline[ResourceContext](
            f"{name}.create",
            [
                ValidateStep(),
                RejectServerFieldsStep(),
                ResolveSlugStep(),
                BuildStateStep(),
                *common_tail,
                *persist,
            ],
        )
        self.update_pipeline = Pipeline[ResourceContext](
            f"{name}.update",
            [
                ValidateStep(),
                ResolveSlugStep(is_id_enough=True),
                LoadExistingStep(is_required=True),
                BuildStateStep(),
                *common_tail,
                *persist,
            ],
        )
        self.apply_pipeline = Pipeline[ResourceContext](
            f"{name}.apply",
            [
                ValidateStep(),
                ResolveSlugStep(),
                LoadExistingStep(is_required=False),
                BuildStateStep(),
                *common_tail,
                *persist,
            ],
        )

    # -- what a kind adds -------------------------------------------------

    def relations_of(self, resource: Envelope) -> Relations:
        return Relations()

    def build_steps(self) -> Sequence[Step[ResourceContext]]:
        """Steps after the state is built, before persisting (references)."""
        return ()

    def after_persist_steps(self) -> Sequence[Step[ResourceContext]]:
        return ()

    def before_delete_steps(self) -> Sequence[Step[ResourceContext]]:
        return ()

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

    async def _run(
        self,
        pipeline: Pipeline[ResourceContext],
        transaction: Transaction | None,
        *,
        given: Envelope | None = None,
        delete_request: meta_pb2.DeleteRequest | None = None,
        is_dry_run: bool = False,
    ) -> ResourceContext:
        async def work(tx: Transaction) -> ResourceContext:
            context = ResourceContext(
                kind=self.kind,
                transaction=tx,
                relations_of=self.relations_of,
                given=given,
                delete_request=delete_request,
            )
            await pipeline.run(context)
            return context

        return await self._in_transaction(transaction, work, is_dry_run=is_dry_run)

    async def create(self, given: Envelope, *, transaction: Transaction | None = None) -> Envelope:
        context = await self._run(self.create_pipeline, transaction, given=given)
        return context.require_state()

    async def update(self, given: Envelope, *, transaction: Transaction | None = None) -> Envelope:
        context = await self._run(self.update_pipeline, transaction, given=given)
        return context.require_state()

    async def apply(
        self,
        given: Envelope,
        *,
        is_dry_run: bool = False,
        transaction: Transaction | None = None,
    ) -> tuple[Envelope, int]:
        try:
            context = await self._run(
                self.apply_pipeline, transaction, given=given, is_dry_run=is_dry_run
            )
        except AlreadyExists:
            # Another writer created the slug between our lookup and insert
            # (possible on stores that let writers run concurrently): the
            # second attempt sees it and updates instead.
            if transaction is not None:
                raise
            context = await self._run(self.apply_pipeline, None, given=given, is_dry_run=is_dry_run)
        return context.require_state(), context.outcome

    async def delete(
        self, request: meta_pb2.DeleteRequest, *, transaction: Transaction | None = None
    ) -> Envelope:
        context = await self._run(self.delete_pipeline, transaction, delete_request=request)
        return context.require_state()

    async def delete_owned(self, context: ResourceContext) -> None:
        """Deletes, through their own controllers, the resources this one owns."""
        record = context.existing_record
        if record is None:
            return
        for child in self.domains.controllers.values():
            child_kind = child.kind
            if child_kind.owner_kind != self.kind.name:
                continue
            while True:
                owned = await context.transaction.list(
                    ListQuery(kind=child_kind.name, owner_id=record.id, limit=DEFAULT_PAGE_SIZE)
                )
                if not owned:
                    break
                for item in owned:
                    child_context = await child._run(
                        child.delete_pipeline,
                        context.transaction,
                        delete_request=meta_pb2.DeleteRequest(
                            id=item.id, cascade=meta_pb2.CASCADE_POLICY_BACKGROUND
                        ),
                    )
                    context.deleted += child_context.deleted

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
