"""The asyncio SDK client.

    async with AsyncClient("127.0.0.1:7234") as client:
        results = await client.apply(open("agents.yaml").read())
        agent = await client.get("agent", "pr-reviewer")

Every method raises the StigmerError subclass the server raised
(`AlreadyExists`, `NotFound`, `Conflict`, ...), rebuilt from the status
details, and `Unavailable` when the server cannot be reached.
"""

from __future__ import annotations

import builtins
import inspect
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import grpc
from google.protobuf import struct_pb2
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from stigmer import config
from stigmer.api.v1 import (
    consistency_pb2,
    consistency_pb2_grpc,
    execution_pb2,
    execution_pb2_grpc,
    manifest_pb2,
    manifest_pb2_grpc,
    meta_pb2,
    run_policy_pb2,
    server_pb2,
    server_pb2_grpc,
    skill_pb2,
    token_pb2,
    token_pb2_grpc,
    usage_pb2,
    usage_pb2_grpc,
    watch_pb2,
    watch_pb2_grpc,
)
from stigmer.client.approvals import (
    ApprovalCallback,
    Decision,
    PendingRound,
    action_of,
    submission_order,
)
from stigmer.client.connection import open_channel, resolve_connection
from stigmer.client.rpc_errors import error_from_rpc
from stigmer.client.stubs import KIND_STUBS, KindStubs
from stigmer.errors import InvalidArgument, NotFound, StigmerError
from stigmer.message_limits import MAX_MESSAGE_BYTES, describe_bytes
from stigmer.resources.execution_events import apply_event
from stigmer.resources.kinds import KindInfo, kind_by_alias, kind_by_name
from stigmer.resources.manifests import ManifestDocument, in_apply_order, parse_manifest
from stigmer.resources.skill_archives import SkillContent
from stigmer.resources.slugs import VALID_SLUG, slugify

T = TypeVar("T")
OUTCOMES = {
    meta_pb2.APPLY_OUTCOME_CREATED: "created",
    meta_pb2.APPLY_OUTCOME_CONFIGURED: "configured",
    meta_pb2.APPLY_OUTCOME_UNCHANGED: "unchanged",
}
CASCADES = {
    "background": meta_pb2.CASCADE_POLICY_BACKGROUND,
    "orphan": meta_pb2.CASCADE_POLICY_ORPHAN,
}
_ID_PATTERN = re.compile(r"^[a-z]{3}-[0-9a-z]{26}$")
# Items per page the client asks for when it reads every page of a list.
PAGE_SIZE = 100
# Seconds a check or a repair may take: the server reads the whole store for
# it, paced so that it never stalls other requests, which on a large store
# takes minutes rather than the seconds any other call may take.
CONSISTENCY_TIMEOUT = 3600.0


@dataclass(frozen=True)
class ApplyResult:
    kind: str
    resource: Any
    outcome: str
    source: str = ""

    @property
    def name(self) -> str:
        name: str = self.resource.metadata.name
        return name


@dataclass(frozen=True)
class ResourceEvent:
    """One event of a watch: `type` is ADDED, MODIFIED, DELETED or BOOKMARK
    (no resource: everything up to `resource_version` has been sent).
    Resume a watch after `resource_version` to get what follows."""

    type: str
    resource_version: int
    resource: Any = None


def _event_of(message: watch_pb2.WatchEvent) -> ResourceEvent:
    field = message.WhichOneof("resource")
    return ResourceEvent(
        type=watch_pb2.WatchEventType.Name(message.type).removeprefix("WATCH_EVENT_TYPE_"),
        resource_version=message.resource_version,
        resource=getattr(message, field) if field is not None else None,
    )


def _kind(kind: str | KindInfo) -> KindInfo:
    return kind if isinstance(kind, KindInfo) else kind_by_alias(kind)


