"""The pipeline runner: an operation is a named list of steps.

Steps share one request context and run in order inside the caller's store
transaction, so a request that writes several resources commits all or
nothing. A step that fails names itself in the error (`facts["step"]`) and
the error keeps its class, hence its status code at the gRPC edge; anything
that is not a StigmerError becomes Internal with the cause chained.

Fault injection for tests, inert unless set:
- `STIGMER_CRASH_AFTER=<pipeline>/<step>` makes the process exit abruptly
  (os._exit: no cleanup, no commit) right after that step; read at import.
- `STIGMER_FAIL_STEP=<pipeline>/<step>` makes that step raise Internal
  instead of running, to prove the transaction leaves nothing behind; read
  on every run so an in-process test server can switch it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

from stigmer.errors import Internal, StigmerError

logger = logging.getLogger(__name__)

ContextT = TypeVar("ContextT")
ContextT_contra = TypeVar("ContextT_contra", contravariant=True)

CRASH_EXIT_CODE = 70
_crash_after = os.environ.get("STIGMER_CRASH_AFTER", "")


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
        failing = os.environ.get("STIGMER_FAIL_STEP", "")
        for step in self.steps:
            try:
                if failing and failing == f"{self.name}/{step.name}":
                    raise Internal(f"injected failure in step {failing}")
                await step.run(context)
            except StigmerError as error:
                error.facts.setdefault("step", f"{self.name}/{step.name}")
                raise
            except Exception as error:
                logger.exception("step %s/%s failed", self.name, step.name)
                raise Internal(
                    f"internal error in step {self.name}/{step.name}: {error}",
                    facts={"step": f"{self.name}/{step.name}"},
                ) from error
            if _crash_after and _crash_after == f"{self.name}/{step.name}":
                crash_now(f"{self.name}/{step.name}")


def crash_now(where: str) -> None:
    """Ends the process at once, as a power cut would: nothing is flushed."""
    os.write(2, f"stigmer: injected crash after {where}\n".encode())
    os._exit(CRASH_EXIT_CODE)
