"""Field rules (buf.validate annotations in proto/) checked with protovalidate.

Violations become one InvalidArgument naming every field at fault, with
dotted paths such as `spec.mcp_servers[0].ref`.
"""

from __future__ import annotations

import protovalidate
from google.protobuf.message import Message

from stigmer.api.buf.validate import validate_pb2
from stigmer.errors import FieldViolation, InvalidArgument

_validator = protovalidate.Validator()


def render_field_path(path: validate_pb2.FieldPath) -> str:
    """`spec.mcp_servers[0].ref`, `metadata.labels['bad key']`."""
    parts: list[str] = []
    for element in path.elements:
        text = element.field_name
        subscript = element.WhichOneof("subscript")
        if subscript == "index":
            text += f"[{element.index}]"
        elif subscript is not None:
            text += f"[{getattr(element, subscript)!r}]"
        parts.append(text)
    return ".".join(parts)


def field_violations(message: Message, *, prefix: str = "") -> list[FieldViolation]:
    """Every field rule the message breaks; empty when it keeps them all."""
    try:
        _validator.validate(message)
    except protovalidate.ValidationError as error:
        violations = validate_pb2.Violations.FromString(error.to_proto().to_binary())
        return [
            FieldViolation(prefix + render_field_path(v.field), v.message)
            for v in violations.violations
        ]
    return []


def validate_message(message: Message, *, prefix: str = "") -> None:
    """Checks the message's field rules.

    Raises:
        InvalidArgument: one or more rules fail; every violation is listed.
    """
    found = field_violations(message, prefix=prefix)
    if found:
        summary = "; ".join(f"{v.field}: {v.description}" for v in found)
        raise InvalidArgument(f"invalid {message.DESCRIPTOR.name}: {summary}", violations=found)
