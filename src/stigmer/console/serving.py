"""The console's HTTP server: uvicorn on a socket the console binds itself.

Binding first (rather than letting uvicorn bind) makes a taken port an
error the caller can report in one line, and gives the real port at once
when 0 was asked for. Signals stay with whoever runs the event loop: inside
`stigmer server` the console is one more asyncio server of that process,
stopped with it, so uvicorn's own signal capture is turned off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator

import uvicorn

from stigmer.console.app import ConsoleOptions, build_console_app
from stigmer.errors import FailedPrecondition

logger = logging.getLogger(__name__)
# SSE streams end on their own when the console stops (app.state.stopping);
# what still hangs after this is cancelled.
GRACEFUL_SHUTDOWN_SECONDS = 2.0


class _EmbeddedUvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class ConsoleServer:
    """The console on host:port, as `async with` or start()/stop()."""

    def __init__(self, options: ConsoleOptions, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.options = options
        self.host = host
        self.requested_port = port
        self.app = build_console_app(options)
        self._socket: socket.socket | None = None
        self._server: _EmbeddedUvicorn | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("the console is not started")
        port: int = self._socket.getsockname()[1]
        return port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    async def start(self) -> None:
        """Binds and serves.

        Raises:
            FailedPrecondition: the port cannot be bound (taken, or not allowed).
        """
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self.requested_port))
        except OSError as error:
            listener.close()
            raise FailedPrecondition(
                f"the console cannot listen on {self.host}:{self.requested_port}: "
                f"{error.strerror or error} (choose another with --console-port, or 0 for none)",
                facts={"field": "console-port"},
            ) from None
        listener.listen(128)
        listener.setblocking(False)
        self._socket = listener
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=int(GRACEFUL_SHUTDOWN_SECONDS),
        )
        self._server = _EmbeddedUvicorn(config)
        self._task = asyncio.create_task(self._serve(listener), name="stigmer-console")
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise FailedPrecondition("the console stopped while starting")
            await asyncio.sleep(0.01)

    async def _serve(self, listener: socket.socket) -> None:
        assert self._server is not None
        try:
            await self._server.serve(sockets=[listener])
        except asyncio.CancelledError:
            raise
        except BaseException:
            logger.exception("the console stopped")
            raise

    async def stop(self) -> None:
        self.app.state.stopping.set()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.app.state.clients.close()
        if self._socket is not None:
            self._socket.close()
        self._server = self._task = None

    async def __aenter__(self) -> ConsoleServer:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()
