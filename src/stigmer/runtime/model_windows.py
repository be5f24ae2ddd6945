"""How large a model's context window is, and how to count its tokens.

From the endpoint where it says, asked once per provider and kept:

- llama.cpp (the local model, or any llama.cpp server): `GET /props` gives
  the context each request slot has (`default_generation_settings.n_ctx`), and
  `POST /tokenize` counts with the model's own tokenizer;
- Ollama: `POST /api/show` gives the model's `num_ctx` parameter when it sets
  one, else its trained `context_length`;

else from KNOWN_WINDOWS, the published windows of common OpenAI and Anthropic
models (by the longest name prefix that matches). `llm.context_window`
overrides all of them (runtime/context_window.py). A provider that answers
none of these and a model not in the table have no known window: their
conversations are not measured.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from stigmer.runtime.token_count import ESTIMATE

__all__ = ["KNOWN_WINDOWS", "EndpointWindow", "known_window"]

logger = logging.getLogger(__name__)

PROBE_SECONDS = 2.0
LLAMA_CPP_TOKENIZER = "llama.cpp tokenizer"
# Endpoints that are neither llama.cpp nor Ollama: only the table applies.
HOSTED_APIS = ("https://api.openai.com", "https://api.anthropic.com")

# Published context windows, in tokens.
KNOWN_WINDOWS: dict[str, int] = {
    "gpt-5": 400_000,
    "gpt-4.1": 1_047_576,
    "gpt-4o": 128_000,
    "gpt-4-turbo": 128_000,
    "gpt-4": 8_192,
    "gpt-3.5-turbo": 16_385,
    "o1": 200_000,
    "o3": 200_000,
    "o4-mini": 200_000,
    "claude-": 200_000,
}


def known_window(model: str) -> int | None:
    """The table's window for a model name (longest matching prefix), or None."""
    name = model.lower().rsplit("/", 1)[-1]
    matches = [prefix for prefix in KNOWN_WINDOWS if name.startswith(prefix)]
    return KNOWN_WINDOWS[max(matches, key=len)] if matches else None


class EndpointWindow:
    """What one OpenAI-compatible endpoint says about its model's window and
    tokenizer; probed on first use, then kept for the provider's life."""

    def __init__(self, base_url: str, model: str, api_key: str = "") -> None:
        self._root = re.sub(r"/v1/?$", "", base_url.rstrip("/"))
        self._model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._window: int | None = None
        self._is_llama_cpp = False
        self._probed = False
        self._lock = asyncio.Lock()

    @property
    def token_counter(self) -> str:
        return LLAMA_CPP_TOKENIZER if self._is_llama_cpp else ESTIMATE

    async def context_window(self) -> int | None:
        async with self._lock:
            if not self._probed:
                self._window = await self._probe()
                self._probed = True
        return self._window

    async def count_tokens(self, text: str) -> int | None:
        if not self._is_llama_cpp:
            return None
        answer = await self._request("POST", "/tokenize", {"content": text})
        tokens = answer.get("tokens") if isinstance(answer, dict) else None
        return len(tokens) if isinstance(tokens, list) else None

    async def _probe(self) -> int | None:
        if self._root.startswith(HOSTED_APIS):
            return known_window(self._model)
        props = await self._request("GET", "/props")
        settings = props.get("default_generation_settings") if isinstance(props, dict) else None
        n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
        if isinstance(n_ctx, int) and n_ctx > 0:
            self._is_llama_cpp = True
            return n_ctx
        shown = await self._request("POST", "/api/show", {"model": self._model})
        window = _ollama_window(shown)
        if window is not None:
            return window
        return known_window(self._model)

    async def _request(self, method: str, path: str, body: Any = None) -> Any:
        """The endpoint's JSON answer, or None when it has no such route or no answer."""
        # Imported here: the server's start reads the context settings through this
        # package, and must not pay for the HTTP stack until a model is called.
        import httpx2

        try:
            async with httpx2.AsyncClient(timeout=PROBE_SECONDS, trust_env=False) as client:
                response = await client.request(
                    method, self._root + path, json=body, headers=self._headers
                )
                if response.status_code != 200:
                    return None
                return response.json()
        except (httpx2.HTTPError, ValueError) as error:
            logger.debug("model endpoint %s%s did not answer: %s", self._root, path, error)
            return None


def _ollama_window(shown: Any) -> int | None:
    if not isinstance(shown, dict):
        return None
    parameters = shown.get("parameters")
    if isinstance(parameters, str):
        found = re.search(r"^\s*num_ctx\s+(\d+)", parameters, re.MULTILINE)
        if found:
            return int(found.group(1))
    info = shown.get("model_info")
    if isinstance(info, dict):
        for key, value in info.items():
            if key.endswith(".context_length") and isinstance(value, int) and value > 0:
                return value
    return None
