"""The step every kind uses to check the references its spec makes by slug."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from stigmer.domain.clients import ResourceReader
from stigmer.pipeline.context import WriteContext
from stigmer.pipeline.envelope import Envelope

# (index, slug) of each reference a resource makes, the index as in `field`.
RefsOf = Callable[[Envelope], Iterable[tuple[int, str]]]


@dataclass(frozen=True)
class RequireRefsStep:
    """Every slug `refs_of` finds in the state names an existing resource of
    `resources`' kind, in the state's org; a missing one is NOT_FOUND naming
    the field (`field` with the reference's index)."""

    name: str
    resources: ResourceReader
    field: str
    refs_of: RefsOf

    async def run(self, context: WriteContext) -> None:
        state = context.require_state()
        for index, slug in self.refs_of(state):
            await self.resources.require_slug(
                state.metadata.org,
                slug,
                context.transaction,
                field=self.field.format(index=index),
            )
