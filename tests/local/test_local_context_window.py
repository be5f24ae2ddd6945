"""The local model's context window and tokenizer come from llama.cpp itself:
`/props` reports the context of its request slot, `/tokenize` counts with the
model's own vocabulary."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from stigmer.runtime.context_window import window_of
from stigmer.runtime.contract import ContextSettings, ModelSettings
from stigmer.runtime.conversation import UserMessage
from stigmer.runtime.local_model import LocalChatProvider, LocalModelConfig, LocalModelHost
from stigmer.runtime.model_files import DEFAULT_MODEL
from stigmer.runtime.token_count import ESTIMATE, measure

CONTEXT_SIZE = 4096


@pytest.fixture
def host(installed_model: Path) -> Iterator[LocalModelHost]:
    """A host of the test's own (not the shared one), stopped afterwards."""
    own = LocalModelHost()
    yield own
    asyncio.run(own.stop())


@pytest.mark.slow
def test_the_local_model_reports_its_window_and_counts_with_its_tokenizer(
    host: LocalModelHost, installed_model: Path
) -> None:
    async def scenario() -> tuple[int | None, int | None, str, int, int]:
        provider = LocalChatProvider(
            ModelSettings("local", DEFAULT_MODEL.alias),
            host=host,
            model_config=LocalModelConfig(model_path=installed_model, context_size=CONTEXT_SIZE),
        )
        try:
            window = await window_of(ContextSettings(), DEFAULT_MODEL.alias, provider)
            counted = await provider.count_tokens("hello world " * 50)
            text = [UserMessage("The quick brown fox jumps over the lazy dog. " * 40)]
            exact = await measure("You answer.", text, [], provider)
            estimated = await measure("You answer.", text, [], None)
            return window, counted, exact.counter, exact.total, estimated.total
        finally:
            await provider.aclose()

    window, counted, counter, exact_total, estimated_total = asyncio.run(scenario())

    assert window == CONTEXT_SIZE
    # 50 repetitions of two words: about 100 tokens, never the 150 characters / 4.
    assert counted is not None and 90 <= counted <= 110
    assert counter == "llama.cpp tokenizer" != ESTIMATE
    # English prose: the tokenizer's count differs from the estimate, and is the one used.
    assert exact_total != estimated_total
    assert 0.5 * estimated_total < exact_total < 1.5 * estimated_total
