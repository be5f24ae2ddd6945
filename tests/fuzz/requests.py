"""Request bodies for the RPC fuzzer, drawn from one seeded random source.

Every body is bytes, so that what reaches the server need not be a message
at all. Five shapes, mixed:

- random bytes;
- a random message of the method's type, built from its descriptor: every
  field may be set, to edge values (out-of-range enums, huge and odd
  strings, control characters, timestamps outside the calendar, Any
  payloads of random types and bytes, nested messages);
- a plausible request (a valid agent, a Get of an id the server handed out)
  with random fields laid over it, so the fuzzer gets past the first
  validation into the pipelines;
- the plausible request as it is, so state builds up (agents with
  instances, sessions, executions) for later requests to hit;
- the serialized form of either, truncated or with bytes flipped, spliced
  or inserted.

Ids, slugs and page tokens from the server's answers are remembered
(`Harvest`) and reused, so requests name things that exist.
"""

from __future__ import annotations

import random
import string
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import any_pb2, struct_pb2, timestamp_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from stigmer.api.v1 import (
    agent_pb2,
    agentinstance_pb2,
    environment_pb2,
    execution_pb2,
    manifest_pb2,
    mcpserver_pb2,
    meta_pb2,
    session_pb2,
    watch_pb2,
)

MAX_DEPTH = 4
RESOURCE_TYPES: tuple[type[Message], ...] = (
    agent_pb2.Agent,
    agentinstance_pb2.AgentInstance,
    session_pb2.Session,
    environment_pb2.Environment,
    mcpserver_pb2.McpServer,
    execution_pb2.AgentExecution,
)
_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_HARVESTED_FIELDS = {
    "id": "ids",
    "default_instance_id": "ids",
    "agent_id": "ids",
    "agent_instance_id": "ids",
    "session_id": "ids",
    "execution_id": "ids",
    "slug": "slugs",
    "next_page_token": "tokens",
}
KIND_ALIASES = ("agent", "ag", "agentinstance", "session", "environment", "mcpserver", "execution")


@dataclass
class Harvest:
    """What the server has handed out: ids, slugs and page tokens."""

    ids: deque[str] = field(default_factory=lambda: deque(maxlen=300))
    slugs: deque[str] = field(default_factory=lambda: deque(maxlen=300))
    tokens: deque[str] = field(default_factory=lambda: deque(maxlen=50))

    def take(self, answer: Message) -> None:
        fields: Sequence[tuple[Any, Any]] = answer.ListFields()
        for described, value in fields:
            if described.type == FieldDescriptor.TYPE_MESSAGE:
                if described.message_type.GetOptions().map_entry:
                    continue
                children = value if described.is_repeated else [value]
                for child in children:
                    self.take(child)
            elif described.name in _HARVESTED_FIELDS and isinstance(value, str) and value:
                getattr(self, _HARVESTED_FIELDS[described.name]).append(value)


