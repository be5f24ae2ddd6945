"""Slugs: the stable, human-readable key of a resource within (kind, org).

Rule: lowercase; spaces and `_` become `-`; everything but `[a-z0-9-]` is
dropped; runs of `-` collapse and are trimmed; at most 63 characters.
"""

from __future__ import annotations

import re

from stigmer.errors import InvalidArgument

MAX_SLUG_LENGTH = 63
# A slug the system derives from another (an agent's "<slug>-default"
# instance) may be longer than a user's; lookups accept up to this.
MAX_REFERENCE_SLUG_LENGTH = MAX_SLUG_LENGTH + 9
DEFAULT_INSTANCE_SUFFIX = "-default"
_SEPARATORS = re.compile(r"[\s_]+")
_DISALLOWED = re.compile(r"[^a-z0-9-]")
_DASH_RUNS = re.compile(r"-{2,}")
VALID_SLUG = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


def slugify(name: str) -> str:
    """The slug for a name; may be empty when the name has no usable character."""
    slug = _SEPARATORS.sub("-", name.strip().lower())
    slug = _DASH_RUNS.sub("-", _DISALLOWED.sub("", slug)).strip("-")
    return slug[:MAX_SLUG_LENGTH].rstrip("-")


def resolve_slug(name: str, given_slug: str) -> str:
    """The slug a new resource gets: the one given, else derived from its name.

    Raises:
        InvalidArgument: the given slug breaks the rule, or the name yields none.
    """
    if given_slug:
        if len(given_slug) > MAX_REFERENCE_SLUG_LENGTH or not VALID_SLUG.match(given_slug):
            raise InvalidArgument.for_field(
                "metadata.slug",
                f"{given_slug!r} is not a valid slug (lowercase letters, digits and '-', "
                f"at most {MAX_SLUG_LENGTH} characters)",
            )
        return given_slug
    slug = slugify(name)
    if not slug:
        raise InvalidArgument.for_field(
            "metadata.name",
            f"{name!r} yields an empty slug; use letters or digits, or set metadata.slug",
        )
    return slug


def default_instance_slug(agent_slug: str) -> str:
    return agent_slug + DEFAULT_INSTANCE_SUFFIX
