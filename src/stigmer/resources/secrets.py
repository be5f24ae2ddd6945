"""Secret values: stored and used, never shown.

Any EnvironmentValue with `is_secret` anywhere in a resource is replaced by
`***` before the resource leaves the server, is logged or is printed. When a
manifest that came from `get -o yaml` is applied again, a secret that still
reads `***` means "keep the stored value", so round trips never overwrite a
secret with its mask.

The values themselves also reach tools and models, and so can come back in
any text an execution records (a streamed answer, a tool's arguments or
result, an error naming a resolved command line). `secret_values` finds them
in any resource, and `SecretMasker` masks them in text: whole texts with
`mask`, streamed text with `MaskedStream`, which holds back just enough of
the stream's end that a secret split across pieces is masked whole.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from stigmer.api.v1 import meta_pb2

MASK = "***"
_ENV_VALUE = meta_pb2.EnvironmentValue.DESCRIPTOR.full_name


@functools.cache
def _can_hold_secrets(descriptor: Descriptor) -> bool:
    """Whether any field under this message type is an EnvironmentValue.

    Most kinds (instances, sessions) cannot hold one; knowing it per type
    spares every response a field-by-field walk.
    """
    return _reaches_environment_value(descriptor, frozenset())


def _reaches_environment_value(descriptor: Descriptor, seen: frozenset[str]) -> bool:
    if descriptor.full_name == _ENV_VALUE:
        return True
    if descriptor.full_name in seen:
        return False
    seen = seen | {descriptor.full_name}
    return any(
        field.message_type is not None and _reaches_environment_value(field.message_type, seen)
        for field in descriptor.fields
    )


def _environment_values(message: Message, path: str = "") -> Iterator[tuple[str, Message]]:
    if not _can_hold_secrets(message.DESCRIPTOR):
        return
    for field, value in message.ListFields():
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        here = f"{path}.{field.name}" if path else field.name
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            value_field = entry.fields_by_name["value"]
            if value_field.message_type is None:
                continue
            for key, item in value.items():
                yield from _visit(item, f"{here}[{key}]")
        elif field.is_repeated:
            for index, item in enumerate(value):
                yield from _visit(item, f"{here}[{index}]")
        else:
            yield from _visit(value, here)


def _visit(message: Message, path: str) -> Iterator[tuple[str, Message]]:
    if message.DESCRIPTOR.full_name == _ENV_VALUE:
        yield path, message
    else:
        yield from _environment_values(message, path)


def redact(message: Message) -> Message:
    """A copy of the message with every secret value masked."""
    secrets = [value for _, value in _environment_values(message) if value.is_secret]  # type: ignore[attr-defined]
    if not secrets:
        return message
    masked = type(message)()
    masked.CopyFrom(message)
    for _, value in _environment_values(masked):
        if value.is_secret and value.value:  # type: ignore[attr-defined]
            value.value = MASK  # type: ignore[attr-defined]
    return masked


def restore_masked_secrets(given: Message, stored: Message) -> None:
    """Puts the stored value back wherever `given` holds a masked secret."""
    stored_values = dict(_environment_values(stored))
    for path, value in _environment_values(given):
        if value.is_secret and value.value == MASK and path in stored_values:  # type: ignore[attr-defined]
            value.value = stored_values[path].value  # type: ignore[attr-defined]


def secret_values(*messages: Message) -> frozenset[str]:
    """Every non-empty secret value anywhere in the messages (an Agent's or
    McpServer's env_spec, an Environment, an execution's runtime_env)."""
    return frozenset(
        value.value  # type: ignore[attr-defined]
        for message in messages
        for _, value in _environment_values(message)
        if value.is_secret and value.value  # type: ignore[attr-defined]
    )


class SecretMasker:
    """Replaces every secret value in a text by the mask."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first: the regex takes the first alternative that matches
        # at a position, so a secret that contains another is masked whole.
        ordered = sorted({s for s in secrets if s}, key=len, reverse=True)
        self.secrets = frozenset(ordered)
        self.longest = len(ordered[0]) if ordered else 0
        self.pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def mask(self, text: str) -> str:
        if self.pattern is None or not text:
            return text
        return self.pattern.sub(MASK, text)

    def stream(self) -> MaskedStream:
        return MaskedStream(self)


class MaskedStream:
    """Masks a text that arrives in pieces, as if it were masked whole.

    `push` returns what may be shown now: everything but a tail that could
    be the start of a secret whose rest has not arrived (at most the
    longest secret's length minus one characters; none when the text ends
    in nothing that starts a secret). A secret found whole is masked.
    `finish` returns the rest once the text is complete; `abandon` returns
    it for a text that will never be complete, without that tail.
    """

    def __init__(self, masker: SecretMasker) -> None:
        self._masker = masker
        self._hold = max(0, masker.longest - 1)
        self._raw = ""

    def push(self, text: str) -> str:
        self._raw += text
        return self._take(self._start_of_partial_secret())

    def finish(self) -> str:
        return self._take(len(self._raw))

    def abandon(self) -> str:
        shown = self._take(self._start_of_partial_secret())
        self._raw = ""
        return shown

    def _start_of_partial_secret(self) -> int:
        """Where the earliest tail that begins a secret (but does not hold
        all of it) starts; the text's length when there is none."""
        end = len(self._raw)
        for start in range(max(0, end - self._hold), end):
            tail = self._raw[start:]
            if any(len(s) > len(tail) and s.startswith(tail) for s in self._masker.secrets):
                return start
        return end

    def _take(self, limit: int) -> str:
        """Masks and returns the text up to `limit` (further if a secret found
        whole crosses it), keeping the rest for later."""
        pattern = self._masker.pattern
        if limit <= 0:
            return ""
        if pattern is None:
            shown, self._raw = self._raw[:limit], self._raw[limit:]
            return shown
        pieces: list[str] = []
        position = 0
        for match in pattern.finditer(self._raw):
            if match.start() >= limit:
                break
            pieces += (self._raw[position : match.start()], MASK)
            position = match.end()
        if position < limit:
            pieces.append(self._raw[position:limit])
            position = limit
        self._raw = self._raw[position:]
        return "".join(pieces)
