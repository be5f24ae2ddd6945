"""Connecting to Temporal, for the server's Temporal engine and for
`stigmer worker` alike.

Kept apart from the engine, which stands on the domain and the store: a
worker reaches the store only through the server, and importing this module
loads nothing of either.
"""

from __future__ import annotations

import asyncio
import time

from temporalio.client import Client

from stigmer.errors import Unavailable


async def connect(address: str, namespace: str, *, wait_seconds: float = 30.0) -> Client:
    """A Temporal client, retrying while the frontend comes up.

    Raises:
        Unavailable: nothing answered at `address` within `wait_seconds`.
    """
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return await Client.connect(address, namespace=namespace)
        except RuntimeError as error:
            if time.monotonic() > deadline:
                raise Unavailable(
                    f"cannot reach Temporal at {address} (namespace {namespace}): {error}"
                ) from error
            await asyncio.sleep(0.25)
