"""The `local` provider end to end: the real default model in the real server.

The quickstart's run is done here as `make run` does it: the CLI applies
examples/quickstart.yaml and runs its agent from the repository root, against
a server whose engine uses provider "local". These are slow (a model call
takes seconds on two cores) and run in CI with the rest of `make test`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stigmer.api.v1 import execution_pb2
from stigmer.client import Client
from stigmer.resources.execution_events import phase_name
from stigmer.runtime.local_model import shared_host
from stigmer.runtime.model_files import DEFAULT_MODEL
from stigmer.testing.cli import Cli
from stigmer.testing.server import ServerThread
from tests import ROOT
from tests.agents import PLAIN_AGENT
from tests.local.local_model import (
    QUICKSTART,
    QUICKSTART_AGENT,
    QUICKSTART_QUESTION,
    RUN_DEADLINE_SECONDS,
    local_engine,
)
from tests.waiting import wait_for_end

COMPLETED = execution_pb2.EXECUTION_PHASE_COMPLETED
FAILED = execution_pb2.EXECUTION_PHASE_FAILED


@pytest.mark.slow
@pytest.mark.usefixtures("quickstart_cwd")
def test_the_quickstart_agent_completes_on_the_local_model_with_a_recorded_tool_call(
    local_server: ServerThread, local_home: Path
) -> None:
    cli = Cli({**os.environ, "STIGMER_SERVER": local_server.address}, ROOT)

    applied = cli("apply", "-f", str(QUICKSTART.relative_to(ROOT)))
    run = cli("run", QUICKSTART_AGENT, QUICKSTART_QUESTION, timeout=RUN_DEADLINE_SECONDS)

    assert applied.exit_code == 0, applied.stderr
    assert run.exit_code == 0, f"{run.stdout}\n{run.stderr}"
    assert "tool days_between" in run.stdout and "COMPLETED" in run.stdout
    execution_id = run.stdout.split("COMPLETED (", 1)[1].split(",", 1)[0]
    with Client(local_server.address) as client:
        final = client.get_execution(execution_id)
    status = final.status
    assert status.phase == COMPLETED, status.error
    call = status.tool_calls[0]
    assert call.name == "days_between"
    assert call.status == execution_pb2.TOOL_CALL_STATUS_COMPLETED
    assert call.result == "320"
    answer = status.messages[-1]
    assert answer.type == execution_pb2.MESSAGE_TYPE_AI and answer.content.strip()
    assert status.usage.output_tokens > 0
    assert shared_host.is_running


@pytest.mark.slow
@pytest.mark.timeout(20 * RUN_DEADLINE_SECONDS)
@pytest.mark.usefixtures("quickstart_cwd")
def test_the_quickstart_question_completes_ten_times_in_ten_with_its_tool_called(
    local_server: ServerThread,
) -> None:
    with Client(local_server.address) as client:
        client.apply(QUICKSTART.read_text(), source=str(QUICKSTART))
        finals = [
            wait_for_end(
                client,
                client.run(QUICKSTART_AGENT, QUICKSTART_QUESTION).metadata.id,
                within=RUN_DEADLINE_SECONDS,
            )
            for _ in range(10)
        ]

    outcomes = [
        (phase_name(final.status.phase), [call.name for call in final.status.tool_calls])
        for final in finals
    ]
    assert outcomes == [("COMPLETED", ["days_between"])] * 10, [f.status.error for f in finals]
    assert {final.status.tool_calls[0].result for final in finals} == {"320"}


@pytest.mark.slow
@pytest.mark.timeout(4 * RUN_DEADLINE_SECONDS)
@pytest.mark.usefixtures("quickstart_cwd")
def test_a_question_that_makes_the_model_call_a_tool_it_was_not_offered_still_completes(
    local_server: ServerThread,
) -> None:
    # At temperature 0 the default model answers this by calling a made-up
    # `weather_in_paris` tool, which llama.cpp's tool-call parser rejects with
    # HTTP 500; the provider asks again with the reply held to the tools offered.
    with Client(local_server.address) as client:
        client.apply(QUICKSTART.read_text(), source=str(QUICKSTART))
        final = wait_for_end(
            client,
            client.run(QUICKSTART_AGENT, "What's the weather in Paris?").metadata.id,
            within=RUN_DEADLINE_SECONDS,
        )

    assert phase_name(final.status.phase) == "COMPLETED", final.status.error
    assert [call.name for call in final.status.tool_calls] == ["days_between"]
    answer = final.status.messages[-1]
    assert answer.type == execution_pb2.MESSAGE_TYPE_AI and answer.content.strip()


@pytest.mark.slow
def test_executions_share_one_local_model_that_stops_with_the_server(
    store_url: str, local_home: Path, installed_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STIGMER_LLM_MODEL_PATH", str(installed_model))
    starts = shared_host.starts

    with ServerThread(store_url, engine=local_engine()) as server, Client(server.address) as client:
        client.apply(PLAIN_AGENT)
        first = wait_for_end(
            client, client.run("greeter", "Hi, I am Ada.").metadata.id, within=RUN_DEADLINE_SECONDS
        )
        second = wait_for_end(
            client, client.run("greeter", "Hi, I am Bob.").metadata.id, within=RUN_DEADLINE_SECONDS
        )
        assert shared_host.is_running

    assert [first.status.phase, second.status.phase] == [COMPLETED, COMPLETED]
    assert first.status.messages[-1].content.strip()
    assert shared_host.starts == starts + 1
    assert not shared_host.is_running


@pytest.mark.slow
def test_model_install_assembles_the_default_model_once_then_only_checks_it(
    tmp_path: Path,
) -> None:
    cli = Cli.isolated(tmp_path, cwd=tmp_path)

    first = cli("model", "install")
    second = cli("model", "install")

    path = tmp_path / "models" / DEFAULT_MODEL.file_name
    assert first.exit_code == 0, first.stderr
    assert first.stdout.strip() == f"{DEFAULT_MODEL.title} installed: {path} (sha256 verified)"
    assert second.stdout.strip() == (
        f"{DEFAULT_MODEL.title} is already installed: {path} (sha256 verified)"
    )
    assert path.stat().st_size == DEFAULT_MODEL.size
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, f"{path.name}.verified"]


def test_a_damaged_model_file_fails_the_run_with_a_clear_error_and_the_server_keeps_serving(
    store_url: str, local_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Named like the default model: refused by size before llama.cpp sees it.
    truncated = tmp_path / DEFAULT_MODEL.file_name
    truncated.write_bytes(b"GGUF" + bytes(4096))
    # Any other name: no digest to compare, so llama.cpp itself refuses it.
    garbled = tmp_path / "my-model.gguf"
    garbled.write_bytes(b"GGUF" + os.urandom(65536))

    with ServerThread(store_url, engine=local_engine()) as server, Client(server.address) as client:
        client.apply(PLAIN_AGENT)
        monkeypatch.setenv("STIGMER_LLM_MODEL_PATH", str(truncated))
        refused = wait_for_end(
            client, client.run("greeter", "hi").metadata.id, within=RUN_DEADLINE_SECONDS
        )
        monkeypatch.setenv("STIGMER_LLM_MODEL_PATH", str(garbled))
        unloadable = wait_for_end(
            client, client.run("greeter", "hi").metadata.id, within=RUN_DEADLINE_SECONDS
        )
        assert client.get("agent", "greeter").metadata.slug == "greeter"

    assert refused.status.phase == FAILED
    assert refused.status.error == (
        f"model error: model file {truncated} is truncated: 4,100 bytes, expected 491,400,064 "
        f"for {DEFAULT_MODEL.title}; replace it, or unset llm.model_path to use the default "
        f"model ({DEFAULT_MODEL.title})"
    )
    assert unloadable.status.phase == FAILED
    assert unloadable.status.error.startswith(
        f"model error: llama.cpp could not load the model file {garbled}"
    )
    assert not shared_host.is_running
