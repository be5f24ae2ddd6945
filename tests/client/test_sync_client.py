"""The sync Client restates every AsyncClient signature by hand (the price of a
typed facade); these tests keep the two from drifting apart."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

import pytest

from stigmer.client import AsyncClient, Client

# Parameters only the sync client has: an async caller bounds a wait with
# asyncio.timeout instead.
SYNC_ONLY_PARAMETERS = {"wait": ("timeout",)}
# None: the worker's calls moved to worker/server_api.py.
ASYNC_ONLY_METHODS: set[str] = set()
_ASYNC_STREAM = re.compile(r"^Async(?:Iterator|Generator)\[(?P<item>.*?)(?:, None)?\]$")
_SYNC_STREAM = re.compile(r"^Generator\[(?P<item>.*)\]$")


def _public_methods(cls: type) -> dict[str, Callable[..., Any]]:
    return {
        name: member
        for name, member in vars(cls).items()
        if not name.startswith("_") and inspect.isfunction(member)
    }


SYNC_METHODS = _public_methods(Client)
ASYNC_METHODS = _public_methods(AsyncClient)


def _returned(annotation: str, stream: re.Pattern[str]) -> str:
    """What a call gives back: for a stream, the type of its items."""
    matched = stream.match(annotation)
    return matched["item"] if matched else annotation


@pytest.mark.parametrize("name", sorted(SYNC_METHODS))
def test_sync_method_takes_the_same_parameters_as_the_async_one(name: str) -> None:
    assert name in ASYNC_METHODS, f"Client.{name} has no AsyncClient.{name}"
    sync = inspect.signature(SYNC_METHODS[name])
    async_ = inspect.signature(ASYNC_METHODS[name])
    extra = SYNC_ONLY_PARAMETERS.get(name, ())
    sync_parameters = [p for p in sync.parameters.values() if p.name not in extra]

    assert sync_parameters == list(async_.parameters.values())
    assert all(parameter in sync.parameters for parameter in extra)


@pytest.mark.parametrize("name", sorted(SYNC_METHODS))
def test_sync_method_returns_what_the_async_one_returns(name: str) -> None:
    sync = inspect.signature(SYNC_METHODS[name]).return_annotation
    async_ = inspect.signature(ASYNC_METHODS[name]).return_annotation

    assert _returned(sync, _SYNC_STREAM) == _returned(async_, _ASYNC_STREAM)


def test_every_async_method_but_the_workers_has_a_sync_twin() -> None:
    assert set(ASYNC_METHODS) - set(SYNC_METHODS) <= ASYNC_ONLY_METHODS
    assert len(SYNC_METHODS) >= 25
