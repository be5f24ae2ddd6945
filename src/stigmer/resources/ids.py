"""Resource ids: `<kind prefix>-<lowercase ULID>`.

A ULID sorts by creation time, so ids double as a stable, monotonic cursor
for paginated lists without a separate sequence column.
"""

from __future__ import annotations

import os
import threading
import time

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_lock = threading.Lock()
_last_millis = 0
_last_random = 0


def new_ulid() -> str:
    """A 26-character lowercase ULID, strictly increasing within this process."""
    global _last_millis, _last_random
    with _lock:
        millis = time.time_ns() // 1_000_000
        if millis <= _last_millis:
            # Same millisecond (or a clock step back): keep order by bumping
            # the random part, as the ULID spec's monotonic mode does.
            millis = _last_millis
            random_part = _last_random + 1
        else:
            random_part = int.from_bytes(os.urandom(10), "big")
        _last_millis, _last_random = millis, random_part
    value = (millis << 80) | (random_part & ((1 << 80) - 1))
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def new_id(prefix: str) -> str:
    return f"{prefix}-{new_ulid()}"
