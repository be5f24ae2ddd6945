"""The interceptor every RPC passes through: request id, decoding, logging, errors.

- Decoding: the request body is parsed here, inside the error-mapping path,
  not by grpc before the interceptor runs: a body that is not the method's
  message (truncated, corrupt, invalid UTF-8 in a string field) is then an
  INVALID_ARGUMENT naming the message type, where grpc's own parse failure
  reaches the client as UNKNOWN. A NUL character in any string of the
  request is refused here too, naming the field (resources/validation.py
  says why). The health service's bodies get the same treatment; its calls
  are otherwise left alone (no log line per probe).
- Answer size: an answer over the message limit (message_limits.py) is a
  FAILED_PRECONDITION naming its size and the limit, not a transport error
  the client cannot explain.
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
import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message

from stigmer.errors import FailedPrecondition, Internal, InvalidArgument, StigmerError
from stigmer.message_limits import MAX_MESSAGE_BYTES, describe_bytes
from stigmer.resources.validation import refuse_nul
from stigmer.server.rpc_errors import rpc_status_of

logger = logging.getLogger("stigmer.rpc")
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
REQUEST_ID_KEY = "x-request-id"
Deserializer = Callable[[Any], Any]

# What workers record (model answers, tool results) is kept as it came, NUL
# included: it is stored inside the execution's bytes, never as a text column.
_RECORDED_AS_IS = {"/stigmer.agentic.v1.AgentExecutionCommandController/RecordEvents"}


def decode_request(deserializer: Deserializer | None, body: Any, *, is_nul_refused: bool) -> Any:
    """The request message parsed from its wire bytes.

    Raises:
        InvalidArgument: the bytes are not a valid message of the method's
            type, or a string in it holds a NUL character.
    """
    if deserializer is None or not isinstance(body, bytes):
        return body
    try:
        request = deserializer(body)
    except DecodeError as error:
        raise InvalidArgument(f"the request body cannot be decoded: {error}") from None
    # A string holding NUL encodes it as a 0 byte: most bodies have none, and
    # skip the walk over their fields.
    if is_nul_refused and b"\x00" in body and isinstance(request, Message):
        refuse_nul(request)
    return request


def _request_id_from(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY and isinstance(value, str):
            return value[:128]
    return uuid.uuid4().hex[:16]


def checked_answer(answer: Any) -> Any:
    """The answer, when it fits in one message.

    Raises:
        FailedPrecondition: it is larger than the message limit.
    """
    size = answer.ByteSize() if isinstance(answer, Message) else 0
    if size > MAX_MESSAGE_BYTES:
        raise FailedPrecondition(
            f"the answer is {describe_bytes(size)} ({size} bytes), more than the "
            f"{describe_bytes(MAX_MESSAGE_BYTES)} a Stigmer message may carry",
            facts={"size_bytes": str(size), "limit_bytes": str(MAX_MESSAGE_BYTES)},
        )
    return answer


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
        if handler is None:
            return handler
        deserializer = handler.request_deserializer
        is_nul_refused = method not in _RECORDED_AS_IS

        def decode(body: Any) -> Any:
            return decode_request(deserializer, body, is_nul_refused=is_nul_refused)

        serialize = handler.response_serializer
        if method.startswith("/grpc.health"):
            return _decoding_only(handler, decode)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, handler.unary_unary, decode),
                response_serializer=serialize,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, handler.unary_stream, decode),
                response_serializer=serialize,
            )
        return handler

    def _wrap_unary(self, method: str, behaviour: Any, decode: Deserializer) -> Any:
        async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            rid = _request_id_from(context)
            token = request_id.set(rid)
            trailing = [(REQUEST_ID_KEY, rid)]
            context.set_trailing_metadata(trailing)
            started = time.perf_counter()
            code = "OK"
            try:
                answer = await behaviour(decode(request), context)
                return checked_answer(answer)
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

    def _wrap_stream(self, method: str, behaviour: Any, decode: Deserializer) -> Any:
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
                async for item in behaviour(decode(request), context):
                    yield checked_answer(item)
            except (asyncio.CancelledError, grpc.aio.AbortError):
                raise
            except Exception as error:
                await _abort_with(context, _logged_for_client(error, rid, method), trailing)

        return stream


def _decoding_only(
    handler: grpc.RpcMethodHandler[Any, Any], decode: Deserializer
) -> grpc.RpcMethodHandler[Any, Any]:
    """The handler with its body parsed inside the call, undecodable bodies
    answered INVALID_ARGUMENT, and nothing else changed."""
    serialize = handler.response_serializer

    async def refuse(context: grpc.aio.ServicerContext[Any, Any], error: StigmerError) -> None:
        await _abort_with(context, error, [])

    if handler.unary_unary is not None:
        behaviour: Any = handler.unary_unary

        async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                parsed = decode(request)
            except InvalidArgument as error:
                await refuse(context, error)
            return await behaviour(parsed, context)

        return grpc.unary_unary_rpc_method_handler(unary, response_serializer=serialize)
    if handler.unary_stream is not None:
        streaming: Any = handler.unary_stream

        async def stream(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            try:
                parsed = decode(request)
            except InvalidArgument as error:
                await refuse(context, error)
            answers = streaming(parsed, context)
            if inspect.isawaitable(answers):
                # grpc's health Watch writes through the context instead of
                # yielding its answers.
                await answers
                return
            async for item in answers:
                yield item

        return grpc.unary_stream_rpc_method_handler(stream, response_serializer=serialize)
    return handler
