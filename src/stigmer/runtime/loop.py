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

from stigmer.runtime.builtin_tools import BUILTIN_SERVER, BuiltinTools
from stigmer.runtime.contract import (
    ChatProvider,
    RunOutcome,
    RunRequest,
    RunSink,
    SkillSource,
    ToolCallRequest,
)
from stigmer.runtime.conversation import (
    AssistantMessage,
    Message,
    ToolResultMessage,
    UserMessage,
    messages_from_history,
)
from stigmer.runtime.providers import provider_for
from stigmer.runtime.tool_results import cap_tool_result
from stigmer.runtime.tools import ToolBox

__all__ = ["run_agent"]


async def run_agent(
    request: RunRequest,
    sink: RunSink,
    *,
    provider: ChatProvider | None = None,
    skill_source: SkillSource | None = None,
) -> RunOutcome:
    """Runs the agent on `request.message`, reporting every step to `sink`.

    `provider` overrides the one `request.model` names (the caller then owns it
    and closes it). `skill_source` gives `read_skill` the request's skills.

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
            builtins = BuiltinTools(request.skills, skill_source)
            return await _converse(request, sink, chat, toolbox, builtins, messages)
    finally:
        if provider is None:
            await chat.aclose()


async def _converse(  # noqa: PLR0917
    request: RunRequest,
    sink: RunSink,
    provider: ChatProvider,
    toolbox: ToolBox,
    builtins: BuiltinTools,
    messages: list[Message],
) -> RunOutcome:
    content = ""
    tools = builtins.offered_with(toolbox.tools)
    for step in range(1, request.max_steps + 1):
        await sink.ai_message_started()
        turn = await provider.stream_turn(
            system=request.instructions,
            messages=messages,
            tools=tools,
            on_delta=sink.ai_content_delta,
        )
        content = turn.content
        calls = tuple(
            ToolCallRequest(
                id=call.id,
                name=call.name,
                server=BUILTIN_SERVER
                if builtins.offers(call.name)
                else toolbox.server_of(call.name) or "",
                arguments=call.arguments,
            )
            for call in turn.tool_calls
        )
        await sink.ai_message_finished(turn.content, calls)
        if turn.input_tokens is not None or turn.output_tokens is not None:
            await sink.usage(turn.input_tokens or 0, turn.output_tokens or 0)
        messages.append(AssistantMessage(turn.content, turn.tool_calls))
        if not calls:
            return RunOutcome(final_answer=content, steps=step)
        for call in calls:
            await sink.tool_call_started(call)
            if builtins.offers(call.name):
                result = await builtins.call(call.name, call.arguments)
            else:
                result = await toolbox.call(call.name, call.arguments)
            # The model reads what the execution records: the result, capped.
            text = cap_tool_result(result.text, request.max_tool_result_bytes)
            await sink.tool_call_finished(call.id, text, is_error=result.is_error)
            messages.append(ToolResultMessage(call.id, text, result.is_error))
    return RunOutcome(final_answer=content, steps=request.max_steps, is_step_limit_reached=True)
