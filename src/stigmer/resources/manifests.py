"""YAML manifests: the files users write and `get -o yaml` prints.

A manifest is one or more YAML documents, each a resource envelope:
`apiVersion`, `kind`, `metadata`, `spec` (and `status`, which is ignored on
input because the system owns it). Keys may be spelled as the proto fields
(`mcp_servers`) or in camelCase (`mcpServers`) at every level, as manifests
written for upstream Stigmer are; an McpServer reference may be given by its
name alone (`mcpServers: [github]`). manifest_yaml.py turns a file's bytes
into YAML nodes, refusing what a manifest may not hold (tags, bombs, deep
nesting, bytes that are not UTF-8 text); manifest_nodes.py reads the nodes
against the message and says what shape a wrong value should have had.

Every error names the source and the line of the field at fault
(`agents.yaml:12: spec.instructions: must be at least 10 characters`), and
reading goes on after one, so a file's problems are reported all at once.
Unknown fields are rejected, never dropped. Everything here needs no server:
`stigmer validate` is exactly these checks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import yaml
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from stigmer.errors import FieldViolation, InvalidArgument
from stigmer.resources.kinds import AGENT_INSTANCE, API_VERSION, DEFAULT_ORG, KINDS, KindInfo
from stigmer.resources.manifest_nodes import line_of, read_document_nodes
from stigmer.resources.manifest_yaml import (
    MAX_SOURCE_BYTES,
    RefusedYamlError,
    SourceTextError,
    compose_manifest,
    last_line,
    manifest_text,
)
from stigmer.resources.slugs import resolve_slug, slugify
from stigmer.resources.unused_fields import unused_fields_set
from stigmer.resources.validation import field_violations

_INT64_TYPES = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}
# Kinds the server creates only through their own commands.
_NOT_APPLIED = {
    "AgentExecution": "executions are not applied from manifests; start one with `stigmer run`",
    "Skill": "skills are not applied from manifests; push a folder with `stigmer skill push DIR`",
}
_KINDS_BY_NAME = {kind.name: kind for kind in KINDS}
_KIND_NAMES = ", ".join(kind.name for kind in KINDS if kind.name not in _NOT_APPLIED)


@dataclass(frozen=True)
class ManifestDocument:
    """One resource read from a manifest, with where it came from."""

    kind: KindInfo
    resource: Message
    source: str
    line: int
    # The line of every field path given (`spec.mcp_servers[0].ref`).
    lines: Mapping[str, int] = dataclasses.field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"

    @property
    def slug(self) -> str:
        metadata = self.resource.metadata  # type: ignore[attr-defined]
        return str(metadata.slug or slugify(metadata.name))

    @property
    def label(self) -> str:
        """`agent/pr-reviewer`, as apply prints it."""
        return f"{self.kind.short_names[0]}/{self.slug}"

    @property
    def warnings(self) -> list[str]:
        """One line per field given that nothing acts on yet (UNUSED_FIELDS)."""
        return [
            f"{self.label}: {path} is accepted but not used yet"
            for path in unused_fields_set(self.kind.name, self.resource)
        ]

    def line_of(self, path: str) -> int:
        """The line of the field at `path`, else of the nearest enclosing
        field given (a oneof's or a missing field's parent), else the
        document's."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = _parent(path)
        return self.line

    def where_of(self, path: str) -> str:
        return f"{self.source}:{self.line_of(path)}"


@dataclass(frozen=True)
class ManifestProblem:
    """One thing wrong with a manifest, at a line."""

    source: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.message}"


@dataclass(frozen=True)
class DocumentReading:
    """One document as read: the resource, and what is wrong with it (a
    document with problems is never applied)."""

    source: str
    line: int
    document: ManifestDocument | None
    problems: tuple[ManifestProblem, ...] = ()


def manifest_error(problems: Iterable[ManifestProblem]) -> InvalidArgument:
    """One InvalidArgument listing every problem, one per line."""
    found = list(problems)
    return InvalidArgument(
        "\n".join(str(problem) for problem in found),
        violations=[FieldViolation(problem.field, str(problem)) for problem in found],
        facts={
            "source": f"{found[0].source}:{found[0].line}" if found else "",
            "field": found[0].field if found else "",
        },
    )


def parse_manifest(text: str | bytes, source: str = "<stdin>") -> list[ManifestDocument]:
    """Parses every document of a YAML manifest.

    Raises:
        InvalidArgument: malformed YAML, an unknown kind, an unknown or
            mistyped field, a broken field rule, a wrong apiVersion, one
            resource defined twice; every problem, each with its line.
    """
    return _documents_of(_with_duplicates_marked(inspect_manifest(text, source)))


