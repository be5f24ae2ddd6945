"""The tool policy's decisions, pure: patterns, precedence, the two layers,
the destructiveHint default and the grants that need no person."""

from __future__ import annotations

import pytest

from stigmer.resources.tool_policy import (
    AUTO_APPROVE,
    ApprovalGrants,
    ServerRules,
    ToolDecision,
    ToolPolicy,
    ToolRules,
    pattern_problem,
)

ALLOW, ASK, DENY = ToolDecision.ALLOW, ToolDecision.ASK, ToolDecision.DENY


@pytest.mark.parametrize(
    "pattern", ["github/create_*", "shell/*", "*/delete_*", "my-server/tool.v2", "*/*"]
)
def test_well_formed_patterns_have_no_problem(pattern: str) -> None:
    assert pattern_problem(pattern) is None


@pytest.mark.parametrize(
    ("pattern", "words"),
    [
        ("github", "<mcp-server-slug>/<tool>"),
        ("GitHub/create", "slug"),
        ("github/", "tool part"),
        ("github/create issue", "tool part"),
        ("gith?b/x", "slug"),
        ("/x", "slug"),
        ("a/" + "x" * 300, "at most"),
    ],
)
def test_malformed_patterns_say_what_is_wrong(pattern: str, words: str) -> None:
    problem = pattern_problem(pattern)
    assert problem is not None and words in problem


def test_deny_wins_over_ask_and_ask_over_allow() -> None:
    rules = ToolRules(allow=("gh/*",), ask=("gh/create_*",), deny=("gh/create_repo",))
    policy = ToolPolicy(agent=rules)
    assert policy.decide("gh", "list_issues", is_destructive=True) == ALLOW
    assert policy.decide("gh", "create_issue", is_destructive=False) == ASK
    assert policy.decide("gh", "create_repo", is_destructive=False) == DENY


def test_an_unnamed_tool_is_asked_about_only_when_annotated_destructive() -> None:
    policy = ToolPolicy(agent=ToolRules(ask=("other/*",)))
    assert policy.decide("gh", "delete_repo", is_destructive=True) == ASK
    assert policy.decide("gh", "list_repos", is_destructive=False) == ALLOW


def test_the_agents_rules_override_the_servers_defaults() -> None:
    server = ServerRules("github", ToolRules(ask=("github/*",), deny=("github/delete_*",)))
    policy = ToolPolicy(agent=ToolRules(allow=("gh/list_*",)), servers={"gh": server})
    # The server's own rules name it by its slug, the agent's by its name.
    assert policy.decide("gh", "list_repos", is_destructive=False) == ALLOW
    assert policy.decide("gh", "create_repo", is_destructive=False) == ASK
    assert policy.decide("gh", "delete_repo", is_destructive=False) == DENY
    override = ToolPolicy(agent=ToolRules(ask=("gh/delete_*",)), servers={"gh": server})
    assert override.decide("gh", "delete_repo", is_destructive=False) == ASK


def test_grants_approve_asks_without_a_person_but_never_change_allow() -> None:
    assert ApprovalGrants().gate(ASK, "gh", "create").is_asked
    assert not ApprovalGrants().gate(ALLOW, "gh", "create").requires_approval
    automatic = ApprovalGrants(auto_approve=True).gate(ASK, "gh", "create")
    assert not automatic.is_asked and automatic.requires_approval
    assert automatic.decided_by == AUTO_APPROVE
    earlier = ApprovalGrants(approved_all={"gh/create": "ana"}).gate(ASK, "gh", "create")
    assert (earlier.is_asked, earlier.decided_by, earlier.is_approve_all) == (False, "ana", True)
    assert ApprovalGrants(approved_all={"gh/create": "ana"}).gate(ASK, "gh", "delete").is_asked
