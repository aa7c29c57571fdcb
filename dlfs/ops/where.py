"""The ``--where`` filter language: a small, safe expression language over items.

An expression selects items by their metadata, their annotation labels, their path,
name and size. It is parsed by a hand-written recursive-descent parser into closures;
nothing is ever passed to ``eval``, and nesting is bounded, so any text is safe to
give it.

Grammar (keywords are lowercase; whitespace is free)::

    expr     := or
    or       := and ("or" and)*
    and      := not ("and" not)*
    not      := "not" not | compare
    compare  := "(" expr ")" | operand OP operand | operand ["not"] "in" operand
    OP       := "==" | "!=" | "<" | "<=" | ">" | ">="
    operand  := field | literal | list
    field    := "label" | "path" | "name" | "size"
              | "metadata" ("." KEY)+          KEY: an identifier or a quoted string
    literal  := STRING | NUMBER | "true" | "false" | "null"
    list     := "[" [literal ("," literal)*] "]"

Strings are single- or double-quoted with JSON escapes (``\\"``, ``\\n``, ``\\u00e9``).
Numbers are JSON numbers (``-1``, ``0.5``, ``1e3``).

Values:

- ``metadata.a.b`` is the value at that key path of the item's metadata object, or
  ``null`` when a key is missing or a value on the way is not an object.
- ``label`` stands for every label of the item. Annotations are a JSON list; an
  annotation that is an object with a string ``"label"`` key contributes that label,
  anything else (objects without ``"label"``, non-objects) is ignored::

      [{"label": "dog", "box": [0, 0, 10, 10]}, {"label": "cat"}]

  A comparison with ``label`` holds when it holds for *some* label: ``label == "dog"``
  means "has an annotation labelled dog", ``label in ["dog", "cat"]`` "has a dog or a
  cat". ``!=`` is always the negation of ``==``, so ``label != "dog"`` means "has no
  annotation labelled dog". An item without labels has the single label ``null``:
  ``label == null`` selects the unannotated items.
- ``path`` is the item's path in the version (``train/a.jpg``), ``name`` its last
  part, ``size`` its size in bytes.

Comparisons are strict about types: a number is never equal to a string or a boolean
(``metadata.flag == 1`` does not hold for ``true``), and ``<``, ``<=``, ``>``, ``>=``
hold only between two numbers or two strings (strings compare by code point); any
other pair is simply false, never an error. ``X in Y`` holds when ``Y`` is a list
(a literal list or a metadata value) containing a value equal to ``X``; ``X not in Y``
is its negation.

Examples::

    label == "dog"
    metadata.split == "train" and metadata.score > 0.5
    not (label in ["cat", "dog"]) or metadata.reviewed == true
    "hard" in metadata.tags and size < 1000000
    metadata."weird key".x != null
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from dlfs.errors import InvalidInput

MAX_DEPTH = 64
MAX_LENGTH = 10_000

_MISSING: Any = None


@dataclass
class Subject:
    """What an expression is evaluated against: one item.

    ``metadata`` and ``annotations`` are the parsed JSON values; a caller that knows
    the expression does not use them (see :attr:`Filter.uses_metadata`) may leave
    them empty.
    """

    path: str = ""
    size: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    annotations: list[Any] = field(default_factory=list)


Getter = Callable[[Subject], list[Any]]
Predicate = Callable[[Subject], bool]


@dataclass
class Filter:
    """A compiled ``--where`` expression: call :meth:`matches` on a :class:`Subject`."""

    text: str
    predicate: Predicate
    uses_metadata: bool
    uses_annotations: bool

    def matches(self, subject: Subject) -> bool:
        """True when the item satisfies the expression."""
        return self.predicate(subject)


def parse(text: str) -> Filter:
    """Compile ``text``; :class:`InvalidInput` says what is wrong and at which column."""
    if len(text) > MAX_LENGTH:
        raise InvalidInput(f"--where expression is too long (over {MAX_LENGTH} characters)")
    parser = _Parser(text)
    predicate = parser.parse()
    return Filter(text, predicate, parser.uses_metadata, parser.uses_annotations)


def labels_of(annotations: Any) -> list[Any]:
    """The labels of an annotation list, in order, each once (see the module doc)."""
    out: list[Any] = []
    if isinstance(annotations, list):
        for ann in annotations:
            if isinstance(ann, dict):
                label = ann.get("label")
                if isinstance(label, str) and label not in out:
                    out.append(label)
    return out


# -- tokens ------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
  | (?P<str>"(?:[^"\\\x00-\x1f]|\\.)*"|'(?:[^'\\\x00-\x1f]|\\.)*')
  | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,|\.)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_-]*)
    """,
    re.VERBOSE,
)
KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false", "null"})
FIELDS = frozenset({"label", "metadata", "path", "name", "size"})


