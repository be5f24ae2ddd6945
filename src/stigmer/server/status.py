"""Domain errors → gRPC status codes: the one table at the gRPC edge.

The status carries google.rpc details: an ErrorInfo (reason, and the
error's facts such as `existing_id` or `step` as metadata) and, for bad
input, a BadRequest listing each field at fault. Clients never need to parse
the message.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from stigmer.errors import (
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    StigmerError,
    Unauthenticated,
    Unavailable,
)

ERROR_DOMAIN = "stigmer.ai"
DETAILS_KEY = "grpc-status-details-bin"

STATUS_CODES: dict[type[StigmerError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    Conflict: grpc.StatusCode.ABORTED,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    Internal: grpc.StatusCode.INTERNAL,
}


def status_code_of(error: StigmerError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return grpc.StatusCode.INTERNAL


def rpc_status_of(error: StigmerError) -> status_pb2.Status:
    code = status_code_of(error)
    status = status_pb2.Status(code=code.value[0], message=error.message)
    info = error_details_pb2.ErrorInfo(
        reason=error.reason,
        domain=ERROR_DOMAIN,
        metadata={k: v for k, v in error.facts.items() if v},
    )
    packed = any_pb2.Any()
    packed.Pack(info)
    status.details.append(packed)
    if error.violations:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=violation.field, description=violation.description
                )
                for violation in error.violations
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(bad_request)
        status.details.append(packed)
    assert status.code != code_pb2.OK
    return status
