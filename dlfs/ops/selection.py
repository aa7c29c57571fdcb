"""Choosing and ordering datasets by what they have: ``Catalog.datasets(where, sort)``.

A dataset is seen as its *fields* (:func:`dlfs.versions.dataset_fields`): ``name``,
``kind``, ``description``, ``storage``, ``tags``, ``labels``, ``created_at`` and
``metadata``, into which a dotted path reaches (``metadata.owner.team``; a missing
key is ``None``). :func:`select` keeps the datasets for which every condition of a
``where`` mapping holds, or a predicate is true, and sorts them by fields; it works
on ``(handle, fields)`` pairs, so it knows nothing of the catalog or of handles.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from dlfs.errors import InvalidInput
from dlfs.objects import canonical_json
from dlfs.ops.where import equal as json_equal

H = TypeVar("H")

DATASET_FIELDS = ("name", "kind", "description", "storage", "tags", "labels", "created_at")


def field_value(fields: dict[str, Any], key: str) -> Any:
    """The value at a dotted field path (``metadata.a.b``), ``None`` when missing;
    :class:`InvalidInput` for a field datasets do not have."""
    head, *rest = key.split(".")
    if head not in DATASET_FIELDS and not (head == "metadata" and rest):
        known = ", ".join([*DATASET_FIELDS, "metadata.KEY"])
        raise InvalidInput(f"unknown dataset field {key!r} (fields are {known})")
    value = fields[head]
    for part in rest:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def holds(fields: dict[str, Any], key: str, wanted: Any) -> bool:
    """True when field ``key`` is ``wanted``: equal as JSON values (``1 != True``),
    one of the tags (``tags`` and a string), or accepted by a callable ``wanted``."""
    value = field_value(fields, key)
    if callable(wanted):
        return bool(wanted(value))
    if key == "tags" and isinstance(wanted, str):
        return wanted in value
    return json_equal(value, wanted)


def sort_key(value: Any) -> tuple[int, Any]:
    """An order over JSON values: numbers (booleans as 0 and 1), then strings, then
    the rest by their canonical JSON."""
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, int | float):
        return (0, value)
    if isinstance(value, str):
        return (1, value)
    return (2, canonical_json(value))


def select(
    rows: list[tuple[H, dict[str, Any]]],
    where: Mapping[str, Any] | Callable[[H], bool] | None,
    sort: str | Sequence[str] | None,
) -> list[H]:
    """The handles of ``rows`` (``(handle, fields)`` pairs, by name) that ``where``
    keeps, sorted by ``sort``; see :meth:`dlfs.Catalog.datasets` for both."""
    if isinstance(where, Mapping):
        conditions = list(where.items())
        for key, _ in conditions:
            field_value({**dict.fromkeys(DATASET_FIELDS), "metadata": {}}, key)  # check the names
        rows = [(d, f) for d, f in rows if all(holds(f, k, v) for k, v in conditions)]
    elif callable(where):
        rows = [(d, f) for d, f in rows if where(d)]
    elif where is not None:
        raise InvalidInput(
            f"where must be a mapping of field -> value or a callable, got {type(where).__name__}"
        )
    keys = [sort] if isinstance(sort, str) else list(sort or [])
    for key in reversed(keys):
        descending = key.startswith("-")
        field = key[1:] if descending else key
        keyed = [(d, f, field_value(f, field)) for d, f in rows]
        present = [t for t in keyed if t[2] is not None]
        present.sort(key=lambda t: sort_key(t[2]), reverse=descending)
        rows = [(d, f) for d, f, _ in present] + [(d, f) for d, f, v in keyed if v is None]
    return [d for d, _ in rows]
