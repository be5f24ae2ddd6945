"""The Temporal dev server a local `stigmer server --engine temporal` manages."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from stigmer.engine.temporal_connection import connect
from stigmer.engine.temporal_dev_server import TemporalDevServer, managed_address

pytestmark = pytest.mark.slow


def _answers(address: str) -> bool:
    async def ask() -> bool:
        client = await connect(address, "default", wait_seconds=10)
        return await client.service_client.check_health()

    return asyncio.run(ask())


def test_a_dev_server_left_running_by_a_killed_server_is_replaced(tmp_path: Path) -> None:
    home = tmp_path / "home"
    folder = home / "temporal"
    leftover = TemporalDevServer(folder)
    leftover.start()
    try:
        # What a SIGKILLed `stigmer server` leaves: its dev server, still
        # running in its own session, holding the database.
        replacement = TemporalDevServer(folder)
        replacement.start()
        try:
            assert not leftover.is_running
            assert managed_address(home) == replacement.address
            assert _answers(replacement.address)
        finally:
            replacement.stop()
    finally:
        leftover.stop()
    assert managed_address(home) == ""


def test_it_creates_its_folder_and_restarts_on_the_same_database(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b"
    with TemporalDevServer(folder) as server:
        assert _answers(server.address)
    assert (folder / "temporal.db").exists()
    with TemporalDevServer(folder) as again:
        assert _answers(again.address)
