"""The tools the runtime itself offers, beside the MCP servers' tools.

Today that is `read_skill(name, path?)`, offered when the run has skills:
without a path it returns the skill's SKILL.md body (the front matter is
already in the system prompt), with one it returns that file of the skill's
folder. Other built-in tools (a planner's todo list, delegation to
sub-agents) join it here: each is a `BuiltinTool` with its spec and its call,
and `BuiltinTools` routes the model's calls to them before the tool servers.

A built-in tool's failure is data, as an MCP tool's is: an error result the
model reads (an unknown skill or file, a file that is not text).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from stigmer.errors import InvalidArgument
from stigmer.resources.skill_archives import SkillContent, check_path, read_archive
from stigmer.runtime.contract import SkillInfo, SkillSource, ToolServerError
from stigmer.runtime.conversation import ToolSpec
from stigmer.runtime.skill_prompts import READ_SKILL
from stigmer.runtime.tools import ToolResult

# What a built-in tool's calls record as their server.
BUILTIN_SERVER = "stigmer"
_LISTED_FILES = 50


class BuiltinTool(Protocol):
    @property
    def spec(self) -> ToolSpec: ...

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult: ...


@dataclass
class ReadSkillTool:
    skills: Sequence[SkillInfo]
    source: SkillSource

    def __post_init__(self) -> None:
        self._contents: dict[str, SkillContent] = {}

    @property
    def spec(self) -> ToolSpec:
        names = [skill.name for skill in self.skills]
        return ToolSpec(
            READ_SKILL,
            "Read one of your skills: its instructions (SKILL.md), or a file of it by path.",
            {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "enum": names, "description": "The skill's name"},
                    "path": {
                        "type": "string",
                        "description": "A file of the skill, relative to its folder (optional)",
                    },
                },
                "required": ["name"],
            },
        )

    async def _content(self, skill: SkillInfo) -> SkillContent:
        if skill.hash not in self._contents:
            try:
                self._contents[skill.hash] = read_archive(await self.source.archive(skill))
            except InvalidArgument as error:
                raise ToolServerError(f"skill {skill.name!r}: {error.message}") from None
        return self._contents[skill.hash]

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        name, path = arguments.get("name"), arguments.get("path") or ""
        by_name = {skill.name: skill for skill in self.skills}
        if not isinstance(name, str) or name not in by_name:
            return ToolResult(f"unknown skill {name!r}; the skills are: {sorted(by_name)}", True)
        if not isinstance(path, str):
            return ToolResult("path must be text", True)
        try:
            content = await self._content(by_name[name])
        except ToolServerError as error:
            return ToolResult(str(error), True)
        if not path:
            return ToolResult(content.document.body, False)
        try:
            wanted = check_path(path)
        except InvalidArgument as error:
            return ToolResult(error.message, True)
        data = content.files.get(wanted)
        if data is None:
            listed = list(content.files)[:_LISTED_FILES]
            return ToolResult(f"skill {name!r} has no file {path!r}; its files: {listed}", True)
        try:
            return ToolResult(data.decode("utf-8"), False)
        except UnicodeDecodeError:
            return ToolResult(f"{path!r} is not UTF-8 text ({len(data)} bytes)", True)


class BuiltinTools:
    """The built-in tools one run offers, by name."""

    def __init__(self, skills: Sequence[SkillInfo], source: SkillSource | None) -> None:
        tools: list[BuiltinTool] = []
        if skills and source is not None:
            tools.append(ReadSkillTool(skills, source))
        self._tools = {tool.spec.name: tool for tool in tools}

    def offers(self, name: str) -> bool:
        return name in self._tools

    def offered_with(self, server_tools: Sequence[ToolSpec]) -> tuple[ToolSpec, ...]:
        """The built-in tools, then the servers' (one a built-in shadows is not offered)."""
        return (
            *(tool.spec for tool in self._tools.values()),
            *(spec for spec in server_tools if spec.name not in self._tools),
        )

    async def call(self, name: str, arguments: Mapping[str, Any]) -> ToolResult:
        return await self._tools[name].call(arguments)
