"""The text layout of `stigmer describe`: aligned `Label:  value` pairs, text
blocks and tables, and the ways times and texts are shortened for them.

Plain text, not rich: a resource's values (instructions, messages, tool
arguments) would otherwise be read as markup, and the layout must be the same
on a terminal and in a pipe.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

EXCERPT_CHARS = 72
NONE = "<none>"
Value = str | Sequence[str]


def first_line(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The first non-empty line, cut to `limit` characters."""
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def is_set(timestamp: Timestamp) -> bool:
    return bool(timestamp.seconds or timestamp.nanos)


def format_time(timestamp: Timestamp, *, time_only: bool = False) -> str:
    if not is_set(timestamp):
        return "-"
    moment = timestamp.ToDatetime(tzinfo=UTC)
    if time_only:
        return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def format_span(seconds: float) -> str:
    if seconds < 1:
        return f"{max(seconds, 0) * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600}h"


def format_duration(started: Timestamp, completed: Timestamp) -> str:
    if not is_set(started) or not is_set(completed):
        return "-"
    return format_span((completed.ToNanoseconds() - started.ToNanoseconds()) / 1e9)


def format_age(timestamp: Timestamp) -> str:
    """How long ago, in whole units as `get` prints it: 45s, 3m, 2h, 5d."""
    if not is_set(timestamp):
        return "-"
    seconds = int((datetime.now(UTC) - timestamp.ToDatetime(tzinfo=UTC)).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def format_age_and_time(timestamp: Timestamp) -> str:
    return f"{format_age(timestamp)} ago ({format_time(timestamp)})" if is_set(timestamp) else "-"


@dataclass(frozen=True)
class _Pair:
    indent: int
    label: str
    values: list[str]


class Description:
    """The lines being laid out: `Label:  value` pairs, text blocks and tables,
    each at an indent. Pairs at the same indent share one value column, as
    kubectl aligns them."""

    def __init__(self) -> None:
        self._entries: list[str | _Pair] = []

    def pairs(self, items: Iterable[tuple[str, Value]], indent: int = 0) -> None:
        for label, value in items:
            values = [value] if isinstance(value, str) else list(value)
            self._entries.append(_Pair(indent, label, [v for v in values if v] or [NONE]))

    def heading(self, label: str, indent: int = 0) -> None:
        self._entries.append(" " * indent + label + ":")

    def text(self, lines: Iterable[str], indent: int = 2) -> None:
        self._entries += [" " * indent + line for line in lines]

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]], indent: int = 2) -> None:
        if not rows:
            self._entries.append(" " * indent + NONE)
            return
        cells = [list(headers), *[[cell or "-" for cell in row] for row in rows]]
        widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
        for row in cells:
            line = "   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            self._entries.append(" " * indent + line.rstrip())

    def render(self) -> str:
        widths: dict[int, int] = {}
        for entry in self._entries:
            if isinstance(entry, _Pair):
                widths[entry.indent] = max(widths.get(entry.indent, 0), len(entry.label) + 3)
        lines: list[str] = []
        for entry in self._entries:
            if isinstance(entry, str):
                lines.append(entry)
                continue
            column = entry.indent + widths[entry.indent]
            lines.append(f"{' ' * entry.indent}{entry.label + ':':<{widths[entry.indent]}}")
            lines[-1] += entry.values[0]
            lines += [" " * column + value for value in entry.values[1:]]
        return "\n".join(lines) + "\n"
