"""PostgreSQL URLs as the store shows them: without the password.

A store's URL ends up in logs, error messages and `store.url`, so the
password is cut out of it; error messages name the server by
host:port/database alone.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


def redact_password(url: str) -> str:
    """The URL without its password (in the user info or as a query parameter).

    store_from_url(redact_password(url)) still reaches the same database,
    with the password from PGPASSWORD or ~/.pgpass as libpq looks for it.
    """
    parts = urlsplit(url)
    netloc = parts.netloc
    user_info, at, host = netloc.rpartition("@")
    if at:
        netloc = f"{user_info.partition(':')[0]}@{host}"
    query = parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(name == "password" for name, _ in pairs):
        query = urlencode([(name, value) for name, value in pairs if name != "password"])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def describe_server(parameters: dict[str, Any]) -> str:
    """host:port/database of libpq connection parameters, for error messages
    (libpq's defaults where the URL is silent)."""
    host = parameters.get("host") or "localhost"
    if ":" in host and not host.startswith("/"):
        host = f"[{host}]"
    port = parameters.get("port") or "5432"
    return f"{host}:{port}/{parameters.get('dbname') or parameters.get('user') or '(default)'}"
