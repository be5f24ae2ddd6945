"""Homes and servers: a server records its address in its STIGMER_HOME
(server.json), clients of that home find it with nothing else set, and
`server status` never calls a server serving unless the recorded process
answers as itself."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stigmer import config
from stigmer.client import Client
from stigmer.server_record import ServerRecord, is_process_alive, write_server_record
from stigmer.testing.cli import Cli
from stigmer.testing.server import ServerThread
from tests.waiting import wait_until

DEADLINE_SECONDS = 15.0


@pytest.fixture
def home_cli(stigmer_home: Path, tmp_path: Path) -> Iterator[Cli]:
    """The CLI with only STIGMER_HOME set (no server address anywhere); a
    daemon it started is stopped at the end."""
    cli = Cli.isolated(stigmer_home, {"LLM_PROVIDER": "ollama"}, cwd=tmp_path)
    yield cli
    if any((stigmer_home / name).exists() for name in ("server.json", "server.pid")):
        cli("server", "stop")


def _record(home: Path) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((home / "server.json").read_text())
    return loaded


def _wait_until_gone(pid: int) -> None:
    wait_until(
        lambda: not is_process_alive(pid), what=f"process {pid} to exit", within=DEADLINE_SECONDS
    )


def _dead_pid() -> int:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return finished.pid


@pytest.mark.slow
def test_a_daemon_on_port_0_is_found_by_its_home_and_forgotten_once_stopped(
    home_cli: Cli, stigmer_home: Path
) -> None:
    started = home_cli("server", "start", "--port", "0")

    assert started.exit_code == 0, started.stderr
    record = _record(stigmer_home)
    address, pid = str(record["address"]), int(str(record["pid"]))
    assert address.startswith("127.0.0.1:") and not address.endswith(":0")
    assert started.stdout.startswith(f"Stigmer server started on {address} (pid {pid})")
    assert record["store"] == f"sqlite://{stigmer_home / 'stigmer.db'}"
    assert record["engine"] == "embedded"
    assert stat.S_IMODE((stigmer_home / "server.json").stat().st_mode) == 0o600

    listed = home_cli("get", "agents")
    assert listed.exit_code == 0, listed.stderr
    settings = home_cli("config", "list").stdout.splitlines()
    assert f"server.json {stigmer_home / 'server.json'}" in next(
        line for line in settings if line.startswith("server ")
    )
    status = home_cli("server", "status")
    assert (status.exit_code, status.stdout.strip()) == (
        0,
        f"running at {address} (pid {pid}, store sqlite://{stigmer_home / 'stigmer.db'}, "
        "engine embedded)",
    )

    stopped = home_cli("server", "stop")
    assert stopped.exit_code == 0, stopped.stderr
    assert not (stigmer_home / "server.json").exists()
    after = home_cli("server", "status")
    assert after.exit_code == 3
    assert after.stdout.startswith("not running: no server runs from")


@pytest.mark.slow
def test_a_killed_daemon_is_not_running_and_its_stale_record_is_removed(
    home_cli: Cli, stigmer_home: Path
) -> None:
    assert home_cli("server", "start", "--port", "0").exit_code == 0
    record = _record(stigmer_home)
    pid = int(str(record["pid"]))

    os.kill(pid, signal.SIGKILL)
    _wait_until_gone(pid)
    listing = home_cli("config", "list").stdout.splitlines()
    status = home_cli("server", "status")

    # A dead pid's record is not followed, and status removes it.
    assert next(line for line in listing if line.startswith("server ")).split()[1:] == [
        "127.0.0.1:7234",
        "default",
    ]
    assert status.exit_code == 3
    assert status.stdout.strip() == (
        f"not running: the server recorded at {record['address']} (pid {pid}) is gone; "
        f"removed its stale {stigmer_home / 'server.json'}"
    )
    assert not (stigmer_home / "server.json").exists()
    assert not (stigmer_home / "server.pid").exists()


def test_status_is_not_running_when_another_server_now_answers_on_the_recorded_address(
    home_cli: Cli, stigmer_home: Path, store_url: str
) -> None:
    # The recorded process lives, but the server answering on its address is
    # another one (here: this test process's); its pid gives it away.
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as recorded:
        with ServerThread(store_url) as other:
            write_server_record(
                stigmer_home,
                ServerRecord(other.address, recorded.pid, "0.1.0", store_url, "embedded", ""),
            )
            status = home_cli("server", "status")
        recorded.kill()

    assert status.exit_code == 3
    assert status.stdout.strip() == (
        f"not running: the server process {recorded.pid} does not answer on {other.address}: "
        f"another Stigmer server (pid {os.getpid()}) does"
    )


def test_status_is_not_running_when_the_recorded_process_is_gone_even_if_its_port_answers(
    home_cli: Cli, stigmer_home: Path, store_url: str
) -> None:
    pid = _dead_pid()
    with ServerThread(store_url) as other:
        write_server_record(
            stigmer_home, ServerRecord(other.address, pid, "0.1.0", store_url, "embedded", "")
        )
        status = home_cli("server", "status")

    assert status.exit_code == 3
    assert f"(pid {pid}) is gone; removed its stale" in status.stdout
    assert not (stigmer_home / "server.json").exists()


def test_status_of_an_address_given_explicitly_asks_that_server_who_it_is(
    home_cli: Cli, store_url: str
) -> None:
    with ServerThread(store_url) as server:
        running = home_cli("server", "status", "--server", server.address)
    stopped = home_cli("server", "status", "--server", server.address)

    assert (running.exit_code, running.stdout.strip()) == (
        0,
        f"running at {server.address} (pid {os.getpid()}, store sqlite://{store_url}, "
        "engine embedded)",
    )
    assert (stopped.exit_code, stopped.stdout.strip()) == (
        3,
        f"not running: no Stigmer server answers on {server.address} (flag)",
    )


def test_the_sdk_without_an_address_uses_the_live_server_of_its_home_after_flag_env_and_file(
    stigmer_home: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in [name for name in os.environ if name.startswith("STIGMER_")]:
        monkeypatch.delenv(variable)
    monkeypatch.setenv("STIGMER_HOME", str(stigmer_home))
    with ServerThread(store_url) as server:
        write_server_record(
            stigmer_home, ServerRecord(server.address, os.getpid(), "0.1.0", store_url, "", "")
        )
        with Client() as client:
            assert client.address == server.address
            assert client.list("agent") == []

        config.set_value("server", "127.0.0.1:1001")
        from_file = config.resolve("server")
        monkeypatch.setenv("STIGMER_SERVER", "127.0.0.1:1002")
        from_env = config.resolve("server")
        from_flag = config.resolve("server", "127.0.0.1:1003")

    assert (from_file.value, from_file.source) == (
        "127.0.0.1:1001",
        f"config file {stigmer_home / 'config.yaml'}",
    )
    assert (from_env.value, from_env.source) == ("127.0.0.1:1002", "env STIGMER_SERVER")
    assert (from_flag.value, from_flag.source) == ("127.0.0.1:1003", "flag")
