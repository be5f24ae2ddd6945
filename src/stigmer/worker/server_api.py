"""The calls a worker makes to the Stigmer server: read an execution's
inputs (and the skill archives it uses), and record what it did.

They are not on the public SDK client: GetRunInputs returns secret values
unmasked (a worker hands them to the tool servers it starts), and recording
events is the engines' job, not a user's. This client shares the channel of
the worker's AsyncClient, and raises the same errors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from typing import TypeVar

import grpc

from stigmer.api.v1 import execution_pb2, execution_pb2_grpc, meta_pb2, worker_pb2, worker_pb2_grpc
from stigmer.client import AsyncClient
from stigmer.client.rpc_errors import error_from_rpc

T = TypeVar("T")


class WorkerApiClient:
    """Valid as long as `client` is open. The stubs are made per call, as the
    client's own are: its channel opens on the event loop of its first call."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self._address = client.address
        self._timeout = client.timeout

    async def _call(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except grpc.RpcError as error:
            raise error_from_rpc(error, self._address) from None

    async def run_inputs(self, execution_id: str) -> worker_pb2.ExecutionRunInputs:
        """Everything a worker needs to run the execution, secrets unmasked.

        Raises:
            NotFound: the execution, its agent or a resource it refers to is gone.
            Unavailable: the server cannot be reached.
        """
        request = meta_pb2.GetRequest(id=execution_id)
        worker = worker_pb2_grpc.ExecutionWorkerControllerStub(self._client.channel)
        return await self._call(worker.GetRunInputs(request, timeout=self._timeout))

    async def skill_archive(self, execution_id: str, digest: str) -> bytes:
        """A skill version's archive, one the execution resolved.

        Raises:
            NotFound: the execution did not resolve that version, or the skill was deleted.
            Unavailable: the server cannot be reached.
        """
        request = worker_pb2.GetSkillArtifactRequest(id=execution_id, hash=digest)
        worker = worker_pb2_grpc.ExecutionWorkerControllerStub(self._client.channel)
        artifact = await self._call(worker.GetSkillArtifact(request, timeout=self._timeout))
        return artifact.archive

    async def record_events(
        self, execution_id: str, events: Iterable[execution_pb2.ExecutionEvent]
    ) -> execution_pb2.AgentExecution:
        """Reports what the worker did, in order.

        Raises:
            NotFound: the execution is gone.
            FailedPrecondition: it has already ended.
            Unavailable: the server cannot be reached.
        """
        request = execution_pb2.RecordExecutionEventsRequest(id=execution_id, events=events)
        executions = execution_pb2_grpc.AgentExecutionCommandControllerStub(self._client.channel)
        return await self._call(executions.RecordEvents(request, timeout=self._timeout))
