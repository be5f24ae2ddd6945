"""Slugs: the stable, human-readable key of a resource within (kind, org).

Rule: lowercase; spaces and `_` become `-`; everything but `[a-z0-9-]` is
dropped; runs of `-` collapse and are trimmed; at most 63 characters.
"""

from __future__ import annotations

import re

from stigmer.errors import InvalidArgument

MAX_SLUG_LENGTH = 63
DEFAULT_INSTANCE_SUFFIX = "-default"
_SEPARATORS = re.compile(r"[\s_]+")
_DISALLOWED = re.compile(r"[^a-z0-9-]")
_DASH_RUNS = re.compile(r"-{2,}")
# \Z, not $: "$" also matches before a trailing newline.
VALID_SLUG = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?\Z")


def slugify(name: str) -> str:
    """The slug for a name; may be empty when the name has no usable character."""
    slug = _SEPARATORS.sub("-", name.strip().lower())
    slug = _DASH_RUNS.sub("-", _DISALLOWED.sub("", slug)).strip("-")
    return slug[:MAX_SLUG_LENGTH].rstrip("-")


def slug_limit(*, is_default_allowed: bool = False) -> int:
    """The longest slug a resource may be given. Only an agent instance may
    carry an agent's default suffix past the limit: its agent's slug already
    kept the limit, so "<slug>-default" always fits."""
    return MAX_SLUG_LENGTH + (len(DEFAULT_INSTANCE_SUFFIX) if is_default_allowed else 0)


def resolve_slug(name: str, given_slug: str, *, is_default_allowed: bool = False) -> str:
    """The slug a new resource gets: the one given, else derived from its name.

    `is_default_allowed`: the resource is an agent instance, whose slug may be
    its agent's default-instance slug (`<agent slug>-default`).

    Raises:
        InvalidArgument: the given slug breaks the rule, or the name yields none.
    """
    if given_slug:
        limit = MAX_SLUG_LENGTH
        if is_default_allowed and given_slug.endswith(DEFAULT_INSTANCE_SUFFIX):
            limit = slug_limit(is_default_allowed=True)
        if not VALID_SLUG.match(given_slug):
            raise InvalidArgument.for_field(
                "metadata.slug",
                f"{given_slug!r} is not a valid slug (lowercase letters, digits and '-', "
                "starting and ending with a letter or digit)",
            )
        if len(given_slug) > limit:
            raise InvalidArgument.for_field(
                "metadata.slug",
                f"is {len(given_slug)} characters long; a slug is at most "
                f"{MAX_SLUG_LENGTH} characters",
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
