"""Crash at every step: for every write pipeline and every step in it (and
around the store's commit), a server started with that crash point gets the
request and dies on the spot; a clean server on the same store then finds
no broken invariant, the retried request succeeds, and nothing committed is
lost.

The cells come from the pipelines' own step lists, so a new step is covered
automatically and a new pipeline fails `test_every_pipeline_has_a_scenario`
until it has one.

SQLite runs every cell. PostgreSQL runs a representative subset: the two
store commit cells and each pipeline's last step (every write of the request
staged, none committed), about a fifth of the matrix. The steps before the
last only run domain code that is the same on both stores, and the full
matrix on both would take minutes more for no new kind of crash.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stigmer.client import Client
from stigmer.errors import AlreadyExists, NotFound, StigmerError
from stigmer.faults import CRASH_EXIT_CODE
from stigmer.testing.scripted_model import Reply, ScriptedModel
from stigmer.testing.server import ServerProcess, ServerThread
from tests.backends import engine_options
from tests.consistency.crash_scenarios import (
    SCENARIOS,
    Scenario,
    pipelines_and_last_steps,
    pipelines_and_steps,
)

STORE_CELLS = [("store", "before-commit"), ("store", "after-commit")]
CELLS = [*pipelines_and_steps(), *STORE_CELLS]
POSTGRES_CELLS = [*pipelines_and_last_steps(), *STORE_CELLS]
CELLS_ON_STORES = [
    pytest.param(pipeline, step, backend, id=f"{pipeline}/{step}-{backend}")
    for backend, cells in (("sqlite", CELLS), ("postgres", POSTGRES_CELLS))
    for pipeline, step in cells
]
LEASE_SECONDS = 2


def test_every_pipeline_has_a_scenario() -> None:
    missing = sorted({pipeline for pipeline, _ in CELLS} - set(SCENARIOS))
    assert missing == []
    assert len(CELLS) > 100
    assert set(POSTGRES_CELLS) <= set(CELLS)
    assert {pipeline for pipeline, _ in POSTGRES_CELLS} == set(SCENARIOS)


@pytest.fixture(scope="module")
def model() -> Iterator[ScriptedModel]:
    with ScriptedModel() as scripted:
        yield scripted


def answer_for(scenario: Scenario, request: dict[str, Any]) -> Reply:
    if scenario.responder is not None:
        return scenario.responder(request)
    return Reply(content="ok", delay_seconds=30 if scenario.is_model_slow else 0)


@pytest.mark.slow
@pytest.mark.parametrize(("pipeline", "step", "store_url"), CELLS_ON_STORES, indirect=["store_url"])
def test_crash_leaves_a_consistent_store_and_the_retry_succeeds(
    tmp_path: Path, model: ScriptedModel, pipeline: str, step: str, store_url: str
) -> None:
    scenario = SCENARIOS[pipeline]
    model.reply_with(lambda request: answer_for(scenario, request))
    options = engine_options(model.base_url)
    with ServerThread(store_url, engine=options) as setup, Client(setup.address) as client:
        scenario.setup(client)
        committed = {e.metadata.id for e in client.list_executions()}
        agents = {a.metadata.id for a in client.list("agent")}

    crashing = ServerProcess(
        tmp_path / "home",
        store_url,
        {
            "CRASH_AT": f"{pipeline}/{step}",
            "LLM_PROVIDER": "openai",
            "LLM_MODEL": "scripted",
            "LLM_BASE_URL": model.base_url,
            "LEASE_SECONDS": str(LEASE_SECONDS),
            "CHECK_INTERVAL": "0",
        },
    )
    with crashing:
        with Client(crashing.address, timeout=10) as client, contextlib.suppress(StigmerError):
            # The server may die under the call.
            if scenario.store_request is not None:
                scenario.store_request(client, store_url)
            else:
                scenario.request(client)
        exit_code = crashing.wait(timeout=30)
    assert exit_code == CRASH_EXIT_CODE, crashing.log.read_text()[-2000:]

    responder = scenario.responder
    model.reply_with(responder if responder is not None else lambda _: Reply(content="ok"))
    with ServerThread(store_url, engine=options) as clean, Client(clean.address) as client:
        # Nothing committed before the crash is lost.
        assert committed <= {e.metadata.id for e in client.list_executions()}
        if pipeline != "agent.delete":
            assert agents <= {a.metadata.id for a in client.list("agent")}
        violations = [v.code for v in client.check().violations]
        assert violations == [], violations
        if not scenario.is_asynchronous:
            retry_or_resume(scenario, client)
        scenario.verify(client)
        assert [v.code for v in client.check().violations] == []


def retry_or_resume(scenario: Scenario, client: Client) -> None:
    """Retries the request; a request that did commit before the crash (a
    crash after the commit) may answer that its work is already done."""
    with contextlib.suppress(AlreadyExists, NotFound):
        scenario.request(client)
