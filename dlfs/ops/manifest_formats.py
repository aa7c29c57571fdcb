"""Manifest files: the rows of JSON Lines, CSV and COCO files, read and written.

A manifest lists files with where they land in a dataset and what is known about
them. This module only reads and writes the files; :mod:`dlfs.ops.manifests` turns
rows into items and items into rows. Three formats (``docs/manifests.md``):

- ``jsonl``: one JSON object per line, ``{"src": ..., "path": ..., "metadata": {...},
  "annotations": [...]}``; ``src`` is required, the others optional, no other key;
  blank lines are skipped;
- ``csv``: a header naming some of the same columns (``src`` required), then one row
  per file; ``metadata`` and ``annotations`` cells are JSON text, an empty cell means
  "not given";
- ``coco``: a COCO annotation file. Each image is a row: its ``file_name`` is ``src``
  and ``path``, its other fields (``id``, ``width``, ``height``...) the metadata; each
  annotation of it, without ``image_id`` and with ``"label"`` set to its category's
  name, one of its annotations (in file order); the categories, in file order, are
  kept for the dataset's label recipe.

Every value is checked as :mod:`dlfs.jsonvalues` says (no duplicate keys, no NaN, the
size limits); a bad row is refused with one line naming the file and the row's line
(``line 7``; a CSV row's first line) or, in COCO, its place (``images[3]``).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from dlfs import jsonvalues
from dlfs.errors import DlfsError, InvalidInput

FORMATS = ("jsonl", "csv", "coco")
COLUMNS = ("src", "path", "metadata", "annotations")
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".json": "coco"}
_CSV_FIELD_LIMIT = 2 * jsonvalues.MAX_ANNOTATIONS

T = TypeVar("T")


@dataclass
class Row:
    """One file of a manifest, as given (``src`` not yet looked at)."""

    where: str
    """The row's place in its file, for errors: ``line 3`` or ``images[2]``."""
    src: str
    path: str | None = None
    metadata: dict[str, Any] | None = None
    annotations: list[Any] | None = None


@dataclass
class Manifest:
    """The rows of a manifest file, and the COCO categories when it had some."""

    name: str
    rows: list[Row] = field(default_factory=list)
    categories: list[dict[str, Any]] | None = None


@dataclass
class Record:
    """One file of a version as an export writes it."""

    src: str
    path: str
    metadata: dict[str, Any]
    annotations: list[Any]


def detect(path: Path, forced: str | None = None) -> str:
    """The format of manifest ``path``: ``forced`` when given, else by extension
    (``.jsonl``/``.ndjson``, ``.csv``, ``.json`` for COCO), else by content (a file
    starting with ``{`` is JSON Lines, or COCO when it is one object with
    ``images``; anything else is CSV)."""
    if forced is not None:
        if forced not in FORMATS:
            raise InvalidInput(
                f"unknown manifest format {forced!r}: use one of {', '.join(FORMATS)}"
            )
        return forced
    by_name = _EXTENSIONS.get(path.suffix.lower())
    if by_name is not None:
        return by_name
    with open(path, "rb") as f:
        head = f.read(1 << 16).lstrip()
    if not head.startswith(b"{"):
        return "csv"
    first, _, rest = head.partition(b"\n")
    try:
        json.loads(first)
    except ValueError:
        return "coco"  # one object spread over lines
    return "coco" if not rest.strip() and b'"images"' in first else "jsonl"


def export_format(path: Path, forced: str | None = None) -> str:
    """The format to write ``path`` in: ``forced``, else by extension (JSON Lines
    for an unknown one)."""
    if forced is not None:
        return detect(path, forced)
    return _EXTENSIONS.get(path.suffix.lower(), "jsonl")


def read(path: Path, fmt: str) -> Manifest:
    """The rows of manifest ``path`` in format ``fmt``; :class:`InvalidInput` for the
    first bad row (:class:`dlfs.errors.TooLarge` for a value over its limit)."""
    readers: dict[str, Callable[[Path], Manifest]] = {
        "jsonl": read_jsonl,
        "csv": read_csv,
        "coco": read_coco,
    }
    return readers[fmt](path)


def read_jsonl(path: Path) -> Manifest:
    """The rows of a JSON Lines manifest."""
    out = Manifest(str(path))
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}: line {number}"
            value = _checked(where, jsonvalues.parse, line, "the row")
            out.rows.append(_row(where, value))
    return out


