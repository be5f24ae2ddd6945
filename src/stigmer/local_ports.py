"""Free ports on 127.0.0.1: for the servers Stigmer starts as its children
(the managed Temporal dev server), and for those tests start."""

from __future__ import annotations

import socket


def free_local_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released).

    Also what a test needs for "an endpoint that refuses connections".
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
