"""A throwaway PostgreSQL server for tests, started from the Debian binaries.

No test mocks the store, so the PostgreSQL backend needs a real server. This
one lives in a temporary directory, listens on 127.0.0.1 only (on a free
port, so parallel sessions do not collide), trusts every local connection and
skips every durability guarantee (fsync, synchronous commit, full-page
writes): a crash loses nothing a test cares about, and it starts in ~1-2 s.

    with TemporaryPostgres() as server:
        url = server.create_database("contract_1")  # postgresql://postgres@127.0.0.1:PORT/...

`initdb` and the server refuse to run as root. As root (CI, containers) the
directory is handed to the `postgres` user that the Debian package creates and
the server binaries run through `runuser`; otherwise they run directly.
Clients connect over TCP, so they need no privileges at all.

The server is run by a small keeper process (this file run as a script, so it
imports nothing of Stigmer): it creates the cluster, starts the server with
`pg_ctl`, prints the port, then waits for its stdin to close. That happens
when `stop()` closes it, and also when the test process dies without calling
`stop()` (SIGKILL, a timeout's SIGTERM): the kernel closes the pipe, the keeper
stops the server (`pg_ctl stop -m immediate`) and deletes the directory. No
test run leaves a server behind. The keeper is also the server's "subreaper"
on Linux, so the stopped server is reaped at once instead of lingering as a
zombie until init gets to it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Self

INSTALL_HINT = (
    "PostgreSQL server binaries not found (looked for /usr/lib/postgresql/*/bin/initdb and "
    "initdb on PATH); install them with `apt-get update && apt-get install -y postgresql`"
)
_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_START_ATTEMPTS = 3
_STOP_TIMEOUT = 60.0
_PR_SET_CHILD_SUBREAPER = 36

# Speed over durability, and nothing reachable from outside this machine.
_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "log_min_messages": "warning",
    # Every CREATE DATABASE logs its template (~8 MB): checkpoint often
    # enough that the WAL stays small (it may live in memory, see below).
    "max_wal_size": "'128MB'",
    "min_wal_size": "'32MB'",
}
# Where the cluster lives by default: in memory when /dev/shm has room (a
# CREATE DATABASE takes ~25 ms there instead of ~150 ms on this disk).
_MEMORY_DIR = Path("/dev/shm")
_MEMORY_DIR_MIN_FREE = 1 << 30


def find_bin_dir() -> Path:
    """The directory holding initdb, pg_ctl and postgres: the newest Debian
    version under /usr/lib/postgresql, else the one on PATH.

    Raises:
        RuntimeError: no PostgreSQL server binaries are installed (with the install hint).
    """
    candidates = [path.parent for path in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    if candidates:
        return max(candidates, key=lambda path: _version_key(path.parent.name))
    on_path = shutil.which("initdb")
    if on_path is not None and (Path(on_path).parent / "pg_ctl").exists():
        return Path(on_path).resolve().parent
    raise RuntimeError(INSTALL_HINT)


def _default_parent_dir() -> Path | None:
    try:
        stats = os.statvfs(_MEMORY_DIR)
    except OSError:
        return None
    has_room = stats.f_bavail * stats.f_frsize >= _MEMORY_DIR_MIN_FREE
    return _MEMORY_DIR if has_room and os.access(_MEMORY_DIR, os.W_OK | os.X_OK) else None


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name))


class TemporaryPostgres:
    """A PostgreSQL server in a temporary directory; `stop()` removes every trace.

    Start it with `start()` or `with`. Databases are created on demand with
    `create_database`, each reached by its own URL; a fresh database per test
    isolates tests without restarting the server.
    """

    def __init__(
        self,
        *,
        bin_dir: Path | None = None,
        start_timeout: float = 60.0,
        user: str = "postgres",
        parent_dir: Path | None = None,
    ) -> None:
        """
        Args:
            bin_dir: where initdb and pg_ctl live; found automatically when None.
            start_timeout: seconds that initdb plus start-up may take before start() fails.
            user: the superuser role of the new cluster (also the OS user the
                binaries run as when this process is root).
            parent_dir: where the cluster's temporary directory is made; by
                default /dev/shm when it has room, else the system's temp dir.
        """
        self.bin_dir = bin_dir
        self.parent_dir = parent_dir if parent_dir is not None else _default_parent_dir()
        self.start_timeout = start_timeout
        self.user = user
        self.host = "127.0.0.1"
        self.port = 0
        self.directory: Path | None = None
        self._keeper: subprocess.Popen[bytes] | None = None
        # Background database work for new_database() / drop_database(wait=False).
        self._background: ThreadPoolExecutor | None = None
        self._spare: Future[str] | None = None
        self._numbers = itertools.count(1)

    # -- lifecycle ----------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def is_running(self) -> bool:
        return self._keeper is not None and self.port != 0

    def start(self) -> None:
        """Creates the cluster and starts the server; returns once it accepts connections.

        Raises:
            RuntimeError: the binaries are missing, or initdb or start-up failed
                (with the server's log), or start-up took longer than `start_timeout`.
        """
        if self._keeper is not None:
            return
        config = {
            "bin_dir": str(self.bin_dir or find_bin_dir()),
            "user": self.user,
            "start_timeout": self.start_timeout,
            "parent_dir": str(self.parent_dir) if self.parent_dir is not None else None,
        }
        # -I: the script's directory is not put on sys.path, so the sibling
        # modules of this file cannot shadow the standard library.
        self._keeper = subprocess.Popen(
            [sys.executable, "-I", __file__, json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in the terminal must not stop the keeper early
        )
        try:
            report = self._read_report(self._keeper, self.start_timeout + 10)
        except BaseException:
            self.stop()
            raise
        if "error" in report:
            self.stop()
            raise RuntimeError(str(report["error"]))
        self.port = int(report["port"])
        self.directory = Path(report["directory"])

    @staticmethod
    def _read_report(keeper: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
        """The keeper's one-line JSON report: {"port", "directory"} or {"error"}."""
        if keeper.stdout is None:
            raise RuntimeError("the PostgreSQL keeper has no stdout")
        with selectors.DefaultSelector() as selector:
            selector.register(keeper.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise RuntimeError(f"PostgreSQL did not start within {timeout:.0f} s")
        line = keeper.stdout.readline()
        if not line:
            raise RuntimeError(f"the PostgreSQL keeper exited ({keeper.wait()}) without a report")
        report: dict[str, Any] = json.loads(line)
        return report

    def stop(self) -> None:
        """Stops the server at once (no checkpoint) and deletes its directory.
        Safe to call more than once, and on a server that never started."""
        background, self._background, self._spare = self._background, None, None
        if background is not None:
            # Lets a CREATE or DROP in progress finish; skips the queued ones.
            background.shutdown(wait=True, cancel_futures=True)
        keeper, self._keeper = self._keeper, None
        self.port = 0
        self.directory = None
        if keeper is None:
            return
        if keeper.stdin is not None:
            with contextlib.suppress(OSError):
                keeper.stdin.close()
        try:
            keeper.wait(timeout=_STOP_TIMEOUT + 30)
        except subprocess.TimeoutExpired:
            keeper.kill()
            keeper.wait()
        if keeper.stdout is not None:
            keeper.stdout.close()

    # -- databases ----------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        """The URL of a database on this server (it must exist)."""
        if not self.is_running:
            raise RuntimeError("the temporary PostgreSQL server is not running")
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Creates an empty database and returns its URL.

        Raises:
            ValueError: the name is not a plain lowercase identifier.
            psycopg.Error: the server refused (e.g. the name is taken).
        """
        self._admin(f"CREATE DATABASE {_checked(name)}")
        return self.url(name)

    def drop_database(self, name: str, *, wait: bool = True) -> None:
        """Drops a database, disconnecting whoever is still connected to it.

        With `wait=False` the drop runs in the background (its errors are
        dropped with it): a test's teardown need not wait for it.
        """
        statement = f"DROP DATABASE IF EXISTS {_checked(name)} WITH (FORCE)"
        if wait:
            self._admin(statement)
        else:
            self._in_background().submit(self._admin, statement)

    def new_database(self) -> tuple[str, str]:
        """A new, empty database with a generated name: (name, URL).

        CREATE DATABASE copies a template (~0.1 s), so the next database is
        already being created in the background while the caller uses this
        one: a fresh database per test costs next to nothing.
        """
        spare = self._spare or self._in_background().submit(self._create_numbered)
        self._spare = self._in_background().submit(self._create_numbered)
        url = spare.result(timeout=60)
        return url.rsplit("/", 1)[1], url

    def _create_numbered(self) -> str:
        return self.create_database(f"stigmer_test_{next(self._numbers)}")

    def _in_background(self) -> ThreadPoolExecutor:
        if not self.is_running:
            raise RuntimeError("the temporary PostgreSQL server is not running")
        if self._background is None:
            # One thread: CREATE and DROP DATABASE serialize in the server anyway.
            self._background = ThreadPoolExecutor(1, thread_name_prefix="temporary-postgres")
        return self._background

    def _admin(self, statement: str) -> None:
        import psycopg  # only the PostgreSQL tests need it

        with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as connection:
            connection.execute(statement.encode())


def _checked(name: str) -> str:
    if not _DATABASE_NAME.match(name):
        raise ValueError(f"database name {name!r} is not a lowercase identifier")
    return name


# -- the keeper process ---------------------------------------------------------------------


def _keep(bin_dir: Path, user: str, start_timeout: float, parent_dir: str | None) -> None:
    """The keeper's life: start the server, report, wait for stdin to close, clean up."""
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_IGN)  # only the closed pipe ends it
    _become_subreaper()
    prefix = ["runuser", "-u", user, "--"] if os.geteuid() == 0 else []
    directory = Path(tempfile.mkdtemp(prefix="stigmer-pg-", dir=parent_dir))
    data = directory / "data"
    try:
        try:
            port = _create_and_start(bin_dir, user, prefix, directory, start_timeout)
        except Exception as error:
            _report({"error": str(error)})
            return
        _report({"port": port, "directory": str(directory)})
        sys.stdin.buffer.read()  # returns at EOF: stop() closed it, or the test process died
    finally:
        _stop_server(bin_dir, prefix, data)
        shutil.rmtree(directory, ignore_errors=True)


def _report(report: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()


def _become_subreaper() -> None:
    """Adopts the server once pg_ctl, its parent, exits (Linux only; best effort).

    Without it the stopped server stays a zombie until init reaps it, which
    takes a second or two here, and `pgrep postgres` would still list it.
    """
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _create_and_start(
    bin_dir: Path, user: str, prefix: list[str], directory: Path, start_timeout: float
) -> int:
    deadline = time.monotonic() + start_timeout
    data = directory / "data"
    if prefix:
        _hand_over(directory, user)
    _run(
        [
            *prefix,
            str(bin_dir / "initdb"),
            "--pgdata",
            str(data),
            "--no-sync",
            "--auth=trust",
            "--username",
            user,
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        ],
        deadline,
        what="initdb",
    )
    settings = {**_SETTINGS, "unix_socket_directories": f"'{directory}'"}
    with (data / "postgresql.conf").open("a", encoding="utf-8") as conf:
        conf.writelines(f"{name} = {value}\n" for name, value in settings.items())
    log = directory / "server.log"
    for attempt in range(1, _START_ATTEMPTS + 1):
        port = _free_port()
        remaining = max(1, int(deadline - time.monotonic()))
        try:
            # --wait: returns once the server accepts connections (or fails, or times out).
            _run(
                [
                    *prefix,
                    str(bin_dir / "pg_ctl"),
                    "start",
                    "--pgdata",
                    str(data),
                    "--log",
                    str(log),
                    "--wait",
                    "--timeout",
                    str(remaining),
                    "-o",
                    f"-p {port}",
                ],
                deadline,
                what="pg_ctl start",
                log=log,
            )
        except RuntimeError:
            # Most likely another process took the port between probe and bind.
            if attempt == _START_ATTEMPTS or time.monotonic() >= deadline:
                raise
            continue
        return port
    raise AssertionError("unreachable")  # pragma: no cover


def _free_port() -> int:
    """A port nobody listens on right now (the server may still lose a race for it;
    the caller then retries with another)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _hand_over(directory: Path, user: str) -> None:
    """Gives the directory to the server's OS user (initdb refuses root)."""
    import pwd

    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise RuntimeError(
            f"running as root, but there is no {user!r} user to run PostgreSQL as; "
            "`apt-get install -y postgresql` creates it"
        ) from None
    os.chown(directory, entry.pw_uid, entry.pw_gid)


def _stop_server(bin_dir: Path, prefix: list[str], data: Path) -> None:
    """Stops the server at once (-m immediate: no shutdown checkpoint, nothing
    here is worth keeping) and reaps it."""
    try:
        pid = int((data / "postmaster.pid").read_text(encoding="utf-8").split("\n", 1)[0])
    except (OSError, ValueError):
        return  # never started, or already gone
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(
            [*prefix, str(bin_dir / "pg_ctl"), "stop", "--pgdata", str(data), "-m", "immediate"],
            capture_output=True,
            timeout=_STOP_TIMEOUT,
            check=False,
        )
    _reap(pid)


def _reap(pid: int) -> None:
    """Waits for the stopped server to exit and reaps it (the keeper adopted it as
    subreaper); kills it should it outlive a failed `pg_ctl stop`."""
    deadline = time.monotonic() + _STOP_TIMEOUT
    while True:
        try:
            reaped, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return  # not adopted (no subreaper): pg_ctl waited for it, init reaps it
        if reaped:
            return
        if time.monotonic() > deadline:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return
        time.sleep(0.01)


def _run(command: list[str], deadline: float, *, what: str, log: Path | None = None) -> None:
    timeout = max(1.0, deadline - time.monotonic())
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{what} took longer than {timeout:.0f} s{_tail(log)}") from None
    if completed.returncode != 0:
        output = (completed.stdout + completed.stderr).strip()
        raise RuntimeError(f"{what} failed ({completed.returncode}): {output}{_tail(log)}")


def _tail(log: Path | None, lines: int = 20) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    return "\nserver log:\n" + "\n".join(text)


if __name__ == "__main__":
    _config = json.loads(sys.argv[1])
    _keep(
        Path(_config["bin_dir"]),
        _config["user"],
        float(_config["start_timeout"]),
        _config["parent_dir"],
    )
