"""The console's pages, each at a URL a person can share.

    /                    what runs now, what waits for approval, recent failures, the checker
    /agents              every agent
    /agents/<slug>       its manifest, instances, sessions, executions, a box to run it
    /executions          filterable by ?phase= and ?agent=, updating live
    /executions/<id>     the conversation as it streams, tool calls, timeline, buttons
    /usage               tokens and cost per day and per agent, by ?since= and ?agent=

Each handler reads through the SDK (the usage page from the server's usage
records, one per model call, with cost priced by the server) and renders a template; nothing is kept
between requests.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from stigmer.api.v1 import execution_pb2, usage_pb2
from stigmer.client.aio import AsyncClient
from stigmer.console.app import client_of, describe_error, render
from stigmer.console.execution_view import (
    ExecutionView,
    MessageView,
    PendingApprovalView,
    TimelineView,
    ToolCallView,
    clock_text,
    execution_view,
    is_waiting_for_approval,
    message_view,
    moment,
    pending_approval_views,
    seconds_text,
    timeline_view,
    tool_call_owners,
    tool_call_view,
)
from stigmer.errors import InvalidArgument, StigmerError
from stigmer.resources.execution_events import (
    ACTIVE_PHASES,
    FAILED,
    phase_name,
)
from stigmer.resources.manifests import dump_yaml, to_manifest_dict
from stigmer.resources.prices import format_dollars
from stigmer.resources.slugs import slugify
from stigmer.resources.usage_spans import since_moment

PHASE_CHOICES = (
    "pending",
    "in_progress",
    "waiting_for_approval",
    "paused",
    "completed",
    "failed",
    "cancelled",
    "terminated",
)
RECENT_LIMIT = 20
# Without JavaScript, pages that change refresh themselves this often.
REFRESH_SECONDS = 10
LIST_LIMIT = 500


@dataclass(frozen=True)
class ExecutionRow:
    id: str
    agent: str
    agent_slug: str
    phase: str
    created_at: str
    duration: str
    tokens: int
    message: str


def execution_row(execution: execution_pb2.AgentExecution, agents: dict[str, Any]) -> ExecutionRow:
    status = execution.status
    agent = agents.get(status.agent_id or execution.spec.agent_id)
    started, completed = moment(status.started_at), moment(status.completed_at)
    duration = (completed - started).total_seconds() if started and completed else None
    text = execution.spec.message
    return ExecutionRow(
        id=execution.metadata.id,
        agent=agent.metadata.name if agent else (status.agent_id or "?"),
        agent_slug=agent.metadata.slug if agent else "",
        phase=phase_name(status.phase) if status.phase else "PENDING",
        created_at=clock_text(status.audit.created_at),
        duration=seconds_text(duration),
        tokens=status.usage.input_tokens + status.usage.output_tokens,
        message=text if len(text) <= 120 else text[:119] + "…",
    )


async def agents_by_id(client: AsyncClient) -> dict[str, Any]:
    return {agent.metadata.id: agent for agent in await client.list("agent")}


def _newest_first(
    executions: list[execution_pb2.AgentExecution], limit: int
) -> list[execution_pb2.AgentExecution]:
    return list(reversed(executions))[:limit]


async def home(request: Request) -> Response:
    client = client_of(request)
    agents = await agents_by_id(client)
    executions = await client.list_executions()
    active = [e for e in executions if e.status.phase in ACTIVE_PHASES]
    waiting = [e for e in executions if is_waiting_for_approval(e)]
    failed = [e for e in executions if e.status.phase == FAILED]
    report: Any = None
    report_problem = ""
    try:
        report = await client.last_report()
    except StigmerError as error:
        report_problem = describe_error(error)
    return render(
        request,
        "home.html",
        {
            "title": "Overview",
            "refresh_seconds": REFRESH_SECONDS,
            "active": [execution_row(e, agents) for e in _newest_first(active, LIST_LIMIT)],
            "waiting": [execution_row(e, agents) for e in _newest_first(waiting, LIST_LIMIT)],
            "failed": [execution_row(e, agents) for e in _newest_first(failed, RECENT_LIMIT)],
            "report": report,
            "report_checked_at": clock_text(report.checked_at) if report is not None else "",
            "report_problem": report_problem,
            "agent_count": len(agents),
            "execution_count": len(executions),
        },
    )


async def agents(request: Request) -> Response:
    listed = await client_of(request).list("agent")
    return render(request, "agents.html", {"title": "Agents", "agents": listed})


async def agent(request: Request) -> Response:
    client = client_of(request)
    found = await client.get("agent", request.path_params["slug"])
    agent_id = found.metadata.id
    instances = await client.list_instances_by_agent(agent_id)
    sessions = await client.list_sessions_by_agent(agent_id)
    executions = await client.list_executions(agent=agent_id)
    rows = [execution_row(e, {agent_id: found}) for e in _newest_first(executions, RECENT_LIMIT)]
    return render(
        request,
        "agent.html",
        {
            "title": found.metadata.name,
            "agent": found,
            "manifest": dump_yaml([to_manifest_dict(found)]),
            "instances": instances,
            "sessions": sessions,
            "executions": rows,
        },
    )


def execution_filters(request: Request) -> tuple[str, str]:
    phase = request.query_params.get("phase", "").strip().lower()
    if phase and phase not in PHASE_CHOICES:
        raise InvalidArgument.for_field("phase", f"unknown phase {phase!r}")
    return phase, request.query_params.get("agent", "").strip()


async def executions(request: Request) -> Response:
    client = client_of(request)
    phase, agent_name = execution_filters(request)
    agents = await agents_by_id(client)
    listed = await client.list_executions(phase=phase, agent=agent_name)
    rows = [execution_row(e, agents) for e in _newest_first(listed, LIST_LIMIT)]
    return render(
        request,
        "executions.html",
        {
            "title": "Executions",
            "refresh_seconds": REFRESH_SECONDS,
            "rows": rows,
            "phase": phase,
            "agent_filter": agent_name,
            "phases": PHASE_CHOICES,
            "agents": sorted(agents.values(), key=lambda a: a.metadata.slug),
            "total": len(listed),
            "limit": LIST_LIMIT,
        },
    )


class ExecutionParts:
    """What execution.html and its live fragments render, each part computed
    on first use: a live update renders only the parts it changed, and at a
    thousand messages the conversation is the part worth not redoing."""

    def __init__(self, execution: execution_pb2.AgentExecution) -> None:
        self.execution = execution
        self.now = datetime.now(UTC)

    @cached_property
    def view(self) -> ExecutionView:
        return execution_view(self.execution, self.now)

    @cached_property
    def messages(self) -> list[MessageView]:
        return [message_view(i, m) for i, m in enumerate(self.execution.status.messages)]

    @cached_property
    def owners(self) -> dict[str, int | None]:
        return tool_call_owners(self.execution)

    @cached_property
    def calls_by_message(self) -> dict[int, list[ToolCallView]]:
        by_message: dict[int, list[ToolCallView]] = defaultdict(list)
        for call in self.execution.status.tool_calls:
            owner = self.owners.get(call.id)
            if owner is not None:
                by_message[owner].append(tool_call_view(call))
        return by_message

    @cached_property
    def unattached_calls(self) -> list[ToolCallView]:
        return [
            tool_call_view(call)
            for call in self.execution.status.tool_calls
            if self.owners.get(call.id) is None
        ]

    @cached_property
    def approvals(self) -> list[PendingApprovalView]:
        return pending_approval_views(self.execution)

    @cached_property
    def timeline(self) -> TimelineView:
        return timeline_view(self.execution, self.now)

    @cached_property
    def sub_agents(self) -> list[tuple[str, str, str]]:
        return [
            (s.name, s.execution_id, phase_name(s.phase) if s.phase else "PENDING")
            for s in self.execution.status.sub_agent_executions
        ]

    @cached_property
    def todos(self) -> list[tuple[str, str]]:
        return [(t.content, t.status) for t in self.execution.status.todos]


async def execution(request: Request) -> Response:
    client = client_of(request)
    found = await client.get_execution(request.path_params["id"])
    agents = await agents_by_id(client)
    parts = ExecutionParts(found)
    agent_of = agents.get(parts.view.agent_id)
    context = {
        "c": parts,
        "view": parts.view,
        "title": f"Execution {found.metadata.id}",
        "refresh_seconds": 0 if parts.view.is_terminal else 5,
        "agent_name": agent_of.metadata.name if agent_of else parts.view.agent_id,
        "agent_slug": agent_of.metadata.slug if agent_of else "",
    }
    return render(request, "execution.html", context)


USAGE_AGENT_MAX_CHARS = 64


@dataclass(frozen=True)
class UsageBar:
    """One row of a usage chart: a day or an agent, its tokens and cost, and
    how long each bar is against the chart's largest."""

    label: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    model_calls: int
    cost: str
    executions: int
    tokens_percent: float
    cost_percent: float

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def _percent(value: int, largest: int) -> float:
    return round(100 * value / largest, 2) if largest else 0.0


