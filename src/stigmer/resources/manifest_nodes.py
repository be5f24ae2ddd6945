"""Reading one manifest document's YAML nodes against its protobuf message.

json_format alone would convert a parsed document, but it knows nothing of
YAML: its errors carry no line, it reports a wrong shape as something else (a
string where a message is expected is read character by character, hence
`unknown field 'spec.mcpServers[0].g'`), and it lets one field appear under
both of its spellings, the last silently winning. So the node tree that
manifest_yaml.py composes is walked alongside the message descriptor first:

- A key is a field's proto name (`mcp_servers`) or its JSON name
  (`mcpServers`), at every level, metadata and nested messages included, so
  manifests written for upstream Stigmer (camelCase) load as they are. Both
  spellings of one field in one mapping, or one key twice, is an error.
- Every value must have the shape its field's type asks for: a mapping for a
  message or a map, a list for a repeated field, a scalar otherwise. An error
  says which shape was expected and which was given.
- A few message types have a plain-string shorthand (`_SHORTHANDS`): an
  McpServerUsage given as `github` is `{ref: github}`, as in upstream's
  `mcpServers: [github, filesystem]`.
- String fields take a scalar's text as written (`value: 0755` stays "0755",
  not YAML's number); booleans, numbers and enum names (or numbers) are
  checked against the field's type, and a scalar YAML cannot construct
  (`0x_`, a 5,000-digit number) is a problem, not an exception.
- A Struct, Value or ListValue takes any YAML value, its keys as written
  and each given once.
- The line of every field, list item and map entry is recorded under its
  path (`spec.mcp_servers[0].enabled_tools`, `metadata.labels['team']`),
  spelled as protovalidate spells violations, so any later error about a
  field can name the line it is on.

The result is a plain mapping with proto field names, which json_format then
parses without surprises.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

import yaml
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from yaml.constructor import SafeConstructor

_STR_TAG = "tag:yaml.org,2002:str"
_INTEGER_TEXT = re.compile(r"-?[0-9]+")
_NULL_TAG = "tag:yaml.org,2002:null"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_SCALAR_NAMES = {
    _STR_TAG: "a string",
    _NULL_TAG: "nothing",
    "tag:yaml.org,2002:int": "a number",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:bool": "a boolean",
}
# Well-known types whose JSON form is a string (RFC 3339, "3.5s", "a,b").
_TEXT_MESSAGES = {
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.protobuf.FieldMask",
}
# Well-known types whose JSON form is any JSON value; taken as YAML gives them.
_FREE_MESSAGES = {
    "google.protobuf.Struct",
    "google.protobuf.Value",
    "google.protobuf.ListValue",
    "google.protobuf.Any",
}
_INTEGER_TYPES = {
    FieldDescriptor.CPPTYPE_INT32,
    FieldDescriptor.CPPTYPE_INT64,
    FieldDescriptor.CPPTYPE_UINT32,
    FieldDescriptor.CPPTYPE_UINT64,
}
_FLOAT_TYPES = {FieldDescriptor.CPPTYPE_FLOAT, FieldDescriptor.CPPTYPE_DOUBLE}


@dataclass(frozen=True)
class _Shorthand:
    """A message that may be given as a plain string setting one field."""

    field: str
    expected: str  # every shape the message accepts, for errors


_SHORTHANDS = {
    "stigmer.agentic.v1.McpServerUsage": _Shorthand(
        "ref", "a mapping (an inline MCP server or {ref: NAME}) or an McpServer name"
    ),
    # `skillRefs: [planning]`: the latest version of the Skill `planning`.
    "stigmer.agentic.v1.SkillRef": _Shorthand(
        "slug", "a mapping {slug: NAME, version: latest|TAG|HASH} or a Skill name"
    ),
}


@dataclass(frozen=True)
class NodeProblem:
    """A field whose key or value does not fit the message."""

    field: str  # the path at fault
    line: int  # 1-based
    message: str


@dataclass
class DocumentNodes:
    """A document read against its message: the mapping to parse, the line
    of every field path, and what did not fit (those fields are left out)."""

    body: dict[str, Any]
    lines: dict[str, int] = dataclasses.field(default_factory=dict)
    problems: list[NodeProblem] = dataclasses.field(default_factory=list)


def read_document_nodes(node: yaml.Node, descriptor: Descriptor) -> DocumentNodes:
    """The document's fields as json_format input, with their lines."""
    reader = _NodeReader()
    body = reader.message(node, descriptor, "")
    return DocumentNodes(body if isinstance(body, dict) else {}, reader.lines, reader.problems)


