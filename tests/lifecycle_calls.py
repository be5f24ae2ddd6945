"""Pause, Resume, Terminate and Recover called over gRPC, as any client
would, for the tests of the execution lifecycle; and a model whose answers
wait at a gate, so a test decides when a model call ends."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from stigmer.api.v1 import execution_pb2, execution_pb2_grpc
from stigmer.client.rpc_errors import error_from_rpc
from stigmer.errors import StigmerError
from stigmer.testing.scripted_model import Reply, ScriptedModel

GATE_SECONDS = 60.0


def lifecycle(
    address: str, method: str, execution_id: str, reason: str = ""
) -> execution_pb2.AgentExecution:
    """Calls Pause, Resume, Terminate or Recover.

    Raises:
        StigmerError: the server refused (the class is its status code), as
            the SDK maps it.
    """
    request = execution_pb2.ExecutionLifecycleRequest(id=execution_id, reason=reason)
    with grpc.insecure_channel(address) as channel:
        command = execution_pb2_grpc.AgentExecutionCommandControllerStub(channel)
        call: Callable[..., execution_pb2.AgentExecution] = getattr(command, method)
        try:
            return call(request, timeout=30)
        except grpc.RpcError as error:
            raise error_from_rpc(error, address) from None


def refusal(address: str, method: str, execution_id: str) -> StigmerError:
    """The error the server answers a lifecycle request with.

    Raises:
        AssertionError: the server did not refuse it.
    """
    try:
        lifecycle(address, method, execution_id)
    except StigmerError as error:
        return error
    raise AssertionError(f"{method} of {execution_id} was not refused")


@dataclass
class GatedReplies:
    """The model's n-th answer (from 1) waits until `open(n)`; answers
    without a gate come at once."""

    model: ScriptedModel
    replies: list[Reply]
    gated: set[int] = field(default_factory=set)
    _gates: dict[int, threading.Event] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._gates = {n: threading.Event() for n in self.gated}
        self.model.reply_with(self._answer)

    def _answer(self, request: object) -> Reply:
        number = len(self.model.requests)
        gate = self._gates.get(number)
        if gate is not None:
            gate.wait(GATE_SECONDS)
        if number <= len(self.replies):
            return self.replies[number - 1]
        return Reply(status=500, content=f"no reply scripted for request #{number}")

    def open(self, number: int) -> None:
        self._gates[number].set()

    def open_all(self) -> None:
        for gate in self._gates.values():
            gate.set()
