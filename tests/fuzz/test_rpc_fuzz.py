"""A seeded fuzzer over every RPC of every service in the generated code.

Against a real server (each store backend), for a bounded time, it sends
bodies made by tests/fuzz/requests.py to every method in turn and asserts:
no call ends INTERNAL or UNKNOWN (a bad request is the client's error, with
its status code, never the server's bug), no unary call goes unanswered,
the server still answers afterwards, and the consistency checker finds no
broken invariant in what the fuzzer left behind.

The seed is printed; `STIGMER_FUZZ_SEED=N` replays a run's choices, and a
failure lists the method and the exact body that caused it.
`STIGMER_FUZZ_SECONDS` sets each backend's time (default 30).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import random
import re
import time
from collections import Counter
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass

import stigmer.api.v1
from stigmer.api.v1 import agentinstance_pb2, consistency_pb2, meta_pb2
from stigmer.client import Client
from stigmer.engine.options import EngineOptions
from stigmer.resources.slugs import DEFAULT_INSTANCE_SUFFIX
from stigmer.testing.server import ServerThread
from tests.fuzz.report import report
from tests.fuzz.requests import Harvest, RequestMaker

SECONDS = float(os.environ.get("STIGMER_FUZZ_SECONDS", "30"))
UNARY_TIMEOUT = 15.0
# Streams (Watch, Subscribe to a running execution) end only when cancelled.
STREAM_TIMEOUT = 0.2
FORBIDDEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
DELETE_INSTANCE = "/stigmer.agentic.v1.AgentInstanceCommandController/Delete"
DELETE_REFERABLE = {
    "/stigmer.agentic.v1.McpServerCommandController/Delete": "McpServer",
    "/stigmer.agentic.v1.EnvironmentCommandController/Delete": "Environment",
}
DANGLING_NAME = re.compile(r"names (McpServer|Environment) '([^']+)'")


def raw(data: bytes) -> bytes:
    """Bodies go out and answers come back as bytes, unparsed by grpc."""
    return data


@dataclass(frozen=True)
class Rpc:
    path: str
    request_class: type[Message]
    response_class: type[Message]
    is_stream: bool


def every_rpc() -> list[Rpc]:
    """Every method of every service in stigmer.api.v1."""
    found = []
    for module_info in pkgutil.iter_modules(stigmer.api.v1.__path__):
        if not module_info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"stigmer.api.v1.{module_info.name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                found.append(
                    Rpc(
                        f"/{service.full_name}/{method.name}",
                        GetMessageClass(method.input_type),
                        GetMessageClass(method.output_type),
                        method.server_streaming,
                    )
                )
    return found


def without_orphaning(body: bytes) -> bytes:
    """The delete, cascading and unforced: a delete that orphans on purpose
    (or forces a skill away from the agents using it) leaves what the checker
    rightly reports (ORPHAN_*, DANGLING_REFERENCE), which is no fault of the
    server."""
    try:
        request = meta_pb2.DeleteRequest.FromString(body)
    except DecodeError:
        return body
    if request.cascade != meta_pb2.CASCADE_POLICY_ORPHAN and not request.force:
        return body
    request.cascade = meta_pb2.CASCADE_POLICY_BACKGROUND
    request.force = False
    return request.SerializeToString()


@dataclass(frozen=True)
class Failure:
    rpc: str
    shape: str
    body: bytes
    code: grpc.StatusCode
    details: str

    def __str__(self) -> str:
        shown = self.body[:300].hex() + ("..." if len(self.body) > 300 else "")
        return f"{self.rpc} [{self.shape}] -> {self.code.name}: {self.details}\n  body {shown}"


class Fuzzer:
    def __init__(self, channel: grpc.Channel, seed: int) -> None:
        self.channel = channel
        self.rng = random.Random(seed)
        self.harvest = Harvest()
        self.maker = RequestMaker(self.rng, self.harvest)
        self.codes: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.failures: list[Failure] = []
        self.agents_without_default: set[str] = set()
        self.deleted_referables: set[tuple[str, str]] = set()

    def call(self, rpc: Rpc) -> None:
        shape, body = self.maker.body(rpc.request_class)
        if rpc.request_class is meta_pb2.DeleteRequest:
            body = without_orphaning(body)
        self.calls[rpc.path] += 1
        code, details = self._send(rpc, body)
        self.codes[code.name] += 1
        late = code == grpc.StatusCode.DEADLINE_EXCEEDED and not rpc.is_stream
        if code in FORBIDDEN or late or code == grpc.StatusCode.UNAVAILABLE:
            self.failures.append(Failure(rpc.path, shape, body, code, details))

    def _send(self, rpc: Rpc, body: bytes) -> tuple[grpc.StatusCode, str]:
        try:
            if rpc.is_stream:
                stream = self.channel.unary_stream(rpc.path, raw, raw)
                for answer in stream(body, timeout=STREAM_TIMEOUT):
                    self._take(rpc, answer)
            else:
                unary = self.channel.unary_unary(rpc.path, raw, raw)
                self._take(rpc, unary(body, timeout=UNARY_TIMEOUT))
        except grpc.RpcError as error:
            assert isinstance(error, grpc.Call)
            return error.code(), error.details() or ""
        return grpc.StatusCode.OK, ""

    def _take(self, rpc: Rpc, answer: bytes) -> None:
        parsed = rpc.response_class.FromString(answer)
        self.harvest.take(parsed)
        if rpc.path == DELETE_INSTANCE:
            assert isinstance(parsed, agentinstance_pb2.AgentInstance)
            if parsed.metadata.slug.endswith(DEFAULT_INSTANCE_SUFFIX):
                self.agents_without_default.add(f"Agent/{parsed.spec.agent_id}")
        if rpc.path in DELETE_REFERABLE:
            self.deleted_referables.add((DELETE_REFERABLE[rpc.path], parsed.metadata.slug))  # type: ignore[attr-defined]

    def unexplained(self, report: consistency_pb2.ConsistencyReport) -> list[str]:
        """The violations the fuzzer's requests do not account for.

        Two deletes are allowed that the checker rightly reports afterwards,
        no fault of the server: an agent's default instance (the next run or
        apply of the agent makes a new one), and an McpServer or Environment
        that resources still name.
        """
        return [f"{v.code}: {v.message}" for v in report.violations if not self._is_explained(v)]

    def _is_explained(self, violation: consistency_pb2.Violation) -> bool:
        if violation.code == "AGENT_WITHOUT_DEFAULT_INSTANCE":
            return set(violation.resources) <= self.agents_without_default
        if violation.code == "DANGLING_REFERENCE":
            named = DANGLING_NAME.search(violation.message)
            return named is not None and (named[1], named[2]) in self.deleted_referables
        return False


@pytest.mark.slow
@pytest.mark.timeout(SECONDS * 3 + 120)
def test_no_request_makes_the_server_fail_or_breaks_an_invariant(store_url: str) -> None:
    seed = int(os.environ.get("STIGMER_FUZZ_SEED", str(random.SystemRandom().randrange(2**32))))
    backend = store_url.partition("://")[0] if "://" in store_url else "sqlite"
    print(f"RPC fuzzer seed {seed} on {backend} (replay with STIGMER_FUZZ_SEED={seed})")
    rpcs = every_rpc()
    # No worker runs the executions the fuzzer creates: no model is reachable,
    # and what is tested is the RPC layer, not runs.
    with ServerThread(store_url, engine=EngineOptions(workers=0)) as server:
        with grpc.insecure_channel(server.address) as channel:
            fuzzer = Fuzzer(channel, seed)
            deadline = time.monotonic() + SECONDS
            while time.monotonic() < deadline:
                for rpc in fuzzer.rng.sample(rpcs, len(rpcs)):
                    if rpc.is_stream and fuzzer.rng.random() < 0.7:
                        continue
                    fuzzer.call(rpc)
        total = sum(fuzzer.calls.values())
        report(
            f"RPC fuzzer on {backend}, seed {seed}: {total} requests over {len(rpcs)} methods; "
            f"status codes {dict(fuzzer.codes)}"
        )
        assert not fuzzer.failures, (
            f"seed {seed}: {len(fuzzer.failures)} failing requests, the first ones:\n"
            + "\n".join(str(failure) for failure in fuzzer.failures[:10])
        )
        assert set(fuzzer.calls) == {rpc.path for rpc in rpcs}
        assert fuzzer.codes["OK"] > 0
        with Client(server.address) as client:
            assert client.is_serving()
            checked = client.check()
        unexplained = fuzzer.unexplained(checked)
        assert not unexplained, f"seed {seed}: the checker found\n" + "\n".join(unexplained)
        assert checked.resources_checked > 0
