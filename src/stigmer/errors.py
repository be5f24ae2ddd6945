"""The errors Stigmer raises on purpose, one tree for every layer.

    StigmerError
    ├── InvalidArgument      INVALID_ARGUMENT     bad input; names the fields at fault
    ├── NotFound             NOT_FOUND            a resource (or a reference) does not exist
    ├── AlreadyExists        ALREADY_EXISTS       a slug or idempotency key is taken
    ├── Conflict             ABORTED              a write named a stale version
    ├── FailedPrecondition   FAILED_PRECONDITION  the request is fine; the state forbids it
    ├── Unavailable          UNAVAILABLE          a dependency cannot be reached
    ├── Unauthenticated      UNAUTHENTICATED      no valid token came with the request
    ├── PermissionDenied     PERMISSION_DENIED    the caller's role does not allow the request
    └── Internal             INTERNAL             a bug; clients get only a request id

Errors carry their facts as attributes so callers never parse messages.
Each class names its gRPC status code once, in `grpc_code` (the middle
column above). The gRPC edge sends that code with the reason and facts in
the status details (server/rpc_errors.py) and the SDK rebuilds the class
from them (client/rpc_errors.py), so an SDK user catches the class the
domain raised. Neither side keeps a table of its own: both are derived
from these attributes.

`ModelError` and `ToolServerError` (runtime/contract.py) are deliberately
outside this tree: a model or tool server that fails is data recorded in the
execution (a FAILED phase with the reason), never an RPC error, so they have
no status code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

GrpcCodeName = Literal[
    "INVALID_ARGUMENT",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "ABORTED",
    "FAILED_PRECONDITION",
    "UNAVAILABLE",
    "UNAUTHENTICATED",
    "PERMISSION_DENIED",
    "INTERNAL",
]
"""The names of the `grpc.StatusCode` members the tree uses; kept as text so
that this module, shared by every layer, does not import gRPC."""


@dataclass(frozen=True)
class FieldViolation:
    """One field at fault: a dotted path such as `spec.instructions`."""

    field: str
    description: str


class StigmerError(Exception):
    """Root of every error Stigmer raises on purpose."""

    reason: ClassVar[str] = "STIGMER_ERROR"
    # The root is never raised as such; were it, it would be treated as a bug.
    grpc_code: ClassVar[GrpcCodeName] = "INTERNAL"

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
    grpc_code = "INVALID_ARGUMENT"

    @classmethod
    def for_field(cls, field: str, description: str) -> InvalidArgument:
        return cls(
            f"{field}: {description}" if field else description,
            violations=[FieldViolation(field, description)],
            facts={"field": field},
        )


class NotFound(StigmerError):
    reason = "NOT_FOUND"
    grpc_code = "NOT_FOUND"

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
    grpc_code = "ALREADY_EXISTS"

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
    grpc_code = "ABORTED"

    def __init__(
        self, kind: str, resource_id: str, expected_version: int, actual_version: int
    ) -> None:
        super().__init__(
            f"{kind} {resource_id} is at version {actual_version}, not {expected_version}; "
            "re-read and retry",
            facts={
                "kind": kind,
                "id": resource_id,
                "expected_version": str(expected_version),
                "actual_version": str(actual_version),
            },
        )

    @property
    def kind(self) -> str:
        return self.facts.get("kind", "")

    @property
    def resource_id(self) -> str:
        return self.facts.get("id", "")

    @property
    def expected_version(self) -> int:
        """The version the write named."""
        return int(self.facts.get("expected_version", "0"))

    @property
    def actual_version(self) -> int:
        """The version the resource is at: re-read it and retry from there."""
        return int(self.facts.get("actual_version", "0"))


class FailedPrecondition(StigmerError):
    reason = "FAILED_PRECONDITION"
    grpc_code = "FAILED_PRECONDITION"


class Unavailable(StigmerError):
    reason = "UNAVAILABLE"
    grpc_code = "UNAVAILABLE"


class Unauthenticated(StigmerError):
    reason = "UNAUTHENTICATED"
    grpc_code = "UNAUTHENTICATED"


class PermissionDenied(StigmerError):
    reason = "PERMISSION_DENIED"
    grpc_code = "PERMISSION_DENIED"


class Internal(StigmerError):
    """A bug. The message is for the server log: the gRPC edge logs it with the
    traceback and sends the client only the request id (`request_id`)."""

    reason = "INTERNAL"
    grpc_code = "INTERNAL"

    @property
    def request_id(self) -> str:
        """The id of the request that failed, as the server log names it."""
        return self.facts.get("request_id", "")


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
