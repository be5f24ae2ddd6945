"""Every agent has exactly one default instance, recorded in its status;
broken state is adopted and repaired, never a reason to fail (DESIGN §3.3-3.5)."""

from __future__ import annotations

import logging

import pytest

from stigmer.client import Client
from stigmer.errors import FailedPrecondition
from tests.control_plane.manifests import agent
from tests.control_plane.seeding import (
    clear_default_instance_id,
    count,
    insert_bare_agent,
    insert_instance,
    point_default_instance_id,
)


def test_create_records_the_default_instance_in_status(client: Client) -> None:
    created = client.create(agent("PR Reviewer"))
    instance = client.get("agentinstance", "pr-reviewer-default")
    assert created.status.default_instance_id == instance.metadata.id
    assert instance.spec.agent_id == created.metadata.id
    assert [i.metadata.id for i in client.list_instances_by_agent(created.metadata.id)] == [
        instance.metadata.id
    ]


def test_apply_that_changes_spec_keeps_status(client: Client) -> None:
    created = client.create(agent("PR Reviewer"))
    changed = agent("PR Reviewer", "Review pull requests, and be brief about it.")
    changed.status.default_instance_id = "ain-forged"
    (result,) = client.apply(changed)
    assert result.outcome == "configured"
    assert result.resource.status.default_instance_id == created.status.default_instance_id
    assert result.resource.status.audit.created_at == created.status.audit.created_at
    stored = client.get("agent", "pr-reviewer")
    assert stored.status.default_instance_id == created.status.default_instance_id
    assert stored.metadata.version == created.metadata.version + 1


def test_update_keeps_status_and_identity(client: Client) -> None:
    created = client.create(agent("PR Reviewer"))
    renamed = agent("PR Reviewer", "New instructions for the reviewer.")
    renamed.metadata.id = created.metadata.id
    renamed.metadata.name = "Pull Request Reviewer"
    updated = client.update(renamed)
    assert updated.metadata.slug == "pr-reviewer"
    assert updated.metadata.name == "Pull Request Reviewer"
    assert updated.status.default_instance_id == created.status.default_instance_id


def test_existing_default_instance_with_empty_status_is_adopted(
    client: Client, store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    created = client.create(agent("PR Reviewer"))
    instance_id = created.status.default_instance_id
    clear_default_instance_id(store_url, created.metadata.id)
    assert client.get("agent", "pr-reviewer").status.default_instance_id == ""
    caplog.set_level(logging.INFO)

    (result,) = client.apply(agent("PR Reviewer"))

    assert result.resource.status.default_instance_id == instance_id
    assert client.get("agent", "pr-reviewer").status.default_instance_id == instance_id
    assert count(store_url, "AgentInstance") == 1
    messages = [record.getMessage() for record in caplog.records]
    assert any(m.startswith("Default instance already exists, fetching existing") for m in messages)
    assert any(m.startswith("Found existing default instance") for m in messages)
    assert any(m.startswith("Updated agent status with default_instance_id") for m in messages)


def test_legacy_agent_without_instance_or_status_heals_on_next_request(
    client: Client, store_url: str
) -> None:
    agent_id = insert_bare_agent(store_url, "PR Reviewer", "pr-reviewer")
    instance_id = insert_instance(store_url, "pr-reviewer-default", agent_id)

    (result,) = client.apply(
        agent("PR Reviewer", "Review pull requests and point out risky changes.")
    )

    assert result.outcome == "unchanged"
    assert result.resource.status.default_instance_id == instance_id


def test_status_pointing_nowhere_is_repaired(client: Client, store_url: str) -> None:
    created = client.create(agent("PR Reviewer"))
    point_default_instance_id(store_url, created.metadata.id, "ain-01jf0000000000000000000000")
    (result,) = client.apply(agent("PR Reviewer"))
    assert result.resource.status.default_instance_id == created.status.default_instance_id


def test_deleted_default_instance_is_recreated_on_next_apply(client: Client) -> None:
    created = client.create(agent("PR Reviewer"))
    client.delete("agentinstance", "pr-reviewer-default")
    (result,) = client.apply(agent("PR Reviewer"))
    new_id = result.resource.status.default_instance_id
    assert new_id and new_id != created.status.default_instance_id
    assert client.get("agentinstance", "pr-reviewer-default").metadata.id == new_id


def test_default_slug_owned_by_another_agent_is_failed_precondition_naming_both(
    client: Client, store_url: str
) -> None:
    other = client.create(agent("Other Agent"))
    squatter_id = insert_instance(store_url, "pr-reviewer-default", other.metadata.id)

    with pytest.raises(FailedPrecondition) as raised:
        client.create(agent("PR Reviewer"))

    message = raised.value.message
    assert squatter_id in message
    assert other.metadata.id in message
    assert raised.value.facts["instance_id"] == squatter_id
    assert raised.value.facts["instance_agent_id"] == other.metadata.id
    # One transaction: the agent whose default instance failed was not written.
    assert [a.metadata.slug for a in client.list("agent")] == ["other-agent"]
