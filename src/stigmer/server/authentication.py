"""Who is calling: the bearer token of a request, looked up by its hash.

With `auth: token` every call (but the health check) sends
`authorization: Bearer <secret>`; the server hashes the secret and looks the
hash up in the store's access-token table. A missing, malformed, unknown or
revoked token gets the same UNAUTHENTICATED answer with the same fixed
message, so a caller learns nothing that helps guessing.

On the first start with auth on (no token in the store yet) the server makes
an admin token and writes its secret to `<STIGMER_HOME>/admin.token`
(mode 0600): local clients of the same home pick it up, and the admin makes
the other tokens with it (`stigmer token create`).

Exposure: a server that listens beyond loopback without auth would hand
remote code execution (stdio tool servers) to the network, so it refuses to
start; with auth but without TLS it starts and warns that tokens cross the
network in clear.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stigmer.atomic_files import write_file_atomically
from stigmer.errors import AlreadyExists, FailedPrecondition, Unauthenticated
from stigmer.resources.principals import (
    ADMIN,
    BOOTSTRAP_ADMIN_NAME,
    hash_token,
    new_token_secret,
)
from stigmer.store.base import AccessToken, Store

logger = logging.getLogger(__name__)
AUTH_MODES = ("none", "token")
AUTHORIZATION_KEY = "authorization"
UNAUTHENTICATED_MESSAGE = "a valid token is required (authorization: Bearer <token>)"
_BEARER = "bearer "
_MAX_TOKEN_LENGTH = 512


@dataclass(frozen=True)
class Principal:
    name: str
    role: str


def unauthenticated() -> Unauthenticated:
    return Unauthenticated(UNAUTHENTICATED_MESSAGE)


def bearer_secret(metadata: Sequence[tuple[str, Any]] | None) -> str | None:
    """The token secret in the request's metadata, or None."""
    for key, value in metadata or ():
        if key != AUTHORIZATION_KEY or not isinstance(value, str):
            continue
        if len(value) > _MAX_TOKEN_LENGTH or not value.lower().startswith(_BEARER):
            return None
        return value[len(_BEARER) :].strip() or None
    return None


class Authenticator:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def principal_of(self, metadata: Sequence[tuple[str, Any]] | None) -> Principal:
        """The principal whose token came with the request.

        Raises:
            Unauthenticated: no token, or not a valid one (one fixed message).
        """
        secret = bearer_secret(metadata)
        if secret is None:
            raise unauthenticated()
        async with self.store.transaction(write=False) as transaction:
            token = await transaction.get_access_token(hash_token(secret))
        if token is None or token.revoked_at is not None:
            raise unauthenticated()
        return Principal(token.name, token.role)


async def ensure_admin_token(store: Store, path: Path) -> bool:
    """Makes the first admin token when the store has none, its secret
    written to `path` (0600); whether it made one."""
    async with store.transaction() as transaction:
        if await transaction.list_access_tokens():
            return False
        secret = new_token_secret()
        token = AccessToken(BOOTSTRAP_ADMIN_NAME, ADMIN, hash_token(secret), time.time())
        try:
            await transaction.put_access_token(token)
        except AlreadyExists:
            return False  # another server on the same store made it
    write_file_atomically(path, secret + "\n", mode=0o600)
    logger.warning("Made the first admin token; its secret is in %s (mode 0600)", path)
    return True


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, auth: str, *, is_tls: bool) -> None:
    """Refuses a server reachable from the network without auth; warns
    when tokens would cross the network in clear.

    Raises:
        FailedPrecondition: a non-loopback host with auth none.
    """
    if is_loopback(host):
        return
    if auth != "token":
        raise FailedPrecondition(
            f"refusing to listen on {host} without authentication: anyone who reaches the "
            "port could run commands on this machine. Turn auth on (`auth: token` in the "
            "config, STIGMER_AUTH=token or --auth token), or listen on 127.0.0.1",
            facts={"field": "host"},
        )
    if not is_tls:
        logger.warning(
            "WARNING: listening on %s with auth but without TLS: tokens and secrets cross "
            "the network in clear. Give the server --tls-cert and --tls-key.",
            host,
        )
