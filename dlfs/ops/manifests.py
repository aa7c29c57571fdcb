"""``dlfs import`` and ``dlfs export``: a draft filled from a manifest, and a version
written back as one (the formats: :mod:`dlfs.ops.manifest_formats`).

Import runs in three phases, so that a bad row changes nothing:

1. *read and place* (:func:`place`): every row is read and checked, its ``src``
   looked at and its destination path decided, before any byte is copied. A row is
   refused with its line when its ``src`` is missing or not a regular file, its
   path is not a valid dataset path or is given twice, a file would stand where
   another row (or the draft) has a folder, or a value breaks the rules of
   :mod:`dlfs.jsonvalues`;
2. *stage*: a local ``src``'s bytes stream into the store's batch, as ``dlfs add``
   does; an ``s3://`` row of a linked dataset is looked up (one HEAD per object)
   and recorded as the object it is now, as ``dlfs link`` does, nothing copied;
3. *record*: one catalog transaction makes the items (and sets the dataset's label
   recipe from COCO categories); the staged blobs become durable just before it
   commits. A failure anywhere aborts the batch: no blob is left behind and the
   catalog is exactly as before.

A row landing on a file of the draft replaces its bytes and keeps its lineage, as
``dlfs add`` does; metadata and annotations the row gives replace the item's, the
ones it leaves out are kept.

Default paths: a relative local ``src`` that stays inside its base folder lands at
that relative path (``img/a.jpg``), any other local ``src`` under its file name; an
``s3://`` object at its key below the dataset's linked prefix, as ``dlfs link`` puts
it.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlfs import jsonvalues, versions
from dlfs.catalog import CatalogDB, Row
from dlfs.errors import Conflict, DlfsError, InvalidInput, NotFound
from dlfs.names import join_path, split_path
from dlfs.objects import DIR
from dlfs.ops import importer, manifest_formats
from dlfs.ops.link import key_parts
from dlfs.ops.manifest_formats import Manifest, Record
from dlfs.ops.manifest_formats import Row as ManifestRow
from dlfs.ops.merge import recipe_labels
from dlfs.stores.base import BlobStore
from dlfs.stores.urls import LINKED, ExternalObject, S3Url, is_linked, parse_s3_url

Progress = Callable[[int], None]


@dataclass
class Placed:
    """A manifest row with its destination decided and its source looked at."""

    row: ManifestRow
    parts: list[str]
    local: Path | None = None
    """The local file to copy (a local ``src``)."""
    key: str | None = None
    """The object key (an ``s3://`` ``src``)."""
    size: int = 0
    replaces: bool = False
    """A file of the draft is at the path."""


@dataclass
class ImportResult:
    """What an import did, or with ``dry_run`` would do."""

    rows: int = 0
    added: list[str] = field(default_factory=list)
    """The paths of new files."""
    replaced: list[str] = field(default_factory=list)
    """The paths of files of the draft that take new bytes."""
    bytes: int = 0
    labels: Any = None
    """The label recipe set on the dataset (from COCO categories); None: unchanged."""
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "added": len(self.added),
            "replaced": len(self.replaced),
            "bytes": self.bytes,
            "labels": self.labels,
            "dry_run": self.dry_run,
        }


@dataclass
class ExportResult:
    """What an export wrote."""

    files: int = 0
    format: str = ""
    copied_bytes: int = 0
    """Bytes written with ``with_files`` (each verified against its hash)."""
    dropped_annotations: int = 0
    """Annotations COCO had no place for (not JSON objects)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "format": self.format,
            "copied_bytes": self.copied_bytes,
            "dropped_annotations": self.dropped_annotations,
        }


# -- import -------------------------------------------------------------------------


@dataclass
class Plan:
    """An import decided and checked, not yet done."""

    draft: Row
    storage: str
    """The storage URL of the draft's dataset."""
    linked: S3Url | None
    """Its bucket location when it is linked."""
    placed: list[Placed]
    labels: Any
    """The label recipe to set (from COCO categories); None: unchanged."""
    objects: list[ExternalObject] = field(default_factory=list)
    """The objects of the rows of a linked dataset (:func:`lookup_objects`)."""


