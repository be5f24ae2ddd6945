"""JSONPath on the command line, as kubectl reads it: `-o jsonpath=TEMPLATE`
and `--sort-by FIELD`.

Both work on the manifest dict `-o json` prints (a list is `{"items": [...]}`),
so what a user sees in JSON is what they can address. Expressions are
evaluated by jsonpath-ng (its extended grammar: filters such as
`[?(@.metadata.name=="x")]` work); this module only adds kubectl's spelling
on top:

- a template is literal text with `{EXPR}` parts (`{.metadata.name}`), or one
  bare expression; `{"\\n"}` is a quoted literal, handy between values;
- an expression may start with `.` (kubectl) or `$` (JSONPath);
- `{range EXPR}...{end}` repeats its body for each match, evaluated on it.

Several matches print separated by spaces; scalars print plainly, maps and
lists as JSON. An expression that does not parse is an InvalidArgument
naming it, before any request is sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jsonpath_ng import JSONPath
from jsonpath_ng.exceptions import JSONPathError
from jsonpath_ng.ext.parser import parse

from stigmer.errors import InvalidArgument

# `{...}` parts of a template; a quoted literal may hold braces.
_TEMPLATE_PART = re.compile(r'\{("(?:[^"\\]|\\.)*"|[^{}]*)\}')


def compile_path(expression: str, *, field: str) -> JSONPath:
    """The parsed expression (`.a.b`, `{.a.b}`, `$.a[*].b`).

    Raises:
        InvalidArgument: it is empty or does not parse; names `field` and the expression.
    """
    text = expression.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if text.startswith("."):
        text = "$" + text
    if not text:
        raise InvalidArgument.for_field(field, f"empty JSONPath expression {expression!r}")
    try:
        return parse(text)
    except (JSONPathError, ValueError, TypeError) as error:
        problem = str(error).strip() or type(error).__name__
        raise InvalidArgument.for_field(
            field, f"invalid JSONPath expression {expression!r}: {problem}"
        ) from None


@dataclass(frozen=True)
class Range:
    """`{range EXPR}...{end}`: the body rendered once per match, on that match."""

    path: JSONPath
    body: tuple[str | JSONPath | Range, ...]


@dataclass(frozen=True)
class JsonPathTemplate:
    """A parsed `-o jsonpath=` template: literal text, expressions and ranges, in order."""

    parts: tuple[str | JSONPath | Range, ...]

    @classmethod
    def parse(cls, template: str) -> JsonPathTemplate:
        """Raises: InvalidArgument: an expression does not parse (field `output`)."""
        if "{" not in template:
            return cls((compile_path(template, field="output"),))
        # A stack of open bodies: the template's own, then one per open range.
        bodies: list[list[str | JSONPath | Range]] = [[]]
        ranges: list[JSONPath] = []
        position = 0
        for match in _TEMPLATE_PART.finditer(template):
            _check_literal(template, template[position : match.start()])
            bodies[-1].append(template[position : match.start()])
            inner = match.group(1).strip()
            if inner.startswith('"'):
                bodies[-1].append(json.loads(inner))
            elif inner == "end":
                if not ranges:
                    raise _template_error(template, "{end} without {range ...}")
                body = bodies.pop()
                bodies[-1].append(Range(ranges.pop(), _without_empty(body)))
            elif inner.startswith("range ") or inner.startswith("range\t"):
                ranges.append(compile_path(inner[len("range") :], field="output"))
                bodies.append([])
            else:
                bodies[-1].append(compile_path(inner, field="output"))
            position = match.end()
        _check_literal(template, template[position:])
        if ranges:
            raise _template_error(template, "{range ...} without {end}")
        bodies[-1].append(template[position:])
        return cls(_without_empty(bodies[-1]))

    def render(self, data: Any) -> str:
        return _render(self.parts, data)


def _render(parts: tuple[str | JSONPath | Range, ...], data: Any) -> str:
    pieces: list[str] = []
    for part in parts:
        if isinstance(part, str):
            pieces.append(part)
        elif isinstance(part, Range):
            pieces += [_render(part.body, match.value) for match in part.path.find(data)]
        else:
            pieces.append(" ".join(_shown(match.value) for match in part.find(data)))
    return "".join(pieces)


def _without_empty(
    parts: list[str | JSONPath | Range],
) -> tuple[str | JSONPath | Range, ...]:
    return tuple(part for part in parts if not (isinstance(part, str) and part == ""))


def _check_literal(template: str, text: str) -> None:
    if "{" in text or "}" in text:
        raise _template_error(template, "unbalanced braces")


def _template_error(template: str, problem: str) -> InvalidArgument:
    return InvalidArgument.for_field("output", f"invalid JSONPath template {template!r}: {problem}")


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def sort_by(items: Sequence[dict[str, Any]], path: JSONPath) -> list[int]:
    """The order (indexes into `items`) that sorts them by the field at `path`:
    numbers numerically, before text; items without the field last."""

    def key(index: int) -> tuple[int, float, str]:
        found = [match.value for match in path.find(items[index])]
        if not found or found[0] is None:
            return (2, 0.0, "")
        value = found[0]
        if isinstance(value, int | float) and not isinstance(value, bool):
            return (0, float(value), "")
        return (1, 0.0, _shown(value))

    return sorted(range(len(items)), key=key)
