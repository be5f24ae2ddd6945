"""Fields whose stored form changed, read in their new form.

Resources are stored as protobuf bytes, so a field that changed type keeps
its old values in rows written before, under the old field number. Decoding
sees those as unknown fields; this module turns them into the new field, so
an old row reads as if it had been written today (and is written back so on
its next update).

- AgentSpec field 5 was `repeated string skill_refs` (bare slugs, which did
  nothing). It is now `repeated SkillRef skill_refs = 12`: each old slug
  reads as `{slug: <it>}`, meaning the latest version.
"""

from __future__ import annotations

from google.protobuf.message import Message
from google.protobuf.unknown_fields import UnknownFieldSet

_LEGACY_SKILL_REFS = 5
_LENGTH_DELIMITED = 2


def upgrade_agent(agent: Message) -> None:
    """Moves the old bare-slug skill_refs of an Agent into spec.skill_refs."""
    spec = agent.spec  # type: ignore[attr-defined]
    slugs = [
        field.data.decode("utf-8", "replace")
        for field in UnknownFieldSet(spec)  # type: ignore[attr-defined]
        if field.field_number == _LEGACY_SKILL_REFS and field.wire_type == _LENGTH_DELIMITED
    ]
    if not slugs:
        return
    spec.DiscardUnknownFields()
    known = {ref.slug for ref in spec.skill_refs}
    for slug in slugs:
        if slug and slug not in known:
            spec.skill_refs.add(slug=slug)
            known.add(slug)
