"""gRPC status → domain error: the SDK's half of the error mapping.

The server sends an ErrorInfo (reason + facts) and, for bad input, a
BadRequest in the status details; the SDK rebuilds the same StigmerError
class so callers catch `AlreadyExists` and read `.existing_id`. Without
details (a proxy, or the channel itself failing) the class follows from the
status code, by the same `grpc_code` attributes the server maps with.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from stigmer.client.connection import unreachable_message
from stigmer.errors import (
    ERROR_CLASSES,
    FieldViolation,
    Internal,
    StigmerError,
    Unavailable,
)

_BY_CODE: dict[grpc.StatusCode, type[StigmerError]] = {
    grpc.StatusCode[cls.grpc_code]: cls for cls in ERROR_CLASSES.values()
} | {
    # The client's own deadline: the server did not answer in time.
    grpc.StatusCode.DEADLINE_EXCEEDED: Unavailable,
}


def error_from_rpc(error: grpc.RpcError, address: str, *, is_tls: bool = False) -> StigmerError:
    code: grpc.StatusCode = error.code()
    message: str = error.details() or code.name
    facts: dict[str, str] = {}
    violations: list[FieldViolation] = []
    reason = ""
    for detail in _details_of(error):
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


def _details_of(error: grpc.RpcError) -> list[Any]:
    """The status details the server attached, as packed `Any` messages."""
    try:
        status = rpc_status.from_call(error)
    except ValueError:
        # Details that contradict the call's own code or message were not
        # written by a Stigmer server; the code alone still maps.
        return []
    return list(status.details) if status is not None else []
