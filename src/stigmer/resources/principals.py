"""Principals: who calls the server, known by the name of their token.

A token's secret is `stg_` and 32 random bytes (URL-safe base64): the prefix
makes a leaked token recognisable to secret scanners and to people. The
store keeps only the SHA-256 of the secret; a leaked database grants no
access. The four roles and what each may do are in
server/authorization.py.

The principal of the request being served sits in a context variable, set
by the server's auth interceptor, so the layers below (the pipeline writing
`status.audit`) can record who changed a resource without passing it down
every call. Empty: the server runs without auth, or the write is the
server's own.
"""

from __future__ import annotations

import contextvars
import hashlib
import secrets

TOKEN_PREFIX = "stg_"
ADMIN = "admin"
DEVELOPER = "developer"
VIEWER = "viewer"
WORKER = "worker"
ROLES = (ADMIN, DEVELOPER, VIEWER, WORKER)
# The token the server makes for itself on the first start with auth on.
BOOTSTRAP_ADMIN_NAME = "admin"

current_principal: contextvars.ContextVar[str] = contextvars.ContextVar(
    "current_principal", default=""
)


def new_token_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()
