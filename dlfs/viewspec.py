"""What a view shows: ``--where`` (which items) and ``--group-by`` (arranged how).

A view of a version (``dlfs mount REF MNT --where EXPR --group-by KEY``) shows only
the items the ``--where`` expression selects (the language of ``dlfs clone``,
:mod:`dlfs.ops.where`) and, with ``--group-by``, puts each item under a folder per
value of ``KEY``: ``MNT/<value>/<path in the version>``. Nothing is copied and no
version is made. :class:`ViewSpec` is the parsed pair; :func:`value_names` gives the
folder names an item belongs under.

Grouping keys:

- ``label``: the labels of the item's annotations (see :func:`dlfs.ops.where.labels_of`);
  an item with several labels appears under each.
- ``metadata.FIELD`` (``metadata.a.b`` reaches into objects): the value there. A
  string, number or boolean is one value; a list gives each string, number or boolean
  in it (the item appears under each).

An item with no value (no label; a missing field, ``null``, an object, an empty list)
appears under ``@none``.

Folder names (:func:`value_name`), a rule that never gives two values one name, so
names never clash:

- a string is itself, with ``%`` written ``%25``, ``/`` ``%2F``, ``@`` ``%40`` and
  NUL ``%00``; a string that reads as a number, ``true``, ``false`` or ``null``, or is
  ``.`` or ``..``, has its first character written ``%XX`` too (``"7"`` is ``%37``);
- a number or boolean is its JSON text (``7``, ``0.5``, ``true``); ``2.0`` is ``2``;
- the empty string is ``@empty``, no value ``@none``;
- a name longer than 255 bytes keeps its first 200 bytes (never cutting a character
  or a ``%XX``) followed by ``@`` and 32 hex digits of the hash of the whole name.

Only names dlfs makes contain ``@``, so ``@none``, ``@empty`` and cut names cannot
be taken by a value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import xxhash

from dlfs.errors import InvalidInput
from dlfs.names import NAME_MAX
from dlfs.ops import where as where_lang

NONE_NAME = "@none"
"""The folder of items that have no value of the grouping key."""

EMPTY_NAME = "@empty"
"""The folder of items whose value is the empty string."""

CUT_AT = 200
"""Bytes of a too long name kept before its ``@<hash>``."""

_FIELD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_NUMBER_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_ESCAPE = {"%": "%25", "/": "%2F", "@": "%40", "\x00": "%00"}
_ESCAPE_RE = re.compile("[%/@\x00]")


@dataclass(frozen=True)
class GroupKey:
    """A parsed ``--group-by`` key: ``label``, or ``metadata`` and a field path."""

    text: str
    fields: tuple[str, ...] = ()

    @property
    def is_label(self) -> bool:
        return not self.fields

    @staticmethod
    def parse(text: str) -> GroupKey:
        """``label`` or ``metadata.FIELD[.FIELD...]``; :class:`InvalidInput` otherwise."""
        if text == "label":
            return GroupKey(text)
        head, _, rest = text.partition(".")
        fields = tuple(rest.split(".")) if rest else ()
        if head != "metadata" or not fields or not all(_FIELD_RE.fullmatch(f) for f in fields):
            raise InvalidInput(
                f"invalid --group-by key {text!r}: give label or metadata.FIELD"
                " (for example metadata.split)"
            )
        return GroupKey(text, fields)

    def values(self, metadata: Any, annotations: Any) -> list[Any]:
        """The values of this key for an item (strings, numbers, booleans), each once."""
        if self.is_label:
            return where_lang.labels_of(annotations)
        value = metadata
        for f in self.fields:
            if not isinstance(value, dict):
                return []
            value = value.get(f)
        found = value if isinstance(value, list) else [value]
        return [v for v in found if isinstance(v, str | int | float) and v is not None]


@dataclass(frozen=True)
class ViewSpec:
    """A parsed view: the ``--where`` filter and the ``--group-by`` key, either None."""

    where: where_lang.Filter | None = None
    group: GroupKey | None = None

    @staticmethod
    def parse(where: str | None = None, group_by: str | None = None) -> ViewSpec | None:
        """The view of these options, None when both are None (a plain mount).
        :class:`InvalidInput` with one line for a bad expression or key."""
        if where is None and group_by is None:
            return None
        filt = where_lang.parse(where) if where is not None else None
        group = GroupKey.parse(group_by) if group_by is not None else None
        return ViewSpec(filt, group)

    @property
    def uses_item(self) -> bool:
        """True when deciding needs an item's metadata or annotations."""
        return self.group is not None or (
            self.where is not None and (self.where.uses_metadata or self.where.uses_annotations)
        )

    def matches(self, path: str, size: int, metadata: Any, annotations: Any) -> bool:
        """True when the item at ``path`` passes the ``--where`` filter."""
        if self.where is None:
            return True
        return self.where.matches(where_lang.Subject(path, size, metadata, annotations))

    def names(self, metadata: Any, annotations: Any) -> list[str]:
        """The folder names an item appears under (:func:`value_names`); ``[""]``
        without ``--group-by``."""
        if self.group is None:
            return [""]
        return value_names(self.group.values(metadata, annotations))

    def describe(self) -> str:
        """The options that make this view, as a user would type them."""
        parts = []
        if self.where is not None:
            parts.append(f"--where {json.dumps(self.where.text)}")
        if self.group is not None:
            parts.append(f"--group-by {self.group.text}")
        return " ".join(parts)


def value_names(values: list[Any]) -> list[str]:
    """The folder names of an item's values, each once: ``[@none]`` for none."""
    out: list[str] = []
    for v in values:
        name = value_name(v)
        if name not in out:
            out.append(name)
    return out or [NONE_NAME]


def value_name(value: Any) -> str:
    """The folder name of one value (the rule is in the module doc)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
            value = int(value)
        return _fit(json.dumps(value))
    if not isinstance(value, str):
        return NONE_NAME
    if value == "":
        return EMPTY_NAME
    name = _ESCAPE_RE.sub(lambda m: _ESCAPE[m.group()], value)
    if value in (".", "..", "true", "false", "null") or _NUMBER_RE.fullmatch(value):
        name = f"%{ord(name[0]):02X}{name[1:]}"
    return _fit(name)


def _fit(name: str) -> str:
    raw = name.encode("utf-8", "surrogatepass")
    if len(raw) <= NAME_MAX:
        return name
    cut = raw[:CUT_AT].decode("utf-8", "ignore")
    escape = cut.rfind("%")
    if escape >= len(cut) - 2:  # never cut inside a %XX
        cut = cut[:escape]
    return f"{cut}@{xxhash.xxh3_128_hexdigest(raw)}"
