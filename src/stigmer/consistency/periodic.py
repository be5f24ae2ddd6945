"""The server's own consistency checker, run every `interval` seconds.

It logs each violation as a warning with its code, keeps the last report
for the GetLastReport RPC, and heals on its own only what needs no
decision: an agent's missing or wrong pointer to its default instance.
(Expired leases are the engine's reaper's job, which runs every lease
period.) An interval of zero turns it off. Each check is paced (see
checker.py): it shares the server with requests instead of stalling them,
and the next one starts `interval` seconds after it ends.
"""

from __future__ import annotations

import asyncio
import logging

from stigmer.consistency.checker import Report, check
from stigmer.consistency.invariants import Code
from stigmer.consistency.repair import POINTER_CODES
from stigmer.domain.registry import Domains
from stigmer.errors import StigmerError
from stigmer.tasks import cancel_tasks, guarded_task

logger = logging.getLogger(__name__)


class PeriodicChecker:
    def __init__(self, domains: Domains, interval_seconds: float) -> None:
        self.domains = domains
        self.interval_seconds = interval_seconds
        self.last_report: Report | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.interval_seconds > 0:
            self._task = guarded_task("stigmer-consistency-checker", self._loop)

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_tasks([self._task])
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_seconds)
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("the consistency check failed")

    async def run_once(self) -> Report:
        report = await check(self.domains.store)
        self.last_report = report
        for violation in report.violations:
            logger.warning("Consistency violation %s: %s", violation.code, violation.message)
            if violation.code in POINTER_CODES:
                await self._heal_pointer(violation.code, violation.subject_id)
        return report

    async def _heal_pointer(self, code: Code, agent_id: str) -> None:
        try:
            async with self.domains.store.transaction() as transaction:
                await self.domains.agents.ensure_default_instance(
                    agent_id, transaction, field="agent"
                )
        except StigmerError as error:
            logger.warning("Could not heal %s for agent %s: %s", code, agent_id, error.message)
        else:
            logger.info("Healed %s for agent %s", code, agent_id)
