"""Consistency tests run servers whose engine talks to the scripted model."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from stigmer.testing.scripted_model import ScriptedModel
from stigmer.testing.server import ServerThread
from tests.backends import engine_options

# The engine's lease reaper ends every execution that runs without a lease,
# once per lease period. A test that seeds EXECUTION_WITHOUT_LEASE for
# `stigmer check` / `stigmer repair` to find would race it (and lose on a
# slow machine or a slower store), so the reaper must not run during a test.
# The reaper has its own tests in tests/executions.
LEASE_SECONDS_LONGER_THAN_ANY_TEST = 600.0


@pytest.fixture
def server(store_url: str, model: ScriptedModel) -> Iterator[ServerThread]:
    options = dataclasses.replace(
        engine_options(model.base_url), lease_seconds=LEASE_SECONDS_LONGER_THAN_ANY_TEST
    )
    with ServerThread(store_url, engine=options) as running:
        yield running
