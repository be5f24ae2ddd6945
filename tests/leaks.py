"""What a test leaves running: threads of the test process and its child processes.

Every test is checked (the autouse fixture in tests/conftest.py): whatever
runs after it that did not run before it, and does not stop within a short
grace period, fails that test with the names of what leaked. A leaked
server thread or tool-server process otherwise shows up much later, as a
hang at the end of the session or a port taken in another test.

Fixtures that outlive one test (session- and module-scoped: the PostgreSQL
and Temporal servers, a module's scripted model or seeded server) start
their threads and processes while the first test that uses them sets up;
`LongLived`, a plugin, records what appears during their setup so that it
is not taken for a leak of that test. It must be a registered plugin rather
than a hook in a conftest: pytest asks session-scoped fixtures' hooks of the
plugins that apply to the root folder, which tests/conftest.py is not.

grpc.aio stops its poller thread when the last channel or server object is
freed, not when it is closed; a test whose closed channels wait in a
reference cycle has them collected before anything counts as leaked.
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field

import pytest

from tests.processes import child_pids, command_line

# Threads that are already stopping (a closed loop's executor, a finished
# HTTP handler) get this long to end before they count as leaked.
GRACE_SECONDS = 5.0
_POLL_SECONDS = 0.05
# Started on first use by a session-wide fixture, after its setup: the
# session PostgreSQL server creates and drops test databases on this thread.
_SESSION_THREAD_PREFIXES = ("temporary-postgres",)
# grpc.aio's completion-queue poller: one per process, shared by every aio
# channel and server, and freed only with the last of them; a log record's
# traceback (caplog) or a module's client keeps it past the test that first
# needed it. A leaked server or channel is still caught by its own threads.
_PROCESS_WIDE_TARGETS = ("PollerCompletionQueue._poll_wrapper",)
# multiprocessing's resource tracker: started by the first process it spawns,
# kept for the rest of the session by design.
_PROCESS_WIDE_COMMANDS = ("multiprocessing.resource_tracker",)


@dataclass(frozen=True)
class Running:
    """The threads and child processes alive at one moment."""

    threads: frozenset[threading.Thread]
    children: frozenset[int]

    @classmethod
    def now(cls) -> Running:
        threads = frozenset(t for t in threading.enumerate() if t.is_alive())
        children = frozenset(child_pids()) if sys.platform == "linux" else frozenset()
        return cls(threads, children)

    def __sub__(self, other: Running) -> Running:
        return Running(self.threads - other.threads, self.children - other.children)

    def __bool__(self) -> bool:
        return bool(self.threads or self.children)

    def describe(self) -> str:
        threads = [f"thread {t.name!r} ({_target_of(t)})" for t in self.threads]
        children = [f"process {pid} ({command_line(pid) or 'gone'})" for pid in self.children]
        return "; ".join(sorted(threads) + sorted(children))


@dataclass(eq=False)  # a plugin: compared and hashed by identity
class LongLived:
    """What fixtures that outlive a test started, and may keep running."""

    threads: set[threading.Thread] = field(default_factory=set)
    children: set[int] = field(default_factory=set)

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[object]
    ) -> Generator[None, object, object]:
        if fixturedef.scope == "function":
            return (yield)
        before = Running.now()
        try:
            return (yield)
        finally:
            started = Running.now() - before
            self.threads |= started.threads
            self.children |= started.children

    def without(self, running: Running) -> Running:
        threads = frozenset(
            t
            for t in running.threads
            if t not in self.threads
            and not t.name.startswith(_SESSION_THREAD_PREFIXES)
            and _target_of(t) not in _PROCESS_WIDE_TARGETS
        )
        children = frozenset(
            pid
            for pid in running.children - self.children
            if not any(part in command_line(pid) for part in _PROCESS_WIDE_COMMANDS)
        )
        return Running(threads, children)


def leaked_since(before: Running, long_lived: LongLived) -> Running:
    """What runs now that did not before and belongs to no long-lived fixture,
    once the grace period has let whatever was stopping stop."""
    deadline = time.monotonic() + GRACE_SECONDS
    has_collected = False
    while True:
        leaked = long_lived.without(Running.now() - before)
        if not leaked or time.monotonic() > deadline:
            return leaked
        if not has_collected:
            gc.collect()
            has_collected = True
        time.sleep(_POLL_SECONDS)


def _target_of(thread: threading.Thread) -> str:
    target = getattr(thread, "_target", None)
    if target is None:
        return type(thread).__qualname__
    return getattr(target, "__qualname__", repr(target))
