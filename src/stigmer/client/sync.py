"""The synchronous SDK client: the AsyncClient driven by a private loop.

    with Client() as client:
        for result in client.apply(Path("agents.yaml").read_text()):
            print(result.kind, result.name, result.outcome)

Use AsyncClient from async code; this client cannot run inside a running
event loop. Ctrl-C (KeyboardInterrupt) during a call cancels what the call
was waiting for before it propagates (an interrupted `watch` cancels its
stream), so the client stays usable, to cancel the execution for instance.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Generator, Iterable
from datetime import datetime
from typing import Any, TypeVar

from google.protobuf.message import Message

from stigmer.api.v1 import (
    consistency_pb2,
    execution_pb2,
    run_policy_pb2,
    server_pb2,
    skill_pb2,
    token_pb2,
    usage_pb2,
)
from stigmer.client.aio import PAGE_SIZE, ApplyResult, AsyncClient, ResourceEvent
from stigmer.client.approvals import ApprovalCallback, Decision, PendingRound
from stigmer.errors import InvalidArgument
from stigmer.resources.kinds import KindInfo
from stigmer.resources.manifests import ManifestDocument
from stigmer.resources.skill_archives import SkillContent

T = TypeVar("T")


class Client:
    def __init__(
        self,
        address: str | None = None,
        *,
        timeout: float = 30.0,
        token: str | None = None,
        tls_ca: str | None = None,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._async = AsyncClient(address, timeout=timeout, token=token, tls_ca=tls_ca)

    @property
    def address(self) -> str:
        return self._async.address

    def _run(self, awaitable: Awaitable[T]) -> T:
        task = asyncio.ensure_future(awaitable, loop=self._loop)
        try:
            return self._loop.run_until_complete(task)
        except BaseException:
            # Ctrl-C (KeyboardInterrupt) stops the loop with the task still
            # suspended in it: cancel it and let it unwind (a gRPC stream
            # cancels its call on the way), so the client stays usable and
            # nothing is left pending for the interpreter to complain about.
            self._settle(task)
            raise

    def _settle(self, task: asyncio.Future[T]) -> None:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                self._loop.run_until_complete(task)
        if task.done() and not task.cancelled():
            # Marks the exception as retrieved ("Task exception was never retrieved").
            task.exception()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._loop.is_closed():
            self._run(self._async.close())
            self._loop.close()

    def apply(
        self,
        manifest: str | Message | Iterable[Message],
        *,
        dry_run: bool = False,
        source: str = "<manifest>",
    ) -> list[ApplyResult]:
        """See AsyncClient.apply."""
        return self._run(self._async.apply(manifest, dry_run=dry_run, source=source))

    def apply_documents(
        self, documents: Iterable[ManifestDocument], *, dry_run: bool = False
    ) -> list[ApplyResult]:
        return self._run(self._async.apply_documents(documents, dry_run=dry_run))

    def apply_one(self, resource: Any, *, dry_run: bool = False, source: str = "") -> ApplyResult:
        return self._run(self._async.apply_one(resource, dry_run=dry_run, source=source))

    def create(self, resource: Any) -> Any:
        return self._run(self._async.create(resource))

    def update(self, resource: Any) -> Any:
        return self._run(self._async.update(resource))

    def get(self, kind: str | KindInfo, name_or_id: str, *, org: str = "") -> Any:
        """See AsyncClient.get."""
        return self._run(self._async.get(kind, name_or_id, org=org))

    def list(
        self,
        kind: str | KindInfo,
        *,
        labels: dict[str, str] | None = None,
        selector: str = "",
        org: str = "",
        page_size: int = PAGE_SIZE,
    ) -> builtins.list[Any]:
        """See AsyncClient.list."""
        return self._run(
            self._async.list(kind, labels=labels, selector=selector, org=org, page_size=page_size)
        )

    def watch_resources(
        self,
        kind: str | KindInfo,
        *,
        labels: dict[str, str] | None = None,
        org: str = "",
        resource_version: int = 0,
        send_initial_list: bool = False,
    ) -> Generator[ResourceEvent]:
        """See AsyncClient.watch_resources."""
        return self._iterate(
            self._async.watch_resources(
                kind,
                labels=labels,
                org=org,
                resource_version=resource_version,
                send_initial_list=send_initial_list,
            )
        )

    def list_instances_by_agent(self, agent_id: str) -> builtins.list[Any]:
        return self._run(self._async.list_instances_by_agent(agent_id))

    def list_sessions_by_agent(self, agent_id: str) -> builtins.list[Any]:
        return self._run(self._async.list_sessions_by_agent(agent_id))

    def list_sessions_by_instance(self, instance_id: str) -> builtins.list[Any]:
        return self._run(self._async.list_sessions_by_instance(instance_id))

    def delete(
        self,
        kind: str | KindInfo,
        name_or_id: str,
        *,
        cascade: str = "background",
        org: str = "",
        version: int = 0,
        force: bool = False,
    ) -> Any:
        """See AsyncClient.delete."""
        return self._run(
            self._async.delete(
                kind, name_or_id, cascade=cascade, org=org, version=version, force=force
            )
        )

    def push_skill(
        self, content: SkillContent, *, name: str = "", tag: str = "", dry_run: bool = False
    ) -> skill_pb2.PushSkillResponse:
        """See AsyncClient.push_skill."""
        return self._run(self._async.push_skill(content, name=name, tag=tag, dry_run=dry_run))

    # -- executions -------------------------------------------------------

    def run(
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
        """See AsyncClient.run; with `on_approval` it follows the execution
        to its end (see `wait`) and returns its final state."""
        created = self._run(
            self._async.run(
                agent,
                message,
                session=session,
                instance=instance,
                env=env,
                secrets=secrets,
                model=model,
                idempotency_key=idempotency_key,
                reject_if_busy=reject_if_busy,
                run_config=run_config,
                auto_approve=auto_approve,
            )
        )
        if on_approval is None:
            return created
        return self.wait(created.metadata.id, on_approval=on_approval)

    def get_execution(self, execution_id: str) -> execution_pb2.AgentExecution:
        return self._run(self._async.get_execution(execution_id))

    def list_executions(
        self,
        *,
        phase: str = "",
        agent: str = "",
        session: str = "",
        selector: str = "",
        page_size: int = PAGE_SIZE,
    ) -> builtins.list[execution_pb2.AgentExecution]:
        """See AsyncClient.list_executions."""
        return self._run(
            self._async.list_executions(
                phase=phase, agent=agent, session=session, selector=selector, page_size=page_size
            )
        )

    def cancel(self, execution_id: str, reason: str = "") -> execution_pb2.AgentExecution:
        return self._run(self._async.cancel(execution_id, reason))

    def delete_execution(self, execution_id: str) -> execution_pb2.AgentExecution:
        return self._run(self._async.delete_execution(execution_id))

    def subscribe(
        self, execution_id: str, *, after_sequence: int = 0
    ) -> Generator[execution_pb2.ExecutionUpdate]:
        """See AsyncClient.subscribe."""
        return self._iterate(self._async.subscribe(execution_id, after_sequence=after_sequence))

    def watch(
        self, execution_id: str
    ) -> Generator[tuple[execution_pb2.AgentExecution, execution_pb2.ExecutionUpdate]]:
        """See AsyncClient.watch; `close()` it to stop early (the stream is
        cancelled)."""
        return self._iterate(self._async.watch(execution_id))

    def wait(
        self,
        execution_id: str,
        *,
        timeout: float | None = None,
        on_approval: ApprovalCallback | None = None,
    ) -> execution_pb2.AgentExecution:
        """Blocks until the execution ends; returns its final state.

        With `on_approval`, see AsyncClient.wait: the callback gets the
        waiting calls of each turn once and its decisions are submitted.

        Raises:
            TimeoutError: it has not ended within `timeout` seconds.
            InvalidArgument, FailedPrecondition: a decision was refused (see
                submit_approval).
        """
        if on_approval is None:
            return self._run(asyncio.wait_for(self._async.wait(execution_id), timeout))
        deadline = None if timeout is None else time.monotonic() + timeout
        final = execution_pb2.AgentExecution()
        round_ = PendingRound()
        updates = self._async.watch(execution_id)
        try:
            while True:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    final, _ = self._run(asyncio.wait_for(anext(updates), remaining))
                except StopAsyncIteration:
                    return final
                listed = self.get_execution(execution_id) if round_.needs_listing(final) else final
                fresh = round_.take_new(listed)
                if fresh:
                    # Called between updates, with no event loop running: it
                    # may block (ask a person) for as long as it needs.
                    answer = on_approval(fresh)
                    if inspect.isawaitable(answer):
                        raise InvalidArgument.for_field(
                            "on_approval", "the sync Client needs decisions, not an awaitable"
                        )
                    self.submit_decisions(execution_id, answer or (), fresh)
        finally:
            if not self._loop.is_closed():
                self._run(updates.aclose())

    # -- approvals and the lifecycle of a run ---------------------------------

    def submit_approval(
        self,
        execution_id: str,
        tool_call_id: str,
        action: str | int,
        *,
        comment: str = "",
        edited_args: dict[str, Any] | None = None,
    ) -> execution_pb2.AgentExecution:
        """See AsyncClient.submit_approval."""
        return self._run(
            self._async.submit_approval(
                execution_id, tool_call_id, action, comment=comment, edited_args=edited_args
            )
        )

    def approve(
        self, execution_id: str, tool_call_id: str, *, comment: str = "", all_calls: bool = False
    ) -> execution_pb2.AgentExecution:
        """See AsyncClient.approve."""
        return self._run(
            self._async.approve(execution_id, tool_call_id, comment=comment, all_calls=all_calls)
        )

    def reject(
        self, execution_id: str, tool_call_id: str, comment: str = ""
    ) -> execution_pb2.AgentExecution:
        """See AsyncClient.reject."""
        return self._run(self._async.reject(execution_id, tool_call_id, comment))

    def skip(
        self, execution_id: str, tool_call_id: str, *, comment: str = ""
    ) -> execution_pb2.AgentExecution:
        """See AsyncClient.skip."""
        return self._run(self._async.skip(execution_id, tool_call_id, comment=comment))

    def submit_decisions(
        self,
        execution_id: str,
        decisions: Iterable[Decision],
        pending: builtins.list[execution_pb2.PendingApproval] | None = None,
    ) -> execution_pb2.AgentExecution | None:
        """See AsyncClient.submit_decisions."""
        return self._run(self._async.submit_decisions(execution_id, decisions, pending))

    def pause(self, execution_id: str, reason: str = "") -> execution_pb2.AgentExecution:
        """See AsyncClient.pause."""
        return self._run(self._async.pause(execution_id, reason))

    def resume(self, execution_id: str, reason: str = "") -> execution_pb2.AgentExecution:
        """See AsyncClient.resume."""
        return self._run(self._async.resume(execution_id, reason))

    def terminate(self, execution_id: str, reason: str = "") -> execution_pb2.AgentExecution:
        """See AsyncClient.terminate."""
        return self._run(self._async.terminate(execution_id, reason))

    def recover(self, execution_id: str, reason: str = "") -> execution_pb2.AgentExecution:
        """See AsyncClient.recover."""
        return self._run(self._async.recover(execution_id, reason))

    def _iterate(self, stream: AsyncIterator[T]) -> Generator[T]:
        iterator = aiter(stream)
        try:
            while True:
                try:
                    yield self._run(anext(iterator))
                except StopAsyncIteration:
                    return
        finally:
            close = getattr(iterator, "aclose", None)
            if close is not None and not self._loop.is_closed():
                self._run(close())

    def check(self) -> consistency_pb2.ConsistencyReport:
        """See AsyncClient.check."""
        return self._run(self._async.check())

    def repair(
        self, *, dry_run: bool = False, orphans: str = "keep"
    ) -> consistency_pb2.RepairReport:
        """See AsyncClient.repair."""
        return self._run(self._async.repair(dry_run=dry_run, orphans=orphans))

    def last_report(self) -> consistency_pb2.ConsistencyReport:
        return self._run(self._async.last_report())

    def server_info(self) -> server_pb2.ServerInfo:
        """See AsyncClient.server_info."""
        return self._run(self._async.server_info())

    def usage(
        self,
        *,
        agent: str = "",
        session: str = "",
        since: datetime | None = None,
        group_by: str = "day",
        org: str = "",
    ) -> usage_pb2.UsageReport:
        """See AsyncClient.usage."""
        return self._run(
            self._async.usage(agent=agent, session=session, since=since, group_by=group_by, org=org)
        )

    def create_token(self, name: str, role: str) -> token_pb2.CreatedToken:
        """See AsyncClient.create_token."""
        return self._run(self._async.create_token(name, role))

    def list_tokens(self) -> builtins.list[token_pb2.AccessToken]:
        return self._run(self._async.list_tokens())

    def revoke_token(self, name: str) -> token_pb2.AccessToken:
        """See AsyncClient.revoke_token."""
        return self._run(self._async.revoke_token(name))

    def check_reachable(self) -> None:
        self._run(self._async.check_reachable())

    def is_serving(self, *, wait_seconds: float = 2.0) -> bool:
        return self._run(self._async.is_serving(wait_seconds=wait_seconds))
