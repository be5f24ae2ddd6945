"""Everything an execution's run needs, gathered from the other domains in
one read: the agent, its instance's environments (in merge order, earlier
first), the McpServers it refers to by slug, and the session's earlier
executions, oldest first (the conversation memory).

It is the worker API's ExecutionRunInputs message, so the embedded engine
and `stigmer worker` build a run from the same thing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stigmer.api.v1 import worker_pb2
from stigmer.resources.kinds import AGENT_EXECUTION
from stigmer.store.base import ListQuery, Record

if TYPE_CHECKING:
    from stigmer.domain.registry import Domains

MAX_HISTORY_EXECUTIONS = 50
HISTORY_PAGE = 200


async def gather_inputs(domains: Domains, execution_id: str) -> worker_pb2.ExecutionRunInputs:
    """Raises NotFound when the execution, its agent or a referenced resource is gone."""
    async with domains.store.transaction(write=False) as transaction:
        execution = await domains.executions.get(execution_id, transaction=transaction)
        status = execution.status
        agent = await domains.agent_client.require_id(
            status.agent_id, transaction, field="status.agent_id"
        )
        instance = await domains.agent_instance_client.require_id(
            status.agent_instance_id, transaction, field="status.agent_instance_id"
        )
        org = agent.metadata.org
        environments = []
        for index, slug in enumerate(instance.spec.environment_refs):
            environments.append(
                await domains.environment_client.require_slug(
                    org, slug, transaction, field=f"instance.spec.environment_refs[{index}]"
                )
            )
        mcp_servers = {}
        for index, usage in enumerate(agent.spec.mcp_servers):
            if usage.ref:
                mcp_servers[usage.ref] = await domains.mcp_server_client.require_slug(
                    org, usage.ref, transaction, field=f"agent.spec.mcp_servers[{index}].ref"
                )
        earlier: list[Record] = []
        after = ""
        while True:
            page = await transaction.list(
                ListQuery(
                    kind=AGENT_EXECUTION.name,
                    session_id=status.session_id,
                    after_id=after,
                    limit=HISTORY_PAGE,
                )
            )
            earlier += [record for record in page if record.id < execution_id]
            # Ids sort by creation: the session's latest exchanges are the
            # memory worth keeping when it is long.
            earlier = earlier[-MAX_HISTORY_EXECUTIONS:]
            if len(page) < HISTORY_PAGE or page[-1].id >= execution_id:
                break
            after = page[-1].id
    inputs = worker_pb2.ExecutionRunInputs(
        execution=execution,  # type: ignore[arg-type]
        agent=agent,  # type: ignore[arg-type]
        environments=environments,  # type: ignore[arg-type]
        mcp_servers=mcp_servers,  # type: ignore[arg-type]
    )
    for record in earlier:
        inputs.history.add().MergeFromString(record.data)
    return inputs
