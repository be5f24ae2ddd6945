"""SKILL.md: a skill's front matter (name, description) and its body.

    ---
    name: release-notes
    description: Writes release notes from a list of merged changes.
    ---
    # How to write release notes
    ...

The front matter is YAML, read by the manifest reader (manifest_yaml.py,
with its limits on aliases and nesting). `name` and `description` are
required text; other keys are allowed (other tools put theirs there) and
ignored. The name and description go into an agent's system prompt; the
body is what `read_skill` returns. Every error names SKILL.md and the line.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from stigmer.errors import FieldViolation, InvalidArgument
from stigmer.resources.manifest_yaml import compose_manifest

SKILL_FILE = "SKILL.md"
MAX_SKILL_FILE_BYTES = 1024 * 1024
MAX_NAME_CHARS = 64
MAX_DESCRIPTION_CHARS = 1024
_FENCE = "---"


@dataclass(frozen=True)
class SkillDocument:
    name: str
    description: str
    body: str


def _problem(line: int, message: str) -> InvalidArgument:
    # The request field at fault is the archive; the facts say where in it.
    text = f"{SKILL_FILE}: line {line}: {message}"
    return InvalidArgument(
        text,
        violations=[FieldViolation("archive", text)],
        facts={"field": "archive", "file": SKILL_FILE, "line": str(line)},
    )


def _text_field(mapping: yaml.MappingNode, key: str, limit: int, fence_line: int) -> str:
    for key_node, value_node in mapping.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            line = value_node.start_mark.line + 2  # the front matter starts on line 2
            if not isinstance(value_node, yaml.ScalarNode) or value_node.tag.endswith(":null"):
                raise _problem(line, f"{key}: must be text")
            text = " ".join(str(value_node.value).split())
            if not text:
                raise _problem(line, f"{key}: must not be empty")
            if len(text) > limit:
                raise _problem(line, f"{key}: at most {limit} characters, got {len(text)}")
            return text
    raise _problem(fence_line, f"the front matter has no {key!r}")


def parse_skill_document(data: bytes) -> SkillDocument:
    """Raises: InvalidArgument: naming SKILL.md and the line at fault."""
    if len(data) > MAX_SKILL_FILE_BYTES:
        raise _problem(1, f"{SKILL_FILE} is larger than {MAX_SKILL_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise _problem(1, f"is not UTF-8 text ({error.reason} at byte {error.start})") from None
    lines = text.splitlines()
    if not lines or lines[0].strip() != _FENCE:
        raise _problem(1, "must start with a front matter: a line '---', name and description")
    closing = next((i for i in range(1, len(lines)) if lines[i].strip() == _FENCE), None)
    if closing is None:
        raise _problem(len(lines), "the front matter is not closed by a line '---'")
    front = "\n".join(lines[1:closing])
    try:
        nodes = [node for node in compose_manifest(front) if node is not None]
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 2 if mark is not None else 2
        raise _problem(line, f"the front matter is not valid YAML: {error.problem}") from None
    except (yaml.YAMLError, ValueError) as error:
        raise _problem(2, f"the front matter is not valid YAML: {error}") from None
    if len(nodes) != 1 or not isinstance(nodes[0], yaml.MappingNode):
        raise _problem(2, "the front matter must be a mapping with name and description")
    mapping = nodes[0]
    name = _text_field(mapping, "name", MAX_NAME_CHARS, closing + 1)
    description = _text_field(mapping, "description", MAX_DESCRIPTION_CHARS, closing + 1)
    body = "\n".join(lines[closing + 1 :]).strip("\n")
    return SkillDocument(name=name, description=description, body=body)
