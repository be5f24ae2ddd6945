"""A server whose engine talks to a scripted model over real HTTP, and
agents whose tools come from the real test MCP server."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator

import pytest

from stigmer.api.v1 import execution_pb2
from stigmer.client import Client
from stigmer.engine.options import EngineOptions
from stigmer.engine.temporal_dev_server import TemporalDevServer
from stigmer.engine.temporal_engine import TemporalOptions
from stigmer.resources.execution_events import TERMINAL_PHASES
from stigmer.runtime.contract import ModelSettings
from stigmer.testing.scripted_model import ScriptedModel
from stigmer.testing.server import ServerThread
from stigmer.testing.worker import WorkerThread

LEASE_SECONDS = 3.0
DEADLINE_SECONDS = 30.0


@pytest.fixture
def model() -> Iterator[ScriptedModel]:
    with ScriptedModel() as scripted:
        yield scripted


def engine_options(base_url: str, *, workers: int = 4) -> EngineOptions:
    return EngineOptions(
        workers=workers,
        lease_seconds=LEASE_SECONDS,
        poll_seconds=0.2,
        model=model_settings(base_url),
    )


ENGINES = ("embedded", "temporal")
# Short, so that a lost Temporal worker is noticed within seconds.
HEARTBEAT_SECONDS = 2.0


def model_settings(base_url: str) -> ModelSettings:
    return ModelSettings(provider="openai", model="scripted", base_url=base_url)


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Each test that takes the `server` runs on both engines, as
    `[embedded]` and `[temporal]`: what a user sees must not depend on it."""
    chosen: str = request.param
    return chosen


@pytest.fixture
def server(
    store_url: str, model: ScriptedModel, engine: str, request: pytest.FixtureRequest
) -> Iterator[ServerThread]:
    """The server on the test's engine; on Temporal, with one worker (on a
    thread of the test process) for its activities."""
    options = engine_options(model.base_url)
    if engine == "embedded":
        with ServerThread(store_url, engine=options) as running:
            yield running
        return
    temporal_server: TemporalDevServer = request.getfixturevalue("temporal_server")
    queue: str = request.getfixturevalue("task_queue")
    temporal = TemporalOptions(
        address=temporal_server.address, task_queue=queue, heartbeat_seconds=HEARTBEAT_SECONDS
    )
    with (
        ServerThread(store_url, engine=options, temporal=temporal) as running,
        WorkerThread(
            running.address,
            temporal_server.address,
            model_settings(model.base_url),
            task_queue=queue,
        ),
    ):
        yield running


def stdio_tools_agent(name: str = "Calculator", env: dict[str, str] | None = None) -> str:
    env_lines = "".join(f"\n          {key}: {value}" for key, value in (env or {}).items())
    env_block = f"\n        env:{env_lines}" if env else ""
    return f"""\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata:
  name: {name}
spec:
  instructions: You add numbers with the add tool and answer with the sum.
  mcp_servers:
    - name: calc
      stdio:
        command: {sys.executable}
        args: ["-m", "stigmer.testing.mcp_server"]{env_block}
"""


PLAIN_AGENT = """\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata:
  name: Greeter
spec:
  instructions: Greet the user in one short sentence.
"""


def wait_until(
    condition: Callable[[], bool], *, deadline: float = DEADLINE_SECONDS, what: str = ""
) -> None:
    """Polls until the condition holds (no sleeps to wait for things: a deadline)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {deadline}s waiting for {what or condition}")


def wait_for_end(client: Client, execution_id: str) -> execution_pb2.AgentExecution:
    found: list[execution_pb2.AgentExecution] = []

    def has_ended() -> bool:
        found[:] = [client.get_execution(execution_id)]
        return found[0].status.phase in TERMINAL_PHASES

    wait_until(has_ended, what=f"execution {execution_id} to end")
    return found[0]
