"""What the agent loop and the Temporal engine's model-call activity share
about one model call, beyond the provider's own work: the system prompt it
is sent with (the agent's instructions, and the note the server gave when
the run's cost budget was nearly spent) and the usage it is reported with.
"""

from __future__ import annotations

import uuid

from stigmer.runtime.contract import ModelCallUsage, ModelSettings
from stigmer.runtime.conversation import ModelTurn


def system_prompt(instructions: str, note: str) -> str:
    """The instructions, with the server's note after them when there is one."""
    if not note:
        return instructions
    return f"{instructions}\n\n[SYSTEM NOTE] {note}" if instructions else f"[SYSTEM NOTE] {note}"


def new_model_call_id() -> str:
    return f"mc-{uuid.uuid4().hex}"


def usage_of(
    turn: ModelTurn, model: ModelSettings, *, call_id: str, duration_seconds: float
) -> ModelCallUsage | None:
    """The call's usage as its provider reported it; None when it reported none."""
    if turn.input_tokens is None and turn.output_tokens is None:
        return None
    return ModelCallUsage(
        call_id=call_id,
        provider=model.provider,
        model=model.model,
        input_tokens=turn.input_tokens or 0,
        output_tokens=turn.output_tokens or 0,
        cached_tokens=turn.cached_tokens or 0,
        reasoning_tokens=turn.reasoning_tokens or 0,
        duration_seconds=duration_seconds,
    )
