"""Fields a manifest may set that nothing acts on yet.

They are part of the API (and of manifests written for upstream Stigmer), so
they are accepted and stored; but an agent whose `sub_agents` are silently
ignored would mislead its author, so `apply` and `validate` warn about each
one a document sets. When a feature lands, its field leaves this table.
"""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf.message import Message

# kind → the dotted paths of its accepted-but-unused fields
UNUSED_FIELDS: Mapping[str, tuple[str, ...]] = {
    "Agent": ("spec.sub_agents",),
}


def unused_fields_set(kind: str, resource: Message) -> list[str]:
    """The paths in UNUSED_FIELDS that the resource gives a value."""
    return [path for path in UNUSED_FIELDS.get(kind, ()) if _is_set(resource, path)]


def _is_set(message: Message, path: str) -> bool:
    *parents, name = path.split(".")
    for parent in parents:
        if not message.HasField(parent):
            return False
        message = getattr(message, parent)
    field = message.DESCRIPTOR.fields_by_name[name]
    if field.is_repeated:
        return len(getattr(message, name)) > 0
    if field.message_type is not None or field.has_presence:
        return message.HasField(name)
    return bool(getattr(message, name) != field.default_value)
