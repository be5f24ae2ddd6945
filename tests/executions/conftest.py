"""A server whose engine talks to a scripted model over real HTTP, and
agents whose tools come from the real test MCP server."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator

import pytest

from stigmer.api.v1 import execution_pb2
from stigmer.client import Client
from stigmer.engine.embedded import EngineOptions
from stigmer.resources.execution_events import TERMINAL_PHASES
from stigmer.runtime.contract import ModelSettings
from stigmer.testing.scripted_model import ScriptedModel
from stigmer.testing.server import ServerThread

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
        model=ModelSettings(provider="openai", model="scripted", base_url=base_url),
    )


@pytest.fixture
def server(store_url: str, model: ScriptedModel) -> Iterator[ServerThread]:
    with ServerThread(store_url, engine=engine_options(model.base_url)) as running:
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