def inspect_manifest(text: str | bytes, source: str = "<stdin>") -> list[DocumentReading]:
    """Reads every document of a YAML manifest (text, or the bytes of a
    file), problems included. The documents before a YAML error are read;
    the error is the last problem, as nothing after it can be."""
    try:
        checked = manifest_text(text)
    except SourceTextError as error:
        failure = ManifestProblem(source, error.line, "", error.message)
        return [DocumentReading(source, error.line, None, (failure,))]
    nodes: list[yaml.Node] = []
    readings: list[DocumentReading] = []
    try:
        for node in compose_manifest(checked):
            if node is not None and not _is_empty(node):
                nodes.append(node)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = min(mark.line + 1, last_line(checked)) if mark is not None else 1
        problem = error.problem or error.context or "malformed YAML"
        message = problem if isinstance(error, RefusedYamlError) else f"invalid YAML: {problem}"
        failure = ManifestProblem(source, line, "", message)
        readings.append(DocumentReading(source, line, None, (failure,)))
    except yaml.YAMLError as error:  # libyaml's reader and emitter errors carry no mark
        failure = ManifestProblem(source, 1, "", f"invalid YAML: {error}")
        readings.append(DocumentReading(source, 1, None, (failure,)))
    return [_read_document(node, source) for node in nodes] + readings


def _is_empty(node: yaml.Node) -> bool:
    """An empty document (`---` and nothing, or `~`) defines nothing."""
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _read_document(node: yaml.Node, source: str) -> DocumentReading:
    line = line_of(node)
    if not isinstance(node, yaml.MappingNode):
        message = "a document must be a mapping with apiVersion, kind, metadata, spec"
        return DocumentReading(source, line, None, (ManifestProblem(source, line, "", message),))
    kind_node = next((v for k, v in node.value if getattr(k, "value", None) == "kind"), None)
    if not isinstance(kind_node, yaml.ScalarNode) or not kind_node.value:
        message = f"kind is required ({_KIND_NAMES})"
        return DocumentReading(
            source, line, None, (ManifestProblem(source, line, "kind", message),)
        )
    kind = _KINDS_BY_NAME.get(str(kind_node.value))
    if kind is None or kind.name in _NOT_APPLIED:
        message = _NOT_APPLIED.get(
            str(kind_node.value), f"kind: unknown kind {kind_node.value!r} (known: {_KIND_NAMES})"
        )
        failure = ManifestProblem(source, line_of(kind_node), "kind", message)
        return DocumentReading(source, line, None, (failure,))
    read = read_document_nodes(node, kind.message.DESCRIPTOR)
    resource = kind.new_message()
    document = ManifestDocument(kind, resource, source, line, read.lines)
    problems = [ManifestProblem(source, p.line, p.field, p.message) for p in read.problems]

    def add(path: str, message: str) -> None:
        if not _is_covered(path, problems, read.lines):
            problems.append(ManifestProblem(source, document.line_of(path), path, message))

    api_version = read.body.get("api_version")
    if api_version != API_VERSION:
        add("api_version", f"apiVersion must be {API_VERSION!r}, got {api_version!r}")
    try:
        json_format.ParseDict(read.body, resource)
    except json_format.ParseError as error:
        add("", f"invalid {kind.name}: {str(error).splitlines()[0]}")
    else:
        for violation in field_violations(resource):
            add(violation.field, f"{violation.field}: {violation.description}")
        metadata = resource.metadata  # type: ignore[attr-defined]
        try:
            resolve_slug(
                metadata.name, metadata.slug, is_default_allowed=kind.name == AGENT_INSTANCE.name
            )
        except InvalidArgument as error:
            for violation in error.violations:
                add(violation.field, error.message)
    problems.sort(key=lambda problem: problem.line)
    return DocumentReading(source, line, None if problems else document, tuple(problems))


def _parent(path: str) -> str:
    """`spec.mcp_servers[0]` for `spec.mcp_servers[0].ref`, `` for `spec`."""
    return path[: max(path.rfind("."), path.rfind("["), 0)]


def _is_within(path: str, outer: str) -> bool:
    return path == outer or path.startswith((outer + ".", outer + "["))


def _is_covered(path: str, problems: Iterable[ManifestProblem], given: Mapping[str, int]) -> bool:
    """Whether a problem already reported explains one at `path`: it is at
    the path, inside it or around it; or, for a field not given (a oneof, a
    required field), beside it, the sibling that was given having been left
    out for its own problem."""
    parent = _parent(path)
    for problem in problems:
        if not path or not problem.field:
            is_covered = path == problem.field
        else:
            is_covered = (
                _is_within(path, problem.field)
                or _is_within(problem.field, path)
                or (bool(parent) and path not in given and _is_within(problem.field, parent))
            )
        if is_covered:
            return True
    return False


