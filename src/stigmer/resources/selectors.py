"""Label selectors, as Kubernetes defines them.

A selector is a comma-separated list of requirements, all of which must hold
(comma is AND; there is no OR):

    team=platform           the label is present and equal (`==` is the same)
    team!=demo              absent, or present with another value
    tier in (gold,silver)   present, with one of the values
    tier notin (bronze)     absent, or present with none of the values
    team                    present, whatever the value
    !team                   absent

Keys and values follow Kubernetes' label rules: a key is an optional DNS
subdomain prefix and `/`, then a name of at most 63 characters of
alphanumerics, `-`, `_` and `.`, starting and ending alphanumeric; a value is
empty or such a name. Whitespace around tokens is ignored.

The server parses the text sent by a client into `Requirement`s and the store
evaluates them in its query, so a page of results is a page of matches. Text
that does not parse is an InvalidArgument naming the selector and the place it
went wrong, never an empty result: `team!=demo` must not quietly become a
lookup of the key `team!`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NoReturn

from stigmer.errors import InvalidArgument

SELECTOR_FIELD = "selector"

_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_NAME_MAX = 63
_PREFIX_MAX = 253
# The characters that end an identifier; everything else (but whitespace) is part of it.
_SPECIAL = frozenset("=!(),")


class Operator(enum.Enum):
    EQUALS = "="
    NOT_EQUALS = "!="
    IN = "in"
    NOT_IN = "notin"
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"


@dataclass(frozen=True, slots=True)
class Requirement:
    """One condition on one label key; `values` is empty for (does not) exist."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """What the store's query decides for this requirement, in Python."""
        present = self.key in labels
        value = labels.get(self.key)
        match self.operator:
            case Operator.EQUALS | Operator.IN:
                return present and value in self.values
            case Operator.NOT_EQUALS | Operator.NOT_IN:
                return not present or value not in self.values
            case Operator.EXISTS:
                return present
            case Operator.DOES_NOT_EXIST:
                return not present


Selector = tuple[Requirement, ...]


def requirements_from_labels(labels: Mapping[str, str]) -> Selector:
    """The equality requirements of a `{key: value}` map (every pair must match)."""
    return tuple(Requirement(k, Operator.EQUALS, (v,)) for k, v in sorted(labels.items()))


def parse_selector(text: str) -> Selector:
    """The requirements a selector text states; empty text selects everything.

    Raises:
        InvalidArgument: the text is not a label selector; the message quotes it
            and says what is wrong, the field is `selector`.
    """
    return _Parser(text).parse()


def _tokens(text: str) -> list[tuple[str, int]]:
    """(token, position) pairs: operators, parentheses, commas and identifiers."""
    tokens: list[tuple[str, int]] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char.isspace():
            index += 1
        elif text.startswith(("==", "!="), index):
            tokens.append((text[index : index + 2], index))
            index += 2
        elif char in _SPECIAL:
            tokens.append((char, index))
            index += 1
        else:
            start = index
            while index < len(text) and not text[index].isspace() and text[index] not in _SPECIAL:
                index += 1
            tokens.append((text[start:index], start))
    return tokens


class _Parser:
    """A recursive-descent parser over the tokens of one selector text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.position = 0

    def parse(self) -> Selector:
        if not self.tokens:
            return ()
        requirements = [self._requirement()]
        while self._peek() is not None:
            self._expect(",", "',' between requirements")
            requirements.append(self._requirement())
        return tuple(requirements)

    def _requirement(self) -> Requirement:
        if self._peek() == "!":
            self._next()
            return Requirement(self._key(), Operator.DOES_NOT_EXIST)
        key = self._key()
        operator = self._peek()
        if operator is None or operator == ",":
            return Requirement(key, Operator.EXISTS)
        self._next()
        if operator in ("=", "=="):
            return Requirement(key, Operator.EQUALS, (self._value(),))
        if operator == "!=":
            return Requirement(key, Operator.NOT_EQUALS, (self._value(),))
        if operator in ("in", "notin"):
            values = self._value_set()
            return Requirement(key, Operator.IN if operator == "in" else Operator.NOT_IN, values)
        self._fail(
            f"expected an operator (=, ==, !=, in, notin) after the key {key!r}, "
            f"found {operator!r}",
            back=1,
        )

    def _key(self) -> str:
        token = self._peek()
        if token is None or _is_punctuation(token):
            self._fail(f"expected a label key, found {_describe(token)}")
        self._next()
        problem = key_problem(token)
        if problem:
            self._fail(f"invalid label key {token!r}: {problem}", back=1)
        return token

    def _value(self) -> str:
        token = self._peek()
        if token is None or token in (",", ")"):
            return ""  # `key=` selects the empty value, as in Kubernetes
        if _is_punctuation(token):
            self._fail(f"expected a label value, found {token!r}")
        self._next()
        problem = value_problem(token)
        if problem:
            self._fail(f"invalid label value {token!r}: {problem}", back=1)
        return token

    def _value_set(self) -> tuple[str, ...]:
        self._expect("(", "'(' to open the set of values")
        values = [self._value()]
        while self._peek() == ",":
            self._next()
            values.append(self._value())
        self._expect(")", "',' or ')' in the set of values")
        if values == [""]:
            self._fail("the set of values is empty", back=1)
        return tuple(values)

    def _peek(self) -> str | None:
        return self.tokens[self.position][0] if self.position < len(self.tokens) else None

    def _next(self) -> None:
        self.position += 1

    def _expect(self, token: str, what: str) -> None:
        found = self._peek()
        if found != token:
            self._fail(f"expected {what}, found {_describe(found)}")
        self._next()

    def _fail(self, problem: str, *, back: int = 0) -> NoReturn:
        index = self.position - back
        where = f" at character {self.tokens[index][1] + 1}" if index < len(self.tokens) else ""
        raise InvalidArgument.for_field(
            SELECTOR_FIELD, f"label selector {self.text!r}{where}: {problem}"
        )


def _is_punctuation(token: str) -> bool:
    return token in ("=", "==", "!=", "!", "(", ")", ",")


def _describe(token: str | None) -> str:
    return "the end" if token is None else repr(token)


def key_problem(key: str) -> str:
    """Why `key` is not a Kubernetes label key ("" when it is one)."""
    prefix, slash, name = key.rpartition("/")
    if slash and not (prefix and len(prefix) <= _PREFIX_MAX and _DNS_SUBDOMAIN.match(prefix)):
        return "the prefix before '/' must be a DNS subdomain of at most 253 characters"
    return _name_problem(name)


def value_problem(value: str) -> str:
    """Why `value` is not a Kubernetes label value ("" when it is one)."""
    return _name_problem(value) if value else ""


def _name_problem(name: str) -> str:
    if len(name) > _NAME_MAX:
        return f"at most {_NAME_MAX} characters"
    if not _NAME.match(name):
        return "alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric"
    return ""