def shape_of(node: yaml.Node) -> str:
    """What a node is, as an error says it: `a list`, `a number`, ..."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return _SCALAR_NAMES.get(node.tag, "a string")


def line_of(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _map_entry(field: FieldDescriptor) -> Descriptor | None:
    """The key/value entry message of a map field; None for other fields."""
    entry = field.message_type
    return entry if entry is not None and entry.GetOptions().map_entry else None


def _enum_names(enum: EnumDescriptor) -> list[str]:
    return [value.name for value in enum.values]


def _expected_single(field: FieldDescriptor) -> str:
    """The shape one value of the field must have."""
    if field.message_type is not None:
        return _expected_message(field.message_type)
    if field.enum_type is not None:
        return f"one of {', '.join(_enum_names(field.enum_type))}"
    if field.cpp_type == FieldDescriptor.CPPTYPE_BOOL:
        return "true or false"
    if field.cpp_type in _INTEGER_TYPES:
        return "a whole number"
    if field.cpp_type in _FLOAT_TYPES:
        return "a number"
    return "a string"


def _expected_message(descriptor: Descriptor) -> str:
    shorthand = _SHORTHANDS.get(descriptor.full_name)
    if shorthand is not None:
        return shorthand.expected
    if descriptor.full_name in _TEXT_MESSAGES:
        return f"a {descriptor.name} string"
    return f"a mapping of {descriptor.name} fields"


def _plural_single(field: FieldDescriptor) -> str:
    """Values of the field, in the plural: `strings`, `McpServerUsage entries`."""
    if field.message_type is not None:
        return f"{field.message_type.name} entries"
    if field.enum_type is not None:
        return f"{field.enum_type.name} names"
    if field.cpp_type == FieldDescriptor.CPPTYPE_BOOL:
        return "booleans"
    if field.cpp_type in _INTEGER_TYPES:
        return "whole numbers"
    if field.cpp_type in _FLOAT_TYPES:
        return "numbers"
    return "strings"


def _expected_field(field: FieldDescriptor) -> str:
    """The shape the field's whole value must have."""
    entry = _map_entry(field)
    if entry is not None:
        return f"a mapping of keys to {_plural_single(entry.fields_by_name['value'])}"
    if field.is_repeated:
        return f"a list of {_plural_single(field)}"
    return _expected_single(field)


