"""Secret values: stored and used, never shown.

Any EnvironmentValue with `is_secret` anywhere in a resource is replaced by
`***` before the resource leaves the server, is logged or is printed. When a
manifest that came from `get -o yaml` is applied again, a secret that still
reads `***` means "keep the stored value", so round trips never overwrite a
secret with its mask.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

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
