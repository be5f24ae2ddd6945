"""`stigmer worker`s for tests of the Temporal engine: on a thread of the
test process (cheap: nothing to import again), or as their own process, for
what only a process can show: being killed mid-activity.

    with WorkerThread(server.address, temporal.address, model, task_queue=queue) as worker:
        ...
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from stigmer.engine.temporal_workflow import DEFAULT_TASK_QUEUE
from stigmer.runtime.contract import ContextSettings, ModelSettings
from stigmer.testing.server import START_TIMEOUT_SECONDS, StigmerProcess
from stigmer.worker.process import WorkerOptions, run_worker

_worker_numbers = itertools.count(1)


class WorkerThread:
    """A worker on its own thread and event loop, named `identity`."""

    def __init__(
        self,
        server: str,
        temporal_address: str,
        model: ModelSettings,
        *,
        task_queue: str = DEFAULT_TASK_QUEUE,
        namespace: str = "default",
        context: ContextSettings | None = None,
    ) -> None:
        self.identity = f"test-worker-{next(_worker_numbers)}"
        self.options = WorkerOptions(
            server=server,
            temporal_address=temporal_address,
            namespace=namespace,
            task_queue=task_queue,
            model=model,
            identity=self.identity,
            context=context or ContextSettings(),
        )
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=self.identity, daemon=True)

    def _run(self) -> None:
        async def work() -> None:
            self._stop = asyncio.Event()
            await run_worker(self.options, self._stop, ready=self._ready.set)

        try:
            self._loop.run_until_complete(work())
        except BaseException as error:  # reported by start()
            self._error = error
            self._ready.set()
        finally:
            self._loop.close()

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_SECONDS) or self._error is not None:
            raise RuntimeError(f"{self.identity} did not start: {self._error}")

    def stop(self) -> None:
        if self._thread.is_alive() and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(START_TIMEOUT_SECONDS)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


class WorkerProcess(StigmerProcess):
    """`stigmer worker` for the server at `server`; ready once it has logged
    that it started (it has then connected to Temporal)."""

    def __init__(
        self, home: Path, server: str, temporal_address: str, settings: Mapping[str, str]
    ) -> None:
        self.name = f"worker-{next(_worker_numbers)}"
        super().__init__(
            home,
            ["worker"],
            {"SERVER": server, "TEMPORAL_ADDRESS": temporal_address, **settings},
            home / f"{self.name}.log",
        )

    @property
    def identity(self) -> str:
        """The identity Temporal records for the activities it runs."""
        return f"stigmer-worker/{socket.gethostname()}/{self.pid}"

    def is_ready(self) -> bool:
        return super().is_ready() and b"Stigmer worker" in self.log.read_bytes()
