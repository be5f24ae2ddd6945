"""A seeded fuzzer over the manifest reader and `stigmer apply`.

Manifests made by tests/fuzz/manifest_inputs.py (valid ones mutated as
text and as structure, and hostile ones: bombs, tags, deep nesting, odd
scalars, bytes) are read for a bounded time, asserting that reading never
raises, that every problem names a line of the file, that a manifest is
refused exactly when a problem was found, and that what is accepted reads
back the same after `get -o yaml`'s rendering. Then a sample goes through
the real `stigmer apply` against a real server: it exits 0 (and everything
is there) or 2 (and nothing changed), never with a traceback; a reference
to something the server does not hold is the one exit 1 allowed, and it
changes nothing either.

The seed is printed; `STIGMER_FUZZ_SEED=N` replays a run's choices, and a
failure shows the case and keeps its bytes in the test's tmp_path.
`STIGMER_FUZZ_SECONDS` sets each part's time (default 20; the whole
file stays under a minute).
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from stigmer.client import Client
from stigmer.errors import InvalidArgument
from stigmer.resources.kinds import AGENT_EXECUTION, KINDS, kind_by_alias
from stigmer.resources.manifests import (
    dump_yaml,
    inspect_manifest,
    parse_manifest,
    to_manifest_dict,
)
from stigmer.testing.cli import Cli
from tests.fuzz.manifest_inputs import ManifestMaker, seed_manifests
from tests.fuzz.report import report

SEED = int(os.environ.get("STIGMER_FUZZ_SEED", str(random.SystemRandom().randrange(2**32))))
SECONDS = float(os.environ.get("STIGMER_FUZZ_SECONDS", "20"))
SOURCE = "fuzz.yaml"
MAX_FAILURES = 10

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Failure:
    case: int
    how: str
    what: str
    kept: Path


class Failures:
    """The first few failures, each with its case kept on disk."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.found: list[Failure] = []

    def add(self, case: int, how: str, data: bytes, what: str) -> None:
        if len(self.found) < MAX_FAILURES:
            kept = self.folder / f"case-{case}.yaml"
            kept.write_bytes(data)
            self.found.append(Failure(case, how, what, kept))

    def report(self) -> str:
        lines = [f"seed {SEED} (STIGMER_FUZZ_SEED={SEED} replays it):"]
        for failure in self.found:
            lines.append(f"- case {failure.case} [{failure.how}] kept in {failure.kept}")
            lines.append("  " + failure.what.replace("\n", "\n  "))
        return "\n".join(lines)


def check_reading(data: bytes) -> tuple[str, str]:
    """(accepted or refused, what is wrong with how `data` was read or '')."""
    readings = inspect_manifest(data, SOURCE)
    # Lines as YAML counts them: CR, LF, CRLF, NEL, LS and PS each end one.
    text = data.decode("utf-8", "replace")
    breaks = re.findall("\r\n|[\r\n\x85\u2028\u2029]", text)
    line_count = len(breaks) + (0 if breaks and text.endswith(breaks[-1]) else 1)
    for reading in readings:
        for problem in reading.problems:
            if not 1 <= problem.line <= line_count or not problem.message:
                return "refused", f"problem outside the file: {problem!r} ({line_count} lines)"
    is_refused = any(reading.problems for reading in readings)
    try:
        documents = parse_manifest(data, SOURCE)
    except InvalidArgument as error:
        if not is_refused and "defined twice" not in error.message:
            return "refused", f"refused with no problem inspected: {error.message}"
        return "refused", ""
    if is_refused:
        return "accepted", "accepted though inspecting found problems"
    for document in documents:
        rendered = dump_yaml([to_manifest_dict(document.resource)])
        try:
            [again] = parse_manifest(rendered, "rendered.yaml")
        except InvalidArgument as error:
            return "accepted", f"{document.label} as rendered is refused: {error.message}"
        if again.resource != document.resource:
            return "accepted", f"{document.label} reads back otherwise:\n{rendered}"
    return "accepted", ""


def is_accepted(data: bytes) -> bool:
    try:
        parse_manifest(data, SOURCE)
    except InvalidArgument:
        return False
    return True


