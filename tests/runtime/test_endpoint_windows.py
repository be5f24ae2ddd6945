"""What an OpenAI-compatible endpoint says about its model's window, probed
over real HTTP: llama.cpp's `/props` first, then Ollama's `/api/show`, then
the table of known models. Ollama cannot run here, so a small HTTP server
answers `/api/show` in the shape Ollama documents; the llama.cpp side runs
against the real local model (tests/local/test_local_context_window.py)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from stigmer.runtime.model_windows import EndpointWindow
from stigmer.runtime.token_count import ESTIMATE
from stigmer.testing.scripted_model import ScriptedModel

SHOWN = {
    "parameters": "num_ctx                        6144",
    "model_info": {"llama.context_length": 131072},
}


class _OllamaShow(BaseHTTPRequestHandler):
    """POST /api/show answers SHOWN for the model `llama3.2`; the rest is 404."""

    requests: list[tuple[str, str, Any]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.requests.append(("GET", self.path, None))
        self._answer(404, {"error": "not found"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append(("POST", self.path, body))
        if self.path == "/api/show" and body.get("model") == "llama3.2":
            self._answer(200, SHOWN)
        else:
            self._answer(404, {"error": f"model {body.get('model')!r} not found"})


@pytest.fixture
def ollama() -> Iterator[str]:
    _OllamaShow.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OllamaShow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()
    thread.join()


def _probe(base_url: str, model: str) -> tuple[int | None, int | None, str]:
    async def scenario() -> tuple[int | None, int | None, str]:
        endpoint = EndpointWindow(base_url, model)
        window = await endpoint.context_window()
        again = await endpoint.context_window()
        assert again == window
        return window, await endpoint.count_tokens("some text"), endpoint.token_counter

    return asyncio.run(scenario())


def test_ollama_reports_the_window_the_model_runs_with_once(ollama: str) -> None:
    assert _probe(ollama, "llama3.2") == (6144, None, ESTIMATE)
    # Probed once: /props (not llama.cpp), then /api/show; nothing to tokenize with.
    assert [(method, path) for method, path, _ in _OllamaShow.requests] == [
        ("GET", "/props"),
        ("POST", "/api/show"),
    ]


def test_an_endpoint_that_says_nothing_falls_back_to_the_known_models(ollama: str) -> None:
    assert _probe(ollama, "gpt-4o-mini") == (128_000, None, ESTIMATE)
    assert _probe(ollama, "unheard-of-model") == (None, None, ESTIMATE)


def test_the_scripted_model_names_no_window() -> None:
    with ScriptedModel() as model:
        assert _probe(model.base_url, "scripted") == (None, None, ESTIMATE)
        assert model.requests == []


def test_an_unreachable_endpoint_has_no_known_window() -> None:
    assert _probe("http://127.0.0.1:9/v1", "qwen2.5") == (None, None, ESTIMATE)
