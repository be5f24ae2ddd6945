"""Writing a file so that readers see the old content or the new, never half.

Settings and the server's address record are read by other processes at any
moment (every client command reads both); a plain write would let one of
them see a truncated file. The new content goes to a temporary file in the
same folder, which is then renamed over the old one: a rename within one
file system is atomic.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_file_atomically(path: Path, text: str, *, mode: int = 0o600) -> None:
    """Replaces `path` with `text` in one step; the file gets `mode`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
