"""The pipeline runner: steps in order, and an early end when a step says so."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from stigmer.pipeline.context import PipelineContext
from stigmer.pipeline.framework import Pipeline


@dataclass(kw_only=True)
class Trail(PipelineContext):
    ran: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Mark:
    name: str
    is_finishing: bool = False

    async def run(self, context: Trail) -> None:
        context.ran.append(self.name)
        if self.is_finishing:
            context.finish()


def test_steps_run_in_order() -> None:
    context = Trail()
    asyncio.run(Pipeline[Trail]("trail", [Mark("a"), Mark("b"), Mark("c")]).run(context))
    assert context.ran == ["a", "b", "c"]
    assert not context.is_done


def test_no_step_runs_after_one_finishes_the_context() -> None:
    context = Trail()
    pipeline = Pipeline[Trail]("trail", [Mark("a"), Mark("b", is_finishing=True), Mark("c")])
    asyncio.run(pipeline.run(context))
    assert context.ran == ["a", "b"]
    assert context.is_done
