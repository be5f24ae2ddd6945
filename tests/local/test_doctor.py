"""`stigmer doctor`: the provider, model and endpoint in effect, how they were
chosen, and the checks of the settings, the server and the model endpoint."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from stigmer import config
from stigmer.engine.options import EngineOptions
from stigmer.local_ports import free_local_port
from stigmer.runtime.contract import ModelSettings
from stigmer.runtime.model_files import DEFAULT_MODEL
from stigmer.testing.cli import Cli, CliResult, isolated_environment
from stigmer.testing.scripted_model import MODEL_ID, ScriptedModel
from stigmer.testing.server import ServerThread
from stigmer.version import __version__


@pytest.fixture
def doctor_cli(tmp_path: Path) -> Cli:
    """The CLI with its own STIGMER_HOME, no provider settings or keys, and no
    Ollama; its config file names a server address where nothing listens (the
    default one might be taken on this machine)."""
    without_keys = {
        key: value
        for key, value in os.environ.items()
        if key not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")
    }
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text(f"server: 127.0.0.1:{free_local_port()}\n")
    environment = isolated_environment(home, base=without_keys)
    return Cli({**environment, "OLLAMA_HOST": f"127.0.0.1:{free_local_port()}"}, tmp_path)


def _checks(shown: CliResult) -> list[tuple[str, str, str]]:
    """(status, name, detail) of each check in `doctor -o json` output."""
    return [(c["status"], c["name"], c["detail"]) for c in json.loads(shown.stdout)["checks"]]


def test_doctor_reports_the_local_model_and_why_it_was_chosen(doctor_cli: Cli) -> None:
    shown = doctor_cli("doctor")
    as_json = doctor_cli("doctor", "-o", "json")

    assert shown.exit_code == 0, shown.stderr
    facts = json.loads(as_json.stdout)
    checks = facts.pop("checks")
    facts_block, checks_block = shown.stdout.split("\n\n")
    table = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in facts_block.splitlines())
    assert table == {key.replace("_", " "): value for key, value in facts.items()}
    assert [line.split()[:2] for line in checks_block.splitlines()] == [
        [{"fail": "FAIL"}.get(c["status"], c["status"]), c["name"]] for c in checks
    ]
    assert [c["name"] for c in checks] == ["config", "server", "model"]
    assert checks[0]["status"] == "ok"
    # No address given for this command and no server running: a warning, not a failure.
    config_file = Path(doctor_cli.env["STIGMER_HOME"]) / "config.yaml"
    address = config_file.read_text().split()[1]
    assert checks[1] == {
        "name": "server",
        "status": "warn",
        "detail": f"no Stigmer server answers on {address} (config file {config_file}); "
        "commands and runs need one: stigmer server start",
    }
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
    doctor_cli: Cli, model: ScriptedModel
) -> None:
    ollama_host = model.base_url.removeprefix("http://").removesuffix("/v1")
    doctor_cli.env.update(
        STIGMER_LLM_PROVIDER="ollama",
        STIGMER_LLM_MODEL="qwen2.5-coder",
        OPENAI_API_KEY="sk-1",
        OLLAMA_HOST=ollama_host,
    )

    shown = doctor_cli("doctor", "-o", "json")

    assert shown.exit_code == 0, shown.stderr
    facts = json.loads(shown.stdout)
    assert facts.pop("checks")[2] == {
        "name": "model",
        "status": "warn",
        "detail": f"{model.base_url}/models answers, but does not list model "
        f"'qwen2.5-coder' (it lists {MODEL_ID})",
    }
    assert facts == {
        "provider": "ollama",
        "model": "qwen2.5-coder",
        "base_url": f"http://{ollama_host}/v1",
        "api_key": "***",
        "chosen_because": "llm.provider is set (env STIGMER_LLM_PROVIDER)",
        "engine": "embedded (executions run in the server process)",
    }
    assert "sk-1" not in shown.stdout


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


def test_doctor_reports_the_running_server_and_passes_with_a_reachable_model(
    doctor_cli: Cli, model: ScriptedModel, tmp_path: Path
) -> None:
    settings = ModelSettings("openai", MODEL_ID, base_url=model.base_url)
    home, store = Path(doctor_cli.env["STIGMER_HOME"]), tmp_path / "stigmer.db"
    with ServerThread(str(store), engine=EngineOptions(model=settings)) as server:
        doctor_cli.env.update(
            STIGMER_SERVER=server.address,
            STIGMER_LLM_PROVIDER="openai",
            STIGMER_LLM_BASE_URL=model.base_url,
            STIGMER_LLM_MODEL=MODEL_ID,
        )
        shown = doctor_cli("doctor", "-o", "json")

    assert shown.exit_code == 0, shown.stderr
    assert _checks(shown) == [
        (
            "ok",
            "config",
            f"{len(config.SETTINGS)} settings valid (config file {home / 'config.yaml'})",
        ),
        (
            "ok",
            "server",
            f"{server.address} answers: stigmer {__version__}, pid {os.getpid()}, "
            f"store sqlite://{store}, engine embedded, model openai {MODEL_ID}",
        ),
        ("ok", "model", f"{model.base_url}/models answers (1 models, {MODEL_ID!r} among them)"),
    ]


def test_doctor_with_an_unreachable_model_endpoint_fails_naming_its_url(doctor_cli: Cli) -> None:
    base_url = f"http://127.0.0.1:{free_local_port()}/v1"
    doctor_cli.env.update(STIGMER_LLM_PROVIDER="openai", STIGMER_LLM_BASE_URL=base_url)

    shown = doctor_cli("doctor")

    assert shown.exit_code == 1
    assert f"FAIL  model   {base_url}/models cannot be reached" in shown.stdout
    assert "error: doctor found problems: model" in shown.stderr


def test_doctor_with_an_invalid_setting_fails_naming_the_setting_and_its_source(
    doctor_cli: Cli,
) -> None:
    doctor_cli.env.update(STIGMER_LLM_PROVIDER="local", STIGMER_ENGINE="bogus")

    shown = doctor_cli("doctor", "-o", "json")

    assert shown.exit_code == 1
    assert _checks(shown)[0] == (
        "fail",
        "config",
        "engine: 'bogus' (env STIGMER_ENGINE) is not allowed: expected embedded or temporal",
    )
    assert "error: doctor found problems: config" in shown.stderr


def test_doctor_fails_when_a_server_address_given_explicitly_does_not_answer(
    doctor_cli: Cli,
) -> None:
    address = f"127.0.0.1:{free_local_port()}"
    doctor_cli.env.update(STIGMER_LLM_PROVIDER="local")

    shown = doctor_cli("doctor", "--server", address, "-o", "json")

    assert shown.exit_code == 1
    assert ("fail", "server", f"no Stigmer server answers on {address} (flag)") in _checks(shown)


def test_doctor_with_an_unreadable_config_file_fails_once_naming_where(doctor_cli: Cli) -> None:
    config_file = Path(doctor_cli.env["STIGMER_HOME"]) / "config.yaml"
    config_file.write_text("llm: [unclosed\n")

    shown = doctor_cli("doctor", "-o", "json")

    assert shown.exit_code == 1
    assert _checks(shown) == [
        (
            "fail",
            "config",
            f"config: {config_file} is not valid YAML (line 2, column 1): "
            "expected ',' or ']', but got '<stream end>'",
        ),
        ("warn", "server", "not checked: the config file cannot be read"),
        ("warn", "model", "not checked: the config file cannot be read"),
    ]
