"""Real Stigmer servers for tests: on a thread, or as their own process.

ServerThread runs the server on its own thread and event loop, so a test can
drive it with the synchronous Client or the CLI and read its log records:

    with ServerThread(store_url=str(tmp_path / "stigmer.db")) as server:
        client = Client(server.address)

ServerProcess runs `stigmer server` as a child process, for what only a
process can show: being killed (SIGKILL, an injected crash) and restarted.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import threading
import time
from collections.abc import Coroutine, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar

from stigmer.client import Client
from stigmer.engine.options import EngineOptions
from stigmer.local_ports import free_local_port
from stigmer.server.app import ServerOptions, StigmerServer
from stigmer.server.tls import TlsFiles
from stigmer.testing.cli import Cli

if TYPE_CHECKING:
    from stigmer.engine.temporal_engine import TemporalOptions

T = TypeVar("T")
# Generous: on a loaded machine a process importing the model SDKs takes a while.
START_TIMEOUT_SECONDS = 90.0


class ServerThread:
    def __init__(
        self,
        store_url: str,
        *,
        port: int = 0,
        engine: EngineOptions | None = None,
        temporal: TemporalOptions | None = None,
        check_interval_seconds: float = 0.0,
        host: str = "127.0.0.1",
        auth: str = "none",
        admin_token_path: Path | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        self.options = ServerOptions(
            store_url=store_url,
            host=host,
            port=port,
            auth=auth,
            admin_token_path=admin_token_path,
            tls=tls,
            grace_seconds=1.0,
            engine=engine or EngineOptions(),
            temporal=temporal,
            check_interval_seconds=check_interval_seconds,
        )
        self._server: StigmerServer | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="stigmer-server", daemon=True
        )

    @property
    def server(self) -> StigmerServer:
        if self._server is None:
            raise RuntimeError("the server is not started")
        return self._server

    @property
    def address(self) -> str:
        return self.server.address

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Runs a coroutine on the server's loop (e.g. a direct domain call)."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(START_TIMEOUT_SECONDS)

    def start(self) -> None:
        self._thread.start()
        self._server = StigmerServer(self.options)
        try:
            self.run(self._server.start())
        except BaseException:
            self._stop_loop()
            raise

    def stop(self) -> None:
        if self._server is not None and self._thread.is_alive():
            self.run(self._server.stop())
        self._stop_loop()

    def _stop_loop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(START_TIMEOUT_SECONDS)
        if not self._loop.is_closed():
            self._loop.close()

    def __enter__(self) -> ServerThread:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


class StigmerProcess:
    """A `stigmer` command running as a child process, with its own settings.

    `settings` are STIGMER_* variables (without the prefix), e.g.
    {"LLM_BASE_URL": ..., "LEASE_SECONDS": "2", "CRASH_AT": "agent.create/persist"}.
    The process's output goes to `log`.
    """

    def __init__(
        self, home: Path, arguments: Sequence[str], settings: Mapping[str, str], log: Path
    ) -> None:
        self.arguments = tuple(arguments)
        self.cli = Cli.isolated(home, settings)
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Starts it and waits until it is ready.

        Raises:
            RuntimeError: it exited or was not ready in time (with its log).
        """
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.process = self.cli.start(*self.arguments, output=log)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self.is_ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.arguments[0]} did not start:\n{self.log.read_text()}")
            time.sleep(0.05)

    def is_ready(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def wait(self, timeout: float) -> int:
        """Waits for the process to exit on its own; returns its exit code."""
        assert self.process is not None
        return self.process.wait(timeout)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit; idempotent."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


class ServerProcess(StigmerProcess):
    """`stigmer server` in the foreground; ready when it serves.

    `store` is a SQLite path or any store URL.
    """

    def __init__(self, home: Path, store: Path | str, settings: Mapping[str, str]) -> None:
        self.port = free_local_port()
        self.address = f"127.0.0.1:{self.port}"
        super().__init__(
            home,
            ["server"],
            {"STORE": str(store), "PORT": str(self.port), **settings},
            home / f"server-{self.port}.log",
        )

    def is_ready(self) -> bool:
        with Client(self.address) as client:
            return client.is_serving(wait_seconds=0.5)
