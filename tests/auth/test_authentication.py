"""Authentication: without a valid token nothing but the health check
answers, the first start makes an admin token, tokens are made, listed and
revoked, and a server reachable from the network refuses to run without auth."""

from __future__ import annotations

import importlib
import os
import pkgutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2

import stigmer.api.v1
from stigmer.client import Client
from stigmer.errors import AlreadyExists, FailedPrecondition, Unauthenticated
from stigmer.resources.principals import TOKEN_PREFIX, hash_token
from stigmer.server.authentication import UNAUTHENTICATED_MESSAGE, check_exposure
from stigmer.server.authorization import METHOD_ROLES, PUBLIC
from tests.agents import PLAIN_AGENT
from tests.auth.conftest import AuthServer


def every_method() -> list[MethodDescriptor]:
    """Every method of every service in the generated code, and health's."""
    methods: list[MethodDescriptor] = []
    for module_info in pkgutil.iter_modules(stigmer.api.v1.__path__):
        if not module_info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"stigmer.api.v1.{module_info.name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            methods += list(service.methods)
    for service in health_pb2.DESCRIPTOR.services_by_name.values():
        methods += list(service.methods)
    return methods


def full_name(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def test_every_rpc_of_every_service_is_in_the_role_table_and_nothing_else_is() -> None:
    names = {full_name(method) for method in every_method()}
    assert len(names) > 50
    assert names == set(METHOD_ROLES)


def _call_raw(
    channel: grpc.Channel, method: MethodDescriptor, metadata: list[tuple[str, str]]
) -> grpc.StatusCode:
    request = GetMessageClass(method.input_type)().SerializeToString()
    sent = tuple(metadata)
    try:
        # Raw bytes both ways: an empty request of the method's type.
        if method.server_streaming:
            stream: Any = channel.unary_stream(full_name(method))
            for _ in stream(request, metadata=sent, timeout=10):
                break
        else:
            unary: Any = channel.unary_unary(full_name(method))
            unary(request, metadata=sent, timeout=10)
    except grpc.RpcError as error:
        assert error.code() != grpc.StatusCode.UNAUTHENTICATED or (
            error.details() == UNAUTHENTICATED_MESSAGE
        )
        return error.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize(
    "metadata",
    [
        [],
        [("authorization", "Bearer stg_not-a-token")],
        [("authorization", "Basic c3RpZ21lcg==")],
        [("authorization", "Bearer ")],
    ],
    ids=["no-token", "unknown-token", "not-bearer", "empty-bearer"],
)
def test_every_rpc_without_a_valid_token_is_unauthenticated_with_one_fixed_message(
    auth_server: AuthServer, metadata: list[tuple[str, str]]
) -> None:
    with grpc.insecure_channel(auth_server.address) as channel:
        for method in every_method():
            code = _call_raw(channel, method, metadata)
            if METHOD_ROLES[full_name(method)] is PUBLIC:
                # Health answers (its List is not implemented by grpcio's servicer).
                assert code != grpc.StatusCode.UNAUTHENTICATED, full_name(method)
            else:
                assert code == grpc.StatusCode.UNAUTHENTICATED, full_name(method)


def test_first_start_writes_an_admin_token_readable_only_by_its_owner(
    auth_server: AuthServer,
) -> None:
    path = auth_server.admin_token_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = path.read_text().strip()
    assert secret.startswith(TOKEN_PREFIX) and len(secret) > 40
    with auth_server.client("admin") as client:
        names = {token.name: token.role for token in client.list_tokens()}
    assert names == {
        "admin": "admin",
        "developer-1": "developer",
        "viewer-1": "viewer",
        "worker-1": "worker",
    }


def test_the_store_keeps_only_the_hash_of_a_token(auth_server: AuthServer) -> None:
    secret = auth_server.tokens["developer"]

    async def stored() -> list[str]:
        async with auth_server.server.server.store.transaction(write=False) as transaction:
            return [token.token_hash for token in await transaction.list_access_tokens()]

    hashes = auth_server.server.run(stored())
    assert hash_token(secret) in hashes
    assert all(secret not in value for value in hashes)


def test_a_client_of_the_servers_home_uses_the_admin_token_written_there(
    auth_server: AuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STIGMER_HOME", str(auth_server.admin_token_path.parent))
    with Client(auth_server.address) as client:
        client.apply(PLAIN_AGENT)
        agent = client.get("agent", "greeter")
    # The audit records who wrote it.
    assert agent.status.audit.created_by == "admin"
    assert agent.status.audit.updated_by == "admin"


def test_stigmer_token_env_wins_over_the_admin_token_file(
    auth_server: AuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STIGMER_HOME", str(auth_server.admin_token_path.parent))
    monkeypatch.setenv("STIGMER_TOKEN", auth_server.tokens["developer"])
    with Client(auth_server.address) as client:
        client.apply(PLAIN_AGENT)
        assert client.get("agent", "greeter").status.audit.created_by == "developer-1"


def test_a_revoked_token_is_unauthenticated_at_once_and_its_name_can_be_reused(
    auth_server: AuthServer,
) -> None:
    with auth_server.client("admin") as admin:
        created = admin.create_token("ci", "viewer")
        with Client(auth_server.address, token=created.secret) as ci:
            assert ci.list("agent") == []
            revoked = admin.revoke_token("ci")
            assert revoked.HasField("revoked_at")
            with pytest.raises(Unauthenticated) as refused:
                ci.list("agent")
        assert refused.value.message == UNAUTHENTICATED_MESSAGE
        assert refused.value.facts["grpc_code"] == "UNAUTHENTICATED"
        with pytest.raises(AlreadyExists):
            admin.create_token("developer-1", "viewer")
        again = admin.create_token("ci", "developer")
        assert again.secret != created.secret
        with Client(auth_server.address, token=again.secret) as ci:
            assert ci.list("agent") == []


def test_token_cli_creates_lists_and_revokes(auth_server: AuthServer, tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("STIGMER_")}
    env.update(
        STIGMER_HOME=str(auth_server.admin_token_path.parent), STIGMER_SERVER=auth_server.address
    )

    def stigmer(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "stigmer.cli.main", *args],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )  # fmt: skip

    created = stigmer("token", "create", "laptop", "--role", "viewer")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith(TOKEN_PREFIX)
    assert "not shown again" in created.stderr
    listed = stigmer("token", "list")
    assert listed.returncode == 0 and "laptop" in listed.stdout and "viewer" in listed.stdout
    assert secret not in listed.stdout
    assert stigmer("token", "revoke", "laptop").returncode == 0
    refused = subprocess.run(
        [sys.executable, "-m", "stigmer.cli.main", "get", "agents"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**env, "STIGMER_TOKEN": secret},
    )  # fmt: skip
    assert refused.returncode == 1
    assert UNAUTHENTICATED_MESSAGE in refused.stderr
    bad_role = stigmer("token", "create", "x", "--role", "root")
    assert bad_role.returncode == 2 and "role" in bad_role.stderr


def test_server_on_a_non_loopback_host_without_auth_exits_naming_the_fix(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("STIGMER_")}
    env.update(STIGMER_HOME=str(tmp_path / "home"))
    started = subprocess.run(
        [sys.executable, "-m", "stigmer.cli.main", "server", "--host", "0.0.0.0", "--port", "0",
         "--store", str(tmp_path / "stigmer.db")],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert started.returncode != 0
    assert "without authentication" in started.stderr
    assert "auth: token" in started.stderr and "STIGMER_AUTH=token" in started.stderr
    assert not (tmp_path / "stigmer.db").exists()


def test_exposure_rules_loopback_is_fine_network_needs_auth_and_warns_without_tls(
    caplog: pytest.LogCaptureFixture,
) -> None:
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        check_exposure(host, "none", is_tls=False)
    for host in ("0.0.0.0", "::", "192.168.1.5", "example.org"):
        with pytest.raises(FailedPrecondition):
            check_exposure(host, "none", is_tls=True)
    check_exposure("0.0.0.0", "token", is_tls=True)
    assert "in clear" not in caplog.text
    check_exposure("0.0.0.0", "token", is_tls=False)
    assert "tokens and secrets cross the network in clear" in caplog.text


def test_an_undecodable_body_without_a_token_is_unauthenticated_never_parsed(
    auth_server: AuthServer,
) -> None:
    with grpc.insecure_channel(auth_server.address) as channel:
        call: Any = channel.unary_unary("/stigmer.agentic.v1.AgentCommandController/Create")
        with pytest.raises(grpc.RpcError) as refused:
            call(b"\xff\xff\xff\xff", timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert refused.value.details() == UNAUTHENTICATED_MESSAGE
