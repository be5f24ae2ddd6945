"""Stigmer: a local-first platform for AI agents."""

from stigmer.client import AsyncClient, Client
from stigmer.errors import (
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    StigmerError,
    Unavailable,
)
from stigmer.version import __version__

__all__ = [
    "AlreadyExists",
    "AsyncClient",
    "Client",
    "Conflict",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "StigmerError",
    "Unavailable",
    "__version__",
]
