"""A server with `auth: token` on each store, its first admin token, and a
token of each role made with it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stigmer.client import Client
from stigmer.engine.options import EngineOptions
from stigmer.testing.scripted_model import ScriptedModel
from stigmer.testing.server import ServerThread
from tests.backends import model_settings


@dataclass(frozen=True)
class AuthServer:
    server: ServerThread
    admin_token_path: Path
    tokens: dict[str, str]  # role → secret (the first admin token under "admin")

    @property
    def address(self) -> str:
        return self.server.address

    def client(self, role: str | None) -> Client:
        """A client sending the token of `role` (None: no token at all)."""
        return Client(self.address, token=self.tokens[role] if role else "")


@pytest.fixture
def model() -> Iterator[ScriptedModel]:
    with ScriptedModel() as scripted:
        yield scripted


@pytest.fixture
def auth_server(
    store_url: str, tmp_path: Path, model: ScriptedModel, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AuthServer]:
    # No STIGMER_* of the machine, and a home without admin.token: a client
    # sends exactly the token a test gives it.
    for key in [key for key in __import__("os").environ if key.startswith("STIGMER_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("STIGMER_HOME", str(tmp_path / "client-home"))
    admin_token_path = tmp_path / "server-home" / "admin.token"
    engine = EngineOptions(model=model_settings(model.base_url), poll_seconds=0.2)
    with ServerThread(
        store_url, auth="token", admin_token_path=admin_token_path, engine=engine
    ) as server:
        admin = admin_token_path.read_text().strip()
        tokens = {"admin": admin}
        with Client(server.address, token=admin) as client:
            for role in ("developer", "viewer", "worker"):
                tokens[role] = client.create_token(f"{role}-1", role).secret
        yield AuthServer(server, admin_token_path, tokens)


ClientFor = Callable[[str | None], Client]
