"""Validation of the names users give: item and folder names, paths, tags, JSON values.

Each function returns the cleaned value or raises :class:`InvalidInput` with one line
that says what is wrong and with what.
"""

from __future__ import annotations

import os
import re
from typing import Any, cast

from dlfs import jsonvalues
from dlfs.errors import InvalidInput

NAME_MAX = 255
_TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_AUTO_TAG_RE = re.compile(r"^v[0-9]+$")
_DATASET_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._ -]{0,126}[A-Za-z0-9._-])?$")
_PROJECT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DEFAULT_PROJECT = "default"
"""The project of a dataset whose name has no ``PROJECT/`` part."""
RESERVED_TAGS = frozenset({"latest", "draft"})


def check_name(name: str) -> str:
    """An item or folder name: not empty, no ``/`` or NUL, not ``.``/``..``, <= 255 bytes,
    valid UTF-8 (a name read from the disk that is not arrives with surrogates, as
    :func:`os.fsdecode` gives it, and is refused: see ``docs/security.md``)."""
    if name in ("", ".", ".."):
        raise InvalidInput(f"invalid name {name!r}: names cannot be empty, '.' or '..'")
    if "/" in name or "\0" in name:
        raise InvalidInput(f"invalid name {name!r}: names cannot contain '/' or NUL")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(name).decode("utf-8", "backslashreplace")
        raise InvalidInput(f"invalid name '{shown}': not valid UTF-8") from None
    if len(name.encode("utf-8", "surrogateescape")) > NAME_MAX:
        raise InvalidInput(f"invalid name {name[:40]!r}...: longer than {NAME_MAX} bytes")
    return name


def split_path(path: str) -> list[str]:
    """A path inside a dataset as its parts; ``""``, ``/`` and ``.`` are the root.

    Leading and repeated slashes are ignored; ``.`` parts are dropped; ``..`` and NUL
    are refused, so no path can escape the dataset.
    """
    if "\0" in path:
        raise InvalidInput(f"invalid path {path!r}: contains NUL")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    for part in parts:
        if part == "..":
            raise InvalidInput(f"invalid path {path!r}: '..' would escape the dataset")
        check_name(part)
    return parts


def join_path(parts: list[str]) -> str:
    """The display form of a path inside a dataset (``a/b/c``; ``/`` for the root)."""
    return "/".join(parts) if parts else "/"


def check_dataset_name(name: str) -> str:
    """A dataset name, ``NAME`` or ``PROJECT/NAME``, as the catalog keeps it.

    ``NAME``: letters, digits, ``._-`` and inner spaces (``"myDataset One"``), starting
    with a letter or digit, at most 128; ``PROJECT`` as :func:`check_project_name`. A
    name in the default project is kept bare: ``default/cats`` is ``cats``.
    """
    project, sep, base = name.rpartition("/")
    if sep:
        check_project_name(project)
    if not _DATASET_RE.match(base):
        raise InvalidInput(
            f"invalid dataset name {name!r}: use letters, digits, '.', '_', '-' and inner"
            " spaces (starting with a letter or digit, at most 128), after an optional"
            " PROJECT/"
        )
    return base if project in ("", DEFAULT_PROJECT) else f"{project}/{base}"


def check_project_name(name: str) -> str:
    """A project name: letters, digits, ``._-``, starting with a letter or digit, at
    most 64."""
    if not _PROJECT_RE.match(name):
        raise InvalidInput(
            f"invalid project name {name!r}: use letters, digits, '.', '_' and '-'"
            " (starting with a letter or digit, at most 64)"
        )
    return name


def project_of(dataset: str) -> str:
    """The project of a dataset name as the catalog keeps it (``default`` if bare)."""
    project, sep, _base = dataset.rpartition("/")
    return project if sep else DEFAULT_PROJECT


def in_project(project: str, base: str) -> str:
    """The name the catalog keeps for dataset ``base`` of ``project``."""
    return base if project == DEFAULT_PROJECT else f"{project}/{base}"


