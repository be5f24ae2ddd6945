"""Turning an execution's inputs into what the agent loop needs.

Environments merge in a fixed order, later wins: the agent's env_spec <
the instance's environments (in order) < the execution's runtime_env.
`${NAME}` placeholders in MCP server settings resolve from the merged
environment; the whole merged environment also reaches stdio tool servers
as their process environment. Secret values are collected from every input
that can hold one (the agent's and its McpServers' env_spec, the
environments, runtime_env) so that every text the execution records can be
masked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from google.protobuf import json_format

from stigmer.api.v1 import execution_pb2, mcpserver_pb2, meta_pb2, worker_pb2
from stigmer.engine.tool_policies import grants_of, tool_policy_of
from stigmer.errors import FailedPrecondition
from stigmer.resources.secrets import secret_values
from stigmer.runtime.contract import (
    HistoryMessage,
    HistoryToolCall,
    HttpServer,
    ModelSettings,
    RunRequest,
    StdioServer,
    ToolServer,
)

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class MergedEnvironment:
    values: dict[str, str]
    secrets: frozenset[str]  # the secret values, to mask wherever they appear


def merge_environment(inputs: worker_pb2.ExecutionRunInputs) -> MergedEnvironment:
    layers: list[Mapping[str, meta_pb2.EnvironmentValue]] = [inputs.agent.spec.env_spec.data]
    layers += [environment.spec.data for environment in inputs.environments]
    layers.append(inputs.execution.spec.runtime_env)
    values: dict[str, str] = {}
    for layer in layers:
        for key, entry in layer.items():
            values[key] = entry.value
    secrets = secret_values(
        inputs.agent, *inputs.environments, *inputs.mcp_servers.values(), inputs.execution
    )
    return MergedEnvironment(values, secrets)


def resolve_placeholders(text: str, environment: Mapping[str, str], where: str) -> str:
    """Raises FailedPrecondition naming the variable and where it was used."""

    def value_of(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environment:
            raise FailedPrecondition(
                f"{where} uses ${{{name}}}, which no environment of this execution defines "
                f"(set it with --env {name}=... or --secret {name}=..., or in an Environment)",
                facts={"variable": name, "field": where},
            )
        return environment[name]

    return _PLACEHOLDER.sub(value_of, text)


def _resolved(
    mapping: Mapping[str, str], environment: Mapping[str, str], where: str
) -> dict[str, str]:
    return {k: resolve_placeholders(v, environment, f"{where}.{k}") for k, v in mapping.items()}


def _transport(
    stdio: mcpserver_pb2.StdioTransport | None,
    http: mcpserver_pb2.HttpTransport | None,
    environment: Mapping[str, str],
    where: str,
) -> StdioServer | HttpServer:
    if stdio is not None:
        return StdioServer(
            command=resolve_placeholders(stdio.command, environment, f"{where}.stdio.command"),
            args=tuple(
                resolve_placeholders(a, environment, f"{where}.stdio.args[{i}]")
                for i, a in enumerate(stdio.args)
            ),
            working_dir=stdio.working_dir,
            env={**environment, **_resolved(stdio.env, environment, f"{where}.stdio.env")},
        )
    assert http is not None
    return HttpServer(
        url=resolve_placeholders(http.url, environment, f"{where}.http.url"),
        headers=_resolved(http.headers, environment, f"{where}.http.headers"),
        timeout_seconds=float(http.timeout_seconds or 30),
    )


def tool_servers(
    inputs: worker_pb2.ExecutionRunInputs, environment: Mapping[str, str]
) -> tuple[ToolServer, ...]:
    servers = []
    for index, usage in enumerate(inputs.agent.spec.mcp_servers):
        where = f"agent.spec.mcp_servers[{index}]"
        source = usage.WhichOneof("source")
        if source == "ref":
            resource = inputs.mcp_servers[usage.ref]
            spec = resource.spec
            transport = spec.WhichOneof("transport")
            server_env = dict(environment)
            for key, entry in spec.env_spec.data.items():
                server_env.setdefault(key, entry.value)
            servers.append(
                ToolServer(
                    name=usage.name or usage.ref,
                    transport=_transport(
                        spec.stdio if transport == "stdio" else None,
                        spec.http if transport == "http" else None,
                        server_env,
                        f"mcpserver {usage.ref}",
                    ),
                    enabled_tools=tuple(usage.enabled_tools or spec.default_enabled_tools),
                )
            )
        else:
            servers.append(
                ToolServer(
                    name=usage.name or f"server{index}",
                    transport=_transport(
                        usage.stdio if source == "stdio" else None,
                        usage.http if source == "http" else None,
                        environment,
                        where,
                    ),
                    enabled_tools=tuple(usage.enabled_tools),
                )
            )
    return tuple(servers)


def history_messages(
    executions: Iterable[execution_pb2.AgentExecution],
) -> tuple[HistoryMessage, ...]:
    """The earlier exchanges of the session, as the model saw them.

    An AI message's tool calls are the TOOL messages that follow it.
    """
    history: list[HistoryMessage] = []
    for execution in executions:
        calls = {call.id: call for call in execution.status.tool_calls}
        messages = list(execution.status.messages)
        for index, message in enumerate(messages):
            if message.type == execution_pb2.MESSAGE_TYPE_HUMAN:
                history.append(HistoryMessage("user", message.content))
            elif message.type == execution_pb2.MESSAGE_TYPE_AI:
                asked = []
                for following in messages[index + 1 :]:
                    # A SYSTEM note (a failure's reason) may stand between an
                    # AI message and the results of its calls recorded later.
                    if following.type == execution_pb2.MESSAGE_TYPE_SYSTEM:
                        continue
                    if following.type != execution_pb2.MESSAGE_TYPE_TOOL:
                        break
                    call = calls.get(following.tool_call_id)
                    if call is not None:
                        arguments = json_format.MessageToDict(call.args)
                        asked.append(HistoryToolCall(call.id, call.name, arguments))
                history.append(HistoryMessage("assistant", message.content, tuple(asked)))
            elif message.type == execution_pb2.MESSAGE_TYPE_TOOL:
                history.append(
                    HistoryMessage(
                        "tool", tool_result_of(message, calls), tool_call_id=message.tool_call_id
                    )
                )
    return tuple(history)


def tool_result_of(
    message: execution_pb2.ExecutionMessage, calls: Mapping[str, execution_pb2.ToolCall]
) -> str:
    """A TOOL message's text: kept once, in its tool call (result or error);
    executions recorded before that kept it in the message itself."""
    if message.content:
        return message.content
    call = calls.get(message.tool_call_id)
    if call is None:
        return ""
    return call.result or call.error


def model_settings(inputs: worker_pb2.ExecutionRunInputs, defaults: ModelSettings) -> ModelSettings:
    """execution_config.model_name > the agent's model > the server's default."""
    model = (
        inputs.execution.spec.execution_config.model_name
        or inputs.agent.spec.model
        or defaults.model
    )
    if not model:
        raise FailedPrecondition(
            "no model to run with: set llm.model (`stigmer config set llm.model NAME` or "
            "STIGMER_LLM_MODEL), the agent's spec.model, or pass --model"
        )
    deadline = inputs.agent.spec.deadlines.model_call_seconds
    return ModelSettings(
        provider=defaults.provider,
        model=model,
        base_url=defaults.base_url,
        api_key=defaults.api_key,
        timeout_seconds=float(deadline) if deadline else defaults.timeout_seconds,
    )


def build_run_request(
    inputs: worker_pb2.ExecutionRunInputs,
    defaults: ModelSettings,
    *,
    max_steps: int,
    max_tool_result_bytes: int = RunRequest.max_tool_result_bytes,
) -> tuple[RunRequest, MergedEnvironment]:
    environment = merge_environment(inputs)
    tool_deadline = inputs.agent.spec.deadlines.tool_call_seconds
    request = RunRequest(
        instructions=inputs.agent.spec.instructions,
        history=history_messages(inputs.history),
        message=inputs.execution.spec.message,
        model=model_settings(inputs, defaults),
        tool_servers=tool_servers(inputs, environment.values),
        max_steps=max_steps,
        tool_call_timeout_seconds=(
            float(tool_deadline) if tool_deadline else RunRequest.tool_call_timeout_seconds
        ),
        max_tool_result_bytes=max_tool_result_bytes,
        tool_policy=tool_policy_of(inputs),
        grants=grants_of(inputs.execution),
    )
    return request, environment