class AsyncClient:
    def __init__(
        self,
        address: str | None = None,
        *,
        timeout: float = 30.0,
        token: str | None = None,
        tls_ca: str | None = None,
    ) -> None:
        # No address: the one every command uses (config.server_address).
        self.address = config.server_address(address)
        self.timeout = timeout
        # No token or CA: the configured ones (client/connection.py).
        self.connection = resolve_connection(token, tls_ca)
        self._channel: grpc.aio.Channel | None = None
        self._stubs: dict[str, tuple[Any, Any]] = {}

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
            self._stubs.clear()

    @property
    def channel(self) -> grpc.aio.Channel:
        if self._channel is None:
            self._channel = open_channel(self.address, self.connection)
        return self._channel

    def _kind_stubs(self, kind: KindInfo) -> tuple[Any, Any, KindStubs]:
        stubs = KIND_STUBS.get(kind.name)
        if stubs is None:
            raise InvalidArgument.for_field("kind", f"{kind.name} has no resource service")
        if kind.name not in self._stubs:
            self._stubs[kind.name] = (stubs.command(self.channel), stubs.query(self.channel))
        command, query = self._stubs[kind.name]
        return command, query, stubs

    async def _call(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except grpc.RpcError as error:
            raise error_from_rpc(error, self.address, is_tls=self.connection.is_tls) from None

    # -- resources --------------------------------------------------------

    async def apply(
        self,
        manifest: str | Message | Iterable[Message],
        *,
        dry_run: bool = False,
        source: str = "<manifest>",
    ) -> list[ApplyResult]:
        """Creates or updates each resource, dependencies first.

        `manifest` is YAML text (one or more documents) or resource messages.

        Raises:
            InvalidArgument: the YAML or a resource is invalid (nothing of
                that resource is written).
            NotFound: a resource references one that does not exist.
        """
        if isinstance(manifest, str):
            documents = parse_manifest(manifest, source)
        else:
            messages = [manifest] if isinstance(manifest, Message) else list(manifest)
            documents = [
                ManifestDocument(kind_by_name(m.DESCRIPTOR.name), m, source, 0) for m in messages
            ]
        return await self.apply_documents(documents, dry_run=dry_run)

    async def apply_documents(
        self, documents: Iterable[ManifestDocument], *, dry_run: bool = False
    ) -> list[ApplyResult]:
        """Applies the documents, dependencies first, in one transaction:
        every resource is written or none is."""
        ordered = in_apply_order(documents)
        request = manifest_pb2.ApplyManifestRequest(dry_run=dry_run)
        for document in ordered:
            request.resources.add().Pack(document.resource)
        size = request.ByteSize()
        if size > MAX_MESSAGE_BYTES:
            raise InvalidArgument(
                f"the manifest is {describe_bytes(size)}, more than the "
                f"{describe_bytes(MAX_MESSAGE_BYTES)} one apply may carry: "
                "apply it in smaller files (each file is applied as one transaction)",
                facts={"size_bytes": str(size), "limit_bytes": str(MAX_MESSAGE_BYTES)},
            )
        stub = manifest_pb2_grpc.ManifestControllerStub(self.channel)
        try:
            response = await self._call(stub.Apply(request, timeout=self.timeout))
        except StigmerError as error:
            index = error.facts.get("resource_index", "")
            if index.isdigit() and int(index) < len(ordered):
                where = ordered[int(index)].where_of(error.facts.get("field", ""))
                error.message = f"{where}: {error.message}"
            raise
        results = []
        for document, result in zip(ordered, response.results, strict=True):
            resource = document.kind.new_message()
            result.resource.Unpack(resource)
            results.append(
                ApplyResult(document.kind.name, resource, OUTCOMES[result.outcome], document.where)
            )
        return results

    async def apply_one(
        self, resource: Any, *, dry_run: bool = False, source: str = ""
    ) -> ApplyResult:
        kind = kind_by_name(resource.DESCRIPTOR.name)
        command, _, stubs = self._kind_stubs(kind)
        request = stubs.apply_request(resource=resource, dry_run=dry_run)
        response = await self._call(command.Apply(request, timeout=self.timeout))
        return ApplyResult(kind.name, response.resource, OUTCOMES[response.outcome], source)

    async def create(self, resource: Any) -> Any:
        command, _, _ = self._kind_stubs(kind_by_name(resource.DESCRIPTOR.name))
        return await self._call(command.Create(resource, timeout=self.timeout))

    async def update(self, resource: Any) -> Any:
        command, _, _ = self._kind_stubs(kind_by_name(resource.DESCRIPTOR.name))
        return await self._call(command.Update(resource, timeout=self.timeout))

    async def get(self, kind: str | KindInfo, name_or_id: str, *, org: str = "") -> Any:
        """One resource by id, slug or name.

        Raises:
            NotFound: no such resource.
        """
        info = _kind(kind)
        _, query, _ = self._kind_stubs(info)
        if _is_id_of(info.prefix, name_or_id):
            try:
                return await self._call(
                    query.Get(meta_pb2.GetRequest(id=name_or_id), timeout=self.timeout)
                )
            except NotFound:
                if info.name != "Session":
                    raise
                # Sessions from before readable slugs have id-shaped slugs.
        reference = meta_pb2.ResourceReference(org=org, slug=_slug_of(name_or_id))
        return await self._call(query.GetByReference(reference, timeout=self.timeout))

    async def list(
        self,
        kind: str | KindInfo,
        *,
        labels: dict[str, str] | None = None,
        selector: str = "",
        org: str = "",
        page_size: int = PAGE_SIZE,
    ) -> builtins.list[Any]:
        """Every resource of a kind (all pages), optionally by labels.

        `selector` is a Kubernetes label selector (`team!=demo,tier in (a,b)`),
        parsed and evaluated by the server; `labels` pairs must all match too.

        Raises:
            InvalidArgument: the server cannot parse `selector` (field `selector`).
        """
        _, query, _ = self._kind_stubs(_kind(kind))
        request = meta_pb2.ListRequest(
            org=org, page_size=page_size, label_selector=labels or {}, selector=selector
        )
        return await self._all_pages(query.List, request)

    async def watch_resources(
        self,
        kind: str | KindInfo,
        *,
        labels: dict[str, str] | None = None,
        org: str = "",
        resource_version: int = 0,
        send_initial_list: bool = False,
    ) -> AsyncGenerator[ResourceEvent, None]:
        """A kind's changes as they commit, until the caller stops iterating.

        With `send_initial_list`, first an ADDED event for each current
        resource, then a BOOKMARK at the version that list was read at (list
        then watch, with no gap). Otherwise a BOOKMARK first, then the changes
        after `resource_version` (0: from now on).

        Raises:
            FailedPrecondition: `resource_version` is older than the changes
                the server keeps; list again and watch from there.
            InvalidArgument: unknown kind, or an initial list with a resource version.
            Unavailable: the server cannot be reached, or stopped.
        """
        info = _kind(kind)
        stub = watch_pb2_grpc.ResourceWatchQueryControllerStub(self.channel)
        request = watch_pb2.WatchRequest(
            kind=info.name,
            org=org,
            label_selector=labels or {},
            resource_version=resource_version,
            send_initial_list=send_initial_list,
        )
        stream = stub.Watch(request)
        try:
            async for message in stream:
                yield _event_of(message)
        except grpc.RpcError as error:
            raise error_from_rpc(error, self.address, is_tls=self.connection.is_tls) from None
        finally:
            stream.cancel()

    async def _all_pages(self, method: Any, request: Any) -> builtins.list[Any]:
        """Every item of a paginated list call, following next_page_token."""
        items: builtins.list[Any] = []
        while True:
            page = await self._call(method(request, timeout=self.timeout))
            items += page.items
            if not page.next_page_token:
                return items
            request.page_token = page.next_page_token

    async def _list_by_parent(self, kind: str, method: str, parent_id: str) -> builtins.list[Any]:
        _, query, _ = self._kind_stubs(kind_by_name(kind))
        request = meta_pb2.ListByParentRequest(parent_id=parent_id, page_size=PAGE_SIZE)
        return await self._all_pages(getattr(query, method), request)

    async def list_instances_by_agent(self, agent_id: str) -> builtins.list[Any]:
        return await self._list_by_parent("AgentInstance", "ListByAgent", agent_id)

    async def list_sessions_by_agent(self, agent_id: str) -> builtins.list[Any]:
        return await self._list_by_parent("Session", "ListByAgent", agent_id)

    async def list_sessions_by_instance(self, instance_id: str) -> builtins.list[Any]:
        return await self._list_by_parent("Session", "ListByAgentInstance", instance_id)

    async def delete(
        self,
        kind: str | KindInfo,
        name_or_id: str,
        *,
        cascade: str = "background",
        org: str = "",
        version: int = 0,
        force: bool = False,
    ) -> Any:
        """Deletes a resource and, unless cascade="orphan", what it owns.
        `force` deletes a skill that agents still refer to.

        Raises:
            NotFound: no such resource.
            Conflict: `version` is given and stale.
            FailedPrecondition: a skill agents refer to, without `force`.
        """
        info = _kind(kind)
        if cascade not in CASCADES:
            raise InvalidArgument.for_field("cascade", f"must be one of {', '.join(CASCADES)}")
        command, _, _ = self._kind_stubs(info)
        request = meta_pb2.DeleteRequest(cascade=CASCADES[cascade], version=version, force=force)
        if _is_id_of(info.prefix, name_or_id):
            request.id = name_or_id
            try:
                return await self._call(command.Delete(request, timeout=self.timeout))
            except NotFound:
                if info.name != "Session":
                    raise
                # Sessions from before readable slugs have id-shaped slugs.
        request.ref.CopyFrom(meta_pb2.ResourceReference(org=org, slug=_slug_of(name_or_id)))
        return await self._call(command.Delete(request, timeout=self.timeout))

    # -- skills -----------------------------------------------------------

    async def push_skill(
        self, content: SkillContent, *, name: str = "", tag: str = "", dry_run: bool = False
    ) -> skill_pb2.PushSkillResponse:
        """Pushes a skill folder's content (stigmer.resources.skill_archives.read_folder)
        as a version of the skill `name` (SKILL.md's name when empty); `tag`
        (else `latest`) moves to it.

        Raises:
            InvalidArgument: the server refused the archive or its SKILL.md.
        """
        command, _, _ = self._kind_stubs(kind_by_name("Skill"))
        request = skill_pb2.PushSkillRequest(
            name=name, tag=tag, archive=content.canonical_zip(), dry_run=dry_run
        )
        response: skill_pb2.PushSkillResponse = await self._call(
            command.Push(request, timeout=self.timeout)
        )
        return response

    # -- executions -------------------------------------------------------

    @property
    def _executions(self) -> tuple[Any, Any]:
        if "AgentExecution" not in self._stubs:
            self._stubs["AgentExecution"] = (
                execution_pb2_grpc.AgentExecutionCommandControllerStub(self.channel),
                execution_pb2_grpc.AgentExecutionQueryControllerStub(self.channel),
            )
        command, query = self._stubs["AgentExecution"]
        return command, query

    async def run(
        self,
        agent: str | None,
        message: str,
        *,
        session: str = "",
        instance: str = "",
        env: dict[str, str] | None = None,
        secrets: dict[str, str] | None = None,
        model: str = "",
        idempotency_key: str = "",
        reject_if_busy: bool = False,
        run_config: run_policy_pb2.RunConfig | None = None,
        auto_approve: bool = False,
        on_approval: ApprovalCallback | None = None,
    ) -> execution_pb2.AgentExecution:
        """Starts an execution and returns it (PENDING); follow it with `watch`.

        `run_config` is this execution's layer of the run settings (budgets,
        temperature, max_tokens): it may lower the agent's and the server's
        limits, never raise them.

        It runs in `session` (id or slug) when given, else in a new session
        on `instance` (id or slug), else in a new session on the agent's
        default instance. `agent` is a name, slug or id; with a session or
        an instance it may be None, and when given it must be theirs.

        `auto_approve` approves every call the tool policy would ask about
        (never a denied one). With `on_approval`, run follows the execution
        to its end as `wait(..., on_approval=)` does and returns its final
        state.

        Raises:
            NotFound: no such agent, session or instance.
            InvalidArgument: an empty message, neither agent nor session nor
                instance, or a session and an instance together.
            AlreadyExists: the idempotency key was used for another request.
            FailedPrecondition: the session or instance belongs to another
                agent, or the session is busy and reject_if_busy is set.
        """
        spec = execution_pb2.AgentExecutionSpec(
            message=message,
            idempotency_key=idempotency_key,
            auto_approve=auto_approve,
            execution_config=execution_pb2.ExecutionConfig(model_name=model),
            on_busy_session=(
                execution_pb2.BUSY_SESSION_POLICY_REJECT
                if reject_if_busy
                else execution_pb2.BUSY_SESSION_POLICY_QUEUE
            ),
        )
        if run_config is not None:
            spec.run_config.CopyFrom(run_config)
        if agent:
            is_id = _ID_PATTERN.match(agent) and agent.startswith("agt-")
            spec.agent_id = agent if is_id else (await self.get("agent", agent)).metadata.id
        if session:
            if _is_id_of("ses", session):
                spec.session_id = session
            else:
                spec.session_ref = _slug_of(session)
        if instance:
            if _is_id_of("ain", instance):
                spec.agent_instance_id = instance
            else:
                spec.agent_instance_ref = _slug_of(instance)
        for key, value in (env or {}).items():
            spec.runtime_env[key].CopyFrom(meta_pb2.EnvironmentValue(value=value))
        for key, value in (secrets or {}).items():
            spec.runtime_env[key].CopyFrom(meta_pb2.EnvironmentValue(value=value, is_secret=True))
        created = await self._create_execution_of(spec)
        if on_approval is None:
            return created
        return await self.wait(created.metadata.id, on_approval=on_approval)

    async def _create_execution_of(
        self, spec: execution_pb2.AgentExecutionSpec
    ) -> execution_pb2.AgentExecution:
        try:
            return await self._create_execution(spec)
        except NotFound as error:
            if error.facts.get("field") != "spec.session_id":
                raise
            # Sessions from before readable slugs have id-shaped slugs;
            # nothing was written, so asking again by slug is safe.
            by_slug = execution_pb2.AgentExecutionSpec()
            by_slug.CopyFrom(spec)
            by_slug.session_ref, by_slug.session_id = spec.session_id, ""
            try:
                return await self._create_execution(by_slug)
            except NotFound as again:
                if again.facts.get("field") == "spec.session_ref":
                    raise error from None
                raise

    async def _create_execution(
        self, spec: execution_pb2.AgentExecutionSpec
    ) -> execution_pb2.AgentExecution:
        command, _ = self._executions
        created: execution_pb2.AgentExecution = await self._call(
            command.Create(execution_pb2.AgentExecution(spec=spec), timeout=self.timeout)
        )
        return created

    async def get_execution(self, execution_id: str) -> execution_pb2.AgentExecution:
        _, query = self._executions
        found: execution_pb2.AgentExecution = await self._call(
            query.Get(meta_pb2.GetRequest(id=execution_id), timeout=self.timeout)
        )
        return found

    async def list_executions(
        self,
        *,
        phase: str = "",
        agent: str = "",
        session: str = "",
        selector: str = "",
        page_size: int = PAGE_SIZE,
    ) -> builtins.list[execution_pb2.AgentExecution]:
        """Executions, newest last, filtered by phase name, agent, session and a
        Kubernetes label selector.

        Raises:
            InvalidArgument: the server cannot parse `selector` (field `selector`).
            NotFound: no such agent.
        """
        _, query = self._executions
        request = execution_pb2.ListExecutionsRequest(
            page_size=page_size, session_id=session, selector=selector
        )
        if phase:
            request.phase = _phase_of(phase)
        if agent:
            request.agent_id = (await self.get("agent", agent)).metadata.id
        return await self._all_pages(query.List, request)

    async def cancel(self, execution_id: str, reason: str = "") -> execution_pb2.AgentExecution:
        command, _ = self._executions
        request = execution_pb2.CancelExecutionRequest(id=execution_id, reason=reason)
        cancelled: execution_pb2.AgentExecution = await self._call(
            command.Cancel(request, timeout=self.timeout)
        )
        return cancelled

    async def delete_execution(self, execution_id: str) -> execution_pb2.AgentExecution:
        command, _ = self._executions
        deleted: execution_pb2.AgentExecution = await self._call(
            command.Delete(meta_pb2.DeleteRequest(id=execution_id), timeout=self.timeout)
        )
        return deleted

    async def subscribe(
        self, execution_id: str, *, after_sequence: int = 0
    ) -> AsyncIterator[execution_pb2.ExecutionUpdate]:
        """The execution's updates: a snapshot first (after_sequence=0),
        then every change in order, ending when the execution ends."""
        _, query = self._executions
        request = execution_pb2.SubscribeExecutionRequest(
            id=execution_id, after_sequence=after_sequence
        )
        stream = query.Subscribe(request)
        try:
            async for update in stream:
                yield update
        except grpc.RpcError as error:
            raise error_from_rpc(error, self.address, is_tls=self.connection.is_tls) from None
        finally:
            stream.cancel()

    async def watch(
        self, execution_id: str
    ) -> AsyncGenerator[tuple[execution_pb2.AgentExecution, execution_pb2.ExecutionUpdate]]:
        """Like subscribe, but also yields the execution's state after each
        update, rebuilt with the same event rules the server applies."""
        state = execution_pb2.AgentExecution()
        async for update in self.subscribe(execution_id):
            apply_event(state, update.event, update.sequence)
            yield state, update

    async def wait(
        self, execution_id: str, *, on_approval: ApprovalCallback | None = None
    ) -> execution_pb2.AgentExecution:
        """Blocks until the execution ends; returns its final state.

        With `on_approval`, each time the execution waits for approval the
        callback gets every waiting call not yet put to it (all the calls of
        a turn at once) and returns Decisions (or awaits them), which are
        submitted before following on. Calls it leaves undecided keep
        waiting, for `stigmer approve` or another client.

        Raises:
            InvalidArgument: a decision names an unknown action or call, or
                its edited arguments do not fit the tool.
            FailedPrecondition: a call was meanwhile decided otherwise.
        """
        final = execution_pb2.AgentExecution()
        round_ = PendingRound()
        async for state, _ in self.watch(execution_id):
            final = state
            if on_approval is None:
                continue
            listed = (
                await self.get_execution(execution_id) if round_.needs_listing(state) else state
            )
            fresh = round_.take_new(listed)
            if not fresh:
                continue
            answer = on_approval(fresh)
            if inspect.isawaitable(answer):
                answer = await answer
            await self.submit_decisions(execution_id, answer or (), fresh)
        return final

    # -- approvals and the lifecycle of a run ---------------------------------

    async def submit_approval(
        self,
        execution_id: str,
        tool_call_id: str,
        action: str | int,
        *,
        comment: str = "",
        edited_args: dict[str, Any] | None = None,
    ) -> execution_pb2.AgentExecution:
        """Decides one waiting tool call: `approve`, `approve_all` (this
        call and every later call of the same server/tool in the execution),
        `skip`, `reject` (`comment` goes back to the model as the tool's
        result) or `edit` (run it with `edited_args`). Returns the execution
        after the decision; it goes on once every call of the turn is decided.

        Raises:
            InvalidArgument: an unknown action, an unknown tool call, or
                edited arguments the tool's input schema refuses.
            FailedPrecondition: the execution does not wait for approval, or
                the call was already decided otherwise (the same decision
                again returns the current state).
            NotFound: no such execution.
        """
        request = execution_pb2.SubmitApprovalRequest(
            execution_id=execution_id,
            tool_call_id=tool_call_id,
            action=action_of(action),
            comment=comment,
        )
        if edited_args is not None:
            request.edited_args.CopyFrom(_struct_of(edited_args))
        command, _ = self._executions
        decided: execution_pb2.AgentExecution = await self._call(
            command.SubmitApproval(request, timeout=self.timeout)
        )
        return decided

    async def approve(
        self, execution_id: str, tool_call_id: str, *, comment: str = "", all_calls: bool = False
    ) -> execution_pb2.AgentExecution:
        """Approves the call; `all_calls` also every later call of its
        server/tool in this execution. See submit_approval."""
        action = "approve_all" if all_calls else "approve"
        return await self.submit_approval(execution_id, tool_call_id, action, comment=comment)

    async def reject(
        self, execution_id: str, tool_call_id: str, comment: str = ""
    ) -> execution_pb2.AgentExecution:
        """The call is not run; `comment` is the tool's result for the
        model. See submit_approval."""
        return await self.submit_approval(execution_id, tool_call_id, "reject", comment=comment)

    async def skip(
        self, execution_id: str, tool_call_id: str, *, comment: str = ""
    ) -> execution_pb2.AgentExecution:
        """The call is not run; the model is told it was skipped. See
        submit_approval."""
        return await self.submit_approval(execution_id, tool_call_id, "skip", comment=comment)

    async def submit_decisions(
        self,
        execution_id: str,
        decisions: Iterable[Decision],
        pending: builtins.list[execution_pb2.PendingApproval] | None = None,
    ) -> execution_pb2.AgentExecution | None:
        """Submits the decisions, approve-all ones first and then in the
        order of `pending`; a call an approve-all has meanwhile settled is
        not decided again. Returns the execution after the last one (None
        when there were none).

        Raises:
            See submit_approval.
        """
        latest: execution_pb2.AgentExecution | None = None
        has_approved_all = False
        for decision in submission_order(decisions, pending or []):
            if (
                has_approved_all
                and latest is not None
                and not _is_waiting_on(latest, decision.tool_call_id)
            ):
                continue
            has_approved_all = has_approved_all or decision.action == "approve_all"
            latest = await self.submit_approval(
                execution_id,
                decision.tool_call_id,
                decision.action,
                comment=decision.comment,
                edited_args=dict(decision.edited_args)
                if decision.edited_args is not None
                else None,
            )
        return latest

    async def _lifecycle(
        self, method: str, execution_id: str, reason: str
    ) -> execution_pb2.AgentExecution:
        command, _ = self._executions
        request = execution_pb2.ExecutionLifecycleRequest(id=execution_id, reason=reason)
        changed: execution_pb2.AgentExecution = await self._call(
            getattr(command, method)(request, timeout=self.timeout)
        )
        return changed

    async def pause(self, execution_id: str, reason: str = "") -> execution_pb2.AgentExecution:
        """Pauses a PENDING or IN_PROGRESS execution at the next point
        between a model call and a tool call (status.is_pause_requested
        until then); nothing runs while it is PAUSED. Already paused: a no-op.

        Raises:
            FailedPrecondition: it is in a phase it cannot pause from.
            NotFound: no such execution.
        """
        return await self._lifecycle("Pause", execution_id, reason)

    async def resume(self, execution_id: str, reason: str = "") -> execution_pb2.AgentExecution:
        """Continues a PAUSED execution where it stopped.

        Raises:
            FailedPrecondition: it is not paused (and not already running).
            NotFound: no such execution.
        """
        return await self._lifecycle("Resume", execution_id, reason)

    async def terminate(self, execution_id: str, reason: str = "") -> execution_pb2.AgentExecution:
        """Ends the execution now as TERMINATED, without waiting for the
        work in flight (unlike cancel); what was recorded is kept.

        Raises:
            FailedPrecondition: it has already ended otherwise.
            NotFound: no such execution.
        """
        return await self._lifecycle("Terminate", execution_id, reason)

    async def recover(self, execution_id: str, reason: str = "") -> execution_pb2.AgentExecution:
        """Continues a FAILED execution from its recorded conversation;
        completed tool calls are not run again, and the attempt is recorded
        in status.attempts.

        Raises:
            FailedPrecondition: it has not failed.
            NotFound: no such execution.
        """
        return await self._lifecycle("Recover", execution_id, reason)

    # -- consistency ------------------------------------------------------

    @property
    def _consistency(self) -> Any:
        # Made per call, like the server-info stub: these calls are rare.
        return consistency_pb2_grpc.ConsistencyControllerStub(self.channel)

    async def check(self) -> consistency_pb2.ConsistencyReport:
        """Every broken invariant of the store (see `stigmer check`)."""
        report: consistency_pb2.ConsistencyReport = await self._call(
            self._consistency.Check(
                consistency_pb2.CheckRequest(), timeout=max(self.timeout, CONSISTENCY_TIMEOUT)
            )
        )
        return report

    async def repair(
        self, *, dry_run: bool = False, orphans: str = "keep"
    ) -> consistency_pb2.RepairReport:
        """Fixes what can be fixed; `orphans="delete"` also deletes orphans."""
        policies = {
            "keep": consistency_pb2.ORPHAN_POLICY_KEEP,
            "delete": consistency_pb2.ORPHAN_POLICY_DELETE,
        }
        if orphans not in policies:
            raise InvalidArgument.for_field("orphans", "must be keep or delete")
        request = consistency_pb2.RepairRequest(dry_run=dry_run, orphans=policies[orphans])
        report: consistency_pb2.RepairReport = await self._call(
            self._consistency.Repair(request, timeout=max(self.timeout, CONSISTENCY_TIMEOUT))
        )
        return report

    async def last_report(self) -> consistency_pb2.ConsistencyReport:
        """The server's periodic checker's latest report."""
        report: consistency_pb2.ConsistencyReport = await self._call(
            self._consistency.GetLastReport(
                consistency_pb2.GetLastReportRequest(), timeout=self.timeout
            )
        )
        return report

    # -- the server itself -----------------------------------------------

    async def server_info(self) -> server_pb2.ServerInfo:
        """The server's version, pid, address, store, engine and default model.

        Raises:
            Unavailable: no server answers on the address within the
                client's timeout.
        """
        stub = server_pb2_grpc.ServerInfoQueryControllerStub(self.channel)
        info: server_pb2.ServerInfo = await self._call(
            stub.GetInfo(server_pb2.GetServerInfoRequest(), timeout=self.timeout)
        )
        return info

    # -- usage -------------------------------------------------------------

    async def usage(
        self,
        *,
        agent: str = "",
        session: str = "",
        since: datetime | None = None,
        group_by: str = "day",
        org: str = "",
    ) -> usage_pb2.UsageReport:
        """What model calls used and cost: the total, the breakdown by
        `group_by` (agent, model or day) and the days; only `agent`'s
        (name, slug or id), only `session`'s, only since `since` when given.

        Raises:
            InvalidArgument: an unknown grouping.
            NotFound: no such agent.
        """
        groupings = {
            "agent": usage_pb2.USAGE_GROUPING_AGENT,
            "model": usage_pb2.USAGE_GROUPING_MODEL,
            "day": usage_pb2.USAGE_GROUPING_DAY,
        }
        if group_by not in groupings:
            raise InvalidArgument.for_field("group_by", "use agent, model or day")
        request = usage_pb2.GetUsageRequest(
            org=org, session_id=session, group_by=groupings[group_by]
        )
        if agent:
            if _is_id_of("agt", agent):
                request.agent_id = agent
            else:
                request.agent_ref = _slug_of(agent)
        if since is not None:
            request.since.FromDatetime(since)
        stub = usage_pb2_grpc.UsageQueryControllerStub(self.channel)
        report: usage_pb2.UsageReport = await self._call(
            stub.GetUsage(request, timeout=self.timeout)
        )
        return report

    # -- access tokens (admin only) ----------------------------------------

    async def create_token(self, name: str, role: str) -> token_pb2.CreatedToken:
        """Makes a token; its secret is in the answer and nowhere else.

        Raises:
            InvalidArgument: the name or role is invalid.
            AlreadyExists: a valid token has that name.
            PermissionDenied: the caller is not an admin.
        """
        created: token_pb2.CreatedToken = await self._call(
            self._tokens.Create(
                token_pb2.CreateTokenRequest(name=name, role=role), timeout=self.timeout
            )
        )
        return created

    async def list_tokens(self) -> builtins.list[token_pb2.AccessToken]:
        """Every token, revoked ones too (never their secrets)."""
        listed: token_pb2.AccessTokenList = await self._call(
            self._tokens.List(token_pb2.ListTokensRequest(), timeout=self.timeout)
        )
        return list(listed.items)

    async def revoke_token(self, name: str) -> token_pb2.AccessToken:
        """Revokes a token at once.

        Raises:
            NotFound: no token has that name.
        """
        revoked: token_pb2.AccessToken = await self._call(
            self._tokens.Revoke(token_pb2.RevokeTokenRequest(name=name), timeout=self.timeout)
        )
        return revoked

    @property
    def _tokens(self) -> Any:
        return token_pb2_grpc.TokenControllerStub(self.channel)

    async def check_reachable(self) -> None:
        """Asks the server's health service once.

        Raises:
            Unavailable: the server cannot be reached, or not verified over
                TLS (the message says which).
        """
        stub = health_pb2_grpc.HealthStub(self.channel)
        await self._call(
            stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=self.timeout)
        )

    async def is_serving(self, *, wait_seconds: float = 2.0) -> bool:
        stub = health_pb2_grpc.HealthStub(self.channel)
        try:
            response = await stub.Check(
                health_pb2.HealthCheckRequest(service=""), timeout=wait_seconds
            )
        except grpc.RpcError:
            return False
        return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