def read(path: Path, fmt: str | None = None) -> Manifest:
    """The rows of manifest ``path`` (``fmt`` forced, else detected)."""
    if not path.is_file():
        raise NotFound(f"no such manifest file: {path}")
    return manifest_formats.read(path, manifest_formats.detect(path, fmt))


def plan(db: CatalogDB, ref: str, manifest: Manifest, images: Path | None) -> Plan:
    """Phase 1 for the draft ``ref`` names: relative local sources are found in
    ``images`` (default: the manifest's folder). Reads the catalog only (run it in a
    snapshot)."""
    draft = versions.resolve_draft(db, ref)
    ds = db.dataset_by_id(draft["dataset"])
    assert ds is not None
    linked = linked_location(ds["storage"])
    base = Path(manifest.name).parent if images is None else images
    placed = place(db, draft, manifest, base, linked)
    return Plan(draft, ds["storage"], linked, placed, recipe_for(ds, manifest))


def apply(db: CatalogDB, store: BlobStore, plan: Plan, progress: Progress | None = None) -> None:
    """Phases 2 and 3: store (or, linked, record) the rows' files, all or none."""
    if plan.linked is not None:
        import_linked(db, plan.draft, plan.placed, plan.objects, store.url, plan.labels, progress)
    else:
        import_local(db, store, plan.draft, plan.placed, plan.labels, progress)


def linked_location(storage: str) -> S3Url | None:
    """The bucket location of a linked dataset's storage URL; None for others."""
    return parse_s3_url(storage.removeprefix(LINKED)) if is_linked(storage) else None


def place(
    db: CatalogDB, draft: Row, manifest: Manifest, base: Path, linked: S3Url | None
) -> list[Placed]:
    """Decide where each row lands and check it (phase 1 of the module docstring):
    ``base`` is the folder relative local sources are found in; ``linked`` the
    bucket location of a linked dataset (whose rows must be ``s3://`` objects there).
    Reads the catalog only."""
    placed: list[Placed] = []
    files: dict[tuple[str, ...], str] = {}
    folders: dict[tuple[str, ...], str] = {}
    for row in manifest.rows:
        p = _source(row, base, linked)
        line = row.where.rpartition(": ")[2]
        path = tuple(p.parts)
        if path in files:
            raise InvalidInput(
                f"{row.where}: duplicate path {join_path(p.parts)} (also {files[path]})"
            )
        if path in folders:
            raise InvalidInput(
                f"{row.where}: {join_path(p.parts)} is a folder of the file of {folders[path]}"
            )
        for i in range(1, len(path)):
            if path[:i] in files:
                raise InvalidInput(
                    f"{row.where}: {join_path(list(path[:i]))} is the file of {files[path[:i]]},"
                    " it cannot be a folder"
                )
            folders.setdefault(path[:i], line)
        files[path] = line
        placed.append(p)
    _check_draft(db, draft["root"], placed)
    return placed