def test_reading_fuzzed_manifests_never_raises_and_names_lines(tmp_path: Path) -> None:
    print(f"manifest fuzz seed {SEED}")
    maker = ManifestMaker(random.Random(SEED))
    failures = Failures(tmp_path)
    outcomes: Counter[str] = Counter()
    deadline = time.monotonic() + SECONDS
    case = 0
    while time.monotonic() < deadline:
        case += 1
        how, data = maker.make()
        try:
            outcome, wrong = check_reading(data)
        except Exception:
            outcome, wrong = "raised", traceback.format_exc(limit=-6)
        outcomes[outcome] += 1
        if wrong:
            failures.add(case, how, data, wrong)
    report(f"manifest fuzz seed {SEED}: {case} manifests read: {dict(outcomes)}")
    assert not failures.found, failures.report()
    # A fuzzer that only ever makes garbage, or only valid files, tests little.
    assert outcomes["accepted"] >= 10 and outcomes["refused"] >= 50, dict(outcomes)


def snapshot(client: Client) -> dict[tuple[str, str], int]:
    """(kind, slug) -> version of everything the server holds."""
    held = {
        (info.name, resource.metadata.slug): resource.metadata.version
        for info in KINDS
        if info is not AGENT_EXECUTION
        for resource in client.list(info)
    }
    for execution in client.list_executions():
        held[(AGENT_EXECUTION.name, execution.metadata.id)] = execution.metadata.version
    return held


def run_apply(cli: Cli, path: Path) -> tuple[int, str, str]:
    completed = subprocess.run(
        [sys.executable, "-m", "stigmer.cli.main", "apply", "-f", str(path)],
        capture_output=True,
        env=cli.env,
        cwd=cli.cwd,
        timeout=60,
        check=False,
    )
    return (
        completed.returncode,
        completed.stdout.decode("utf-8", "replace"),
        completed.stderr.decode("utf-8", "replace"),
    )


def check_apply(cli: Cli, client: Client, path: Path) -> tuple[str, str]:
    """(outcome, what is wrong or '')."""
    before = snapshot(client)
    code, stdout, stderr = run_apply(cli, path)
    after = snapshot(client)
    if "Traceback" in stderr or "internal error" in stderr:
        return "crashed", stderr
    if code == 0:
        applied = set()
        for line in stdout.splitlines():
            short, _, slug = line.split()[0].partition("/")
            applied.add((kind_by_alias(short).name, slug))
        missing = applied - after.keys()
        return "applied", f"reported applied but not held: {missing}" if missing else ""
    if after != before:
        changed = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
        return "half-written", f"exit {code} yet changed {sorted(changed)}\n{stderr}"
    if code == 2:
        return "refused", ""
    if code == 1 and " not found" in stderr:
        return "dangling", ""
    return "unexpected", f"exit {code}\n{stderr}"


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_sample_applied_exits_0_or_2_and_never_half_writes(
    cli: Cli, client: Client, tmp_path: Path
) -> None:
    print(f"manifest fuzz seed {SEED}")
    for index, text in enumerate(seed_manifests()):
        client.apply(text, source=f"seed-{index}.yaml")  # references then resolve
    maker = ManifestMaker(random.Random(SEED + 1))
    failures = Failures(tmp_path)
    outcomes: Counter[str] = Counter()
    deadline = time.monotonic() + SECONDS
    case = 0
    while time.monotonic() < deadline or case < 4:
        case += 1
        how, data = maker.make()
        if not how.startswith("hostile") and case % 2:
            # Half the sample is what the reader accepts: those reach the server.
            while not is_accepted(data):
                how, data = maker.make()
        path = tmp_path / f"sample-{case}.yaml"
        path.write_bytes(data)
        outcome, wrong = check_apply(cli, client, path)
        outcomes[outcome] += 1
        if wrong:
            failures.add(case, how, data, wrong)
    report(f"manifest fuzz seed {SEED}: {case} manifests applied: {dict(outcomes)}")
    assert not failures.found, failures.report()
