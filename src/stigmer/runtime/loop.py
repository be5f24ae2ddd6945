"""The agent loop: ask the model, run the tools it asks for, repeat until it answers.

One run is one user message. The conversation starts from the system prompt
(the agent's instructions), the session's earlier messages and the new
message; each model turn and each tool result is appended, and the model is
called again until it replies without tool calls or `max_steps` model calls
have been made. The tools of that last turn still run, so every tool call the
model asked for has a recorded result.

A run may also continue an earlier one that stopped (RunRequest.is_continuation):
the history then already holds its conversation so far, and the calls of the
last model turn that never ran run first. At each point between a model call
and a tool call the loop asks the sink whether a pause was requested, and if
so returns there (RunOutcome.is_paused) with every step so far recorded.

Everything is reported to the `RunSink` as it happens and awaited before the
loop goes on, so the engine records messages, tool calls and usage in the
order they occurred. What the model or a tool gets wrong is data (an error
tool result the model reads); what stops the run is raised: `ModelError`,
`ToolServerError`, an error of the sink itself, and `CancelledError`, which
interrupts a model stream or a tool call at once and closes every tool server.
"""

from __future__ import annotations

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
    messages: list[Message] = list(messages_from_history(request.history))
    if not request.is_continuation:
        messages.append(UserMessage(request.message))
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
    if request.resume_calls:
        await _run_tools(request, sink, toolbox, messages, request.resume_calls)
    for step in range(1, request.max_steps + 1):
        if sink.is_pause_requested():
            return RunOutcome(final_answer=content, steps=step - 1, is_paused=True)
        await sink.ai_message_started()
        turn = await provider.stream_turn(
            system=request.instructions,
            messages=messages,
            tools=toolbox.tools,
            on_delta=sink.ai_content_delta,
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
        await sink.ai_message_finished(turn.content, calls)
        if turn.input_tokens is not None or turn.output_tokens is not None:
            await sink.usage(turn.input_tokens or 0, turn.output_tokens or 0)
        messages.append(AssistantMessage(turn.content, turn.tool_calls))
        if not calls:
            return RunOutcome(final_answer=content, steps=step)
        if not await _run_tools(request, sink, toolbox, messages, calls):
            return RunOutcome(final_answer=content, steps=step, is_paused=True)
    return RunOutcome(final_answer=content, steps=request.max_steps, is_step_limit_reached=True)


async def _run_tools(
    request: RunRequest,
    sink: RunSink,
    toolbox: ToolBox,
    messages: list[Message],
    calls: tuple[ToolCallRequest, ...],
) -> bool:
    """Runs the calls in order; False when a pause stopped them (the calls
    not run stay PENDING, and a continuation runs them)."""
    for call in calls:
        if sink.is_pause_requested():
            return False
        await sink.tool_call_started(call)
        result = await toolbox.call(call.name, call.arguments)
        # The model reads what the execution records: the result, capped.
        text = cap_tool_result(result.text, request.max_tool_result_bytes)
        await sink.tool_call_finished(call.id, text, is_error=result.is_error)
        messages.append(ToolResultMessage(call.id, text, result.is_error))
    return True
