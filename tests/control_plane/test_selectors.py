"""Label selectors through the API: parsed by the server, evaluated by the
store on every backend, across pages, and a clear INVALID_ARGUMENT when the
text is not a selector."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2

from stigmer.api.v1 import (
    environment_pb2,
    environment_pb2_grpc,
    execution_pb2,
    execution_pb2_grpc,
    meta_pb2,
)
from stigmer.client import Client
from stigmer.errors import InvalidArgument
from stigmer.resources.selectors import Operator, Requirement, parse_selector
from stigmer.testing.server import ServerThread
from tests.control_plane.manifests import agent
from tests.control_plane.test_status_codes import code, rpc_status

# Environments (the cheapest kind to create) and their labels; `plain` and
# `ops-only` lack the `team` key that most selectors below ask about.
LABELLED: dict[str, dict[str, str]] = {
    "demo": {"team": "demo", "tier": "gold"},
    "platform": {"team": "platform", "tier": "gold"},
    "support": {"team": "support", "tier": "silver"},
    "ops-only": {"owner": "ops"},
    "plain": {},
}

SELECTORS: dict[str, set[str]] = {
    "team=demo": {"demo"},
    "team==platform": {"platform"},
    "team!=demo": {"platform", "support", "ops-only", "plain"},
    "team in (demo, support)": {"demo", "support"},
    "team notin (demo,support)": {"platform", "ops-only", "plain"},
    "team": {"demo", "platform", "support"},
    "!team": {"ops-only", "plain"},
    "tier=gold,team!=demo": {"platform"},
    " owner , !tier ": {"ops-only"},
    "": set(LABELLED),
}


def environment(name: str, labels: dict[str, str]) -> environment_pb2.Environment:
    return environment_pb2.Environment(
        metadata=meta_pb2.ApiResourceMetadata(name=name, labels=labels),
        spec=environment_pb2.EnvironmentResourceSpec(),
    )


def slugs(items: list[environment_pb2.Environment]) -> set[str]:
    return {item.metadata.slug for item in items}


def test_list_by_selector_evaluates_every_operator(client: Client) -> None:
    for name, labels in LABELLED.items():
        client.create(environment(name, labels))

    found = {selector: slugs(client.list("env", selector=selector)) for selector in SELECTORS}

    assert found == SELECTORS


def test_selector_is_anded_with_the_label_map(client: Client) -> None:
    for name, labels in LABELLED.items():
        client.create(environment(name, labels))

    found = client.list("env", labels={"tier": "gold"}, selector="team!=demo")

    assert slugs(found) == {"platform"}


def test_list_executions_by_selector(server: ServerThread, client: Client) -> None:
    created = client.create(agent("PR Reviewer"))
    with grpc.insecure_channel(server.address) as channel:
        stub = execution_pb2_grpc.AgentExecutionCommandControllerStub(channel)
        for team in ("demo", "platform", ""):
            stub.Create(
                execution_pb2.AgentExecution(
                    metadata=meta_pb2.ApiResourceMetadata(
                        name=f"run {team or 'none'}", labels={"team": team} if team else {}
                    ),
                    spec=execution_pb2.AgentExecutionSpec(
                        agent_id=created.metadata.id, message="hello"
                    ),
                )
            )

    def teams(selector: str) -> list[str]:
        found = client.list_executions(selector=selector)
        return sorted(execution.metadata.labels.get("team", "-") for execution in found)

    assert teams("team!=demo") == ["-", "platform"]
    assert teams("team in (demo,platform)") == ["demo", "platform"]
    assert teams("!team") == ["-"]
    with pytest.raises(InvalidArgument) as raised:
        client.list_executions(selector="team in (a")
    assert "'team in (a'" in raised.value.message


def test_paging_with_a_selector_returns_every_match_across_pages(
    server: ServerThread, client: Client
) -> None:
    # 160 environments, three of four matching: more matches than one default
    # page, and every page holds only matches (none filtered out afterwards).
    expected = set()
    for number in range(160):
        tier = "bronze" if number % 4 == 0 else ("gold" if number % 2 else "silver")
        client.create(environment(f"env-{number:03}", {"tier": tier}))
        if tier != "bronze":
            expected.add(f"env-{number:03}")

    everything = client.list("env", selector="tier notin (bronze)")
    assert len(everything) == 120 and slugs(everything) == expected

    with grpc.insecure_channel(server.address) as channel:
        stub = environment_pb2_grpc.EnvironmentQueryControllerStub(channel)
        request = meta_pb2.ListRequest(selector="tier!=bronze", page_size=50)
        pages = []
        while True:
            page = stub.List(request)
            pages.append(len(page.items))
            if not page.next_page_token:
                break
            request.page_token = page.next_page_token
    assert pages == [50, 50, 20]


UNPARSABLE = {
    "team in (a": "expected ',' or ')'",
    "team!": "expected an operator",
    "team in ()": "the set of values is empty",
    "bad key=x": "expected an operator",
    "-team=x": "invalid label key '-team'",
    "team=a b": "expected ',' between requirements",
}


def test_unparsable_selector_is_invalid_argument_naming_selector_and_field(
    server: ServerThread,
) -> None:
    with grpc.insecure_channel(server.address) as channel:
        stub = environment_pb2_grpc.EnvironmentQueryControllerStub(channel)
        for selector, problem in UNPARSABLE.items():
            with pytest.raises(grpc.RpcError) as raised:
                stub.List(meta_pb2.ListRequest(selector=selector))

            assert code(raised.value) == grpc.StatusCode.INVALID_ARGUMENT, selector
            bad_request = error_details_pb2.BadRequest()
            assert any(detail.Unpack(bad_request) for detail in rpc_status(raised.value).details)
            [violation] = bad_request.field_violations
            assert violation.field == "selector"
            assert repr(selector) in violation.description
            assert problem in violation.description


def test_selector_grammar_follows_kubernetes_key_and_value_rules() -> None:
    parsed = parse_selector(" example.com/team in ( a , b.c ) ,  x-y_z.w!= , !legacy ")
    assert parsed == (
        Requirement("example.com/team", Operator.IN, ("a", "b.c")),
        Requirement("x-y_z.w", Operator.NOT_EQUALS, ("",)),
        Requirement("legacy", Operator.DOES_NOT_EXIST),
    )
    assert parse_selector("in=notin") == (Requirement("in", Operator.EQUALS, ("notin",)),)
    invalid = {
        "k" * 64 + "=v": "at most 63 characters",
        "k=" + "v" * 64: "at most 63 characters",
        "Example.com/team=a": "DNS subdomain",
        "a/b/c=d": "DNS subdomain",
        "team=a/b": "invalid label value 'a/b'",
    }
    for selector, problem in invalid.items():
        with pytest.raises(InvalidArgument) as raised:
            parse_selector(selector)
        assert problem in raised.value.message, selector
        assert raised.value.violations[0].field == "selector"
