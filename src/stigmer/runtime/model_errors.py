"""Model failures in words: the one table that turns SDK exceptions into `ModelError`.

Both SDKs are built alike (an `APIConnectionError` wrapping the socket error, an
`APIStatusError` carrying the status and the server's JSON body), and both
stream over `httpx2`, whose own errors can surface mid-stream unwrapped. One
table covers them all, so a user reads the same sentence for the same failure
whichever model they use: "model endpoint http://127.0.0.1:9/v1 unreachable:
connection refused", "model returned HTTP 500: overloaded". Each row also
names the failure's `ModelErrorKind`, which is what code (and tests) decide on.
"""

from __future__ import annotations

import socket

import anthropic
import httpx2
import openai

from stigmer.runtime.contract import ModelError, ModelErrorKind

__all__ = ["SDK_FAILURES", "model_error_from"]

# What a provider catches around an SDK call; ValueError covers undecodable stream data.
SDK_FAILURES = (openai.OpenAIError, anthropic.AnthropicError, httpx2.HTTPError, ValueError)

# First match wins, so subclasses come before their bases. Placeholders: {endpoint},
# {cause} (the innermost reason), {status}, {message} (the server's own words), {timeout}.
_ERROR_TABLE: tuple[tuple[tuple[type[Exception], ...], ModelErrorKind, str], ...] = (
    (
        (openai.APITimeoutError, anthropic.APITimeoutError, httpx2.TimeoutException),
        ModelErrorKind.TIMEOUT,
        "model endpoint {endpoint} timed out after {timeout:g} s",
    ),
    (
        (openai.APIConnectionError, anthropic.APIConnectionError, httpx2.ConnectError),
        ModelErrorKind.UNREACHABLE,
        "model endpoint {endpoint} unreachable: {cause}",
    ),
    (
        (openai.AuthenticationError, anthropic.AuthenticationError),
        ModelErrorKind.AUTH,
        "model endpoint {endpoint} rejected the API key (HTTP {status}): {message}",
    ),
    (
        (openai.APIStatusError, anthropic.APIStatusError),
        ModelErrorKind.STATUS,
        "model returned HTTP {status}: {message}",
    ),
    (
        (httpx2.TransportError,),
        ModelErrorKind.INTERRUPTED,
        "connection to model endpoint {endpoint} broke mid-reply: {cause}",
    ),
    (
        (openai.APIResponseValidationError, anthropic.APIResponseValidationError, ValueError),
        ModelErrorKind.MALFORMED,
        "model endpoint {endpoint} sent a malformed reply: {message}",
    ),
    (
        (openai.OpenAIError, anthropic.AnthropicError, httpx2.HTTPError),
        ModelErrorKind.OTHER,
        "model call failed: {message}",
    ),
)


def model_error_from(exc: Exception, *, endpoint: str, timeout: float) -> ModelError:
    """The `ModelError` a user is shown for an SDK (or HTTP) failure."""
    status = getattr(exc, "status_code", "?")
    facts = {
        "endpoint": endpoint,
        "cause": _innermost_reason(exc),
        "status": status,
        "message": _server_message(exc),
        "timeout": timeout,
    }
    code = _http_status(exc)
    for types, kind, template in _ERROR_TABLE:
        if isinstance(exc, types):
            return ModelError(template.format(**facts), kind=kind, status=code)
    return ModelError(
        f"model call failed: {type(exc).__name__}: {exc}", kind=ModelErrorKind.OTHER, status=code
    )


def _http_status(exc: Exception) -> int | None:
    """The HTTP status of a failed reply: the response's, or the `code` of an error
    event inside a streamed reply (llama.cpp reports a failure found mid-generation
    that way, after the response began with 200)."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, int) else None


def _innermost_reason(exc: BaseException) -> str:
    """Why a connection failed, in words: the SDKs wrap the socket error several times."""
    reason = str(exc)
    current: BaseException | None = exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, socket.gaierror):
            return f"host not found ({current.strerror})"
        if str(current):
            reason = str(current)
        current = current.__cause__ or current.__context__
    return reason


def _server_message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    # OpenAI's SDK unwraps {"error": {...}}, Anthropic's keeps the whole body.
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    if isinstance(body, str) and body:
        return body
    return str(getattr(exc, "message", None) or exc)
