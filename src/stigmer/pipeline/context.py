"""The request contexts the resource pipelines run on, one type per kind of
operation.

    PipelineContext            is_done: a step may end the pipeline early
    └── ResourceContext        the kind, the transaction, the kind's relations
        ├── StateContext       a resource state to store (existing, state, outcome)
        │   ├── WriteContext   create / update / apply / get-or-create: `given`
        │   └── TargetContext  an operation on a resource named by id (repairs)
        └── DeleteContext      delete: the request and what it deleted

A step declares the context it reads, and `Pipeline[C]` only takes steps
that accept a `C`: mypy rejects a write step in a delete pipeline. A step
written for `StateContext` serves both write and target pipelines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from stigmer.api.v1 import meta_pb2
from stigmer.pipeline.envelope import Envelope, Relations
from stigmer.resources.kinds import KindInfo
from stigmer.store.base import Record, Transaction

RelationsOf = Callable[[Envelope], Relations]


@dataclass(kw_only=True)
class PipelineContext:
    """What every pipeline's context has: a way for a step to say the work
    is done (a replayed request, say) so that the steps after it do not run."""

    is_done: bool = False

    def finish(self) -> None:
        self.is_done = True


@dataclass(kw_only=True)
class ResourceContext(PipelineContext):
    kind: KindInfo
    transaction: Transaction
    relations_of: RelationsOf


@dataclass(kw_only=True)
class StateContext(ResourceContext):
    """`existing` is what the store held before; `state` what the request
    will store (or stored); `outcome` what apply reports."""

    existing: Envelope | None = None
    existing_record: Record | None = None
    state: Envelope | None = None
    outcome: int = meta_pb2.APPLY_OUTCOME_UNSPECIFIED

    @property
    def is_unchanged(self) -> bool:
        return self.outcome == meta_pb2.APPLY_OUTCOME_UNCHANGED

    def require_state(self) -> Envelope:
        if self.state is None:
            raise RuntimeError("no state built yet: a build step must run before this one")
        return self.state


@dataclass(kw_only=True)
class WriteContext(StateContext):
    """A create, update, apply or get-or-create: `given` is the resource as
    the caller sent it."""

    given: Envelope


@dataclass(kw_only=True)
class TargetContext(StateContext):
    """An operation on a resource named by id (e.g. repairing an agent);
    `target_field` is the request field that named it, for NotFound."""

    target_id: str
    target_field: str


@dataclass(kw_only=True)
class DeleteContext(ResourceContext):
    request: meta_pb2.DeleteRequest
    existing: Envelope | None = None
    existing_record: Record | None = None
    # This resource and everything the cascade deleted with it.
    deleted: list[Record] = field(default_factory=list)

    def require_existing(self) -> tuple[Record, Envelope]:
        if self.existing_record is None or self.existing is None:
            raise RuntimeError("nothing loaded yet: load-existing must run before this step")
        return self.existing_record, self.existing
