"""The ConsistencyController service: check, repair, the last periodic report."""

from __future__ import annotations

from typing import Any

from stigmer.api.v1 import consistency_pb2, consistency_pb2_grpc
from stigmer.consistency.checker import Report, check
from stigmer.consistency.periodic import PeriodicChecker
from stigmer.consistency.repair import repair
from stigmer.domain.registry import Domains
from stigmer.resources.validation import validate_message


def report_message(report: Report) -> consistency_pb2.ConsistencyReport:
    message = consistency_pb2.ConsistencyReport(resources_checked=report.resources_checked)
    message.checked_at.FromSeconds(int(report.checked_at))
    for violation in report.violations:
        message.violations.add(
            code=violation.code.value,
            resources=list(violation.resources),
            message=violation.message,
            is_repairable=violation.is_repairable,
        )
    return message


class ConsistencyService(consistency_pb2_grpc.ConsistencyControllerServicer):
    def __init__(self, domains: Domains, periodic: PeriodicChecker) -> None:
        self.domains = domains
        self.periodic = periodic

    async def Check(  # noqa: N802
        self, request: consistency_pb2.CheckRequest, context: Any
    ) -> consistency_pb2.ConsistencyReport:
        return report_message(await check(self.domains.store))

    async def Repair(  # noqa: N802
        self, request: consistency_pb2.RepairRequest, context: Any
    ) -> consistency_pb2.RepairReport:
        validate_message(request)
        result = await repair(
            self.domains,
            is_dry_run=request.dry_run,
            is_deleting_orphans=request.orphans == consistency_pb2.ORPHAN_POLICY_DELETE,
        )
        response = consistency_pb2.RepairReport(
            remaining=report_message(result.remaining), dry_run=result.is_dry_run
        )
        for action in result.actions:
            response.actions.add(
                code=action.violation.code.value,
                resources=list(action.violation.resources),
                description=action.description,
                is_done=action.is_done,
                error=action.error,
            )
        return response

    async def GetLastReport(  # noqa: N802
        self, request: consistency_pb2.GetLastReportRequest, context: Any
    ) -> consistency_pb2.ConsistencyReport:
        last = self.periodic.last_report
        return report_message(last) if last is not None else consistency_pb2.ConsistencyReport()
