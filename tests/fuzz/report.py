"""Where a fuzzer says what it ran: its captured output, and, when
`STIGMER_FUZZ_REPORT` names a file, that file too. `make test` sets it and
prints the file at the end, so a CI log shows each fuzzer's seed and counts
even though pytest (and its worker processes) keep a passing test's output."""

from __future__ import annotations

import os


def report(line: str) -> None:
    print(line)
    path = os.environ.get("STIGMER_FUZZ_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(line.strip() + "\n")
