"""Steps of other kinds that look skills up: an agent's refs must name an
existing skill and version when it is written, and an execution records the
version each ref means when it is created (so a later push never changes
what it reads)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from stigmer.api.v1 import execution_pb2, skill_pb2
from stigmer.domain.clients import ResourceReader
from stigmer.domain.execution.context import ExecutionContext
from stigmer.domain.skill.controller import skill_refs_of
from stigmer.domain.skill.versions import requested_version, resolve_version
from stigmer.errors import FailedPrecondition, NotFound
from stigmer.pipeline.context import WriteContext
from stigmer.store.base import Transaction


async def resolve_refs(
    skills: ResourceReader, agent: Any, transaction: Transaction
) -> list[execution_pb2.ResolvedSkill]:
    """Each of the agent's skill refs, resolved to a version.

    Raises:
        NotFound: a ref names no skill, or no version of it (naming the field).
    """
    resolved = []
    for index, ref in skill_refs_of(agent):
        where = f"spec.skill_refs[{index}]"
        found = await skills.require_slug(
            agent.metadata.org, ref.slug, transaction, field=f"{where}.slug"
        )
        skill = cast(skill_pb2.Skill, found)
        version = resolve_version(skill, ref.version)
        if version is None:
            wanted = requested_version(ref.version)
            raise NotFound("Skill version", f"{ref.slug}@{wanted}", field=f"{where}.version")
        resolved.append(
            execution_pb2.ResolvedSkill(
                slug=ref.slug,
                version=requested_version(ref.version),
                hash=version.hash,
                name=version.name,
                description=version.description,
                skill_id=skill.metadata.id,
            )
        )
    names = [skill.name for skill in resolved]
    if len(set(names)) != len(names):
        twice = sorted({name for name in names if names.count(name) > 1})
        raise FailedPrecondition(
            f"two skill refs resolve to skills with the same name: {', '.join(twice)} "
            "(read_skill opens skills by name)",
            facts={"field": "spec.skill_refs"},
        )
    return resolved


@dataclass(frozen=True)
class RequireSkillRefsStep:
    """An agent's skill refs name existing skills and versions."""

    skills: ResourceReader
    name: str = "resolve-skills"

    async def run(self, context: WriteContext) -> None:
        await resolve_refs(self.skills, context.require_state(), context.transaction)


@dataclass(frozen=True)
class ResolveExecutionSkillsStep:
    """Records in the new execution's status the version of each skill its
    agent refers to. A skill deleted (with --force) since the agent was
    written is FAILED_PRECONDITION naming it: the run could not read it."""

    skills: ResourceReader
    agents: ResourceReader
    name: str = "resolve-skills"

    async def run(self, context: ExecutionContext) -> None:
        state = context.state
        if state is None:
            raise RuntimeError("no execution built: build-state must run before this step")
        agent = await self.agents.get(context.agent_id, context.transaction)
        if not agent.spec.skill_refs:
            return
        try:
            resolved = await resolve_refs(self.skills, agent, context.transaction)
        except NotFound as error:
            raise FailedPrecondition(
                f"agent {agent.metadata.slug!r}: {error.message}",
                facts={"field": error.facts.get("field", ""), "agent": agent.metadata.slug},
            ) from None
        state.status.skills.extend(resolved)
