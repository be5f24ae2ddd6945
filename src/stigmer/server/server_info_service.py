"""The ServerInfoQueryController service: the server says who it is and what it uses.

`stigmer server status` compares the pid it answers with the one the home
recorded (a pid alone may have been reused, a port taken by another server),
and `stigmer doctor` shows the version, store, engine and model of the server
it talks to. Nothing here is secret: the store URL has no password and the
model's API key is not part of the answer.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from stigmer.api.v1 import server_pb2, server_pb2_grpc
from stigmer.version import __version__

if TYPE_CHECKING:
    from stigmer.server.app import StigmerServer


def store_backend(url: str) -> str:
    return "postgres" if url.startswith(("postgres://", "postgresql://")) else "sqlite"


class ServerInfoService(server_pb2_grpc.ServerInfoQueryControllerServicer):
    def __init__(self, server: StigmerServer) -> None:
        self.server = server
        self.started_at = time.time()

    async def GetInfo(  # noqa: N802
        self, request: server_pb2.GetServerInfoRequest, context: Any
    ) -> server_pb2.ServerInfo:
        options = self.server.options
        model = options.engine.model
        info = server_pb2.ServerInfo(
            version=__version__,
            pid=os.getpid(),
            address=self.server.address,
            store=server_pb2.StoreInfo(
                backend=store_backend(self.server.store.url), url=self.server.store.url
            ),
            engine="embedded" if options.temporal is None else "temporal",
            model=server_pb2.ModelInfo(
                provider=options.engine.model_provider or model.provider,
                model=model.model,
                base_url=model.base_url,
                reason=options.engine.model_reason,
            ),
        )
        info.started_at.FromNanoseconds(int(self.started_at * 1e9))
        return info