class RequestMaker:
    def __init__(self, rng: random.Random, harvest: Harvest) -> None:
        self.rng = rng
        self.harvest = harvest
        self._plausible: dict[str, Callable[[], Message]] = {
            "Agent": self.agent,
            "AgentInstance": self.agent_instance,
            "Session": self.session,
            "Environment": self.environment,
            "McpServer": self.mcp_server,
            "AgentExecution": self.execution,
            "ApplyManifestRequest": self.manifest,
            "GetRequest": lambda: meta_pb2.GetRequest(id=self.known_id()),
            "ResourceReference": lambda: meta_pb2.ResourceReference(slug=self.known_slug()),
            "DeleteRequest": self.delete,
            "ListRequest": lambda: meta_pb2.ListRequest(
                page_size=self.rng.choice([0, 1, 2, 1000]), page_token=self.known_token()
            ),
            "ListByParentRequest": lambda: meta_pb2.ListByParentRequest(
                parent_id=self.known_id(), page_size=self.rng.choice([0, 1, 5])
            ),
            "ListExecutionsRequest": lambda: execution_pb2.ListExecutionsRequest(
                phase=self.rng.randrange(0, 6),  # type: ignore[arg-type]
                page_token=self.known_token(),
            ),
            "CancelExecutionRequest": lambda: execution_pb2.CancelExecutionRequest(
                id=self.known_id(), reason=self.text()
            ),
            "SubscribeExecutionRequest": lambda: execution_pb2.SubscribeExecutionRequest(
                id=self.known_id()
            ),
            "WatchRequest": lambda: watch_pb2.WatchRequest(kind=self.rng.choice(KIND_ALIASES)),
        }

    # -- bodies -----------------------------------------------------------

    def body(self, message_class: type[Message]) -> tuple[str, bytes]:
        """A request body for a method taking `message_class`, and its shape's name."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.1:
            return "random-bytes", rng.randbytes(rng.choice([0, 1, 3, 16, 200]))
        if roll < 0.35:
            return "random-message", self.message(message_class.DESCRIPTOR).SerializeToString()
        plausible = self.plausible(message_class)
        if roll < 0.6:
            overlay = self.message(message_class.DESCRIPTOR, density=0.15)
            plausible.MergeFrom(overlay)
            return "plausible-with-overlay", plausible.SerializeToString()
        if roll < 0.85:
            return "plausible", plausible.SerializeToString()
        return "mutated-bytes", self.mutated(plausible.SerializeToString())

    def mutated(self, data: bytes) -> bytes:
        rng = self.rng
        if not data:
            return rng.randbytes(4)
        buffer = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            operation = rng.randrange(4)
            position = rng.randrange(len(buffer) or 1)
            if operation == 0:
                del buffer[position:]
            elif operation == 1 and buffer:
                buffer[position % len(buffer)] ^= 1 << rng.randrange(8)
            elif operation == 2:
                buffer[position:position] = rng.randbytes(rng.randint(1, 8))
            else:
                buffer[position:position] = buffer[: rng.randint(1, 16)]
        return bytes(buffer)

    # -- random messages from descriptors --------------------------------

    def message(self, descriptor: Any, *, depth: int = 0, density: float = 0.5) -> Message:
        message: Message = GetMessageClass(descriptor)()
        if descriptor.full_name == "google.protobuf.Any":
            return self.any()
        if descriptor.full_name == "google.protobuf.Timestamp":
            return self.timestamp()
        if descriptor.full_name == "google.protobuf.Struct":
            return self.struct()
        for described in descriptor.fields:
            if self.rng.random() < density:
                self.set_field(message, described, depth)
        return message

    def set_field(self, message: Message, described: Any, depth: int) -> None:
        rng = self.rng
        target = getattr(message, described.name)
        if described.type == FieldDescriptor.TYPE_MESSAGE:
            entry = described.message_type
            if entry.GetOptions().map_entry:
                key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
                for _ in range(rng.randint(0, 3)):
                    key = self.scalar(key_field)
                    if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                        if depth < MAX_DEPTH:
                            target[key].CopyFrom(
                                self.message(value_field.message_type, depth=depth + 1)
                            )
                    else:
                        target[key] = self.scalar(value_field)
                return
            if depth >= MAX_DEPTH:
                return
            if described.is_repeated:
                for _ in range(rng.randint(0, 3)):
                    target.add().CopyFrom(self.message(entry, depth=depth + 1))
            else:
                target.CopyFrom(self.message(entry, depth=depth + 1))
            return
        if described.is_repeated:
            for _ in range(rng.randint(0, 3)):
                target.append(self.scalar(described))
            return
        setattr(message, described.name, self.scalar(described))

    def scalar(self, described: Any) -> Any:
        rng = self.rng
        kind = described.type
        if kind == FieldDescriptor.TYPE_STRING:
            return self.text()
        if kind == FieldDescriptor.TYPE_BYTES:
            return rng.randbytes(rng.choice([0, 1, 8, 100]))
        if kind == FieldDescriptor.TYPE_BOOL:
            return rng.random() < 0.5
        if kind in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
            return rng.choice([0.0, -1.5, 1e300, float("inf"), float("nan"), rng.random()])
        if kind == FieldDescriptor.TYPE_ENUM:
            defined = [value.number for value in described.enum_type.values]
            if rng.random() < 0.5:
                return rng.choice(defined)
            return rng.choice([-1, max(defined) + 1, 2**31 - 1, -(2**31), rng.randrange(7, 1000)])
        low, high = _INT_RANGES[kind]
        return rng.choice([0, 1, low, high, max(low, -1), rng.randint(low, high), 100, 10**6])

    def text(self) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.2:
            return rng.choice([self.known_id(), self.known_slug(), self.known_token()])
        if roll < 0.3:
            return ""
        if roll < 0.45:
            return self.slug()
        if roll < 0.55:
            return rng.choice(["\x00", "a\x00b", "line\nbreak", "\x1b[31mred", "tab\there", "\x7f"])
        if roll < 0.62:
            return rng.choice(["é", "名前", "🙂" * 5, "\u202eevil", "\ufeff", "\u0085"])
        if roll < 0.7:
            return rng.choice(["a" * 64, "a" * 73, "a" * 300, "x" * 5000, "y" * 70_000])
        if roll < 0.75:
            return rng.choice(["../../etc/passwd", "${SECRET}", "' OR 1=1 --", "%s%n", "-default"])
        alphabet = string.printable
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))

    def slug(self) -> str:
        length = self.rng.choice([1, 5, 20, 55, 63, 64, 70])
        return "s" + "".join(self.rng.choice("abc123-") for _ in range(length - 2)) + "z"

    def any(self) -> any_pb2.Any:
        rng = self.rng
        packed = any_pb2.Any()
        roll = rng.random()
        if roll < 0.4:
            packed.Pack(self.plausible(rng.choice(RESOURCE_TYPES)))
        elif roll < 0.7:
            resource_type = rng.choice(RESOURCE_TYPES)
            packed.type_url = "type.googleapis.com/" + resource_type.DESCRIPTOR.full_name
            packed.value = self.mutated(self.plausible(resource_type).SerializeToString())
        else:
            packed.type_url = rng.choice(
                [
                    "",
                    "type.googleapis.com/",
                    "nonsense",
                    "type.googleapis.com/google.protobuf.Empty",
                ]
            )
            packed.value = rng.randbytes(rng.choice([0, 5, 50]))
        return packed

    def timestamp(self) -> timestamp_pb2.Timestamp:
        rng = self.rng
        return timestamp_pb2.Timestamp(
            seconds=rng.choice([0, 1_700_000_000, -(2**62), 2**62, 253_402_300_800]),
            nanos=rng.choice([0, 999_999_999, 1_000_000_000, -1]),
        )

    def struct(self) -> struct_pb2.Struct:
        result = struct_pb2.Struct()
        for _ in range(self.rng.randint(0, 3)):
            result[self.text()] = self.rng.choice([self.text(), 1.5, True, None])
        return result

    # -- plausible requests ----------------------------------------------

    def plausible(self, message_class: type[Message]) -> Message:
        make = self._plausible.get(message_class.DESCRIPTOR.name)
        if make is not None:
            return make()
        if message_class.DESCRIPTOR.name.startswith(
            "Apply"
        ) and message_class.DESCRIPTOR.name.endswith("Request"):
            resource_field: Any = message_class.DESCRIPTOR.fields_by_name["resource"]
            resource_class = GetMessageClass(resource_field.message_type)
            return message_class(resource=self.plausible(resource_class))
        return message_class()

    def known_id(self) -> str:
        if self.harvest.ids and self.rng.random() < 0.9:
            return self.rng.choice(self.harvest.ids)
        return self.rng.choice(["agt-01jf0000000000000000000000", "nope", "aex-x"])

    def known_slug(self) -> str:
        if self.harvest.slugs and self.rng.random() < 0.9:
            return self.rng.choice(self.harvest.slugs)
        return self.slug()

    def known_token(self) -> str:
        if self.harvest.tokens and self.rng.random() < 0.5:
            return self.rng.choice(self.harvest.tokens)
        return self.rng.choice(["", "bm9wZQ==", "!!!", "YWd0LTAx", "not a token"])

    def metadata(self) -> meta_pb2.ApiResourceMetadata:
        rng = self.rng
        name = rng.choice(["Reviewer", "Support Bot", "Helper", "Data Tool", "Ops"])
        return meta_pb2.ApiResourceMetadata(
            name=f"{name} {rng.randrange(40)}",
            labels={"team": rng.choice(["a", "b"])} if rng.random() < 0.5 else {},
        )

    def agent(self) -> agent_pb2.Agent:
        spec = agent_pb2.AgentSpec(instructions="Answer the user's questions briefly.")
        if self.harvest.slugs and self.rng.random() < 0.3:
            spec.mcp_servers.add(ref=self.known_slug())
        return agent_pb2.Agent(metadata=self.metadata(), spec=spec)

    def agent_instance(self) -> agentinstance_pb2.AgentInstance:
        return agentinstance_pb2.AgentInstance(
            metadata=self.metadata(),
            spec=agentinstance_pb2.AgentInstanceSpec(agent_id=self.known_id()),
        )

    def session(self) -> session_pb2.Session:
        return session_pb2.Session(
            metadata=self.metadata(),
            spec=session_pb2.SessionSpec(agent_instance_id=self.known_id()),
        )

    def environment(self) -> environment_pb2.Environment:
        data = {"API_KEY": meta_pb2.EnvironmentValue(value="k-123", is_secret=True)}
        return environment_pb2.Environment(
            metadata=self.metadata(), spec=environment_pb2.EnvironmentResourceSpec(data=data)
        )

    def mcp_server(self) -> mcpserver_pb2.McpServer:
        return mcpserver_pb2.McpServer(
            metadata=self.metadata(),
            spec=mcpserver_pb2.McpServerSpec(
                http=mcpserver_pb2.HttpTransport(url="http://127.0.0.1:9/mcp")
            ),
        )

    def execution(self) -> execution_pb2.AgentExecution:
        spec = execution_pb2.AgentExecutionSpec(message="What is the time?")
        if self.rng.random() < 0.5:
            spec.agent_id = self.known_id()
        else:
            spec.session_id = self.known_id()
        return execution_pb2.AgentExecution(spec=spec)

    def manifest(self) -> manifest_pb2.ApplyManifestRequest:
        request = manifest_pb2.ApplyManifestRequest(dry_run=self.rng.random() < 0.3)
        for _ in range(self.rng.randint(0, 3)):
            request.resources.add().Pack(
                self.rng.choice([self.agent, self.environment, self.mcp_server])()
            )
        return request

    def delete(self) -> meta_pb2.DeleteRequest:
        if self.rng.random() < 0.5:
            cascade: Any = self.rng.randrange(0, 3)
            return meta_pb2.DeleteRequest(id=self.known_id(), cascade=cascade)
        return meta_pb2.DeleteRequest(ref=meta_pb2.ResourceReference(slug=self.known_slug()))
