"""The floor of the Temporal engine: a workflow that runs one activity that
does nothing, on the same dev server, run by a worker like the Stigmer
worker (its own process, the same sandbox settings). Only temporalio is
imported here, as in the engine's workflow module."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

WORKFLOW_NAME = "BenchBareWorkflow"


@activity.defn(name="bench-bare-activity")
async def bare_activity(text: str) -> str:
    return text


@workflow.defn(name=WORKFLOW_NAME)
class BareWorkflow:
    @workflow.run
    async def run(self, text: str) -> str:
        result: str = await workflow.execute_activity(
            "bench-bare-activity", text, start_to_close_timeout=timedelta(seconds=30)
        )
        return result
