"""Which model provider is in effect, and why, when the user may have said nothing.

A newcomer should see an agent run before configuring anything, so an unset
`llm.provider` is resolved from what the machine already has, in this order:

1. `llm.provider` set (flag, `STIGMER_LLM_PROVIDER`, config file): that provider.
2. Ollama answering on localhost:11434 (or where `OLLAMA_HOST` says, as for Ollama's
   own clients; a short probe): it serves models the user chose to install, so it
   wins over paid APIs.
3. `OPENAI_API_KEY`, then `ANTHROPIC_API_KEY`, from the environment (with a small
   default model of that vendor unless `llm.model` names one).
4. The local model (`stigmer[local]`), when llama.cpp and a model file (or the
   packages to assemble the default one) are installed.

Every answer carries a sentence saying why it was chosen, which `stigmer doctor`
prints. When nothing is found the choice is the `none` provider, whose runs fail
with the message that says exactly how to configure one: the server still
starts, since managing resources needs no model.
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.parse
import urllib.request
from dataclasses import dataclass

from stigmer import config
from stigmer.runtime.contract import ModelSettings
from stigmer.runtime.local_model import LocalModelConfig, is_local_runtime_installed
from stigmer.runtime.model_files import (
    DEFAULT_MODEL,
    INSTALL_HINT,
    default_model_path,
    has_model_parts,
)

__all__ = [
    "NO_PROVIDER",
    "ModelChoice",
    "no_provider_message",
    "ollama_url",
    "resolve_model",
]

OLLAMA_PORT = 11434
OLLAMA_PROBE_SECONDS = 0.5
NO_PROVIDER = "none"
# Used only when a key alone chose the provider and no model is named anywhere.
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
DEFAULT_ANTHROPIC_MODEL = "claude-haiku-4-5"


@dataclass(frozen=True)
class ModelChoice:
    """The provider and model runs use by default, and the sentence that says why."""

    provider: str  # as the user names it: openai, anthropic, ollama, local, or none
    settings: ModelSettings  # what the engine is given
    reason: str
    local: LocalModelConfig | None = None  # the local model's file and sizing, when local

    @property
    def is_resolved(self) -> bool:
        return self.provider != NO_PROVIDER


def no_provider_message() -> str:
    """What to do when no provider is configured and none was found."""
    return (
        "no model provider is configured and none was found on this machine. Choose one:\n"
        f"  - the local model, offline: {INSTALL_HINT} && stigmer model install\n"
        f"  - Ollama: start it on {ollama_url()}, or "
        "stigmer config set llm.provider ollama && stigmer config set llm.model NAME\n"
        "  - OpenAI or Anthropic: export OPENAI_API_KEY=... or ANTHROPIC_API_KEY=...\n"
        "  - any OpenAI-compatible endpoint: stigmer config set llm.provider openai, "
        "llm.base_url URL and llm.model NAME\n"
        "then restart the server (stigmer server stop; stigmer server start)"
    )


def ollama_url() -> str:
    """Where Ollama listens: `OLLAMA_HOST` (host, host:port or a URL) else localhost:11434."""
    host = os.environ.get("OLLAMA_HOST", "").strip()
    if not host:
        return f"http://localhost:{OLLAMA_PORT}"
    parts = urllib.parse.urlsplit(host if "://" in host else f"http://{host}")
    hostname = parts.hostname or "localhost"
    if hostname in ("0.0.0.0", "::"):  # a listen-everywhere address: reach it on loopback
        hostname = "localhost"
    if ":" in hostname:
        hostname = f"[{hostname}]"
    return f"{parts.scheme}://{hostname}:{parts.port or OLLAMA_PORT}"


def resolve_model() -> ModelChoice:
    """The provider and model in effect, from settings first, else from what the machine has.

    Raises:
        InvalidArgument: a local-model setting (threads, context size) is not a number.
    """
    provider = config.resolve("llm.provider")
    if provider.value:
        return _configured(provider.value.lower(), f"llm.provider is set ({provider.source})")
    model = config.value("llm.model")
    ollama = ollama_url()
    ollama_models = _ollama_models(ollama)
    if ollama_models is not None and (model or ollama_models):
        chosen = model or ollama_models[0]
        return ModelChoice(
            "ollama",
            ModelSettings("openai", chosen, base_url=f"{ollama}/v1"),
            f"llm.provider is not set and Ollama answers on {ollama}"
            + ("" if model else f" (its first model, of {len(ollama_models)})"),
        )
    passed = [
        "llm.provider is not set",
        f"Ollama does not answer on {ollama}"
        if ollama_models is None
        else f"Ollama on {ollama} has no model",
    ]
    for name, variable, default_model in (
        ("openai", "OPENAI_API_KEY", DEFAULT_OPENAI_MODEL),
        ("anthropic", "ANTHROPIC_API_KEY", DEFAULT_ANTHROPIC_MODEL),
    ):
        if os.environ.get(variable):
            settings = ModelSettings(
                name, model or default_model, config.value("llm.base_url"), os.environ[variable]
            )
            return ModelChoice(name, settings, _because(passed, f"{variable} is set"))
        passed.append(f"{variable} is not set")
    local = LocalModelConfig.from_settings()
    is_found, why = _local_model_found(local)
    if is_found:
        settings = ModelSettings("local", model or DEFAULT_MODEL.alias)
        return ModelChoice("local", settings, _because(passed, why), local)
    settings = ModelSettings(NO_PROVIDER, model or NO_PROVIDER)
    return ModelChoice(NO_PROVIDER, settings, _because(passed, why))


def _because(passed: list[str], chosen: str) -> str:
    return ", ".join(passed) + f", and {chosen}"


def _configured(provider: str, reason: str) -> ModelChoice:
    """The settings for a provider the user named (unknown names are OpenAI-compatible)."""
    model = config.value("llm.model")
    base_url = config.value("llm.base_url")
    api_key = config.value("llm.api_key")
    match provider:
        case "local":
            return ModelChoice(
                "local",
                ModelSettings("local", model or DEFAULT_MODEL.alias),
                reason,
                LocalModelConfig.from_settings(),
            )
        case "anthropic":
            api_key = api_key or os.environ.get("ANTHROPIC_API_KEY", "")
            return ModelChoice(
                provider, ModelSettings("anthropic", model, base_url, api_key), reason
            )
        case "ollama":
            base_url = base_url or f"{ollama_url()}/v1"
    api_key = api_key or os.environ.get("OPENAI_API_KEY", "")
    return ModelChoice(provider, ModelSettings("openai", model, base_url, api_key), reason)


def _ollama_models(url: str) -> list[str] | None:
    """The models Ollama lists, or None when nothing answers there like Ollama would."""
    # No proxy: a proxy from the environment must not answer for localhost.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url}/v1/models", timeout=OLLAMA_PROBE_SECONDS) as response:
            listed = json.load(response)
    except (OSError, http.client.HTTPException, ValueError):  # refused, timeout, not JSON
        return None
    entries = listed.get("data") if isinstance(listed, dict) else None
    if not isinstance(entries, list):
        return None
    return [str(entry["id"]) for entry in entries if isinstance(entry, dict) and "id" in entry]


def _local_model_found(local: LocalModelConfig) -> tuple[bool, str]:
    """Whether the local model can run, and the file (or packages) that say so, or why not."""
    if not is_local_runtime_installed():
        return False, f"llama.cpp for the local model is not installed ({INSTALL_HINT})"
    path = local.resolved_model_path
    if path.is_file():
        return True, f"the local model is installed: {path}"
    if local.model_path is not None:
        return False, f"llm.model_path {path} does not exist"
    if has_model_parts():
        return True, (
            "the local model's packages are installed "
            f"(the first run assembles {default_model_path()})"
        )
    return False, "the local model is not installed"
