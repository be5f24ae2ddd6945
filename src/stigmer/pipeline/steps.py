"""The steps every resource pipeline is made of.

A kind's controller composes these with its own steps (resolving
references, ensuring an agent's default instance, ...). Each step reads and
writes the context of its kind of operation (pipeline/context.py) and
nothing else.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from stigmer.api.v1 import meta_pb2
from stigmer.errors import Conflict, InvalidArgument, NotFound
from stigmer.pipeline.context import DeleteContext, StateContext, WriteContext
from stigmer.pipeline.envelope import Envelope, copy_resource, decode, encode, touch_audit
from stigmer.resources.ids import new_id
from stigmer.resources.kinds import AGENT_INSTANCE, API_VERSION, DEFAULT_ORG
from stigmer.resources.secrets import restore_masked_secrets
from stigmer.resources.slugs import resolve_slug
from stigmer.resources.validation import validate_message


@dataclass(frozen=True)
class ValidateStep:
    """Field rules, and an envelope that names this kind."""

    name: str = "validate"

    async def run(self, context: WriteContext) -> None:
        given = context.given
        if given.api_version and given.api_version != API_VERSION:
            raise InvalidArgument.for_field(
                "api_version", f"must be {API_VERSION!r}, got {given.api_version!r}"
            )
        if given.kind and given.kind != context.kind.name:
            raise InvalidArgument.for_field(
                "kind", f"this service takes {context.kind.name}, got {given.kind!r}"
            )
        validate_message(given)  # type: ignore[arg-type]


@dataclass(frozen=True)
class RejectServerFieldsStep:
    """On create, the id is the server's to assign."""

    name: str = "reject-server-fields"

    async def run(self, context: WriteContext) -> None:
        if context.given.metadata.id:
            raise InvalidArgument.for_field(
                "metadata.id", "is assigned by the server; leave it empty on create"
            )


@dataclass(frozen=True)
class ResolveSlugStep:
    """Default org, and the slug given or derived from the name.

    An update that names the id keeps the stored slug, so renaming a
    resource by id does not try to move it to another slug.
    """

    is_id_enough: bool = False
    name: str = "resolve-slug"

    async def run(self, context: WriteContext) -> None:
        metadata = context.given.metadata
        metadata.org = metadata.org or DEFAULT_ORG
        if self.is_id_enough and metadata.id:
            return
        metadata.slug = resolve_slug(
            metadata.name,
            metadata.slug,
            is_default_allowed=context.kind.name == AGENT_INSTANCE.name,
        )


@dataclass(frozen=True)
class LoadExistingStep:
    """Loads the stored resource the request names (by id, else by slug).

    For updates a missing resource is NOT_FOUND; for apply it means "create".
    """

    is_required: bool
    name: str = "load-existing"

    async def run(self, context: WriteContext) -> None:
        metadata = context.given.metadata
        kind = context.kind.name
        transaction = context.transaction
        if metadata.id and self.is_required:
            record = await transaction.get(kind, metadata.id)
            if record is None:
                raise NotFound(kind, metadata.id, field="metadata.id")
            if record.slug != metadata.slug and metadata.slug:
                raise InvalidArgument.for_field(
                    "metadata.slug",
                    f"is immutable: {kind} {record.id} has slug {record.slug!r}",
                )
        else:
            # apply identifies a resource by (org, slug); an id in the
            # manifest (from `get -o yaml`) is the server's and is ignored.
            record = await transaction.get_by_slug(kind, metadata.org, metadata.slug)
            if record is None and self.is_required:
                raise NotFound(kind, metadata.slug, field="metadata.slug")
        if record is not None:
            if record.org != metadata.org:
                raise InvalidArgument.for_field("metadata.org", "is immutable")
            context.existing_record = record
            context.existing = decode(context.kind, record)


