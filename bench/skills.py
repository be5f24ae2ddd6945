"""What a skill costs: pushing one (a new version, or content already
pushed) and reading a folder into its canonical archive, each beside an
agent `get` on the same server, measured in the same run.

    python bench/skills.py [--store sqlite|postgres|both] [--count N] [--files N]

A push reads and checks the whole archive on the server (every limit,
SKILL.md), rebuilds the canonical archive to hash it, and writes the
version and the archive in one transaction; an unchanged push does all but
the writes. The ratios say how much heavier that is than the cheapest read.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import format_ratio, format_seconds, median, table, time_each

import stigmer.runtime.loop  # noqa: F401  (the model SDKs: imported before a server starts)
from stigmer.client import Client
from stigmer.resources.skill_archives import content_of, read_folder
from stigmer.testing.postgres import TemporaryPostgres
from stigmer.testing.server import ServerThread

SKILL_MD = b"---\nname: bench\ndescription: A skill to measure pushes with.\n---\nDo the work.\n"
AGENT = """\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata: {name: reader}
spec:
  instructions: Read things for the benchmark.
"""


def folder_files(files: int) -> dict[str, bytes]:
    body = {f"docs/part-{n:03}.md": (f"Section {n}\n" * 200).encode() for n in range(files)}
    return {"SKILL.md": SKILL_MD, **body}


def measure(store_url: str, count: int, files: int) -> list[list[str]]:
    base = folder_files(files)
    with ServerThread(store_url) as server, Client(server.address) as client:
        client.apply(AGENT)
        client.push_skill(content_of(base))
        get = time_each(lambda _: client.get("agent", "reader"), count)
        unchanged = time_each(lambda _: client.push_skill(content_of(base)), count)
        new = time_each(
            lambda n: client.push_skill(content_of({**base, "version.txt": str(n).encode()})),
            count,
        )
    floor = median(get)
    return [
        ["agent get (floor)", format_seconds(floor), format_ratio(1.0)],
        [
            "push, unchanged",
            format_seconds(median(unchanged)),
            format_ratio(median(unchanged) / floor),
        ],
        ["push, new version", format_seconds(median(new)), format_ratio(median(new) / floor)],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--files", type=int, default=100)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "skill"
        for relative, data in folder_files(options.files).items():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_bytes(data)
        started = time.perf_counter()
        content = read_folder(folder)
        reading = time.perf_counter() - started
        size = content.size_bytes
        print(
            f"read_folder + hash of {options.files + 1} files ({size} bytes): "
            f"{format_seconds(reading)}; canonical zip {len(content.canonical_zip())} bytes"
        )
        stores = ("sqlite", "postgres") if options.store == "both" else (options.store,)
        for store in stores:
            if store == "sqlite":
                rows = measure(str(Path(scratch) / "bench.db"), options.count, options.files)
            else:
                with TemporaryPostgres() as postgres:
                    _, url = postgres.new_database()
                    rows = measure(url, options.count, options.files)
            print(f"\n{store}: median of {options.count} calls, {options.files + 1} files each")
            print(table(["operation", "median", "vs get"], rows))


if __name__ == "__main__":
    main()
