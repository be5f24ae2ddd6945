"""Skill folders and hostile archives for the tests."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

SKILL_MD = """\
---
name: release-notes
description: Writes release notes from a list of merged changes.
---
# Release notes

Group the changes by area; see template.md for the layout.
"""


def write_skill(folder: Path, body: str = SKILL_MD, *, template: str = "## Added\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "SKILL.md").write_text(body)
    (folder / "template.md").write_text(template)
    return folder


def zip_of(entries: dict[str, bytes], *, symlink: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()
