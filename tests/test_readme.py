"""The README's examples are run as written, so the README stays true."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def block(name: str) -> str:
    match = re.search(rf"<!-- readme-test: {name} -->\n```\w+\n(.*?)```", README, re.S)
    assert match is not None, f"README has no block marked readme-test: {name}"
    return match.group(1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.slow
def test_readme_walkthrough_and_sdk_example_run_as_written(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STIGMER_")}
    env.update(
        STIGMER_HOME=str(tmp_path / "home"),
        STIGMER_PORT=str(port),
        STIGMER_SERVER=f"127.0.0.1:{port}",
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
        assert outputs[2].count(" unchanged") == 4
        sdk = subprocess.run(
            [sys.executable, "-c", block("sdk")],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert sdk.returncode == 0, sdk.stderr
        assert "('Agent', 'Calculator', 'unchanged')" in sdk.stdout
        assert "('Agent', 'Support Bot', 'created')" in sdk.stdout
    finally:
        stopped = subprocess.run(
            [sys.executable, "-m", "stigmer.cli.main", "server", "stop"],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert stopped.returncode == 0
