"""The OpenAI chat-completions wire shapes of a scripted reply, as JSON objects.

They follow what the `openai` SDK parses: a `chat.completion` for a plain
request, the `chat.completion.chunk` sequence of a streamed one (text and
tool-call arguments in pieces, usage last when asked for), and the error
body of a non-200 answer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from stigmer.testing.scripted_model.script import Reply

MODEL_ID = "scripted"


def models_list() -> dict[str, Any]:
    """The answer to GET /v1/models: the one scripted model."""
    model = {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "stigmer"}
    return {"object": "list", "data": [model]}


def error_body(status: int, message: str, code: str | None) -> dict[str, Any]:
    error_type = "invalid_request_error" if 400 <= status < 500 else "server_error"
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


def _usage(reply: Reply) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": reply.output_tokens,
        "total_tokens": reply.input_tokens + reply.output_tokens,
    }
    if reply.cached_tokens:
        usage["prompt_tokens_details"] = {"cached_tokens": reply.cached_tokens}
    if reply.reasoning_tokens:
        usage["completion_tokens_details"] = {"reasoning_tokens": reply.reasoning_tokens}
    return usage


def _finish_reason(reply: Reply) -> str:
    return "tool_calls" if reply.tool_calls else "stop"


def completion(reply: Reply, ids: list[str], completion_id: str, model: str) -> dict[str, Any]:
    """The `chat.completion` object of a reply that is not streamed."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.content or (None if reply.tool_calls else ""),
        "refusal": None,
    }
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": step.name, "arguments": json.dumps(step.arguments)},
            }
            for step, call_id in zip(reply.tool_calls, ids, strict=True)
        ]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": _finish_reason(reply),
                "logprobs": None,
            }
        ],
        "usage": _usage(reply) if reply.is_usage_reported else None,
    }


def _split(text: str, size: int) -> list[str]:
    return [text[start : start + size] for start in range(0, len(text), size)]


def chunks(
    reply: Reply,
    *,
    ids: list[str],
    completion_id: str,
    model: str,
    chunk_size: int,
    include_usage: bool,
) -> Iterator[dict[str, Any]]:
    """The `chat.completion.chunk` objects of a streamed reply, in order."""
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [
                {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
            ],
        }
        if include_usage:
            body["usage"] = None
        return body

    yield chunk({"role": "assistant", "content": ""})
    for piece in _split(reply.content, chunk_size):
        yield chunk({"content": piece})
    if reply.is_cut:
        return
    for index, (step, call_id) in enumerate(zip(reply.tool_calls, ids, strict=True)):
        yield chunk(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call_id,
                        "type": "function",
                        "function": {"name": step.name, "arguments": ""},
                    }
                ]
            }
        )
        # Arguments arrive in pieces, as from real models, so clients must assemble them.
        for piece in _split(json.dumps(step.arguments), chunk_size):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, _finish_reason(reply))
    if include_usage and reply.is_usage_reported:
        yield {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": _usage(reply),
        }
