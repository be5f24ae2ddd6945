"""The API of `stigmer worker` processes: an execution's inputs in one read.

Unlike every other read, nothing here is masked: a worker hands secret
values to the tool servers it starts. Only workers should call it, and only
the worker's own client (stigmer.worker.server_api) offers it.
"""

from __future__ import annotations

from typing import Any

from stigmer.api.v1 import meta_pb2, worker_pb2, worker_pb2_grpc
from stigmer.domain.execution.inputs import gather_inputs
from stigmer.domain.registry import Domains
from stigmer.resources.validation import validate_message


class ExecutionWorkerService(worker_pb2_grpc.ExecutionWorkerControllerServicer):
    def __init__(self, domains: Domains) -> None:
        self.domains = domains

    async def GetRunInputs(  # noqa: N802
        self, request: meta_pb2.GetRequest, context: Any
    ) -> worker_pb2.ExecutionRunInputs:
        validate_message(request)
        return await gather_inputs(self.domains, request.id)
