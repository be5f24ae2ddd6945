"""A kind's services come from its message's descriptor: one entry in kinds.py
is enough for the server to serve the kind and for the client to call it."""

from __future__ import annotations

import pytest

from stigmer.api.v1 import agent_pb2, execution_pb2, session_pb2
from stigmer.client import Client
from stigmer.client.stubs import KIND_STUBS
from stigmer.errors import InvalidArgument
from stigmer.resources.kinds import AGENT_EXECUTION, KINDS, SKILL, KindInfo, kind_by_type_name

USER_WRITTEN = [kind for kind in KINDS if kind.is_user_written]


@pytest.mark.parametrize("kind", USER_WRITTEN, ids=lambda kind: kind.name)
def test_every_user_written_kind_declares_the_generic_rpcs(kind: KindInfo) -> None:
    command = {method.name for method in kind.command_service.methods}
    query = {method.name for method in kind.query_service.methods}

    assert command == {"Create", "Update", "Apply", "Delete"}
    assert {"Get", "GetByReference", "List"} <= query
    assert kind.file is kind.message.DESCRIPTOR.file


def test_executions_are_not_user_written_and_have_services_of_their_own() -> None:
    assert not AGENT_EXECUTION.is_user_written
    assert "Apply" not in AGENT_EXECUTION.command_service.methods_by_name
    assert "Cancel" in AGENT_EXECUTION.command_service.methods_by_name


def test_skills_are_pushed_not_applied_and_read_through_the_generic_services() -> None:
    assert not SKILL.is_user_written and SKILL.has_generic_services
    assert {m.name for m in SKILL.command_service.methods} == {"Push", "Delete"}
    assert KIND_STUBS["Skill"].apply_request is None


def test_client_stubs_exist_for_exactly_the_generically_served_kinds() -> None:
    assert list(KIND_STUBS) == [kind.name for kind in KINDS if kind.has_generic_services]
    assert set(KIND_STUBS) == {kind.name for kind in USER_WRITTEN} | {"Skill"}
    assert KIND_STUBS["Agent"].apply_request is agent_pb2.ApplyAgentRequest
    assert KIND_STUBS["Session"].apply_request is session_pb2.ApplySessionRequest


def test_a_kind_is_found_by_its_message_type_name() -> None:
    for kind in KINDS:
        assert kind_by_type_name(kind.message.DESCRIPTOR.full_name) is kind
    assert kind_by_type_name(execution_pb2.ExecutionEvent.DESCRIPTOR.full_name) is None
    assert kind_by_type_name("") is None


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_the_server_serves_every_user_written_kind(client: Client) -> None:
    for kind in USER_WRITTEN:
        assert client.list(kind) == [], kind.name


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_the_generic_client_refuses_executions_with_the_kind_at_fault(client: Client) -> None:
    with pytest.raises(InvalidArgument) as raised:
        client.list(AGENT_EXECUTION)

    assert raised.value.facts.get("field") == "kind"