def _source(row: ManifestRow, base: Path, linked: S3Url | None) -> Placed:
    if row.src.startswith("s3://"):
        if linked is None:
            raise InvalidInput(
                f"{row.where}: {row.src} is an S3 object, and this dataset is not linked to"
                " a bucket (use 'dlfs link NAME s3://bucket/prefix' first)"
            )
        bucket, _, key = row.src[5:].partition("/")
        if bucket != linked.bucket or not key.startswith(linked.prefix):
            raise InvalidInput(f"{row.where}: {row.src} is not under the linked {linked}")
        default = key_parts(linked.prefix, key)
        if default is None:
            raise InvalidInput(f"{row.where}: {row.src} is not an object that can be shown")
        return Placed(row, _dest(row, default), key=key)
    if linked is not None:
        raise InvalidInput(
            f"{row.where}: {row.src} is a local file, and this dataset's files are the"
            f" objects of {linked}: give s3:// sources there"
        )
    src = Path(row.src)
    full = src if src.is_absolute() else base / src
    try:
        st = os.stat(full)
    except FileNotFoundError:
        raise NotFound(f"{row.where}: no such file: {full}") from None
    except OSError as exc:
        raise InvalidInput(f"{row.where}: cannot read {full}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise InvalidInput(f"{row.where}: not a regular file: {full}")
    if not os.access(full, os.R_OK):
        raise InvalidInput(f"{row.where}: cannot read {full}: permission denied")
    inside = not src.is_absolute() and ".." not in src.parts
    default = _checked_path(row, row.src) if inside else _checked_path(row, src.name)
    return Placed(row, _dest(row, default), local=full, size=st.st_size)


def _dest(row: ManifestRow, default: list[str]) -> list[str]:
    parts = default if row.path is None else _checked_path(row, row.path)
    if not parts:
        raise InvalidInput(f"{row.where}: path {row.path!r} names the dataset's root, not a file")
    return parts


def _checked_path(row: ManifestRow, path: str) -> list[str]:
    try:
        return split_path(path)
    except DlfsError as exc:
        raise type(exc)(f"{row.where}: {exc}") from None


def _check_draft(db: CatalogDB, root: str, placed: list[Placed]) -> None:
    """Refuse a row whose file would stand where the draft has a folder, or whose
    folder is a file of the draft; mark the rows that replace a file."""
    nodes: dict[tuple[str, ...], tuple[int, str] | None] = {(): (DIR, root)}

    def node(path: tuple[str, ...]) -> tuple[int, str] | None:
        if path not in nodes:
            parent = node(path[:-1])
            entry = None
            if parent is not None and parent[0] == DIR:
                entry = db.entry(parent[1], path[-1])
            nodes[path] = None if entry is None else (entry["kind"], entry["ref"])
        return nodes[path]

    for p in placed:
        path = tuple(p.parts)
        for i in range(1, len(path)):
            found = node(path[:i])
            if found is not None and found[0] != DIR:
                raise InvalidInput(
                    f"{p.row.where}: {join_path(list(path[:i]))} is a file in the draft,"
                    " it cannot be a folder"
                )
        found = node(path)
        if found is not None and found[0] == DIR:
            raise InvalidInput(f"{p.row.where}: a folder is at {join_path(p.parts)} in the draft")
        p.replaces = found is not None


def recipe_for(ds: Row, manifest: Manifest) -> Any:
    """The label recipe to set from a COCO file's categories: ``{"labels": [names],
    "categories": [the categories]}`` for a dataset without one; None when there is
    nothing to set (no categories, or a recipe that has them all). A recipe that
    lacks some of them is :class:`InvalidInput` (the annotations would use labels
    it does not define)."""
    if manifest.categories is None:
        return None
    names = list(dict.fromkeys(c["name"] for c in manifest.categories))
    if ds["labels"] is None:
        recipe = {"labels": names, "categories": manifest.categories}
        jsonvalues.labels_text(recipe, f"{manifest.name}: the categories as a labels recipe")
        return recipe
    known = recipe_labels(json.loads(ds["labels"]))
    missing = [n for n in names if n not in known]
    if missing:
        raise InvalidInput(
            f"{manifest.name}: categories not in the labels recipe of dataset"
            f" {ds['name']!r}: {', '.join(missing[:5])}"
        )
    return None


def result_of(plan: Plan, dry_run: bool) -> ImportResult:
    """What doing ``plan`` does."""
    result = ImportResult(rows=len(plan.placed), labels=plan.labels, dry_run=dry_run)
    for p in plan.placed:
        (result.replaced if p.replaces else result.added).append(join_path(p.parts))
        result.bytes += p.size
    return result


def lookup_objects(plan: Plan, find: Callable[[list[str]], list[ExternalObject | None]]) -> None:
    """Look up the object of each ``s3://`` row now (``find``: a linked store's
    :meth:`~dlfs.stores.linked.LinkedStore.objects`) into ``plan.objects``;
    :class:`NotFound` with the line of the first row whose object is missing."""
    found = find([p.key or "" for p in plan.placed])
    plan.objects = []
    for p, obj in zip(plan.placed, found, strict=True):
        if obj is None:
            raise NotFound(f"{p.row.where}: no such object: {p.row.src}")
        p.size = obj.size
        plan.objects.append(obj)


def _planned(p: Placed) -> importer.PlannedFile:
    folder, name = tuple(p.parts[:-1]), p.parts[-1]
    if p.local is not None:
        planned = importer.local_file(p.local, folder, name)
    else:
        planned = importer.PlannedFile(b"", folder, name)
    planned.metadata, planned.annotations = p.row.metadata, p.row.annotations
    return planned


def _record(
    db: CatalogDB,
    draft_id: str,
    dataset_id: int,
    files: list[importer.PlannedFile],
    blobs: list[tuple[str, int]],
    store_url: str,
    labels: Any,
) -> importer.AddResult:
    current = db.version_get(draft_id)
    if current is None or current["state"] != "draft":
        raise Conflict(f"draft {draft_id} was published or deleted meanwhile")
    result = importer.record(db, current, files, blobs, [], store_url)
    if labels is not None:
        db.dataset_update(dataset_id, labels=jsonvalues.labels_text(labels))
    return result


def import_local(
    db: CatalogDB,
    store: BlobStore,
    draft: Row,
    placed: list[Placed],
    labels: Any,
    progress: Progress | None = None,
) -> importer.AddResult:
    """Copy the rows' files into ``store`` and record them, all or nothing (phases 2
    and 3); ``labels``, when not None, becomes the dataset's label recipe."""
    files = [_planned(p) for p in placed]
    with store.batch() as batch:
        blobs = importer.stage(batch, files, progress)
        with db.transaction():
            result = _record(db, draft["id"], draft["dataset"], files, blobs, store.url, labels)
            batch.commit()
    return result


def import_linked(
    db: CatalogDB,
    draft: Row,
    placed: list[Placed],
    objects: list[ExternalObject],
    store_url: str,
    labels: Any,
    progress: Progress | None = None,
) -> importer.AddResult:
    """Record the rows of a linked dataset as the objects ``objects`` (one
    transaction; nothing copied)."""
    files = [_planned(p) for p in placed]
    blobs = [(o.blob, o.size) for o in objects]
    with db.transaction():
        result = _record(db, draft["id"], draft["dataset"], files, blobs, store_url, labels)
        db.external_put(o.row() for o in objects)
    if progress is not None:
        progress(sum(o.size for o in objects))
    return result


# -- export -------------------------------------------------------------------------


@dataclass
class ExportItem:
    """A file of the version to export: its record and its bytes' blob."""

    record: Record
    blob: str
    size: int


def collect(db: CatalogDB, version: Row) -> tuple[list[ExportItem], list[str], Any]:
    """The files of ``version`` in path order (``src``: the ``s3://`` object of a
    linked item, else the path itself), the labels of its dataset's recipe and the
    recipe. Run in a snapshot."""
    rows = [r for r in db.subtree_items(version["root"]) if r["kind"] != DIR]
    externals = db.externals_by_blobs([r["blob"] for r in rows])
    out = []
    for r in rows:
        ext = externals.get(r["blob"])
        src = r["path"] if ext is None else f"s3://{ext['bucket']}/{ext['key']}"
        record = Record(src, r["path"], json.loads(r["metadata"]), json.loads(r["annotations"]))
        out.append(ExportItem(record, r["blob"], r["size"]))
    ds = db.dataset_by_id(version["dataset"])
    assert ds is not None
    recipe = None if ds["labels"] is None else json.loads(ds["labels"])
    return out, list(recipe_labels(recipe)), recipe


def check_files_folder(folder: Path) -> None:
    """:class:`InvalidInput` unless ``folder`` is missing or an empty folder (an
    export never writes over files)."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise InvalidInput(f"{folder} exists and is not an empty folder: give a new one")


def copy_files(
    store: BlobStore,
    items: list[ExportItem],
    folder: Path,
    manifest: Path,
    progress: Progress | None = None,
) -> int:
    """Write each item's verified bytes to ``folder/<path>`` and point its ``src``
    there (relative to the manifest's folder); return the bytes written. A file is
    written under a temporary name and renamed when all its bytes passed their check,
    so no file holds a byte that did not."""
    total = 0
    base = manifest.resolve().parent
    for item in items:
        dest = folder / item.record.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as out:
                for chunk in store.iter_bytes(item.blob):
                    out.write(chunk)
                    total += len(chunk)
                    if progress is not None:
                        progress(len(chunk))
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        item.record.src = os.path.relpath(dest.resolve(), base)
    return total
