"""Random sequences of applies, deletes, runs, cancels and racing duplicate
applies against a real server: every invariant holds after every step."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from stigmer.client import AsyncClient, Client
from stigmer.errors import NotFound
from stigmer.testing.scripted_model import Reply, ScriptedModel
from stigmer.testing.server import ServerThread
from tests.control_plane.manifests import agent
from tests.executions.conftest import engine_options

NAMES = ("Alpha", "Beta", "Gamma")
INSTRUCTIONS = ("Answer briefly and kindly.", "Answer in one precise sentence.")
STEPS_PER_RUN = 40
RUNS = 10


class StigmerMachine(RuleBasedStateMachine):
    """Drives one server; the model answers every request after a short pause
    so that some cancels and deletes land on running executions."""

    server: ServerThread
    client: Client
    steps_checked = 0

    def __init__(self) -> None:
        super().__init__()
        self.executions: list[str] = []

    @initialize()
    def clean_slate(self) -> None:
        for item in self.client.list("agent"):
            self.client.delete("agent", item.metadata.id)

    @rule(name=st.sampled_from(NAMES), instructions=st.sampled_from(INSTRUCTIONS))
    def apply_agent(self, name: str, instructions: str) -> None:
        (result,) = self.client.apply(agent(name, instructions))
        assert result.outcome in ("created", "configured", "unchanged")

    @rule(name=st.sampled_from(NAMES))
    def racing_duplicate_applies(self, name: str) -> None:
        async def race() -> list[str]:
            async def apply_once() -> str:
                async with AsyncClient(self.server.address) as own:
                    (result,) = await own.apply(agent(name))
                    return result.outcome

            return list(await asyncio.gather(*(apply_once() for _ in range(4))))

        outcomes = asyncio.run(race())
        assert outcomes.count("created") <= 1

    @rule(name=st.sampled_from(NAMES))
    def delete_agent(self, name: str) -> None:
        with contextlib.suppress(NotFound):
            self.client.delete("agent", name)

    @rule(name=st.sampled_from(NAMES))
    def run_agent(self, name: str) -> None:
        with contextlib.suppress(NotFound):
            self.executions.append(self.client.run(name, "hello").metadata.id)

    @rule(data=st.data())
    def cancel_an_execution(self, data: st.DataObject) -> None:
        if not self.executions:
            return
        execution_id = data.draw(st.sampled_from(self.executions))
        with contextlib.suppress(NotFound):  # deleted with its agent
            self.client.cancel(execution_id)

    @invariant()
    def store_is_consistent(self) -> None:
        StigmerMachine.steps_checked += 1
        violations = [
            (v.code, v.message)
            for v in self.client.check().violations
            # An execution between its claim and its first event is fine;
            # the lease rule is covered by the engine's own tests.
            if v.code != "EXECUTION_WITHOUT_LEASE"
        ]
        assert violations == []


@pytest.fixture
def machine_server(store_url: str) -> Iterator[tuple[ServerThread, Client]]:
    with (
        ScriptedModel(default=Reply(content="ok", delay_seconds=0.02)) as model,
        ServerThread(store_url, engine=engine_options(model.base_url)) as server,
        Client(server.address) as client,
    ):
        yield server, client


@pytest.mark.slow
def test_invariants_hold_after_every_step_of_random_sequences(
    machine_server: tuple[ServerThread, Client],
) -> None:
    server, client = machine_server
    StigmerMachine.server = server
    StigmerMachine.client = client
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(
        StigmerMachine,
        settings=settings(
            max_examples=RUNS,
            stateful_step_count=STEPS_PER_RUN,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        ),
    )
    assert StigmerMachine.steps_checked >= 300, StigmerMachine.steps_checked
