"""Model providers: one streaming chat call through an official SDK, and
`provider_for`, the factory that picks one from ModelSettings.

    ChatProvider (Protocol, contract.py)
    ├── OpenAIChatProvider      any OpenAI-compatible endpoint (openai_chat.py)
    ├── LocalChatProvider       the same, against llama.cpp run in this process (local_model.py)
    └── AnthropicChatProvider   Anthropic's messages API (anthropic_chat.py)

A provider does one thing: send the conversation and the tool schemas, forward
the text to a callback as it streams, and return the complete turn. Shapes are
converted by pure functions (`openai_messages`, `anthropic_messages`, ...) so
they can be read and tested without a network.

Providers never retry (`max_retries=0`): whether a failed model call is worth
repeating is the engine's decision, and a hidden retry would resend a request
the user already pays for. Every SDK failure becomes a `ModelError` through one
table (`model_errors.py`).
"""

from __future__ import annotations

from stigmer.runtime.anthropic_chat import AnthropicChatProvider
from stigmer.runtime.contract import ChatProvider, ModelError, ModelErrorKind, ModelSettings
from stigmer.runtime.local_model import LocalChatProvider
from stigmer.runtime.model_resolution import no_provider_message
from stigmer.runtime.openai_chat import OpenAIChatProvider

__all__ = ["AnthropicChatProvider", "LocalChatProvider", "OpenAIChatProvider", "provider_for"]

OLLAMA_BASE_URL = "http://localhost:11434/v1"


def provider_for(settings: ModelSettings) -> ChatProvider:
    """The provider named by the settings.

    "openai" is any OpenAI-compatible endpoint; "ollama" is the same protocol,
    defaulting to Ollama on localhost; "local" starts (once per process) the
    llama.cpp server of local_model.py and talks to it the same way.

    Raises:
        ModelError: unknown provider, no provider at all ("none": the message says how
            to configure one), or Anthropic without an API key.
    """
    match settings.provider.lower():
        case "openai":
            return OpenAIChatProvider(settings)
        case "ollama":
            return OpenAIChatProvider(settings, default_base_url=OLLAMA_BASE_URL)
        case "local":
            return LocalChatProvider(settings)
        case "anthropic":
            return AnthropicChatProvider(settings)
        case "none":
            raise ModelError(no_provider_message(), kind=ModelErrorKind.CONFIG)
        case other:
            raise ModelError(
                f"unknown model provider {other!r}: expected openai, anthropic, ollama or local",
                kind=ModelErrorKind.CONFIG,
            )