def usage_bars(groups: list[usage_pb2.UsageGroup], labels: dict[str, str]) -> list[UsageBar]:
    """The groups as bars, labelled by `labels` (an agent's name for its id)
    or by their own key (a day)."""
    most_tokens = max((g.usage.input_tokens + g.usage.output_tokens for g in groups), default=0)
    most_cost = max((g.usage.cost_micros for g in groups), default=0)
    return [
        UsageBar(
            label=labels.get(group.key, group.key or "unknown"),
            input_tokens=group.usage.input_tokens,
            output_tokens=group.usage.output_tokens,
            cached_tokens=group.usage.cached_tokens,
            model_calls=group.usage.model_calls,
            cost=format_dollars(group.usage.cost_micros),
            executions=group.executions,
            tokens_percent=_percent(
                group.usage.input_tokens + group.usage.output_tokens, most_tokens
            ),
            cost_percent=_percent(group.usage.cost_micros, most_cost),
        )
        for group in groups
    ]


def usage_filters(request: Request, now: datetime) -> tuple[str, datetime | None, str]:
    """?since= (7d, 12h, 2w or YYYY-MM-DD) and ?agent= (name, slug or id).

    Raises:
        InvalidArgument: a value that cannot be either (naming its field).
    """
    since_text = request.query_params.get("since", "").strip()
    since = since_moment(since_text, now, field="since")
    agent = request.query_params.get("agent", "").strip()
    if len(agent) > USAGE_AGENT_MAX_CHARS:
        raise InvalidArgument.for_field(
            "agent", f"at most {USAGE_AGENT_MAX_CHARS} characters, got {len(agent)}"
        )
    if agent and not slugify(agent) and not agent.startswith("agt-"):
        raise InvalidArgument.for_field("agent", f"{agent!r} names no agent")
    return since_text, since, agent


async def usage(request: Request) -> Response:
    client = client_of(request)
    since_text, since, agent_filter = usage_filters(request, datetime.now(UTC))
    report = await client.usage(agent=agent_filter, since=since, group_by="agent")
    agents = await agents_by_id(client)
    names = {agent_id: found.metadata.name for agent_id, found in agents.items()}
    total = report.total
    return render(
        request,
        "usage.html",
        {
            "title": "Usage",
            "by_day": usage_bars(list(report.days), {}),
            "by_agent": usage_bars(list(report.groups), names),
            "total": total,
            "cost": format_dollars(total.cost_micros),
            "executions": report.executions,
            "since": since_text,
            "agent_filter": agent_filter,
            "agents": sorted(agents.values(), key=lambda a: a.metadata.slug),
        },
    )
