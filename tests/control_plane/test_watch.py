"""Watching a kind over the Watch RPC, on both stores: the events of other
clients' writes, in order; resuming after a resource version; the initial
list; selectors; what a rolled-back write and a compacted log look like."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing

import pytest

from stigmer.client import AsyncClient, Client, ResourceEvent
from stigmer.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from stigmer.resources.execution_events import COMPLETED, phase_name
from stigmer.store.urls import store_from_url
from stigmer.testing.scripted_model import Reply, ScriptedModel
from stigmer.testing.server import ServerThread
from tests.agents import PLAIN_AGENT
from tests.backends import engine_options

# Generous: an event is pushed at once on commit, or found by the poll within a second.
EVENT_DEADLINE = 10.0


def environment(name: str, *, region: str = "eu", labels: str = "{}") -> str:
    return f"""\
apiVersion: agentic.stigmer.ai/v1
kind: Environment
metadata: {{name: {name}, labels: {labels}}}
spec:
  data:
    REGION: {{value: {region}}}
    TOKEN: {{value: s3cret-{name}, is_secret: true}}
"""


async def next_event(events: AsyncGenerator[ResourceEvent, None]) -> ResourceEvent:
    async with asyncio.timeout(EVENT_DEADLINE):
        return await anext(events)


async def next_events(
    events: AsyncGenerator[ResourceEvent, None], count: int
) -> list[ResourceEvent]:
    return [await next_event(events) for _ in range(count)]


def summary(events: list[ResourceEvent]) -> list[tuple[str, str]]:
    return [(e.type, e.resource.metadata.slug if e.resource is not None else "") for e in events]


async def established(events: AsyncGenerator[ResourceEvent, None]) -> int:
    """Waits for the watch's first BOOKMARK; returns its resource version."""
    event = await next_event(events)
    assert event.type == "BOOKMARK"
    return event.resource_version


def run_with_clients(
    server: ServerThread, scenario: Callable[[AsyncClient, AsyncClient], Awaitable[None]]
) -> None:
    """Runs the scenario with a watching client and a writing client of the server."""

    async def main() -> None:
        async with AsyncClient(server.address) as watching, AsyncClient(server.address) as writing:
            await scenario(watching, writing)

    asyncio.run(main())


def test_watch_sends_added_modified_deleted_for_another_clients_writes_in_order(
    server: ServerThread,
) -> None:
    async def scenario(watching: AsyncClient, writing: AsyncClient) -> None:
        async with aclosing(watching.watch_resources("environments")) as events:
            start = await established(events)
            await writing.apply(environment("prod"))
            await writing.apply(environment("prod", region="us"))
            await writing.apply(environment("staging"))
            await writing.delete("environment", "prod")
            received = await next_events(events, 4)
        assert summary(received) == [
            ("ADDED", "prod"),
            ("MODIFIED", "prod"),
            ("ADDED", "staging"),
            ("DELETED", "prod"),
        ]
        versions = [e.resource_version for e in received]
        assert start < versions[0] and versions == sorted(set(versions))
        assert received[1].resource.spec.data["REGION"].value == "us"
        # DELETED carries the last state; secrets are masked in every event.
        assert received[3].resource.spec.data["REGION"].value == "us"
        assert {e.resource.spec.data["TOKEN"].value for e in received} == {"***"}

    run_with_clients(server, scenario)


def test_resuming_after_a_resource_version_sends_exactly_the_changes_after_it(
    server: ServerThread,
) -> None:
    async def scenario(watching: AsyncClient, writing: AsyncClient) -> None:
        async with aclosing(watching.watch_resources("env")) as events:
            await established(events)
            await writing.apply(environment("first"))
            seen = await next_event(events)
        # Disconnected: these happen while nobody watches.
        await writing.apply(environment("second"))
        await writing.apply(environment("first", region="us"))
        await writing.delete("environment", "second")
        resumed = watching.watch_resources("env", resource_version=seen.resource_version)
        async with aclosing(resumed) as events:
            bookmark = await next_event(events)
            missed = await next_events(events, 3)
            await writing.apply(environment("third"))
            live = await next_event(events)
        assert (bookmark.type, bookmark.resource_version) == ("BOOKMARK", seen.resource_version)
        assert summary(missed) == [
            ("ADDED", "second"),
            ("MODIFIED", "first"),
            ("DELETED", "second"),
        ]
        # Nothing repeated, nothing in between: the next event is the new write.
        assert summary([live]) == [("ADDED", "third")]
        assert live.resource_version > missed[-1].resource_version

    run_with_clients(server, scenario)


def test_initial_list_then_bookmark_then_changes_leaves_no_gap(server: ServerThread) -> None:
    async def scenario(watching: AsyncClient, writing: AsyncClient) -> None:
        await writing.apply(environment("alpha") + "---\n" + environment("beta"))
        watch = watching.watch_resources("environment", send_initial_list=True)
        async with aclosing(watch) as events:
            listed = await next_events(events, 3)
            await writing.apply(environment("gamma"))
            after = await next_event(events)
        assert summary(listed) == [("ADDED", "alpha"), ("ADDED", "beta"), ("BOOKMARK", "")]
        assert {e.resource_version for e in listed} == {listed[-1].resource_version}
        assert summary([after]) == [("ADDED", "gamma")]
        assert after.resource_version > listed[-1].resource_version
        assert listed[0].resource.spec.data["TOKEN"].value == "***"

    run_with_clients(server, scenario)


