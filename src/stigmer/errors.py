"""The errors Stigmer raises, one tree for every layer.

    StigmerError
    ├── InvalidArgument      bad input; names the fields at fault
    ├── NotFound             a resource (or a reference) does not exist
    ├── AlreadyExists        a slug or idempotency key is taken; carries the existing id
    ├── Conflict             a write named a stale version (optimistic concurrency)
    ├── FailedPrecondition   the request is fine but the state forbids it
    ├── Unavailable          a dependency (server, store, model) cannot be reached
    ├── Unauthenticated      no valid token came with the request
    ├── PermissionDenied     the caller's role does not allow the request
    └── Internal             a bug; the message is safe to show, the cause is logged

Errors carry their facts as attributes so callers never parse messages. The
gRPC edge maps each class to one status code (server/status.py) and the SDK
maps them back (client/status.py), so the same class reaches an SDK user that
the domain raised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    """One field at fault: a dotted path such as `spec.instructions`."""

    field: str
    description: str


class StigmerError(Exception):
    """Root of every error Stigmer raises on purpose."""

    reason = "STIGMER_ERROR"

    def __init__(
        self,
        message: str,
        *,
        facts: Mapping[str, str] | None = None,
        violations: Sequence[FieldViolation] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.facts: dict[str, str] = dict(facts or {})
        self.violations = tuple(violations)

    @classmethod
    def restore(
        cls, message: str, facts: Mapping[str, str], violations: Sequence[FieldViolation] = ()
    ) -> StigmerError:
        """Rebuilds an error from its wire form (message, facts, violations)."""
        error = cls.__new__(cls)
        StigmerError.__init__(error, message, facts=facts, violations=violations)
        return error

    @property
    def step(self) -> str:
        """The pipeline step that raised the error, when one did."""
        return self.facts.get("step", "")

    def __str__(self) -> str:
        return self.message


class InvalidArgument(StigmerError):
    reason = "INVALID_ARGUMENT"

    @classmethod
    def for_field(cls, field: str, description: str) -> InvalidArgument:
        return cls(
            f"{field}: {description}" if field else description,
            violations=[FieldViolation(field, description)],
            facts={"field": field},
        )


class NotFound(StigmerError):
    reason = "NOT_FOUND"

    def __init__(self, kind: str, reference: str, *, field: str = "") -> None:
        message = f"{kind} {reference!r} not found"
        if field:
            message = f"{field}: {message}"
        super().__init__(message, facts={"kind": kind, "reference": reference, "field": field})

    @property
    def kind(self) -> str:
        return self.facts.get("kind", "")

    @property
    def reference(self) -> str:
        return self.facts.get("reference", "")


class AlreadyExists(StigmerError):
    reason = "ALREADY_EXISTS"

    def __init__(
        self, kind: str, slug: str, existing_id: str, *, org: str = "", message: str = ""
    ) -> None:
        super().__init__(
            message or f"{kind} with slug {slug!r} already exists (id {existing_id})",
            facts={"kind": kind, "slug": slug, "existing_id": existing_id, "org": org},
        )

    @property
    def kind(self) -> str:
        return self.facts.get("kind", "")

    @property
    def slug(self) -> str:
        return self.facts.get("slug", "")

    @property
    def existing_id(self) -> str:
        return self.facts.get("existing_id", "")


class Conflict(StigmerError):
    """A write named a version that is no longer current; re-read and retry."""

    reason = "VERSION_CONFLICT"

    def __init__(self, kind: str, resource_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"{kind} {resource_id} is at version {actual}, not {expected}; re-read and retry",
            facts={
                "kind": kind,
                "id": resource_id,
                "expected_version": str(expected),
                "actual_version": str(actual),
            },
        )


class FailedPrecondition(StigmerError):
    reason = "FAILED_PRECONDITION"


class Unavailable(StigmerError):
    reason = "UNAVAILABLE"


class Unauthenticated(StigmerError):
    reason = "UNAUTHENTICATED"


class PermissionDenied(StigmerError):
    reason = "PERMISSION_DENIED"


class Internal(StigmerError):
    reason = "INTERNAL"


ERROR_CLASSES: dict[str, type[StigmerError]] = {
    cls.reason: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        Conflict,
        FailedPrecondition,
        Unavailable,
        Unauthenticated,
        PermissionDenied,
        Internal,
    )
}
