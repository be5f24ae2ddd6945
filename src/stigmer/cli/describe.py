"""`stigmer describe KIND NAME`: one resource laid out for people, with what hangs off it.

Like kubectl describe: the envelope first (name, id, labels, version, age), then the
spec in words, then the status, then the related resources, found with the SDK's
list calls (an agent's instances, sessions and last executions; an execution's
conversation and tool calls). Scripts read `get -o yaml|json` instead; this layout
may change.

Secrets arrive masked from the server and are printed as they came; a value marked
is_secret is printed as the mask whatever it holds, so nothing here can unmask one.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer
from google.protobuf import json_format

from stigmer.api.v1 import execution_pb2
from stigmer.cli.completion import kinds, resource_names
from stigmer.cli.layout import (
    NONE,
    Description,
    Value,
    first_line,
    format_age,
    format_age_and_time,
    format_duration,
    format_time,
)
from stigmer.cli.resources import ServerOption
from stigmer.client import Client
from stigmer.errors import NotFound
from stigmer.resources.execution_events import phase_name
from stigmer.resources.kinds import kind_by_alias
from stigmer.resources.prices import format_dollars
from stigmer.resources.secrets import MASK

LAST_EXECUTIONS = 10
INSTRUCTION_LINES = 10


def _pairs_of(mapping: Any) -> list[str]:
    return [f"{key}={mapping[key]}" for key in sorted(mapping)]


def _env_rows(data: Any) -> list[list[str]]:
    """Environment values as table rows; a secret's value is always the mask."""
    return [
        [
            key,
            MASK if data[key].is_secret else data[key].value,
            "yes" if data[key].is_secret else "no",
            data[key].description,
        ]
        for key in sorted(data)
    ]


def _envelope(out: Description, kind: str, resource: Any) -> None:
    metadata, audit = resource.metadata, resource.status.audit
    header: list[tuple[str, Value]] = [
        ("Kind", kind),
        ("Name", metadata.name),
        ("Id", metadata.id),
        ("Org", metadata.org),
        ("Labels", _pairs_of(metadata.labels)),
        ("Annotations", _pairs_of(metadata.annotations)),
        ("Version", str(metadata.version)),
        ("Created", format_age_and_time(audit.created_at)),
    ]
    if audit.updated_at != audit.created_at:
        header.append(("Updated", format_age_and_time(audit.updated_at)))
    out.pairs(header)


def _named(client: Client, kind: str, resource_id: str) -> str:
    """`slug (id)` of a referenced resource, or just the id if it is gone."""
    if not resource_id:
        return NONE
    try:
        found = client.get(kind, resource_id)
    except NotFound:
        return f"{resource_id} (not found)"
    return f"{found.metadata.slug} ({resource_id})"


def _executions_table(
    out: Description, executions: Sequence[execution_pb2.AgentExecution], label: str
) -> None:
    """The last executions (oldest first), one line each."""
    shown = executions[-LAST_EXECUTIONS:]
    count = f"last {len(shown)} of {len(executions)}" if len(shown) < len(executions) else ""
    out.heading(f"{label} ({count or len(executions)})")
    rows = [
        [
            e.metadata.id,
            phase_name(e.status.phase),
            format_duration(e.status.started_at, e.status.completed_at),
            f"{e.status.usage.input_tokens}/{e.status.usage.output_tokens}",
            format_age(e.status.audit.created_at),
            first_line(e.spec.message, 48),
        ]
        for e in shown
    ]
    out.table(["ID", "PHASE", "DURATION", "TOKENS IN/OUT", "AGE", "MESSAGE"], rows)


def _sessions_table(out: Description, sessions: Sequence[Any], instances: dict[str, str]) -> None:
    out.heading(f"Sessions ({len(sessions)})")
    rows = [
        [
            s.metadata.slug,
            s.metadata.id,
            instances.get(s.spec.agent_instance_id, s.spec.agent_instance_id),
            first_line(s.spec.subject, 40),
            format_age(s.status.last_activity_at),
            format_age(s.status.audit.created_at),
        ]
        for s in sessions
    ]
    out.table(["NAME", "ID", "INSTANCE", "SUBJECT", "LAST ACTIVE", "AGE"], rows)


def _transport(server: Any) -> str:
    """`stdio: command args` or `http: url` of a StdioTransport/HttpTransport holder."""
    if server.HasField("stdio"):
        return "stdio: " + " ".join([server.stdio.command, *server.stdio.args])
    if server.HasField("http"):
        return f"http: {server.http.url}"
    return NONE


