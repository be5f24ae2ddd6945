"""TLS: clients and `stigmer worker` verify the server with a CA of the
test's own; without it (or with another CA) they fail with a clear message
and exit 3; a server with a client CA requires client certificates."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stigmer.api.v1 import execution_pb2
from stigmer.client import Client
from stigmer.engine.options import EngineOptions
from stigmer.engine.temporal_dev_server import TemporalDevServer
from stigmer.engine.temporal_engine import TemporalOptions
from stigmer.errors import Unavailable
from stigmer.server.tls import TlsFiles
from stigmer.testing.certificates import CertificateAuthority
from stigmer.testing.cli import Cli
from stigmer.testing.scripted_model import Reply, ScriptedModel, ToolCallStep
from stigmer.testing.server import ServerThread
from stigmer.testing.worker import WorkerProcess
from tests.agents import PLAIN_AGENT, stdio_tools_agent
from tests.backends import HEARTBEAT_SECONDS

EXIT_UNAVAILABLE = 3


@dataclass(frozen=True)
class TlsServer:
    server: ServerThread
    ca: CertificateAuthority
    admin_token: str

    @property
    def address(self) -> str:
        return self.server.address


def _clean_env(home: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("STIGMER_")}
    env.update(STIGMER_HOME=str(home))
    return env


@pytest.fixture
def certificates(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path / "pki")


@pytest.fixture
def tls_server(
    tmp_path: Path, certificates: CertificateAuthority, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TlsServer]:
    for key in [key for key in os.environ if key.startswith("STIGMER_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("STIGMER_HOME", str(tmp_path / "client-home"))
    leaf = certificates.issue("server")
    token_path = tmp_path / "server-home" / "admin.token"
    with ServerThread(
        str(tmp_path / "stigmer.db"),
        auth="token",
        admin_token_path=token_path,
        tls=TlsFiles(leaf.cert, leaf.key),
    ) as server:
        yield TlsServer(server, certificates, token_path.read_text().strip())


def test_sdk_client_works_with_the_ca_and_fails_clearly_without_it(
    tls_server: TlsServer, tmp_path: Path
) -> None:
    ca = str(tls_server.ca.cert_path)
    with Client(tls_server.address, token=tls_server.admin_token, tls_ca=ca) as client:
        client.apply(PLAIN_AGENT)
        assert [agent.metadata.slug for agent in client.list("agent")] == ["greeter"]
    with (
        Client(tls_server.address, token=tls_server.admin_token, timeout=5) as plain,
        pytest.raises(Unavailable) as refused,
    ):
        plain.list("agent")
    assert "STIGMER_TLS_CA" in refused.value.message
    other_ca = CertificateAuthority(tmp_path / "other-pki", "Someone Else")
    with (
        Client(
            tls_server.address,
            token=tls_server.admin_token,
            tls_ca=str(other_ca.cert_path),
            timeout=5,
        ) as wrong,
        pytest.raises(Unavailable) as unverified,
    ):
        wrong.list("agent")
    assert "cannot verify the Stigmer server" in unverified.value.message


def test_cli_over_tls_with_the_ca_and_exit_3_without_it(
    tls_server: TlsServer, tmp_path: Path
) -> None:
    env = _clean_env(tmp_path / "cli-home")
    env.update(STIGMER_SERVER=tls_server.address, STIGMER_TOKEN=tls_server.admin_token)
    cli = Cli(env, tmp_path)
    ca = str(tls_server.ca.cert_path)

    applied = cli("--tls-ca", ca, "apply", "-f", "-", stdin=PLAIN_AGENT)
    assert applied.exit_code == 0, applied.stderr
    listed = Cli({**env, "STIGMER_TLS_CA": ca}, tmp_path)("get", "agents")
    assert listed.exit_code == 0 and "greeter" in listed.stdout

    without = cli("get", "agents")
    assert without.exit_code == EXIT_UNAVAILABLE
    assert "cannot reach the Stigmer server" in without.stderr
    assert "--tls-ca" in without.stderr

    other_ca = CertificateAuthority(tmp_path / "other-pki", "Someone Else")
    wrong = cli("--tls-ca", str(other_ca.cert_path), "get", "agents")
    assert wrong.exit_code == EXIT_UNAVAILABLE
    assert "cannot verify the Stigmer server" in wrong.stderr


def test_worker_without_the_ca_exits_3_before_taking_any_work(
    tls_server: TlsServer, tmp_path: Path
) -> None:
    env = _clean_env(tmp_path / "worker-home")
    env.update(STIGMER_TOKEN=tls_server.admin_token)
    finished = subprocess.run(
        [sys.executable, "-m", "stigmer.cli.main", "worker", "--server", tls_server.address,
         "--temporal-address", "127.0.0.1:1"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert finished.returncode == EXIT_UNAVAILABLE, finished.stderr
    assert "cannot reach the Stigmer server" in finished.stderr
    assert "STIGMER_TLS_CA" in finished.stderr


def test_a_client_ca_on_the_server_requires_client_certificates(
    tmp_path: Path, certificates: CertificateAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [key for key in os.environ if key.startswith("STIGMER_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("STIGMER_HOME", str(tmp_path / "client-home"))
    leaf = certificates.issue("server")
    mutual = TlsFiles(leaf.cert, leaf.key, client_ca=certificates.cert_path)
    ca = str(certificates.cert_path)
    with ServerThread(str(tmp_path / "stigmer.db"), tls=mutual) as server:
        with Client(server.address, tls_ca=ca, timeout=5) as anonymous, pytest.raises(Unavailable):
            anonymous.list("agent")
        client_cert = certificates.issue("laptop", is_server=False)
        monkeypatch.setenv("STIGMER_TLS_CLIENT_CERT", str(client_cert.cert))
        monkeypatch.setenv("STIGMER_TLS_CLIENT_KEY", str(client_cert.key))
        with Client(server.address, tls_ca=ca) as known:
            assert known.list("agent") == []


@pytest.mark.slow
def test_worker_process_over_tls_with_a_worker_token_runs_an_execution_to_completed(
    tmp_path: Path,
    certificates: CertificateAuthority,
    temporal_server: TemporalDevServer,
    task_queue: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key in [key for key in os.environ if key.startswith("STIGMER_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("STIGMER_HOME", str(tmp_path / "client-home"))
    leaf = certificates.issue("server")
    token_path = tmp_path / "server-home" / "admin.token"
    ca = str(certificates.cert_path)
    with ScriptedModel() as model:
        model.add(
            Reply(tool_calls=(ToolCallStep("add", {"a": 20, "b": 22}),)),
            Reply(content="20 + 22 = 42"),
        )
        temporal = TemporalOptions(
            address=temporal_server.address,
            task_queue=task_queue,
            heartbeat_seconds=HEARTBEAT_SECONDS,
        )
        with ServerThread(
            str(tmp_path / "stigmer.db"),
            auth="token",
            admin_token_path=token_path,
            tls=TlsFiles(leaf.cert, leaf.key),
            temporal=temporal,
            engine=EngineOptions(lease_seconds=3.0, poll_seconds=0.2),
        ) as server:
            admin_token = token_path.read_text().strip()
            with Client(server.address, token=admin_token, tls_ca=ca) as admin:
                worker_token = admin.create_token("worker-a", "worker").secret
                admin.apply(stdio_tools_agent())
                settings = {
                    "TEMPORAL_TASK_QUEUE": task_queue,
                    "TLS_CA": ca,
                    "TOKEN": worker_token,
                    "LLM_PROVIDER": "openai",
                    "LLM_MODEL": "scripted",
                    "LLM_BASE_URL": model.base_url,
                }
                with WorkerProcess(
                    tmp_path / "worker-home", server.address, temporal_server.address, settings
                ):
                    execution = admin.run("calculator", "What is 20 + 22?")
                    done = admin.wait(execution.metadata.id)
            assert done.status.phase == execution_pb2.EXECUTION_PHASE_COMPLETED, done.status.error
            assert done.status.messages[-1].content == "20 + 22 = 42"
            assert [call.status for call in done.status.tool_calls] == [
                execution_pb2.TOOL_CALL_STATUS_COMPLETED
            ]
