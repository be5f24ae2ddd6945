"""The `stigmer` command in a subprocess, as a user runs it, with settings of
the caller's own.

Nothing the process running the tests happens to have set (a developer's
STIGMER_SERVER, a CI's STIGMER_HOME) reaches the command: every STIGMER_*
variable is dropped, and the caller names the ones the command gets:

    stigmer = Cli.isolated(tmp_path / "home", {"SERVER": server.address})
    result = stigmer("get", "agents")
    assert result.exit_code == 0, result.stderr

`Cli.start` runs a long-lived command (`stigmer server`, `stigmer worker`)
with the same environment; `stigmer.testing.server.StigmerProcess` is built
on it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

COMMAND = (sys.executable, "-m", "stigmer.cli.main")
DEFAULT_TIMEOUT_SECONDS = 60.0


def isolated_environment(
    home: Path,
    settings: Mapping[str, str] | None = None,
    *,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """`base` (this process's environment by default) without any STIGMER_*
    variable, then STIGMER_HOME=`home`, STIGMER_CONSOLE_PORT=0 and the
    `settings` given without their prefix ({"SERVER": "127.0.0.1:7"} is
    STIGMER_SERVER)."""
    inherited = os.environ if base is None else base
    environment = {k: v for k, v in inherited.items() if not k.startswith("STIGMER_")}
    environment["STIGMER_HOME"] = str(home)
    # `stigmer server` starts the web console on a fixed port by default; tests
    # run many servers at once, so theirs is off unless a test asks for one.
    environment["STIGMER_CONSOLE_PORT"] = "0"
    environment.update({f"STIGMER_{key}": value for key, value in (settings or {}).items()})
    return environment


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Cli:
    """Runs the real `stigmer` command with exactly `env`, in `cwd`.

    A test may add to `env` before it runs the command (e.g. a setting only
    that test needs); `with_env` makes a copy instead.
    """

    env: dict[str, str]
    cwd: Path | None = None

    @classmethod
    def isolated(
        cls, home: Path, settings: Mapping[str, str] | None = None, *, cwd: Path | None = None
    ) -> Cli:
        """The command with its own STIGMER_HOME and only the STIGMER_* `settings` given."""
        return cls(isolated_environment(home, settings), cwd)

    def with_env(self, **variables: str) -> Cli:
        """The same command with these variables added or replaced."""
        return Cli({**self.env, **variables}, self.cwd)

    def __call__(
        self, *args: str, stdin: str | None = None, timeout: float = DEFAULT_TIMEOUT_SECONDS
    ) -> CliResult:
        """Runs `stigmer ARGS...` to its end.

        Raises:
            subprocess.TimeoutExpired: it did not end within `timeout` seconds.
        """
        completed = subprocess.run(
            [*COMMAND, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.cwd,
            timeout=timeout,
            check=False,
        )
        return CliResult(completed.returncode, completed.stdout, completed.stderr)

    def start(self, *args: str, output: IO[bytes]) -> subprocess.Popen[bytes]:
        """Starts `stigmer ARGS...` in the background, its stdout and stderr to `output`."""
        return subprocess.Popen(
            [*COMMAND, *args], env=self.env, cwd=self.cwd, stdout=output, stderr=output
        )
