"""The steps of a skill push: read the archive (every limit checked), find
or start the skill, add the version unless its content is already one, move
the tags, store the archive under its hash. One transaction: a push that
fails anywhere leaves no version without its archive, nor the reverse.

Pushing content that already is a version adds nothing; it only moves the
tag the push names (`latest` when none) to it. Pushing what every tag already
points at writes nothing at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stigmer.api.v1 import skill_pb2
from stigmer.domain.skill.versions import LATEST
from stigmer.errors import InvalidArgument
from stigmer.pipeline.context import PipelineContext
from stigmer.pipeline.envelope import Relations, as_envelope, encode, now, touch_audit
from stigmer.resources.ids import new_id
from stigmer.resources.kinds import API_VERSION, DEFAULT_ORG, SKILL
from stigmer.resources.principals import current_principal
from stigmer.resources.skill_archives import MAX_ARCHIVE_BYTES, SkillContent, read_archive
from stigmer.resources.slugs import resolve_slug
from stigmer.resources.validation import validate_message
from stigmer.store.base import Record, Transaction

# Skills point at nothing and nothing owns them.
SKILL_RELATIONS = Relations()


@dataclass(kw_only=True)
class PushContext(PipelineContext):
    transaction: Transaction
    request: skill_pb2.PushSkillRequest
    content: SkillContent | None = None
    # The archive as stored: the content's canonical zip, compressed.
    archive: bytes = b""
    slug: str = ""
    name: str = ""
    existing_record: Record | None = None
    state: skill_pb2.Skill | None = None
    is_new_version: bool = False
    moved_tags: list[str] = field(default_factory=list)

    def require_content(self) -> SkillContent:
        if self.content is None:
            raise RuntimeError("no archive read: read-archive must run before this step")
        return self.content

    def require_state(self) -> skill_pb2.Skill:
        if self.state is None:
            raise RuntimeError("no skill built: build-state must run before this step")
        return self.state


@dataclass(frozen=True)
class ReadArchiveStep:
    name: str = "read-archive"

    async def run(self, context: PushContext) -> None:
        validate_message(context.request)
        context.content = read_archive(context.request.archive)
        context.archive = context.content.canonical_zip()
        # What a worker fetches must fit in one message too, whatever
        # compression the sender used.
        if len(context.archive) > MAX_ARCHIVE_BYTES:
            raise InvalidArgument.for_field(
                "archive",
                f"the content takes {len(context.archive)} bytes compressed as stored "
                f"(at most {MAX_ARCHIVE_BYTES} bytes)",
            )


@dataclass(frozen=True)
class LoadSkillStep:
    name: str = "load-existing"

    async def run(self, context: PushContext) -> None:
        request = context.request
        context.name = request.name or context.require_content().document.name
        context.slug = resolve_slug(context.name, "")
        org = request.org or DEFAULT_ORG
        context.existing_record = await context.transaction.get_by_slug(
            SKILL.name, org, context.slug
        )


@dataclass(frozen=True)
class BuildVersionStep:
    name: str = "build-state"

    async def run(self, context: PushContext) -> None:
        content = context.require_content()
        state = skill_pb2.Skill()
        record = context.existing_record
        if record is not None:
            state.ParseFromString(record.data)
        else:
            state.api_version = API_VERSION
            state.kind = SKILL.name
            state.metadata.id = new_id(SKILL.prefix)
            state.metadata.name = context.name
            state.metadata.slug = context.slug
            state.metadata.org = context.request.org or DEFAULT_ORG
        context.state = state
        status = state.status
        if all(v.hash != content.hash for v in status.versions):
            version = status.versions.add(
                hash=content.hash,
                name=content.document.name,
                description=content.document.description,
                size_bytes=content.size_bytes,
                file_count=len(content.files),
                pushed_by=current_principal.get(),
            )
            version.pushed_at.FromDatetime(now())
            context.is_new_version = True
        tags = [context.request.tag or LATEST]
        if LATEST not in status.tags:
            tags.append(LATEST)  # a skill always has a latest version
        context.moved_tags = [t for t in dict.fromkeys(tags) if status.tags.get(t) != content.hash]
        for tag in context.moved_tags:
            status.tags[tag] = content.hash
        if record is not None and not context.is_new_version and not context.moved_tags:
            context.finish()  # nothing changes: nothing is written
            return
        latest = next(v for v in status.versions if v.hash == status.tags[LATEST])
        state.spec.description = latest.description
        state.metadata.version = (record.version if record is not None else 0) + 1
        touch_audit(as_envelope(state), created=record is None)


@dataclass(frozen=True)
class PersistSkillStep:
    name: str = "persist"

    async def run(self, context: PushContext) -> None:
        state = as_envelope(context.require_state())
        stored = encode(SKILL, state, SKILL_RELATIONS)
        if context.existing_record is None:
            await context.transaction.insert(stored)
        else:
            await context.transaction.update(stored, context.existing_record.version)


@dataclass(frozen=True)
class StoreArchiveStep:
    name: str = "store-archive"

    async def run(self, context: PushContext) -> None:
        if not context.is_new_version:
            return
        content = context.require_content()
        await context.transaction.put_artifact(
            context.require_state().metadata.id, content.hash, context.archive
        )
