"""The command boundary: which parts of a request make the server or a
worker start a process.

A stdio tool server is a command line that whoever runs the execution
starts (the embedded engine in the server process, or a `stigmer worker`).
Creating or changing one is running code on those machines, so only the
admin role may send one (server/authorization.py). Everything that starts
a process is a `StdioTransport`: McpServer `spec.stdio`, and an Agent's
inline `spec.mcp_servers[i].stdio`. An agent that refers to an McpServer by
slug carries no command: that is how non-admins use tool servers an admin
defined.

`command_paths` walks any request message, following resources packed in
`google.protobuf.Any` (Manifest.Apply), so the check needs no knowledge of
the kinds or the domain.
"""

from __future__ import annotations

from google.protobuf import any_pb2, descriptor_pool
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass

from stigmer.api.v1 import mcpserver_pb2
from stigmer.errors import InvalidArgument

_COMMAND_TYPE = mcpserver_pb2.StdioTransport.DESCRIPTOR.full_name
_ANY_TYPE = any_pb2.Any.DESCRIPTOR.full_name


def command_paths(message: Message) -> list[str]:
    """The field paths in `message` that hold a command to start
    (`spec.stdio`, `resources[2].spec.mcp_servers[0].stdio`); empty when none.

    Raises:
        InvalidArgument: a packed resource cannot be decoded (its path named).
    """
    found: list[str] = []
    _walk(message, "", found)
    return found


def _walk(message: Message, path: str, found: list[str]) -> None:
    full_name = message.DESCRIPTOR.full_name
    if full_name == _COMMAND_TYPE:
        found.append(path)
        return
    if full_name == _ANY_TYPE:
        inner = _unpacked(message, path)
        if inner is not None:
            _walk(inner, path, found)
        return
    for field, value in message.ListFields():
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        where = f"{path}.{field.name}" if path else field.name
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            for key, item in value.items():
                if isinstance(item, Message):
                    _walk(item, f"{where}[{key}]", found)
        elif field.is_repeated:
            for index, item in enumerate(value):
                _walk(item, f"{where}[{index}]", found)
        else:
            _walk(value, where, found)


def _unpacked(packed: Message, path: str) -> Message | None:
    assert isinstance(packed, any_pb2.Any)
    type_name = packed.TypeName()
    try:
        cls = GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(type_name))
    except KeyError:
        return None  # not a type we know: the service refuses it by name
    inner: Message = cls()
    try:
        inner.ParseFromString(packed.value)
    except DecodeError:
        raise InvalidArgument.for_field(path, f"cannot decode the packed {type_name}") from None
    return inner
