"""Decisions on tool calls that wait for a person, as the SDK takes them.

When the agent's tool policy asks about a call, the execution enters
WAITING_FOR_APPROVAL and `status.pending_approvals` lists every waiting call
of the model's turn; it goes on only once each is decided. A `Decision`
names one waiting call and what to do with it:

    def decide(pending):
        return [Decision.approve(call) for call in pending if call.tool == "add"]

    final = client.run("calculator", "What is 2 + 3?", on_approval=decide)

`PendingRound` tracks which waiting calls were already put to the callback,
so that a follower asks once per call however many updates arrive while the
execution waits, and asks about all the calls of a turn together.
`submission_order` puts the decisions in the order they are submitted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stigmer.api.v1 import execution_pb2
from stigmer.errors import InvalidArgument
from stigmer.resources.execution_events import WAITING_FOR_APPROVAL

ACTIONS: dict[str, execution_pb2.ApprovalAction.ValueType] = {
    "approve": execution_pb2.APPROVAL_ACTION_APPROVE,
    "approve_all": execution_pb2.APPROVAL_ACTION_APPROVE_ALL,
    "skip": execution_pb2.APPROVAL_ACTION_SKIP,
    "reject": execution_pb2.APPROVAL_ACTION_REJECT,
    "edit": execution_pb2.APPROVAL_ACTION_EDIT,
}
ACTION_NAMES = {value: name for name, value in ACTIONS.items()}

Pending = execution_pb2.PendingApproval
# The callback of `run(..., on_approval=)` and `wait(..., on_approval=)`:
# the waiting calls in, the decisions out (async callbacks may be awaited by
# the AsyncClient). Calls it leaves undecided keep waiting for someone else.
ApprovalCallback = Callable[
    [list[Pending]], Iterable["Decision"] | Awaitable[Iterable["Decision"] | None] | None
]


def action_of(action: str | int) -> execution_pb2.ApprovalAction.ValueType:
    """The ApprovalAction of a name (`approve`, `approve_all`, `skip`,
    `reject`, `edit`, case and dashes ignored) or of an enum value.

    Raises:
        InvalidArgument: no such action (field `action`).
    """
    if isinstance(action, int):
        if action in ACTION_NAMES:
            return action  # type: ignore[return-value]
    else:
        found = ACTIONS.get(action.lower().replace("-", "_").removeprefix("approval_action_"))
        if found is not None:
            return found
    raise InvalidArgument.for_field(
        "action", f"unknown approval action {action!r} (use {', '.join(ACTIONS)})"
    )


def _call_id(call: Pending | str) -> str:
    return call if isinstance(call, str) else call.tool_call_id


@dataclass(frozen=True)
class Decision:
    """What to do with one waiting tool call; `edited_args` only for `edit`."""

    tool_call_id: str
    action: str
    comment: str = ""
    edited_args: Mapping[str, Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        # One spelling of each action (`APPROVE_ALL`, `approve-all`, the enum
        # value), so that callers compare names only.
        object.__setattr__(self, "action", ACTION_NAMES[action_of(self.action)])
        if self.action == "edit" and self.edited_args is None:
            raise InvalidArgument.for_field("edited_args", "an edit needs the edited arguments")

    @classmethod
    def approve(cls, call: Pending | str, *, comment: str = "") -> Decision:
        return cls(_call_id(call), "approve", comment)

    @classmethod
    def approve_all(cls, call: Pending | str, *, comment: str = "") -> Decision:
        """This call and every later call of the same server/tool in the execution."""
        return cls(_call_id(call), "approve_all", comment)

    @classmethod
    def skip(cls, call: Pending | str, *, comment: str = "") -> Decision:
        return cls(_call_id(call), "skip", comment)

    @classmethod
    def reject(cls, call: Pending | str, comment: str = "") -> Decision:
        """The call is not run; `comment` goes back to the model as its result."""
        return cls(_call_id(call), "reject", comment)

    @classmethod
    def edit(cls, call: Pending | str, args: Mapping[str, Any], *, comment: str = "") -> Decision:
        """Run the call with `args` instead (checked against the tool's input schema)."""
        return cls(_call_id(call), "edit", comment, dict(args))


def pending_of(execution: execution_pb2.AgentExecution) -> list[Pending]:
    """The calls the execution waits on (none unless it is WAITING_FOR_APPROVAL)."""
    if execution.status.phase != WAITING_FOR_APPROVAL:
        return []
    return list(execution.status.pending_approvals)


class PendingRound:
    """The waiting calls not yet put to whoever decides them."""

    def __init__(self) -> None:
        self._asked: set[str] = set()

    def needs_listing(self, execution: execution_pb2.AgentExecution) -> bool:
        """True when the execution waits but its state lists no call (the
        update that lists them has not been applied yet): read it again."""
        status = execution.status
        return status.phase == WAITING_FOR_APPROVAL and not status.pending_approvals

    def take_new(self, execution: execution_pb2.AgentExecution) -> list[Pending]:
        """The waiting calls not asked about yet, and marks them asked."""
        fresh = [p for p in pending_of(execution) if p.tool_call_id not in self._asked]
        self._asked.update(p.tool_call_id for p in fresh)
        # Copies: a follower's state keeps changing under later updates.
        return [_copy(p) for p in fresh]


def _copy(pending: Pending) -> Pending:
    copied = Pending()
    copied.CopyFrom(pending)
    return copied


def submission_order(decisions: Iterable[Decision], pending: Sequence[Pending]) -> list[Decision]:
    """The decisions in the order of the calls they decide (then any others
    in their own order), one per call: the last one given wins.

    Approve-all decisions go first: they may settle later calls of the same
    tool, which then need no decision of their own.
    """
    last: dict[str, Decision] = {}
    for decision in decisions:
        last.pop(decision.tool_call_id, None)
        last[decision.tool_call_id] = decision
    rank = {call.tool_call_id: index for index, call in enumerate(pending)}
    ordered = sorted(
        last.values(),
        key=lambda d: (d.action != "approve_all", rank.get(d.tool_call_id, len(rank))),
    )
    return ordered