def read_csv(path: Path) -> Manifest:
    """The rows of a CSV manifest (a header line first)."""
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    out = Manifest(str(path))
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header: list[str] | None = None
        start = 1
        try:
            for cells in reader:
                where = f"{path}: line {start}"
                start = reader.line_num + 1
                if header is None:
                    header = _header(where, cells)
                    continue
                if not any(cells):
                    continue
                if len(cells) != len(header):
                    raise InvalidInput(
                        f"{where}: {len(cells)} cells, the header has {len(header)} columns"
                    )
                value = {}
                for column, cell in zip(header, cells, strict=True):
                    if cell == "":
                        continue
                    if column in ("metadata", "annotations"):
                        value[column] = _checked(where, jsonvalues.parse, cell, column)
                    else:
                        value[column] = cell
                out.rows.append(_row(where, value))
        except csv.Error as exc:
            raise InvalidInput(f"{path}: line {reader.line_num}: {exc}") from None
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"{path}: not UTF-8 text: {exc}") from None
    if header is None:
        raise InvalidInput(f"{path}: empty CSV file: it needs a header naming the columns")
    return out


def _header(where: str, cells: list[str]) -> list[str]:
    names = [c.strip() for c in cells]
    for name in names:
        if name not in COLUMNS:
            raise InvalidInput(
                f"{where}: unknown column {name!r} (a manifest has {', '.join(COLUMNS)})"
            )
    if len(set(names)) != len(names):
        raise InvalidInput(f"{where}: a column is named twice")
    if "src" not in names:
        raise InvalidInput(f"{where}: the header has no 'src' column")
    return names


def read_coco(path: Path) -> Manifest:
    """The rows of a COCO annotation file: one per image (see the module docstring)."""
    doc = _checked(str(path), jsonvalues.parse, path.read_bytes(), "a COCO file")
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise InvalidInput(f"{path}: not a COCO file: no 'images' list")
    out = Manifest(str(path))
    names: dict[Any, str] = {}
    categories = doc.get("categories")
    if categories is not None:
        if not isinstance(categories, list):
            raise InvalidInput(f"{path}: 'categories' must be a list")
        for i, cat in enumerate(categories):
            where = f"{path}: categories[{i}]"
            if not isinstance(cat, dict) or not isinstance(cat.get("name"), str):
                raise InvalidInput(f"{where}: a category needs a 'name'")
            if not _is_id(cat.get("id")) or cat["id"] in names:
                raise InvalidInput(f"{where}: missing or duplicate id")
            names[cat["id"]] = cat["name"]
        out.categories = categories
    images: dict[Any, Row] = {}
    for i, image in enumerate(doc["images"]):
        where = f"{path}: images[{i}]"
        if not isinstance(image, dict) or not isinstance(image.get("file_name"), str):
            raise InvalidInput(f"{where}: an image needs a 'file_name'")
        if not _is_id(image.get("id")) or image["id"] in images:
            raise InvalidInput(f"{where}: missing or duplicate id")
        meta = {k: v for k, v in image.items() if k != "file_name"}
        row = Row(where, image["file_name"], None, meta, [])
        images[image["id"]] = row
        out.rows.append(row)
    annotations = doc.get("annotations") or []
    if not isinstance(annotations, list):
        raise InvalidInput(f"{path}: 'annotations' must be a list")
    for i, ann in enumerate(annotations):
        where = f"{path}: annotations[{i}]"
        if not isinstance(ann, dict) or not _is_id(ann.get("image_id")):
            raise InvalidInput(f"{where}: an annotation needs an 'image_id'")
        target = images.get(ann["image_id"])
        if target is None:
            raise InvalidInput(f"{where}: image_id {ann['image_id']!r} names no image")
        value = {k: v for k, v in ann.items() if k != "image_id"}
        if "category_id" in ann:
            if ann["category_id"] not in names:
                if categories is not None:
                    raise InvalidInput(
                        f"{where}: category_id {ann['category_id']!r} names no category"
                    )
            else:
                value["label"] = names[ann["category_id"]]
        assert target.annotations is not None
        target.annotations.append(value)
    for row in out.rows:
        _values(row.where, row.metadata, row.annotations)
    return out


def _is_id(value: Any) -> bool:
    return isinstance(value, int | str) and not isinstance(value, bool)


def _row(where: str, value: Any) -> Row:
    if not isinstance(value, dict):
        raise InvalidInput(f"{where}: a row must be a JSON object")
    for key in value:
        if key not in COLUMNS:
            raise InvalidInput(f"{where}: unknown key {key!r} (a row has {', '.join(COLUMNS)})")
    src = value.get("src")
    if not isinstance(src, str) or not src:
        raise InvalidInput(f"{where}: missing src")
    path = value.get("path")
    if path is not None and not isinstance(path, str):
        raise InvalidInput(f"{where}: path must be a string")
    meta, ann = value.get("metadata"), value.get("annotations")
    _values(where, meta, ann)
    return Row(where, src, path, meta, ann)


