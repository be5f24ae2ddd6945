"""The check reads the store in small pages, each in a transaction of its
own, and still never reports a violation that concurrent writes only seem
to make."""

from __future__ import annotations

import asyncio
import threading

from stigmer.client import Client
from stigmer.consistency.checker import SHARED_PACE, check
from stigmer.resources.kinds import KINDS
from stigmer.store.urls import store_from_url
from stigmer.testing.server import ServerThread
from tests.control_plane.manifests import agent

AGENTS = 120  # each with its default instance: many pages of each kind
CHECKS_DURING_CHURN = 3


def test_check_reads_each_kind_in_pages_of_the_pace(client: Client, store_url: str) -> None:
    for index in range(AGENTS):
        client.create(agent(f"Paged {index}"))

    async def checked() -> tuple[int, int, int]:
        store = store_from_url(store_url)
        await store.open()
        try:
            report = await check(store)
        finally:
            await store.close()
        assert report.violations == ()
        return report.resources_checked, report.pages_read, len(KINDS)

    resources, pages, kinds = asyncio.run(checked())

    assert resources == 2 * AGENTS
    # A kind of n records takes n // size + 1 pages (the last one short,
    # maybe empty); the two seeded kinds dominate.
    per_kind = AGENTS // SHARED_PACE.page_size + 1
    assert pages == 2 * per_kind + (kinds - 2)


def test_creates_and_deletes_during_a_check_produce_no_false_alarm(
    client: Client, server: ServerThread
) -> None:
    for index in range(AGENTS):
        client.create(agent(f"Steady {index}"))
    stop = threading.Event()
    churned = 0

    def churn() -> None:
        nonlocal churned
        with Client(server.address) as churning:
            while not stop.is_set():
                created = churning.create(agent(f"Churn {churned}"))
                churning.delete("agent", created.metadata.id)  # its instance goes with it
                churned += 1

    churner = threading.Thread(target=churn)
    churner.start()
    try:
        reports = [client.check() for _ in range(CHECKS_DURING_CHURN)]
    finally:
        stop.set()
        churner.join()

    assert churned > 0
    for report in reports:
        assert [v.code for v in report.violations] == []
        assert report.resources_checked >= 2 * AGENTS
