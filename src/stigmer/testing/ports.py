"""Free ports on 127.0.0.1 for servers started by tests."""

from __future__ import annotations

from stigmer.local_ports import free_local_port as free_port

__all__ = ["free_port"]
