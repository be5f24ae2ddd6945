"""Fault injection for crash tests. Inert unless its environment variables
are set, and unreachable from the API.

- `STIGMER_CRASH_AT=<point>` ends the process abruptly (os._exit: nothing is
  flushed, nothing committed) when execution reaches that point. Points are
  `<pipeline>/<step>` (right after the step) and `store/before-commit` /
  `store/after-commit` (around the commit of a transaction that wrote).
  Read once at import: a crash test starts a server process with it set.
- `STIGMER_FAIL_STEP=<pipeline>/<step>` makes that step raise instead of
  running, to prove the transaction leaves nothing behind. Read on every
  run, so an in-process test server can switch it on and off.
"""

from __future__ import annotations

import os

CRASH_EXIT_CODE = 70
_crash_at = os.environ.get("STIGMER_CRASH_AT", "")


def crash_point(point: str) -> None:
    """Ends the process at once when this is the configured crash point."""
    if _crash_at and _crash_at == point:
        os.write(2, f"stigmer: injected crash at {point}\n".encode())
        os._exit(CRASH_EXIT_CODE)


def failing_step() -> str:
    """The `<pipeline>/<step>` that must fail, or an empty string."""
    return os.environ.get("STIGMER_FAIL_STEP", "")