PHASE_NAMES = tuple(
    name.removeprefix("EXECUTION_PHASE_").lower()
    for name, _ in execution_pb2.ExecutionPhase.items()
    if name != "EXECUTION_PHASE_UNSPECIFIED"
)


def _phase_of(name: str) -> execution_pb2.ExecutionPhase.ValueType:
    normalized = name.lower().replace("-", "_")
    if normalized not in PHASE_NAMES:
        phases = ", ".join(PHASE_NAMES)
        raise InvalidArgument.for_field("phase", f"unknown phase {name!r} ({phases})")
    return execution_pb2.ExecutionPhase.Value("EXECUTION_PHASE_" + normalized.upper())


def _struct_of(values: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    try:
        struct.update(values)
    except (TypeError, ValueError) as error:
        raise InvalidArgument.for_field("edited_args", f"not JSON-like values: {error}") from None
    return struct


def _is_waiting_on(execution: execution_pb2.AgentExecution, tool_call_id: str) -> bool:
    return any(p.tool_call_id == tool_call_id for p in execution.status.pending_approvals)


def _is_id_of(prefix: str, name_or_id: str) -> bool:
    return bool(_ID_PATTERN.match(name_or_id)) and name_or_id.startswith(prefix + "-")


def _slug_of(name_or_slug: str) -> str:
    if VALID_SLUG.match(name_or_slug):
        return name_or_slug
    slug = slugify(name_or_slug)
    if not slug:
        raise InvalidArgument.for_field("name", f"{name_or_slug!r} names no resource")
    return slug
