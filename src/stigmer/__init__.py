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

__version__ = "0.1.0"
