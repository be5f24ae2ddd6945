"""The interceptor every RPC passes through: request id, logging, errors.

- Request id: taken from the `x-request-id` metadata or made up, kept in a
  context variable for log lines, and returned in the trailing metadata.
- Logging: one line per call with method, status code and duration.
- Errors: a StigmerError becomes its status code with details
  (server/status.py); anything else is logged with its traceback and becomes
  INTERNAL, so no exception ever reaches a client as UNKNOWN.
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
from stigmer.server.status import DETAILS_KEY, rpc_status_of, status_code_of

logger = logging.getLogger("stigmer.rpc")
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
REQUEST_ID_KEY = "x-request-id"


def _request_id_from(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY and isinstance(value, str):
            return value[:128]
    return uuid.uuid4().hex[:16]


async def _abort_with(
    context: grpc.aio.ServicerContext[Any, Any],
    error: StigmerError,
    trailing: list[tuple[str, Any]],
) -> None:
    status = rpc_status_of(error)
    await context.abort(
        status_code_of(error),
        error.message,
        trailing_metadata=(*trailing, (DETAILS_KEY, status.SerializeToString())),
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
            except StigmerError as error:
                code = status_code_of(error).name
                logger.info("%s %s %s: %s", rid, method, code, error.message)
                await _abort_with(context, error, trailing)
            except (asyncio.CancelledError, grpc.aio.AbortError):
                code = "CANCELLED"
                raise
            except Exception as error:
                code = "INTERNAL"
                logger.exception("%s %s failed", rid, method)
                await _abort_with(context, Internal(f"internal error: {error}"), trailing)
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
            except StigmerError as error:
                logger.info("%s %s %s: %s", rid, method, status_code_of(error).name, error.message)
                await _abort_with(context, error, trailing)
            except (asyncio.CancelledError, grpc.aio.AbortError):
                raise
            except Exception as error:
                logger.exception("%s %s failed", rid, method)
                await _abort_with(context, Internal(f"internal error: {error}"), trailing)

        return stream
