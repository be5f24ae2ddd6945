"""`stigmer worker` reaches the store only through the server: the process,
started as a user starts it, runs an execution with a tool call without ever
importing the domain, the pipeline, the store or the server. The modules are
read from the interpreter's own import log (`-X importtime`, set through
PYTHONPROFILEIMPORTTIME), which lists every module an import statement loads,
the moment it loads it, lazily imported ones included. (A module loaded by
`importlib.import_module` is not listed itself, only what it imports in
turn: every server-side module imports others.) The import contracts in
pyproject.toml say the same of the code; this says it of the running process.
"""

from __future__ import annotations

import pytest

from stigmer.api.v1 import execution_pb2
from stigmer.client import Client
from stigmer.resources.execution_events import COMPLETED
from stigmer.testing.scripted_model import Reply, ScriptedModel, ToolCallStep
from tests.agents import stdio_tools_agent
from tests.temporal.conftest import StartWorkerProcess
from tests.waiting import wait_for_end

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("store_url", ["sqlite"], indirect=True),
]

SERVER_SIDE = (
    "stigmer.domain",
    "stigmer.pipeline",
    "stigmer.store",
    "stigmer.server",
    "stigmer.consistency",
    "stigmer.engine.embedded",
    "stigmer.engine.temporal_engine",
)
IMPORT_LOG_PREFIX = "import time:"


def _imported_modules(log: str) -> set[str]:
    """The modules an import log names: `import time: self | cumulative | module`."""
    modules = set()
    for line in log.splitlines():
        if line.startswith(IMPORT_LOG_PREFIX) and line.count("|") == 2:
            modules.add(line.rsplit("|", 1)[1].strip())
    modules.discard("imported package")  # the header line
    return modules


def _is_under(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == package or module.startswith(package + ".") for package in packages)


def test_the_worker_process_runs_an_execution_without_importing_the_server_side(
    client: Client,
    model: ScriptedModel,
    start_worker_process: StartWorkerProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Read by the worker process's interpreter; the test's own has started.
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    client.apply(stdio_tools_agent())
    model.add(
        Reply(tool_calls=(ToolCallStep("add", {"a": 2, "b": 3}),)),
        Reply(content="2 + 3 = 5"),
    )

    worker = start_worker_process()
    final = wait_for_end(client, client.run("calculator", "What is 2 + 3?").metadata.id)
    worker.stop()

    assert final.status.phase == COMPLETED, final.status.error
    (call,) = final.status.tool_calls
    assert (call.result, call.status) == ("5", execution_pb2.TOOL_CALL_STATUS_COMPLETED)
    imported = _imported_modules(worker.log.read_text())
    # The log was read right: the worker's own code, its SDKs and what it
    # imports only once it runs (the model providers) are all in it.
    assert {"stigmer.worker.activities", "stigmer.worker.server_api", "temporalio"} <= imported
    assert {"stigmer.runtime.openai_chat", "stigmer.engine.recording", "mcp"} <= imported
    assert sorted(module for module in imported if _is_under(module, SERVER_SIDE)) == []
