"""The console in a real browser (Debian's chromium, driven by Playwright)
against a real server running agents with the scripted model: pages that
follow an execution live, survive a reload, show manifests, take decisions,
and pass axe-core's accessibility rules. Every test fails on a console
error in the page (the `page` fixture) and keeps screenshots."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import Any

import grpc
import pytest
from playwright.sync_api import Page, expect

from stigmer.api.v1 import execution_pb2, execution_pb2_grpc
from stigmer.client import Client
from stigmer.console.serving import ConsoleServer
from stigmer.resources.execution_events import COMPLETED
from stigmer.testing.scripted_model import Reply, ScriptedModel, ToolCallStep
from tests.agents import stdio_tools_agent
from tests.console.conftest import CHROMIUM_ARGS, Screenshots
from tests.waiting import WAIT_SECONDS, wait_for_end, wait_until

pytestmark = pytest.mark.slow
WAIT_MS = WAIT_SECONDS * 1000
AXE = Path(__file__).parent / "axe.min.js"


class GatedModel:
    """Scripted replies in order, where a reply may wait for the test to open
    its gate: the test decides when the model answers, without sleeping."""

    def __init__(self, model: ScriptedModel, replies: list[Reply | threading.Event]) -> None:
        self.model = model
        self._steps = list(replies)
        self._lock = threading.Lock()
        self.gates: list[threading.Event] = [s for s in replies if isinstance(s, threading.Event)]
        model.reply_with(self._respond)

    def _respond(self, _: Any) -> Reply:
        while True:
            with self._lock:
                step = self._steps.pop(0)
            if isinstance(step, Reply):
                return step
            if not step.wait(WAIT_SECONDS):
                return Reply(status=500, content="the test never opened the gate")

    def open_all(self) -> None:
        for gate in self.gates:
            gate.set()


@pytest.fixture
def client(browser_client: Client) -> Client:
    return browser_client


def _shown_messages(page: Page) -> list[str]:
    contents: list[str] = page.locator("#conversation .message-content").all_inner_texts()
    return contents


def test_a_page_opened_before_the_run_starts_shows_its_tool_call_and_answer_live(
    console: ConsoleServer,
    client: Client,
    model: ScriptedModel,
    page: Page,
    screenshots: Screenshots,
) -> None:
    client.apply(stdio_tools_agent())
    holding = threading.Event()
    gated = GatedModel(
        model,
        [
            holding,
            Reply(content="held"),
            Reply(tool_calls=(ToolCallStep("add", {"a": 2, "b": 3}),)),
            Reply(content="The sum of 2 and 3 is 5."),
        ],
    )
    try:
        first = client.run("calculator", "Hold the session")
        wait_until(lambda: len(model.requests) == 1, what="the first run to call the model")
        # Queued behind the first run of its session: it has not started.
        queued = client.run("calculator", "What is 2 + 3?", session=first.spec.session_id)
        page.goto(console.url + f"executions/{queued.metadata.id}")
        expect(page.locator("#execution-phase")).to_have_text("PENDING")
        expect(page.locator("body")).to_have_attribute("data-live", "open", timeout=WAIT_MS)
        screenshots.take(page, "execution-before-start")

        holding.set()

        expect(page.locator("#final-answer")).to_contain_text(
            "The sum of 2 and 3 is 5.", timeout=WAIT_MS
        )
    finally:
        gated.open_all()
    expect(page.locator("#execution-phase")).to_have_text("COMPLETED")
    call = page.locator("#conversation .tool-call")
    expect(call).to_have_count(1)
    expect(call).to_contain_text("add")
    expect(call.locator(".tool-result")).to_have_text("5")
    final = wait_for_end(client, queued.metadata.id)
    assert final.status.phase == COMPLETED
    assert _shown_messages(page) == [m.content for m in final.status.messages]
    screenshots.take(page, "execution-completed-live")


def test_a_reload_in_the_middle_of_a_run_loses_nothing_and_repeats_nothing(
    console: ConsoleServer,
    client: Client,
    model: ScriptedModel,
    page: Page,
    screenshots: Screenshots,
) -> None:
    client.apply(stdio_tools_agent())
    answering = threading.Event()
    gated = GatedModel(
        model,
        [
            Reply(tool_calls=(ToolCallStep("add", {"a": 40, "b": 2}),)),
            answering,
            Reply(content="Forty plus two makes 42, as the add tool says."),
        ],
    )
    try:
        started = client.run("calculator", "What is 40 + 2?")
        page.goto(console.url + f"executions/{started.metadata.id}")
        expect(page.locator("#conversation .tool-call .tool-result")).to_have_text(
            "42", timeout=WAIT_MS
        )
        wait_until(lambda: len(model.requests) == 2, what="the model call after the tool")

        page.reload()

        recorded = client.get_execution(started.metadata.id)
        assert recorded.status.phase == execution_pb2.EXECUTION_PHASE_IN_PROGRESS
        assert _shown_messages(page) == [m.content for m in recorded.status.messages]
        expect(page.locator("#conversation .tool-call")).to_have_count(1)
        expect(page.locator("body")).to_have_attribute("data-live", "open", timeout=WAIT_MS)
        screenshots.take(page, "execution-reloaded-mid-run")

        answering.set()

        expect(page.locator("#execution-phase")).to_have_text("COMPLETED", timeout=WAIT_MS)
    finally:
        gated.open_all()
    final = wait_for_end(client, started.metadata.id)
    assert _shown_messages(page) == [m.content for m in final.status.messages]
    assert _shown_messages(page)[-1] == "Forty plus two makes 42, as the add tool says."
    expect(page.locator("#conversation .tool-call")).to_have_count(1)
    expect(page.locator("#execution-tokens")).to_have_text(
        f"{final.status.usage.input_tokens} in, {final.status.usage.output_tokens} out"
    )


def test_the_agents_page_shows_the_applied_manifest_and_runs_the_agent(
    console: ConsoleServer,
    client: Client,
    model: ScriptedModel,
    page: Page,
    screenshots: Screenshots,
) -> None:
    client.apply(stdio_tools_agent())
    model.add(Reply(content="Nothing to add."))

    page.goto(console.url + "agents")
    screenshots.take(page, "agents")
    page.get_by_role("link", name="Calculator").click()

    manifest = page.locator("#manifest")
    expect(manifest).to_contain_text("kind: Agent")
    expect(manifest).to_contain_text("name: Calculator")
    expect(manifest).to_contain_text("instructions: You add numbers with the add tool")
    expect(manifest).to_contain_text("stigmer.testing.mcp_server")
    screenshots.take(page, "agent")
    page.get_by_label("Message").fill("Anything to add?")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#final-answer")).to_contain_text("Nothing to add.", timeout=WAIT_MS)
    assert page.url.startswith(console.url + "executions/aex-")


def test_the_executions_list_shows_a_new_execution_live(
    console: ConsoleServer,
    client: Client,
    model: ScriptedModel,
    page: Page,
    screenshots: Screenshots,
) -> None:
    client.apply(stdio_tools_agent())
    model.add(Reply(content="Done."))
    page.goto(console.url + "executions")
    expect(page.locator("body")).to_have_attribute("data-live", "open", timeout=WAIT_MS)

    started = client.run("calculator", "Count nothing")

    row = page.locator(f"#execution-row-{started.metadata.id}")
    expect(row).to_contain_text("COMPLETED", timeout=WAIT_MS)
    expect(row).to_contain_text("Calculator")
    screenshots.take(page, "executions")


def _is_approval_served(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        stub = execution_pb2_grpc.AgentExecutionCommandControllerStub(channel)
        probe = execution_pb2.SubmitApprovalRequest(
            execution_id="aex-00000000000000000000000000",
            tool_call_id="call_0",
            action=execution_pb2.APPROVAL_ACTION_APPROVE,
        )
        try:
            stub.SubmitApproval(probe, timeout=10)
        except grpc.RpcError as error:
            return bool(error.code() != grpc.StatusCode.UNIMPLEMENTED)
    return True


def test_pressing_approve_on_a_pending_call_completes_the_execution(
    console: ConsoleServer,
    client: Client,
    model: ScriptedModel,
    page: Page,
    screenshots: Screenshots,
) -> None:
    if not _is_approval_served(console.options.server_address):
        pytest.skip("this server answers UNIMPLEMENTED for SubmitApproval")
    asking = stdio_tools_agent().replace(
        "  mcp_servers:", "  tool_policy:\n    ask: [calc/add]\n  mcp_servers:"
    )
    client.apply(asking)
    model.add(
        Reply(tool_calls=(ToolCallStep("add", {"a": 1, "b": 1}),)),
        Reply(content="1 + 1 = 2, approved."),
    )
    started = client.run("calculator", "What is 1 + 1?")
    page.goto(console.url + f"executions/{started.metadata.id}")

    approval = page.locator("#execution-approvals form")
    expect(approval).to_contain_text("add", timeout=WAIT_MS)
    expect(page.locator("#execution-phase")).to_have_text("WAITING_FOR_APPROVAL")
    screenshots.take(page, "execution-waiting-for-approval")
    approval.get_by_role("button", name="Approve", exact=True).click()

    expect(page.locator("#final-answer")).to_contain_text("1 + 1 = 2, approved.", timeout=WAIT_MS)
    expect(page.locator("#execution-phase")).to_have_text("COMPLETED")
    expect(page.locator("#conversation .tool-call .tool-result")).to_have_text("2")
    screenshots.take(page, "execution-approved")


def _axe_violations(page: Page) -> list[dict[str, Any]]:
    page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = page.evaluate(
        """() => axe.run(document).then(result => result.violations.map(v => ({
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map(n => n.target.join(" "))})))"""
    )
    return found


def test_every_page_passes_the_axe_accessibility_rules(
    console: ConsoleServer,
    client: Client,
    model: ScriptedModel,
    page: Page,
    screenshots: Screenshots,
) -> None:
    client.apply(stdio_tools_agent())
    model.add(
        Reply(tool_calls=(ToolCallStep("add", {"a": 2, "b": 3}),)), Reply(content="2 + 3 = 5")
    )
    started = client.run("calculator", "What is 2 + 3?")
    wait_for_end(client, started.metadata.id)
    pages = {
        "overview": "",
        "agents-list": "agents",
        "agent-calculator": "agents/calculator",
        "executions-list": "executions",
        "execution-completed": f"executions/{started.metadata.id}",
        "usage": "usage",
        "login": "login",
    }
    violations = {}
    for name, path in pages.items():
        page.goto(console.url + path)
        screenshots.take(page, name)
        found = _axe_violations(page)
        if found:
            violations[name] = found

    assert violations == {}, json.dumps(violations, indent=2)


def test_chromium_dump_dom_of_a_completed_execution_shows_its_final_answer(
    console: ConsoleServer, client: Client, model: ScriptedModel, tmp_path: Path
) -> None:
    client.apply(stdio_tools_agent())
    model.add(
        Reply(tool_calls=(ToolCallStep("add", {"a": 3, "b": 4}),)),
        Reply(content="3 + 4 = 7, said the tool."),
    )
    started = client.run("calculator", "What is 3 + 4?")
    assert wait_for_end(client, started.metadata.id).status.phase == COMPLETED

    dumped = subprocess.run(
        [
            "chromium",
            "--headless",
            *CHROMIUM_ARGS,
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            console.url + f"executions/{started.metadata.id}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert dumped.returncode == 0, dumped.stderr
    assert '<div class="final-answer" id="final-answer">' in dumped.stdout
    assert "3 + 4 = 7, said the tool." in dumped.stdout
    assert "COMPLETED" in dumped.stdout
