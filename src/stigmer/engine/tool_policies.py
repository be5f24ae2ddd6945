"""An execution's tool policy and approval grants, read off its inputs.

The policy (resources/tool_policy.py) is the agent's spec.tool_policy over
the spec.tool_policy of each McpServer the agent references; the grants are
the execution's auto_approve and every server/tool an APPROVE_ALL decision
of this execution approved. Both engines build a run's gates from these.
"""

from __future__ import annotations

from stigmer.api.v1 import execution_pb2, run_policy_pb2, worker_pb2
from stigmer.resources.tool_policy import ApprovalGrants, ServerRules, ToolPolicy, ToolRules


def rules_of(policy: run_policy_pb2.ToolPolicy) -> ToolRules:
    return ToolRules(allow=tuple(policy.allow), ask=tuple(policy.ask), deny=tuple(policy.deny))


def tool_policy_of(inputs: worker_pb2.ExecutionRunInputs) -> ToolPolicy:
    servers: dict[str, ServerRules] = {}
    for usage in inputs.agent.spec.mcp_servers:
        if usage.WhichOneof("source") != "ref" or usage.ref not in inputs.mcp_servers:
            continue
        resource = inputs.mcp_servers[usage.ref]
        servers[usage.name or usage.ref] = ServerRules(
            resource.metadata.slug or usage.ref, rules_of(resource.spec.tool_policy)
        )
    return ToolPolicy(agent=rules_of(inputs.agent.spec.tool_policy), servers=servers)


def grants_of(execution: execution_pb2.AgentExecution) -> ApprovalGrants:
    approved_all = {
        f"{call.server}/{call.name}": call.approval.decided_by
        for call in execution.status.tool_calls
        if call.approval.action == execution_pb2.APPROVAL_ACTION_APPROVE_ALL
    }
    return ApprovalGrants(auto_approve=execution.spec.auto_approve, approved_all=approved_all)
