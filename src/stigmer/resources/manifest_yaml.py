"""The YAML under a manifest: bytes to node trees, with limits.

A manifest file is untrusted input: someone else's repository, a pasted
snippet, a fuzzer. YAML as PyYAML reads it by default lets a few hundred
bytes cost gigabytes (aliases of aliases, the "billion laughs"), lets a
deep enough nesting end in a RecursionError, turns `2024-02-30` into a
traceback, and gives tags the power to pick a constructor. So manifests
are read by this reader only, which keeps the YAML a manifest needs and
refuses the rest, each refusal naming the line:

- The file is UTF-8 (a BOM is allowed), printable, and at most
  MAX_SOURCE_BYTES: what one apply request can carry at most.
- No tags (`!!python/object`, `!Ref`, `!!str`): a manifest's values are
  read as its fields' types say; text that looks like a number is quoted.
- Nesting at most MAX_DEPTH levels: no kind nests a tenth as deep, and
  every reader after this one (the node walk, json_format, protobuf)
  recurses per level.
- Anchors and aliases, merge keys included, may share a value, but the
  document as expanded is held to MAX_NODES values and MAX_SOURCE_BYTES of
  text, as if written out in full; an alias inside the node it names
  (`&a [*a]`) is refused. The weight of every node is counted once, when
  it is composed, so a bomb is refused after composing a few dozen nodes.
- Scalars resolve as YAML 1.1's null, bool, int and float only: dates stay
  text (a Timestamp field wants the text anyway), and so do `=` and `!`.

The events come from libyaml when PyYAML has it (twenty times faster than
the pure-Python scanner), the nodes from the composer below either way.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.events import AliasEvent, CollectionStartEvent
from yaml.resolver import Resolver

MAX_SOURCE_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 100_000

_YAML_TAG = "tag:yaml.org,2002:"
_KEPT_TAGS = {
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:merge",
}
# What YAML itself refuses to carry (yaml.reader.Reader.NON_PRINTABLE).
_LINE_BREAKS = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
_NON_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)


class SourceTextError(Exception):
    """A source that is not manifest text at all: too large, not UTF-8, or
    holding characters YAML does not allow."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class RefusedYamlError(yaml.MarkedYAMLError):
    """Valid YAML that a manifest may not use: a tag, deep nesting, an
    alias that expands too far or into itself."""


def _refused(problem: str, mark: Any) -> RefusedYamlError:
    # libyaml's marks are their own class, with the same line and column.
    return RefusedYamlError(None, None, problem, mark)