def describe_agent(client: Client, agent: Any, out: Description) -> None:
    spec = agent.spec
    out.pairs(
        [
            ("Description", spec.description),
            ("Model", spec.model or "<server default>"),
            ("Skills", ", ".join(f"{r.slug}@{r.version or 'latest'}" for r in spec.skill_refs)),
        ]
    )
    out.heading("Instructions")
    lines = spec.instructions.splitlines()
    out.text(lines[:INSTRUCTION_LINES])
    if len(lines) > INSTRUCTION_LINES:
        out.text([f"… ({len(lines) - INSTRUCTION_LINES} more lines)"])
    out.heading(f"MCP Servers ({len(spec.mcp_servers)})")
    for usage in spec.mcp_servers:
        source = f"ref: {usage.ref}" if usage.ref else _transport(usage)
        tools = ", ".join(usage.enabled_tools) or "<the server's defaults>"
        out.text([f"{usage.name or usage.ref}: {source}", f"  Enabled tools: {tools}"])
    if not spec.mcp_servers:
        out.text([NONE])
    if spec.sub_agents:
        out.heading(f"Sub-agents ({len(spec.sub_agents)})")
        rows = [
            [s.name, s.agent_ref or "(inline)", first_line(s.description or s.instructions, 48)]
            for s in spec.sub_agents
        ]
        out.table(["NAME", "AGENT", "DESCRIPTION"], rows)
    out.heading("Env Spec")
    out.table(["KEY", "DEFAULT", "SECRET", "DESCRIPTION"], _env_rows(spec.env_spec.data))
    out.pairs([("Default Instance", agent.status.default_instance_id)])
    agent_id = agent.metadata.id
    instances = client.list_instances_by_agent(agent_id)
    out.heading(f"Instances ({len(instances)})")
    out.table(
        ["NAME", "ID", "ENVIRONMENTS", "AGE"],
        [
            [
                i.metadata.slug,
                i.metadata.id,
                ", ".join(i.spec.environment_refs),
                format_age(i.status.audit.created_at),
            ]
            for i in instances
        ],
    )
    slugs = {i.metadata.id: i.metadata.slug for i in instances}
    _sessions_table(out, client.list_sessions_by_agent(agent_id), slugs)
    _executions_table(out, client.list_executions(agent=agent_id), "Executions")


def describe_agent_instance(client: Client, instance: Any, out: Description) -> None:
    spec = instance.spec
    out.pairs(
        [
            ("Agent", _named(client, "agent", spec.agent_id)),
            ("Description", spec.description),
            ("Environments", list(spec.environment_refs)),
        ]
    )
    instance_id = instance.metadata.id
    slugs = {instance_id: instance.metadata.slug}
    _sessions_table(out, client.list_sessions_by_instance(instance_id), slugs)
    executions = [
        e
        for e in client.list_executions(agent=spec.agent_id)
        if e.status.agent_instance_id == instance_id
    ]
    _executions_table(out, executions, "Executions")


def describe_session(client: Client, session: Any, out: Description) -> None:
    out.pairs(
        [
            ("Agent", _named(client, "agent", session.status.agent_id)),
            ("Instance", _named(client, "agentinstance", session.spec.agent_instance_id)),
            ("Subject", session.spec.subject),
            ("Metadata", _pairs_of(session.spec.metadata)),
            ("Last Active", format_age_and_time(session.status.last_activity_at)),
        ]
    )
    _executions_table(out, client.list_executions(session=session.metadata.id), "Executions")


