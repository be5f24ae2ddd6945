"""What a model call carries beyond the conversation: the run's temperature
and max_tokens go with the request, and the token kinds a provider reports
(cached, reasoning) come back in the turn. Over real HTTP, through the SDKs."""

from __future__ import annotations

import asyncio

from stigmer.runtime.anthropic_chat import AnthropicChatProvider
from stigmer.runtime.contract import ChatProvider, ModelSettings, Sampling
from stigmer.runtime.conversation import ModelTurn, UserMessage
from stigmer.runtime.openai_chat import OpenAIChatProvider
from stigmer.runtime.tool_results import cap_tool_result
from stigmer.testing.scripted_model import Reply, ScriptedModel
from tests.runtime.anthropic_stream import CannedAnthropic, text_reply


async def _ignore(text: str) -> None:
    pass


def _turn(provider: ChatProvider, sampling: Sampling) -> ModelTurn:
    async def scenario() -> ModelTurn:
        try:
            return await provider.stream_turn(
                system="Be brief.",
                messages=[UserMessage("hi")],
                tools=[],
                on_delta=_ignore,
                sampling=sampling,
            )
        finally:
            await provider.aclose()

    return asyncio.run(scenario())


def test_openai_calls_carry_sampling_and_report_cached_and_reasoning_tokens() -> None:
    reply = Reply(
        content="hi", input_tokens=1200, output_tokens=300, cached_tokens=1000, reasoning_tokens=200
    )
    silent = Reply(content="no usage", is_usage_reported=False)
    with ScriptedModel([reply, Reply(content="again"), silent]) as model:
        settings = ModelSettings(provider="openai", model="gpt-4o", base_url=model.base_url)
        turn = _turn(OpenAIChatProvider(settings), Sampling(temperature=0.0, max_tokens=77))
        plain = _turn(OpenAIChatProvider(settings), Sampling())
        unreported = _turn(OpenAIChatProvider(settings), Sampling())
    assert (turn.input_tokens, turn.output_tokens) == (1200, 300)
    assert (turn.cached_tokens, turn.reasoning_tokens) == (1000, 200)
    assert (model.requests[0]["temperature"], model.requests[0]["max_tokens"]) == (0.0, 77)
    assert "temperature" not in model.requests[1]
    assert "max_tokens" not in model.requests[1]
    assert (plain.cached_tokens, plain.reasoning_tokens) == (None, None)
    assert (unreported.input_tokens, unreported.output_tokens) == (None, None)


def test_anthropic_requests_carry_temperature_and_max_tokens() -> None:
    with CannedAnthropic([text_reply("hi")]) as canned:
        settings = ModelSettings(
            provider="anthropic", model="claude", base_url=canned.base_url, api_key="key"
        )
        _turn(AnthropicChatProvider(settings), Sampling(temperature=0.5, max_tokens=64))
    (request,) = canned.requests
    assert (request["temperature"], request["max_tokens"]) == (0.5, 64)


def test_a_result_over_max_chars_keeps_that_many_and_says_how_many_were_cut() -> None:
    cut = cap_tool_result("x" * 1000, max_chars=100)
    assert cut == "x" * 100 + "\n[result cut: 900 of 1,000 characters left out]"
    assert cap_tool_result(cut, max_chars=100) == cut
    assert cap_tool_result("short", max_chars=100) == "short"
