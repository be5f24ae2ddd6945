"""The pipeline runner: an operation is a named list of steps.

Steps share one request context and run in order inside the caller's store
transaction, so a request that writes several resources commits all or
nothing. A step that fails names itself in the error (`facts["step"]`) and
the error keeps its class, hence its status code at the gRPC edge; anything
that is not a StigmerError is logged and becomes Internal with the cause
chained, whose message the gRPC edge keeps from clients.

A step may mark the context done (`context.finish()`, e.g. a replayed
request whose answer is already stored, or a claim that found nothing to
claim): the steps after it do not run.

Every step is a fault-injection point (see stigmer/faults.py): crash tests
are generated from the pipelines' own step lists.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

from stigmer.errors import Internal, StigmerError
from stigmer.faults import crash_point, failing_step

logger = logging.getLogger(__name__)


class Context(Protocol):
    @property
    def is_done(self) -> bool: ...


ContextT = TypeVar("ContextT", bound=Context)
ContextT_contra = TypeVar("ContextT_contra", contravariant=True)


class Step(Protocol[ContextT_contra]):
    """One named piece of an operation."""

    @property
    def name(self) -> str: ...

    async def run(self, context: ContextT_contra) -> None: ...


class Pipeline(Generic[ContextT]):
    def __init__(self, name: str, steps: Sequence[Step[ContextT]]) -> None:
        self.name = name
        self.steps = tuple(steps)

    @property
    def step_names(self) -> tuple[str, ...]:
        return tuple(step.name for step in self.steps)

    async def run(self, context: ContextT) -> None:
        failing = failing_step()
        for step in self.steps:
            try:
                if failing and failing == f"{self.name}/{step.name}":
                    raise Internal(f"injected failure in step {failing}")
                await step.run(context)
            except StigmerError as error:
                error.facts.setdefault("step", f"{self.name}/{step.name}")
                raise
            except Exception as error:
                # Logged here too, not only at the gRPC edge: pipelines also
                # run in the engine and the checker, which log no traceback.
                logger.exception("step %s/%s failed", self.name, step.name)
                # The gRPC edge sends a client only the request id of an
                # Internal; the message reaches logs and execution records.
                raise Internal(
                    f"internal error in step {self.name}/{step.name}: {error}",
                    facts={"step": f"{self.name}/{step.name}"},
                ) from error
            if context.is_done:
                # Ended early with nothing (more) to write: no crash point,
                # so an idle claim does not crash a server at start-up.
                return
            crash_point(f"{self.name}/{step.name}")
