"""The console's pages and forms over plain HTTP, against a real server that
runs agents with the scripted model: what a person (or curl) gets without
JavaScript."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from pathlib import Path

import pytest

from stigmer.client import Client
from stigmer.console.app import NOTICE_COOKIE, TOKEN_COOKIE, ConsoleOptions
from stigmer.console.serving import ConsoleServer
from stigmer.errors import FailedPrecondition
from stigmer.resources.execution_events import COMPLETED
from stigmer.resources.prices import PriceTable, parse_prices
from stigmer.testing.scripted_model import Reply, ScriptedModel, ToolCallStep
from stigmer.testing.server import ServerThread
from tests.agents import PLAIN_AGENT, stdio_tools_agent
from tests.backends import engine_options
from tests.console.conftest import fetch
from tests.waiting import wait_for_end


def _completed_tool_run(client: Client, model: ScriptedModel) -> str:
    client.apply(stdio_tools_agent())
    model.add(
        Reply(tool_calls=(ToolCallStep("add", {"a": 2, "b": 3}),), input_tokens=11),
        Reply(content="2 + 3 = 5", output_tokens=4),
    )
    started = client.run("calculator", "What is 2 + 3?")
    final = wait_for_end(client, started.metadata.id)
    assert final.status.phase == COMPLETED, final.status.error
    return str(started.metadata.id)


def _notice(answer_headers: dict[str, str]) -> str:
    cookie: SimpleCookie = SimpleCookie()
    cookie.load(answer_headers.get("set-cookie", answer_headers.get("Set-Cookie", "")))
    return cookie[NOTICE_COOKIE].value if NOTICE_COOKIE in cookie else ""


def test_every_page_renders_what_it_is_about_without_javascript(
    console: ConsoleServer, client: Client, model: ScriptedModel
) -> None:
    execution_id = _completed_tool_run(client, model)

    home = fetch(console.url)
    agents = fetch(console.url + "agents")
    agent = fetch(console.url + "agents/calculator")
    executions = fetch(console.url + "executions?phase=completed&agent=calculator")
    execution = fetch(console.url + f"executions/{execution_id}")
    usage = fetch(console.url + "usage")

    assert home.status == 200 and "Running now" in home.body and "Consistency checker" in home.body
    assert agents.status == 200 and 'href="/agents/calculator"' in agents.body
    assert agent.status == 200
    assert "kind: Agent" in agent.body and "stigmer.testing.mcp_server" in agent.body
    assert executions.status == 200 and f"/executions/{execution_id}" in executions.body
    assert execution.status == 200
    assert "2 + 3 = 5" in execution.body  # the final answer
    assert 'id="tool-call-' in execution.body and "&#34;a&#34;: 2" in execution.body
    assert "COMPLETED" in execution.body and "21 in, 9 out" in execution.body
    assert "model call 1" in execution.body and "tools add" in execution.body  # the timeline
    assert usage.status == 200 and "Calculator" in usage.body
    assert "30 (21 in, 9 out, 0 cached)" in usage.body
    for answer in (home, agents, agent, executions, execution, usage):
        assert answer.headers["content-type"].startswith("text/html")
        assert "<script" not in answer.body or 'src="/static/console.js"' in answer.body
        assert "http://" not in answer.body.replace(console.url, "")  # no external assets


def test_an_unknown_phase_is_400_naming_the_field(console: ConsoleServer) -> None:
    answer = fetch(console.url + "executions?phase=sleeping")

    assert answer.status == 400
    assert "phase: unknown phase" in answer.body


# Dollars per million tokens in/out/cached for the scripted model.
PRICES = PriceTable.with_overrides(parse_prices("scripted=2/10/0.5"))


@pytest.fixture
def priced_console(store_url: str, model: ScriptedModel) -> Iterator[tuple[Client, ConsoleServer]]:
    with ServerThread(store_url, engine=engine_options(model.base_url), prices=PRICES) as server:
        web_console = ConsoleServer(ConsoleOptions(server.address))
        server.run(web_console.start())
        try:
            with Client(server.address) as client:
                yield client, web_console
        finally:
            server.run(web_console.stop())


def _totals(body: str) -> dict[str, str]:
    return dict(re.findall(r'<dd id="usage-([a-z]+)">([^<]*)</dd>', body))


def test_usage_shows_the_exact_cost_and_tokens_the_server_priced(
    priced_console: tuple[Client, ConsoleServer], model: ScriptedModel
) -> None:
    client, console = priced_console
    client.apply(PLAIN_AGENT)
    client.apply(stdio_tools_agent())
    model.add(Reply(content="Hi.", input_tokens=1000, cached_tokens=400, output_tokens=100))
    greeted = wait_for_end(client, client.run("greeter", "hello").metadata.id)
    model.add(Reply(content="Hello.", input_tokens=3000, output_tokens=250))
    added = wait_for_end(client, client.run("calculator", "hello").metadata.id)
    assert greeted.status.phase == added.status.phase == COMPLETED

    answer = fetch(console.url + "usage?since=7d")
    greeter_only = fetch(console.url + "usage?agent=greeter")
    future = fetch(console.url + "usage?since=2999-01-01")

    # Micro-dollars: 600*2 + 400*0.5 + 100*10 = 2400, and 3000*2 + 250*10 = 8500.
    assert answer.status == 200
    assert _totals(answer.body) == {
        "cost": "$0.010900",
        "input": "4000",
        "output": "350",
        "cached": "400",
        "calls": "2",
        "executions": "2",
    }
    today = datetime.now(UTC).date().isoformat()
    by_day, by_agent = answer.body.split('id="by-agent-caption"')
    assert f'<th scope="row">{today}</th>' in by_day
    assert "4350 (4000 in, 350 out, 400 cached)" in by_day and "$0.010900" in by_day
    assert "1100 (1000 in, 100 out, 400 cached)" in by_agent and "$0.002400" in by_agent
    assert "3250 (3000 in, 250 out, 0 cached)" in by_agent and "$0.008500" in by_agent
    assert '<th scope="row">Greeter</th>' in by_agent
    assert '<th scope="row">Calculator</th>' in by_agent
    # The largest bar is full width and the other is to scale (2400 / 8500).
    assert 'style="width: 100.0%"' in by_agent and 'style="width: 28.24%"' in by_agent
    assert greeter_only.status == 200
    assert _totals(greeter_only.body)["cost"] == "$0.002400"
    assert _totals(greeter_only.body)["calls"] == "1"
    assert "Calculator</th>" not in greeter_only.body.split('id="by-agent-caption"')[1]
    assert future.status == 200 and _totals(future.body)["calls"] == "0"
    assert "No model calls in this span." in future.body


@pytest.mark.parametrize(
    ("query", "named"),
    [("since=yesterday", "since: "), ("since=7y", "since: "), ("agent=%21%21%21", "agent: ")],
)
def test_bad_usage_filters_are_400_naming_the_field(
    console: ConsoleServer, query: str, named: str
) -> None:
    answer = fetch(console.url + "usage?" + query)

    assert answer.status == 400
    assert named in answer.body


def test_usage_of_an_unknown_agent_is_404(console: ConsoleServer) -> None:
    assert fetch(console.url + "usage?agent=nobody").status == 404


def test_an_unknown_execution_or_agent_is_404(console: ConsoleServer) -> None:
    assert fetch(console.url + "executions/aex-00000000000000000000000000").status == 404
    assert fetch(console.url + "agents/nobody").status == 404
    assert fetch(console.url + "executions/aex-00000000000000000000000000/events").status == 404


def test_the_event_stream_of_an_ended_execution_resumes_after_last_event_id(
    console: ConsoleServer, client: Client, model: ScriptedModel
) -> None:
    execution_id = _completed_tool_run(client, model)
    last = client.get_execution(execution_id).status.last_sequence
    url = console.url + f"executions/{execution_id}/events"

    from_start = fetch(url)
    caught_up = fetch(url, headers={"Last-Event-ID": str(last)})
    behind = fetch(url + f"?after={last - 1}")

    assert from_start.headers["content-type"].startswith("text/event-stream")
    assert f"event: ops\nid: {last}\n" in from_start.body
    assert "2 + 3 = 5" in from_start.body
    assert from_start.body.rstrip().endswith('event: end\ndata: {"phase":3}')
    assert "event: ops" not in caught_up.body  # nothing it has not shown
    assert "event: end" in caught_up.body
    assert f"event: ops\nid: {last}\n" in behind.body


def test_the_run_form_starts_an_execution_and_goes_to_its_page(
    console: ConsoleServer, client: Client, model: ScriptedModel
) -> None:
    client.apply(PLAIN_AGENT)
    model.add(Reply(content="Hello from the console!"))

    answer = fetch(console.url + "agents/greeter/run", data={"message": "hi", "session": ""})

    assert answer.status == 303
    location = answer.headers["location"]
    assert re.fullmatch(r"/executions/aex-[0-9a-z]{26}", location)
    final = wait_for_end(client, location.rsplit("/", 1)[1])
    assert final.status.messages[-1].content == "Hello from the console!"
    empty = fetch(console.url + "agents/greeter/run", data={"message": "  "})
    assert empty.status == 303 and "message:" in _notice(empty.headers)


def test_a_post_from_another_site_is_refused(
    console: ConsoleServer, client: Client, model: ScriptedModel
) -> None:
    client.apply(PLAIN_AGENT)

    answer = fetch(
        console.url + "agents/greeter/run",
        data={"message": "hi"},
        headers={"Origin": "http://evil.example"},
    )

    assert answer.status == 403
    assert client.list_executions() == []
    assert model.requests == []


def test_decisions_with_bad_input_name_the_field_and_send_nothing(
    console: ConsoleServer, client: Client, model: ScriptedModel
) -> None:
    execution_id = _completed_tool_run(client, model)
    url = console.url + f"executions/{execution_id}/approvals/call_1"

    unknown = fetch(url, data={"action": "maybe"})
    not_json = fetch(url, data={"action": "edit", "edited_args": "{nope"})
    not_object = fetch(url, data={"action": "edit", "edited_args": "[1]"})

    assert unknown.status == 303 and "action: must be one of" in _notice(unknown.headers)
    assert "edited_args: not JSON" in _notice(not_json.headers)
    assert "edited_args: must be a JSON object" in _notice(not_object.headers)


def test_a_lifecycle_button_shows_the_server_answer_as_a_notice(
    console: ConsoleServer, client: Client, model: ScriptedModel
) -> None:
    execution_id = _completed_tool_run(client, model)

    answer = fetch(console.url + f"executions/{execution_id}/pause", data={})
    page = fetch(
        console.url + f"executions/{execution_id}",
        headers={"Cookie": f'{NOTICE_COOKIE}="{_notice(answer.headers)}"'},
    )

    assert answer.status == 303
    notice = _notice(answer.headers)
    # An ended execution cannot pause: until Pause is served it is UNIMPLEMENTED.
    assert notice.startswith("pause: ")
    assert "UNIMPLEMENTED" in notice or "COMPLETED" in notice or "ended" in notice, notice
    assert 'class="notice"' in page.body


def test_with_auth_the_console_asks_for_a_token_and_uses_it(
    tmp_path: Path, model: ScriptedModel
) -> None:
    admin_token = tmp_path / "admin.token"
    with ServerThread(
        str(tmp_path / "auth.db"), auth="token", admin_token_path=admin_token
    ) as server:
        web_console = ConsoleServer(ConsoleOptions(server.address))
        server.run(web_console.start())
        try:
            secret = admin_token.read_text().strip()
            signed_out = fetch(web_console.url + "agents")
            wrong = fetch(web_console.url + "login", data={"token": "stg_wrong", "next": "/"})
            right = fetch(web_console.url + "login", data={"token": secret, "next": "/agents"})
            cookie: SimpleCookie = SimpleCookie()
            cookie.load(right.headers["set-cookie"])
            signed_in = fetch(
                web_console.url + "agents",
                headers={"Cookie": f"{TOKEN_COOKIE}={cookie[TOKEN_COOKIE].value}"},
            )
            away = fetch(web_console.url + "login", data={"token": secret, "next": "//evil"})
        finally:
            server.run(web_console.stop())

    assert signed_out.status == 303 and signed_out.headers["location"] == "/login?next=/agents"
    assert wrong.status == 401 and "does not accept this token" in wrong.body
    assert right.status == 303 and right.headers["location"] == "/agents"
    assert "HttpOnly" in right.headers["set-cookie"]
    assert "SameSite=strict" in right.headers["set-cookie"]
    assert signed_in.status == 200 and "Agents" in signed_in.body
    assert secret not in signed_in.body
    assert away.headers["location"] == "/"


def test_a_taken_port_is_a_failed_precondition_naming_the_setting(
    server: ServerThread, console: ConsoleServer
) -> None:
    second = ConsoleServer(ConsoleOptions(server.address), port=console.port)

    try:
        server.run(second.start())
    except FailedPrecondition as error:
        assert "console-port" in error.message
        assert error.facts["field"] == "console-port"
    else:
        server.run(second.stop())
        raise AssertionError("a second console bound a taken port")
