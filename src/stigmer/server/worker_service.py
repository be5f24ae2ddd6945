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
from stigmer.errors import NotFound
from stigmer.resources.validation import validate_message


class ExecutionWorkerService(worker_pb2_grpc.ExecutionWorkerControllerServicer):
    def __init__(self, domains: Domains) -> None:
        self.domains = domains

    async def GetRunInputs(  # noqa: N802
        self, request: meta_pb2.GetRequest, context: Any
    ) -> worker_pb2.ExecutionRunInputs:
        validate_message(request)
        return await gather_inputs(self.domains, request.id)

    async def GetSkillArtifact(  # noqa: N802
        self, request: worker_pb2.GetSkillArtifactRequest, context: Any
    ) -> worker_pb2.SkillArtifact:
        """A skill version the execution resolved; only those: a worker reads
        what its executions use, not every skill of the server."""
        validate_message(request)
        execution = await self.domains.executions.get(request.id)
        used = [s for s in execution.status.skills if s.hash == request.hash]
        if not used:
            raise NotFound("skill version", request.hash, field="hash")
        async with self.domains.store.transaction(write=False) as transaction:
            archive = await self.domains.skills.archive(used[0].skill_id, request.hash, transaction)
        if archive is None:
            raise NotFound("skill version", f"{used[0].slug}@{request.hash}", field="hash")
        return worker_pb2.SkillArtifact(hash=request.hash, archive=archive)