@dataclass(frozen=True)
class _Token:
    kind: str  # num, str, op, ident, end
    text: str
    col: int  # 1-based column


def _tokens(text: str) -> Iterator[_Token]:
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            snippet = text[pos : pos + 10]
            hint = " (compare with '==')" if text[pos] == "=" else ""
            raise InvalidInput(
                f"invalid --where expression at column {pos + 1}: unexpected {snippet!r}{hint}"
            )
        kind = m.lastgroup
        assert kind is not None
        if kind != "ws":
            yield _Token(kind, m.group(), pos + 1)
        pos = m.end()
    yield _Token("end", "", len(text) + 1)


_ESCAPES = {
    '"': '"',
    "'": "'",
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}


def _string_value(token: _Token) -> str:
    body = token.text[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        esc = body[i + 1]  # the token pattern guarantees a character after a backslash
        if esc in _ESCAPES:
            out.append(_ESCAPES[esc])
            i += 2
        elif esc == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", body[i + 2 : i + 6]):
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 6
        else:
            raise InvalidInput(
                f"invalid --where expression at column {token.col + i + 1}:"
                f" unknown escape '\\{esc}' in a string"
            )
    return "".join(out)


# -- values ------------------------------------------------------------------------


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def equal(a: Any, b: Any) -> bool:
    """JSON equality: numbers equal numbers, booleans only booleans, recursively."""
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    return bool(a == b)


def _ordered(op: str) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        if not (_is_number(a) and _is_number(b)) and not (
            isinstance(a, str) and isinstance(b, str)
        ):
            return False
        if op == "<":
            return bool(a < b)
        if op == "<=":
            return bool(a <= b)
        if op == ">":
            return bool(a > b)
        return bool(a >= b)

    return compare


def _contains(a: Any, b: Any) -> bool:
    return isinstance(b, list) and any(equal(a, x) for x in b)


# -- parser ------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = list(_tokens(text))
        self.pos = 0
        self.depth = 0
        self.uses_metadata = False
        self.uses_annotations = False

    @property
    def tok(self) -> _Token:
        return self.tokens[self.pos]

    def advance(self) -> _Token:
        token = self.tokens[self.pos]
        if token.kind != "end":
            self.pos += 1
        return token

    def error(self, message: str, found: bool = True) -> InvalidInput:
        token = self.tok
        if found:
            message += ", found " + ("the end" if token.kind == "end" else repr(token.text))
        return InvalidInput(f"invalid --where expression at column {token.col}: {message}")

    def at(self, kind: str, text: str | None = None) -> bool:
        return self.tok.kind == kind and (text is None or self.tok.text == text)

    def expect(self, kind: str, text: str, message: str) -> None:
        if not self.at(kind, text):
            raise self.error(message)
        self.advance()

    def parse(self) -> Predicate:
        if self.at("end"):
            raise self.error('empty expression: expected a comparison such as label == "dog"')
        predicate = self.parse_or()
        if not self.at("end"):
            raise self.error("expected 'and', 'or' or the end of the expression")
        return predicate

    def nested(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"expression nested more than {MAX_DEPTH} levels deep")

    def parse_or(self) -> Predicate:
        parts = [self.parse_and()]
        while self.at("ident", "or"):
            self.advance()
            parts.append(self.parse_and())
        if len(parts) == 1:
            return parts[0]
        return lambda s: any(p(s) for p in parts)

    def parse_and(self) -> Predicate:
        parts = [self.parse_not()]
        while self.at("ident", "and"):
            self.advance()
            parts.append(self.parse_not())
        if len(parts) == 1:
            return parts[0]
        return lambda s: all(p(s) for p in parts)

    def parse_not(self) -> Predicate:
        if self.at("ident", "not"):
            self.advance()
            self.nested()
            inner = self.parse_not()
            self.depth -= 1
            return lambda s: not inner(s)
        return self.parse_compare()

    def parse_compare(self) -> Predicate:
        if self.at("op", "("):
            self.advance()
            self.nested()
            inner = self.parse_or()
            self.depth -= 1
            self.expect("op", ")", "expected ')'")
            return inner
        left_tok = self.tok
        left = self.parse_operand()
        negate = False
        if self.at("ident", "not"):
            self.advance()
            if not self.at("ident", "in"):
                raise self.error("expected 'in' after 'not'")
            negate = True
        op_tok = self.tok
        is_op = op_tok.kind == "op" and op_tok.text in ("==", "!=", "<", "<=", ">", ">=")
        if (is_op and not negate) or (op_tok.kind == "ident" and op_tok.text == "in"):
            self.advance()
        else:
            raise self.error(
                f"expected a comparison (==, !=, <, <=, >, >=, in) after {left_tok.text!r}"
            )
        if not self.at("end"):
            right = self.parse_operand()
        else:
            raise self.error(f"expected a value after {op_tok.text!r}")
        op = op_tok.text
        if op == "==" or op == "!=":
            negate = op == "!="
            test: Callable[[Any, Any], bool] = equal
        elif op == "in":
            test = _contains
        else:
            test = _ordered(op)

        def compare(s: Subject) -> bool:
            # Fields yield several values (labels): the comparison holds for some pair.
            result = any(test(a, b) for a in left(s) for b in right(s))
            return not result if negate else result

        return compare

    def parse_operand(self) -> Getter:
        token = self.tok
        if token.kind == "num":
            self.advance()
            number = json.loads(token.text)
            return lambda s: [number]
        if token.kind == "str":
            self.advance()
            string = _string_value(token)
            return lambda s: [string]
        if token.kind == "op" and token.text == "[":
            values = self.parse_list()
            return lambda s: [values]
        if token.kind == "ident":
            if token.text in ("true", "false", "null"):
                self.advance()
                constant = json.loads(token.text)
                return lambda s: [constant]
            if token.text in FIELDS:
                return self.parse_field()
            if token.text in KEYWORDS:
                raise self.error("expected a value")
            raise self.error(
                f"unknown name {token.text!r} (fields are label, metadata.KEY, path, name"
                f' and size; quote strings: "{token.text}")',
                found=False,
            )
        raise self.error("expected a value")

    def parse_list(self) -> list[Any]:
        self.advance()  # [
        values: list[Any] = []
        while not self.at("op", "]"):
            if values:
                self.expect("op", ",", "expected ',' or ']' in a list")
            token = self.tok
            if token.kind == "num":
                values.append(json.loads(token.text))
            elif token.kind == "str":
                values.append(_string_value(token))
            elif token.kind == "ident" and token.text in ("true", "false", "null"):
                values.append(json.loads(token.text))
            else:
                raise self.error("expected a string, number, true, false or null in a list")
            self.advance()
        self.advance()  # ]
        return values

    def parse_field(self) -> Getter:
        name = self.advance().text
        if name == "label":
            self.uses_annotations = True
            return lambda s: labels_of(s.annotations) or [None]
        if name == "path":
            return lambda s: [s.path]
        if name == "name":
            return lambda s: [s.path.rsplit("/", 1)[-1]]
        if name == "size":
            return lambda s: [s.size]
        # metadata.KEY(.KEY)*
        self.uses_metadata = True
        keys: list[str] = []
        while self.at("op", "."):
            self.advance()
            token = self.tok
            if token.kind == "ident":
                keys.append(token.text)
            elif token.kind == "str":
                keys.append(_string_value(token))
            else:
                raise self.error("expected a key after '.' (an identifier or a quoted string)")
            self.advance()
        if not keys:
            raise self.error("expected '.KEY' after 'metadata' (for example metadata.split)")

        def get(s: Subject) -> list[Any]:
            value: Any = s.metadata
            for key in keys:
                if not isinstance(value, dict):
                    return [_MISSING]
                value = value.get(key, _MISSING)
            return [value]

        return get