def check_user_tag(tag: str) -> str:
    """A tag a user may set: not ``latest``/``draft``, not an auto tag like ``v3``."""
    if not _TAG_RE.match(tag):
        raise InvalidInput(
            f"invalid tag {tag!r}: use letters, digits, '.', '_' and '-'"
            " (starting with a letter or digit)"
        )
    if tag in RESERVED_TAGS or _AUTO_TAG_RE.match(tag):
        raise InvalidInput(f"tag {tag!r} is reserved (latest, draft and vN are automatic)")
    return tag


def is_auto_tag(tag: str) -> bool:
    """True for the tags dlfs assigns itself: ``latest`` and ``v0``, ``v1``..."""
    return tag == "latest" or bool(_AUTO_TAG_RE.match(tag))


def parse_json(text: str, what: str) -> Any:
    """Parse JSON text under the rules of :mod:`dlfs.jsonvalues`, with ``what`` naming
    it in the error."""
    return jsonvalues.parse(text, what)


def parse_assignment(text: str) -> tuple[str, Any]:
    """``KEY=JSONVALUE`` as ``(key, value)``; the value must be valid JSON under the
    rules of :mod:`dlfs.jsonvalues` (no ``NaN``, no duplicate keys, not too deep).

    Dotted keys (``a.b=1``) set nested objects (see :func:`set_dotted`).
    """
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise InvalidInput(f"invalid assignment {_short(text)!r}: expected KEY=JSONVALUE")
    try:
        value = jsonvalues.parse(raw, key)
    except InvalidInput as exc:
        reason = str(exc).partition(": ")[2]
        hint = " (quote strings: KEY='\"text\"')" if "Expecting" in reason else ""
        raise InvalidInput(f"invalid JSON value in {_short(text)!r}: {reason}{hint}") from None
    return key, value


def _short(text: str, keep: int = 60) -> str:
    """``text``, cut to ``keep`` characters for an error line."""
    return text if len(text) <= keep else text[:keep] + "..."


def check_assignments(assignments: Any, what: str = "metadata") -> list[tuple[str, Any]]:
    """``assignments`` as a list of ``(dotted key, value)`` pairs, or
    :class:`InvalidInput`: a key must be a non-empty string without an empty part
    (``a..b``); values are checked later, as JSON (:mod:`dlfs.jsonvalues`)."""
    if isinstance(assignments, str | bytes | dict) or not hasattr(assignments, "__iter__"):
        raise InvalidInput(
            f"{what} assignments must be a list of (key, value) pairs,"
            f" got {type(assignments).__name__}"
        )
    out = []
    for pair in assignments:
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise InvalidInput(f"invalid {what} assignment {pair!r}: expected (key, value)")
        key, value = pair
        if not isinstance(key, str) or not key or "" in key.split(".") or "\0" in key:
            raise InvalidInput(f"invalid {what} key {key!r}: expected a name or a.b.c")
        out.append((key, value))
    return out


def remove_dotted(target: dict[str, Any], key: str) -> bool:
    """Remove ``target[a][b]`` for ``key == "a.b"``; return whether it was there."""
    parts = key.split(".")
    node: Any = target
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict) or parts[-1] not in node:
        return False
    del node[parts[-1]]
    return True


def set_dotted(target: dict[str, Any], key: str, value: Any) -> None:
    """Set ``target[a][b] = value`` for ``key == "a.b"``, creating objects on the way."""
    parts = key.split(".")
    node = target
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def check_metadata(value: Any, what: str = "metadata") -> dict[str, Any]:
    """Metadata must be a JSON object within the limits of :mod:`dlfs.jsonvalues`."""
    jsonvalues.metadata_text(value, what)
    return cast(dict[str, Any], value)


def check_annotations(value: Any) -> list[Any]:
    """Annotations must be a JSON list within the limits of :mod:`dlfs.jsonvalues`."""
    jsonvalues.annotations_text(value)
    return cast(list[Any], value)
