"""How a client reaches the server: plaintext or TLS, with or without a token.

The token is, first that is set: the one given in code, `STIGMER_TOKEN`,
the config's `token`, and the admin token the server of this home wrote to
`<STIGMER_HOME>/admin.token` on its first start with auth on. Every call
carries it as `authorization: Bearer <token>`.

TLS is on when a CA file is given (`--tls-ca`, `STIGMER_TLS_CA`, `tls.ca`):
the server's certificate must be signed by it. A client certificate
(`tls.client_cert` + `tls.client_key`) is sent when the server requires one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from stigmer import config
from stigmer.errors import InvalidArgument
from stigmer.message_limits import CHANNEL_OPTIONS

ADMIN_TOKEN_FILE = "admin.token"
AUTHORIZATION_KEY = "authorization"


@dataclass(frozen=True)
class Connection:
    token: str = ""
    tls_ca: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None

    @property
    def is_tls(self) -> bool:
        return self.tls_ca is not None


def _path(key: str, flag: str | None = None) -> Path | None:
    text = config.value(key, flag)
    return Path(text).expanduser() if text else None


def resolve_connection(token: str | None = None, tls_ca: str | None = None) -> Connection:
    """The token and TLS files in effect (see the module docstring)."""
    secret = config.value("token", token)
    if not secret:
        admin_token = config.stigmer_home() / ADMIN_TOKEN_FILE
        try:
            secret = admin_token.read_text().strip()
        except OSError:
            secret = ""
    return Connection(
        token=secret,
        tls_ca=_path("tls.ca", tls_ca),
        client_cert=_path("tls.client_cert"),
        client_key=_path("tls.client_key"),
    )


def _read(path: Path, key: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise InvalidArgument.for_field(
            key, f"cannot read {path}: {error.strerror or error}"
        ) from None


class _Details(grpc.aio.ClientCallDetails):
    pass


def _with_token(details: grpc.aio.ClientCallDetails, token: str) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    metadata.add(AUTHORIZATION_KEY, f"Bearer {token}")
    return _Details(
        details.method,
        details.timeout,
        metadata,
        details.credentials,
        details.wait_for_ready,
    )


class _UnaryToken(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, token: str) -> None:
        self.token = token

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(_with_token(client_call_details, self.token), request)


class _StreamToken(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, token: str) -> None:
        self.token = token

    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(_with_token(client_call_details, self.token), request)


def open_channel(address: str, connection: Connection) -> grpc.aio.Channel:
    """A channel to `address` that sends the token and speaks TLS as configured.

    Raises:
        InvalidArgument: a TLS file cannot be read (its setting named).
    """
    interceptors: list[grpc.aio.ClientInterceptor] = []
    if connection.token:
        interceptors = [_UnaryToken(connection.token), _StreamToken(connection.token)]
    if connection.tls_ca is None:
        return grpc.aio.insecure_channel(
            address, options=CHANNEL_OPTIONS, interceptors=interceptors or None
        )
    private_key = certificate_chain = None
    if connection.client_cert is not None and connection.client_key is not None:
        certificate_chain = _read(connection.client_cert, "tls.client_cert")
        private_key = _read(connection.client_key, "tls.client_key")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(connection.tls_ca, "tls.ca"),
        private_key=private_key,
        certificate_chain=certificate_chain,
    )
    return grpc.aio.secure_channel(
        address, credentials, options=CHANNEL_OPTIONS, interceptors=interceptors or None
    )


def unreachable_message(address: str, details: str, *, is_tls: bool) -> str:
    """What to say when the server at `address` cannot be reached."""
    lowered = details.lower()
    if is_tls and ("ssl" in lowered or "handshake" in lowered or "certificate" in lowered):
        return (
            f"cannot verify the Stigmer server at {address} over TLS: {details} "
            "(is --tls-ca / STIGMER_TLS_CA the CA that signed its certificate, "
            "and does the certificate name this host?)"
        )
    hint = "" if is_tls else "; if it uses TLS, pass --tls-ca or set STIGMER_TLS_CA"
    return (
        f"cannot reach the Stigmer server at {address}: is it running? "
        f"(start it with `stigmer server start`{hint})"
    )
