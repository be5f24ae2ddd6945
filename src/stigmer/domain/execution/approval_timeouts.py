"""Approvals nobody answers: decided for the person once they waited too long.

An execution's spec.approval_timeout, else its agent's, says how long a
pending approval may wait and what then happens to it (SKIP, the default,
or REJECT); without one (0 seconds) it waits until decided, cancelled or
terminated. The deadline is computed from each PendingApproval's
requested_at, which is stored, so a server that restarts keeps every
deadline: a pass over the waiting executions (an indexed phase query)
decides those past theirs through execution.submit-approval, with
decided_by `timeout`. The server runs a pass every `interval_seconds` on
either engine: the decision re-queues the execution, and the engine
continues it as after any decision.
"""

from __future__ import annotations

import asyncio
import logging
import time

from stigmer.api.v1 import execution_pb2, run_policy_pb2
from stigmer.domain.clients import ResourceReader
from stigmer.domain.execution.approvals import TIMEOUT_DECIDER
from stigmer.domain.execution.controller import ExecutionController
from stigmer.errors import StigmerError
from stigmer.resources.execution_events import WAITING_FOR_APPROVAL, phase_name
from stigmer.resources.kinds import AGENT, AGENT_EXECUTION
from stigmer.store.base import ListQuery
from stigmer.tasks import cancel_tasks, guarded_task

logger = logging.getLogger(__name__)
WAITING_PAGE_SIZE = 100
_ACTIONS = {
    run_policy_pb2.APPROVAL_TIMEOUT_ACTION_UNSPECIFIED: execution_pb2.APPROVAL_ACTION_SKIP,
    run_policy_pb2.APPROVAL_TIMEOUT_ACTION_SKIP: execution_pb2.APPROVAL_ACTION_SKIP,
    run_policy_pb2.APPROVAL_TIMEOUT_ACTION_REJECT: execution_pb2.APPROVAL_ACTION_REJECT,
}
TIMEOUT_COMMENT = "no decision within {seconds} s (approval_timeout)"


class ApprovalTimeouts:
    def __init__(self, executions: ExecutionController, interval_seconds: float = 1.0) -> None:
        self.executions = executions
        self.interval_seconds = interval_seconds
        self._agents = ResourceReader(AGENT)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [guarded_task("stigmer-approval-timeouts", self._decide_forever)]

    async def stop(self) -> None:
        await cancel_tasks(self._tasks)
        self._tasks = []

    async def _decide_forever(self) -> None:
        while True:
            try:
                await self.decide_expired()
            except StigmerError as error:
                logger.warning("cannot decide expired approvals: %s", error)
            await asyncio.sleep(self.interval_seconds)

    async def decide_expired(self) -> int:
        """Decides every pending approval past its deadline; returns how many."""
        decided = 0
        for execution, timeout in await self._waiting_with_timeouts():
            for pending in list(execution.status.pending_approvals):
                deadline = pending.requested_at.ToSeconds() + timeout.seconds
                if time.time() < deadline:
                    continue
                request = execution_pb2.SubmitApprovalRequest(
                    execution_id=execution.metadata.id,
                    tool_call_id=pending.tool_call_id,
                    action=_ACTIONS[timeout.on_timeout],
                    comment=TIMEOUT_COMMENT.format(seconds=timeout.seconds),
                )
                try:
                    await self.executions.submit_approval(request, decided_by=TIMEOUT_DECIDER)
                except StigmerError as error:
                    # Decided, cancelled or deleted since it was read.
                    logger.info("approval %s not timed out: %s", pending.tool_call_id, error)
                    continue
                decided += 1
        return decided

    async def _waiting_with_timeouts(
        self,
    ) -> list[tuple[execution_pb2.AgentExecution, run_policy_pb2.ApprovalTimeout]]:
        found = []
        async with self.executions.store.transaction(write=False) as transaction:
            after = ""
            while True:
                page = await transaction.list(
                    ListQuery(
                        kind=AGENT_EXECUTION.name,
                        phase=phase_name(WAITING_FOR_APPROVAL),
                        after_id=after,
                        limit=WAITING_PAGE_SIZE,
                    )
                )
                for record in page:
                    execution = execution_pb2.AgentExecution.FromString(record.data)
                    timeout = execution.spec.approval_timeout
                    if timeout.seconds <= 0:
                        agent = await self._agents.find(execution.status.agent_id, transaction)
                        if agent is not None:
                            timeout = agent.spec.approval_timeout
                    if timeout.seconds > 0:
                        found.append((execution, timeout))
                if len(page) < WAITING_PAGE_SIZE:
                    break
                after = page[-1].id
        return found
