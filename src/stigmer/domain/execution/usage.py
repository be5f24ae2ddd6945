"""Usage reports: what model calls used and cost, summed from the usage
records (store/usage_records.py) by indexed columns, never by reading
executions. A report holds the total, the breakdown asked for (by agent,
model or day) and always the days, oldest first, for a chart.

Reports only read; they run in a read transaction and change nothing.
"""

from __future__ import annotations

from stigmer.api.v1 import execution_pb2, usage_pb2
from stigmer.domain.clients import ResourceReader
from stigmer.errors import InvalidArgument
from stigmer.resources.kinds import DEFAULT_ORG
from stigmer.resources.validation import validate_message
from stigmer.store.base import Store
from stigmer.store.usage_records import Grouping, UsageQuery, UsageSum

GROUPINGS: dict[int, Grouping] = {
    usage_pb2.USAGE_GROUPING_UNSPECIFIED: "day",
    usage_pb2.USAGE_GROUPING_AGENT: "agent_id",
    usage_pb2.USAGE_GROUPING_MODEL: "model",
    usage_pb2.USAGE_GROUPING_DAY: "day",
}


class UsageController:
    def __init__(self, store: Store, *, agents: ResourceReader) -> None:
        self.store = store
        self.agents = agents

    async def report(self, request: usage_pb2.GetUsageRequest) -> usage_pb2.UsageReport:
        """The totals and breakdowns of the calls the request selects.

        Raises:
            InvalidArgument: a field breaks its rule, or both agent_id and
                agent_ref are given.
            NotFound: agent_ref names no agent.
        """
        validate_message(request)
        if request.agent_id and request.agent_ref:
            raise InvalidArgument.for_field("agent_ref", "give agent_id or agent_ref, not both")
        org = request.org or DEFAULT_ORG
        async with self.store.transaction(write=False) as transaction:
            agent_id = request.agent_id
            if request.agent_ref:
                agent = await self.agents.require_slug(
                    org, request.agent_ref, transaction, field="agent_ref"
                )
                agent_id = agent.metadata.id
            query = UsageQuery(
                org=org,
                agent_id=agent_id,
                session_id=request.session_id,
                since=(
                    request.since.seconds + request.since.nanos / 1e9
                    if request.HasField("since")
                    else None
                ),
            )
            (total,) = await transaction.sum_usage(query, None)
            groups = await transaction.sum_usage(query, GROUPINGS[request.group_by])
            days = await transaction.sum_usage(query, "day")
        return usage_pb2.UsageReport(
            total=_usage(total),
            executions=total.executions,
            groups=[_group(row) for row in groups],
            days=[_group(row) for row in days],
        )


def _usage(row: UsageSum) -> execution_pb2.Usage:
    return execution_pb2.Usage(
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        cached_tokens=row.cached_tokens,
        reasoning_tokens=row.reasoning_tokens,
        cost_micros=row.cost_micros,
        model_calls=row.model_calls,
    )


def _group(row: UsageSum) -> usage_pb2.UsageGroup:
    return usage_pb2.UsageGroup(key=row.key, usage=_usage(row), executions=row.executions)
