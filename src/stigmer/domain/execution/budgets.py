"""Run budgets, enforced where an execution's events are recorded.

Every model call a worker reports (a usage_added event) is priced here, by
the server, from its price table (resources/prices.py) -- a worker's own
figures are replaced -- and kept as a usage record in the same transaction
as the event, once per (execution, call): a report that arrives twice
counts once. The execution's status sums the calls (status.usage).

The limits of status.run_config are checked in the same step, whichever
engine runs the execution, so a Temporal worker cannot overrun them:

- max_tool_rounds counts the model turns that asked for tools (a turn's
  tool calls are reported together, in one report). The turn that asks for
  tools once more than allowed ends the execution; its calls never run.
- max_cost_usd: once the summed cost reaches the cap the execution ends.
  Passing 80% of it first, the model is told once, in a SYSTEM message
  whose text (status.cost_note) later model calls carry in their system
  prompt, to wrap up.

A limit ends the execution TERMINATED, with a SYSTEM message naming the
limit and the figures, in the transaction that recorded the report; the
controller then tells the engine to stop the work, and the engine's later
reports are refused as being about an ended execution.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from stigmer.api.v1 import execution_pb2
from stigmer.domain.execution.updates import UpdateContext
from stigmer.resources.execution_events import (
    TERMINAL_PHASES,
    TERMINATED,
    budget_changed_event,
    phase_event,
    system_message_event,
)
from stigmer.resources.prices import PriceTable, cost_micros
from stigmer.resources.prices import format_dollars as dollars
from stigmer.resources.run_configs import COST_WARNING_SHARE, max_cost_micros
from stigmer.store.usage_records import UsageRecord

Event = execution_pb2.ExecutionEvent
MAX_TOOL_ROUNDS = "max_tool_rounds"
MAX_COST_USD = "max_cost_usd"


@dataclass(frozen=True)
class RecordUsageStep:
    """Prices each reported model call and keeps its usage record; a call
    recorded already is dropped from the report."""

    prices: PriceTable
    name: str = "record-usage"

    async def run(self, context: UpdateContext) -> None:
        execution = context.require_execution()
        kept: list[Event] = []
        for event in context.events:
            if event.WhichOneof("change") == "usage_added":
                is_new = await self._account(context, execution, event)
                if not is_new:
                    continue
            kept.append(event)
        context.events = kept

    async def _account(
        self, context: UpdateContext, execution: execution_pb2.AgentExecution, event: Event
    ) -> bool:
        usage = event.usage_added
        price = self.prices.price_of(usage.provider, usage.model)
        usage.price.CopyFrom(price.as_proto())
        usage.cost_micros = cost_micros(price, usage)
        usage.model_calls = 1
        # A worker that names no call cannot be deduplicated: its call is new.
        usage.call_id = usage.call_id or f"mc-{uuid.uuid4().hex}"
        moment = event.at.ToDatetime(UTC) if event.HasField("at") else datetime.now(UTC)
        return await context.transaction.insert_usage(
            UsageRecord(
                execution_id=execution.metadata.id,
                call_id=usage.call_id,
                org=execution.metadata.org,
                agent_id=execution.status.agent_id,
                session_id=execution.status.session_id,
                sub_agent=usage.sub_agent,
                provider=usage.provider,
                model=usage.model,
                day=moment.date().isoformat(),
                at=moment.timestamp(),
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cached_tokens=usage.cached_tokens,
                reasoning_tokens=usage.reasoning_tokens,
                duration_ms=usage.duration_ms,
                cost_micros=usage.cost_micros,
                price_input_micros=price.input_micros,
                price_output_micros=price.output_micros,
                price_cached_micros=price.cached_micros,
            )
        )


@dataclass(frozen=True)
class EnforceBudgetsStep:
    """Counts tool rounds and cost; ends the execution at a limit, and
    warns the model once at 80% of the cost cap."""

    name: str = "enforce-budgets"

    async def run(self, context: UpdateContext) -> None:
        status = context.require_execution().status
        events = context.events
        known = {call.id for call in status.tool_calls}
        asked = {
            event.tool_call_updated.id
            for event in events
            if event.WhichOneof("change") == "tool_call_updated"
            and event.tool_call_updated.status == execution_pb2.TOOL_CALL_STATUS_PENDING
            and event.tool_call_updated.id not in known
        }
        rounds = status.tool_rounds + (1 if asked else 0)
        cost = status.usage.cost_micros + sum(
            event.usage_added.cost_micros
            for event in events
            if event.WhichOneof("change") == "usage_added"
        )
        if rounds != status.tool_rounds:
            events.append(budget_changed_event(tool_rounds=rounds))
        if any(
            event.WhichOneof("change") == "phase_changed"
            and event.phase_changed.phase in TERMINAL_PHASES
            for event in events
        ):
            return  # the report ends the execution itself
        config = status.run_config
        cap = max_cost_micros(config)
        if cap and cost >= cap:
            self._terminate(
                context,
                MAX_COST_USD,
                f"stopped: the model calls cost {dollars(cost)}, reaching the limit of "
                f"{dollars(cap)} (max_cost_usd)",
            )
        elif config.max_tool_rounds and rounds > config.max_tool_rounds:
            self._terminate(
                context,
                MAX_TOOL_ROUNDS,
                f"stopped: the model asked for tools a {_ordinal(rounds)} time, past the limit "
                f"of {config.max_tool_rounds} tool rounds (max_tool_rounds)",
            )
        elif cap and cost >= cap * COST_WARNING_SHARE and not status.cost_note:
            note = (
                f"This execution's model calls have cost {dollars(cost)}, "
                f"{cost * 100 // cap}% of its limit of {dollars(cap)} (max_cost_usd). Wrap up "
                "now: give your final answer with what you have; the execution is stopped "
                "when the limit is reached."
            )
            events.extend([system_message_event(note), budget_changed_event(cost_note=note)])

    def _terminate(self, context: UpdateContext, limit: str, message: str) -> None:
        context.events.extend(
            [
                system_message_event(message),
                budget_changed_event(limit_reached=limit),
                phase_event(TERMINATED, message),
            ]
        )
        context.limit_message = message


def _ordinal(number: int) -> str:
    if 10 <= number % 100 <= 20:
        return f"{number}th"
    return f"{number}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(number % 10, 'th') }"
