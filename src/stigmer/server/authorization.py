"""Who may call what: the one table from RPC to the roles allowed, and the
interceptor that enforces it when the server runs with `auth: token`.

    viewer     reads (every Get, List, Subscribe, Watch, Check; secrets masked)
    developer  + apply, create, update, delete, run and cancel
    worker     only the worker API (GetRunInputs, GetSkillArtifact, RecordEvents), and only for
               executions the Temporal engine holds (engine/lease_owners.py)
    admin      everything, tokens and repair included

Two rules look into the request, past the method name:

- The command boundary (resources/commands.py): only an admin may send a
  resource that carries a command to start (an McpServer with `stdio`, an
  Agent with an inline stdio server), by any method, Manifest.Apply included.
  Other roles use tool servers an admin defined, by slug.
- A worker serves only executions running on the Temporal engine: without
  that engine's lease on the execution, PERMISSION_DENIED.

Authentication happens before the request body is read (a stranger's body
is never parsed); a refused call answers through the error interceptor like
any other error. The principal's name is set in
resources.principals.current_principal for the layers below (audit).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import grpc

from stigmer.engine.lease_owners import TEMPORAL_LEASE_OWNER
from stigmer.errors import Internal, PermissionDenied, StigmerError
from stigmer.resources.commands import command_paths
from stigmer.resources.principals import ADMIN, DEVELOPER, VIEWER, WORKER, current_principal
from stigmer.server.authentication import Authenticator, Principal
from stigmer.store.base import Store

PACKAGE = "stigmer.agentic.v1"
PUBLIC: frozenset[str] = frozenset()  # no token needed
READ = frozenset({VIEWER, DEVELOPER, ADMIN})
WRITE = frozenset({DEVELOPER, ADMIN})
WORKER_API = frozenset({WORKER, ADMIN})
ADMIN_ONLY = frozenset({ADMIN})
RESOURCE_KINDS = ("Environment", "McpServer", "Agent", "AgentInstance", "Session", "Skill")


def _kind_methods(kind: str) -> dict[str, frozenset[str]]:
    command = f"/{PACKAGE}.{kind}CommandController/"
    query = f"/{PACKAGE}.{kind}QueryController/"
    written = ("Push", "Delete") if kind == "Skill" else ("Create", "Update", "Apply", "Delete")
    methods = {command + name: WRITE for name in written}
    methods |= {query + name: READ for name in ("Get", "GetByReference", "List")}
    if kind == "AgentInstance":
        methods[query + "ListByAgent"] = READ
    if kind == "Session":
        methods[query + "ListByAgent"] = READ
        methods[query + "ListByAgentInstance"] = READ
    return methods


METHOD_ROLES: Mapping[str, frozenset[str]] = {
    **{method: roles for kind in RESOURCE_KINDS for method, roles in _kind_methods(kind).items()},
    f"/{PACKAGE}.ManifestController/Apply": WRITE,
    f"/{PACKAGE}.AgentExecutionCommandController/Create": WRITE,
    f"/{PACKAGE}.AgentExecutionCommandController/Cancel": WRITE,
    f"/{PACKAGE}.AgentExecutionCommandController/SubmitApproval": WRITE,
    f"/{PACKAGE}.AgentExecutionCommandController/Pause": WRITE,
    f"/{PACKAGE}.AgentExecutionCommandController/Resume": WRITE,
    f"/{PACKAGE}.AgentExecutionCommandController/Terminate": WRITE,
    f"/{PACKAGE}.AgentExecutionCommandController/Recover": WRITE,
    f"/{PACKAGE}.AgentExecutionCommandController/Delete": WRITE,
    f"/{PACKAGE}.AgentExecutionCommandController/RecordEvents": WORKER_API,
    f"/{PACKAGE}.AgentExecutionQueryController/Get": READ,
    f"/{PACKAGE}.AgentExecutionQueryController/List": READ,
    f"/{PACKAGE}.AgentExecutionQueryController/ListBySession": READ,
    f"/{PACKAGE}.AgentExecutionQueryController/Subscribe": READ,
    f"/{PACKAGE}.ExecutionWorkerController/GetRunInputs": WORKER_API,
    f"/{PACKAGE}.ExecutionWorkerController/GetSkillArtifact": WORKER_API,
    f"/{PACKAGE}.ResourceWatchQueryController/Watch": READ,
    f"/{PACKAGE}.ConsistencyController/Check": READ,
    f"/{PACKAGE}.ConsistencyController/GetLastReport": READ,
    f"/{PACKAGE}.ConsistencyController/Repair": ADMIN_ONLY,
    f"/{PACKAGE}.ServerInfoQueryController/GetInfo": READ,
    f"/{PACKAGE}.UsageQueryController/GetUsage": READ,
    f"/{PACKAGE}.TokenController/Create": ADMIN_ONLY,
    f"/{PACKAGE}.TokenController/List": ADMIN_ONLY,
    f"/{PACKAGE}.TokenController/Revoke": ADMIN_ONLY,
    # Health answers whether the server serves, nothing more: probes and
    # `stigmer server start` ask it before any token is at hand.
    "/grpc.health.v1.Health/Check": PUBLIC,
    "/grpc.health.v1.Health/Watch": PUBLIC,
    "/grpc.health.v1.Health/List": PUBLIC,
}
# The methods whose request carries an execution id (`id`) a worker must hold.
WORKER_METHODS = frozenset(method for method, roles in METHOD_ROLES.items() if roles == WORKER_API)


def check_allowed(method: str, principal: Principal) -> None:
    """Raises PermissionDenied unless the principal's role may call `method`."""
    roles = METHOD_ROLES.get(method)
    if roles is None or principal.role not in roles:
        raise PermissionDenied(
            f"the {principal.role} role may not call {method}",
            facts={"role": principal.role, "method": method},
        )


