"""`stigmer doctor`: the provider, model and endpoint in effect, and how they were chosen."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from stigmer.runtime.model_files import DEFAULT_MODEL
from stigmer.testing.ports import free_port
from tests.conftest import Cli


@pytest.fixture
def doctor_cli(tmp_path: Path) -> Cli:
    """The CLI with its own STIGMER_HOME, no provider settings or keys, and no Ollama."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("STIGMER_") and key not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")
    }
    env.update(STIGMER_HOME=str(tmp_path / "home"), OLLAMA_HOST=f"127.0.0.1:{free_port()}")
    return Cli(env, tmp_path)


def test_doctor_reports_the_local_model_and_why_it_was_chosen(doctor_cli: Cli) -> None:
    shown = doctor_cli("doctor")
    as_json = doctor_cli("doctor", "-o", "json")

    assert shown.exit_code == 0, shown.stderr
    facts = json.loads(as_json.stdout)
    table = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in shown.stdout.splitlines())
    assert table == {key.replace("_", " "): value for key, value in facts.items()}
    assert facts["provider"] == "local"
    assert facts["model"] == DEFAULT_MODEL.alias
    assert facts["base_url"].startswith("llama.cpp in the server process, 127.0.0.1")
    home = Path(doctor_cli.env["STIGMER_HOME"])
    assert facts["model_file"].startswith(str(home / "models" / DEFAULT_MODEL.file_name))
    assert facts["chosen_because"].startswith(
        "llm.provider is not set, Ollama does not answer on http://127.0.0.1:"
    )
    assert "OPENAI_API_KEY is not set, ANTHROPIC_API_KEY is not set" in facts["chosen_because"]


def test_doctor_names_the_setting_that_chose_the_provider_and_masks_the_key(
    doctor_cli: Cli,
) -> None:
    doctor_cli.env.update(
        STIGMER_LLM_PROVIDER="ollama", STIGMER_LLM_MODEL="qwen2.5-coder", OPENAI_API_KEY="sk-1"
    )

    shown = doctor_cli("doctor", "-o", "json")

    assert shown.exit_code == 0, shown.stderr
    facts = json.loads(shown.stdout)
    assert facts == {
        "provider": "ollama",
        "model": "qwen2.5-coder",
        "base_url": f"http://{doctor_cli.env['OLLAMA_HOST']}/v1",
        "api_key": "***",
        "chosen_because": "llm.provider is set (env STIGMER_LLM_PROVIDER)",
        "engine": "embedded (executions run in the server process)",
    }


def test_doctor_says_where_the_temporal_engine_finds_temporal(doctor_cli: Cli) -> None:
    doctor_cli.env.update(STIGMER_LLM_PROVIDER="ollama", STIGMER_ENGINE="temporal")

    managed = json.loads(doctor_cli("doctor", "-o", "json").stdout)
    doctor_cli.env.update(
        STIGMER_TEMPORAL_ADDRESS="temporal.internal:7233", STIGMER_TEMPORAL_TASK_QUEUE="agents"
    )
    remote = json.loads(doctor_cli("doctor", "-o", "json").stdout)

    home = Path(doctor_cli.env["STIGMER_HOME"])
    assert managed["engine"].startswith("temporal")
    assert managed["temporal_address"].startswith(
        f"none set: the server starts a dev server in {home / 'temporal'}"
    )
    assert managed["temporal_address"].endswith("/temporal)")
    assert (remote["temporal_address"], remote["task_queue"]) == (
        "temporal.internal:7233",
        "agents",
    )
    assert remote["temporal_namespace"] == "default"


def test_doctor_without_any_provider_exits_1_and_says_how_to_configure_one(
    doctor_cli: Cli, tmp_path: Path
) -> None:
    doctor_cli.env["STIGMER_LLM_MODEL_PATH"] = str(tmp_path / "missing.gguf")

    shown = doctor_cli("doctor")

    assert shown.exit_code == 1
    assert "provider        none" in shown.stdout
    assert "error: no model provider is configured and none was found" in shown.stderr
    assert "pip install 'stigmer[local]' && stigmer model install" in shown.stderr
    assert "export OPENAI_API_KEY=..." in shown.stderr
