"""The agent loop: ask the model, run the tools it asks for, repeat until it answers.

One run is one user message. The conversation starts from the system prompt
(the agent's instructions), the session's earlier messages and the new
message; each model turn and each tool result is appended, and the model is
called again until it replies without tool calls or `max_steps` model calls
have been made. The tools of that last turn still run, so every tool call the
model asked for has a recorded result.

Everything is reported to the `RunSink` as it happens and awaited before the
loop goes on, so the engine records messages, tool calls and usage in the
order they occurred. What the model or a tool gets wrong is data (an error
tool result the model reads); what stops the run is raised: `ModelError`,
`ToolServerError`, an error of the sink itself, and `CancelledError`, which
interrupts a model stream or a tool call at once and closes every tool server.
"""

from __future__ import annotations

import time

from stigmer.runtime.contract import (
    ChatProvider,
    RunOutcome,
    RunRequest,
    RunSink,
    ToolCallRequest,
)
from stigmer.runtime.conversation import (
    AssistantMessage,
    Message,
    ToolResultMessage,
    UserMessage,
    messages_from_history,
)
from stigmer.runtime.model_calls import new_model_call_id, system_prompt, usage_of
from stigmer.runtime.providers import provider_for
from stigmer.runtime.tool_results import cap_tool_result
from stigmer.runtime.tools import ToolBox

__all__ = ["run_agent"]


async def run_agent(
    request: RunRequest, sink: RunSink, *, provider: ChatProvider | None = None
) -> RunOutcome:
    """Runs the agent on `request.message`, reporting every step to `sink`.

    `provider` overrides the one `request.model` names (the caller then owns it
    and closes it).

    Raises:
        ModelError: the model could not answer.
        ToolServerError: a tool server could not be started.
        ValueError: `request.max_steps` is below 1.
    """
    if request.max_steps < 1:
        raise ValueError(f"max_steps must be at least 1, got {request.max_steps}")
    messages: list[Message] = [
        *messages_from_history(request.history),
        UserMessage(request.message),
    ]
    chat = provider or provider_for(request.model)
    try:
        async with ToolBox(
            request.tool_servers, call_timeout_seconds=request.tool_call_timeout_seconds
        ) as toolbox:
            return await _converse(request, sink, chat, toolbox, messages)
    finally:
        if provider is None:
            await chat.aclose()


async def _converse(
    request: RunRequest,
    sink: RunSink,
    provider: ChatProvider,
    toolbox: ToolBox,
    messages: list[Message],
) -> RunOutcome:
    content = ""
    for step in range(1, request.max_steps + 1):
        await sink.ai_message_started()
        began = time.monotonic()
        turn = await provider.stream_turn(
            system=system_prompt(request.instructions, sink.model_note()),
            messages=messages,
            tools=toolbox.tools,
            on_delta=sink.ai_content_delta,
            sampling=request.sampling,
        )
        usage = usage_of(
            turn,
            request.model,
            call_id=new_model_call_id(),
            duration_seconds=time.monotonic() - began,
        )
        content = turn.content
        calls = tuple(
            ToolCallRequest(
                id=call.id,
                name=call.name,
                server=toolbox.server_of(call.name) or "",
                arguments=call.arguments,
            )
            for call in turn.tool_calls
        )
        if usage is not None:
            await sink.usage(usage)
        await sink.ai_message_finished(turn.content, calls)
        messages.append(AssistantMessage(turn.content, turn.tool_calls))
        if not calls:
            return RunOutcome(final_answer=content, steps=step)
        for call in calls:
            await sink.tool_call_started(call)
            result = await toolbox.call(call.name, call.arguments)
            # The model reads what the execution records: the result, capped.
            text = cap_tool_result(
                result.text, request.max_tool_result_bytes, request.max_tool_result_chars
            )
            await sink.tool_call_finished(call.id, text, is_error=result.is_error)
            messages.append(ToolResultMessage(call.id, text, result.is_error))
    return RunOutcome(final_answer=content, steps=request.max_steps, is_step_limit_reached=True)
