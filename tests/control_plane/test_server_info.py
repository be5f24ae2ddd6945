"""GetInfo: the server says who it is (version, pid, address) and what it
uses (store, engine, default model), on both store backends."""

from __future__ import annotations

import os
import time

from stigmer.client import Client
from stigmer.testing.server import ServerThread
from stigmer.version import __version__


def test_server_info_names_the_version_pid_address_store_and_engine(
    server: ServerThread, client: Client, store_url: str
) -> None:
    info = client.server_info()

    assert (info.version, info.pid, info.address) == (__version__, os.getpid(), server.address)
    assert info.engine == "embedded"
    if store_url.startswith("postgresql://"):
        assert (info.store.backend, info.store.url) == ("postgres", store_url)
    else:
        assert (info.store.backend, info.store.url) == ("sqlite", f"sqlite://{store_url}")
    assert (info.model.provider, info.model.model) == ("openai", "")
    assert 0 < time.time() - info.started_at.seconds < 120


def test_server_info_leaves_the_store_password_out(postgres_url: str) -> None:
    with_password = postgres_url.replace("@", ":s3cret@", 1)
    with ServerThread(with_password) as server, Client(server.address) as client:
        info = client.server_info()

    assert info.store.url == postgres_url
    assert "s3cret" not in str(info)
