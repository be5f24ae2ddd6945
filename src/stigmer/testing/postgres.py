"""A throwaway PostgreSQL server for tests, started from the Debian binaries.

No test mocks the store, so the PostgreSQL backend needs a real server. This
one lives in a temporary directory, listens on 127.0.0.1 only (on a free
port, so parallel sessions do not collide), trusts every local connection and
skips every durability guarantee (fsync, synchronous commit, full-page
writes): a crash loses nothing a test cares about, and it starts in ~2 s.

    with TemporaryPostgres() as server:
        url = server.create_database("contract_1")  # postgresql://postgres@127.0.0.1:PORT/...

`initdb` and the server refuse to run as root. As root (CI, containers) the
directory is handed to the `postgres` user that the Debian package creates and
the server binaries run through `runuser`; otherwise they run directly.
Clients connect over TCP, so they need no privileges at all.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import Self

INSTALL_HINT = (
    "PostgreSQL server binaries not found (looked for /usr/lib/postgresql/*/bin/initdb and "
    "initdb on PATH); install them with `apt-get update && apt-get install -y postgresql`"
)
_SERVER_USER = "postgres"
_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_START_ATTEMPTS = 3

# Speed over durability, and nothing reachable from outside this machine.
_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "log_min_messages": "warning",
}


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


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name))


def _free_port() -> int:
    """A port nobody listens on right now (the server may still lose a race for it:
    start() then retries with another)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


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
        user: str = _SERVER_USER,
    ) -> None:
        """
        Args:
            bin_dir: where initdb and pg_ctl live; found automatically when None.
            start_timeout: seconds that initdb plus start-up may take before start() fails.
            user: the superuser role of the new cluster (also the OS user the
                binaries run as when this process is root).
        """
        self.bin_dir = bin_dir
        self.start_timeout = start_timeout
        self.user = user
        self.host = "127.0.0.1"
        self.port = 0
        self.directory: Path | None = None
        self._finalizer: weakref.finalize[..., None] | None = None

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
        return self._finalizer is not None and self._finalizer.alive

    def start(self) -> None:
        """Creates the cluster and starts the server; returns once it accepts connections.

        Raises:
            RuntimeError: the binaries are missing, or initdb or start-up failed
                (with the server's log), or start-up took longer than `start_timeout`.
        """
        if self.is_running:
            return
        bin_dir = self.bin_dir or find_bin_dir()
        deadline = time.monotonic() + self.start_timeout
        as_root = os.geteuid() == 0
        prefix = ["runuser", "-u", self.user, "--"] if as_root else []
        directory = Path(tempfile.mkdtemp(prefix="stigmer-pg-"))
        data = directory / "data"
        # Registered before anything can fail or start, so that nothing is
        # leaked: not on an error below, not when the object is dropped
        # without stop(), not at interpreter exit.
        self._finalizer = weakref.finalize(self, _teardown, prefix, bin_dir / "pg_ctl", directory)
        self.directory = directory
        try:
            if as_root:
                _hand_over(directory, self.user)
            _run(
                [
                    *prefix,
                    str(bin_dir / "initdb"),
                    "--pgdata",
                    str(data),
                    "--no-sync",
                    "--auth=trust",
                    "--username",
                    self.user,
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
            self._start_server(prefix, bin_dir, data, directory / "server.log", deadline)
        except BaseException:
            self.stop()
            raise

    def _start_server(
        self, prefix: list[str], bin_dir: Path, data: Path, log: Path, deadline: float
    ) -> None:
        for attempt in range(1, _START_ATTEMPTS + 1):
            port = _free_port()
            remaining = max(1, int(deadline - time.monotonic()))
            try:
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
            self.port = port
            return

    def stop(self) -> None:
        """Stops the server at once (no checkpoint) and deletes its directory.
        Safe to call more than once, and on a server that never started."""
        if self._finalizer is not None:
            self._finalizer()
        self.port = 0
        self.directory = None

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

    def drop_database(self, name: str) -> None:
        """Drops a database, disconnecting whoever is still connected to it."""
        self._admin(f"DROP DATABASE IF EXISTS {_checked(name)} WITH (FORCE)")

    def _admin(self, statement: str) -> None:
        import psycopg  # only the PostgreSQL tests need it

        with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as connection:
            connection.execute(statement.encode())


def _checked(name: str) -> str:
    if not _DATABASE_NAME.match(name):
        raise ValueError(f"database name {name!r} is not a lowercase identifier")
    return name


def _hand_over(directory: Path, user: str) -> None:
    """Gives the directory to the server's OS user (initdb refuses root)."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise RuntimeError(
            f"running as root, but there is no {user!r} user to run PostgreSQL as; "
            "`apt-get install -y postgresql` creates it"
        ) from None
    os.chown(directory, entry.pw_uid, entry.pw_gid)


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


def _teardown(prefix: list[str], pg_ctl: Path, directory: Path) -> None:
    """Stops the server (if it runs) and deletes its directory.

    `-m immediate` skips the shutdown checkpoint: nothing here is worth
    keeping. A module-level function, so the finalizer holds no reference to
    the TemporaryPostgres and can run when it is garbage-collected.
    """
    data = directory / "data"
    if (data / "postmaster.pid").exists():
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                [*prefix, str(pg_ctl), "stop", "--pgdata", str(data), "-m", "immediate", "--wait"],
                capture_output=True,
                timeout=30,
                check=False,
            )
    shutil.rmtree(directory, ignore_errors=True)
