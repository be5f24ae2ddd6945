"""`stigmer explain KIND[.field.path]`: the schema of a resource, from the API itself.

Everything shown comes from the protobuf descriptors, so it cannot drift from what
the server accepts: the types and the buf.validate rules from the generated
modules' field options (the same rules the server enforces), and the comments
from `stigmer/api/descriptors.binpb`, a descriptor set written with source info
by scripts/generate_proto.py (the generated modules carry no comments).
"""

from __future__ import annotations

import functools
import importlib.resources
import sys
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from stigmer.api.buf.validate import validate_pb2
from stigmer.errors import InvalidArgument
from stigmer.resources.kinds import API_VERSION, kind_by_alias

DESCRIPTORS_FILE = "descriptors.binpb"
_SCALAR_TYPES = {
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_BOOL: "boolean",
    FieldDescriptor.TYPE_BYTES: "bytes (base64)",
    FieldDescriptor.TYPE_DOUBLE: "number",
    FieldDescriptor.TYPE_FLOAT: "number",
}
_WELL_KNOWN_TYPES = {
    "google.protobuf.Struct": "Object",
    "google.protobuf.Value": "any",
    "google.protobuf.Timestamp": "Timestamp (RFC 3339)",
    "google.protobuf.Duration": "Duration (e.g. 1.5s)",
}
# Manifests write the envelope's api_version as apiVersion (see manifests.py).
_MANIFEST_NAMES = {"api_version": "apiVersion"}


@functools.cache
def _comments() -> dict[str, str]:
    """Each message's, field's, enum's and enum value's comment, by full name,
    with its line breaks."""
    data = importlib.resources.files("stigmer.api").joinpath(DESCRIPTORS_FILE).read_bytes()
    descriptor_set = descriptor_pb2.FileDescriptorSet.FromString(data)
    comments: dict[str, str] = {}
    for file in descriptor_set.file:
        for location in file.source_code_info.location:
            text = location.leading_comments or location.trailing_comments
            name = _name_at(file, list(location.path))
            if text.strip() and name:
                comments[name] = "\n".join(line.strip() for line in text.strip().splitlines())
    return comments


def _name_at(file: descriptor_pb2.FileDescriptorProto, path: list[int]) -> str | None:
    """The full name of what a source location path points at (None: not a
    message, field, enum or enum value)."""
    node: Any = file
    name = file.package
    children: dict[int, Any]
    for tag, index in zip(path[::2], path[1::2], strict=False):
        if isinstance(node, descriptor_pb2.FileDescriptorProto):
            children = {4: node.message_type, 5: node.enum_type}
        elif isinstance(node, descriptor_pb2.DescriptorProto):
            children = {2: node.field, 3: node.nested_type, 4: node.enum_type}
        elif isinstance(node, descriptor_pb2.EnumDescriptorProto):
            children = {2: node.value}
        else:
            return None
        if tag not in children or index >= len(children[tag]):
            return None
        node = children[tag][index]
        name = f"{name}.{node.name}"
    return name if len(path) % 2 == 0 and path else None


def _element_message(field: FieldDescriptor) -> Descriptor | None:
    """The message a path can descend into: the field's, its list elements' or
    its map values'."""
    message = field.message_type
    if message is None:
        return None
    if message.GetOptions().map_entry:
        return _element_message(message.fields_by_name["value"])
    return None if message.full_name in _WELL_KNOWN_TYPES else message


def _single_type(field: FieldDescriptor) -> str:
    if field.message_type is not None:
        full_name = field.message_type.full_name
        return _WELL_KNOWN_TYPES.get(full_name, field.message_type.name)
    if field.enum_type is not None:
        return f"enum {field.enum_type.name}"
    return _SCALAR_TYPES.get(field.type, "integer")


def type_name(field: FieldDescriptor) -> str:
    message = field.message_type
    if message is not None and message.GetOptions().map_entry:
        key, value = message.fields_by_name["key"], message.fields_by_name["value"]
        return f"map[{_single_type(key)}]{_single_type(value)}"
    return f"[]{_single_type(field)}" if field.is_repeated else _single_type(field)


def rule_words(rules: Message) -> list[str]:
    """buf.validate rules in words: `required`, `min_len 10`, `keys: max_len 63`."""
    words: list[str] = []
    for field, value in rules.ListFields():
        if field.name == "cel":
            words += [f"rule {rule.id or rule.expression}" for rule in value]
        elif field.name in ("keys", "values", "items"):
            words.append(f"{field.name}: {', '.join(rule_words(value))}")
        elif field.message_type is not None:
            words += rule_words(value)  # the type's rules: string, int32, map, ...
        elif field.type == FieldDescriptor.TYPE_BOOL:
            words.append(field.name if value else f"not {field.name}")
        elif field.is_repeated:
            words.append(f"{field.name} [{', '.join(str(item) for item in value)}]")
        else:
            words.append(f"{field.name} {value}")
    return words