def _with_duplicates_marked(readings: list[DocumentReading]) -> list[DocumentReading]:
    """A second document of one (kind, org, slug) is a problem: applying it
    would silently overwrite the first."""
    first_seen: dict[tuple[str, str, str], ManifestDocument] = {}
    marked = []
    for reading in readings:
        document = reading.document
        if document is not None:
            org = document.resource.metadata.org or DEFAULT_ORG  # type: ignore[attr-defined]
            key = (document.kind.name, org, document.slug)
            first = first_seen.setdefault(key, document)
            if first is not document:
                path = "metadata.slug" if "metadata.slug" in document.lines else "metadata.name"
                twice = ManifestProblem(
                    document.source,
                    document.line_of(path),
                    path,
                    f"{document.label} is defined twice (first at {first.where})",
                )
                marked.append(dataclasses.replace(reading, document=None, problems=(twice,)))
                continue
        marked.append(reading)
    return marked


def _documents_of(readings: list[DocumentReading]) -> list[ManifestDocument]:
    problems = [problem for reading in readings for problem in reading.problems]
    if problems:
        raise manifest_error(problems)
    return [reading.document for reading in readings if reading.document is not None]


def read_manifest_sources(
    paths: Iterable[str], stdin: str | bytes | None = None
) -> list[ManifestDocument]:
    """Reads FILE, DIR (its *.yaml/*.yml files, sorted) or `-` (stdin, as
    given in `stdin`).

    Raises:
        InvalidArgument: a path does not exist, or any document is invalid
            (every problem of every file, each with its line).
    """
    return _documents_of(inspect_manifest_sources(paths, stdin))


def inspect_manifest_sources(
    paths: Iterable[str], stdin: str | bytes | None = None
) -> list[DocumentReading]:
    """Reads FILE, DIR or `-` like read_manifest_sources, problems included;
    a resource defined twice across them is a problem of its second document.

    Raises:
        InvalidArgument: a path does not exist or cannot be read.
    """
    readings: list[DocumentReading] = []
    for given in paths:
        if given == "-":
            readings += inspect_manifest(stdin or "", "<stdin>")
            continue
        path = Path(given)
        if path.is_dir():
            files = sorted(
                p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()
            )
        elif path.is_file():
            files = [path]
        else:
            raise InvalidArgument.for_field("filename", f"{given}: no such file or directory")
        for file in files:
            readings += inspect_manifest(_read_source(file), str(file))
    return _with_duplicates_marked(readings)


def read_source_bytes(stream: BinaryIO) -> bytes:
    """A manifest source's bytes, read no further than one byte past the
    limit: enough for inspect_manifest to refuse it, without holding a
    runaway file (or pipe) in memory."""
    return stream.read(MAX_SOURCE_BYTES + 1)


def _read_source(file: Path) -> bytes:
    try:
        with file.open("rb") as stream:
            return read_source_bytes(stream)
    except OSError as error:
        raise InvalidArgument.for_field(
            "filename", f"{file}: cannot be read ({error.strerror or error})"
        ) from None


def in_apply_order(documents: Iterable[ManifestDocument]) -> list[ManifestDocument]:
    """Referenced kinds first (environments, MCP servers, then agents ...)."""
    return sorted(documents, key=lambda document: document.kind.apply_order)


def to_manifest_dict(resource: Message) -> dict[str, Any]:
    """The resource as a manifest mapping: valid input to `apply -f`."""
    body = json_format.MessageToDict(resource, preserving_proto_field_name=True)
    _int64_strings_to_ints(body, resource.DESCRIPTOR)
    ordered: dict[str, Any] = {"apiVersion": body.pop("api_version", API_VERSION)}
    ordered["kind"] = body.pop("kind", resource.DESCRIPTOR.name)
    ordered.update(body)
    return ordered


def _int64_strings_to_ints(body: dict[str, Any], descriptor: Any) -> None:
    """JSON mapping writes 64-bit integers as strings; YAML readers want numbers."""
    for field in descriptor.fields:
        if field.name not in body:
            continue
        value = body[field.name]
        if field.type in _INT64_TYPES:
            body[field.name] = [int(v) for v in value] if isinstance(value, list) else int(value)
        elif field.message_type is not None:
            if field.message_type.GetOptions().map_entry:
                value_field = field.message_type.fields_by_name["value"]
                if value_field.message_type is not None:
                    for item in value.values():
                        _int64_strings_to_ints(item, value_field.message_type)
                continue
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, dict):
                    _int64_strings_to_ints(item, field.message_type)


def dump_yaml(documents: Iterable[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(list(documents), sort_keys=False, allow_unicode=True)
