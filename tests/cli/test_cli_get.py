"""kubectl habits of `stigmer get` and `stigmer delete`, run as a user runs
them: the real command in a subprocess against a real server.

The read-only tests share one seeded server for the module (each command is
a process start, the server need not be); the tests that delete start their
own through the `cli` fixture.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from stigmer.client import Client
from stigmer.resources.manifests import parse_manifest
from stigmer.testing.cli import Cli
from stigmer.testing.server import ServerThread
from tests.cli.test_cli_resources import write
from tests.control_plane.manifests import FOUR_RESOURCES

# Beside FOUR_RESOURCES (prod, github, pr-reviewer team=platform, support-bot team=support):
# an agent of team demo, one with no labels at all, and MCP servers whose
# numeric timeouts sort differently as numbers and as text.
MORE = """\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata: {name: Demo Bot, labels: {team: demo, tier: gold}}
spec: {instructions: Show what Stigmer can do.}
---
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata: {name: Lone Agent}
spec: {instructions: Work alone and label nothing.}
---
apiVersion: agentic.stigmer.ai/v1
kind: McpServer
metadata: {name: Slow API}
spec: {http: {url: "http://127.0.0.1:9/mcp", timeout_seconds: 100}}
---
apiVersion: agentic.stigmer.ai/v1
kind: McpServer
metadata: {name: Fast API}
spec: {http: {url: "http://127.0.0.1:9/mcp", timeout_seconds: 5}}
---
apiVersion: agentic.stigmer.ai/v1
kind: McpServer
metadata: {name: Mid API}
spec: {http: {url: "http://127.0.0.1:9/mcp", timeout_seconds: 30}}
"""
AGENTS = {"pr-reviewer", "support-bot", "demo-bot", "lone-agent"}


@pytest.fixture(scope="module")
def seeded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    store = tmp_path_factory.mktemp("store") / "stigmer.db"
    with ServerThread(str(store)) as running:
        with Client(running.address) as client:
            client.apply_documents(parse_manifest(FOUR_RESOURCES + "---\n" + MORE, "seed.yaml"))
        yield running


@pytest.fixture(scope="module")
def seeded(seeded_server: ServerThread, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """The CLI pointed at the module's seeded server."""
    home = tmp_path_factory.mktemp("home")
    return Cli.isolated(home, {"SERVER": seeded_server.address}, cwd=home)


def names(cli: Cli, *args: str) -> list[str]:
    result = cli("get", *args, "-o", "name")
    assert result.exit_code == 0, result.stderr
    return result.stdout.splitlines()


# -- kinds ------------------------------------------------------------------


def test_get_without_kind_is_a_usage_error_that_lists_the_kinds(seeded: Cli) -> None:
    result = seeded("get")
    assert result.exit_code == 2
    for kind in ("all", "agent/ag", "environment/env", "execution/aex"):
        assert kind in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_kind_suggests_the_closest_kind(seeded: Cli) -> None:
    result = seeded("get", "agnts")
    assert result.exit_code == 2
    assert "unknown kind 'agnts'" in result.stderr
    assert "did you mean 'agents'?" in result.stderr


def test_get_all_prints_a_section_per_kind_with_kind_slug_names(
    seeded: Cli, seeded_server: ServerThread
) -> None:
    with Client(seeded_server.address) as client:
        expected = [f"environment/{e.metadata.slug}" for e in client.list("env")]
        expected += [f"mcpserver/{m.metadata.slug}" for m in client.list("mcp")]
        expected += [f"agent/{a.metadata.slug}" for a in client.list("agent")]
        expected += [f"agentinstance/{i.metadata.slug}" for i in client.list("ain")]

    assert names(seeded, "all") == expected

    table = seeded("get", "all")
    assert table.exit_code == 0, table.stderr
    sections = table.stdout.strip().split("\n\n")
    assert [section.split()[0] for section in sections] == ["NAME"] * 4
    assert [section.splitlines()[1].split()[0].split("/")[0] for section in sections] == [
        "environment",
        "mcpserver",
        "agent",
        "agentinstance",
    ]
    assert "agentinstance/pr-reviewer-default" in sections[3]


def test_get_all_takes_no_name(seeded: Cli) -> None:
    result = seeded("get", "all", "pr-reviewer")
    assert result.exit_code == 2
    assert "takes no NAME" in result.stderr


# -- output -----------------------------------------------------------------


def test_output_name_prints_kind_slug_for_one_and_for_many(seeded: Cli) -> None:
    assert names(seeded, "ag", "pr-reviewer") == ["agent/pr-reviewer"]
    assert set(names(seeded, "agents")) == {f"agent/{slug}" for slug in AGENTS}
    assert names(seeded, "env") == ["environment/prod"]


def test_jsonpath_prints_scalars_plainly_and_structures_as_json(seeded: Cli) -> None:
    listed = seeded("get", "agents", "-l", "team", "-o", "jsonpath={.items[*].metadata.slug}")
    assert listed.exit_code == 0, listed.stderr
    assert sorted(listed.stdout.split()) == ["demo-bot", "pr-reviewer", "support-bot"]

    version = seeded("get", "agent", "pr-reviewer", "-o", "jsonpath={.metadata.version}")
    assert version.stdout == "1\n"

    labels = seeded("get", "agent", "demo-bot", "-o", "jsonpath={.metadata.labels}")
    assert json.loads(labels.stdout) == {"team": "demo", "tier": "gold"}

    ranged = seeded(
        "get",
        "mcp",
        "-o",
        "jsonpath={range .items[?(@.spec.http)]}"
        '{.metadata.slug}={.spec.http.timeout_seconds}{"\\n"}{end}',
    )
    assert ranged.exit_code == 0, ranged.stderr
    assert sorted(ranged.stdout.splitlines()) == ["fast-api=5", "mid-api=30", "slow-api=100"]


