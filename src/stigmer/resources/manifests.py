"""YAML manifests: the files users write and `get -o yaml` prints.

A manifest is one or more YAML documents, each a resource envelope:
`apiVersion`, `kind`, `metadata`, `spec` (and `status`, which is ignored on
input because the system owns it). Parsing reports the source, the document
and its line for every error, and rejects unknown fields instead of dropping
them silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from stigmer.errors import FieldViolation, InvalidArgument
from stigmer.resources.kinds import API_VERSION, KindInfo, kind_by_name
from stigmer.resources.slugs import resolve_slug
from stigmer.resources.validation import validate_message

_UNKNOWN_FIELD = re.compile(r'has no field named "([^"]+)" at "[^".]+\.?([^"]*)"')
_INT64_TYPES = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}


@dataclass(frozen=True)
class ManifestDocument:
    """One resource read from a manifest, with where it came from."""

    kind: KindInfo
    resource: Message
    source: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


def _invalid(where: str, message: str, field: str = "") -> InvalidArgument:
    return InvalidArgument(
        f"{where}: {message}",
        violations=[FieldViolation(field, message)],
        facts={"source": where, "field": field},
    )


def parse_manifest(text: str, source: str = "<stdin>") -> list[ManifestDocument]:
    """Parses every document of a YAML manifest.

    Raises:
        InvalidArgument: malformed YAML (with the line), an unknown kind, an
            unknown or mistyped field (with its path), a wrong apiVersion.
    """
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        at_line = f":{mark.line + 1}" if mark is not None else ""
        problem = error.problem or error.context or "malformed YAML"
        raise _invalid(f"{source}{at_line}", f"invalid YAML: {problem}") from None
    documents: list[ManifestDocument] = []
    for node in nodes:
        if node is None:
            continue
        line = node.start_mark.line + 1
        where = f"{source}:{line}"
        body = yaml.safe_load(yaml.serialize(node))
        if body is None:
            continue
        documents.append(_parse_document(body, where, source, line))
    return documents


def _parse_document(body: object, where: str, source: str, line: int) -> ManifestDocument:
    if not isinstance(body, dict):
        raise _invalid(where, "a document must be a mapping with apiVersion, kind, metadata, spec")
    api_version = body.get("apiVersion", body.get("api_version"))
    if api_version != API_VERSION:
        raise _invalid(
            where, f"apiVersion must be {API_VERSION!r}, got {api_version!r}", "apiVersion"
        )
    kind_name = body.get("kind")
    if not isinstance(kind_name, str):
        raise _invalid(where, "kind is required", "kind")
    try:
        kind = kind_by_name(kind_name)
    except InvalidArgument as error:
        raise _invalid(where, error.message, "kind") from None
    resource = kind.new_message()
    try:
        json_format.ParseDict(_stringify_timestamps(body), resource)
    except json_format.ParseError as error:
        text = str(error)
        unknown = _UNKNOWN_FIELD.search(text)
        if unknown:
            path = ".".join(p for p in (unknown.group(2), unknown.group(1)) if p)
            raise _invalid(where, f"unknown field {path!r} in {kind.name}", path) from None
        raise _invalid(where, f"invalid {kind.name}: {text.splitlines()[0]}") from None
    document = ManifestDocument(kind, resource, source, line)
    check_document(document)
    return document


def check_document(document: ManifestDocument) -> None:
    """The checks that need no server: field rules and a usable slug. Run on
    every document before any is applied, so a bad document in a file
    leaves the whole file unapplied.

    Raises:
        InvalidArgument: with the document's location and the field paths.
    """
    try:
        validate_message(document.resource)
        metadata = document.resource.metadata  # type: ignore[attr-defined]
        resolve_slug(metadata.name, metadata.slug)
    except InvalidArgument as error:
        raise InvalidArgument(
            f"{document.where}: {error.message}",
            violations=error.violations,
            facts={**error.facts, "source": document.where},
        ) from None


def _stringify_timestamps(value: Any) -> Any:
    """YAML reads RFC 3339 strings as datetimes; protobuf wants the strings."""
    if isinstance(value, dict):
        return {key: _stringify_timestamps(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_stringify_timestamps(item) for item in value]
    if hasattr(value, "isoformat") and not isinstance(value, str):
        text: str = value.isoformat()
        return text.replace("+00:00", "Z")
    return value


def read_manifest_sources(
    paths: Iterable[str], stdin_text: str | None = None
) -> list[ManifestDocument]:
    """Reads FILE, DIR (its *.yaml/*.yml files, sorted) or `-` (stdin).

    Raises:
        InvalidArgument: a path does not exist, or a document is invalid.
    """
    documents: list[ManifestDocument] = []
    for given in paths:
        if given == "-":
            documents += parse_manifest(stdin_text or "", "<stdin>")
            continue
        path = Path(given)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml"))
        elif path.is_file():
            files = [path]
        else:
            raise InvalidArgument.for_field("filename", f"{given}: no such file or directory")
        for file in files:
            documents += parse_manifest(file.read_text(), str(file))
    return documents


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