def _integral(value: Any) -> Any:
    """Struct numbers are doubles: 2.0 reads better as 2."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _integral(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral(item) for item in value]
    return value


def _args(call: execution_pb2.ToolCall) -> str:
    arguments = _integral(json_format.MessageToDict(call.args))
    return first_line(json.dumps(arguments, separators=(",", ":"), sort_keys=True), 48)


def _conversation_rows(status: execution_pb2.AgentExecutionStatus) -> list[list[str]]:
    """Each message: its type, time and a one-line excerpt; a tool's result
    is named after its call."""
    calls = {call.id: call for call in status.tool_calls}
    names = {call.id: call.name for call in status.tool_calls}
    rows = []
    for message in status.messages:
        kind = execution_pb2.MessageType.Name(message.type).removeprefix("MESSAGE_TYPE_")
        text = first_line(message.content)
        if message.type == execution_pb2.MESSAGE_TYPE_TOOL and message.tool_call_id in calls:
            # The result is kept once, in its tool call.
            call = calls[message.tool_call_id]
            text = f"{call.name}: {text or first_line(call.result or call.error)}"
        elif not text and message.tool_call_ids:
            text = "(calls " + ", ".join(names.get(i, i) for i in message.tool_call_ids) + ")"
        rows.append([kind, format_time(message.timestamp, time_only=True), text or "(no text)"])
    return rows


def _action_name(action: int) -> str:
    if action == execution_pb2.APPROVAL_ACTION_UNSPECIFIED:
        return "waiting"
    return execution_pb2.ApprovalAction.Name(action).removeprefix("APPROVAL_ACTION_")  # type: ignore[arg-type]


def _pending_approvals(out: Description, execution: Any) -> None:
    """The calls the execution waits on, and the command that decides each."""
    pending = execution.status.pending_approvals
    out.heading(f"Pending Approvals ({len(pending)})")
    out.table(
        ["TOOL CALL", "TOOL", "SERVER", "REQUESTED", "ARGS", "MODEL SAID"],
        [
            [
                p.tool_call_id,
                p.tool,
                p.server,
                format_age_and_time(p.requested_at),
                first_line(
                    json.dumps(_integral(json_format.MessageToDict(p.args)), sort_keys=True), 48
                ),
                first_line(p.model_text, 40),
            ]
            for p in pending
        ],
    )
    target = execution.metadata.id if len(pending) == 1 else f"{execution.metadata.id} TOOL_CALL"
    out.text(
        [f"Decide: stigmer approve|reject|skip {target}  (approve --all: and its later calls)"]
    )


def describe_execution(client: Client, execution: Any, out: Description) -> None:
    status = execution.status
    phase = phase_name(status.phase)
    if status.is_cancel_requested and phase in ("PENDING", "IN_PROGRESS"):
        phase += " (cancel requested)"
    elif status.is_pause_requested and phase in ("PENDING", "IN_PROGRESS"):
        phase += " (pause requested)"
    out.pairs(
        [
            ("Agent", _named(client, "agent", status.agent_id)),
            ("Instance", _named(client, "agentinstance", status.agent_instance_id)),
            ("Session", _named(client, "session", status.session_id)),
            ("Phase", phase),
            ("Started", format_time(status.started_at)),
            ("Completed", format_time(status.completed_at)),
            ("Duration", format_duration(status.started_at, status.completed_at)),
            (
                "Model",
                status.model_name
                or execution.spec.execution_config.model_name
                or "<server default>",
            ),
            (
                "Usage",
                f"{status.usage.input_tokens} input / {status.usage.output_tokens} output tokens"
                + (
                    f", cost {format_dollars(status.usage.cost_micros)}"
                    if status.usage.cost_micros
                    else ""
                ),
            ),
            ("Message", first_line(execution.spec.message)),
            ("Auto Approve", "yes" if execution.spec.auto_approve else "no"),
            (
                "Runtime Env",
                [f"{row[0]}={row[1]}" for row in _env_rows(execution.spec.runtime_env)],
            ),
        ]
    )
    if status.pending_approvals:
        _pending_approvals(out, execution)
    out.heading(f"Conversation ({len(status.messages)} messages)")
    out.table(["TYPE", "AT", "TEXT"], _conversation_rows(status))
    out.heading(f"Tool Calls ({len(status.tool_calls)})")
    rows = [
        [
            call.name,
            call.server,
            execution_pb2.ToolCallStatus.Name(call.status).removeprefix("TOOL_CALL_STATUS_"),
            format_time(call.started_at, time_only=True),
            format_time(call.completed_at, time_only=True),
            format_duration(call.started_at, call.completed_at),
            _args(call),
            first_line(call.error, 48),
        ]
        for call in status.tool_calls
    ]
    out.table(
        ["NAME", "SERVER", "STATUS", "STARTED", "COMPLETED", "DURATION", "ARGS", "ERROR"], rows
    )
    asked = [call for call in status.tool_calls if call.requires_approval]
    if asked:
        out.heading(f"Approvals ({len(asked)})")
        out.table(
            ["TOOL CALL", "NAME", "ACTION", "DECIDED BY", "DECIDED", "COMMENT"],
            [
                [
                    call.id,
                    call.name,
                    _action_name(call.approval.action),
                    call.approval.decided_by,
                    format_time(call.approval.decided_at, time_only=True),
                    first_line(call.approval.comment, 48),
                ]
                for call in asked
            ],
        )
    if status.attempts:
        out.heading(f"Recovered ({len(status.attempts)})")
        out.table(
            ["AT", "BY", "PREVIOUS ERROR"],
            [
                [format_time(a.recovered_at), a.recovered_by, first_line(a.previous_error, 60)]
                for a in status.attempts
            ],
        )
    if status.sub_agent_executions:
        out.heading(f"Sub-agent Executions ({len(status.sub_agent_executions)})")
        out.table(
            ["NAME", "EXECUTION", "PHASE"],
            [[s.name, s.execution_id, phase_name(s.phase)] for s in status.sub_agent_executions],
        )
    if status.context:
        out.heading(f"Context Summaries ({len(status.context)})")
        out.table(
            ["AT", "TOKENS", "MESSAGES", "WINDOW", "MODEL", "SUMMARY"],
            [
                [
                    format_time(c.at, time_only=True),
                    f"{c.tokens_before} -> {c.tokens_after}",
                    f"{c.messages_before} -> {c.messages_after}",
                    str(c.context_window),
                    c.model,
                    first_line(c.summary, 48),
                ]
                for c in status.context
            ],
        )
    if status.todos:
        out.heading(f"Todos ({len(status.todos)})")
        out.table(["STATUS", "TODO"], [[t.status, first_line(t.content)] for t in status.todos])
    out.heading("Error")
    out.text(status.error.splitlines() or [NONE])
    out.pairs([("Events", str(status.last_sequence))])


def describe_environment(client: Client, environment: Any, out: Description) -> None:
    out.pairs([("Description", environment.spec.description)])
    out.heading(f"Variables ({len(environment.spec.data)})")
    out.table(["KEY", "VALUE", "SECRET", "DESCRIPTION"], _env_rows(environment.spec.data))
    slug = environment.metadata.slug
    users = [
        i.metadata.slug
        for i in client.list("agentinstance", org=environment.metadata.org)
        if slug in i.spec.environment_refs
    ]
    out.pairs([("Used By Instances", users)])


def describe_mcp_server(client: Client, server: Any, out: Description) -> None:
    spec = server.spec
    out.pairs([("Description", spec.description), ("Transport", _transport(spec))])
    if spec.HasField("stdio"):
        out.pairs(
            [
                ("Command", spec.stdio.command),
                ("Args", " ".join(spec.stdio.args)),
                ("Working Dir", spec.stdio.working_dir),
                ("Env", _pairs_of(spec.stdio.env)),
            ],
            indent=2,
        )
    elif spec.HasField("http"):
        timeout = spec.http.timeout_seconds
        out.pairs(
            [
                ("URL", spec.http.url),
                ("Headers", _pairs_of(spec.http.headers)),
                ("Timeout", f"{timeout}s" if timeout else "<default>"),
            ],
            indent=2,
        )
    out.pairs([("Default Tools", ", ".join(spec.default_enabled_tools) or "<all>")])
    out.heading("Env Spec")
    out.table(["KEY", "DEFAULT", "SECRET", "DESCRIPTION"], _env_rows(spec.env_spec.data))
    slug = server.metadata.slug
    users = []
    for agent in client.list("agent", org=server.metadata.org):
        for usage in agent.spec.mcp_servers:
            if usage.ref == slug:
                tools = ", ".join(usage.enabled_tools) or "default tools"
                users.append(f"{agent.metadata.slug} ({tools})")
    out.pairs([("Used By Agents", users)])


def describe_skill(client: Client, skill: Any, out: Description) -> None:
    status = skill.status
    out.pairs([("Description", skill.spec.description)])
    tags_of: dict[str, list[str]] = {}
    for tag, digest in sorted(status.tags.items()):
        tags_of.setdefault(digest, []).append(tag)
    out.heading(f"Versions ({len(status.versions)})")
    out.table(
        ["HASH", "TAGS", "FILES", "SIZE", "PUSHED", "DESCRIPTION"],
        [
            [
                v.hash[:12],
                ", ".join(tags_of.get(v.hash, [])),
                str(v.file_count),
                str(v.size_bytes),
                format_age(v.pushed_at),
                first_line(v.description, 48),
            ]
            for v in reversed(status.versions)
        ],
    )
    slug = skill.metadata.slug
    users = [
        f"{agent.metadata.slug} ({ref.version or 'latest'})"
        for agent in client.list("agent", org=skill.metadata.org)
        for ref in agent.spec.skill_refs
        if ref.slug == slug
    ]
    out.pairs([("Used By Agents", users)])


Describer = Callable[[Client, Any, Description], None]
DESCRIBERS: dict[str, Describer] = {
    "Agent": describe_agent,
    "AgentInstance": describe_agent_instance,
    "Session": describe_session,
    "AgentExecution": describe_execution,
    "Environment": describe_environment,
    "McpServer": describe_mcp_server,
    "Skill": describe_skill,
}


def describe(
    kind: Annotated[
        str,
        typer.Argument(
            help="agent, agentinstance, session, execution, environment, mcpserver, skill",
            autocompletion=kinds,
        ),
    ],
    name: Annotated[
        str,
        typer.Argument(
            help="Name, slug or id (an execution: its id)", autocompletion=resource_names
        ),
    ],
    server: ServerOption = None,
) -> None:
    """Show one resource in detail, with its related resources."""
    info = kind_by_alias(kind)
    out = Description()
    with Client(server) as client:
        if info.name == "AgentExecution":
            resource = client.get_execution(name)
        else:
            resource = client.get(info, name)
        _envelope(out, info.name, resource)
        DESCRIBERS[info.name](client, resource, out)
    sys.stdout.write(out.render())


def register(app: typer.Typer) -> None:
    app.command()(describe)
