"""Domain errors → gRPC statuses, at the gRPC edge.

The status code is the error class's own (`StigmerError.grpc_code`), so this
module keeps no table of its own. The status carries google.rpc details: an
ErrorInfo (reason, and the error's facts such as `existing_id` or `step` as
metadata) and, for bad input, a BadRequest listing each field at fault.
Clients never need to parse the message. The details travel in the trailing
metadata under grpcio-status's key (`grpc_status.rpc_status`), which the SDK
reads with the same library.

The status travels in metadata, which clients cap at 8 KiB (more and the
call fails RESOURCE_EXHAUSTED, losing the real error): messages, facts and
violations that echo a huge input are clipped to a few hundred bytes, and
violations past a budget are left out (the message says how many there were).
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from stigmer.errors import StigmerError

ERROR_DOMAIN = "stigmer.ai"
MAX_STATUS_MESSAGE_BYTES = 512
MAX_FACT_BYTES = 128
MAX_FIELD_BYTES = 128
MAX_DESCRIPTION_BYTES = 192
# The serialized status, before base64: well under the 8 KiB of metadata a
# client accepts, with the message sent once more as `grpc-message`.
MAX_STATUS_BYTES = 3072


def clipped(text: str, limit: int) -> str:
    """The text, cut to at most `limit` UTF-8 bytes (marked with "…")."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[: limit - 3].decode(errors="ignore") + "…"


def rpc_status_of(error: StigmerError) -> grpc.Status:
    """The status to end the call with: code, message and the details as trailing metadata."""
    code = grpc.StatusCode[error.grpc_code]
    violations = [
        error_details_pb2.BadRequest.FieldViolation(
            field=clipped(violation.field, MAX_FIELD_BYTES),
            description=clipped(violation.description, MAX_DESCRIPTION_BYTES),
        )
        for violation in error.violations
    ]
    while True:
        status = _status(error, code, violations)
        if status.ByteSize() <= MAX_STATUS_BYTES or not violations:
            break
        violations.pop()
    converted: Any = rpc_status.to_status(status)
    assert isinstance(converted, grpc.Status)
    return converted


def _status(
    error: StigmerError,
    code: grpc.StatusCode,
    violations: list[error_details_pb2.BadRequest.FieldViolation],
) -> status_pb2.Status:
    message = error.message
    if len(violations) < len(error.violations):
        message = f"{len(error.violations)} fields at fault, the first: {message}"
    status = status_pb2.Status(
        code=code.value[0], message=clipped(message, MAX_STATUS_MESSAGE_BYTES)
    )
    info = error_details_pb2.ErrorInfo(
        reason=error.reason,
        domain=ERROR_DOMAIN,
        metadata={
            clipped(key, MAX_FACT_BYTES): clipped(value, MAX_FACT_BYTES)
            for key, value in error.facts.items()
            if value
        },
    )
    packed = any_pb2.Any()
    packed.Pack(info)
    status.details.append(packed)
    if violations:
        packed = any_pb2.Any()
        packed.Pack(error_details_pb2.BadRequest(field_violations=violations))
        status.details.append(packed)
    return status
