"""The AgentExecution command and query services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from stigmer.api.v1 import execution_pb2, execution_pb2_grpc, meta_pb2
from stigmer.domain.execution.controller import ExecutionController
from stigmer.resources.execution_events import phase_name
from stigmer.resources.kinds import DEFAULT_ORG
from stigmer.resources.reported_events import check_reported_events
from stigmer.resources.secrets import redact
from stigmer.resources.selectors import parse_selector
from stigmer.resources.validation import validate_message
from stigmer.store.base import PAGE_SIZE, ListQuery


def _shown(execution: Any) -> execution_pb2.AgentExecution:
    shown = redact(execution)
    assert isinstance(shown, execution_pb2.AgentExecution)
    return shown


def _shown_update(update: execution_pb2.ExecutionUpdate) -> execution_pb2.ExecutionUpdate:
    if update.event.WhichOneof("change") != "snapshot":
        return update
    shown = execution_pb2.ExecutionUpdate()
    shown.CopyFrom(update)
    shown.event.snapshot.CopyFrom(_shown(update.event.snapshot))
    return shown


class ExecutionCommandService(execution_pb2_grpc.AgentExecutionCommandControllerServicer):
    def __init__(self, executions: ExecutionController) -> None:
        self.executions = executions

    async def Create(  # noqa: N802
        self, request: execution_pb2.AgentExecution, context: Any
    ) -> execution_pb2.AgentExecution:
        execution, _ = await self.executions.create_execution(request)
        return _shown(execution)

    async def Cancel(  # noqa: N802
        self, request: execution_pb2.CancelExecutionRequest, context: Any
    ) -> execution_pb2.AgentExecution:
        validate_message(request)
        return _shown(await self.executions.cancel(request.id, request.reason))

    async def Delete(  # noqa: N802
        self, request: meta_pb2.DeleteRequest, context: Any
    ) -> execution_pb2.AgentExecution:
        validate_message(request)
        return _shown(await self.executions.delete(request))

    async def RecordEvents(  # noqa: N802
        self, request: execution_pb2.RecordExecutionEventsRequest, context: Any
    ) -> execution_pb2.AgentExecution:
        validate_message(request)
        check_reported_events(request.id, request.events)
        return _shown(await self.executions.record_events(request.id, list(request.events)))

    async def SubmitApproval(  # noqa: N802
        self, request: execution_pb2.SubmitApprovalRequest, context: Any
    ) -> execution_pb2.AgentExecution:
        validate_message(request)
        return _shown(await self.executions.submit_approval(request))

    # The lifecycle of a running execution is not served yet: each answers
    # UNIMPLEMENTED until its pipeline exists.

    async def Pause(  # noqa: N802
        self, request: execution_pb2.ExecutionLifecycleRequest, context: Any
    ) -> execution_pb2.AgentExecution:
        validate_message(request)
        return _shown(await self.executions.lifecycle.pause(request.id, request.reason))

    async def Resume(  # noqa: N802
        self, request: execution_pb2.ExecutionLifecycleRequest, context: Any
    ) -> execution_pb2.AgentExecution:
        validate_message(request)
        return _shown(await self.executions.lifecycle.resume(request.id, request.reason))

    async def Terminate(  # noqa: N802
        self, request: execution_pb2.ExecutionLifecycleRequest, context: Any
    ) -> execution_pb2.AgentExecution:
        validate_message(request)
        return _shown(await self.executions.lifecycle.terminate(request.id, request.reason))

    async def Recover(  # noqa: N802
        self, request: execution_pb2.ExecutionLifecycleRequest, context: Any
    ) -> execution_pb2.AgentExecution:
        validate_message(request)
        return _shown(await self.executions.lifecycle.recover(request.id, request.reason))


class ExecutionQueryService(execution_pb2_grpc.AgentExecutionQueryControllerServicer):
    def __init__(self, executions: ExecutionController) -> None:
        self.executions = executions

    async def Get(  # noqa: N802
        self, request: meta_pb2.GetRequest, context: Any
    ) -> execution_pb2.AgentExecution:
        validate_message(request)
        return _shown(await self.executions.get(request.id))

    async def List(  # noqa: N802
        self, request: execution_pb2.ListExecutionsRequest, context: Any
    ) -> execution_pb2.AgentExecutionList:
        validate_message(request)
        query = ListQuery(
            kind=self.executions.kind.name,
            org=request.org or DEFAULT_ORG,
            phase=phase_name(request.phase) if request.phase else None,
            agent_id=request.agent_id or None,
            session_id=request.session_id or None,
            selector=parse_selector(request.selector),
            limit=request.page_size or PAGE_SIZE,
        )
        return await self._page(query, request.page_token)

    async def ListBySession(  # noqa: N802
        self, request: meta_pb2.ListByParentRequest, context: Any
    ) -> execution_pb2.AgentExecutionList:
        validate_message(request)
        query = ListQuery(
            kind=self.executions.kind.name,
            session_id=request.parent_id,
            limit=request.page_size or PAGE_SIZE,
        )
        return await self._page(query, request.page_token)

    async def _page(self, query: ListQuery, page_token: str) -> execution_pb2.AgentExecutionList:
        page = await self.executions.list(query, page_token=page_token)
        return execution_pb2.AgentExecutionList(
            items=[_shown(item) for item in page.items], next_page_token=page.next_page_token
        )

    async def Subscribe(  # noqa: N802
        self, request: execution_pb2.SubscribeExecutionRequest, context: Any
    ) -> AsyncIterator[execution_pb2.ExecutionUpdate]:
        validate_message(request)
        async for update in self.executions.stream.subscribe(request.id, request.after_sequence):
            yield _shown_update(update)
