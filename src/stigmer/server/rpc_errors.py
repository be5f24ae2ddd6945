"""Domain errors → gRPC statuses, at the gRPC edge.

The status code is the error class's own (`StigmerError.grpc_code`), so this
module keeps no table of its own. The status carries google.rpc details: an
ErrorInfo (reason, and the error's facts such as `existing_id` or `step` as
metadata) and, for bad input, a BadRequest listing each field at fault.
Clients never need to parse the message. The details travel in the trailing
metadata under grpcio-status's key (`grpc_status.rpc_status`), which the SDK
reads with the same library.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from stigmer.errors import StigmerError

ERROR_DOMAIN = "stigmer.ai"


def rpc_status_of(error: StigmerError) -> grpc.Status:
    """The status to end the call with: code, message and the details as trailing metadata."""
    code = grpc.StatusCode[error.grpc_code]
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
    converted: Any = rpc_status.to_status(status)
    assert isinstance(converted, grpc.Status)
    return converted
