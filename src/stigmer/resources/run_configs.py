"""Resolving an execution's run settings from its layers.

Three layers set a RunConfig, least specific first: the server's profile
(the config file's `run:` section), the agent (spec.run_config) and the
execution (spec.run_config). They are resolved once, when the execution is
created, into status.run_config, which is what applies from then on:

- choices (temperature, max_tokens, summarization) come from the most
  specific layer that sets them;
- limits (max_cost_usd, max_tool_rounds, max_tool_result_chars) are the
  smallest positive value across the layers, so a run can lower an agent's
  or the server's cap but never raise it (0 means "no limit here").
"""

from __future__ import annotations

from stigmer.api.v1 import run_policy_pb2

RunConfig = run_policy_pb2.RunConfig
LIMITS = ("max_cost_usd", "max_tool_rounds", "max_tool_result_chars")
# The share of max_cost_usd at which the model is told to wrap up.
COST_WARNING_SHARE = 0.8


def resolve_run_config(*layers: RunConfig) -> RunConfig:
    """The settings that apply, from layers given least specific first."""
    resolved = RunConfig()
    for layer in layers:
        if layer.HasField("temperature"):
            resolved.temperature = layer.temperature
        if layer.max_tokens > 0:
            resolved.max_tokens = layer.max_tokens
        if layer.summarization != run_policy_pb2.SUMMARIZATION_UNSPECIFIED:
            resolved.summarization = layer.summarization
    for limit in LIMITS:
        positive = [getattr(layer, limit) for layer in layers if getattr(layer, limit) > 0]
        if positive:
            setattr(resolved, limit, min(positive))
    return resolved


def max_cost_micros(config: RunConfig) -> int:
    """The cost cap in micro-dollars (0: none)."""
    return round(config.max_cost_usd * 1_000_000)
