"""Where `stigmer run --secret KEY=...` takes a secret's value from.

A value on the command line is visible to every user of the machine (`ps`,
/proc/PID/cmdline) and lands in shell history. So besides `KEY=VALUE`:

- `KEY=@PATH` reads the value from the file at PATH;
- `KEY=-` reads it from stdin (then the message must be an argument);
- `KEY=@@TEXT` is the literal value `@TEXT`.

One trailing newline is dropped from a value read from a file or stdin
(what `echo` and editors add); everything else is kept as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from stigmer.errors import InvalidArgument

FROM_STDIN = "-"
FROM_FILE = "@"


def secret_values(
    items: list[str] | None, read_stdin: Callable[[], str]
) -> tuple[dict[str, str], bool]:
    """The secrets by key, and whether one of them took stdin.

    Raises:
        InvalidArgument: not KEY=..., an unreadable file, stdin named twice.
    """
    values: dict[str, str] = {}
    has_read_stdin = False
    for item in items or []:
        key, separator, given = item.partition("=")
        if not separator or not key:
            raise InvalidArgument.for_field(
                "secret", f"{key or item!r}: use KEY=VALUE, KEY=@FILE or KEY=- (stdin)"
            )
        if given == FROM_STDIN:
            if has_read_stdin:
                raise InvalidArgument.for_field("secret", "only one secret can be read from stdin")
            has_read_stdin = True
            values[key] = _without_newline(read_stdin())
        elif given.startswith(FROM_FILE + FROM_FILE):
            values[key] = given[1:]
        elif given.startswith(FROM_FILE):
            values[key] = _without_newline(_read(key, given[1:]))
        else:
            values[key] = given
    return values, has_read_stdin


def _read(key: str, path: str) -> str:
    try:
        return Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise InvalidArgument.for_field("secret", f"{key}: cannot read {path}: {reason}") from None


def _without_newline(text: str) -> str:
    return text.removesuffix("\n").removesuffix("\r")