class _NodeReader:
    def __init__(self) -> None:
        self.lines: dict[str, int] = {}
        self.problems: list[NodeProblem] = []
        self._constructor = SafeConstructor()

    def _problem(self, path: str, node: yaml.Node, message: str) -> None:
        self.problems.append(NodeProblem(path, line_of(node), message))

    def _wrong_shape(self, path: str, node: yaml.Node, expected: str) -> None:
        where = f"{path}: " if path else ""
        self._problem(path, node, f"{where}expected {expected}, got {shape_of(node)}")

    def _merge_keys(self, node: yaml.MappingNode, path: str) -> None:
        """Resolves `<<: *anchor` in place. A key the mapping gives itself
        overrides a merged one (YAML's rule), so only the keys a mapping
        repeats itself count as given twice. A merge of something other
        than mappings is a problem, and is left out."""
        if not any(key.tag == _MERGE_TAG for key, _ in node.value):
            return
        own = [(key, value) for key, value in node.value if key.tag != _MERGE_TAG]
        try:
            self._constructor.flatten_mapping(node)
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            where = f"{path}: " if path else ""
            line = mark.line + 1 if mark is not None else line_of(node)
            self.problems.append(NodeProblem(path, line, f"{where}<<: {error.problem}"))
            node.value = own
            return
        merged = node.value[: len(node.value) - len(own)]
        own_keys = {key.value for key, _ in own if isinstance(key, yaml.ScalarNode)}
        kept: dict[object, tuple[yaml.Node, yaml.Node]] = {}
        for key, value in merged:
            if key.value not in own_keys:
                kept[key.value] = (key, value)  # a later merge wins, as in PyYAML
        node.value = [*kept.values(), *own]

    def message(self, node: yaml.Node, descriptor: Descriptor, path: str) -> Any:
        """A message's fields; None when the node is null or the wrong shape."""
        full_name = descriptor.full_name
        if full_name in _TEXT_MESSAGES:
            if isinstance(node, yaml.ScalarNode) and not _is_null(node):
                return node.value
            self._wrong_shape(path, node, _expected_message(descriptor))
            return None
        if full_name in _FREE_MESSAGES:
            return self.free(node, path)
        shorthand = _SHORTHANDS.get(full_name)
        if shorthand is not None and isinstance(node, yaml.ScalarNode) and node.tag == _STR_TAG:
            self.lines[_join(path, shorthand.field)] = line_of(node)
            return {shorthand.field: node.value}
        if not isinstance(node, yaml.MappingNode):
            self._wrong_shape(path, node, _expected_message(descriptor))
            return None
        self._merge_keys(node, path)
        fields: dict[str, FieldDescriptor] = {}
        for known in descriptor.fields:
            fields[known.name] = known
            fields[known.json_name] = known
        spellings: dict[str, tuple[str, int]] = {}
        body: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or _is_null(key_node):
                self._wrong_shape(path, key_node, "a field name")
                continue
            key = str(key_node.value)
            known_field = fields.get(key)
            if known_field is None:
                child = _join(path, key)
                names = ", ".join(f.name for f in descriptor.fields)
                self._problem(
                    child,
                    key_node,
                    f"unknown field {child!r} ({descriptor.name} has: {names})",
                )
                continue
            child = _join(path, known_field.name)
            first = spellings.get(known_field.name)
            if first is not None:
                first_key, first_line = first
                how = "twice" if first_key == key else f"as both {first_key!r} and {key!r}"
                self._problem(
                    child,
                    key_node,
                    f"{child}: given {how} (first at line {first_line}); give it once",
                )
                continue
            spellings[known_field.name] = (key, line_of(key_node))
            self.lines[child] = line_of(key_node)
            value = self.field(value_node, known_field, child)
            if value is not None:
                body[known_field.name] = value
        return body

    def field(self, node: yaml.Node, field: FieldDescriptor, path: str) -> Any:
        """A field's whole value; None when null (unset) or the wrong shape."""
        if _is_null(node):
            return None
        entry = _map_entry(field)
        if entry is not None:
            return self._map(node, field, entry, path)
        if field.is_repeated:
            if not isinstance(node, yaml.SequenceNode):
                self._wrong_shape(path, node, _expected_field(field))
                return None
            items = []
            for index, item_node in enumerate(node.value):
                item_path = f"{path}[{index}]"
                self.lines[item_path] = line_of(item_node)
                item = self.single(item_node, field, item_path)
                # A left-out item keeps its place, so the indexes of the
                # others stay those of their lines.
                items.append(_placeholder(field) if item is None else item)
            return items
        return self.single(node, field, path)

    def _map(self, node: yaml.Node, field: FieldDescriptor, entry: Descriptor, path: str) -> Any:
        if not isinstance(node, yaml.MappingNode):
            self._wrong_shape(path, node, _expected_field(field))
            return None
        self._merge_keys(node, path)
        key_field = entry.fields_by_name["key"]
        value_field = entry.fields_by_name["value"]
        entries: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or _is_null(key_node):
                self._wrong_shape(path, key_node, f"{_expected_single(key_field)} as a key")
                continue
            key = str(key_node.value)
            entry_path = f"{path}[{key!r}]"
            if entry_path in self.lines:
                first_line = self.lines[entry_path]
                self._problem(
                    entry_path,
                    key_node,
                    f"{entry_path}: given twice (first at line {first_line}); give it once",
                )
                continue
            self.lines[entry_path] = line_of(key_node)
            value = self.single(value_node, value_field, entry_path)
            if value is not None:
                entries[key] = value
        return entries

    def single(self, node: yaml.Node, field: FieldDescriptor, path: str) -> Any:
        """One value (a list item, a map value, a singular field)."""
        if field.message_type is not None:
            return self.message(node, field.message_type, path)
        if not isinstance(node, yaml.ScalarNode) or _is_null(node):
            self._wrong_shape(path, node, _expected_single(field))
            return None
        if field.cpp_type == FieldDescriptor.CPPTYPE_STRING:
            return node.value
        value = self._scalar(node, path)
        if value is _UNREADABLE:
            return None
        if field.enum_type is not None:
            if isinstance(value, str) and value in field.enum_type.values_by_name:
                return value
            if _is_integer(value) and value in field.enum_type.values_by_number:
                return value
            self._problem(
                path,
                node,
                f"{path}: unknown value {_shortened(node.value)!r} "
                f"(expected one of {', '.join(_enum_names(field.enum_type))})",
            )
            return None
        if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value):
            value = int(value)  # how proto JSON (and `get -o json`) writes 64-bit integers
        if field.cpp_type == FieldDescriptor.CPPTYPE_BOOL and isinstance(value, bool):
            return value
        if field.cpp_type in _INTEGER_TYPES:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if _is_integer(value):
                return value
        if field.cpp_type in _FLOAT_TYPES and (_is_integer(value) or isinstance(value, float)):
            return self._float(value, node, path)
        self._wrong_shape(path, node, _expected_single(field))
        return None

    def _scalar(self, node: yaml.Node, path: str) -> Any:
        """The scalar as YAML types it; _UNREADABLE (a problem) when its
        type's constructor refuses the text (`0x_`, a 5,000-digit number).
        `<<` is a merge only as a key; as a value it is text."""
        if node.tag == _MERGE_TAG:
            return node.value
        try:
            return self._constructor.construct_object(node)
        except (yaml.YAMLError, ValueError, OverflowError):
            where = f"{path}: " if path else ""
            shape = shape_of(node).removeprefix("a ")
            self._problem(path, node, f"{where}{_shortened(node.value)!r} is not a valid {shape}")
            return _UNREADABLE

    def _float(self, value: int | float, node: yaml.Node, path: str) -> Any:
        try:
            return float(value)
        except OverflowError:
            self._problem(path, node, f"{path}: {_shortened(str(value))} is out of range")
            return None

    def free(self, node: yaml.Node, path: str) -> Any:
        """Any YAML value as the JSON form of a Struct, Value or ListValue:
        mapping keys are their text as written, and given once."""
        if isinstance(node, yaml.SequenceNode):
            return [self.free(item, f"{path}[{index}]") for index, item in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            self._merge_keys(node, path)
            entries: dict[str, Any] = {}
            first_lines: dict[str, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self._wrong_shape(path, key_node, "a text key")
                    continue
                key = str(key_node.value)
                entry_path = f"{path}[{key!r}]"
                if key in first_lines:
                    self._problem(
                        entry_path,
                        key_node,
                        f"{entry_path}: given twice (first at line {first_lines[key]}); "
                        "give it once",
                    )
                    continue
                first_lines[key] = line_of(key_node)
                entries[key] = self.free(value_node, entry_path)
            return entries
        if node.tag == _STR_TAG:
            return node.value
        value = self._scalar(node, path)
        if _is_integer(value):
            return self._float(value, node, path)
        return None if value is _UNREADABLE else value


_UNREADABLE = object()


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shortened(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _placeholder(field: FieldDescriptor) -> Any:
    """The empty value of one item of a repeated field."""
    if field.message_type is not None:
        return {}
    if field.enum_type is not None:
        return 0
    return "" if field.cpp_type == FieldDescriptor.CPPTYPE_STRING else field.default_value
