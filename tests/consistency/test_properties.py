"""Random sequences of applies, deletes, runs, cancels and racing duplicate
applies against a real server: every invariant holds after every step."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from stigmer.client import AsyncClient, Client
from stigmer.errors import NotFound
from stigmer.testing.scripted_model import Reply, ScriptedModel
from stigmer.testing.server import ServerThread
from tests.backends import engine_options
from tests.control_plane.manifests import agent

NAMES = ("Alpha", "Beta", "Gamma")
INSTRUCTIONS = ("Answer briefly and kindly.", "Answer in one precise sentence.")
STEPS_PER_RUN = 40
RUNS = 10
# At most 410 checks (each run checks after its setup and after each step);
# Hypothesis (derandomized) draws shorter runs too: 361 checks on each backend.
MIN_STEPS_CHECKED = 300


class StigmerMachine(RuleBasedStateMachine):
    """Drives one server; the model answers every request after a short pause
    so that some cancels and deletes land on running executions.

    Hypothesis makes the machines itself, so the server, the client and the
    count of checked steps live on the class: `machine_on` makes a subclass
    of its own per server, whose count starts at zero.
    """

    server: ClassVar[ServerThread]
    client: ClassVar[Client]
    steps_checked: ClassVar[int] = 0

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
        type(self).steps_checked += 1
        violations = [
            (v.code, v.message)
            for v in self.client.check().violations
            # An execution between its claim and its first event is fine;
            # the lease rule is covered by the engine's own tests.
            if v.code != "EXECUTION_WITHOUT_LEASE"
        ]
        assert violations == []


def machine_on(server: ServerThread, client: Client) -> type[StigmerMachine]:
    """A machine class for this server alone, with its own count of checked steps."""
    return type(
        "StigmerMachineOnItsServer",
        (StigmerMachine,),
        {"server": server, "client": client, "steps_checked": 0},
    )


@pytest.fixture
def machine(store_url: str) -> Iterator[type[StigmerMachine]]:
    """Per backend: a server of its own, and a machine whose count starts at zero."""
    with (
        ScriptedModel(default=Reply(content="ok", delay_seconds=0.02)) as model,
        ServerThread(store_url, engine=engine_options(model.base_url)) as server,
        Client(server.address) as client,
    ):
        yield machine_on(server, client)


@pytest.mark.slow
def test_invariants_hold_after_every_step_of_random_sequences(
    machine: type[StigmerMachine],
) -> None:
    assert machine.steps_checked == 0
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=RUNS,
            stateful_step_count=STEPS_PER_RUN,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        ),
    )
    # Counted on this backend's machine only: a run that checked no step (or
    # too few to mean anything) fails here instead of passing unnoticed.
    assert machine.steps_checked >= MIN_STEPS_CHECKED, machine.steps_checked
