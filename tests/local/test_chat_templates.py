"""Our chat template for the Qwen-Coder family: chosen by file name, rendered by llama.cpp."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stigmer.runtime.chat_templates import QWEN_CODER_TEMPLATE, chat_template_for
from stigmer.runtime.local_model import LocalModelConfig, LocalModelHost


@pytest.mark.parametrize(
    "name",
    [
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        "Qwen2.5-Coder-1.5B-Instruct-Q4_K_M.gguf",
        "qwen2.5-coder-7b-instruct.Q5_K_M.gguf",
    ],
)
def test_qwen_coder_models_get_our_tool_calling_template(name: str) -> None:
    assert chat_template_for(Path("/models") / name) == QWEN_CODER_TEMPLATE


@pytest.mark.parametrize(
    "name", ["SmolLM2-135M-Instruct.Q4_1.gguf", "qwen2.5-7b-instruct.gguf", "llama-3.gguf"]
)
def test_other_models_keep_their_own_template(name: str) -> None:
    assert chat_template_for(Path("/models") / name) is None


@pytest.fixture
def host(installed_model: Path) -> Iterator[LocalModelHost]:
    """A host of the test's own (not the shared one), stopped afterwards."""
    own = LocalModelHost()
    asyncio.run(own.ensure_started(LocalModelConfig(model_path=installed_model)))
    yield own
    asyncio.run(own.stop())


def rendered(host: LocalModelHost, messages: list[dict[str, Any]]) -> str:
    """The prompt llama.cpp builds from `messages` with the template it was given."""
    request = urllib.request.Request(
        host.base_url.removesuffix("/v1") + "/apply-template",
        data=json.dumps({"messages": messages}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {host.api_key}"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=30) as response:
        prompt: str = json.load(response)["prompt"]
    return prompt


@pytest.mark.slow
def test_earlier_tool_calls_render_as_bare_json_and_results_ask_for_plain_text(
    host: LocalModelHost,
) -> None:
    prompt = rendered(
        host,
        [
            {"role": "system", "content": "You count days."},
            {"role": "user", "content": "Days from 2024-03-01 to 2025-01-15?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {
                            "name": "days_between",
                            "arguments": '{"start": "2024-03-01", "end": "2025-01-15"}',
                        },
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "320"},
        ],
    )

    assert prompt.startswith("<|im_start|>system\nYou count days.<|im_end|>\n")
    assert (
        '<|im_start|>assistant\n{"name": "days_between", "arguments": '
        '{"start": "2024-03-01", "end": "2025-01-15"}}\n<|im_end|>\n'
    ) in prompt
    assert "<tool_call>" not in prompt
    assert prompt.endswith(
        "<|im_start|>user\n<tool_response>\n320\n</tool_response>\n"
        "Answer the question in plain text using these function results.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
