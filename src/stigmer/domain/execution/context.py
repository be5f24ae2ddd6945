"""The context of an execution's create pipeline (steps.py, sessions.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from stigmer.api.v1 import execution_pb2, run_policy_pb2
from stigmer.pipeline.context import PipelineContext
from stigmer.pipeline.envelope import Envelope
from stigmer.store.base import Transaction


@dataclass(kw_only=True)
class ExecutionContext(PipelineContext):
    """An execution.create request. A replayed request (its execution is
    already stored) finishes the pipeline at the idempotency step."""

    transaction: Transaction
    given: execution_pb2.AgentExecution
    slug: str = ""
    request_hash: str = ""
    replayed: execution_pb2.AgentExecution | None = None
    session: Envelope | None = None
    agent_id: str = ""
    instance_id: str = ""
    run_config: run_policy_pb2.RunConfig = field(default_factory=run_policy_pb2.RunConfig)
    state: execution_pb2.AgentExecution | None = None

    def require_session(self) -> Envelope:
        if self.session is None:
            raise RuntimeError("no session yet: resolve-session must run before this step")
        return self.session
