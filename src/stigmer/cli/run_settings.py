"""Run settings from the command line and the config file.

The server's profile (the `run.*` settings) and its price overrides
(`prices`) become the ServerOptions' run_profile and prices; `stigmer run`'s
flags (--max-cost, --max-tool-rounds, ...) become the execution's
spec.run_config. Both layers are then resolved by the server when the
execution is created (resources/run_configs.py).
"""

from __future__ import annotations

import math

from stigmer import config
from stigmer.api.v1 import run_policy_pb2
from stigmer.errors import InvalidArgument
from stigmer.resources.prices import PriceTable, parse_prices

SUMMARIZATION = {"on": run_policy_pb2.SUMMARIZATION_ON, "off": run_policy_pb2.SUMMARIZATION_OFF}


def run_profile() -> run_policy_pb2.RunConfig:
    """The server's layer of run settings, from the `run.*` settings.

    Raises:
        InvalidArgument: a setting breaks its rule.
    """
    profile = run_policy_pb2.RunConfig(
        max_cost_usd=float(config.checked_value("run.max_cost_usd")),
        max_tool_rounds=int(config.checked_value("run.max_tool_rounds")),
        max_tool_result_chars=int(config.checked_value("run.max_tool_result_chars")),
        max_tokens=int(config.checked_value("run.max_tokens")),
    )
    temperature = config.checked_value("run.temperature")
    if temperature:
        profile.temperature = float(temperature)
    summarization = config.checked_value("run.summarization")
    if summarization:
        profile.summarization = SUMMARIZATION[summarization]
    return profile


def price_table() -> PriceTable:
    """The shipped prices with the `prices` setting's over them.

    Raises:
        InvalidArgument: the setting is not a price list.
    """
    return PriceTable.with_overrides(parse_prices(config.checked_value("prices")))


def execution_run_config(
    *,
    max_cost: float | None,
    max_tool_rounds: int | None,
    max_tool_result_chars: int | None,
    temperature: float | None,
    max_tokens: int | None,
) -> run_policy_pb2.RunConfig:
    """`stigmer run`'s flags as the execution's spec.run_config.

    Raises:
        InvalidArgument: a value is out of its range (the field names the flag).
    """
    run_config = run_policy_pb2.RunConfig()
    if max_cost is not None:
        if not math.isfinite(max_cost) or not 0 < max_cost <= 1_000_000:
            raise InvalidArgument.for_field(
                "--max-cost", f"{max_cost} is not a number of dollars above 0 (at most 1000000)"
            )
        run_config.max_cost_usd = max_cost
    for flag, value, maximum, field in (
        ("--max-tool-rounds", max_tool_rounds, 100_000, "max_tool_rounds"),
        ("--max-tool-result-chars", max_tool_result_chars, 100_000_000, "max_tool_result_chars"),
        ("--max-tokens", max_tokens, 10_000_000, "max_tokens"),
    ):
        if value is None:
            continue
        if not 1 <= value <= maximum:
            raise InvalidArgument.for_field(
                flag, f"{value} is not a whole number from 1 to {maximum}"
            )
        setattr(run_config, field, value)
    if temperature is not None:
        if not math.isfinite(temperature) or not 0 <= temperature <= 2:
            raise InvalidArgument.for_field("--temperature", f"{temperature} is not from 0 to 2")
        run_config.temperature = temperature
    return run_config
