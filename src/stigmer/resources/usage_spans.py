"""How far back a usage report reaches, as people write it: `7d`, `12h`,
`2w` back from now, or a date (YYYY-MM-DD, UTC). Shared by `stigmer usage
--since` and the console's /usage?since=, so both read the same spans."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from stigmer.errors import InvalidArgument

_SPAN = re.compile(r"^(\d+)([hdw])$")
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def since_moment(text: str, now: datetime, *, field: str = "since") -> datetime | None:
    """`7d`, `12h`, `2w` back from `now`, or a date (YYYY-MM-DD, UTC); "" is none.

    Raises:
        InvalidArgument: anything else (naming `field`).
    """
    if not text.strip():
        return None
    found = _SPAN.match(text.strip())
    if found is not None:
        try:
            return now - int(found.group(1)) * _UNITS[found.group(2)]
        except OverflowError:
            raise InvalidArgument.for_field(field, f"{text!r} reaches too far back") from None
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidArgument.for_field(
            field, f"{text!r} is not a span (7d, 12h, 2w) or a date (YYYY-MM-DD)"
        ) from None