def test_label_selector_sends_only_matching_resources(server: ServerThread) -> None:
    async def scenario(watching: AsyncClient, writing: AsyncClient) -> None:
        watch = watching.watch_resources("environment", labels={"team": "red"})
        async with aclosing(watch) as events:
            await established(events)
            await writing.apply(environment("blue-one", labels="{team: blue}"))
            await writing.apply(environment("unlabelled"))
            await writing.apply(environment("red-one", labels="{team: red}"))
            first = await next_event(events)
        assert summary([first]) == [("ADDED", "red-one")]

    run_with_clients(server, scenario)


def test_a_manifest_rolled_back_by_its_invalid_second_document_sends_no_event(
    server: ServerThread,
) -> None:
    broken = (
        environment("written-then-rolled-back")
        + """---
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata: {name: broken}
spec:
  instructions: Use a tool server that does not exist.
  mcp_servers: [{ref: missing}]
"""
    )

    async def scenario(watching: AsyncClient, writing: AsyncClient) -> None:
        async with aclosing(watching.watch_resources("environment")) as events:
            await established(events)
            with pytest.raises(NotFound):
                await writing.apply(broken)
            await writing.apply(environment("after"))
            first = await next_event(events)
        assert summary([first]) == [("ADDED", "after")]

    run_with_clients(server, scenario)


def test_watch_from_a_compacted_resource_version_is_failed_precondition_saying_list_again(
    server: ServerThread, store_url: str
) -> None:
    async def compact(keep: int) -> int:
        store = store_from_url(store_url)
        await store.open()
        try:
            async with store.transaction() as tx:
                return await tx.compact_changes(keep)
        finally:
            await store.close()

    async def scenario(watching: AsyncClient, writing: AsyncClient) -> None:
        for name in ("one", "two", "three"):
            await writing.apply(environment(name))
        horizon = await compact(keep=1)
        with pytest.raises(FailedPrecondition, match="too old") as raised:
            async with aclosing(watching.watch_resources("env", resource_version=1)) as events:
                await next_event(events)
        assert "list again" in raised.value.message
        assert raised.value.facts["oldest_resource_version"] == str(horizon)
        # From the horizon on, the watch works: the newest kept change follows.
        watch = watching.watch_resources("env", resource_version=horizon)
        async with aclosing(watch) as events:
            received = await next_events(events, 2)
        assert summary(received) == [("BOOKMARK", ""), ("ADDED", "three")]

    run_with_clients(server, scenario)


def test_initial_list_with_a_resource_version_is_invalid_argument(server: ServerThread) -> None:
    async def scenario(watching: AsyncClient, _: AsyncClient) -> None:
        watch = watching.watch_resources("env", resource_version=3, send_initial_list=True)
        with pytest.raises(InvalidArgument, match="resource_version"):
            async with aclosing(watch) as events:
                await next_event(events)

    run_with_clients(server, scenario)


def test_writes_through_another_server_on_the_same_store_reach_the_watcher(
    server: ServerThread, store_url: str
) -> None:
    with ServerThread(store_url) as other:

        async def main() -> None:
            async with (
                AsyncClient(server.address) as watching,
                AsyncClient(other.address) as writing,
            ):
                async with aclosing(watching.watch_resources("environment")) as events:
                    await established(events)
                    await writing.apply(environment("elsewhere"))
                    received = await next_event(events)
                assert summary([received]) == [("ADDED", "elsewhere")]

        asyncio.run(main())


def test_stopping_the_server_ends_its_watches_promptly_as_unavailable(
    store_url: str,
) -> None:
    with ServerThread(store_url) as running:

        async def main() -> None:
            async with (
                AsyncClient(running.address) as watching,
                aclosing(watching.watch_resources("environment")) as events,
            ):
                await established(events)
                await asyncio.get_running_loop().run_in_executor(None, running.stop)
                with pytest.raises(Unavailable):
                    await next_event(events)

        asyncio.run(main())


def test_watching_executions_shows_each_phase_change_but_not_every_streamed_chunk(
    store_url: str,
) -> None:
    long_answer = " ".join(f"word{n}" for n in range(200))  # streamed in many chunks
    with ScriptedModel() as model:
        model.add(Reply(content=long_answer))
        with ServerThread(store_url, engine=engine_options(model.base_url)) as running:

            async def main() -> list[ResourceEvent]:
                async with (
                    AsyncClient(running.address) as watching,
                    AsyncClient(running.address) as writing,
                ):
                    await writing.apply(PLAIN_AGENT)
                    received: list[ResourceEvent] = []
                    async with aclosing(watching.watch_resources("executions")) as events:
                        await established(events)
                        await writing.run("greeter", "Hello there")
                        while not received or received[-1].resource.status.phase != COMPLETED:
                            received.append(await next_event(events))
                    return received

            received = asyncio.run(main())
    phases = [phase_name(e.resource.status.phase) for e in received]
    assert received[0].type == "ADDED" and phases[0] == "PENDING"
    assert {e.type for e in received[1:]} == {"MODIFIED"}
    assert phases[-1] == "COMPLETED" and "IN_PROGRESS" in phases
    # A handful of events (phases, new messages), not one per recorded update.
    assert len(received) <= 5 < received[-1].resource.status.last_sequence
    assert received[-1].resource.status.messages[-1].content == long_answer


def test_the_sync_client_watches_too_and_stops_when_the_iteration_is_closed(
    server: ServerThread,
) -> None:
    with Client(server.address) as watching, Client(server.address) as writing:
        events = watching.watch_resources("environment")
        try:
            first = next(events)
            writing.apply(environment("synced"))
            second = next(events)
        finally:
            events.close()
        assert watching.list("environment")[0].metadata.slug == "synced"
    assert first.type == "BOOKMARK"
    assert summary([second]) == [("ADDED", "synced")]