def check_commands(method: str, principal: Principal, request: Any) -> None:
    """Raises PermissionDenied when a non-admin sends a command to start."""
    if principal.role == ADMIN or METHOD_ROLES.get(method) != WRITE:
        return
    paths = command_paths(request)
    if paths:
        raise PermissionDenied(
            f"{paths[0]}: only an admin token may create or change a command the server "
            "or a worker starts (a stdio tool server); refer to an McpServer an admin "
            "applied, by slug, instead",
            facts={"field": paths[0], "role": principal.role},
        )


def _ignore_body(_: bytes) -> None:
    return None


class AuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, store: Store) -> None:
        self.store = store
        self.authenticator = Authenticator(store)

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or METHOD_ROLES.get(method) is PUBLIC:
            return handler
        refusal: StigmerError | None = None
        principal = Principal("", "")
        try:
            principal = await self.authenticator.principal_of(
                handler_call_details.invocation_metadata
            )
            check_allowed(method, principal)
        except StigmerError as error:
            refusal = error
        except Exception as error:  # the store failed: refuse, never let it through
            refusal = Internal(f"cannot check the caller's token: {error}")
        # A refused caller's body is never parsed.
        deserializer = handler.request_deserializer if refusal is None else _ignore_body
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._guard_unary(method, principal, refusal, handler.unary_unary),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._guard_stream(method, principal, refusal, handler.unary_stream),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        return None  # no streaming-request methods exist; refuse any that appears

    async def _check_request(
        self, method: str, principal: Principal, refusal: StigmerError | None, request: Any
    ) -> None:
        if refusal is not None:
            raise refusal
        check_commands(method, principal, request)
        if principal.role == WORKER and method in WORKER_METHODS:
            await self._check_worker_holds(request.id)

    async def _check_worker_holds(self, execution_id: str) -> None:
        async with self.store.transaction(write=False) as transaction:
            lease = await transaction.get_lease(execution_id) if execution_id else None
        if lease is None or lease.owner != TEMPORAL_LEASE_OWNER:
            raise PermissionDenied(
                f"execution {execution_id!r} is not running on a worker this token may serve",
                facts={"field": "id"},
            )

    def _guard_unary(
        self, method: str, principal: Principal, refusal: StigmerError | None, behaviour: Any
    ) -> Any:
        async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await self._check_request(method, principal, refusal, request)
            token = current_principal.set(principal.name)
            try:
                return await behaviour(request, context)
            finally:
                current_principal.reset(token)

        return unary

    def _guard_stream(
        self, method: str, principal: Principal, refusal: StigmerError | None, behaviour: Any
    ) -> Any:
        async def stream(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            await self._check_request(method, principal, refusal, request)
            # Each call runs in its own task: no reset needed (see interceptors.py).
            current_principal.set(principal.name)
            async for item in behaviour(request, context):
                yield item

        return stream
