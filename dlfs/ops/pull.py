"""``dlfs pull``: bring a pushed version into the catalog, streaming its records.

The version document (:mod:`dlfs.ops.versiondoc`) is read as a stream of records and
inserted in batches of :data:`BATCH` inside the caller's transaction, each folder and
item re-hashed against its content id on the way: memory stays flat whatever the
version's size (the compressed document is held once), and a damaged document (a
record that does not match, a check that fails at the end) rolls the transaction back
whole. See :mod:`dlfs.ops.push` for what a pull does with tags and storage.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dlfs import versionmeta
from dlfs.catalog import CatalogDB
from dlfs.errors import AlreadyExists, Conflict, Corrupt
from dlfs.items import ItemRecord, ItemRow
from dlfs.names import check_dataset_name
from dlfs.objects import tree_id
from dlfs.ops.versiondoc import Record
from dlfs.stores.urls import is_linked
from dlfs.trees import totals

BATCH = 10_000
"""Items (or blobs) inserted at once."""


@dataclass
class PullResult:
    """What a pull did."""

    dataset: str
    version: str
    url: str
    storage: str
    files: int = 0
    already: bool = False
    updated: bool = False
    """The version was here already and its metadata, comment or their changes moved."""
    latest: str = ""
    """The version ``latest`` names here after the pull."""
    created_dataset: bool = False
    tags: list[str] = field(default_factory=list)
    bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _item_row(fields: list[Any]) -> ItemRow:
    """An item of a document as an ``items`` row (no POSIX attributes: ``""``)."""
    row = list(fields) + [""] * (8 - len(fields))
    return (row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7])


def insert(
    db: CatalogDB,
    head: dict[str, Any],
    records: Iterator[Record],
    remote_url: str,
    name: str | None = None,
    force: bool = False,
) -> PullResult:
    """Bring a version's head and records into the catalog (inside the caller's
    transaction), checking each record; :class:`Corrupt` for one that does not match."""
    d, v = head["dataset"], head["version"]
    vid = v["id"]
    name = check_dataset_name(name or d["name"])
    storage = d["storage"] if is_linked(d["storage"]) else remote_url
    result = PullResult(name, vid, remote_url, storage)
    existing = db.version_get(vid)
    ds = db.dataset_by_name(name)
    if existing is not None:
        if ds is not None and existing["dataset"] == ds["id"]:
            result.already = True
            result.updated = versionmeta.adopt(db, existing, v)
            result.tags = db.tags_of_version(vid)
            result.files = totals(db, existing["root"])[0]
            result.latest = db.tag_get(ds["id"], "latest") or ""
            return result
        raise AlreadyExists(f"version {vid} is already in this catalog, in another dataset")
    if ds is None:
        dataset = db.dataset_insert(
            name,
            d["kind"],
            d["description"],
            d["labels"],
            storage,
            d["metadata"],
            d["tags"],
            d["sources"],
        )
        result.created_dataset = True
    else:
        dataset = ds["id"]
        if ds["storage"] != storage:
            raise Conflict(
                f"dataset {name!r} keeps its binaries in {ds['storage']}, this version's are"
                f" in {storage}; pull it as another dataset (--as NEW)"
            )
    if v["name"] is not None and db.versions_by_name(dataset, v["name"]):
        raise Conflict(f"dataset {name!r} already has a version named {v['name']!r}")
    for tag in v["tags"]:
        other = db.tag_get(dataset, tag)
        if other is not None and not force:
            raise AlreadyExists(
                f"tag {tag!r} already names version {other} here; add --force to move it"
            )
    root = _insert_records(db, records, vid, v["root"], storage, result)
    if root is None:
        raise Corrupt(f"the pushed records of version {vid} lack its root folder")
    db.version_insert(
        vid,
        dataset,
        "published",
        v["name"],
        v["root"],
        metadata=v["metadata"],
        comment=v["comment"],
        parents=v["parents"],
        created_at=v["created_at"],
        published_at=v["published_at"],
    )
    versionmeta.put_history(db, vid, v)
    db.tag_set(dataset, f"v{db.dataset_take_auto_tag(dataset)}", vid, auto=True)
    latest = db.tag_get(dataset, "latest")
    current = db.version_get(latest) if latest else None
    if current is None or (current["published_at"] or 0) <= (v["published_at"] or 0):
        db.tag_set(dataset, "latest", vid, auto=True)
    for tag in v["tags"]:
        db.tag_set(dataset, tag, vid, auto=False)
    result.tags = db.tags_of_version(vid)
    result.latest = db.tag_get(dataset, "latest") or ""
    result.files = root
    return result


def _insert_records(
    db: CatalogDB,
    records: Iterator[Record],
    vid: str,
    root: str,
    storage: str,
    result: PullResult,
) -> int | None:
    """Insert the records in batches; the root folder's file count (None if absent)."""
    what = f"the pushed records of version {vid}"
    root_files: int | None = None
    items: list[ItemRow] = []
    blobs: list[tuple[str, int, str]] = []
    for tag, rec in records:
        if tag == "t":
            tid, files, nbytes, entries, *attrs = rec
            # a folder's own attributes (posix, mtime, ctime), when it keeps any; the
            # posix part is in its id
            posix, mtime, ctime = attrs[0] if attrs else ("", None, None)
            if tree_id(((n, k, r) for n, k, r, _s in entries), posix) != tid:
                raise Corrupt(f"{what}: folder {tid} does not match")
            if tid == root:
                root_files = int(files or 0)
            if not db.tree_exists(tid):
                db.entries_put(tid, [tuple(e) for e in entries])
                db.tree_register(tid, files, nbytes, attrs=(posix, mtime, ctime))
        elif tag == "i":
            if ItemRecord(*rec[1:]).id != rec[0]:
                raise Corrupt(f"{what}: item {rec[0]} does not match")
            items.append(_item_row(rec))
            if len(items) >= BATCH:
                db.items_put(items)
                items.clear()
        elif tag == "b":
            blobs.append((rec[0], int(rec[1]), storage))
            result.bytes += int(rec[1])
            if len(blobs) >= BATCH:
                db.blobs_put(blobs)
                blobs.clear()
        else:
            db.external_put([tuple(rec)])
    db.items_put(items)
    db.blobs_put(blobs)
    return root_files
