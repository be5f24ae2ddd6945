"""The resource kinds Stigmer knows, and their names on the command line.

Each kind has one protobuf message (the envelope: api_version, kind,
metadata, spec, status), an id prefix, short names, and optionally an owner
kind: deleting an owner cascades to what it owns.

A kind's message also leads to everything else generated for it: its .proto
file, and in that file its `<Kind>CommandController` and
`<Kind>QueryController` services. The server builds its handlers and the
client its stubs from those descriptors, so a new kind is one entry here
(and its controller in the domain registry).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor
from google.protobuf.message import Message

from stigmer.api.v1 import (
    agent_pb2,
    agentinstance_pb2,
    environment_pb2,
    execution_pb2,
    mcpserver_pb2,
    session_pb2,
    skill_pb2,
)
from stigmer.errors import InvalidArgument

API_VERSION = "agentic.stigmer.ai/v1"
DEFAULT_ORG = "local"


@dataclass(frozen=True)
class KindInfo:
    name: str
    message: type[Any]
    prefix: str
    short_names: tuple[str, ...]
    owner_kind: str | None
    # Manifests are applied in this order so references resolve.
    apply_order: int
    # Users write it (create, update, apply, manifests) through the generic
    # resource services. Executions are started and recorded by the server
    # instead, and their file declares services of their own.
    is_user_written: bool = True
    # Its get, list and delete are the generic resource services (every kind
    # but executions, whose file declares services of their own). A kind not
    # user-written but served so (Skill: pushed, not applied) declares its
    # own writes beside them in its command service.
    has_generic_services: bool = True

    @property
    def plural(self) -> str:
        return self.short_names[0] + "s"

    @property
    def file(self) -> FileDescriptor:
        """The generated .proto file that declares the message and its services."""
        file: FileDescriptor = self.message.DESCRIPTOR.file
        return file

    @property
    def command_service(self) -> ServiceDescriptor:
        return self.file.services_by_name[f"{self.name}CommandController"]

    @property
    def query_service(self) -> ServiceDescriptor:
        return self.file.services_by_name[f"{self.name}QueryController"]

    def new_message(self) -> Message:
        message: Message = self.message()
        return message


ENVIRONMENT = KindInfo(
    "Environment", environment_pb2.Environment, "env", ("environment", "env"), None, 0
)
MCP_SERVER = KindInfo("McpServer", mcpserver_pb2.McpServer, "mcp", ("mcpserver", "mcp"), None, 1)
AGENT = KindInfo("Agent", agent_pb2.Agent, "agt", ("agent", "ag"), None, 2)
AGENT_INSTANCE = KindInfo(
    "AgentInstance",
    agentinstance_pb2.AgentInstance,
    "ain",
    ("agentinstance", "ain"),
    "Agent",
    3,
)
SESSION = KindInfo("Session", session_pb2.Session, "ses", ("session", "ses"), "AgentInstance", 4)
AGENT_EXECUTION = KindInfo(
    "AgentExecution",
    execution_pb2.AgentExecution,
    "aex",
    ("execution", "aex", "agentexecution"),
    "Session",
    5,
    is_user_written=False,
    has_generic_services=False,
)
# Pushed from a folder (`stigmer skill push`), never applied from a manifest.
SKILL = KindInfo("Skill", skill_pb2.Skill, "skl", ("skill", "skl"), None, 6, is_user_written=False)

KINDS: tuple[KindInfo, ...] = (
    ENVIRONMENT,
    MCP_SERVER,
    AGENT,
    AGENT_INSTANCE,
    SESSION,
    AGENT_EXECUTION,
    SKILL,
)
_BY_NAME = {kind.name: kind for kind in KINDS}
_BY_TYPE = {kind.message.DESCRIPTOR.full_name: kind for kind in KINDS}
_BY_ALIAS: dict[str, KindInfo] = {}
for _kind in KINDS:
    for _alias in (_kind.name.lower(), *_kind.short_names, _kind.plural, _kind.name.lower() + "s"):
        _BY_ALIAS[_alias] = _kind


def kind_by_name(name: str) -> KindInfo:
    """The kind named exactly as in a manifest's `kind:` field.

    Raises:
        InvalidArgument: no such kind.
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        known = ", ".join(_BY_NAME)
        raise InvalidArgument.for_field("kind", f"unknown kind {name!r} (known: {known})") from None


def kind_by_type_name(type_name: str) -> KindInfo | None:
    """The kind whose message has this full protobuf name (an Any's `TypeName()`)."""
    return _BY_TYPE.get(type_name)


def kind_by_alias(alias: str) -> KindInfo:
    """The kind for a command-line name: `agent`, `ag`, `agents`, `Agent`, ...

    Raises:
        InvalidArgument: no such kind.
    """
    kind = _BY_NAME.get(alias) or _BY_ALIAS.get(alias.lower())
    if kind is None:
        names = ", ".join("/".join(k.short_names) for k in KINDS)
        closest = difflib.get_close_matches(alias.lower(), _BY_ALIAS, n=1)
        hint = f"; did you mean {closest[0]!r}?" if closest else ""
        raise InvalidArgument.for_field("kind", f"unknown kind {alias!r}{hint} (known: {names})")
    return kind