@dataclass(frozen=True)
class BuildStateStep:
    """The state to store: a new resource, or the existing one with the
    request's name, labels, annotations and spec. Status is system-owned, so
    an update keeps the stored status whatever the request carried."""

    name: str = "build-state"

    async def run(self, context: WriteContext) -> None:
        given = context.given
        state = copy_resource(context.kind, given)
        state.api_version = API_VERSION
        state.kind = context.kind.name
        existing = context.existing
        state.ClearField("status")
        if existing is None:
            state.metadata.id = new_id(context.kind.prefix)
            state.metadata.version = 1
            touch_audit(state, created=True)
        else:
            stored_version = existing.metadata.version
            if given.metadata.version and given.metadata.version != stored_version:
                raise Conflict(
                    context.kind.name, existing.metadata.id, given.metadata.version, stored_version
                )
            state.metadata.id = existing.metadata.id
            state.metadata.slug = existing.metadata.slug
            state.metadata.org = existing.metadata.org
            state.metadata.version = stored_version + 1
            state.status.CopyFrom(existing.status)
            restore_masked_secrets(state.spec, existing.spec)
            touch_audit(state, created=False)
        context.state = state


@dataclass(frozen=True)
class DecideOutcomeStep:
    """CREATED for a new resource; CONFIGURED for a changed one; UNCHANGED
    for an equal one, which writes nothing and keeps the version."""

    name: str = "decide-outcome"

    async def run(self, context: WriteContext) -> None:
        existing, state = context.existing, context.require_state()
        if existing is None:
            context.outcome = meta_pb2.APPLY_OUTCOME_CREATED
            return
        is_equal = (
            existing.spec == state.spec
            and existing.metadata.name == state.metadata.name
            and dict(existing.metadata.labels) == dict(state.metadata.labels)
            and dict(existing.metadata.annotations) == dict(state.metadata.annotations)
        )
        if is_equal:
            context.outcome = meta_pb2.APPLY_OUTCOME_UNCHANGED
            context.state = existing
        else:
            context.outcome = meta_pb2.APPLY_OUTCOME_CONFIGURED


@dataclass(frozen=True)
class ImmutableFieldStep:
    """A field an update may not change (the owner a resource belongs to).

    `explanation` says what the stored value means, `{}` standing for it.
    """

    path: str
    explanation: str
    name: str = "check-immutable"

    async def run(self, context: WriteContext) -> None:
        existing = context.existing
        if existing is None:
            return
        stored = field_value(existing, self.path)
        if stored != field_value(context.require_state(), self.path):
            raise InvalidArgument.for_field(
                self.path, f"is immutable ({self.explanation.format(stored)})"
            )


def field_value(resource: Envelope, path: str) -> Any:
    value: Any = resource
    for part in path.split("."):
        value = getattr(value, part)
    return value


@dataclass(frozen=True)
class PersistStep:
    """Insert (unique index on slug: ALREADY_EXISTS) or compare-and-swap."""

    name: str = "persist"

    async def run(self, context: StateContext) -> None:
        if context.is_unchanged:
            return
        state = context.require_state()
        record = encode(context.kind, state, context.relations_of(state))
        if context.existing_record is None:
            await context.transaction.insert(record)
        else:
            await context.transaction.update(record, context.existing_record.version)


@dataclass(frozen=True)
class LoadForDeleteStep:
    name: str = "load-existing"

    async def run(self, context: DeleteContext) -> None:
        request = context.request
        kind = context.kind.name
        if request.WhichOneof("target") == "id":
            record = await context.transaction.get(kind, request.id)
            reference = request.id
        else:
            org = request.ref.org or DEFAULT_ORG
            record = await context.transaction.get_by_slug(kind, org, request.ref.slug)
            reference = request.ref.slug
        if record is None:
            raise NotFound(kind, reference)
        if request.version and request.version != record.version:
            raise Conflict(kind, record.id, request.version, record.version)
        context.existing_record = record
        context.existing = decode(context.kind, record)


DeleteOwned = Callable[[DeleteContext], Awaitable[None]]


@dataclass(frozen=True)
class DeleteStep:
    """Deletes the resource, first its owned resources unless orphaning."""

    delete_owned: DeleteOwned
    name: str = "delete"

    async def run(self, context: DeleteContext) -> None:
        record, _ = context.require_existing()
        if context.request.cascade != meta_pb2.CASCADE_POLICY_ORPHAN:
            await self.delete_owned(context)
        await context.transaction.delete(record.kind, record.id)
        context.deleted.append(record)
