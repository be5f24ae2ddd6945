"""A real server running agents against the scripted model, its web console
on a free port, and (for the browser tests) Debian's chromium driven by
Playwright.

The browser is one per test module: Playwright's sync API keeps an event
loop running on the test thread while it lives, which the sync Client of the
modules after it could not share. Every test gets a fresh context and page,
and fails on any console error or uncaught exception in the page.
Screenshots go to the test's tmp folder, and also to
<repo>/.console-screenshots/ when STIGMER_CONSOLE_SCREENSHOTS is set.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from stigmer.client import Client
from stigmer.console.app import ConsoleOptions
from stigmer.console.serving import ConsoleServer
from stigmer.testing.scripted_model import ScriptedModel
from stigmer.testing.server import ServerThread
from tests.backends import engine_options

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
FILE_THREADS = 4
SCREENSHOTS_VARIABLE = "STIGMER_CONSOLE_SCREENSHOTS"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    # The console reads through the API; the server suites cover both stores.
    return str(tmp_path / "stigmer.db")


@pytest.fixture
def server(store_url: str, model: ScriptedModel) -> Iterator[ServerThread]:
    with ServerThread(store_url, engine=engine_options(model.base_url)) as running:
        yield running


@pytest.fixture
def console(server: ServerThread) -> Iterator[ConsoleServer]:
    web_console = ConsoleServer(ConsoleOptions(server.address))
    server.run(web_console.start())
    try:
        yield web_console
    finally:
        server.run(web_console.stop())


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    headers: dict[str, str]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_: Any, **__: Any) -> None:
        return None


def fetch(
    url: str,
    *,
    data: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One HTTP request, redirects not followed (a 303 is an answer to check)."""
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers=headers or {})
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(request, timeout=30) as response:
            return Answer(response.status, response.read().decode(), dict(response.headers))
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.read().decode(), dict(error.headers))


@dataclass
class Screenshots:
    folder: Path
    taken: list[Path] = field(default_factory=list)

    def take(self, page: Page, name: str) -> Path:
        path = self.folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        if os.environ.get(SCREENSHOTS_VARIABLE):
            kept = REPO / ".console-screenshots"
            kept.mkdir(exist_ok=True)
            shutil.copy(path, kept / path.name)
        return path


@pytest.fixture
def screenshots(tmp_path: Path) -> Screenshots:
    folder = tmp_path / "screenshots"
    folder.mkdir()
    return Screenshots(folder)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as running:
        _start_file_threads(asyncio.get_event_loop())
        yield running


def _start_file_threads(loop: asyncio.AbstractEventLoop) -> None:
    """Playwright reads and writes files (screenshots, script tags) on its
    event loop's default executor, whose threads start on first use, inside
    some test, and live as long as the loop: the leak check would blame that
    test. They are started here, while this module fixture sets up."""
    executor = ThreadPoolExecutor(FILE_THREADS, thread_name_prefix="playwright-files")
    loop.set_default_executor(executor)
    everyone = threading.Barrier(FILE_THREADS)
    for started in [executor.submit(everyone.wait, 30) for _ in range(FILE_THREADS)]:
        started.result()


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("chromium is missing: apt-get install -y chromium (.ci/run installs it)")
    launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page; the test fails on any console error or uncaught exception in it."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    opened = context.new_page()
    problems: list[str] = []
    opened.on(
        "console",
        lambda message: (
            problems.append(f"console {message.type}: {message.text}")
            if message.type == "error"
            else None
        ),
    )
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    try:
        yield opened
    finally:
        context.close()
    assert not problems, "the page reported errors:\n" + "\n".join(problems)


@pytest.fixture
def client(server: ServerThread) -> Iterator[Client]:
    with Client(server.address) as connected:
        yield connected


class ClientBesideBrowser(Client):
    """The sync Client with its event loop on a thread of its own: Playwright's
    sync API keeps an event loop running on the test's thread, where the
    plain Client cannot run one."""

    def __init__(self, address: str) -> None:
        super().__init__(address)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="client-beside-browser")

    def _run(self, awaitable: Awaitable[T]) -> T:
        return self._thread.submit(super()._run, awaitable).result()

    def close(self) -> None:
        super().close()
        self._thread.shutdown()


@pytest.fixture
def browser_client(server: ServerThread) -> Iterator[Client]:
    with ClientBesideBrowser(server.address) as connected:
        yield connected
