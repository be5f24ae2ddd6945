"""A sign of life while an execution waits: a spinner with the elapsed time.

While the model works (after the user's message or after tool results, until
its first text) a terminal shows `thinking… 3.1s`; while a tool runs,
`tool add running… 8.0s` (`starting…` just before). The line is transient:
it disappears as soon as the conversation prints again, so the streamed text
is never mixed with it. It exists only on a terminal: pipes and `-o json`
never see it.

What the execution waits for is derived from its state after each event
(`Wait.of`), not from the events themselves, so a follower that joins late
(`stigmer logs -f`) shows the same thing as one that was there from the
start. The clock starts when the wait begins: when the follower sees it
begin, or, for a wait already under way when following starts, at the
server's timestamp of the message or tool call that began it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from stigmer.api.v1 import execution_pb2
from stigmer.resources.execution_events import PAUSED, TERMINAL_PHASES, WAITING_FOR_APPROVAL

REFRESHES_PER_SECOND = 10
# After the user's message or tool results the model is next: the agent thinks.
_MODEL_TURN_AFTER = (execution_pb2.MESSAGE_TYPE_HUMAN, execution_pb2.MESSAGE_TYPE_TOOL)


def elapsed_text(seconds: float) -> str:
    """`3.1s` under a minute, `2m05s` from then on."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def _seconds_since(timestamp: Timestamp) -> float:
    if not timestamp.seconds:
        return 0.0
    since = datetime.now(UTC) - timestamp.ToDatetime(tzinfo=UTC)
    return max(0.0, since.total_seconds())


@dataclass(frozen=True)
class Wait:
    """What an execution waits for: its label and what identifies this wait
    (a new key is a new wait, whose clock starts again)."""

    label: str
    key: tuple[str, ...]
    begun_seconds_ago: float

    @staticmethod
    def of(execution: execution_pb2.AgentExecution) -> Wait | None:
        """The wait the execution is in, or None (it ended, or it is printing)."""
        status = execution.status
        if status.phase in TERMINAL_PHASES:
            return None
        if status.phase == WAITING_FOR_APPROVAL:
            waiting = len(status.pending_approvals)
            calls = f"{waiting} tool call{'s' if waiting != 1 else ''}"
            return Wait(f"waiting for approval of {calls}…", ("approval", str(waiting)), 0.0)
        if status.phase == PAUSED:
            return Wait("paused…", ("paused",), 0.0)
        running = [
            c for c in status.tool_calls if c.status == execution_pb2.TOOL_CALL_STATUS_RUNNING
        ]
        if running:
            names = ", ".join(call.name for call in running)
            return Wait(
                f"tool {names} running…",
                ("tool", *(call.id for call in running)),
                _seconds_since(running[0].started_at),
            )
        pending = [
            c for c in status.tool_calls if c.status == execution_pb2.TOOL_CALL_STATUS_PENDING
        ]
        if pending:
            # The model has asked for tools and the next one is about to run:
            # the same wait as its run (one key), so the clock goes on.
            return Wait(f"tool {pending[0].name} starting…", ("tool", pending[0].id), 0.0)
        messages = status.messages
        if not messages:
            return Wait("thinking…", ("model", "0"), 0.0)
        last = messages[-1]
        if last.type in _MODEL_TURN_AFTER:
            return Wait("thinking…", ("model", str(len(messages))), _seconds_since(last.timestamp))
        if last.type == execution_pb2.MESSAGE_TYPE_AI and not last.content:
            # The model's turn has begun and not spoken yet: the same wait as
            # the one that began with the message before it.
            before = messages[-2] if len(messages) > 1 else None
            key = ("model", str(len(messages) - 1))
            return Wait("thinking…", key, _seconds_since(before.timestamp) if before else 0.0)
        return None


class _ElapsedSpinner:
    """A spinner whose text shows the label and the time since `started`."""

    def __init__(self, label: str, started: float) -> None:
        self.label = label
        self.started = started
        self._spinner = Spinner("dots", style="cyan")

    def __rich__(self) -> RenderableType:
        elapsed = elapsed_text(time.monotonic() - self.started)
        self._spinner.update(text=Text(f"{self.label} {elapsed}", style="dim"))
        return self._spinner


class WaitIndicator:
    """Shows the current wait on a terminal; does nothing anywhere else.

    Call `show` after each event with the execution's state and whether the
    conversation printer has a line open (then nothing is shown: the spinner
    would land in the middle of the text), and `clear` before printing.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self.is_enabled = console.is_terminal
        self._live: Live | None = None
        self._spinner: _ElapsedSpinner | None = None
        self._key: tuple[str, ...] = ()
        self._started = 0.0
        self._has_seen_state = False

    def show(self, execution: execution_pb2.AgentExecution, *, is_line_open: bool) -> None:
        wait = Wait.of(execution)
        if wait is None or not self.is_enabled:
            self._key = ()
            self._has_seen_state = True
            self.clear()
            return
        if wait.key != self._key:
            self._key = wait.key
            # A wait that began before we followed counts from its start;
            # one that begins while we watch counts from now.
            ago = 0.0 if self._has_seen_state else wait.begun_seconds_ago
            self._started = time.monotonic() - ago
        self._has_seen_state = True
        if is_line_open:
            self.clear()
            return
        if self._spinner is None or self._live is None:
            self._spinner = _ElapsedSpinner(wait.label, self._started)
            self._live = Live(
                self._spinner,
                console=self.console,
                refresh_per_second=REFRESHES_PER_SECOND,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()
        else:
            self._spinner.label = wait.label
            self._spinner.started = self._started

    def clear(self) -> None:
        """Removes the spinner line (and shows the cursor again)."""
        live, self._live, self._spinner = self._live, None, None
        if live is not None:
            live.stop()
