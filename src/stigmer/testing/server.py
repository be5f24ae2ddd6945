"""A Stigmer server on its own thread and event loop, for tests.

The server is the real one (gRPC on 127.0.0.1, a real store); running it on
a thread lets a test drive it with the synchronous Client, the CLI in a
subprocess, or its own event loop, and read the server's log records.

    with ServerThread(store_url=str(tmp_path / "stigmer.db")) as server:
        client = Client(server.address)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from stigmer.engine.embedded import EngineOptions
from stigmer.server.app import ServerOptions, StigmerServer

T = TypeVar("T")
START_TIMEOUT_SECONDS = 30.0


class ServerThread:
    def __init__(
        self,
        store_url: str,
        *,
        port: int = 0,
        engine: EngineOptions | None = None,
        check_interval_seconds: float = 0.0,
    ) -> None:
        self.options = ServerOptions(
            store_url=store_url,
            port=port,
            grace_seconds=1.0,
            engine=engine or EngineOptions(),
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
