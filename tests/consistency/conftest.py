"""Consistency tests run servers whose engine talks to the scripted model."""

from tests.executions.conftest import model, server

__all__ = ["model", "server"]