def field_rules(field: FieldDescriptor) -> list[str]:
    words = rule_words(field.GetOptions().Extensions[validate_pb2.field])
    oneof = field.containing_oneof
    if oneof is not None and len(oneof.fields) > 1:
        choice = " | ".join(member.name for member in oneof.fields)
        required = oneof.GetOptions().Extensions[validate_pb2.oneof].required
        words.insert(
            0, f"one of {oneof.name}: {choice}" + (" (one is required)" if required else "")
        )
    return words


def manifest_name(field: FieldDescriptor) -> str:
    return _MANIFEST_NAMES.get(field.name, field.name)


@dataclass(frozen=True)
class Explained:
    """Where a path led: the message whose fields to list, and the field the
    path ended on (None for the kind itself)."""

    message: Descriptor | None
    field: FieldDescriptor | None


def resolve(kind_message: Descriptor, parts: list[str], walked: str) -> Explained:
    """Follows field names (snake_case or camelCase) from the kind's message.

    Raises:
        InvalidArgument: a part names no field, or a field that has no fields.
    """
    message: Descriptor | None = kind_message
    field: FieldDescriptor | None = None
    walked_type = ""
    for part in parts:
        if message is None:
            raise InvalidArgument.for_field(
                "path", f"{walked} is {walked_type} and has no field {part!r}"
            )
        found = next(
            (f for f in message.fields if part in (f.name, f.json_name, manifest_name(f))), None
        )
        if found is None:
            fields = ", ".join(manifest_name(f) for f in message.fields)
            raise InvalidArgument.for_field(
                "path", f"{walked} has no field {part!r} (its fields: {fields})"
            )
        field, message, walked_type = found, _element_message(found), type_name(found)
        walked = f"{walked}.{part}"
    return Explained(message, field)


def _paragraph(text: str, indent: str) -> list[str]:
    return [indent + line for line in text.splitlines()] if text else []


def _field_entry(field: FieldDescriptor, indent: str = "  ") -> list[str]:
    lines = [f"{indent}{manifest_name(field)}  <{type_name(field)}>"]
    rules = field_rules(field)
    if rules:
        lines.append(f"{indent}  rules: {'; '.join(rules)}")
    lines += _paragraph(_comments().get(field.full_name, ""), indent + "  ")
    return lines + _enum_values(field, indent + "  ")


def _fields(message: Descriptor, indent: str, *, expand_spec: bool) -> list[str]:
    """A message's field entries, a blank line apart. A kind's spec, which is
    what a manifest's author writes, is listed with its own fields."""
    lines: list[str] = []
    for field in message.fields:
        lines += _field_entry(field, indent)
        nested = _element_message(field)
        if expand_spec and field.name == "spec" and nested is not None:
            lines += ["", *_fields(nested, indent + "    ", expand_spec=False)]
        lines.append("")
    return lines[:-1]


def _enum_values(field: FieldDescriptor, indent: str) -> list[str]:
    if field.enum_type is None:
        return []
    comments = _comments()
    lines = []
    for value in field.enum_type.values:
        note = comments.get(f"{field.enum_type.full_name}.{value.name}", "")
        lines.append(f"{indent}- {value.name}" + (f": {note}" if note else ""))
    return lines


def explanation(target: str) -> list[str]:
    """The lines `stigmer explain TARGET` prints."""
    kind_alias, *parts = target.split(".")
    kind = kind_by_alias(kind_alias)
    explained = resolve(kind.message.DESCRIPTOR, parts, kind.name)
    comments = _comments()
    lines = [f"KIND:     {kind.name}", f"VERSION:  {API_VERSION}", ""]
    description: list[str] = []
    if explained.field is not None:
        field = explained.field
        lines.append(f"FIELD:    {manifest_name(field)} <{type_name(field)}>")
        rules = field_rules(field)
        if rules:
            lines.append(f"RULES:    {'; '.join(rules)}")
        lines.append("")
        description += _paragraph(comments.get(field.full_name, ""), "    ")
    if explained.field is not None and explained.field.enum_type is not None:
        description += _paragraph(comments.get(explained.field.enum_type.full_name, ""), "    ")
    if explained.message is not None:
        description += _paragraph(comments.get(explained.message.full_name, ""), "    ")
    lines += ["DESCRIPTION:", *(description or ["    <empty>"])]
    if explained.field is not None and explained.field.enum_type is not None:
        lines += ["", "VALUES:", *_enum_values(explained.field, "    ")]
    if explained.message is not None:
        lines += [
            "",
            "FIELDS (named as in manifests, snake_case; camelCase is accepted too):",
        ]
        lines += _fields(explained.message, "  ", expand_spec=explained.field is None)
    return lines


def explain(
    target: Annotated[
        str, typer.Argument(help="KIND or KIND.field.path, e.g. agent.spec.mcp_servers")
    ],
) -> None:
    """Show a kind's fields: types, validation rules and what each is for."""
    # Plain writes: rich would read "[...]" and ":name:" in comments as markup.
    sys.stdout.write("\n".join(explanation(target)) + "\n")


def register(app: typer.Typer) -> None:
    app.command()(explain)
