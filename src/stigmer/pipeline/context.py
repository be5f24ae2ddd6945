"""The request context the resource pipelines share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from stigmer.api.v1 import meta_pb2
from stigmer.pipeline.envelope import Envelope, Relations
from stigmer.resources.kinds import KindInfo
from stigmer.store.base import Record, Transaction

RelationsOf = Callable[[Envelope], Relations]


@dataclass
class ResourceContext:
    """What one create/update/apply/delete request knows as its steps run.

    `given` is the resource as the caller sent it; `existing` what the store
    held before; `state` what the request will store (or stored).
    """

    kind: KindInfo
    transaction: Transaction
    relations_of: RelationsOf
    given: Envelope | None = None
    delete_request: meta_pb2.DeleteRequest | None = None
    existing: Envelope | None = None
    existing_record: Record | None = None
    state: Envelope | None = None
    outcome: int = meta_pb2.APPLY_OUTCOME_UNSPECIFIED
    deleted: list[Record] = field(default_factory=list)
    # For operations on a resource named by id (e.g. repairing an agent).
    target_id: str = ""
    target_field: str = ""

    @property
    def is_unchanged(self) -> bool:
        return self.outcome == meta_pb2.APPLY_OUTCOME_UNCHANGED

    def require_state(self) -> Envelope:
        if self.state is None:
            raise RuntimeError("no state built yet: a build step must run before this one")
        return self.state

    def require_given(self) -> Envelope:
        if self.given is None:
            raise RuntimeError("this pipeline needs a resource in the request")
        return self.given
