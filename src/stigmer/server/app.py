"""The Stigmer server process: store, domains and gRPC services, started and
stopped as one unit.

    server = StigmerServer(ServerOptions(store_url=..., port=0))
    await server.start()        # server.port is the bound port
    ...
    await server.stop()         # graceful: in-flight calls get a grace period
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from stigmer.api.v1 import (
    consistency_pb2_grpc,
    execution_pb2_grpc,
    manifest_pb2_grpc,
    server_pb2_grpc,
    token_pb2_grpc,
    watch_pb2_grpc,
    worker_pb2_grpc,
)
from stigmer.consistency.periodic import PeriodicChecker
from stigmer.domain.execution.approval_timeouts import ApprovalTimeouts
from stigmer.domain.registry import Domains
from stigmer.engine.base import Engine
from stigmer.engine.embedded import EmbeddedEngine
from stigmer.engine.options import EngineOptions
from stigmer.errors import Unavailable
from stigmer.message_limits import CHANNEL_OPTIONS
from stigmer.server.authentication import check_exposure, ensure_admin_token
from stigmer.server.authorization import AuthInterceptor
from stigmer.server.consistency_service import ConsistencyService
from stigmer.server.execution_service import ExecutionCommandService, ExecutionQueryService
from stigmer.server.interceptors import StigmerInterceptor
from stigmer.server.manifest_service import ManifestService
from stigmer.server.resource_services import resource_handlers
from stigmer.server.server_info_service import ServerInfoService
from stigmer.server.tls import TlsFiles, server_credentials
from stigmer.server.token_service import TokenService
from stigmer.server.watch_service import ResourceWatchService
from stigmer.server.worker_service import ExecutionWorkerService
from stigmer.store.base import Store
from stigmer.store.urls import store_from_url

if TYPE_CHECKING:
    from stigmer.engine.temporal_engine import TemporalOptions

logger = logging.getLogger(__name__)
SERVICE_NAME = "stigmer.agentic.v1"


@dataclass(frozen=True)
class ServerOptions:
    store_url: str
    host: str = "127.0.0.1"
    port: int = 7234
    grace_seconds: float = 5.0
    engine: EngineOptions = field(default_factory=EngineOptions)
    # None: the embedded engine. Set: executions run as Temporal workflows.
    temporal: TemporalOptions | None = None
    # Seconds between the server's own consistency checks; 0 turns them off.
    check_interval_seconds: float = 300.0
    # "none" or "token" (server/authentication.py, server/authorization.py).
    auth: str = "none"
    # Where the first admin token's secret is written (auth on, no token yet).
    admin_token_path: Path | None = None
    # None: plaintext gRPC.
    tls: TlsFiles | None = None


class _EngineSignals:
    """The execution domain's signals, sent on to the server's engine.

    The engine is built on the domains, so the domains cannot be built
    with it: they get this instead, and it reaches the engine once built.
    """

    def __init__(self, server: StigmerServer) -> None:
        self._server = server

    def execution_enqueued(self, execution_id: str) -> None:
        self._server.engine.execution_enqueued(execution_id)

    async def cancel_running(self, execution_id: str, reason: str) -> bool:
        return await self._server.engine.cancel_running(execution_id, reason)


class StigmerServer:
    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.store: Store = store_from_url(options.store_url)
        self.domains = Domains(self.store, _EngineSignals(self))
        self.engine: Engine = self._build_engine(options)
        self.checker = PeriodicChecker(self.domains, options.check_interval_seconds)
        self.approval_timeouts = ApprovalTimeouts(
            self.domains.executions, min(1.0, options.engine.poll_seconds)
        )
        self.port = 0
        self._server: grpc.aio.Server | None = None
        self._health = health.aio.HealthServicer()
        self._stopped = asyncio.Event()

    def _build_engine(self, options: ServerOptions) -> Engine:
        if options.temporal is None:
            return EmbeddedEngine(self.domains, options.engine)
        # Imported only here: the Temporal SDK is not needed otherwise.
        from stigmer.engine.temporal_engine import TemporalEngine

        return TemporalEngine(self.domains, options.engine, options.temporal)

    @property
    def address(self) -> str:
        return f"{self.options.host}:{self.port}"

    async def start(self) -> None:
        """Opens the store (migrating it) and starts serving.

        Raises:
            Unavailable: the store cannot be opened or the port is taken.
        """
        check_exposure(self.options.host, self.options.auth, is_tls=self.options.tls is not None)
        credentials = server_credentials(self.options.tls) if self.options.tls else None
        await self.store.open()
        interceptors: list[grpc.aio.ServerInterceptor] = [StigmerInterceptor()]
        if self.options.auth == "token":
            if self.options.admin_token_path is not None:
                await ensure_admin_token(self.store, self.options.admin_token_path)
            # Inside the error interceptor: its refusals answer like any error.
            interceptors.append(AuthInterceptor(self.store))
        server = grpc.aio.server(interceptors=interceptors, options=CHANNEL_OPTIONS)
        server.add_generic_rpc_handlers(tuple(resource_handlers(self.domains)))
        manifest_pb2_grpc.add_ManifestControllerServicer_to_server(
            ManifestService(self.domains), server
        )
        executions = self.domains.executions
        execution_pb2_grpc.add_AgentExecutionCommandControllerServicer_to_server(
            ExecutionCommandService(executions), server
        )
        execution_pb2_grpc.add_AgentExecutionQueryControllerServicer_to_server(
            ExecutionQueryService(executions), server
        )
        watch_pb2_grpc.add_ResourceWatchQueryControllerServicer_to_server(
            ResourceWatchService(self.domains.watcher), server
        )
        worker_pb2_grpc.add_ExecutionWorkerControllerServicer_to_server(
            ExecutionWorkerService(self.domains), server
        )
        consistency_pb2_grpc.add_ConsistencyControllerServicer_to_server(
            ConsistencyService(self.domains, self.checker), server
        )
        server_pb2_grpc.add_ServerInfoQueryControllerServicer_to_server(
            ServerInfoService(self), server
        )
        token_pb2_grpc.add_TokenControllerServicer_to_server(TokenService(self.store), server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        # The servicer answers SERVING for the whole server ("") from the
        # start: not before the engine is up (a managed Temporal dev server
        # takes a moment), or `stigmer server start` reports a server that
        # cannot run anything yet.
        await self._health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        try:
            where = f"{self.options.host}:{self.options.port}"
            if credentials is None:
                self.port = server.add_insecure_port(where)
            else:
                self.port = server.add_secure_port(where, credentials)
        except RuntimeError as error:
            await self.store.close()
            raise Unavailable(
                f"cannot listen on {self.options.host}:{self.options.port}: {error}"
            ) from error
        await server.start()
        self._server = server
        try:
            await self.engine.start()
        except BaseException:
            self._server = None
            await server.stop(0)
            await self.store.close()
            raise
        await self.checker.start()
        await self.approval_timeouts.start()
        await self._health.set("", health_pb2.HealthCheckResponse.SERVING)
        await self._health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        logger.info(
            "Stigmer server listening on %s (store %s, auth %s%s)",
            self.address,
            self.store.url,
            self.options.auth,
            ", TLS" if self.options.tls else "",
        )

    async def stop(self) -> None:
        if self._server is None:
            return
        await self._health.enter_graceful_shutdown()
        await self.approval_timeouts.stop()
        await self.checker.stop()
        await self.engine.stop()
        # Watches never end by themselves: end them now, not after the grace period.
        self.domains.watcher.stop()
        await self._server.stop(self.options.grace_seconds)
        self._server = None
        await self.store.close()
        self._stopped.set()
        logger.info("Stigmer server stopped")

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def __aenter__(self) -> StigmerServer:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()
