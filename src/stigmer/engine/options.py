"""The engine's settings: how many executions run at once, how long a lease
lasts, and the model runs use when their agent names none.

A module of its own so that what only describes an engine (the CLI building
a server's options, the tests, the benchmarks) does not import the engine,
and through it the domain and the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from stigmer.runtime.contract import ContextSettings, ModelSettings
from stigmer.runtime.tool_results import DEFAULT_MAX_BYTES


@dataclass(frozen=True)
class EngineOptions:
    workers: int = 4
    lease_seconds: float = 15.0
    poll_seconds: float = 1.0
    max_steps: int = 16
    # A tool result is cut to this many bytes when recorded (runtime/tool_results.py).
    max_tool_result_bytes: int = DEFAULT_MAX_BYTES
    model: ModelSettings = field(default_factory=lambda: ModelSettings("openai", ""))
    # The context window and its summaries (runtime/context_window.py).
    context: ContextSettings = field(default_factory=ContextSettings)
    # How the user names the model's provider (ollama and openai both speak
    # the "openai" protocol) and why it is in effect: what the server reports
    # about itself, never used to run anything.
    model_provider: str = ""
    model_reason: str = ""
    # Where executions' skills are unpacked for their tool servers; None:
    # `<STIGMER_HOME>/work`.
    work_dir: Path | None = None
