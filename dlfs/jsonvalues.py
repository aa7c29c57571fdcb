"""The JSON values users give dlfs (metadata, annotations, label recipes): the rules
and the limits, in one place.

Every way in uses this module: the CLI (``dlfs meta --set/--annotations``, ``dlfs
dataset create --labels``, ``dlfs dataset meta``...), the Python API
(:meth:`dlfs.Catalog.set_meta`, ``add(metadata=...)``...), ``setxattr`` on a draft
mount and ``dlfs add``. A value is refused, with one line that names it and nothing
changed, when it

- is not JSON, or JSON that only Python reads: ``NaN``, ``Infinity``, ``-Infinity``
  (:class:`dlfs.errors.InvalidInput`, ``EINVAL``);
- has an object with the same key twice (JSON leaves the meaning open; dlfs would
  keep only the last one silently) (``EINVAL``);
- nests objects and lists more than :data:`MAX_DEPTH` levels deep (``EINVAL``);
- is larger, as canonical JSON text (UTF-8), than its kind's limit:
  :data:`MAX_METADATA` for metadata and label recipes, :data:`MAX_ANNOTATIONS` for
  annotations (:class:`dlfs.errors.TooLarge`, ``E2BIG``). A file of annotations larger
  than the limit is refused before it is read.

Through a mount, the kernel limits an extended attribute's value to 64 KiB whatever
dlfs allows (``setxattr`` answers ``E2BIG`` beyond).
"""

from __future__ import annotations

import json
import os
from typing import Any

from dlfs.errors import InvalidInput, TooLarge

MAX_DEPTH = 64
"""How deep objects and lists may nest (``{"a": [1]}`` is 2 deep)."""

MAX_METADATA = 1 << 20
"""The largest metadata object of an item, a version or a dataset, and the largest
label recipe: 1 MiB of canonical JSON."""

MAX_ANNOTATIONS = 16 << 20
"""The largest annotations list of an item: 16 MiB of canonical JSON."""

_TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"

_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key!r}")
            seen.add(key)
    return obj


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant)


def parse(text: str | bytes, what: str) -> Any:
    """The value of JSON ``text`` under the rules above (not the size limit: see
    :func:`metadata_text` and friends); :class:`InvalidInput` naming ``what``."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        value = _DECODER.decode(text)
    except RecursionError:
        raise InvalidInput(
            f"invalid JSON for {what}: nested deeper than {MAX_DEPTH} levels"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise InvalidInput(f"invalid JSON for {what}: {exc}") from None
    check_depth(value, what)
    return value


def read_file(path: str | os.PathLike[str], what: str, limit: int) -> Any:
    """The JSON value in the file at ``path``; :class:`TooLarge` when the file is over
    ``limit`` bytes (checked before reading it)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise TooLarge(f"{what} is {size} bytes, over the limit of {limit} bytes")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"{what} is over the limit of {limit} bytes")
    return parse(data, what)


def check_depth(value: Any, what: str) -> None:
    """:class:`InvalidInput` when ``value`` nests more than :data:`MAX_DEPTH` levels
    (walked without recursion, so any depth, even a cycle, is answered)."""
    if not isinstance(value, dict | list | tuple):
        return
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidInput(f"invalid JSON for {what}: {_TOO_DEEP}")
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list | tuple):
                stack.append((child, depth + 1))


def canonical_text(value: Any, what: str, limit: int) -> str:
    """``value`` as canonical JSON text (sorted keys, no spaces), checked: JSON types
    only, finite numbers, at most :data:`MAX_DEPTH` deep, at most ``limit`` bytes."""
    check_depth(value, what)
    try:
        text = _ENCODER.encode(value)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"invalid JSON for {what}: {exc}") from None
    if len(text) > limit or len(text.encode("utf-8", "surrogatepass")) > limit:
        raise TooLarge(f"{what} is over the limit of {limit} bytes of JSON")
    return text


def metadata_text(value: Any, what: str = "metadata") -> str:
    """Metadata (a JSON object, at most :data:`MAX_METADATA`) as canonical text."""
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object, got {type(value).__name__}")
    return canonical_text(value, what, MAX_METADATA)


def annotations_text(value: Any, what: str = "annotations") -> str:
    """Annotations (a JSON list, at most :data:`MAX_ANNOTATIONS`) as canonical text."""
    if not isinstance(value, list):
        raise InvalidInput(f"{what} must be a JSON list, got {type(value).__name__}")
    return canonical_text(value, what, MAX_ANNOTATIONS)


def labels_text(value: Any, what: str = "a labels recipe") -> str:
    """A label recipe (a JSON object or list, at most :data:`MAX_METADATA`) as
    canonical text."""
    if not isinstance(value, dict | list):
        raise InvalidInput(f"{what} must be a JSON object or list")
    return canonical_text(value, what, MAX_METADATA)
