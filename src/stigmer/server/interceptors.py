"""The interceptor every RPC passes through: request id, logging, errors.

- Request id: taken from the `x-request-id` metadata or made up, kept in a
  context variable for log lines, and returned in the trailing metadata.
- Logging: one line per call with method, status code and duration.
- Errors: a StigmerError becomes its status code with details
  (server/rpc_errors.py). A bug (an `Internal`, or any other exception) is
  logged with the request id and its traceback and reaches the client as
  INTERNAL naming only the request id: its message may hold anything (paths,
  SQL, secrets in a repr), and the client can do nothing with it but quote
  the id. No exception ever reaches a client as UNKNOWN.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from stigmer.errors import Internal, StigmerError
from stigmer.server.rpc_errors import rpc_status_of

logger = logging.getLogger("stigmer.rpc")
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
REQUEST_ID_KEY = "x-request-id"


def _request_id_from(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY and isinstance(value, str):
            return value[:128]
    return uuid.uuid4().hex[:16]


def _logged_for_client(error: Exception, rid: str, method: str) -> StigmerError:
    """Logs a failed call and returns the error its client is sent."""
    if isinstance(error, StigmerError) and error.grpc_code != "INTERNAL":
        logger.info("%s %s %s: %s", rid, method, error.grpc_code, error.message)
        return error
    described = error.message if isinstance(error, StigmerError) else repr(error)
    logger.error("%s %s INTERNAL: %s", rid, method, described, exc_info=error)
    return Internal(
        f"internal error (request id {rid}); the server log has the details",
        facts={"request_id": rid, "step": error.step if isinstance(error, StigmerError) else ""},
    )


async def _abort_with(
    context: grpc.aio.ServicerContext[Any, Any],
    error: StigmerError,
    trailing: list[tuple[str, Any]],
) -> None:
    status = rpc_status_of(error)
    await context.abort(
        status.code,
        status.details,
        trailing_metadata=(*trailing, *status.trailing_metadata),
    )


class StigmerInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.startswith("/grpc.health"):
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _wrap_unary(self, method: str, behaviour: Any) -> Any:
        async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            rid = _request_id_from(context)
            token = request_id.set(rid)
            trailing = [(REQUEST_ID_KEY, rid)]
            context.set_trailing_metadata(trailing)
            started = time.perf_counter()
            code = "OK"
            try:
                return await behaviour(request, context)
            except (asyncio.CancelledError, grpc.aio.AbortError):
                code = "CANCELLED"
                raise
            except Exception as error:
                sent = _logged_for_client(error, rid, method)
                code = sent.grpc_code
                await _abort_with(context, sent, trailing)
            finally:
                elapsed = (time.perf_counter() - started) * 1000
                logger.debug("%s %s %s %.2fms", rid, method, code, elapsed)
                request_id.reset(token)

        return unary

    def _wrap_stream(self, method: str, behaviour: Any) -> Any:
        async def stream(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            rid = _request_id_from(context)
            # Each call runs in its own task, so the value needs no reset (a
            # reset from an abandoned generator's finalizer would fail).
            request_id.set(rid)
            trailing = [(REQUEST_ID_KEY, rid)]
            context.set_trailing_metadata(trailing)
            try:
                async for item in behaviour(request, context):
                    yield item
            except (asyncio.CancelledError, grpc.aio.AbortError):
                raise
            except Exception as error:
                await _abort_with(context, _logged_for_client(error, rid, method), trailing)

        return stream
