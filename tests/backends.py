"""What the tests run servers on: each store backend, each engine, and the
engine settings for the scripted model, with leases and heartbeats short
enough that a lost worker is noticed within seconds."""

from __future__ import annotations

from stigmer.engine.options import EngineOptions
from stigmer.runtime.contract import ModelSettings

STORE_BACKENDS = ("sqlite", "postgres")
ENGINES = ("embedded", "temporal")
LEASE_SECONDS = 3.0
HEARTBEAT_SECONDS = 2.0


def model_settings(base_url: str) -> ModelSettings:
    """The scripted model (stigmer.testing.scripted_model) at `base_url`."""
    return ModelSettings(provider="openai", model="scripted", base_url=base_url)


def engine_options(base_url: str, *, workers: int = 4) -> EngineOptions:
    return EngineOptions(
        workers=workers,
        lease_seconds=LEASE_SECONDS,
        poll_seconds=0.2,
        model=model_settings(base_url),
    )
