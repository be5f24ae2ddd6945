"""Context that never overflows: the step before every model call.

The conversation about to be sent (system prompt, the session's memory, this
execution's messages, the tool schemas) is measured (token_count.py) against
the model's context window (`llm.context_window`, else what the provider says,
else the table in model_windows.py; unknown, nothing is measured). Past the
trigger (`llm.context_trigger`, 85% of the window by default) older turns are
replaced by a summary that a model call writes (summarize.py; the run's
model, or `llm.summary_model`), cut where context_cut.py allows, so that the
conversation comes down to the target (`llm.context_target`, 60%). What was
done is reported to the sink, which records it in the execution
(`status.context`), and later model calls and later executions of the
session start from the summary.

With summarization off for the execution (`run_config.summarization: OFF`)
nothing is summarized: a conversation over the window fails the run with a
ModelError naming its tokens and the window, before the call, instead of the
provider's HTTP 400 after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

from stigmer import config
from stigmer.errors import InvalidArgument
from stigmer.runtime.context_cut import apply_cut, choose_cut
from stigmer.runtime.contract import (
    ChatProvider,
    ContextSettings,
    ContextSummaryReport,
    ModelCallUsage,
    ModelError,
    ModelErrorKind,
    ModelSettings,
    RunSink,
)
from stigmer.runtime.conversation import Message, ToolSpec
from stigmer.runtime.model_calls import new_model_call_id
from stigmer.runtime.model_windows import known_window
from stigmer.runtime.summarize import summarize_messages, summary_message
from stigmer.runtime.token_count import MESSAGE_OVERHEAD, TokenCounting, measure

__all__ = ["context_settings_from_config", "fit_context", "window_of"]

logger = logging.getLogger(__name__)

# Share of the window the summary itself may take.
SUMMARY_SHARE = 0.10
MIN_SUMMARY_TOKENS = 32


def context_settings_from_config() -> ContextSettings:
    """llm.context_window, llm.context_trigger, llm.context_target and llm.summary_model.

    Raises:
        InvalidArgument: a value breaks its rule, or the target is not below the trigger.
    """
    trigger = int(config.checked_value("llm.context_trigger")) / 100
    target = int(config.checked_value("llm.context_target")) / 100
    if target >= trigger:
        raise InvalidArgument.for_field(
            "llm.context_target",
            f"must be below llm.context_trigger ({target:.0%} is not below {trigger:.0%})",
        )
    return ContextSettings(
        window=int(config.checked_value("llm.context_window") or 0),
        trigger=trigger,
        target=target,
        summary_model=config.value("llm.summary_model"),
    )


async def window_of(settings: ContextSettings, model: str, provider: ChatProvider) -> int | None:
    """The window in tokens: the setting, else the provider's, else the table's."""
    # The provider is asked even when the setting decides: asking is what finds
    # its tokenizer (once per provider; the local model's starts it).
    provided = await provider.context_window() if isinstance(provider, TokenCounting) else None
    if settings.window > 0:
        return settings.window
    return provided or known_window(model)


async def fit_context(
    settings: ContextSettings,
    model: ModelSettings,
    provider: ChatProvider,
    *,
    system: str,
    messages: Sequence[Message],
    tools: Sequence[ToolSpec],
    sink: RunSink,
) -> list[Message]:
    """The conversation to send: `messages` as they are when they fit under the
    trigger, else with older turns summarized (reported to `sink`).

    Raises:
        ModelError: the conversation is over the window and summarization is off,
            it cannot be brought under the window (the latest human message alone
            is too long), or the summary call failed.
    """
    window = await window_of(settings, model.model, provider)
    if window is None:
        return list(messages)
    counting = provider if isinstance(provider, TokenCounting) else None
    before = await measure(system, messages, tools, counting)
    if before.total <= settings.trigger * window:
        return list(messages)
    if not settings.is_summarization_on:
        if before.total <= window:
            return list(messages)
        raise _too_long(before.total, window, before.counter, "summarization is off")
    summary_tokens = max(MIN_SUMMARY_TOKENS, int(window * SUMMARY_SHARE))
    target = int(settings.target * window)
    budget = target - before.fixed - summary_tokens - MESSAGE_OVERHEAD
    cut = choose_cut(before.per_message, messages, budget)
    if cut is None:
        if before.total <= window:
            return list(messages)
        raise _too_long(before.total, window, before.counter, "nothing older can be summarized")
    _, replaced = apply_cut(messages, cut, summary_message(""))
    async with _summarizer(settings, model, provider) as (summarizer, summary_model):
        summary = await summarize_messages(
            summarizer, replaced, input_tokens=target, summary_tokens=summary_tokens
        )
    for input_tokens, output_tokens in summary.calls:
        if input_tokens is not None or output_tokens is not None:
            await sink.usage(
                ModelCallUsage(
                    call_id=new_model_call_id(),
                    provider=model.provider,
                    model=summary_model,
                    input_tokens=input_tokens or 0,
                    output_tokens=output_tokens or 0,
                )
            )
    text = summary.text
    fitted, _ = apply_cut(messages, cut, summary_message(text))
    after = await measure(system, fitted, tools, counting)
    if after.total > window:
        raise _too_long(after.total, window, after.counter, "even after summarizing older turns")
    logger.info(
        "summarized %d of %d messages: %d -> %d tokens of a %d-token window",
        len(replaced),
        len(messages),
        before.total,
        after.total,
        window,
    )
    await sink.context_summarized(
        ContextSummaryReport(
            tokens_before=before.total,
            tokens_after=after.total,
            messages_before=len(messages),
            messages_after=len(fitted),
            summary=text,
            model=summary_model,
            kept_messages=len(messages) - cut,
            context_window=window,
            token_counter=before.counter,
        )
    )
    return fitted


@contextlib.asynccontextmanager
async def _summarizer(
    settings: ContextSettings, model: ModelSettings, provider: ChatProvider
) -> AsyncIterator[tuple[ChatProvider, str]]:
    """The provider that writes the summary, and its model's name."""
    if not settings.summary_model or settings.summary_model == model.model:
        yield provider, model.model
        return
    # Imported here: the providers bring the model SDKs, which this module's
    # other users (the CLI reading settings) never need.
    from stigmer.runtime.providers import provider_for

    # Off the event loop: building an SDK client loads TLS certificates (tens of ms).
    other = await asyncio.to_thread(provider_for, replace(model, model=settings.summary_model))
    try:
        yield other, settings.summary_model
    finally:
        await other.aclose()


def _too_long(tokens: int, window: int, counter: str, why: str) -> ModelError:
    counted = "estimated" if counter == "estimate" else f"counted by the {counter}"
    return ModelError(
        f"the conversation takes {tokens} tokens ({counted}), more than the model's context "
        f"window of {window} tokens, and {why}: the model was not called",
        kind=ModelErrorKind.CONTEXT_WINDOW,
    )
