"""gRPC status → domain error: the SDK's half of the one mapping table.

The server sends an ErrorInfo (reason + facts) and, for bad input, a
BadRequest in the status details; the SDK rebuilds the same StigmerError
class so callers catch `AlreadyExists` and read `.existing_id`.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

from stigmer.client.connection import unreachable_message
from stigmer.errors import (
    ERROR_CLASSES,
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    FieldViolation,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    StigmerError,
    Unauthenticated,
    Unavailable,
)

DETAILS_KEY = "grpc-status-details-bin"
_BY_CODE: dict[grpc.StatusCode, type[StigmerError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.ABORTED: Conflict,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unavailable,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
}


def error_from_rpc(error: grpc.RpcError, address: str, *, is_tls: bool = False) -> StigmerError:
    code: grpc.StatusCode = error.code()
    message: str = error.details() or code.name
    trailing: Any = error.trailing_metadata() or ()
    facts: dict[str, str] = {}
    violations: list[FieldViolation] = []
    reason = ""
    for key, value in trailing:
        if key != DETAILS_KEY:
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason = info.reason
                facts.update(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad_request = error_details_pb2.BadRequest()
                detail.Unpack(bad_request)
                violations += [
                    FieldViolation(v.field, v.description) for v in bad_request.field_violations
                ]
    if code == grpc.StatusCode.UNAVAILABLE and not reason:
        message = unreachable_message(address, error.details() or "", is_tls=is_tls)
    cls = ERROR_CLASSES.get(reason) or _BY_CODE.get(code, Internal)
    restored = cls.restore(message, facts, violations)
    restored.facts.setdefault("grpc_code", code.name)
    return restored
