"""Where a model's context window comes from, and the settings that steer summaries."""

from __future__ import annotations

from pathlib import Path

import pytest

from stigmer import config
from stigmer.errors import InvalidArgument
from stigmer.runtime.context_window import context_settings_from_config
from stigmer.runtime.model_windows import _ollama_window, known_window


@pytest.mark.parametrize(
    ("model", "window"),
    [
        ("gpt-4o-mini", 128_000),
        ("gpt-4.1-nano", 1_047_576),
        ("gpt-4", 8_192),
        ("gpt-4-turbo-2024-04-09", 128_000),
        ("openai/gpt-5-mini", 400_000),
        ("claude-haiku-4-5", 200_000),
        ("qwen2.5-coder", None),
    ],
)
def test_known_models_have_their_published_window(model: str, window: int | None) -> None:
    assert known_window(model) == window


def test_ollama_num_ctx_wins_over_the_trained_length() -> None:
    shown = {
        "parameters": 'stop "<|im_end|>"\nnum_ctx                        16384',
        "model_info": {"qwen2.context_length": 32768},
    }
    assert _ollama_window(shown) == 16384
    assert _ollama_window({"model_info": {"qwen2.context_length": 32768}}) == 32768
    assert _ollama_window({"error": "model not found"}) is None


def test_settings_come_from_the_config_with_their_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (
        "STIGMER_LLM_CONTEXT_WINDOW",
        "STIGMER_LLM_CONTEXT_TRIGGER",
        "STIGMER_LLM_CONTEXT_TARGET",
        "STIGMER_LLM_SUMMARY_MODEL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(config, "config_path", lambda: Path("/nonexistent/config.yaml"))
    defaults = context_settings_from_config()
    assert (defaults.window, defaults.trigger, defaults.target, defaults.summary_model) == (
        0,
        0.85,
        0.60,
        "",
    )

    monkeypatch.setenv("STIGMER_LLM_CONTEXT_WINDOW", "4096")
    monkeypatch.setenv("STIGMER_LLM_SUMMARY_MODEL", "small-model")
    monkeypatch.setenv("STIGMER_LLM_CONTEXT_TRIGGER", "70")
    monkeypatch.setenv("STIGMER_LLM_CONTEXT_TARGET", "40")
    chosen = context_settings_from_config()
    assert (chosen.window, chosen.trigger, chosen.target, chosen.summary_model) == (
        4096,
        0.70,
        0.40,
        "small-model",
    )


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("STIGMER_LLM_CONTEXT_TARGET", "90", "llm.context_target"),
        ("STIGMER_LLM_CONTEXT_TRIGGER", "0", "llm.context_trigger"),
        ("STIGMER_LLM_CONTEXT_TRIGGER", "101", "llm.context_trigger"),
        ("STIGMER_LLM_CONTEXT_WINDOW", "8k", "llm.context_window"),
    ],
)
def test_bad_context_settings_are_invalid_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str, field: str
) -> None:
    monkeypatch.setattr(config, "config_path", lambda: Path("/nonexistent/config.yaml"))
    monkeypatch.setenv(key, value)
    with pytest.raises(InvalidArgument) as raised:
        context_settings_from_config()
    assert raised.value.facts["field"] == field
