"""Where the console runs: beside `stigmer server` (its URL printed and
recorded), on its own with `stigmer console`, or not at all."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stigmer.local_ports import free_local_port
from stigmer.server_record import read_server_record
from stigmer.testing.cli import Cli
from stigmer.testing.server import ServerProcess, StigmerProcess
from tests.agents import PLAIN_AGENT
from tests.console.conftest import fetch
from tests.waiting import wait_until

pytestmark = pytest.mark.slow
URL_LINE = re.compile(r"console: (http://127\.0\.0\.1:\d+/)")


def _console_url(log: Path) -> str:
    found: list[str] = []

    def has_url() -> bool:
        found[:] = URL_LINE.findall(log.read_text(errors="replace"))
        return bool(found)

    wait_until(has_url, what=f"a console URL in {log}")
    return found[0]


def test_stigmer_server_prints_its_console_url_and_curl_of_it_gets_the_page(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    port = free_local_port()
    with ServerProcess(home, tmp_path / "stigmer.db", {"CONSOLE_PORT": str(port)}) as server:
        url = _console_url(server.log)
        home_page = fetch(url)
        record = read_server_record(home)

    assert url == f"http://127.0.0.1:{port}/"
    assert home_page.status == 200
    assert "<h1>Overview</h1>" in home_page.body
    assert record is not None and record.console_url == url


def test_console_port_zero_starts_no_console(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with ServerProcess(home, tmp_path / "stigmer.db", {"CONSOLE_PORT": "0"}) as server:
        record = read_server_record(home)
        log = server.log.read_text()

    assert record is not None and record.console_url == ""
    assert "console:" not in log


def test_a_console_port_out_of_range_is_invalid_input_naming_the_setting(
    tmp_path: Path,
) -> None:
    stigmer = Cli.isolated(tmp_path / "home", {"STORE": str(tmp_path / "stigmer.db")})

    result = stigmer("server", "--port", "0", "--console-port", "70000")

    assert result.exit_code == 2
    assert "console_port" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_stigmer_console_serves_any_server_on_its_own(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with ServerProcess(home, tmp_path / "stigmer.db", {}) as server:
        Cli.isolated(home, {"SERVER": server.address})("apply", "-f", "-", stdin=PLAIN_AGENT)
        standalone = StigmerProcess(
            tmp_path / "console-home",
            ["console", "--server", server.address, "--port", "0"],
            {},
            tmp_path / "console.log",
        )
        with standalone:
            url = _console_url(standalone.log)
            agents = fetch(url + "agents")
            standalone.stop()
            code = standalone.wait(15)

    assert agents.status == 200
    assert 'href="/agents/greeter"' in agents.body
    assert code == 0
