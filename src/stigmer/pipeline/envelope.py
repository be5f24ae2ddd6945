"""What the generic steps know of any resource: its envelope.

Every kind's message has api_version, kind, metadata, spec and a status with
an audit; the steps work on that shape and leave spec/status contents to the
kind's own steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from google.protobuf.message import Message

from stigmer.api.v1 import meta_pb2
from stigmer.resources.kinds import AGENT, KindInfo
from stigmer.resources.legacy_fields import upgrade_agent
from stigmer.resources.principals import current_principal
from stigmer.store.base import Record


class Envelope(Protocol):
    api_version: str
    kind: str

    @property
    def metadata(self) -> meta_pb2.ApiResourceMetadata: ...

    @property
    def spec(self) -> Any: ...

    @property
    def status(self) -> Any: ...

    def SerializeToString(self, *, deterministic: bool = ...) -> bytes: ...

    def HasField(self, field_name: Any) -> bool: ...

    def ClearField(self, field_name: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class Relations:
    """The indexed columns a kind derives from its resource."""

    owner_id: str = ""
    agent_id: str = ""
    agent_instance_id: str = ""
    session_id: str = ""
    phase: str = ""


def as_envelope(message: Message) -> Envelope:
    envelope: Envelope = message  # type: ignore[assignment]
    return envelope


def decode(kind: KindInfo, record: Record) -> Envelope:
    message = kind.new_message()
    message.ParseFromString(record.data)
    if kind is AGENT:
        upgrade_agent(message)
    return as_envelope(message)


def encode(kind: KindInfo, resource: Envelope, relations: Relations) -> Record:
    metadata = resource.metadata
    return Record(
        kind=kind.name,
        id=metadata.id,
        org=metadata.org,
        slug=metadata.slug,
        version=metadata.version,
        data=resource.SerializeToString(deterministic=True),
        owner_id=relations.owner_id,
        labels=dict(metadata.labels),
        agent_id=relations.agent_id,
        agent_instance_id=relations.agent_instance_id,
        session_id=relations.session_id,
        phase=relations.phase,
    )


def copy_resource(kind: KindInfo, resource: Envelope) -> Envelope:
    message = kind.new_message()
    message.CopyFrom(resource)  # type: ignore[arg-type]
    return as_envelope(message)


def now() -> datetime:
    return datetime.now(UTC)


def touch_audit(resource: Envelope, *, created: bool) -> None:
    moment = now()
    audit = resource.status.audit
    principal = current_principal.get()
    if created:
        audit.created_at.FromDatetime(moment)
        audit.created_by = principal
    audit.updated_at.FromDatetime(moment)
    audit.updated_by = principal
