"""The tool servers a worker keeps open between the tool calls of an execution.

An execution's tool calls are separate activities, but on a worker that runs
several of them a stdio tool server should not be a new process per call: it
would cost a start each time and forget whatever the server keeps between
calls within a run. So a worker keeps one tool box per (execution, server),
opened on the first call, closed when the worker records the execution's end,
when a call is cut short (the server's state is then unknown), when its
settings change, or after IDLE_SECONDS unused (the execution's end may have
been recorded by another worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stigmer.runtime.contract import ToolServer
from stigmer.runtime.tools import ToolBox, ToolResult

IDLE_SECONDS = 300.0


@dataclass
class _Open:
    server: ToolServer
    box: ToolBox
    last_used: float = field(default_factory=time.monotonic)


class ToolBoxes:
    def __init__(self, idle_seconds: float = IDLE_SECONDS) -> None:
        self.idle_seconds = idle_seconds
        self._open: dict[tuple[str, str], _Open] = {}

    async def call(
        self,
        execution_id: str,
        server: ToolServer,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        call_timeout_seconds: float = 300.0,
    ) -> ToolResult:
        """Calls `tool` on the execution's `server`, starting it if needed.

        Raises:
            ToolServerError: the server cannot be started.
        """
        key = (execution_id, server.name)
        current = self._open.get(key)
        if current is not None and current.server != server:
            await self._close(key)
            current = None
        if current is None:
            box = ToolBox([server], call_timeout_seconds=call_timeout_seconds)
            await box.__aenter__()
            current = self._open[key] = _Open(server, box)
        current.last_used = time.monotonic()
        try:
            return await current.box.call(tool, arguments)
        except BaseException:
            await self._close(key)
            raise

    async def close_execution(self, execution_id: str) -> None:
        for key in [key for key in self._open if key[0] == execution_id]:
            await self._close(key)

    async def close_idle(self) -> None:
        oldest = time.monotonic() - self.idle_seconds
        for key in [key for key, opened in self._open.items() if opened.last_used < oldest]:
            await self._close(key)

    async def close_idle_forever(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, self.idle_seconds / 4))
            await self.close_idle()

    async def aclose(self) -> None:
        for key in list(self._open):
            await self._close(key)

    async def _close(self, key: tuple[str, str]) -> None:
        opened = self._open.pop(key, None)
        if opened is not None:
            with contextlib.suppress(Exception):
                await opened.box.__aexit__(None, None, None)
