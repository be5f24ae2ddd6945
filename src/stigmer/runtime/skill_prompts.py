"""How an agent learns of its skills: progressive disclosure.

The system prompt lists each skill's name and description only; the model
opens a skill when the task needs it, with the built-in `read_skill` tool
(builtin_tools.py), and a file of it the same way. A run with ten skills
pays for ten lines, not ten manuals.
"""

from __future__ import annotations

from collections.abc import Sequence

from stigmer.runtime.contract import SkillInfo

READ_SKILL = "read_skill"


def with_skills(instructions: str, skills: Sequence[SkillInfo]) -> str:
    """The agent's instructions followed by the list of its skills."""
    if not skills:
        return instructions
    lines = [
        instructions.rstrip(),
        "",
        "## Skills",
        f"You have these skills. Before a task one of them covers, call {READ_SKILL}(name) "
        f"to read its instructions; {READ_SKILL}(name, path) reads a file it mentions.",
    ]
    lines += [f"- {skill.name}: {skill.description}" for skill in skills]
    return "\n".join(lines)
