"""Sessions people can address: the readable slug a run gives a session,
running in a session or on an instance named by slug or id, and the refusal
to run one agent in another agent's session or on its instance."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from stigmer.api.v1 import meta_pb2, session_pb2
from stigmer.client import Client
from stigmer.errors import FailedPrecondition, InvalidArgument, NotFound
from stigmer.pipeline.envelope import Relations, as_envelope, encode
from stigmer.resources.ids import new_id
from stigmer.resources.kinds import SESSION
from stigmer.resources.slugs import MAX_SLUG_LENGTH, VALID_SLUG
from stigmer.store.base import Transaction
from stigmer.testing.scripted_model import Reply, ScriptedModel
from stigmer.testing.server import ServerThread
from tests.backends import engine_options
from tests.control_plane.manifests import agent
from tests.control_plane.seeding import count, in_store

SESSION_OF_GREETER = re.compile(r"^greeter-[0-9a-hjkmnp-tv-z]{5}$")
STAGING = """\
apiVersion: agentic.stigmer.ai/v1
kind: AgentInstance
metadata:
  name: Greeter Staging
spec:
  agent_ref: greeter
"""


@pytest.fixture(scope="module")
def model() -> Iterator[ScriptedModel]:
    with ScriptedModel(default=Reply(content="ok")) as scripted:
        yield scripted


@pytest.fixture
def server(store_url: str, model: ScriptedModel) -> Iterator[ServerThread]:
    with ServerThread(store_url, engine=engine_options(model.base_url)) as running:
        yield running


@pytest.fixture
def agents(client: Client) -> Client:
    client.create(agent("Greeter"))
    client.create(agent("Calculator"))
    return client


def session_slug_of_run(client: Client, agent_name: str = "greeter") -> str:
    started = client.run(agent_name, "hi")
    slug: str = client.get("session", started.status.session_id).metadata.slug
    return slug


def test_a_run_starts_a_session_slugged_after_its_agent(agents: Client) -> None:
    started = agents.run("greeter", "hi")

    session = agents.get("session", started.status.session_id)
    assert SESSION_OF_GREETER.match(session.metadata.slug), session.metadata.slug
    assert agents.get("session", session.metadata.slug).metadata.id == session.metadata.id
    assert [s.metadata.slug for s in agents.list("session")] == [session.metadata.slug]
    assert session.status.agent_id == started.status.agent_id


def test_sessions_of_one_agent_get_distinct_slugs(agents: Client) -> None:
    slugs = {session_slug_of_run(agents) for _ in range(5)}

    assert len(slugs) == 5
    assert all(SESSION_OF_GREETER.match(slug) for slug in slugs)


def test_a_long_agent_slug_is_cut_so_the_session_slug_fits(client: Client) -> None:
    client.create(agent("a" * 40 + " " + "b" * 22))

    slug = session_slug_of_run(client, "a" * 40 + "-" + "b" * 22)

    assert len(slug) == MAX_SLUG_LENGTH
    assert VALID_SLUG.match(slug)
    assert slug.startswith("a" * 40 + "-" + "b" * 16 + "-")


def test_run_by_session_slug_continues_that_session(agents: Client) -> None:
    first = agents.run("greeter", "hi")
    slug = agents.get("session", first.status.session_id).metadata.slug

    with_agent = agents.run("greeter", "again", session=slug)
    without_agent = agents.run(None, "and again", session=slug)

    assert with_agent.status.session_id == first.status.session_id
    assert without_agent.status.session_id == first.status.session_id
    assert with_agent.spec.session_id == first.status.session_id
    assert with_agent.spec.session_ref == ""


def test_delete_by_session_slug_removes_the_session_and_its_executions(
    agents: Client, store_url: str
) -> None:
    slug = session_slug_of_run(agents)

    deleted = agents.delete("session", slug)

    assert deleted.metadata.slug == slug
    with pytest.raises(NotFound):
        agents.get("session", slug)
    assert count(store_url, "AgentExecution") == 0


def test_run_in_another_agents_session_is_failed_precondition_naming_both(
    agents: Client, store_url: str
) -> None:
    started = agents.run("greeter", "hi")
    session = agents.get("session", started.status.session_id)

    for reference in (session.metadata.slug, session.metadata.id):
        with pytest.raises(FailedPrecondition) as raised:
            agents.run("calculator", "add these", session=reference)
        facts = raised.value.facts
        assert facts["session_id"] == session.metadata.id
        assert facts["session_slug"] == session.metadata.slug
        assert facts["session_agent_slug"] == "greeter"
        assert facts["session_agent_id"] == started.status.agent_id
        assert facts["agent_slug"] == "calculator"
        assert facts["agent_id"] == agents.get("agent", "calculator").metadata.id
        assert "'greeter'" in raised.value.message
        assert "'calculator'" in raised.value.message
        assert session.metadata.slug in raised.value.message
    assert count(store_url, "AgentExecution") == 1


def test_run_on_a_named_instance_runs_in_a_new_session_there(agents: Client) -> None:
    (staging,) = (r.resource for r in agents.apply(STAGING))

    by_slug = agents.run("greeter", "hi", instance="greeter-staging")
    by_id = agents.run("greeter", "hi", instance=staging.metadata.id)
    without_agent = agents.run(None, "hi", instance="greeter-staging")

    greeter_id = agents.get("agent", "greeter").metadata.id
    for started in (by_slug, by_id, without_agent):
        assert started.status.agent_instance_id == staging.metadata.id
        assert started.status.agent_id == greeter_id
        session = agents.get("session", started.status.session_id)
        assert session.spec.agent_instance_id == staging.metadata.id
        assert SESSION_OF_GREETER.match(session.metadata.slug)
    assert len({by_slug.status.session_id, by_id.status.session_id}) == 2


def test_run_on_another_agents_instance_is_failed_precondition_naming_both(
    agents: Client, store_url: str
) -> None:
    (staging,) = (r.resource for r in agents.apply(STAGING))

    with pytest.raises(FailedPrecondition) as raised:
        agents.run("calculator", "hi", instance="greeter-staging")

    facts = raised.value.facts
    assert facts["instance_id"] == staging.metadata.id
    assert facts["instance_agent_slug"] == "greeter"
    assert facts["agent_slug"] == "calculator"
    assert "'greeter'" in raised.value.message and "'calculator'" in raised.value.message
    assert count(store_url, "Session") == 0
    assert count(store_url, "AgentExecution") == 0


def test_run_on_an_unknown_instance_is_not_found_naming_the_field(agents: Client) -> None:
    with pytest.raises(NotFound) as raised:
        agents.run("greeter", "hi", instance="nowhere")
    assert raised.value.facts["field"] == "spec.agent_instance_ref"

    with pytest.raises(NotFound) as raised:
        agents.run("greeter", "hi", instance="ain-01jf0000000000000000000000")
    assert raised.value.facts["field"] == "spec.agent_instance_id"


def test_run_with_a_session_and_an_instance_is_invalid_argument(
    agents: Client, store_url: str
) -> None:
    slug = session_slug_of_run(agents)

    with pytest.raises(InvalidArgument) as raised:
        agents.run("greeter", "hi", session=slug, instance="greeter-default")

    assert raised.value.facts["field"] == "spec.agent_instance_ref"
    assert count(store_url, "AgentExecution") == 1


def test_run_in_an_unknown_session_is_not_found_naming_the_field(agents: Client) -> None:
    with pytest.raises(NotFound) as raised:
        agents.run("greeter", "hi", session="greeter-zzzzz")
    assert raised.value.facts["field"] == "spec.session_ref"

    with pytest.raises(NotFound) as raised:
        agents.run("greeter", "hi", session="ses-01jf0000000000000000000000")
    assert raised.value.facts["field"] == "spec.session_id"


SESSION_BY_INSTANCE_SLUG = """\
apiVersion: agentic.stigmer.ai/v1
kind: Session
metadata:
  name: Onboarding
