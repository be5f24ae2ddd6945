"""With authentication on, a decision records the caller's token name as
decided_by, and a role that may not write cannot decide."""

from __future__ import annotations

import grpc
import pytest

from stigmer.resources.execution_events import COMPLETED
from stigmer.testing.scripted_model import Reply, ScriptedModel, ToolCallStep
from tests.agents import gated_tools_agent
from tests.auth.conftest import AuthServer
from tests.executions.approvals import APPROVE, status_code_of, submit, wait_for_approvals
from tests.waiting import wait_for_end


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_decided_by_is_the_callers_principal(auth_server: AuthServer, model: ScriptedModel) -> None:
    model.add(
        Reply(tool_calls=(ToolCallStep("add", {"a": 1, "b": 2}, id="c1"),)),
        Reply(content="3"),
    )
    with auth_server.client("admin") as admin:
        # A stdio tool server is an admin's to define.
        admin.apply(gated_tools_agent())
    with auth_server.client("developer") as client:
        execution_id = client.run("careful", "go").metadata.id
        wait_for_approvals(client, execution_id)
        with pytest.raises(grpc.RpcError) as refused:
            submit(
                auth_server.address, execution_id, "c1", APPROVE, token=auth_server.tokens["viewer"]
            )
        assert status_code_of(refused.value) == grpc.StatusCode.PERMISSION_DENIED

        submit(
            auth_server.address, execution_id, "c1", APPROVE, token=auth_server.tokens["developer"]
        )
        final = wait_for_end(client, execution_id)

    assert final.status.phase == COMPLETED, final.status.error
    (call,) = final.status.tool_calls
    assert call.approval.decided_by == "developer-1"