def _values(where: str, metadata: Any, annotations: Any) -> None:
    if metadata is not None:
        _checked(where, jsonvalues.metadata_text, metadata)
    if annotations is not None:
        _checked(where, jsonvalues.annotations_text, annotations)


def _checked(where: str, check: Callable[..., T], *args: Any) -> T:
    """``check(*args)``, its refusal prefixed with ``where`` (same error class)."""
    try:
        return check(*args)
    except DlfsError as exc:
        raise type(exc)(f"{where}: {exc}") from None


# -- writing ----------------------------------------------------------------------


def write(path: Path, fmt: str, records: Iterable[Record], labels: list[str], recipe: Any) -> int:
    """Write ``records`` to ``path`` in format ``fmt``, whole or not at all (a
    temporary file renamed into place). ``labels`` and ``recipe`` (the dataset's)
    give COCO its categories. Returns how many annotations could not be written
    (COCO keeps only JSON objects). Missing folders above ``path`` are made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    dropped = 0
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            if fmt == "jsonl":
                for r in records:
                    row: dict[str, Any] = {"src": r.src, "path": r.path}
                    row.update(metadata=r.metadata, annotations=r.annotations)
                    f.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
            elif fmt == "csv":
                writer = csv.writer(f, lineterminator="\n")
                writer.writerow(COLUMNS)
                for r in records:
                    writer.writerow([r.src, r.path, _json(r.metadata), _json(r.annotations)])
            else:
                doc, dropped = coco_document(list(records), labels, recipe)
                json.dump(doc, f, ensure_ascii=False, indent=1)
                f.write("\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return dropped


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def coco_document(
    records: list[Record], labels: list[str], recipe: Any
) -> tuple[dict[str, Any], int]:
    """The COCO document of ``records`` and how many annotations it leaves out.

    Images take their metadata's ``id`` when every image has a distinct one (else
    1, 2, ... in path order) and ``file_name`` is the item's path. Categories come
    from the recipe's ``categories`` (what a COCO import recorded), then from the
    recipe's labels and the annotations' ``label`` values, numbered after the
    largest id. An annotation keeps its fields but ``label``, gets ``category_id``
    from its label when it has none, and ``id`` when its own is missing or taken.
    """
    categories: list[dict[str, Any]] = []
    by_name: dict[str, Any] = {}
    if isinstance(recipe, dict) and isinstance(recipe.get("categories"), list):
        for cat in recipe["categories"]:
            if isinstance(cat, dict) and _is_id(cat.get("id")) and isinstance(cat.get("name"), str):
                categories.append(cat)
                by_name.setdefault(cat["name"], cat["id"])

    def category(name: str) -> Any:
        if name not in by_name:
            ints = [c["id"] for c in categories if isinstance(c["id"], int)]
            by_name[name] = max(ints, default=0) + 1
            categories.append({"id": by_name[name], "name": name})
        return by_name[name]

    for name in labels:
        category(name)
    ids = [r.metadata.get("id") for r in records]
    if not all(_is_id(i) for i in ids) or len(set(ids)) != len(ids):
        ids = list(range(1, len(records) + 1))
    images, annotations, dropped = [], [], 0
    taken = {
        a["id"]
        for r in records
        for a in r.annotations
        if isinstance(a, dict) and isinstance(a.get("id"), int)
    }
    used: set[int] = set()
    next_id = max(taken, default=0) + 1
    for image_id, r in zip(ids, records, strict=True):
        rest = {k: v for k, v in r.metadata.items() if k not in ("id", "file_name")}
        images.append({"id": image_id, "file_name": r.path, **rest})
        for a in r.annotations:
            if not isinstance(a, dict):
                dropped += 1
                continue
            ann = {k: v for k, v in a.items() if k not in ("label", "image_id")}
            ann["image_id"] = image_id
            label = a.get("label")
            if "category_id" not in ann and isinstance(label, str):
                ann["category_id"] = category(label)
            elif isinstance(label, str) and label not in by_name:
                by_name[label] = ann["category_id"]
                categories.append({"id": ann["category_id"], "name": label})
            if not isinstance(ann.get("id"), int) or ann["id"] in used:
                ann["id"] = next_id
                next_id += 1
            used.add(ann["id"])
            annotations.append(ann)
    doc = {"images": images, "annotations": annotations, "categories": categories}
    return doc, dropped