def test_invalid_jsonpath_is_exit_2_naming_the_expression(seeded: Cli) -> None:
    for template in ("jsonpath={.items[", "jsonpath={range .items[*]}{.metadata.slug}"):
        result = seeded("get", "agents", "-o", template)
        assert result.exit_code == 2, template
        assert repr(template.removeprefix("jsonpath=")) in result.stderr
        assert result.stdout == ""


def test_show_labels_adds_a_labels_column(seeded: Cli) -> None:
    result = seeded("get", "agents", "--show-labels")
    assert result.exit_code == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split()[-1] == "LABELS"
    labels = {row.split()[0]: row.split()[-1] for row in rows}
    assert labels == {
        "pr-reviewer": "team=platform",
        "support-bot": "team=support",
        "demo-bot": "team=demo,tier=gold",
        "lone-agent": "<none>",
    }


def test_sort_by_orders_numbers_numerically_and_missing_fields_last(seeded: Cli) -> None:
    by_timeout = names(seeded, "mcp", "--sort-by", ".spec.http.timeout_seconds")
    assert by_timeout == [
        "mcpserver/fast-api",
        "mcpserver/mid-api",
        "mcpserver/slow-api",
        "mcpserver/github",
    ]
    by_name = names(seeded, "agents", "--sort-by", "{.metadata.name}")
    assert by_name == [
        "agent/demo-bot",
        "agent/lone-agent",
        "agent/pr-reviewer",
        "agent/support-bot",
    ]
    invalid = seeded("get", "agents", "--sort-by", ".metadata[")
    assert invalid.exit_code == 2
    assert "sort-by" in invalid.stderr and "'.metadata['" in invalid.stderr


def test_ignore_not_found_turns_a_missing_name_into_silence(seeded: Cli) -> None:
    missing = seeded("get", "agent", "nobody")
    assert missing.exit_code == 1
    assert "not found" in missing.stderr
    for command in (("get", "agent", "nobody"), ("delete", "agent", "nobody")):
        ignored = seeded(*command, "--ignore-not-found")
        assert (ignored.exit_code, ignored.stdout, ignored.stderr) == (0, "", ""), command


# -- selectors --------------------------------------------------------------


@pytest.mark.parametrize(
    ("selectors", "expected"),
    [
        (["team=demo"], {"demo-bot"}),
        (["team==platform"], {"pr-reviewer"}),
        (["team!=demo"], {"pr-reviewer", "support-bot", "lone-agent"}),
        (["team in (demo,support)"], {"demo-bot", "support-bot"}),
        (["team notin (demo, support)"], {"pr-reviewer", "lone-agent"}),
        (["team"], {"pr-reviewer", "support-bot", "demo-bot"}),
        (["!team"], {"lone-agent"}),
        (["team", "team notin (support)", "!tier"], {"pr-reviewer"}),
    ],
    ids=["equals", "double-equals", "not-equals", "in", "notin", "exists", "not-exists", "anded"],
)
def test_label_selector_operators_on_the_command_line(
    seeded: Cli, selectors: list[str], expected: set[str]
) -> None:
    arguments = [part for selector in selectors for part in ("-l", selector)]
    assert set(names(seeded, "agents", *arguments)) == {f"agent/{slug}" for slug in expected}


def test_unparsable_selector_is_exit_2_and_names_it(seeded: Cli) -> None:
    result = seeded("get", "agents", "-l", "team in (a")
    assert result.exit_code == 2
    assert "label selector 'team in (a'" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


# -- delete -f ----------------------------------------------------------------


def test_delete_from_a_directory_and_from_stdin(cli: Cli, tmp_path: Path, client: Client) -> None:
    directory = tmp_path / "manifests"
    directory.mkdir()
    documents = FOUR_RESOURCES.split("---\n")
    write(directory, "---\n".join(documents[:2]), "tools.yaml")
    write(directory, "---\n".join(documents[2:]), "agents.yml")
    assert cli("apply", "-f", str(directory)).exit_code == 0

    deleted = cli("delete", "-f", str(directory))

    assert deleted.exit_code == 0, deleted.stderr
    assert deleted.stdout.splitlines() == [
        "agent/pr-reviewer deleted",
        "agent/support-bot deleted",
        "mcpserver/github deleted",
        "environment/prod deleted",
    ]
    assert client.list("agent") == [] and client.list("mcp") == []

    assert cli("apply", "-f", "-", stdin=FOUR_RESOURCES).exit_code == 0
    from_stdin = cli("delete", "-f", "-", stdin=FOUR_RESOURCES)
    assert from_stdin.exit_code == 0, from_stdin.stderr
    assert len(from_stdin.stdout.splitlines()) == 4
    assert client.list("environment") == []


def test_delete_from_file_names_the_file_of_a_missing_resource(
    cli: Cli, tmp_path: Path, client: Client
) -> None:
    path = write(tmp_path, FOUR_RESOURCES)
    cli("apply", "-f", path)
    client.delete("agent", "support-bot")

    missing = cli("delete", "-f", path)
    assert missing.exit_code == 1
    assert f"{path}:" in missing.stderr and "'support-bot' not found" in missing.stderr

    ignored = cli("delete", "-f", path, "--ignore-not-found")
    assert ignored.exit_code == 0, ignored.stderr
    assert ignored.stdout.splitlines() == ["mcpserver/github deleted", "environment/prod deleted"]
    assert client.list("mcp") == [] and client.list("environment") == []
