"""The `local` provider: a GGUF model served in this process by llama.cpp.

`xllamacpp` carries llama.cpp's own HTTP server, prebuilt: we start it on
127.0.0.1 and a free port and talk to it with the same OpenAI-compatible
provider every other endpoint uses, so there is one agent loop and one wire
shape, whatever answers.

One `LocalModelHost` per process (`shared_host`) because a model is big
(~850 MiB of RAM for the default one with its 8k context) and slow to load
(~2 s on two cores, see bench/local_model.py): the first
execution that needs it starts it, every later one reuses it, and the engine
stops it with the server. Starting blocks (llama.cpp loads the model before
its constructor returns), so it runs on a worker thread under a thread lock:
the lock holds across event loops and threads, which an asyncio lock does not,
and concurrent first executions wait for one start instead of loading twice.

The server gets a random API key because llama.cpp allows every CORS origin:
without a key any web page the user opens could use the model. Sampling
defaults to temperature 0: agents want the same tool call for the same
question, and the small default model wanders at higher temperatures.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stigmer import config
from stigmer.errors import InvalidArgument
from stigmer.runtime.chat_templates import chat_template_for
from stigmer.runtime.contract import (
    NO_SAMPLING,
    DeltaCallback,
    ModelError,
    ModelErrorKind,
    ModelSettings,
    Sampling,
)
from stigmer.runtime.conversation import Message, ModelTurn, ToolResultMessage, ToolSpec
from stigmer.runtime.model_files import (
    DEFAULT_MODEL,
    INSTALL_HINT,
    ModelFileError,
    check_model_file,
    default_model_path,
    has_model_parts,
    install_model,
)

if TYPE_CHECKING:
    from stigmer.runtime.openai_chat import OpenAIChatProvider, ToolChoice

__all__ = [
    "LocalChatProvider",
    "LocalModelConfig",
    "LocalModelError",
    "LocalModelHost",
    "default_threads",
    "is_local_runtime_installed",
    "prepare_model_file",
    "shared_host",
]

logger = logging.getLogger(__name__)

DEFAULT_CONTEXT_SIZE = 8192
# The status llama.cpp's server sends, in the stream's error event, when the
# model's reply does not parse as the tool-call shape its chat template taught.
_PARSER_REJECTED_STATUS = 500
# llama.cpp's log levels: 0 output, 1 errors, 2 warnings, 3 info. Its per-request
# timing lines would drown the server's own log.
_LLAMA_VERBOSITY = 1


class LocalModelError(ModelError):
    """The local model could not be started: not installed, damaged, or refused by llama.cpp."""

    def __init__(self, message: str) -> None:
        super().__init__(message, kind=ModelErrorKind.LOCAL_MODEL)


def is_local_runtime_installed() -> bool:
    """Whether llama.cpp is importable (the `local` extra), without loading it."""
    return importlib.util.find_spec("xllamacpp") is not None


@dataclass(frozen=True)
class LocalModelConfig:
    """Which GGUF file the local server loads, and with how much of the machine.

    model_path None means the default model, assembled from its packages on
    first use. threads 0 means every core but one (see `default_threads`).
    context_size is the token window shared by one conversation's prompt and
    answer.
    """

    model_path: Path | None = None
    threads: int = 0
    context_size: int = DEFAULT_CONTEXT_SIZE

    @classmethod
    def from_settings(cls) -> LocalModelConfig:
        """The config in effect: llm.model_path, llm.threads, llm.context_size.

        Raises:
            InvalidArgument: a number setting is not a number, or is negative.
        """
        path = config.value("llm.model_path")
        return cls(
            model_path=Path(path).expanduser() if path else None,
            threads=_whole_number("llm.threads", 0),
            context_size=_whole_number("llm.context_size", DEFAULT_CONTEXT_SIZE),
        )

    @property
    def resolved_model_path(self) -> Path:
        return self.model_path or default_model_path()


def default_threads() -> int:
    """Every core but one: llama.cpp's threads spin and wait for each other at every
    step, so one of them descheduled by the server's own work (recording each token,
    tool processes, tool-call grammar sampling) stalls them all. Measured here on
    2 cores, whole quickstart executions took 8-10 s with one thread and 8-27 s with
    two; alone, two threads decode free text ~2x faster.
    """
    return max(1, (os.cpu_count() or 2) - 1)


def _whole_number(key: str, default: int) -> int:
    text = config.value(key)
    if not text:
        return default
    if not text.isdigit():
        raise InvalidArgument.for_field(key, f"{text!r} is not a whole number (0: automatic)")
    return int(text)


def prepare_model_file(model_config: LocalModelConfig) -> Path:
    """The model file to load, checked; the default one is assembled when missing.

    Raises:
        ModelFileError: the file is missing, damaged or cannot be assembled.
    """
    path = model_config.resolved_model_path
    if path == default_model_path():
        if not path.exists() and has_model_parts():
            logger.info("Assembling the default local model %s into %s", DEFAULT_MODEL.title, path)
            return install_model()
        check_model_file(path, DEFAULT_MODEL)
    else:
        # A file named like the default model is held to its digest wherever it lies.
        check_model_file(path, DEFAULT_MODEL if path.name == DEFAULT_MODEL.file_name else None)
    return path


def _server_params(params: Any, path: Path, model_config: LocalModelConfig, api_key: str) -> Any:
    """llama.cpp's server settings (an `xllamacpp.CommonParams`, untyped) for one model file."""
    params.model.path = str(path)
    params.model_alias = {
        DEFAULT_MODEL.alias if path.name == DEFAULT_MODEL.file_name else path.stem
    }
    params.hostnames = ["127.0.0.1"]
    params.port = 0  # a free port: two servers on one machine must not collide
    params.n_ctx = model_config.context_size
    # One slot: on a few cores, parallel decoding only slows every conversation down.
    params.n_parallel = 1
    params.cpuparams.n_threads = model_config.threads or default_threads()
    params.verbosity = _LLAMA_VERBOSITY
    params.sampling.temp = 0.0
    params.api_keys = [api_key]
    params.use_jinja = True
    template = chat_template_for(path)
    if template is not None:
        params.chat_template = template
    return params


