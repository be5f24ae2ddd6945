"""The reporting half of the run benchmark (runs.py): the tables and notes
printed from the Results that run_measurement.py measured.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable, Sequence

import harness
from harness import Sample, format_rate, format_ratio, format_seconds, ratio
from run_measurement import Compared, Results

FAILURES_SHOWN = 10


def say(text: str = "") -> None:
    print(text, flush=True)


def floors_table(results: Results) -> str:
    headers = ("floor (1 in flight)", "runs", "calls/s", "p50", "p99", "CPU/call", "CPU of")
    rows: list[list[str]] = []
    floors = results.floors
    for name, which, cpu_of in (
        ("control-plane get (SDK Get agent by id)", "get", "server"),
        ("model call (AsyncOpenAI, streamed)", "model", "model"),
        ("model call, not streamed (context)", "model_unstreamed", "model"),
        ("bare Temporal workflow (one activity)", "bare_workflow", "its worker"),
    ):
        samples: list[Sample] = [getattr(f, which) for f in floors if getattr(f, which)]
        if not samples:
            continue
        rows.append(
            [
                name,
                str(len(samples)),
                format_rate(harness.median([s.throughput for s in samples])),
                format_seconds(harness.median([s.p50 for s in samples])),
                format_seconds(harness.median([s.p99 for s in samples])),
                format_seconds(harness.median([s.server_cpu_per_call for s in samples])),
                cpu_of,
            ]
        )
    return harness.table(headers, rows)


def runs_table(results: Results) -> str:
    headers = (
        "full run (create -> COMPLETED)",
        "clients",
        "completed",
        "failed",
        "exec/s",
        "p50",
        "p99",
        "server CPU/exec",
        "model CPU/exec",
        "client CPU/exec",
        "events/exec",
    )
    rows: list[list[str]] = []
    for level in results.levels:
        runs = level.runs
        sample = runs.sample
        events = sorted(collections.Counter(o.events for o in runs.completed).items())
        rows.append(
            [
                "run + wait",
                str(sample.in_flight),
                f"{len(runs.completed)}/{len(runs.outcomes)}",
                str(len(runs.failures)),
                f"{sample.throughput:,.1f}",
                format_seconds(sample.p50),
                format_seconds(sample.p99),
                format_seconds(sample.server_cpu_per_call),
                format_seconds(runs.model_cpu_per_execution),
                format_seconds(sample.client_cpu_per_call),
                ", ".join(str(count) for count, _ in events) or "-",
            ]
        )
    return harness.table(headers, rows)


def run_ratios() -> tuple[tuple[str, Callable[[Compared], float]], ...]:
    """The ratios of a run level to its floors: (header, ratio of a level)."""

    def get_floor(level: Compared, of: str) -> float:
        return level.floor("get", of)

    return (
        ("exec/s ÷ get/s", lambda c: ratio(c.runs.sample.throughput, get_floor(c, "throughput"))),
        ("p50 ÷ get p50", lambda c: ratio(c.runs.sample.p50, get_floor(c, "p50"))),
        ("p99 ÷ get p50", lambda c: ratio(c.runs.sample.p99, get_floor(c, "p50"))),
        (
            "server CPU ÷ get's",
            lambda c: ratio(c.runs.sample.server_cpu_per_call, get_floor(c, "server_cpu_per_call")),
        ),
        ("p50 ÷ model p50", lambda c: ratio(c.runs.sample.p50, c.floor("model", "p50"))),
        ("p50 ÷ bare wf p50", lambda c: ratio(c.runs.sample.p50, bare_floor(c, "p50"))),
        (
            "exec/s ÷ bare wf/s",
            lambda c: ratio(c.runs.sample.throughput, bare_floor(c, "throughput")),
        ),
    )


def bare_floor(level: Compared, of: str) -> float:
    """A property of the bare Temporal workflow floor; NaN without Temporal."""
    if level.before.bare_workflow is None:
        return math.nan
    return level.floor("bare_workflow", of)


def ratios_table(results: Results) -> str:
    ratios = run_ratios()
    headers = ("full run vs floors", "clients", *(header for header, _ in ratios))
    rows: list[list[str]] = []
    for level in results.levels:
        rows.append(
            [
                "run + wait",
                str(level.runs.sample.in_flight),
                *(format_share(of(level)) for _, of in ratios),
            ]
        )
    return harness.table(headers, rows)


def stores_ratios_table(by_store: Sequence[tuple[str, Results]]) -> str:
    """The ratios of `ratios_table`, a row per ratio and level, a column per store."""
    headers = ("full run vs floors", "clients", *(store for store, _ in by_store))
    rows: list[list[str]] = []
    for header, of in run_ratios():
        for index, level in enumerate(by_store[0][1].levels):
            rows.append(
                [
                    header,
                    str(level.runs.sample.in_flight),
                    *(format_share(of(results.levels[index])) for _, results in by_store),
                ]
            )
    return harness.table(headers, rows)


def format_share(value: float) -> str:
    """A ratio, with enough digits to read one far below 1; '-' when it does not apply."""
    if math.isnan(value):
        return "-"
    return f"{value:.4f}x" if 0 < value < 0.1 else format_ratio(value)


def phases_table(results: Results) -> str:
    headers = (
        "where a run's time goes (server clock)",
        "clients",
        "queued p50",
        "running p50",
        "outside p50",
        "run p50",
    )
    rows: list[list[str]] = []
    for level in results.levels:
        runs = level.runs
        queued = runs.p50_of(lambda o: o.queued_seconds)
        running = runs.p50_of(lambda o: o.running_seconds)
        outside = runs.p50_of(lambda o: o.seconds - o.queued_seconds - o.running_seconds)
        rows.append(
            [
                "created -> IN_PROGRESS -> COMPLETED",
                str(runs.sample.in_flight),
                format_seconds(queued),
                format_seconds(running),
                format_seconds(outside),
                format_seconds(runs.sample.p50),
            ]
        )
    return harness.table(headers, rows)


def failures_report(results: Results) -> list[str]:
    lines: list[str] = []
    for level in results.levels:
        failures = level.runs.failures
        if not failures:
            continue
        lines.append(
            f"FAILED runs at {level.runs.sample.in_flight} clients: {len(failures)} "
            "(warm-up included; none of them is timed or counted as completed)"
        )
        by_error = collections.Counter(f.error for f in failures)
        for error, count in by_error.most_common(FAILURES_SHOWN):
            example = next(f.execution_id for f in failures if f.error == error)
            lines.append(f"  {count} x {error} (e.g. execution {example or '<not created>'})")
    return lines


def events_report(results: Results) -> list[str]:
    """The events each completed execution reported, checked against the log."""
    completed = [o for level in results.levels for o in level.runs.completed]
    stored = results.stored_events
    mismatched = [o.execution_id for o in completed if stored.get(o.execution_id) != o.events]
    counts = collections.Counter(stored.get(o.execution_id, 0) for o in completed)
    lines = [
        "events per execution in the store's event log: "
        + ", ".join(f"{count} events x {n}" for count, n in sorted(counts.items())),
    ]
    if results.event_kinds:
        lines.append(f"  in order: {', '.join(results.event_kinds)}")
    if mismatched:
        lines.append(
            f"  MISMATCH: {len(mismatched)} executions' last_sequence differs from their "
            f"event log (e.g. {mismatched[0]})"
        )
    else:
        lines.append(f"  last_sequence equals the event log's count for all {len(completed)}")
    return lines


def report(part: str, results: Results) -> None:
    say(f"== Full runs vs. floors (instant scripted model), {part} ==")
    say(floors_table(results))
    say(
        f"Floors: medians of {len(results.floors)} measurements (before, between and after "
        "the run levels). CPU/call: of the Stigmer server process for get, of the model "
        "process for model calls."
    )
    say()
    say(runs_table(results))
    say(
        "exec/s: COMPLETED executions per second of wall time; CPU/exec: CPU seconds of "
        "each process over the measurement, per COMPLETED execution (client = this "
        "process; server = the Stigmer server and, on Temporal, its worker); events/exec: "
        "status.last_sequence of the completed executions."
    )
    say()
    say(ratios_table(results))
    say(
        "Ratios divide by the mean of the floors measured just before and just after each "
        "level (get and model floors at 1 in flight for both levels)."
    )
    say()
    say(phases_table(results))
    say(
        "queued: created_at -> started_at (the claim); running: started_at -> completed_at; "
        "outside: the rest of the client's run latency: run()'s agent Get and its Create "
        "before created_at, the Subscribe stream's start and delivery after completed_at."
    )
    say()
    for line in events_report(results):
        say(line)
    builds = results.client_builds
    if builds:
        say(
            "AsyncOpenAI(...) + close() in-process (what the engine saves per execution "
            "by keeping one per model): "
            f"p50 {format_seconds(harness.percentile(builds, 0.5))} over {len(builds)}"
        )
    failures = failures_report(results)
    total = sum(len(level.runs.outcomes) for level in results.levels)
    say()
    if failures:
        for line in failures:
            say(line)
    else:
        warmups = sum(len(level.runs.warmup_outcomes) for level in results.levels)
        say(f"all {total} measured runs (and {warmups} warm-up runs) ended COMPLETED")


def report_parts(by_part: Sequence[tuple[str, Results]]) -> None:
    names = " vs ".join(part for part, _ in by_part)
    say(f"== Side by side: {names} (ratios from the reports above) ==")
    say(stores_ratios_table(by_part))
    say(
        "Each part's runs are divided by floors measured on the same server (the get), "
        "the same model and, on Temporal, the same dev server, just before and after them."
    )
    say()
