"""The command and query services of every resource kind but executions,
built from the service descriptors in the generated code (`KindInfo`'s
`command_service` and `query_service`) and served by the kind's controller.
One generic implementation keeps every kind's RPCs identical in validation,
error mapping and secret redaction. A kind that is not user-written (Skill)
serves its own writes beside the generic delete, get and list
(`extra_behaviours`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from stigmer.api.v1 import meta_pb2
from stigmer.domain.registry import Domains
from stigmer.domain.resource_controller import (
    Page,
    ResourceController,
    WritableResourceController,
)
from stigmer.errors import InvalidArgument
from stigmer.pipeline.envelope import Envelope, as_envelope
from stigmer.resources.kinds import DEFAULT_ORG, KINDS, SKILL
from stigmer.resources.secrets import redact
from stigmer.resources.selectors import parse_selector
from stigmer.resources.validation import validate_message
from stigmer.store.base import PAGE_SIZE, ListQuery

Behaviour = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Message]]

# The indexed column each "list by parent" method filters on.
PARENT_COLUMNS = {"ListByAgent": "agent_id", "ListByAgentInstance": "agent_instance_id"}


def _shown(resource: Envelope) -> Message:
    shown: Message = redact(resource)  # type: ignore[arg-type]
    return shown


def _page_size(size: int) -> int:
    return size if size > 0 else PAGE_SIZE


class ResourceServices:
    """The gRPC handlers of one kind's command and query services."""

    def __init__(
        self,
        controller: ResourceController,
        extra_behaviours: Mapping[str, Behaviour] | None = None,
    ) -> None:
        self.controller = controller
        self.extra_behaviours = dict(extra_behaviours or {})
        self.command = controller.kind.command_service
        self.query = controller.kind.query_service
        self.list_class = GetMessageClass(self.query.methods_by_name["List"].output_type)
        apply = self.command.methods_by_name.get("Apply")
        self.apply_response_class = GetMessageClass(apply.output_type) if apply else None

    @property
    def writable(self) -> WritableResourceController:
        if not isinstance(self.controller, WritableResourceController):
            raise InvalidArgument.for_field(
                "kind", f"{self.controller.kind.name} is not written so"
            )
        return self.controller

    def generic_handlers(self) -> list[grpc.GenericRpcHandler]:
        handlers = []
        for service in (self.command, self.query):
            methods: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
                method.name: grpc.unary_unary_rpc_method_handler(
                    self._behaviour(method),
                    request_deserializer=GetMessageClass(method.input_type).FromString,
                    response_serializer=lambda message: message.SerializeToString(),
                )
                for method in service.methods
            }
            handlers.append(grpc.method_handlers_generic_handler(service.full_name, methods))
        return handlers

    def _behaviour(self, method: MethodDescriptor) -> Behaviour:
        implementations: dict[str, Behaviour] = {
            "Create": self._create,
            "Update": self._update,
            "Apply": self._apply,
            "Delete": self._delete,
            "Get": self._get,
            "GetByReference": self._get_by_reference,
            "List": self._list,
            **self.extra_behaviours,
        }
        if method.name in PARENT_COLUMNS:
            column = PARENT_COLUMNS[method.name]

            async def list_by_parent(
                request: meta_pb2.ListByParentRequest, _: grpc.aio.ServicerContext[Any, Any]
            ) -> Message:
                validate_message(request)
                parent = request.parent_id
                query = ListQuery(
                    kind=self.controller.kind.name,
                    agent_id=parent if column == "agent_id" else None,
                    agent_instance_id=parent if column == "agent_instance_id" else None,
                    limit=_page_size(request.page_size),
                )
                page = await self.controller.list(query, page_token=request.page_token)
                return self._list_message(page)

            return list_by_parent
        return implementations[method.name]

    def _list_message(self, page: Page) -> Message:
        message: Message = self.list_class(
            items=[_shown(item) for item in page.items], next_page_token=page.next_page_token
        )
        return message

    async def _create(self, request: Message, _: Any) -> Message:
        return _shown(await self.writable.create(as_envelope(request)))

    async def _update(self, request: Message, _: Any) -> Message:
        return _shown(await self.writable.update(as_envelope(request)))

    async def _apply(self, request: Any, _: Any) -> Message:
        if not request.HasField("resource"):
            raise InvalidArgument.for_field("resource", "is required")
        resource, outcome = await self.writable.apply(
            as_envelope(request.resource), is_dry_run=request.dry_run
        )
        assert self.apply_response_class is not None
        response: Message = self.apply_response_class(resource=_shown(resource), outcome=outcome)
        return response

    async def _delete(self, request: meta_pb2.DeleteRequest, _: Any) -> Message:
        validate_message(request)
        return _shown(await self.controller.delete(request))

    async def _get(self, request: meta_pb2.GetRequest, _: Any) -> Message:
        validate_message(request)
        return _shown(await self.controller.get(request.id))

    async def _get_by_reference(self, request: meta_pb2.ResourceReference, _: Any) -> Message:
        validate_message(request)
        return _shown(await self.controller.get_by_reference(request.org, request.slug))

    async def _list(self, request: meta_pb2.ListRequest, _: Any) -> Message:
        validate_message(request)
        page = await self.controller.list(
            ListQuery(
                kind=self.controller.kind.name,
                org=request.org or DEFAULT_ORG,
                labels=dict(request.label_selector),
                selector=parse_selector(request.selector),
                limit=_page_size(request.page_size),
            ),
            page_token=request.page_token,
        )
        return self._list_message(page)


def _skill_behaviours(domains: Domains) -> dict[str, Behaviour]:
    async def push(request: Any, _: Any) -> Message:
        response: Message = await domains.skills.push(request)
        return response

    return {"Push": push}


def resource_handlers(domains: Domains) -> list[grpc.GenericRpcHandler]:
    handlers: list[grpc.GenericRpcHandler] = []
    for kind in KINDS:
        if kind.has_generic_services:
            extra = _skill_behaviours(domains) if kind is SKILL else {}
            services = ResourceServices(domains.controllers[kind.name], extra)
            handlers += services.generic_handlers()
    return handlers
