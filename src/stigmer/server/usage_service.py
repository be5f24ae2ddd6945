"""The UsageQueryController service: usage reports (domain/execution/usage.py)."""

from __future__ import annotations

from typing import Any

from stigmer.api.v1 import usage_pb2, usage_pb2_grpc
from stigmer.domain.execution.usage import UsageController


class UsageService(usage_pb2_grpc.UsageQueryControllerServicer):
    def __init__(self, usage: UsageController) -> None:
        self.usage = usage

    async def GetUsage(  # noqa: N802
        self, request: usage_pb2.GetUsageRequest, context: Any
    ) -> usage_pb2.UsageReport:
        return await self.usage.report(request)