def manifest_text(data: str | bytes) -> str:
    """The text of a manifest source, checked before any YAML is read.

    Raises:
        SourceTextError: over MAX_SOURCE_BYTES, not UTF-8, or a character
            YAML does not allow (a NUL, a control character).
    """
    size = len(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
    if size > MAX_SOURCE_BYTES:
        raise SourceTextError(
            1,
            f"is {_mib(size)}; a manifest file may be at most {_mib(MAX_SOURCE_BYTES)} "
            "(split it into several files)",
        )
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            line = data.count(b"\n", 0, error.start) + 1
            raise SourceTextError(
                line,
                f"not UTF-8: byte 0x{data[error.start]:02x} at offset {error.start} "
                "(manifests are UTF-8 text)",
            ) from None
    else:
        text = data
    bad = _NON_PRINTABLE.search(text)
    if bad is not None:
        line = text.count("\n", 0, bad.start()) + 1
        column = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
        raise SourceTextError(
            line,
            f"character U+{ord(bad.group()):04X} (column {column}) is not allowed in YAML",
        )
    return text


def last_line(text: str) -> int:
    """The number of the last line of `text`, counting lines as YAML does
    (CR, LF, CRLF, NEL, LS and PS each end one). An error at the end of the
    stream is put on it, not on a line after the file."""
    breaks = _LINE_BREAKS.findall(text)
    return max(1, len(breaks) + (0 if text.endswith(tuple(breaks[-1:])) else 1))


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


class _ManifestResolver(Resolver):
    """YAML 1.1's implicit types, less the ones no field reads: timestamps
    (an impossible date is a traceback in the constructor), `=` and `!`."""

    yaml_implicit_resolvers = {
        first: [(tag, pattern) for tag, pattern in resolvers if tag in _KEPT_TAGS]
        for first, resolvers in Resolver.yaml_implicit_resolvers.items()
    }


class _LimitedComposer(Composer):
    """PyYAML's composer with the limits of the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self._depth = 0
        # The expanded size (nodes, characters) of every finished node, by
        # id: an alias adds the size of the node it names without walking it.
        self._sizes: dict[int, tuple[int, int]] = {}

    def compose_document(self) -> yaml.Node | None:
        self._sizes = {}
        return super().compose_document()

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[attr-defined]
        if isinstance(event, AliasEvent):
            named = self.anchors.get(event.anchor)
            if named is not None and id(named) not in self._sizes:
                raise _refused(
                    f"alias *{event.anchor} is inside the node it names",
                    event.start_mark,
                )
            return super().compose_node(parent, index)
        tag = getattr(event, "tag", None)
        if tag is not None:
            written = "!!" + tag.removeprefix(_YAML_TAG) if tag.startswith(_YAML_TAG) else tag
            raise _refused(
                f"tag {written!r} is not allowed in a manifest (quote a value to make it text)",
                event.start_mark,
            )
        if isinstance(event, CollectionStartEvent):
            if self._depth >= MAX_DEPTH:
                raise _refused(
                    f"nested more than {MAX_DEPTH} levels deep",
                    event.start_mark,
                )
            self._depth += 1
            try:
                node = super().compose_node(parent, index)
            finally:
                self._depth -= 1
        else:
            node = super().compose_node(parent, index)
        assert node is not None
        self._measure(node)
        return node

    def _measure(self, node: yaml.Node) -> None:
        if isinstance(node, yaml.ScalarNode):
            size = (1, len(node.value))
        else:
            children: list[yaml.Node] = (
                [child for pair in node.value for child in pair]
                if isinstance(node, yaml.MappingNode)
                else list(node.value)
            )
            sizes = [self._sizes[id(child)] for child in children]
            size = (1 + sum(n for n, _ in sizes), sum(c for _, c in sizes))
        self._sizes[id(node)] = size
        nodes, characters = size
        if nodes > MAX_NODES:
            raise _refused(
                f"this value holds more than {MAX_NODES} values with its aliases expanded",
                node.start_mark,
            )
        if characters > MAX_SOURCE_BYTES:
            raise _refused(
                f"this value holds more than {_mib(MAX_SOURCE_BYTES)} of text "
                "with its aliases expanded",
                node.start_mark,
            )


if yaml.__with_libyaml__:
    from yaml._yaml import CParser as _Parser

    class _Loader(_LimitedComposer, _Parser, _ManifestResolver):
        def __init__(self, text: str) -> None:
            _Parser.__init__(self, text)
            _LimitedComposer.__init__(self)
            _ManifestResolver.__init__(self)

else:  # pragma: no cover - PyYAML built without libyaml
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Loader(Reader, Scanner, Parser, _LimitedComposer, _ManifestResolver):  # type: ignore[no-redef]
        def __init__(self, text: str) -> None:
            Reader.__init__(self, text)
            Scanner.__init__(self)
            Parser.__init__(self)
            _LimitedComposer.__init__(self)
            _ManifestResolver.__init__(self)


def compose_manifest(text: str) -> Iterator[yaml.Node | None]:
    """The root node of every document of `text`, one at a time.

    Raises:
        yaml.MarkedYAMLError: malformed YAML, with the line
            (RefusedYamlError: YAML a manifest may not use).
    """
    loader = _Loader(text)
    try:
        while loader.check_node():
            yield loader.get_node()
    finally:
        loader.dispose()
