"""`stigmer usage`: totals equal what the scripted model reported across
several executions, breakdowns by agent, model and day, the table and the
chart in a pseudo-terminal, and bad options as usage errors. Also the run
settings `stigmer run` takes, and how they resolve with the agent's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from stigmer.client import Client
from stigmer.resources.execution_events import COMPLETED
from stigmer.resources.prices import PriceTable, parse_prices
from stigmer.resources.run_configs import RunConfig
from stigmer.testing.cli import Cli
from stigmer.testing.scripted_model import Reply, ScriptedModel
from stigmer.testing.server import ServerThread
from tests.agents import PLAIN_AGENT
from tests.backends import engine_options
from tests.cli.test_cli_terminal import Terminal

PRICES = PriceTable.with_overrides(parse_prices("scripted=2/10/0.5"))
CAUTIOUS_AGENT = """\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata:
  name: Cautious
spec:
  instructions: Answer in one short sentence, carefully.
  run_config:
    max_tool_rounds: 10
    max_cost_usd: 1
    temperature: 0.3
"""


@pytest.fixture
def server(store_url: str, model: ScriptedModel) -> Iterator[ServerThread]:
    profile = RunConfig(max_tool_rounds=20, max_tokens=500)
    options = engine_options(model.base_url)
    with ServerThread(store_url, engine=options, prices=PRICES, run_profile=profile) as running:
        yield running


@pytest.fixture
def client(server: ServerThread) -> Iterator[Client]:
    with Client(server.address) as connected:
        yield connected


def _run_all(client: Client, agent: str, replies: list[Reply], model: ScriptedModel) -> None:
    for number, reply in enumerate(replies):
        model.add(reply)
        final = client.wait(client.run(agent, f"hello {number}").metadata.id, timeout=60)
        assert final.status.phase == COMPLETED, final.status.error


REPLIES = [
    Reply(content="Hi.", input_tokens=1000, cached_tokens=400, output_tokens=100),
    Reply(content="Hello.", input_tokens=3000, output_tokens=250, reasoning_tokens=50),
    Reply(content="Hey.", input_tokens=7, output_tokens=3),
]


def test_usage_json_totals_are_the_sums_the_model_reported(
    cli: Cli, client: Client, model: ScriptedModel
) -> None:
    client.apply(PLAIN_AGENT)
    client.apply(CAUTIOUS_AGENT)
    _run_all(client, "greeter", REPLIES, model)
    _run_all(
        client, "cautious", [Reply(content="Careful.", input_tokens=50, output_tokens=5)], model
    )

    result = cli("usage", "--agent", "greeter", "-o", "json")

    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    # Micro-dollars at $2/$10/$0.50 per million in/out/cached: 600*2 + 400*0.5 +
    # 100*10, 3000*2 + 250*10, 7*2 + 3*10.
    costs = [2400, 8500, 44]
    assert report["total"] == {
        "executions": 3,
        "model_calls": 3,
        "input_tokens": sum(r.input_tokens for r in REPLIES),
        "cached_tokens": 400,
        "output_tokens": sum(r.output_tokens for r in REPLIES),
        "reasoning_tokens": 50,
        "cost_micros": sum(costs),
    }
    today = datetime.now(UTC).date().isoformat()
    assert [day["key"] for day in report["days"]] == [today]

    by_agent = json.loads(cli("usage", "--by", "agent", "-o", "json").stdout)
    # By agent id, which sorts by creation: the greeter first.
    assert [group["model_calls"] for group in by_agent["groups"]] == [3, 1]
    assert by_agent["total"]["model_calls"] == 4
    by_model = json.loads(cli("usage", "--by", "model", "-o", "json").stdout)
    assert [(g["key"], g["model_calls"]) for g in by_model["groups"]] == [("scripted", 4)]
    session = client.list_executions()[0].status.session_id
    one = json.loads(cli("usage", "--session", session, "-o", "json").stdout)
    assert one["total"]["model_calls"] == 1
    future = json.loads(cli("usage", "--since", "2999-01-01", "-o", "json").stdout)
    assert future["total"]["model_calls"] == 0


def test_usage_prints_a_table_and_a_day_chart_in_a_terminal(
    cli: Cli, client: Client, model: ScriptedModel
) -> None:
    client.apply(PLAIN_AGENT)
    _run_all(client, "greeter", REPLIES[:2], model)

    with Terminal(cli, "usage", "--since", "7d") as terminal:
        assert terminal.exit_code() == 0, terminal.text
    lines = terminal.screen_lines
    assert any(line.split()[:3] == ["DAY", "EXECUTIONS", "CALLS"] for line in lines), lines
    (total,) = [line for line in lines if line.startswith("TOTAL")]
    assert total.split()[1:3] == ["2", "2"] and total.endswith("$0.010900")
    today = datetime.now(UTC).date().isoformat()
    assert "cost per day" in lines
    (bar,) = [line for line in lines if line.startswith(today) and "█" in line]
    assert bar.endswith("$0.010900")

    piped = cli("usage")
    assert piped.exit_code == 0
    assert "█" not in piped.stdout and "TOTAL" in piped.stdout


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["usage", "--by", "week"], "--by"),
        (["usage", "--since", "yesterday"], "--since"),
        (["usage", "-o", "yaml"], "--output"),
        (["run", "greeter", "hi", "--max-cost", "-1"], "--max-cost"),
        (["run", "greeter", "hi", "--max-tool-rounds", "0"], "--max-tool-rounds"),
        (["run", "greeter", "hi", "--temperature", "3"], "--temperature"),
        (["run", "greeter", "hi", "--max-tokens", "-5"], "--max-tokens"),
        (["run", "greeter", "hi", "--max-tool-result-chars", "x"], "--max-tool-result-chars"),
    ],
)
def test_bad_values_exit_2_naming_the_option(cli: Cli, arguments: list[str], named: str) -> None:
    result = cli(*arguments)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert named in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3


def test_run_settings_resolve_choices_from_the_most_specific_layer_and_limits_as_the_minimum(
    cli: Cli, client: Client, model: ScriptedModel
) -> None:
    client.apply(CAUTIOUS_AGENT)
    model.add(Reply(content="Careful."))

    result = cli(
        "run",
        "cautious",
        "hi",
        "--max-tool-rounds",
        "5",
        "--max-cost",
        "2",
        "--temperature",
        "0",
        "-o",
        "json",
    )

    assert result.exit_code == 0, result.stderr
    resolved = client.list_executions()[0].status.run_config
    # Rounds: min(20 server, 10 agent, 5 run); cost: min(1 agent, 2 run);
    # temperature: the run's 0 over the agent's 0.3; max_tokens: the server's.
    assert (resolved.max_tool_rounds, resolved.max_cost_usd) == (5, 1.0)
    assert resolved.HasField("temperature") and resolved.temperature == 0.0
    assert resolved.max_tokens == 500
    (request,) = model.requests
    assert (request["temperature"], request["max_tokens"]) == (0.0, 500)
