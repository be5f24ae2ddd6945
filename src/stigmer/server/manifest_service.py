"""The ManifestController service: multi-kind apply in one transaction."""

from __future__ import annotations

from typing import Any

from google.protobuf import any_pb2
from google.protobuf.message import DecodeError

from stigmer.api.v1 import manifest_pb2, manifest_pb2_grpc
from stigmer.domain.manifests import apply_manifest
from stigmer.domain.registry import Domains
from stigmer.errors import InvalidArgument
from stigmer.pipeline.envelope import Envelope, as_envelope
from stigmer.resources.kinds import kind_by_type_name
from stigmer.resources.secrets import redact
from stigmer.resources.validation import refuse_nul


def unpack_resource(packed: any_pb2.Any, index: int, domains: Domains) -> Envelope:
    type_name = packed.TypeName()
    kind = kind_by_type_name(type_name)
    if kind is None or kind.name not in domains.controllers:
        raise InvalidArgument.for_field(
            f"resources[{index}]", f"{type_name or 'an empty Any'} is not an appliable kind"
        )
    message = kind.new_message()
    try:
        packed.Unpack(message)
    except DecodeError as error:
        raise InvalidArgument.for_field(
            f"resources[{index}]", f"is not a valid {kind.name}: {error}"
        ) from None
    refuse_nul(message, prefix=f"resources[{index}].")
    return as_envelope(message)


class ManifestService(manifest_pb2_grpc.ManifestControllerServicer):
    def __init__(self, domains: Domains) -> None:
        self.domains = domains

    async def Apply(  # noqa: N802 - the generated servicer's method name
        self, request: manifest_pb2.ApplyManifestRequest, context: Any
    ) -> manifest_pb2.ApplyManifestResponse:
        resources = [
            unpack_resource(packed, index, self.domains)
            for index, packed in enumerate(request.resources)
        ]
        applied = await apply_manifest(self.domains, resources, is_dry_run=request.dry_run)
        response = manifest_pb2.ApplyManifestResponse()
        for resource, outcome in applied:
            result = response.results.add(outcome=outcome)
            result.resource.Pack(redact(resource))  # type: ignore[arg-type]
        return response
