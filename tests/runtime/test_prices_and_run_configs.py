"""The price table and run-setting resolution, as pure functions: costs are
exact micro-dollars rounded up, models are found by name or prefix, local
models are free; choices come from the most specific layer, limits are the
smallest positive value."""

from __future__ import annotations

import pytest

from stigmer.api.v1 import execution_pb2, run_policy_pb2
from stigmer.resources.prices import FREE, Price, PriceTable, cost_micros, parse_prices
from stigmer.resources.run_configs import resolve_run_config

RunConfig = run_policy_pb2.RunConfig


def test_a_cost_is_exact_micro_dollars_rounded_up_with_cached_input_at_its_price() -> None:
    price = Price(input_micros=2_500_000, output_micros=10_000_000, cached_micros=1_250_000)
    usage = execution_pb2.Usage(input_tokens=1000, cached_tokens=200, output_tokens=50)
    # 800 * 2.5 + 200 * 1.25 + 50 * 10 = 2750 micro-dollars.
    assert cost_micros(price, usage) == 2750
    assert cost_micros(price, execution_pb2.Usage(input_tokens=1)) == 3  # 2.5, rounded up
    assert cost_micros(FREE, usage) == 0


def test_models_are_priced_by_name_then_longest_prefix_and_local_ones_are_free() -> None:
    table = PriceTable.with_overrides(parse_prices("my-model=1/2"))
    assert table.price_of("openai", "gpt-4o-mini-2024-07-18") == table.prices["gpt-4o-mini"]
    assert table.price_of("openai", "gpt-4o-2024-08-06") == table.prices["gpt-4o"]
    assert table.price_of("anthropic", "claude-sonnet-4-20250514").input_micros == 3_000_000
    assert table.price_of("openai", "my-model") == Price(1_000_000, 2_000_000, 1_000_000)
    assert table.price_of("ollama", "gpt-4o") == FREE
    assert table.price_of("local", "qwen") == FREE
    assert table.price_of("openai", "unknown-model") == FREE


@pytest.mark.parametrize("text", ["gpt=1", "=1/2", "gpt=a/b", "gpt=-1/2", "gpt=1/2/3/4"])
def test_a_malformed_price_list_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"gpt|MODEL"):
        parse_prices(text)


def test_choices_come_from_the_most_specific_layer_and_limits_are_the_minimum() -> None:
    server = RunConfig(max_tool_rounds=20, max_tokens=500, max_cost_usd=5)
    agent = RunConfig(
        max_tool_rounds=10,
        temperature=0.3,
        summarization=run_policy_pb2.SUMMARIZATION_OFF,
        max_tool_result_chars=30_000,
    )
    execution = RunConfig(max_tool_rounds=50, max_cost_usd=2, temperature=0)

    resolved = resolve_run_config(server, agent, execution)

    assert resolved.max_tool_rounds == 10  # a run cannot raise the agent's cap
    assert resolved.max_cost_usd == 2
    assert resolved.max_tool_result_chars == 30_000
    assert resolved.HasField("temperature") and resolved.temperature == 0
    assert resolved.max_tokens == 500
    assert resolved.summarization == run_policy_pb2.SUMMARIZATION_OFF
    assert resolve_run_config(RunConfig(), RunConfig()) == RunConfig()
