"""Manifests for the YAML fuzzer: valid ones mutated, and hostile ones made.

Three families, picked at random with one seeded `random.Random`, so a seed
replays a run exactly:

- text mutations of a valid manifest: lines deleted, repeated, swapped,
  re-indented, cut short; YAML's own characters, odd scalars, control
  characters and invalid UTF-8 spliced in;
- structure mutations: the manifest parsed, a value somewhere replaced by a
  value of another shape (or shared, which the dumper writes as an anchor
  and aliases), a key dropped, renamed or added, a document repeated; then
  written back as YAML;
- hostile inputs: alias bombs, recursive aliases, tags, deep nesting in
  block and flow style, merge keys of the wrong shape, complex keys,
  undefined and repeated anchors, random bytes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.control_plane.manifests import FOUR_RESOURCES

ROOT = Path(__file__).resolve().parent.parent.parent

ODD_SCALARS = [
    "~",
    "null",
    "''",
    '""',
    "yes",
    "No",
    "on",
    ".nan",
    "-.inf",
    "1e9999",
    "-0",
    "0x_",
    "0b",
    "0o777",
    "0777",
    "1_000",
    "1:30:00",
    "190:20:30.15",
    "2024-02-30",
    "2024-13-01T25:61:61Z",
    "2001-12-14t21:59:43.10-05:00",
    "9" * 5000,
    "-" + "9" * 30,
    "1.5",
    "=",
    "!",
    "<<",
    "*",
    "&",
    "'unterminated",
    '"\\x00\\uD800"',
    '"\\U0010FFFF"',
    "|\n  block\n",
    ">-\n  folded\n",
    "[]",
    "{}",
    "[a, {b: c}]",
    "? complex\n: key",
    "😀",
    "\u202e",
    "a" * 70,
    "UPPER Case_name",
]
YAML_CHARACTERS = [*":-[]{}&*!|>'\"#%@`,? \t\n\r", "\ufeff", "\x85", "\u2028", "---", "..."]
CONTROL_CHARACTERS = ["\x00", "\x01", "\x07", "\x1b", "\x7f", "\ud800"]
BAD_UTF8 = [b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xc0\xaf"]
TAGS = [
    "!!python/object/apply:os.system",
    "!!python/name:os.system",
    "!!binary",
    "!!str",
    "!!int",
    "!!timestamp",
    "!!set",
    "!!omap",
    "!Ref",
    "!",
    "!<tag:example.com,2000:x>",
]


def seed_manifests() -> list[str]:
    """Valid manifests: the examples and the ones the tests apply."""
    seeds = [path.read_text() for path in sorted((ROOT / "examples").glob("*.yaml"))]
    seeds.append(FOUR_RESOURCES)
    seeds.append(
        "apiVersion: agentic.stigmer.ai/v1\n"
        "kind: AgentInstance\n"
        "metadata: {name: reviewer-prod, labels: {team: platform}}\n"
        "spec:\n"
        "  agentRef: pr-reviewer\n"
        "  environmentRefs: [prod]\n"
        "---\n"
        "apiVersion: agentic.stigmer.ai/v1\n"
        "kind: Session\n"
        "metadata: {name: Onboarding}\n"
        "spec:\n"
        "  agent_instance_ref: reviewer-prod\n"
        "  subject: first steps\n"
    )
    return seeds


class ManifestMaker:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.seeds = seed_manifests()
        self.structures = [list(yaml.safe_load_all(text)) for text in self.seeds]
        self._families: list[tuple[str, Callable[[], bytes]]] = [
            ("text", self.text_mutation),
            ("structure", self.structure_mutation),
            ("hostile", self.hostile),
        ]

    def make(self) -> tuple[str, bytes]:
        """(what was done, the manifest's bytes)."""
        family, make = self.rng.choice(self._families)
        self.done: list[str] = [family]
        data = make()
        return " ".join(self.done), data

    def _note(self, what: str) -> None:
        self.done.append(what)

    # Text mutations -------------------------------------------------------

    def text_mutation(self) -> bytes:
        lines = self.rng.choice(self.seeds).splitlines(keepends=True)
        for _ in range(self.rng.randint(1, 4)):
            lines = self._mutate_lines(lines)
        data = "".join(lines).encode("utf-8", "surrogatepass")
        if self.rng.random() < 0.1:
            spot = self.rng.randrange(len(data) + 1)
            data = data[:spot] + self.rng.choice(BAD_UTF8) + data[spot:]
            self._note(f"bad-utf8@{spot}")
        if self.rng.random() < 0.05:
            data = data.replace(b"\n", b"\r\n")
            self._note("crlf")
        return data

    def _mutate_lines(self, lines: list[str]) -> list[str]:
        if not lines:
            return ["\n"]
        rng = self.rng
        index = rng.randrange(len(lines))
        how = rng.choice(
            ["delete", "repeat", "swap", "indent", "dedent", "cut", "splice", "scalar", "control"]
        )
        self._note(f"{how}@{index}")
        line = lines[index]
        if how == "delete":
            return _replaced(lines, index)
        if how == "repeat":
            return _replaced(lines, index, *[line] * rng.randint(2, 4))
        if how == "swap":
            other = rng.randrange(len(lines))
            lines = list(lines)
            lines[index], lines[other] = lines[other], lines[index]
            return lines
        if how == "indent":
            return _replaced(lines, index, " " * rng.choice([1, 2, 4]) + line)
        if how == "dedent":
            return _replaced(lines, index, line.lstrip(" "))
        if how == "cut":
            text = "".join(lines)
            return [text[: rng.randrange(len(text) + 1)]]
        spot = rng.randrange(len(line) + 1)
        if how == "splice":
            piece = "".join(rng.choice(YAML_CHARACTERS) for _ in range(rng.randint(1, 3)))
        elif how == "control":
            piece = rng.choice(CONTROL_CHARACTERS)
        else:
            # An odd scalar in place of the value after a key, or of a list item.
            key, colon, _ = line.partition(": ")
            if colon:
                return _replaced(lines, index, f"{key}: {rng.choice(ODD_SCALARS)}\n")
            piece = rng.choice(ODD_SCALARS)
        return _replaced(lines, index, line[:spot] + piece + line[spot:])

    # Structure mutations --------------------------------------------------

    def structure_mutation(self) -> bytes:
        documents: list[Any] = yaml.safe_load(
            yaml.safe_dump(self.rng.choice(self.structures))
        )  # a deep copy
        for _ in range(self.rng.randint(1, 3)):
            if self._mutate_structure(documents):
                break
        return yaml.safe_dump_all(documents, sort_keys=False, allow_unicode=True).encode()

    def _mutate_structure(self, documents: list[Any]) -> bool:
        """One change; True when it shared a value, after which the
        structure may hold itself and is not walked again."""
        rng = self.rng
        how = rng.choice(["replace", "share", "drop", "rename", "add", "repeat-document", "wrap"])
        self._note(how)
        if how == "repeat-document" and documents:
            documents.append(rng.choice(documents))
            return True
        places = list(_places(documents))
        if not places:
            return False
        container, key = rng.choice(places)
        if how == "replace":
            container[key] = self._random_value(depth=0)
        elif how == "share":
            # The same object twice, maybe inside itself: safe_dump writes an
            # anchor and aliases.
            other, other_key = rng.choice(places)
            container[key] = other[other_key] if rng.random() < 0.7 else other
            return True
        elif how == "drop" and isinstance(container, dict):
            del container[key]
        elif how == "rename" and isinstance(container, dict):
            value = container.pop(key)
            container[_renamed(str(key), rng)] = value
        elif how == "add" and isinstance(container, dict):
            name = rng.choice(["extra", "status", "Spec", "metadata", "1", "null"])
            container[name] = self._random_value(depth=0)
        elif how == "wrap":
            container[key] = [container[key]]
        return False

    def _random_value(self, depth: int) -> Any:
        rng = self.rng
        choice = rng.randrange(9 if depth < 4 else 6)
        if choice == 0:
            return None
        if choice == 1:
            return rng.choice([True, False])
        if choice == 2:
            return rng.choice([0, -1, 2**31, 2**63, 2**64, 10**30, 3600, 3601])
        if choice == 3:
            return rng.choice([0.5, float("inf"), float("nan"), 1e300])
        if choice == 4:
            return rng.choice(ODD_SCALARS)
        if choice == 5:
            return "".join(rng.choice("ab-_ ./:0") for _ in range(rng.randint(0, 80)))
        if choice == 6:
            return [self._random_value(depth + 1) for _ in range(rng.randint(0, 3))]
        return {
            rng.choice(["name", "ref", "value", "x", "is_secret", "stdio"]): self._random_value(
                depth + 1
            )
            for _ in range(rng.randint(0, 3))
        }

    # Hostile inputs -------------------------------------------------------

    def hostile(self) -> bytes:
        rng = self.rng
        how = rng.choice(
            [
                "bomb",
                "merge-bomb",
                "text-bomb",
                "recursive",
                "tag",
                "deep",
                "merge",
                "complex-key",
                "anchors",
                "bytes",
            ]
        )
        self._note(how)
        head = (
            "apiVersion: agentic.stigmer.ai/v1\nkind: Agent\nmetadata: {name: fuzz}\n"
            "spec:\n  instructions: Review pull requests and point out risky changes.\n"
        )
        if how == "bomb":
            width, levels = rng.randint(2, 12), rng.randint(3, 12)
            lines = ['  description: &l0 "' + "lol" * rng.randint(1, 1000) + '"']
            for level in range(1, levels):
                aliases = ",".join([f"*l{level - 1}"] * width)
                lines.append(f"  x{level}: &l{level} [{aliases}]")
            return (head + "\n".join(lines) + "\n").encode()
        if how == "merge-bomb":
            lines = ["m0: &m0 {a: lol}"]
            for level in range(1, rng.randint(3, 10)):
                aliases = ",".join([f"*m{level - 1}"] * rng.randint(2, 9))
                lines.append(f"m{level}: &m{level} {{<<: [{aliases}]}}")
            last = len(lines) - 1
            return ("\n".join(lines) + "\n" + head + f"  <<: *m{last}\n").encode()
        if how == "text-bomb":
            text = "x" * rng.choice([10, 20_000, 300_000])
            aliases = ", ".join(["*big"] * rng.randint(1, 200))
            return (head + f"  description: &big {text}\n  skill_refs: [{aliases}]\n").encode()
        if how == "recursive":
            return (
                head + rng.choice(["  x: &a [*a]\n", "  x: &a {b: *a}\n", "  <<: &a {x: *a}\n"])
            ).encode()
        if how == "tag":
            tag = rng.choice(TAGS)
            if rng.random() < 0.5:
                return f"--- {tag}\n{head}".encode()
            return f"{head}  description: {tag} text\n".encode()
        if how == "deep":
            depth = rng.choice([30, 63, 64, 65, 100, 500, 3000])
            if rng.random() < 0.5:
                nested = "[" * depth + "]" * depth
                return (head + f"  description: {nested}\n").encode()
            block = "".join("  " * (level + 2) + f"k{level}:\n" for level in range(depth))
            return (head + "  description:\n" + block).encode()
        if how == "merge":
            merged = rng.choice(["5", "[1, 2]", "*s", "[*s]", "~", "{a: b}", "[{a: b}, 3]"])
            return (head.replace("spec:\n", "spec:\n  s: &s text\n") + f"  <<: {merged}\n").encode()
        if how == "complex-key":
            key = rng.choice(["[a, b]", "{a: b}", "~", "''", "1", "true"])
            return (head + f"  ? {key}\n  : value\n").encode()
        if how == "anchors":
            return (
                head
                + rng.choice(
                    ["  description: *nowhere\n", "  a: &x 1\n  b: &x 2\n", "  description: &x\n"]
                )
            ).encode()
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))


def _replaced(lines: list[str], index: int, *new: str) -> list[str]:
    return [*lines[:index], *new, *lines[index + 1 :]]


def _places(value: Any) -> Any:
    """Every (container, key) in a parsed manifest, depth first."""
    if isinstance(value, dict):
        for key in list(value):
            yield value, key
            yield from _places(value[key])
    elif isinstance(value, list):
        for index in range(len(value)):
            yield value, index
            yield from _places(value[index])


def _renamed(key: str, rng: random.Random) -> str:
    """The key in camelCase or snake_case, misspelt, or cased otherwise."""
    parts = key.split("_")
    return rng.choice(
        [
            parts[0] + "".join(part.title() for part in parts[1:]),
            "".join(f"_{c.lower()}" if c.isupper() else c for c in key),
            key.upper(),
            key[:-1],
            key + "s",
        ]
    )
