"""TLS for the gRPC port: the server's certificate and key, and optionally a
CA whose client certificates the server then requires (mutual TLS)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from stigmer.errors import InvalidArgument


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    # Set: every client must present a certificate this CA signed.
    client_ca: Path | None = None


def _read(path: Path, field: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise InvalidArgument.for_field(
            field, f"cannot read {path}: {error.strerror or error}"
        ) from None


def server_credentials(files: TlsFiles) -> grpc.ServerCredentials:
    """The credentials of a TLS port.

    Raises:
        InvalidArgument: a file cannot be read (the flag at fault named).
    """
    pair = (_read(files.key, "tls-key"), _read(files.cert, "tls-cert"))
    if files.client_ca is None:
        return grpc.ssl_server_credentials([pair])
    return grpc.ssl_server_credentials(
        [pair],
        root_certificates=_read(files.client_ca, "tls-client-ca"),
        require_client_auth=True,
    )
