"""`<home>/server.json`: where the server of a Stigmer home listens, and who it is.

Clients find a server by `--server`, `STIGMER_SERVER` or the config file's
`server`; when none is given, a server running from the same STIGMER_HOME is
found through this file, so a server started on port 0 (or on a port set only
in its own shell) is still the one `stigmer get agents` talks to. The server
writes it once it serves (the address with the port it really bound, its pid,
version, store and engine) and removes it when it stops cleanly.

A killed server leaves its file behind: a file whose pid is gone is stale.
Readers ignore it; `stigmer server status` and `stigmer server start` remove
it. A live pid alone does not prove the server answers (pids are reused), so
`stigmer server status` also asks the server for its own pid.

The file is written atomically, mode 0600; the store URL in it carries no
password.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from stigmer.atomic_files import write_file_atomically

FILE_NAME = "server.json"


@dataclass(frozen=True)
class ServerRecord:
    address: str  # host:port clients connect to
    pid: int
    version: str
    store: str  # the store's path or URL, without its password
    engine: str  # embedded or temporal
    started_at: str  # ISO 8601, UTC
    console_url: str = ""  # the web console's URL; empty when it is off


def server_record_path(home: Path) -> Path:
    return home / FILE_NAME


def write_server_record(home: Path, record: ServerRecord) -> None:
    write_file_atomically(
        server_record_path(home), json.dumps(asdict(record), indent=2) + "\n", mode=0o600
    )


def read_server_record(home: Path) -> ServerRecord | None:
    """The recorded server, alive or not; None when there is no readable record."""
    try:
        loaded = json.loads(server_record_path(home).read_text())
        return ServerRecord(
            address=str(loaded["address"]),
            pid=int(loaded["pid"]),
            version=str(loaded.get("version", "")),
            store=str(loaded.get("store", "")),
            engine=str(loaded.get("engine", "")),
            started_at=str(loaded.get("started_at", "")),
            console_url=str(loaded.get("console_url", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def live_server_record(home: Path) -> ServerRecord | None:
    """The recorded server when its process still runs."""
    record = read_server_record(home)
    return record if record is not None and is_process_alive(record.pid) else None


def remove_server_record(home: Path, pid: int) -> bool:
    """Removes the record if it is the one of `pid` (another server of the
    same home may have written its own since); whether it did."""
    record = read_server_record(home)
    if record is None or record.pid != pid:
        return False
    with contextlib.suppress(FileNotFoundError):
        server_record_path(home).unlink()
    return True


def is_process_alive(pid: int) -> bool:
    """Whether a process with this pid runs (a zombie, dead but not yet
    reaped by its parent, does not)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (macOS): the signal's answer stands
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]
