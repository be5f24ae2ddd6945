"""Which provider runs use when the user configured none, and the sentence that says why.

Ollama is stood in for by the scripted model (it serves /v1/models as Ollama
does), reached through OLLAMA_HOST, so no test depends on what runs on this
machine's port 11434.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stigmer.api.v1 import execution_pb2
from stigmer.client import Client
from stigmer.engine.embedded import EmbeddedEngine
from stigmer.engine.options import EngineOptions
from stigmer.local_ports import free_local_port
from stigmer.runtime.contract import ModelError
from stigmer.runtime.model_files import DEFAULT_MODEL
from stigmer.runtime.model_resolution import ollama_url, resolve_model
from stigmer.runtime.providers import provider_for
from stigmer.testing.scripted_model import ScriptedModel
from stigmer.testing.server import ServerThread
from tests.agents import PLAIN_AGENT
from tests.local.local_model import RUN_DEADLINE_SECONDS
from tests.waiting import wait_for_end, wait_until


@pytest.fixture
def no_ollama(local_home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """OLLAMA_HOST points at a port nothing listens on."""
    address = f"127.0.0.1:{free_local_port()}"
    monkeypatch.setenv("OLLAMA_HOST", address)
    return f"http://{address}"


@pytest.fixture
def fake_ollama(local_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with ScriptedModel() as model:
        address = model.base_url.removeprefix("http://").removesuffix("/v1")
        monkeypatch.setenv("OLLAMA_HOST", address)
        yield f"http://{address}"


def test_a_configured_provider_is_used_and_the_reason_names_where_it_was_set(
    fake_ollama: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STIGMER_LLM_PROVIDER", "openai")
    monkeypatch.setenv("STIGMER_LLM_MODEL", "gpt-test")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")

    choice = resolve_model()

    assert (choice.provider, choice.settings.provider) == ("openai", "openai")
    assert (choice.settings.model, choice.settings.api_key) == ("gpt-test", "sk-test")
    assert choice.reason == "llm.provider is set (env STIGMER_LLM_PROVIDER)"


def test_ollama_answering_is_chosen_before_api_keys_and_the_local_model(
    fake_ollama: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")

    choice = resolve_model()

    assert choice.provider == "ollama"
    assert choice.settings.provider == "openai"  # Ollama speaks the OpenAI protocol
    assert (choice.settings.model, choice.settings.base_url) == ("scripted", f"{fake_ollama}/v1")
    assert choice.reason == (
        f"llm.provider is not set and Ollama answers on {fake_ollama} (its first model, of 1)"
    )


def test_an_openai_key_is_chosen_when_ollama_does_not_answer(
    no_ollama: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")

    choice = resolve_model()

    assert (choice.provider, choice.settings.api_key) == ("openai", "sk-test")
    assert choice.reason == (
        f"llm.provider is not set, Ollama does not answer on {no_ollama}, and OPENAI_API_KEY is set"
    )


def test_an_anthropic_key_is_chosen_when_there_is_no_openai_key(
    no_ollama: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("STIGMER_LLM_MODEL", "claude-test")

    choice = resolve_model()

    assert (choice.settings.provider, choice.settings.model) == ("anthropic", "claude-test")
    assert choice.reason.endswith("OPENAI_API_KEY is not set, and ANTHROPIC_API_KEY is set")


def test_the_local_model_is_chosen_when_nothing_else_is_there(no_ollama: str) -> None:
    choice = resolve_model()

    assert choice.provider == "local"
    assert (choice.settings.provider, choice.settings.model) == ("local", DEFAULT_MODEL.alias)
    assert choice.local is not None and choice.local.model_path is None
    assert choice.reason.startswith(
        f"llm.provider is not set, Ollama does not answer on {no_ollama}, OPENAI_API_KEY is not "
        "set, ANTHROPIC_API_KEY is not set, and the local model"
    )


def test_with_nothing_found_runs_fail_with_how_to_configure_a_provider(
    no_ollama: str, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STIGMER_LLM_MODEL_PATH", str(tmp_path / "gone.gguf"))

    choice = resolve_model()

    assert not choice.is_resolved
    assert choice.reason.endswith(f"and llm.model_path {tmp_path / 'gone.gguf'} does not exist")
    with pytest.raises(ModelError) as raised:
        provider_for(choice.settings)
    assert "no model provider is configured and none was found" in str(raised.value)
    engine = EngineOptions(model=choice.settings)
    with ServerThread(store_url, engine=engine) as server, Client(server.address) as client:
        client.apply(PLAIN_AGENT)
        final = wait_for_end(
            client, client.run("greeter", "hi").metadata.id, within=RUN_DEADLINE_SECONDS
        )
        # Stopping while the worker slot is still being released can lose the
        # dispatcher's cancellation (asyncio.wait_for on 3.11): let it settle first.
        embedded = server.server.engine
        assert isinstance(embedded, EmbeddedEngine)
        wait_until(lambda: embedded.running_count == 0, what="the slot to free")
    assert final.status.phase == execution_pb2.EXECUTION_PHASE_FAILED
    assert "stigmer model install" in final.status.error
    assert "export OPENAI_API_KEY=" in final.status.error


@pytest.mark.parametrize(
    ("ollama_host", "expected"),
    [
        ("", "http://localhost:11434"),
        ("127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("0.0.0.0", "http://localhost:11434"),
        ("https://ollama.internal", "https://ollama.internal:11434"),
        ("[::1]:9999", "http://[::1]:9999"),
    ],
)
def test_ollama_host_is_read_as_ollamas_own_clients_read_it(
    ollama_host: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", ollama_host)

    assert ollama_url() == expected
