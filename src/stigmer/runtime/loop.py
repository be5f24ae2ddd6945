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

Tool policy: denied tools are never offered (the ToolBox leaves them out).
A turn whose calls include some the policy asks about first runs the calls
that need no one, then reports the others to the sink as waiting for
approval and returns (`is_waiting`). The engine continues the execution
later from its recorded conversation (`RunRequest.continuation`): the loop
then settles the open calls of that turn, running approved ones and giving
skipped or rejected ones their decided text as the result, so every call
the model asked for has exactly one result before the model is called again.

Pause: at each point between a model call and a tool call the loop asks the
sink whether a pause was requested, and if so returns there (`is_paused`)
with every step so far recorded; the calls of the turn not run yet stay
open, and the continuation runs them. A turn with calls the policy asks
about is not paused in the middle: its calls go to the person first.
"""

from __future__ import annotations

from stigmer.runtime.contract import (
    ChatProvider,
    Continuation,
    HistoryMessage,
    OpenToolCall,
    RunOutcome,
    RunRequest,
    RunSink,
    ToolCallRequest,
)
from stigmer.runtime.conversation import (
    AssistantMessage,
    Message,
    ToolCall,
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
    if request.continuation is None:
        messages: list[Message] = [
            *messages_from_history(request.history),
            UserMessage(request.message),
        ]
    else:
        messages = continued_messages(request.history, request.continuation)
    chat = provider or provider_for(request.model)
    try:
        async with ToolBox(
            request.tool_servers,
            call_timeout_seconds=request.tool_call_timeout_seconds,
            policy=request.tool_policy,
        ) as toolbox:
            if request.continuation is not None:
                for open_call in request.continuation.open_calls:
                    if sink.is_pause_requested():
                        return RunOutcome(final_answer="", steps=0, is_paused=True)
                    messages.append(await _settle(request, sink, toolbox, open_call))
            return await _converse(request, sink, chat, toolbox, messages)
    finally:
        if provider is None:
            await chat.aclose()


def continued_messages(
    history: tuple[HistoryMessage, ...], continuation: Continuation
) -> list[Message]:
    """The conversation of an execution that goes on: the session's earlier
    messages and its own, without results for the calls still open (the
    loop settles those first)."""
    open_ids = {open_call.call.id for open_call in continuation.open_calls}
    return [
        message
        for message in messages_from_history(history + continuation.conversation)
        if not (isinstance(message, ToolResultMessage) and message.call_id in open_ids)
    ]


async def _settle(
    request: RunRequest, sink: RunSink, toolbox: ToolBox, open_call: OpenToolCall
) -> ToolResultMessage:
    call = open_call.call
    if open_call.result is None:
        return await _run_call(request, sink, toolbox, call)
    if open_call.is_recorded:
        await sink.tool_result_added(call.id)
    else:
        await sink.tool_call_finished(call.id, open_call.result, is_error=open_call.is_error)
    return ToolResultMessage(call.id, open_call.result, open_call.is_error)


async def _run_call(
    request: RunRequest, sink: RunSink, toolbox: ToolBox, call: ToolCallRequest
) -> ToolResultMessage:
    await sink.tool_call_started(call)
    result = await toolbox.call(call.name, call.arguments)
    # The model reads what the execution records: the result, capped.
    text = cap_tool_result(result.text, request.max_tool_result_bytes)
    await sink.tool_call_finished(call.id, text, is_error=result.is_error)
    return ToolResultMessage(call.id, text, result.is_error)


def _requested(request: RunRequest, toolbox: ToolBox, call: ToolCall) -> ToolCallRequest:
    """The model's call with its server and its gate (see the module docstring)."""
    server = toolbox.server_of(call.name) or ""
    gate = request.grants.gate(toolbox.decision_of(call.name), server, call.name)
    return ToolCallRequest(
        id=call.id,
        name=call.name,
        server=server,
        arguments=call.arguments,
        gate=gate,
        input_schema=toolbox.input_schema_of(call.name) if gate.is_asked else None,
    )


async def _converse(
    request: RunRequest,
    sink: RunSink,
    provider: ChatProvider,
    toolbox: ToolBox,
    messages: list[Message],
) -> RunOutcome:
    content = ""
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
        calls = tuple(_requested(request, toolbox, call) for call in turn.tool_calls)
        await sink.ai_message_finished(turn.content, calls)
        if turn.input_tokens is not None or turn.output_tokens is not None:
            await sink.usage(turn.input_tokens or 0, turn.output_tokens or 0)
        messages.append(AssistantMessage(turn.content, turn.tool_calls))
        if not calls:
            return RunOutcome(final_answer=content, steps=step)
        asked = tuple(call for call in calls if call.gate.is_asked)
        for call in calls:
            if not asked and sink.is_pause_requested():
                return RunOutcome(final_answer=content, steps=step, is_paused=True)
            if not call.gate.is_asked:
                messages.append(await _run_call(request, sink, toolbox, call))
        if asked:
            await sink.approvals_requested(asked, turn.content)
            return RunOutcome(final_answer=content, steps=step, is_waiting=True)
    return RunOutcome(final_answer=content, steps=request.max_steps, is_step_limit_reached=True)
