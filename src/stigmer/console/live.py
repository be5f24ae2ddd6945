"""Live pages: Server-Sent Events made from Subscribe and Watch.

An execution page is rendered at the execution's sequence N (its
status.last_sequence) and opens /executions/<id>/events?after=N. The stream
subscribes from a snapshot and folds the events into the same state the
server keeps (apply_event), then sends, per update, the page fragments that
changed as DOM operations (replace an element, append one, append text to
one) with the update's sequence as the SSE id. The browser sends the last
id it saw as Last-Event-ID when it reconnects, and the stream starts from
there: when the snapshot is newer than what the page shows, the changed
parts are sent once, whole; otherwise only what follows. A reloaded page,
or a dropped connection, misses nothing and applies nothing twice.

The executions list opens /executions/events with its filters and gets a
row replaced, added or removed for each change the Watch reports.

Each stream ends when the execution ends (an `end` event, so the browser
does not reconnect), when the person leaves, or when the console stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from jinja2 import Environment
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from stigmer.api.v1 import execution_pb2
from stigmer.console.app import client_of
from stigmer.console.execution_view import message_view, tool_call_view
from stigmer.console.pages import ExecutionParts, agents_by_id, execution_filters, execution_row
from stigmer.errors import StigmerError
from stigmer.resources.execution_events import apply_event

PARTS_TEMPLATE = "_execution_parts.html"
ROWS_TEMPLATE = "_execution_rows.html"
# Parts re-rendered whole after any change that is not text or a message.
SUMMARY_PARTS = ("summary", "approvals", "timeline", "extras")


def sse_event(name: str, data: Any, event_id: int | None = None) -> str:
    lines = [f"event: {name}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return "\n".join(lines) + "\n\n"


def _resume_point(request: Request) -> int:
    for text in (request.headers.get("last-event-id", ""), request.query_params.get("after", "")):
        if text.isdigit():
            return int(text)
    return 0


class ExecutionFragments:
    """Renders the parts of the execution page one update changed."""

    def __init__(self, environment: Environment) -> None:
        self.parts: Any = environment.get_template(PARTS_TEMPLATE).module

    def _part(self, name: str, context: ExecutionParts) -> str:
        return str(getattr(self.parts, name)(context))

    def whole(self, execution: execution_pb2.AgentExecution) -> list[dict[str, str]]:
        context = ExecutionParts(execution)
        names = (*SUMMARY_PARTS, "conversation")
        return [
            {"op": "replace", "id": f"execution-{name}", "html": self._part(name, context)}
            for name in names
        ]

    def changed(
        self, execution: execution_pb2.AgentExecution, event: execution_pb2.ExecutionEvent
    ) -> list[dict[str, str]]:
        change = event.WhichOneof("change")
        status = execution.status
        if change == "message_delta":
            delta = event.message_delta
            return [{"op": "text", "id": f"message-{delta.index}-content", "text": delta.text}]
        context = ExecutionParts(execution)
        if change == "message_added":
            index = len(status.messages) - 1
            view = message_view(index, status.messages[index])
            # A message just added has no tool calls yet: they follow it.
            html = str(self.parts.message(view, []))
            operations = [{"op": "append", "id": "conversation", "html": html}]
            if view.kind == "ai":
                operations.append(self._replace("timeline", context))
            return operations
        if change == "tool_call_updated":
            call = event.tool_call_updated
            owner = context.owners.get(call.id)
            container = "unattached-calls" if owner is None else f"message-{owner}-calls"
            updated = [c for c in status.tool_calls if c.id == call.id]
            html = str(self.parts.tool_call(tool_call_view(updated[0] if updated else call)))
            return [
                {"op": "upsert", "id": f"tool-call-{call.id}", "parent": container, "html": html},
                *(self._replace(name, context) for name in SUMMARY_PARTS),
            ]
        return [self._replace(name, context) for name in SUMMARY_PARTS]

    def _replace(self, name: str, context: ExecutionParts) -> dict[str, str]:
        return {"op": "replace", "id": f"execution-{name}", "html": self._part(name, context)}


async def _until_stopped(request: Request, stream: AsyncIterator[str]) -> AsyncIterator[str]:
    """The stream's items until it ends or the console stops."""
    stopping: asyncio.Event = request.app.state.stopping
    stopped = asyncio.ensure_future(stopping.wait())
    iterator = aiter(stream)
    following: asyncio.Future[str] | None = None
    try:
        while True:
            following = asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait({following, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if following not in done:
                return
            try:
                item = following.result()
            except StopAsyncIteration:
                return
            following = None
            yield item
    finally:
        # The person left, or the console stops: the stream's generator may
        # be suspended in a call, and is closed only once that is cancelled.
        stopped.cancel()
        if following is not None and not following.done():
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await following
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


def _streaming(request: Request, stream: AsyncIterator[str]) -> Response:
    return StreamingResponse(
        _until_stopped(request, stream),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def execution_events(request: Request) -> Response:
    execution_id = request.path_params["id"]
    client = client_of(request)
    shown = _resume_point(request)
    # Unknown ids and missing tokens answer as the page would, before streaming.
    await client.get_execution(execution_id)
    fragments = ExecutionFragments(request.app.state.templates)

    async def updates() -> AsyncIterator[str]:
        state = execution_pb2.AgentExecution()
        try:
            async for update in client.subscribe(execution_id):
                apply_event(state, update.event, update.sequence)
                sequence = max(update.sequence, state.status.last_sequence)
                if update.event.WhichOneof("change") == "snapshot":
                    if sequence > shown:
                        yield sse_event("ops", fragments.whole(state), sequence)
                    continue
                if sequence <= shown:
                    continue
                yield sse_event("ops", fragments.changed(state, update.event), sequence)
        except StigmerError as error:
            yield sse_event("problem", {"message": error.message})
            return
        yield sse_event("end", {"phase": state.status.phase})

    return _streaming(request, updates())


async def executions_events(request: Request) -> Response:
    client = client_of(request)
    phase, agent_name = execution_filters(request)
    agents = await agents_by_id(client)
    agent_id = ""
    if agent_name:
        agent_id = (await client.get("agent", agent_name)).metadata.id
    phase_value = (
        execution_pb2.ExecutionPhase.Value("EXECUTION_PHASE_" + phase.upper()) if phase else 0
    )
    rows = request.app.state.templates.get_template(ROWS_TEMPLATE).module

    async def changes() -> AsyncIterator[str]:
        try:
            async for change in client.watch_resources("AgentExecution"):
                execution = change.resource
                if execution is None:
                    continue
                row_id = f"execution-row-{execution.metadata.id}"
                is_match = (not phase_value or execution.status.phase == phase_value) and (
                    not agent_id or execution.status.agent_id == agent_id
                )
                if change.type == "DELETED" or not is_match:
                    operations = [{"op": "remove", "id": row_id}]
                else:
                    if execution.status.agent_id not in agents:
                        agents.update(await agents_by_id(client))
                    html = str(rows.row(execution_row(execution, agents)))
                    operations = [
                        {
                            "op": "upsert",
                            "id": row_id,
                            "parent": "execution-rows",
                            "html": html,
                            "at": "start",
                        }
                    ]
                yield sse_event("ops", operations, change.resource_version)
        except StigmerError as error:
            yield sse_event("problem", {"message": error.message})

    return _streaming(request, changes())
