"""The manifest reader's limits: hostile YAML is a problem at a line, never
an exception, a stall or a memory spike."""

from __future__ import annotations

import tracemalloc

import pytest

from stigmer.errors import InvalidArgument
from stigmer.resources.manifest_yaml import MAX_DEPTH, MAX_SOURCE_BYTES, compose_manifest
from stigmer.resources.manifests import inspect_manifest, parse_manifest

HEAD = """\
apiVersion: agentic.stigmer.ai/v1
kind: McpServer
metadata:
  name: github
spec:
  stdio: {command: python}
"""
HTTP = HEAD.replace("  stdio: {command: python}\n", "  http:\n    url: http://127.0.0.1:1/mcp\n")


def problems(manifest: str | bytes) -> list[str]:
    return [str(p) for reading in inspect_manifest(manifest, "m.yaml") for p in reading.problems]


def test_a_billion_laughs_is_refused_at_its_line_within_a_few_megabytes() -> None:
    levels = ['  description: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 10):
        levels.append(f"  x{level}: &l{level} [{','.join([f'*l{level - 1}'] * 9)}]")
    tracemalloc.start()
    try:
        found = problems(HEAD + "\n".join(levels) + "\n")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert found == [
        "m.yaml:12: this value holds more than 100000 values with its aliases expanded"
    ]
    assert peak < 4 * 1024 * 1024


def test_aliases_of_a_long_text_are_held_to_the_size_of_a_file() -> None:
    manifest = HEAD + f"  description: &big {'x' * 200_000}\n  x: [{', '.join(['*big'] * 100)}]\n"
    assert problems(manifest) == [
        "m.yaml:8: this value holds more than 16.0 MiB of text with its aliases expanded"
    ]


@pytest.mark.parametrize("alias", ["[*a]", "{b: [*a]}"])
def test_an_alias_inside_the_node_it_names_is_refused(alias: str) -> None:
    assert problems(HEAD + f"  description: &a {alias}\n") == [
        "m.yaml:7: alias *a is inside the node it names"
    ]


def test_nesting_is_refused_past_the_limit_in_flow_and_block_style() -> None:
    flow = HEAD + "  description: " + "[" * 500 + "]" * 500 + "\n"
    block = HEAD + "  description:\n" + "".join("  " * (n + 2) + "k:\n" for n in range(500))
    assert problems(flow) == [f"m.yaml:7: nested more than {MAX_DEPTH} levels deep"]
    assert problems(block) == [f"m.yaml:{7 + MAX_DEPTH - 1}: nested more than 64 levels deep"]
    [deepest] = compose_manifest("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    assert deepest is not None


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("!!python/object/apply:os.system [true]", "!!python/object/apply:os.system"),
        ("!!str 0755", "!!str"),
        ("!Ref other", "!Ref"),
        ("! text", "!"),
        ("!<tag:example.com,2000:x> text", "tag:example.com,2000:x"),
    ],
)
def test_every_tag_is_refused_naming_its_line(value: str, written: str) -> None:
    assert problems(HEAD + f"  description: {value}\n") == [
        f"m.yaml:7: tag {written!r} is not allowed in a manifest (quote a value to make it text)"
    ]


def test_bytes_that_are_not_utf8_are_refused_with_the_offset() -> None:
    manifest = HEAD.encode() + b"  description: caf\xe9\n"
    offset = manifest.index(b"\xe9")
    assert problems(manifest) == [
        f"m.yaml:7: not UTF-8: byte 0xe9 at offset {offset} (manifests are UTF-8 text)"
    ]
    assert problems("\ufeff".encode() + HEAD.encode()) == []
    assert problems(HEAD.encode("utf-16")) == [
        "m.yaml:1: not UTF-8: byte 0xff at offset 0 (manifests are UTF-8 text)"
    ]


def test_control_characters_and_oversize_sources_are_refused_before_parsing() -> None:
    assert problems(HEAD + "  description: a\x1bb\n") == [
        "m.yaml:7: character U+001B (column 17) is not allowed in YAML"
    ]
    oversize = HEAD + "#" * MAX_SOURCE_BYTES
    assert problems(oversize) == [
        "m.yaml:1: is 16.0 MiB; a manifest file may be at most 16.0 MiB "
        "(split it into several files)"
    ]


def test_impossible_dates_are_text_where_text_is_read_and_an_error_elsewhere() -> None:
    [document] = parse_manifest(HEAD + "  description: 2024-02-30\n", "m.yaml")
    assert document.resource.spec.description == "2024-02-30"  # type: ignore[attr-defined]
    assert problems(HTTP + "    timeout_seconds: 2024-02-30\n") == [
        "m.yaml:8: spec.http.timeout_seconds: expected a whole number, got a string"
    ]


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("0x_", "spec.http.timeout_seconds: '0x_' is not a valid number"),
        ("9" * 5000, f"spec.http.timeout_seconds: '{'9' * 40}...' is not a valid number"),
        ("1.0e+9999", "spec.http.timeout_seconds: expected a whole number, got a number"),
        ("=", "spec.http.timeout_seconds: expected a whole number, got a string"),
        ("<<", "spec.http.timeout_seconds: expected a whole number, got a string"),
    ],
)
def test_odd_scalars_in_a_number_field_are_problems(value: str, said: str) -> None:
    assert problems(HTTP + f"    timeout_seconds: {value}\n") == [f"m.yaml:8: {said}"]


def test_a_merge_of_something_other_than_mappings_is_a_problem_at_its_line() -> None:
    found = problems(HEAD + "  <<: 5\n")
    assert found == [
        "m.yaml:7: spec: <<: expected a mapping or list of mappings for merging, but found scalar"
    ]


def test_a_key_given_twice_names_both_lines() -> None:
    manifest = HEAD.replace("  name: github\n", "  name: github\n  labels:\n    a: x\n    a: y\n")
    assert problems(manifest) == [
        "m.yaml:7: metadata.labels['a']: given twice (first at line 6); give it once"
    ]


def test_a_list_where_a_mapping_belongs_is_named_as_such() -> None:
    manifest = HEAD.replace("spec:\n  stdio: {command: python}\n", "spec: []\n")
    assert problems(manifest) == [
        "m.yaml:5: spec: expected a mapping of McpServerSpec fields, got a list"
    ]


def test_a_trailing_document_marker_or_end_marker_is_no_document() -> None:
    for ending in ("---\n", "---", "...\n", "---\n...\n---\n"):
        assert [d.label for d in parse_manifest(HEAD + ending, "m.yaml")] == ["mcpserver/github"]


def test_an_error_at_the_end_of_the_file_is_on_its_last_line() -> None:
    with pytest.raises(InvalidArgument) as raised:
        parse_manifest(HEAD + "  args: [a\n", "m.yaml")
    assert raised.value.message.startswith("m.yaml:7: invalid YAML: ")