spec:
  agent_instance_ref: {instance}
  subject: first steps
"""


def test_session_manifest_naming_its_instance_by_slug_applies(agents: Client) -> None:
    manifest = SESSION_BY_INSTANCE_SLUG.format(instance="greeter-default")

    (created,) = agents.apply(manifest)
    (again,) = agents.apply(manifest)

    greeter = agents.get("agent", "greeter")
    assert created.outcome == "created"
    assert created.resource.spec.agent_instance_id == greeter.status.default_instance_id
    assert created.resource.status.agent_id == greeter.metadata.id
    assert again.outcome == "unchanged"
    continued = agents.run("greeter", "hi", session="onboarding")
    assert continued.status.session_id == created.resource.metadata.id


def test_session_manifest_naming_an_unknown_instance_is_not_found_with_the_field(
    agents: Client, store_url: str
) -> None:
    with pytest.raises(NotFound) as raised:
        agents.apply(SESSION_BY_INSTANCE_SLUG.format(instance="nowhere"))

    assert raised.value.facts["field"] == "spec.agent_instance_ref"
    assert count(store_url, "Session") == 0


def test_session_naming_its_instance_by_slug_and_another_id_is_invalid_argument(
    agents: Client,
) -> None:
    (staging,) = (r.resource for r in agents.apply(STAGING))
    session = session_pb2.Session(
        metadata=meta_pb2.ApiResourceMetadata(name="mixed"),
        spec=session_pb2.SessionSpec(
            agent_instance_ref="greeter-default", agent_instance_id=staging.metadata.id
        ),
    )

    with pytest.raises(InvalidArgument) as raised:
        agents.create(session)

    assert raised.value.facts["field"] == "spec.agent_instance_id"


def test_session_naming_no_instance_is_invalid_argument(agents: Client) -> None:
    with pytest.raises(InvalidArgument) as raised:
        agents.create(
            session_pb2.Session(
                metadata=meta_pb2.ApiResourceMetadata(name="nowhere"),
                spec=session_pb2.SessionSpec(subject="no instance"),
            )
        )
    assert raised.value.facts["field"] == "spec.agent_instance_id"


def insert_session_with_id_shaped_slug(store_url: str, instance_id: str, agent_id: str) -> str:
    """A session as runs made them before readable slugs: an id-shaped slug
    that is not its id."""
    session = session_pb2.Session(
        api_version="agentic.stigmer.ai/v1",
        kind="Session",
        metadata=meta_pb2.ApiResourceMetadata(name="Greeter session", org="local", version=1),
        spec=session_pb2.SessionSpec(agent_instance_id=instance_id, subject="hi"),
        status=session_pb2.SessionStatus(agent_id=agent_id),
    )
    session.metadata.id = new_id(SESSION.prefix)
    session.metadata.slug = new_id(SESSION.prefix)
    relations = Relations(owner_id=instance_id, agent_instance_id=instance_id, agent_id=agent_id)

    async def work(transaction: Transaction) -> None:
        await transaction.insert(encode(SESSION, as_envelope(session), relations))

    in_store(store_url, work)
    return session.metadata.slug


def test_a_session_with_an_id_shaped_slug_from_before_stays_addressable_by_it(
    agents: Client, store_url: str
) -> None:
    greeter = agents.get("agent", "greeter")
    old_slug = insert_session_with_id_shaped_slug(
        store_url, greeter.status.default_instance_id, greeter.metadata.id
    )

    found = agents.get("session", old_slug)
    continued = agents.run("greeter", "hi", session=old_slug)
    deleted = agents.delete("session", old_slug)

    assert found.metadata.slug == old_slug and found.metadata.id != old_slug
    assert continued.status.session_id == found.metadata.id
    assert deleted.metadata.id == found.metadata.id
    assert count(store_url, "Session") == 0


def test_instance_of_a_session_manifest_is_immutable_by_slug_too(agents: Client) -> None:
    agents.apply(STAGING)
    agents.apply(SESSION_BY_INSTANCE_SLUG.format(instance="greeter-default"))

    with pytest.raises(InvalidArgument) as raised:
        agents.apply(SESSION_BY_INSTANCE_SLUG.format(instance="greeter-staging"))

    assert raised.value.facts["field"] == "spec.agent_instance_id"
    instance = agents.get("agentinstance", "greeter-default")
    assert agents.get("session", "onboarding").spec.agent_instance_id == instance.metadata.id
