"""Hostile manifests through the real `stigmer apply`, `validate` and
`delete -f` against a real server: every one exits 2 naming the file and
the line, prints no traceback, and writes nothing (a valid document beside
the hostile one is not applied, and one already applied is not deleted)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from stigmer.client import Client
from stigmer.resources.kinds import AGENT_EXECUTION, KINDS
from stigmer.resources.manifest_yaml import MAX_DEPTH, MAX_NODES, MAX_SOURCE_BYTES
from stigmer.testing.cli import Cli

ENVIRONMENT = b"""\
apiVersion: agentic.stigmer.ai/v1
kind: Environment
metadata: {name: staging}
spec:
  data:
    REGION: {value: eu-west-1}
---
"""
AGENT_HEAD = b"""\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata:
  name: Reviewer
"""
INSTRUCTIONS = b"  instructions: Review pull requests and point out risky changes.\n"
BOMB = b'  description: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + b"".join(
    b"  x%d: &l%d [%s]\n" % (level, level, b",".join([b"*l%d" % (level - 1)] * 9))
    for level in range(1, 9)
)


@dataclass(frozen=True)
class Hostile:
    """A manifest, the fragment of the line at fault and what is said there."""

    manifest: bytes
    at: bytes
    says: str


HOSTILE = {
    "billion_laughs": Hostile(
        ENVIRONMENT + AGENT_HEAD + b"spec:\n" + INSTRUCTIONS + BOMB,
        b"x5:",
        f"this value holds more than {MAX_NODES} values with its aliases expanded",
    ),
    "recursive_alias": Hostile(
        ENVIRONMENT + AGENT_HEAD + b"spec:\n" + INSTRUCTIONS + b"  description: &a [*a]\n",
        b"&a [*a]",
        "alias *a is inside the node it names",
    ),
    "deep_nesting": Hostile(
        ENVIRONMENT + AGENT_HEAD + b"spec:\n  description: " + b"[" * 500 + b"]" * 500 + b"\n",
        b"[[[",
        f"nested more than {MAX_DEPTH} levels deep",
    ),
    "python_tag": Hostile(
        ENVIRONMENT + AGENT_HEAD + b'  labels: !!python/object/apply:os.system ["true"]\n',
        b"!!python",
        "tag '!!python/object/apply:os.system' is not allowed in a manifest",
    ),
    "local_tag": Hostile(
        ENVIRONMENT + AGENT_HEAD + b"spec:\n" + INSTRUCTIONS + b"  description: !Ref other\n",
        b"!Ref",
        "tag '!Ref' is not allowed in a manifest",
    ),
    "not_utf8": Hostile(
        ENVIRONMENT + AGENT_HEAD + b"spec:\n" + INSTRUCTIONS + b"  description: caf\xe9\n",
        b"caf\xe9",
        "not UTF-8: byte 0xe9 at offset",
    ),
    "nul_character": Hostile(
        ENVIRONMENT + AGENT_HEAD + b"spec:\n" + INSTRUCTIONS + b"  description: a\x00b\n",
        b"a\x00b",
        "character U+0000 (column 17) is not allowed in YAML",
    ),
    "impossible_date_in_a_boolean": Hostile(
        ENVIRONMENT.replace(b"{value: eu-west-1}", b"{value: x, is_secret: 2024-02-30}"),
        b"2024-02-30",
        "spec.data['REGION'].is_secret: expected true or false, got a string",
    ),
    "list_for_spec": Hostile(
        ENVIRONMENT + AGENT_HEAD + b"spec: []\n",
        b"spec: []",
        "spec: expected a mapping of AgentSpec fields, got a list",
    ),
    "duplicate_key": Hostile(
        ENVIRONMENT + AGENT_HEAD + b"spec:\n" + INSTRUCTIONS + INSTRUCTIONS.replace(b"Rev", b"Re"),
        b"Reiew",
        "spec.instructions: given twice (first at line 13); give it once",
    ),
    "one_slug_twice": Hostile(
        ENVIRONMENT + ENVIRONMENT.replace(b"eu-west-1", b"us-east-1"),
        b"name: staging",
        "environment/staging is defined twice (first at {path}:1)",
    ),
}


def line_of(manifest: bytes, fragment: bytes) -> int:
    # The fault is on the last line holding the fragment: the hostile part
    # follows the valid Environment.
    [*_, line] = [n for n, text in enumerate(manifest.splitlines(), 1) if fragment in text]
    return line


def run(cli: Cli, *args: str, stdin: bytes | None = None) -> tuple[int, str]:
    """The CLI with bytes on stdin (Cli sends text); exit code and stderr."""
    completed = subprocess.run(
        [sys.executable, "-m", "stigmer.cli.main", *args],
        input=stdin,
        capture_output=True,
        env=cli.env,
        cwd=cli.cwd,
        timeout=60,
        check=False,
    )
    return completed.returncode, completed.stderr.decode("utf-8", "replace")


def stored(client: Client) -> dict[str, list[str]]:
    """Every slug the server holds, by kind."""
    found = {
        info.name: sorted(r.metadata.slug for r in client.list(info))
        for info in KINDS
        if info is not AGENT_EXECUTION
    }
    found[AGENT_EXECUTION.name] = [e.metadata.id for e in client.list_executions()]
    return {kind: slugs for kind, slugs in found.items() if slugs}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_manifest_exits_2_at_its_line_and_writes_nothing(
    case: str, cli: Cli, client: Client, tmp_path: Path
) -> None:
    hostile = HOSTILE[case]
    path = tmp_path / f"{case}.yaml"
    path.write_bytes(hostile.manifest)
    expected = f"{path}:{line_of(hostile.manifest, hostile.at)}: {hostile.says.format(path=path)}"
    for command in ("apply", "validate"):
        code, stderr = run(cli, command, "-f", str(path))
        assert (code, expected in stderr) == (2, True), stderr
        assert "Traceback" not in stderr and "internal error" not in stderr
    assert stored(client) == {}
    client.apply(ENVIRONMENT.decode(), source="staging.yaml")
    before = stored(client)
    code, stderr = run(cli, "delete", "-f", str(path))
    assert (code, expected in stderr) == (2, True), stderr
    assert stored(client) == before == {"Environment": ["staging"]}


def test_hostile_manifest_on_stdin_is_named_as_stdin(cli: Cli, client: Client) -> None:
    hostile = HOSTILE["not_utf8"]
    line = line_of(hostile.manifest, hostile.at)
    offset = hostile.manifest.index(b"\xe9")
    code, stderr = run(cli, "apply", "-f", "-", stdin=hostile.manifest)
    assert code == 2
    assert f"<stdin>:{line}: not UTF-8: byte 0xe9 at offset {offset}" in stderr
    assert stored(client) == {}


def test_a_file_over_the_size_limit_is_refused_before_it_is_read_as_yaml(
    cli: Cli, client: Client, tmp_path: Path
) -> None:
    path = tmp_path / "huge.yaml"
    padding = b"# " + b"x" * 1022 + b"\n"
    path.write_bytes(ENVIRONMENT + padding * (MAX_SOURCE_BYTES // len(padding) + 1))
    code, stderr = run(cli, "apply", "-f", str(path))
    assert code == 2
    assert f"{path}:1: is 16.0 MiB; a manifest file may be at most 16.0 MiB" in stderr
    assert "split it into several files" in stderr
    assert stored(client) == {}


def test_one_slug_in_two_files_of_a_directory_is_refused_naming_both(
    cli: Cli, client: Client, tmp_path: Path
) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "a.yaml").write_bytes(ENVIRONMENT)
    (folder / "b.yml").write_bytes(ENVIRONMENT.replace(b"eu-west-1", b"us-east-1"))
    (folder / "c.yaml").mkdir()  # a directory with a manifest's name is not a manifest
    code, stderr = run(cli, "apply", "-f", str(folder))
    assert code == 2
    assert (
        f"{folder / 'b.yml'}:3: environment/staging is defined twice (first at "
        f"{folder / 'a.yaml'}:1)"
    ) in stderr
    assert stored(client) == {}


def test_a_trailing_document_marker_and_impossible_dates_in_text_fields_apply(
    cli: Cli, client: Client, tmp_path: Path
) -> None:
    manifest = ENVIRONMENT.replace(b"eu-west-1", b"2024-02-30") + AGENT_HEAD
    manifest += b"  labels: {since: 2024-02-30}\nspec:\n" + INSTRUCTIONS + b"---\n"
    path = tmp_path / "dates.yaml"
    path.write_bytes(manifest)
    code, stderr = run(cli, "apply", "-f", str(path))
    assert code == 0, stderr
    environment = client.get("Environment", "staging")
    assert environment.spec.data["REGION"].value == "2024-02-30"
    assert dict(client.get("Agent", "reviewer").metadata.labels) == {"since": "2024-02-30"}
