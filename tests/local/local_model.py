"""The real local model as its tests run it: the engine settings, the
quickstart example, and how long one run may take."""

from __future__ import annotations

from stigmer.engine.options import EngineOptions
from stigmer.runtime.contract import ModelSettings
from stigmer.runtime.model_files import DEFAULT_MODEL
from tests import ROOT

# A model call on two shared cores takes seconds, not milliseconds.
RUN_DEADLINE_SECONDS = 90.0
QUICKSTART = ROOT / "examples" / "quickstart.yaml"
QUICKSTART_AGENT = "date-helper"
QUICKSTART_QUESTION = "How many days are there between 2024-03-01 and 2025-01-15?"


def local_engine() -> EngineOptions:
    return EngineOptions(
        workers=2,
        poll_seconds=0.2,
        model=ModelSettings(provider="local", model=DEFAULT_MODEL.alias),
    )
