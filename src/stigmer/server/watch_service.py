"""The watch service: a kind's changes streamed as they commit (see domain/resource_watch.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from google.protobuf.message import Message

from stigmer.api.v1 import watch_pb2, watch_pb2_grpc
from stigmer.domain.resource_watch import BOOKMARK, ResourceWatcher, WatchEvent, WatchQuery
from stigmer.resources.kinds import DEFAULT_ORG, kind_by_alias
from stigmer.resources.secrets import redact
from stigmer.resources.validation import validate_message
from stigmer.store.changes import ADDED, DELETED, MODIFIED

EVENT_TYPES = {
    ADDED: watch_pb2.WATCH_EVENT_TYPE_ADDED,
    MODIFIED: watch_pb2.WATCH_EVENT_TYPE_MODIFIED,
    DELETED: watch_pb2.WATCH_EVENT_TYPE_DELETED,
    BOOKMARK: watch_pb2.WATCH_EVENT_TYPE_BOOKMARK,
}
# The `resource` oneof's field for each kind, read from the message itself.
RESOURCE_FIELDS = {
    field.message_type.name: field.name
    for field in watch_pb2.WatchEvent.DESCRIPTOR.oneofs_by_name["resource"].fields
    if field.message_type is not None
}


def event_message(event: WatchEvent) -> watch_pb2.WatchEvent:
    message = watch_pb2.WatchEvent(
        type=EVENT_TYPES[event.type], resource_version=event.resource_version
    )
    if event.resource is not None:
        shown: Message = redact(event.resource)  # type: ignore[arg-type]
        getattr(message, RESOURCE_FIELDS[shown.DESCRIPTOR.name]).CopyFrom(shown)
    return message


class ResourceWatchService(watch_pb2_grpc.ResourceWatchQueryControllerServicer):
    def __init__(self, watcher: ResourceWatcher) -> None:
        self.watcher = watcher

    async def Watch(  # noqa: N802
        self, request: watch_pb2.WatchRequest, context: Any
    ) -> AsyncIterator[watch_pb2.WatchEvent]:
        validate_message(request)
        query = WatchQuery(
            kind=kind_by_alias(request.kind),
            org=request.org or DEFAULT_ORG,
            labels=dict(request.label_selector),
            resource_version=request.resource_version,
            is_initial_list_sent=request.send_initial_list,
        )
        async for event in self.watcher.watch(query):
            yield event_message(event)
