"""Finding every broken invariant (see invariants.py) without stalling the server.

The checker reads the records as they are stored, not through the domain,
because what it checks includes the storage itself: envelopes against their
indexed columns, references between kinds, leases.

It walks each kind in pages in id order (keyset pagination on the
(kind, id) index, which both stores have), each page in a short read
transaction of its own together with the point lookups its checks need
(page_checks.py). A transaction holds the SQLite store's one connection and
so every other request: a page is small enough to take well under a
millisecond on an idle machine, and after each page the checker rests for
twice as long as the page took, so requests arriving during a check wait
for one page at worst and the check takes at most a third of the server's
time. Memory holds one page
and the violations found, whatever the size of the store.

Each violation is judged within one transaction, so concurrent writes
cannot produce false alarms; what changes between pages is checked as it
is when its page is read (a resource created during a check may or may
not be counted).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from stigmer.consistency.invariants import Violation
from stigmer.consistency.page_checks import Findings, check_page
from stigmer.resources.kinds import KINDS
from stigmer.store.base import ListQuery, Store


@dataclass(frozen=True)
class Pace:
    """How a check shares the server with requests.

    `page_size` records (and their lookups) are read per transaction;
    after each full page the check rests `rest_ratio` times as long as the
    page took (2.0: the check uses at most about a third of the time). Small
    pages keep the wait of a request that arrives during one short even
    when the machine is busy and the page's transaction is preempted.
    """

    page_size: int = 10
    rest_ratio: float = 2.0


SHARED_PACE = Pace()


@dataclass(frozen=True)
class Report:
    violations: tuple[Violation, ...]
    resources_checked: int
    checked_at: float
    # How the check read the store: its pages and the longest time one of
    # their transactions was held (seconds).
    pages_read: int = 0
    longest_transaction_seconds: float = 0.0


async def check(store: Store, pace: Pace = SHARED_PACE) -> Report:
    findings = Findings()
    checked = pages = 0
    longest = 0.0
    for kind in KINDS:
        after = ""
        while True:
            async with store.transaction(write=False) as transaction:
                started = time.perf_counter()
                page = await transaction.list(
                    ListQuery(kind=kind.name, after_id=after, limit=pace.page_size)
                )
                await check_page(transaction, kind, page, findings)
                took = time.perf_counter() - started
            longest = max(longest, took)
            pages += 1
            checked += len(page)
            if len(page) < pace.page_size:
                break
            after = page[-1].id
            await asyncio.sleep(took * pace.rest_ratio)
    return Report(findings.all(), checked, time.time(), pages, longest)
