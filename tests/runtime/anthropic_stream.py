"""A canned Anthropic messages endpoint: recorded-shape SSE streams over real HTTP.

We cannot run Anthropic's API, so this serves fixed event streams in the shape
the messages API streams them, one reply per request, and keeps every request
body. It is just enough for the real `anthropic` SDK to stream text, assemble
tool_use blocks and report usage; anything else answers HTTP 500.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

Event = dict[str, Any]


def text_reply(*pieces: str, input_tokens: int = 25, output_tokens: int = 15) -> list[Event]:
    """A reply streaming `pieces` as text deltas."""
    return _reply(
        [
            _block(
                0, {"type": "text", "text": ""}, [{"type": "text_delta", "text": p} for p in pieces]
            )
        ],
        stop_reason="end_turn",
        input_tokens=input_tokens,
        output_tokens=output_tokens,
    )


def tool_use_reply(
    text: str, call_id: str, name: str, *json_pieces: str, input_tokens: int = 25
) -> list[Event]:
    """A reply with some text, then a tool_use whose input streams as JSON pieces."""
    blocks = [
        _block(0, {"type": "text", "text": ""}, [{"type": "text_delta", "text": text}]),
        _block(
            1,
            {"type": "tool_use", "id": call_id, "name": name, "input": {}},
            [{"type": "input_json_delta", "partial_json": piece} for piece in json_pieces],
        ),
    ]
    return _reply(blocks, stop_reason="tool_use", input_tokens=input_tokens, output_tokens=9)


def _block(index: int, start: Event, deltas: list[Event]) -> list[Event]:
    return [
        {"type": "content_block_start", "index": index, "content_block": start},
        *({"type": "content_block_delta", "index": index, "delta": d} for d in deltas),
        {"type": "content_block_stop", "index": index},
    ]


def _reply(
    blocks: Iterable[list[Event]], *, stop_reason: str, input_tokens: int, output_tokens: int
) -> list[Event]:
    message: Event = {
        "id": "msg_canned",
        "type": "message",
        "role": "assistant",
        "model": "claude-canned",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 1},
    }
    return [
        {"type": "message_start", "message": message},
        *(event for block in blocks for event in block),
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": output_tokens},
        },
        {"type": "message_stop"},
    ]


class CannedAnthropic:
    """Serves each queued reply to one POST /v1/messages; `with` starts and stops it."""

    def __init__(self, replies: Iterable[list[Event]]) -> None:
        self.requests: list[dict[str, Any]] = []
        self._replies = deque(replies)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> CannedAnthropic:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        canned = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                canned.requests.append(json.loads(body))
                if self.path != "/v1/messages" or not canned._replies:
                    self.send_error(500, "no canned reply")
                    return
                events = canned._replies.popleft()
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for event in events:
                    self.wfile.write(
                        f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()
                    )
                self.wfile.flush()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
