"""An execution's skills unpacked on disk, for its MCP tool servers.

A tool server that works on files (a linter, a template renderer) may need
a skill's files, not only the model reading them through read_skill. So
when an execution has skills and tool servers, its skills are unpacked
under a working folder of the server's (or worker's) data dir,
`<work>/<execution id>/<skill slug>/`, and the folder is given to the tool
servers as STIGMER_SKILLS_DIR (in their environment, and for `${...}` in
their settings). The folder is removed when the execution ends.

The files were checked when the archive was read (skill_archives.py); slugs
are safe as folder names, names from SKILL.md are not, hence slugs.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Sequence
from pathlib import Path

from stigmer.errors import InvalidArgument
from stigmer.resources.skill_archives import read_archive, unpack
from stigmer.runtime.contract import SkillInfo, SkillSource, ToolServerError

SKILLS_DIR_VARIABLE = "STIGMER_SKILLS_DIR"
_COMPLETE = ".complete"


async def unpack_skills(folder: Path, skills: Sequence[SkillInfo], source: SkillSource) -> None:
    """Unpacks every skill under `folder` unless a complete unpacking is there.

    Raises:
        ToolServerError: a skill's archive cannot be had or read.
    """
    if (folder / _COMPLETE).exists():
        return
    partial = folder.with_name(folder.name + ".partial")
    await asyncio.to_thread(shutil.rmtree, partial, True)
    for skill in skills:
        try:
            content = read_archive(await source.archive(skill))
        except InvalidArgument as error:
            raise ToolServerError(f"skill {skill.slug!r}: {error.message}") from None
        await asyncio.to_thread(unpack, content, partial / skill.slug)
    partial.mkdir(parents=True, exist_ok=True)
    (partial / _COMPLETE).touch()
    await asyncio.to_thread(shutil.rmtree, folder, True)
    partial.rename(folder)


def remove_skills(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(folder.with_name(folder.name + ".partial"), ignore_errors=True)
