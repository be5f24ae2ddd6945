"""Field rules (buf.validate annotations in proto/) checked with protovalidate.

Violations become one InvalidArgument naming every field at fault, with
dotted paths such as `spec.mcp_servers[0].ref`.

One rule holds for every string of every request, so it is checked here
rather than annotated on each field: no NUL character. No Stigmer text may
hold one (PostgreSQL text cannot store it, so an id with a NUL would fail
the query there and merely match nothing on SQLite).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import protovalidate
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from stigmer.api.buf.validate import validate_pb2
from stigmer.errors import FieldViolation, InvalidArgument
from stigmer.resources.tool_policy import pattern_problem

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
    return tool_policy_violations(message, prefix=prefix)


def tool_policy_violations(message: Message, *, prefix: str = "") -> list[FieldViolation]:
    """The malformed patterns of a resource's spec.tool_policy (Agent, McpServer)."""
    spec = getattr(message, "spec", None)
    if not isinstance(spec, Message) or "tool_policy" not in spec.DESCRIPTOR.fields_by_name:
        return []
    if not spec.HasField("tool_policy"):
        return []
    policy: Any = spec.tool_policy  # type: ignore[attr-defined]
    found = []
    for rule in ("allow", "ask", "deny"):
        for index, pattern in enumerate(getattr(policy, rule)):
            problem = pattern_problem(pattern)
            if problem is not None:
                found.append(FieldViolation(f"{prefix}spec.tool_policy.{rule}[{index}]", problem))
    return found


def validate_message(message: Message, *, prefix: str = "") -> None:
    """Checks the message's field rules.

    Raises:
        InvalidArgument: one or more rules fail; every violation is listed.
    """
    found = field_violations(message, prefix=prefix)
    if found:
        summary = "; ".join(f"{v.field}: {v.description}" for v in found)
        raise InvalidArgument(f"invalid {message.DESCRIPTOR.name}: {summary}", violations=found)


def nul_violations(message: Message, *, prefix: str = "") -> list[FieldViolation]:
    """Every string field (map keys included) of the message that holds a NUL."""
    return [
        FieldViolation(prefix + path, "must not contain NUL characters")
        for path in _paths_with_nul(message, "")
    ]


def refuse_nul(message: Message, *, prefix: str = "") -> None:
    """Raises:
    InvalidArgument: a string somewhere in the message holds a NUL character.
    """
    found = nul_violations(message, prefix=prefix)
    if found:
        summary = "; ".join(f"{v.field}: {v.description}" for v in found)
        raise InvalidArgument(summary, violations=found, facts={"field": found[0].field})


def _paths_with_nul(message: Message, path: str) -> Iterator[str]:
    fields: Any = message.ListFields()
    for described, value in fields:
        name = f"{path}.{described.name}" if path else described.name
        if described.type == FieldDescriptor.TYPE_STRING:
            values = value if described.is_repeated else [value]
            for index, text in enumerate(values):
                if "\x00" in text:
                    yield f"{name}[{index}]" if described.is_repeated else name
        elif described.type == FieldDescriptor.TYPE_MESSAGE:
            entry = described.message_type
            if entry.GetOptions().map_entry:
                yield from _map_paths_with_nul(entry, value, name)
            elif described.is_repeated:
                for index, item in enumerate(value):
                    yield from _paths_with_nul(item, f"{name}[{index}]")
            else:
                yield from _paths_with_nul(value, name)


def _map_paths_with_nul(entry: Any, mapping: Any, name: str) -> Iterator[str]:
    is_text_key = entry.fields_by_name["key"].type == FieldDescriptor.TYPE_STRING
    value_type = entry.fields_by_name["value"].type
    for key, value in mapping.items():
        where = f"{name}[{key!r}]"
        if is_text_key and "\x00" in key:
            yield where
        if value_type == FieldDescriptor.TYPE_STRING and "\x00" in value:
            yield where
        elif value_type == FieldDescriptor.TYPE_MESSAGE:
            yield from _paths_with_nul(value, where)
