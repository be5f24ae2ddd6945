"""The Python SDK: `stigmer.client.Client` (sync) and `AsyncClient`."""

from stigmer.client.aio import ApplyResult, AsyncClient, ResourceEvent
from stigmer.client.approvals import Decision
from stigmer.client.sync import Client

__all__ = ["ApplyResult", "AsyncClient", "Client", "Decision", "ResourceEvent"]
