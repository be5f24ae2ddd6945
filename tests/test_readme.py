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

from stigmer.testing.ports import free_port
from stigmer.testing.scripted_model import Reply, ScriptedModel, ToolCallStep

ROOT = Path(__file__).resolve().parent.parent
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
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STIGMER_")}
    env.update(
        STIGMER_HOME=str(tmp_path / "home"),
        STIGMER_PORT=str(port),
        STIGMER_SERVER=f"127.0.0.1:{port}",
        STIGMER_LLM_PROVIDER="openai",
        STIGMER_LLM_MODEL="scripted",
        STIGMER_LLM_BASE_URL=model_url,
    )
    bin_dir = Path(sys.executable).parent
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    commands = [line for line in block("cli").splitlines() if line.strip()]
    assert commands[0] == "stigmer server start" and commands[-1] == "stigmer server stop"
    try:
        outputs = []
        for line in commands[:-1]:
            args = shlex.split(line)
            assert args[0] == "stigmer"
            done = subprocess.run(
                [sys.executable, "-m", "stigmer.cli.main", *args[1:]],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
            outputs.append(done.stdout)
        assert outputs[1].count(" created") == 4
        assert "tool add" in outputs[2] and "2 + 3 = 5" in outputs[2]
        assert "COMPLETED" in outputs[2]
        assert "EXECUTION_PHASE_COMPLETED" not in outputs[3] and "COMPLETED" in outputs[3]
        assert outputs[4].count(" unchanged") == 4
        sdk = subprocess.run(
            [sys.executable, "-c", block("sdk")],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert sdk.returncode == 0, sdk.stderr
        assert "('Agent', 'Calculator', 'unchanged')" in sdk.stdout
        assert "('Agent', 'Support Bot', 'created')" in sdk.stdout
        assert sdk.stdout.strip().endswith("2 + 3 = 5")
    finally:
        stopped = subprocess.run(
            [sys.executable, "-m", "stigmer.cli.main", "server", "stop"],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert stopped.returncode == 0
