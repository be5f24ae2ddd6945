"""The CLI as a user runs it: `stigmer` in a subprocess against a real server."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stigmer.client import Client
from stigmer.testing.cli import Cli
from stigmer.testing.server import ServerThread
from tests.control_plane.manifests import FOUR_RESOURCES


def write(tmp_path: Path, text: str, name: str = "resources.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_get_yaml_is_valid_input_to_apply(cli: Cli, tmp_path: Path) -> None:
    assert cli("apply", "-f", write(tmp_path, FOUR_RESOURCES)).exit_code == 0
    shown = cli("get", "agent", "pr-reviewer", "-o", "yaml")
    assert shown.exit_code == 0
    document = yaml.safe_load(shown.stdout)
    assert document["apiVersion"] == "agentic.stigmer.ai/v1"
    assert document["metadata"]["version"] == 1
    again = cli("apply", "-f", write(tmp_path, shown.stdout, "exported.yaml"))
    assert again.exit_code == 0, again.stderr
    assert again.stdout.split() == ["agent/pr-reviewer", "unchanged"]


def test_get_lists_tables_json_and_selects_by_label(cli: Cli, tmp_path: Path) -> None:
    cli("apply", "-f", write(tmp_path, FOUR_RESOURCES))
    table = cli("get", "agents")
    assert table.exit_code == 0
    assert table.stdout.splitlines()[0].split()[:2] == ["NAME", "MODEL"]
    assert {line.split()[0] for line in table.stdout.splitlines()[1:]} == {
        "pr-reviewer",
        "support-bot",
    }
    selected = cli("get", "ag", "-l", "team=support", "-o", "json")
    assert [item["metadata"]["slug"] for item in yaml.safe_load(selected.stdout)["items"]] == [
        "support-bot"
    ]
    wide = cli("get", "ain", "-o", "wide")
    assert "pr-reviewer-default" in wide.stdout and "ain-" in wide.stdout


def test_secrets_never_reach_cli_output(cli: Cli, tmp_path: Path) -> None:
    cli("apply", "-f", write(tmp_path, FOUR_RESOURCES))
    for output in ("yaml", "json", "wide"):
        shown = cli("get", "env", "prod", "-o", output)
        assert "ghp-canary" not in shown.stdout + shown.stderr
    assert "***" in cli("get", "env", "prod", "-o", "yaml").stdout


def test_delete_by_name_and_orphan_cascade(cli: Cli, tmp_path: Path, client: Client) -> None:
    cli("apply", "-f", write(tmp_path, FOUR_RESOURCES))
    orphaned = cli("delete", "agent", "support-bot", "--cascade=orphan")
    assert orphaned.exit_code == 0
    assert orphaned.stdout.split() == ["agent/support-bot", "deleted"]
    assert client.get("agentinstance", "support-bot-default").metadata.slug
    assert cli("delete", "agent", "pr-reviewer").exit_code == 0
    assert [i.metadata.slug for i in client.list("agentinstance")] == ["support-bot-default"]
    missing = cli("delete", "agent", "pr-reviewer")
    assert missing.exit_code == 1
    assert "not found" in missing.stderr


def test_delete_from_file_removes_what_it_defines(cli: Cli, tmp_path: Path, client: Client) -> None:
    path = write(tmp_path, FOUR_RESOURCES)
    cli("apply", "-f", path)
    deleted = cli("delete", "-f", path)
    assert deleted.exit_code == 0, deleted.stderr
    assert len(deleted.stdout.splitlines()) == 4
    assert client.list("agent") == [] and client.list("environment") == []


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        (
            "apiVersion: agentic.stigmer.ai/v1\nkind: Agent\nmetadata: {name: x\n",
            ":8: invalid YAML",
        ),
        (
            "apiVersion: agentic.stigmer.ai/v1\nkind: Robot\nmetadata: {name: x}\nspec: {}\n",
            "unknown kind 'Robot'",
        ),
        (
            "apiVersion: agentic.stigmer.ai/v1\nkind: Agent\nmetadata: {name: x}\n"
            "spec: {instructions: Review all the code., temperature: 2}\n",
            "unknown field 'spec.temperature'",
        ),
        (
            "apiVersion: agentic.stigmer.ai/v1\nkind: Agent\nmetadata: {name: x}\n"
            "spec: {instructions: too short}\n",
            "spec.instructions: must be at least 10 characters",
        ),
        (
            "apiVersion: agentic.stigmer.ai/v1\nkind: Agent\nmetadata: {name: '!!!'}\n"
            "spec: {instructions: Review all the code.}\n",
            "metadata.name: '!!!' yields an empty slug",
        ),
    ],
    ids=["malformed-yaml", "unknown-kind", "unknown-field", "short-instructions", "empty-slug"],
)
def test_bad_manifest_is_a_clear_error_and_writes_nothing(
    cli: Cli, tmp_path: Path, client: Client, manifest: str, expected: str
) -> None:
    # A valid environment first in the same file: it must not be written either.
    valid = "apiVersion: agentic.stigmer.ai/v1\nkind: Environment\nmetadata: {name: e}\nspec: {}\n"
    path = write(tmp_path, valid + "---\n" + manifest)
    result = cli("apply", "-f", path)
    assert result.exit_code == 2
    assert expected in result.stderr
    assert path in result.stderr
    assert "Traceback" not in result.stderr
    assert client.list("environment") == []
    assert client.list("agent") == []


def test_unreachable_server_exits_3_with_a_hint(cli: Cli) -> None:
    result = cli("get", "agents", "--server", "127.0.0.1:1")
    assert result.exit_code == 3
    assert "stigmer server start" in result.stderr


def test_unknown_kind_on_get_exits_2(cli: Cli) -> None:
    result = cli("get", "robots")
    assert result.exit_code == 2
    assert "unknown kind 'robots'" in result.stderr


def test_apply_from_stdin_and_dry_run(cli: Cli, client: Client) -> None:
    dry = cli("apply", "-f", "-", "--dry-run", stdin=FOUR_RESOURCES)
    assert dry.exit_code == 0
    assert dry.stdout.count("created (dry run)") == 4
    assert client.list("agent") == []


def test_config_set_get_and_list_show_sources(cli: Cli, stigmer_home: Path) -> None:
    assert cli("config", "set", "llm.provider", "openai").exit_code == 0
    assert cli("config", "get", "llm.provider").stdout.strip() == "openai"
    assert (stigmer_home / "config.yaml").exists()
    cli("config", "set", "llm.api_key", "sk-canary")
    listing = cli("config", "list")
    assert "sk-canary" not in listing.stdout
    assert "env STIGMER_SERVER" in listing.stdout
    unknown = cli("config", "get", "nonsense")
    assert unknown.exit_code == 2


def test_version_prints_the_version(cli: Cli, server: ServerThread) -> None:
    from stigmer import __version__

    assert cli("version").stdout.strip() == f"stigmer {__version__}"
