"""Chat templates we ship for local models whose own template defeats tool calling.

llama.cpp's server turns a model's reply into OpenAI `tool_calls` only when it
recognises, from the chat template, how that model writes a tool call: it
renders the template with and without an assistant tool call and parses
replies in the shape it saw. The Qwen2.5-Coder GGUFs carry a template that
asks for calls wrapped in `<tool_call>` tags, but these small models answer
with the bare JSON object instead, so the call arrives as text in `content`
and no tool ever runs.

Our template for that family asks for exactly what the models write, a bare
`{"name": ..., "arguments": ...}` object, and renders earlier assistant tool
calls the same way, so llama.cpp learns that shape and parses it (and, when a
tool call is required, constrains the output to it). After the last tool
result it asks for a plain-text answer: without that nudge a small model tends
to call the same tool again instead of answering.

llama.cpp renders templates as Hugging Face does (trim_blocks, lstrip_blocks):
the newline after a block tag is dropped, so newlines that matter are written
as expressions.

A template is chosen by the model file's name: the family is in the name of
every GGUF published for it, and reading the file's metadata would cost a
parse of its header for the same answer.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["QWEN_CODER_TEMPLATE", "chat_template_for"]

# Tool results go back in a user turn inside <tool_response> tags, as the
# model was trained; a tool call is rendered as the bare JSON object it writes.
# Every newline is an expression (see the module docstring), hence the {{- ... }}.
QWEN_CODER_TEMPLATE = r"""
{%- macro render_call(call) -%}
{%- if call.function is defined %}{% set call = call.function %}{% endif -%}
{"name": "{{ call.name }}", "arguments": {% if call.arguments is string -%}
{{ call.arguments }}{% else %}{{ call.arguments | tojson }}{% endif %}}
{%- endmacro -%}
{{- '<|im_start|>system\n' }}
{%- if messages and messages[0].role == 'system' %}{{ messages[0].content }}
{%- else %}{{ 'You are a helpful assistant.' }}{% endif %}
{%- if tools %}
{{- '\n\n# Tools\n\nYou may call these functions:' }}
{%- for tool in tools %}{{ '\n' }}{{ tool | tojson }}{% endfor %}
{{- '\n\nTo call a function, reply with only this JSON object and nothing else, ' }}
{{- 'no tags, no code fence:\n{"name": <function-name>, "arguments": <arguments-json-object>}' }}
{%- endif %}
{{- '<|im_end|>\n' }}
{%- for message in messages %}
{%- if message.role == 'system' and loop.first %}
{%- elif message.role == 'tool' %}
{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{ '<|im_start|>user' }}{% endif %}
{{- '\n<tool_response>\n' }}{{ message.content }}{{ '\n</tool_response>' }}
{%- if loop.last %}
{{- '\nAnswer the question in plain text using these function results.' }}
{%- endif %}
{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{ '<|im_end|>\n' }}{% endif %}
{%- elif message.role == 'assistant' and message.tool_calls %}
{{- '<|im_start|>assistant\n' }}
{%- for call in message.tool_calls %}{{ render_call(call) }}{{ '\n' }}{% endfor %}
{{- '<|im_end|>\n' }}
{%- else %}
{{- '<|im_start|>' + message.role + '\n' }}{{ message.content or '' }}{{ '<|im_end|>\n' }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}
"""


def chat_template_for(model_path: Path) -> str | None:
    """Our template for the model's family, or None to keep the model's own."""
    name = model_path.name.lower()
    if "qwen" in name and "coder" in name:
        return QWEN_CODER_TEMPLATE
    return None