class LocalModelHost:
    """At most one llama.cpp server, started on first use and shared by every execution."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._server: Any = None  # xllamacpp.Server; untyped library
        self._base_url = ""
        self.api_key = ""
        self.config: LocalModelConfig | None = None
        self.model_path: Path | None = None
        self.load_seconds = 0.0  # of the last start
        self.starts = 0  # loads since the process began: a shared host loads once per server

    @property
    def is_running(self) -> bool:
        return self._server is not None

    @property
    def base_url(self) -> str:
        return self._base_url

    async def ensure_started(self, model_config: LocalModelConfig | None = None) -> str:
        """The server's OpenAI-compatible base URL, starting it first if needed.

        When the server already runs, `model_config` is not compared: a changed
        model takes a restart (stop, then start again), like every server setting.

        Raises:
            LocalModelError: llama.cpp is not installed, or the model could not be loaded
                (the message says why and what to do).
        """
        if self._server is not None:
            return self._base_url
        chosen = model_config or LocalModelConfig.from_settings()
        return await asyncio.to_thread(self._start, chosen)

    def _start(self, model_config: LocalModelConfig) -> str:
        with self._lock:
            if self._server is not None:
                return self._base_url
            try:
                import xllamacpp
            except ImportError:
                raise LocalModelError(
                    f"the local model provider needs llama.cpp: {INSTALL_HINT}"
                ) from None
            try:
                path = prepare_model_file(model_config)
            except ModelFileError as error:
                raise LocalModelError(str(error)) from error
            api_key = secrets.token_urlsafe(24)
            params = _server_params(xllamacpp.CommonParams(), path, model_config, api_key)
            started = time.monotonic()
            try:
                server = xllamacpp.Server(params)
            except (RuntimeError, ValueError) as error:
                raise LocalModelError(
                    f"llama.cpp could not load the model file {path} ({error}); "
                    "the server log has llama.cpp's own reason"
                ) from error
            self.load_seconds = time.monotonic() - started
            self.starts += 1
            self._server = server
            self._base_url = f"{server.listening_address}/v1"
            self.api_key = api_key
            self.config = model_config
            self.model_path = path
            logger.info(
                "Local model %s loaded in %.1f s, serving on %s",
                path.name,
                self.load_seconds,
                self._base_url,
            )
            return self._base_url

    async def stop(self) -> None:
        """Stops the server if it runs or is starting; requests in flight fail as model errors.

        A start still loading (its execution may already be cancelled) is waited
        for and then stopped, so no model outlives the server that started it.
        """
        if self._server is not None or self._lock.locked():
            await asyncio.to_thread(self._stop)

    def _stop(self) -> None:
        with self._lock:
            server, self._server = self._server, None
            self._base_url = ""
            if server is None:
                return
            # xllamacpp has no stop(): dropping the last reference runs llama.cpp's
            # destructor, which ends its loop and joins its threads (here, off the event loop).
            del server
            logger.info("Local model stopped")


shared_host = LocalModelHost()


class LocalChatProvider:
    """The OpenAI-compatible provider, pointed at the shared local server once it runs."""

    def __init__(
        self,
        settings: ModelSettings,
        *,
        host: LocalModelHost = shared_host,
        model_config: LocalModelConfig | None = None,
    ) -> None:
        self._settings = settings
        self._host = host
        self._model_config = model_config
        self._inner: OpenAIChatProvider | None = None
        self.endpoint = "local model (not started)"

    async def _provider(self) -> OpenAIChatProvider:
        # Imported here, not at the top: the engine and the CLI import this module for
        # the shared host and its config, and must not pay for the model SDK's import.
        from stigmer.runtime.openai_chat import OpenAIChatProvider

        base_url = await self._host.ensure_started(self._model_config)
        if self._inner is not None and self.endpoint == base_url:
            return self._inner
        if self._inner is not None:  # the host was restarted on another port
            await self._inner.aclose()
        self._inner = OpenAIChatProvider(
            replace(self._settings, base_url=base_url, api_key=self._host.api_key)
        )
        self.endpoint = base_url
        return self._inner

    async def context_window(self) -> int | None:
        """llama.cpp's context per request slot, as its server reports it."""
        return await (await self._provider()).context_window()

    async def count_tokens(self, text: str) -> int | None:
        return await (await self._provider()).count_tokens(text)

    @property
    def token_counter(self) -> str:
        return self._inner.token_counter if self._inner is not None else "estimate"

    async def stream_turn(
        self,
        *,
        system: str,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec],
        on_delta: DeltaCallback,
        sampling: Sampling = NO_SAMPLING,
    ) -> ModelTurn:
        provider = await self._provider()
        is_streaming = False

        async def forward(text: str) -> None:
            nonlocal is_streaming
            is_streaming = True
            await on_delta(text)

        try:
            return await provider.stream_turn(
                system=system, messages=messages, tools=tools, on_delta=forward, sampling=sampling
            )
        except ModelError as error:
            # llama.cpp answers 500 when its tool-call parser rejects what the model
            # wrote: a small model sometimes calls a tool it was never offered
            # ("weather_in_paris") or writes broken JSON. Nothing reached the user
            # yet, so the turn is asked once more with the output held to a grammar:
            # before any tool result the model must call one of the tools offered
            # (it was trying to call one), after tool results it must answer in
            # text. Either way the parser cannot fail again, and the retry is
            # bounded to one.
            if not tools or is_streaming or error.status != _PARSER_REJECTED_STATUS:
                raise
            choice: ToolChoice = (
                "none" if messages and isinstance(messages[-1], ToolResultMessage) else "required"
            )
            logger.info(
                "local model reply rejected by the tool-call parser; asking again (%s)", choice
            )
            return await provider.stream_turn(
                system=system,
                messages=messages,
                tools=tools,
                on_delta=on_delta,
                sampling=sampling,
                tool_choice=choice,
            )

    async def aclose(self) -> None:
        if self._inner is not None:
            await self._inner.aclose()
            self._inner = None
