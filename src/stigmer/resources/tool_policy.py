"""Tool policy: which tools an agent calls on its own, which a person is
asked about, and which are never offered to the model.

A rule is a pattern `<mcp-server-slug>/<tool>` where `*` matches any run of
characters (`github/create_*`, `shell/*`, `*/delete_*`). Rules come in three
lists, and within one layer the strictest that matches wins: deny, then ask,
then allow. There are two layers: an McpServer's own `spec.tool_policy` is
the default for its tools, and the agent's `spec.tool_policy` overrides it;
the agent's rules are asked first and the server's only when none of the
agent's names the tool.

A tool no rule names is asked about when its server annotates it
`destructiveHint: true`, and allowed otherwise. The MCP specification's own
default for a missing annotation is "destructive"; following it would stop
every call of every unannotated tool (most tools of most servers today), so
an annotation is taken at its word only when a server gives it.

Everything here is pure (no I/O): the runtime decides with it per call, and
the server checks the patterns when an Agent or McpServer is applied.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

# A server part: a slug with globs; a tool part: an MCP tool name with globs.
_SERVER_PART = re.compile(r"[a-z0-9*][a-z0-9*-]*")
_TOOL_PART = re.compile(r"[A-Za-z0-9_.*-]+")
MAX_PATTERN_LENGTH = 256


class ToolDecision(StrEnum):
    ALLOW = "allow"
    ASK = "ask"
    DENY = "deny"


def pattern_problem(pattern: str) -> str | None:
    """What is wrong with a rule's pattern, or None when it is well formed."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        return f"must be at most {MAX_PATTERN_LENGTH} characters"
    server, slash, tool = pattern.partition("/")
    if not slash:
        return f"{pattern!r} must be <mcp-server-slug>/<tool> (e.g. github/create_*)"
    if not _SERVER_PART.fullmatch(server):
        return (
            f"{pattern!r}: the server part {server!r} must be a slug "
            "(lowercase letters, digits, '-') or '*' globs"
        )
    if not _TOOL_PART.fullmatch(tool):
        return (
            f"{pattern!r}: the tool part {tool!r} must be a tool name "
            "(letters, digits, '_', '-', '.') or '*' globs"
        )
    return None


def _matches(pattern: str, server_names: Iterable[str], tool: str) -> bool:
    server_glob, _, tool_glob = pattern.partition("/")
    # fnmatchcase: '*' only; '?' and '[...]' cannot appear (pattern_problem).
    return fnmatch.fnmatchcase(tool, tool_glob) and any(
        fnmatch.fnmatchcase(name, server_glob) for name in server_names
    )


@dataclass(frozen=True)
class ToolRules:
    """One layer's rules (an agent's or an McpServer's tool_policy)."""

    allow: tuple[str, ...] = ()
    ask: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    def decide(self, server_names: Iterable[str], tool: str) -> ToolDecision | None:
        """The strictest rule of this layer naming the tool, or None."""
        names = tuple(server_names)
        for decision, patterns in (
            (ToolDecision.DENY, self.deny),
            (ToolDecision.ASK, self.ask),
            (ToolDecision.ALLOW, self.allow),
        ):
            if any(_matches(pattern, names, tool) for pattern in patterns):
                return decision
        return None

    @property
    def is_empty(self) -> bool:
        return not (self.allow or self.ask or self.deny)


@dataclass(frozen=True)
class ServerRules:
    """An McpServer's default rules, with the slug its patterns may name
    (the agent may call the server by another name)."""

    slug: str
    rules: ToolRules


@dataclass(frozen=True)
class ToolPolicy:
    """The policy of one execution's tools: the agent's rules over each
    server's defaults (keyed by the server's name in the agent)."""

    agent: ToolRules = field(default_factory=ToolRules)
    servers: Mapping[str, ServerRules] = field(default_factory=dict)

    def decide(self, server: str, tool: str, *, is_destructive: bool) -> ToolDecision:
        """Whether the tool `tool` of the agent's server `server` is allowed,
        asked about or denied."""
        default = self.servers.get(server)
        names = (server, default.slug) if default and default.slug else (server,)
        chosen = self.agent.decide(names, tool)
        if chosen is None and default is not None:
            chosen = default.rules.decide(names, tool)
        if chosen is not None:
            return chosen
        return ToolDecision.ASK if is_destructive else ToolDecision.ALLOW


@dataclass(frozen=True)
class Gate:
    """What happens to one call: run it (possibly approved without asking,
    then `decided_by` says by what), or ask a person first."""

    is_asked: bool
    requires_approval: bool = False
    decided_by: str = ""  # for a call approved without asking
    is_approve_all: bool = False


AUTO_APPROVE = "auto-approve"


@dataclass(frozen=True)
class ApprovalGrants:
    """Asks that need no person: the execution's auto_approve, and the
    server/tool pairs an APPROVE_ALL decision approved (`"server/tool"` to
    who decided it)."""

    auto_approve: bool = False
    approved_all: Mapping[str, str] = field(default_factory=dict)

    def gate(self, decision: ToolDecision, server: str, tool: str) -> Gate:
        """The gate of a call the policy did not deny."""
        if decision != ToolDecision.ASK:
            return Gate(is_asked=False)
        decider = self.approved_all.get(f"{server}/{tool}")
        if decider is not None:
            return Gate(
                is_asked=False, requires_approval=True, decided_by=decider, is_approve_all=True
            )
        if self.auto_approve:
            return Gate(is_asked=False, requires_approval=True, decided_by=AUTO_APPROVE)
        return Gate(is_asked=True, requires_approval=True)
