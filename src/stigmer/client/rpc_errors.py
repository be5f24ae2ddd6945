"""gRPC status → domain error: the SDK's half of the error mapping.

The server sends an ErrorInfo (reason + facts) and, for bad input, a
BadRequest in the status details; the SDK rebuilds the same StigmerError
class so callers catch `AlreadyExists` and read `.existing_id`. Without
details (a proxy, or the channel itself failing) the class follows from the
status code, by the same `grpc_code` attributes the server maps with.

A message over gRPC's size limit fails in the transport, before any Stigmer
code runs, as RESOURCE_EXHAUSTED with a transport message
("Sent message larger than max (N vs. M)"). A request too large is bad
input (InvalidArgument), an answer too large a state the request cannot
change (FailedPrecondition); both name the size and the limit.
"""

from __future__ import annotations

import re
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from stigmer.client.connection import unreachable_message
from stigmer.errors import (
    ERROR_CLASSES,
    FailedPrecondition,
    FieldViolation,
    Internal,
    InvalidArgument,
    StigmerError,
    Unavailable,
)
from stigmer.message_limits import describe_bytes

_BY_CODE: dict[grpc.StatusCode, type[StigmerError]] = {
    grpc.StatusCode[cls.grpc_code]: cls for cls in ERROR_CLASSES.values()
} | {
    # The client's own deadline: the server did not answer in time.
    grpc.StatusCode.DEADLINE_EXCEEDED: Unavailable,
}


# grpc core's words for a message over the limit, on either side.
_OVERSIZE = re.compile(
    r"(CLIENT|SERVER): (Sent|Received) message larger than max \((\d+) vs\. (\d+)\)"
)


def _oversize_error(details: str) -> StigmerError | None:
    found = _OVERSIZE.search(details)
    if found is None:
        return None
    side, direction, size, limit = found.groups()
    facts = {"size_bytes": size, "limit_bytes": limit}
    is_request = (side, direction) in (("CLIENT", "Sent"), ("SERVER", "Received"))
    what = "the request" if is_request else "the answer"
    message = (
        f"{what} is {describe_bytes(int(size))}, more than the "
        f"{describe_bytes(int(limit))} a Stigmer message may carry"
    )
    if is_request:
        return InvalidArgument(message + ": send less at once", facts=facts)
    return FailedPrecondition(message, facts=facts)


def error_from_rpc(error: grpc.RpcError, address: str, *, is_tls: bool = False) -> StigmerError:
    code: grpc.StatusCode = error.code()
    message: str = error.details() or code.name
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        oversize = _oversize_error(message)
        if oversize is not None:
            oversize.facts.setdefault("grpc_code", code.name)
            return oversize
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
