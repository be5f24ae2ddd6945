"""How large one gRPC message may be, in each direction, for the server and
the SDK alike.

16 MiB, four times gRPC's default of 4 MiB: a manifest of several hundred
agents, or an execution with thousands of messages, fits in one message,
while what one call can make the server hold in memory stays bounded (a
server on a laptop serves many callers at once). Both sides use the same
number, so a request the SDK sends is one the server accepts, and every
answer the server sends is one the SDK can read: the server refuses an
answer over the limit with a clear error instead of letting the transport
fail, and cuts lists into pages that fit.
"""

from __future__ import annotations

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# A page of a list stops short of the limit: the stored bytes of its items
# are close to, not exactly, the size of the answer (secrets are masked, the
# list adds its framing).
MAX_PAGE_BYTES = MAX_MESSAGE_BYTES - 1024 * 1024

CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
)
"""The options of the server and of every SDK channel."""


def describe_bytes(size: int) -> str:
    """`16 MiB`, `20.3 MiB`, `512 KiB`: a size as a person reads it."""
    for unit, scale in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if size >= scale:
            value = size / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{size} bytes"
