"""Skills: pushed (never applied), read like every kind, deleted with care.

A push runs its own pipeline (push.py). A delete is refused while an agent
of the skill's org refers to it, unless the request says `force`: an agent
whose skill vanished fails at its next run, so removing one should be a
decision, not an accident. The skill's archives go with it, in the same
transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from stigmer.api.v1 import agent_pb2, skill_pb2
from stigmer.domain.resource_controller import DEFAULT_PAGE_SIZE, ResourceController
from stigmer.domain.skill.push import (
    BuildVersionStep,
    LoadSkillStep,
    PersistSkillStep,
    PushContext,
    ReadArchiveStep,
    StoreArchiveStep,
)
from stigmer.errors import FailedPrecondition
from stigmer.pipeline.context import DeleteContext
from stigmer.pipeline.envelope import decode
from stigmer.pipeline.framework import Pipeline
from stigmer.resources.kinds import AGENT, SKILL
from stigmer.store.base import ListQuery, Store, Transaction


def skill_refs_of(agent: Any) -> Iterator[tuple[int, agent_pb2.SkillRef]]:
    """(index, ref) of each skill an agent (an Agent message) refers to."""
    yield from enumerate(agent.spec.skill_refs)


async def agents_referring_to(transaction: Transaction, org: str, slug: str) -> list[str]:
    """The slugs of the org's agents whose skill_refs name the skill."""
    # Agents are few and a skill's references are not an indexed column:
    # one pass over the org's agents, page by page.
    found: list[str] = []
    after = ""
    while True:
        page = await transaction.list(
            ListQuery(kind=AGENT.name, org=org, after_id=after, limit=DEFAULT_PAGE_SIZE)
        )
        for record in page:
            agent = decode(AGENT, record)
            if any(ref.slug == slug for _, ref in skill_refs_of(agent)):
                found.append(record.slug)
        if len(page) < DEFAULT_PAGE_SIZE:
            return found
        after = page[-1].id


@dataclass(frozen=True)
class RefuseWhileReferencedStep:
    name: str = "refuse-while-referenced"

    async def run(self, context: DeleteContext) -> None:
        if context.request.force:
            return
        record, _ = context.require_existing()
        agents = await agents_referring_to(context.transaction, record.org, record.slug)
        if agents:
            shown = ", ".join(agents[:5]) + (" ..." if len(agents) > 5 else "")
            raise FailedPrecondition(
                f"skill {record.slug!r} is used by {len(agents)} agent(s): {shown}; "
                "remove it from their spec.skill_refs first, or delete with --force",
                facts={"skill": record.slug, "agents": ",".join(agents)},
            )


@dataclass(frozen=True)
class DeleteArchivesStep:
    name: str = "delete-archives"

    async def run(self, context: DeleteContext) -> None:
        record, _ = context.require_existing()
        await context.transaction.delete_artifacts(record.id)


class SkillController(ResourceController):
    kind = SKILL

    def __init__(self, store: Store) -> None:
        super().__init__(store, before_delete=(RefuseWhileReferencedStep(), DeleteArchivesStep()))
        self.push_pipeline = Pipeline[PushContext](
            "skill.push",
            [
                ReadArchiveStep(),
                LoadSkillStep(),
                BuildVersionStep(),
                PersistSkillStep(),
                StoreArchiveStep(),
            ],
        )

    @property
    def pipelines(self) -> tuple[Pipeline[Any], ...]:
        return (*super().pipelines, self.push_pipeline)

    async def push(self, request: skill_pb2.PushSkillRequest) -> skill_pb2.PushSkillResponse:
        """Adds the archive's content as a version (unless it is one) and moves the tag.

        Raises:
            InvalidArgument: the request, the archive or its SKILL.md is bad
                (naming the limit and the entry, or SKILL.md's line).
        """
        async with self.store.transaction() as transaction:
            context = PushContext(transaction=transaction, request=request)
            await self.push_pipeline.run(context)
            if request.dry_run:
                transaction.discard()
        return skill_pb2.PushSkillResponse(
            skill=context.require_state(),
            hash=context.require_content().hash,
            is_new_version=context.is_new_version,
            moved_tags=context.moved_tags,
        )

    async def archive(self, skill_id: str, digest: str, transaction: Transaction) -> bytes | None:
        return await transaction.get_artifact(skill_id, digest)
