"""Deletes, dry runs, lists and secrets across the kinds."""

from __future__ import annotations

import grpc
import pytest

from stigmer.api.v1 import agent_pb2_grpc, agentinstance_pb2, environment_pb2, meta_pb2, session_pb2
from stigmer.client import Client
from stigmer.errors import NotFound
from stigmer.testing.server import ServerThread
from tests.control_plane.manifests import FOUR_RESOURCES, agent
from tests.control_plane.seeding import count


def make_session(client: Client, instance_id: str, name: str) -> session_pb2.Session:
    created: session_pb2.Session = client.create(
        session_pb2.Session(
            metadata=meta_pb2.ApiResourceMetadata(name=name),
            spec=session_pb2.SessionSpec(agent_instance_id=instance_id, subject=name),
        )
    )
    return created


def test_deleting_an_agent_removes_its_instances_and_sessions(
    client: Client, store_url: str
) -> None:
    created = client.create(agent("PR Reviewer"))
    make_session(client, created.status.default_instance_id, "first")
    extra = client.create(
        agentinstance_pb2.AgentInstance(
            metadata=meta_pb2.ApiResourceMetadata(name="Staging"),
            spec=agentinstance_pb2.AgentInstanceSpec(agent_ref="pr-reviewer"),
        )
    )
    make_session(client, extra.metadata.id, "second")
    assert len(client.list_sessions_by_agent(created.metadata.id)) == 2

    client.delete("agent", "pr-reviewer")

    assert count(store_url, "Agent") == 0
    assert count(store_url, "AgentInstance") == 0
    assert count(store_url, "Session") == 0


def test_orphan_cascade_keeps_owned_resources(client: Client, store_url: str) -> None:
    created = client.create(agent("PR Reviewer"))
    make_session(client, created.status.default_instance_id, "first")

    client.delete("agent", created.metadata.id, cascade="orphan")

    assert count(store_url, "Agent") == 0
    assert count(store_url, "AgentInstance") == 1
    assert count(store_url, "Session") == 1


def test_delete_of_missing_resource_is_not_found(client: Client) -> None:
    with pytest.raises(NotFound):
        client.delete("agent", "nobody")


def test_dry_run_apply_reports_outcomes_and_writes_nothing(client: Client, store_url: str) -> None:
    results = client.apply(FOUR_RESOURCES, dry_run=True)
    assert [r.outcome for r in results] == ["created"] * 4
    assert count(store_url, "Agent") == 0
    assert count(store_url, "AgentInstance") == 0
    assert count(store_url, "Environment") == 0


def test_apply_twice_is_unchanged_and_keeps_versions(client: Client) -> None:
    first = client.apply(FOUR_RESOURCES)
    second = client.apply(FOUR_RESOURCES)
    assert [r.outcome for r in first] == ["created"] * 4
    assert [r.outcome for r in second] == ["unchanged"] * 4
    assert [r.resource.metadata.version for r in second] == [1, 1, 1, 1]


def test_secret_values_are_masked_in_responses_and_kept_on_reapply(client: Client) -> None:
    client.apply(FOUR_RESOURCES)
    shown = client.get("environment", "prod")
    assert shown.spec.data["GITHUB_TOKEN"].value == "***"
    assert shown.spec.data["REGION"].value == "eu-west-1"
    # Re-applying what `get` showed (mask included) keeps the stored secret.
    round_trip = environment_pb2.Environment()
    round_trip.CopyFrom(shown)
    (result,) = client.apply(round_trip)
    assert result.outcome == "unchanged"


def test_list_filters_by_labels_and_pages_through_everything(client: Client) -> None:
    client.apply(FOUR_RESOURCES)
    platform = client.list("agent", labels={"team": "platform"})
    assert [a.metadata.slug for a in platform] == ["pr-reviewer"]
    for index in range(7):
        client.create(agent(f"Extra {index}"))
    paged = client.list("agent", page_size=3)
    slugs = [a.metadata.slug for a in paged]
    assert len(slugs) == 9
    assert len(set(slugs)) == 9


def test_bad_page_token_is_invalid_argument(server: ServerThread) -> None:
    with grpc.insecure_channel(server.address) as channel:
        query = agent_pb2_grpc.AgentQueryControllerStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            query.List(meta_pb2.ListRequest(page_token="!!not-a-token!!"))
    assert isinstance(raised.value, grpc.Call)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_manifest_with_a_dangling_reference_writes_nothing(client: Client, store_url: str) -> None:
    broken = FOUR_RESOURCES.replace("ref: github", "ref: gitlab")
    with pytest.raises(NotFound) as raised:
        client.apply(broken)
    assert raised.value.facts["resource"] == "Agent/pr-reviewer"
    assert count(store_url, "Environment") == 0
    assert count(store_url, "McpServer") == 0
    assert count(store_url, "Agent") == 0


def test_session_on_missing_instance_is_not_found_naming_the_field(client: Client) -> None:
    with pytest.raises(NotFound) as raised:
        make_session(client, "ain-01jf0000000000000000000000", "orphan")
    assert raised.value.facts["field"] == "spec.agent_instance_id"


def test_instance_by_agent_ref_resolves_the_id(client: Client) -> None:
    created = client.create(agent("PR Reviewer"))
    instance = client.create(
        agentinstance_pb2.AgentInstance(
            metadata=meta_pb2.ApiResourceMetadata(name="Staging"),
            spec=agentinstance_pb2.AgentInstanceSpec(agent_ref="pr-reviewer", environment_refs=[]),
        )
    )
    assert instance.spec.agent_id == created.metadata.id
    with pytest.raises(NotFound) as raised:
        client.create(
            agentinstance_pb2.AgentInstance(
                metadata=meta_pb2.ApiResourceMetadata(name="Broken"),
                spec=agentinstance_pb2.AgentInstanceSpec(
                    agent_ref="pr-reviewer", environment_refs=["missing-env"]
                ),
            )
        )
    assert raised.value.facts["field"] == "spec.environment_refs[0]"
