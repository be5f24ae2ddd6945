"""`ScriptedModel`: a script (script.py) served over real HTTP (server.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from types import TracebackType

from stigmer.testing.scripted_model.script import Reply, Script
from stigmer.testing.scripted_model.server import DELAY_SLICE_SECONDS, ScriptedHTTPServer


class ScriptedModel(Script):
    """An OpenAI-compatible chat-completions server answering from a script.

    `start()`/`stop()` or `with`; `base_url` is valid while it runs.
    """

    def __init__(
        self,
        replies: Iterable[Reply] = (),
        *,
        default: Reply | None = None,
        chunk_size: int = 4,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        super().__init__(replies, default=default)
        self.chunk_size = chunk_size
        self._host = host
        self._port = port
        self._stopping = threading.Event()
        self._server: ScriptedHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Binds the port and serves on a background thread.

        Raises:
            RuntimeError: it is already running.
        """
        if self._server is not None:
            raise RuntimeError("ScriptedModel is already running")
        self._stopping = threading.Event()
        server = ScriptedHTTPServer(
            (self._host, self._port), self, chunk_size=self.chunk_size, stopping=self._stopping
        )
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": DELAY_SLICE_SECONDS},
            name=f"scripted-model:{server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stops serving, drops open connections and joins all threads; idempotent."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join()
        self._server = None
        self._thread = None

    def __enter__(self) -> ScriptedModel:
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
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/v1`, for `openai.OpenAI(base_url=...)`.

        Raises:
            RuntimeError: it is not running.
        """
        if self._server is None:
            raise RuntimeError("ScriptedModel is not running: call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"
