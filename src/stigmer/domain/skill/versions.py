"""Which version of a skill a reference means.

A reference's version is `latest` (also when empty), a tag, or a hash: the
full 64 hex digits, or a prefix of at least MIN_HASH_PREFIX of them that
only one version starts with. A tag wins over a hash prefix that happens to
spell the same text.
"""

from __future__ import annotations

from stigmer.api.v1 import skill_pb2

LATEST = "latest"
MIN_HASH_PREFIX = 12
_HEX = frozenset("0123456789abcdef")


def requested_version(version: str) -> str:
    return version or LATEST


def resolve_version(skill: skill_pb2.Skill, version: str) -> skill_pb2.SkillVersion | None:
    """The version `version` names, or None when it names none (or several)."""
    wanted = requested_version(version)
    by_hash = {v.hash: v for v in skill.status.versions}
    tagged = skill.status.tags.get(wanted)
    if tagged is not None:
        return by_hash.get(tagged)
    if len(wanted) >= MIN_HASH_PREFIX and set(wanted) <= _HEX:
        matches = [v for h, v in by_hash.items() if h.startswith(wanted)]
        if len(matches) == 1:
            return matches[0]
    return None
