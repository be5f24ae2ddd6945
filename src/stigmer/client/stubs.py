"""The gRPC stubs and apply request type of each kind the generic resource
services serve, by kind name (a kind that is not applied has no apply request).

They are built from the service descriptors `KindInfo` leads to, as the
server builds its handlers, so a new kind needs no entry here. A stub made
by `ServiceStub` calls the same paths with the same (de)serializers as the
generated `<Service>Stub` class would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message_factory import GetMessageClass

from stigmer.resources.kinds import KINDS, KindInfo


class ServiceStub:
    """Each unary method of one service as an attribute named like the RPC."""

    def __init__(self, channel: grpc.aio.Channel, service: ServiceDescriptor) -> None:
        for method in service.methods:
            call = channel.unary_unary(
                f"/{service.full_name}/{method.name}",
                request_serializer=GetMessageClass(method.input_type).SerializeToString,
                response_deserializer=GetMessageClass(method.output_type).FromString,
                # As in the generated stubs: the channel registers the
                # method once rather than on every call.
                _registered_method=True,  # type: ignore[call-arg]
            )
            setattr(self, method.name, call)


@dataclass(frozen=True)
class KindStubs:
    command: Callable[[grpc.aio.Channel], Any]
    query: Callable[[grpc.aio.Channel], Any]
    apply_request: Any

    @classmethod
    def of(cls, kind: KindInfo) -> KindStubs:
        command, query = kind.command_service, kind.query_service
        apply = command.methods_by_name.get("Apply")
        return cls(
            command=lambda channel: ServiceStub(channel, command),
            query=lambda channel: ServiceStub(channel, query),
            apply_request=GetMessageClass(apply.input_type) if apply is not None else None,
        )


KIND_STUBS: dict[str, KindStubs] = {
    kind.name: KindStubs.of(kind) for kind in KINDS if kind.has_generic_services
}
