"""The README's examples are run as written, so the README stays true."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stigmer.local_ports import free_local_port
from stigmer.testing.cli import Cli
from stigmer.testing.scripted_model import Reply, ScriptedModel, ToolCallStep
from tests import ROOT

README = (ROOT / "README.md").read_text()


def block(name: str) -> str:
    match = re.search(rf"<!-- readme-test: {name} -->\n```\w+\n(.*?)```", README, re.S)
    assert match is not None, f"README has no block marked readme-test: {name}"
    return match.group(1)


def calculator_turns(request: dict[str, Any]) -> Reply:
    """The model the README's runs talk to: asks for add(2, 3), then answers."""
    last = request["messages"][-1]
    if last["role"] == "tool":
        return Reply(content=f"2 + 3 = {last['content']}")
    return Reply(tool_calls=(ToolCallStep("add", {"a": 2, "b": 3}),))


@pytest.mark.slow
def test_readme_walkthrough_and_sdk_example_run_as_written(tmp_path: Path) -> None:
    with ScriptedModel() as model:
        model.reply_with(calculator_turns)
        run_readme(tmp_path, model.base_url)


def run_readme(tmp_path: Path, model_url: str) -> None:
    port = free_local_port()
    settings = {
        "PORT": str(port),
        "SERVER": f"127.0.0.1:{port}",
        "LLM_PROVIDER": "openai",
        "LLM_MODEL": "scripted",
        "LLM_BASE_URL": model_url,
    }
    # The README's `python` is the virtualenv's, as after its setup step.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    stigmer = Cli.isolated(tmp_path / "home", settings, cwd=ROOT).with_env(PATH=path)
    commands = [line for line in block("cli").splitlines() if line.strip()]
    assert commands[0] == "stigmer server start" and commands[-1] == "stigmer server stop"
    try:
        outputs = []
        for line in commands[:-1]:
            args = shlex.split(line)
            assert args[0] == "stigmer"
            done = stigmer(*args[1:])
            assert done.exit_code == 0, f"{line}\n{done.stdout}\n{done.stderr}"
            outputs.append(done.stdout)
        assert outputs[1].count(" created") == 4
        assert "tool add" in outputs[2] and "2 + 3 = 5" in outputs[2]
        assert "COMPLETED" in outputs[2]
        assert "EXECUTION_PHASE_COMPLETED" not in outputs[3] and "COMPLETED" in outputs[3]
        assert outputs[4].count(" unchanged") == 4
        sdk = subprocess.run(
            [sys.executable, "-c", block("sdk")],
            cwd=ROOT, env=stigmer.env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert sdk.returncode == 0, sdk.stderr
        assert "('Agent', 'Calculator', 'unchanged')" in sdk.stdout
        assert "('Agent', 'Support Bot', 'created')" in sdk.stdout
        assert sdk.stdout.strip().endswith("2 + 3 = 5")
    finally:
        stopped = stigmer("server", "stop")
    assert stopped.exit_code == 0
