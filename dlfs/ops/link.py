"""``dlfs link`` and ``dlfs sync``: index the objects of a bucket into a draft, in place.

The listing is taken first (no catalog lock is held while S3 answers), then one
transaction brings the draft in line with it (:func:`apply`):

- each object ``prefix/a/b/c.jpg`` is the file ``a/b/c.jpg``: folders come from key
  prefixes, so a prefix with no objects under it shows no folder; keys that end in
  ``/`` (folder markers) and keys whose parts are not valid names (empty, ``.``,
  ``..``, longer than 255 bytes) are skipped and counted;
- an item of the draft stands for the object recorded in its blob
  (:class:`dlfs.stores.urls.ExternalObject`). On sync, an item whose object is gone
  is removed (and folders left empty by that go too); an item whose object has another
  ETag or size is replaced, at the same path, by a *new* item (new lineage, no
  metadata or annotations: it is other content); items whose object is unchanged
  stay as they are, wherever they were moved in the draft;
- an object no item stands for is added at its key's path (a renamed object is thus
  a removal plus a new item). An item the user deleted from the draft comes back on
  the next sync, since its object is still there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from dlfs import versions
from dlfs.catalog import CatalogDB, Row
from dlfs.errors import Conflict, DlfsError, InvalidInput
from dlfs.items import ItemRecord, ItemRow
from dlfs.names import check_dataset_name, check_name
from dlfs.objects import DIR
from dlfs.stores.urls import ExternalObject, S3Url, is_linked, linked_url
from dlfs.trees import DraftTree

Progress = Callable[[int], None]
"""Called with the bytes of each object indexed."""
SKIPPED_SHOWN = 5


@dataclass
class SyncResult:
    """What a link or sync did to the draft."""

    objects: int = 0
    added: int = 0
    removed: int = 0
    changed: int = 0
    unchanged: int = 0
    skipped: int = 0
    skipped_keys: list[str] = field(default_factory=list)
    folder_markers: int = 0
    """Keys ending in ``/`` (folder markers of S3 consoles): not files, skipped."""
    versioned: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "objects": self.objects,
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "skipped_keys": self.skipped_keys,
            "folder_markers": self.folder_markers,
            "versioned": self.versioned,
        }


def key_parts(prefix: str, key: str) -> list[str] | None:
    """The path of an object in the dataset, or None when it cannot be shown."""
    if not key.startswith(prefix) or key.endswith("/"):
        return None
    parts = key[len(prefix) :].split("/")
    try:
        return [check_name(p) for p in parts]
    except InvalidInput:
        return None


def link_storage(db: CatalogDB, name: str, url: str) -> str:
    """The storage URL (``linked:s3://...``) of linking ``url`` to dataset ``name``;
    :class:`Conflict` when the dataset exists and keeps its binaries elsewhere."""
    check_dataset_name(name)
    storage = linked_url(url)
    ds = db.dataset_by_name(name)
    if ds is not None and ds["storage"] != storage:
        raise Conflict(
            f"dataset {name!r} keeps its binaries in {ds['storage']}; link {url} to a new dataset"
        )
    return storage


def sync_storage(db: CatalogDB, name: str) -> str:
    """The storage URL of dataset ``name``; :class:`InvalidInput` when it is not
    linked to a bucket."""
    ds = versions.dataset_row(db, name)
    if not is_linked(ds["storage"]):
        raise InvalidInput(
            f"dataset {name!r} is not linked to a bucket (its storage is {ds['storage']});"
            " use 'dlfs link NAME s3://bucket/prefix'"
        )
    return str(ds["storage"])


def index(
    db: CatalogDB,
    name: str,
    storage: str,
    loc: S3Url,
    versioned: bool,
    objects: list[ExternalObject],
    progress: Progress | None = None,
) -> SyncResult:
    """Index the listing ``objects`` of bucket location ``loc`` into the draft of
    dataset ``name`` (made, as a linked dataset, if it does not exist), inside the
    caller's transaction; see :func:`apply`."""
    ds = db.dataset_by_name(name)
    if ds is None:
        source = {"url": str(loc), "versioned": versioned}
        versions.create_dataset(db, name, storage=storage, kind="linked", sources=[source])
    draft = versions.resolve_draft(db, f"{name}@draft")
    result = apply(db, draft, loc.bucket, loc.prefix, objects, storage, progress)
    result.versioned = versioned
    return result


def _row_object(row: Row) -> ExternalObject:
    return ExternalObject(
        row["bucket"], row["key"], row["etag"], row["version_id"], row["size"], row["mtime"]
    )


def apply(
    db: CatalogDB,
    draft: Row,
    bucket: str,
    prefix: str,
    objects: list[ExternalObject],
    store_url: str,
    progress: Progress | None = None,
) -> SyncResult:
    """Bring the draft in line with the listing ``objects`` (inside the caller's
    transaction); see the module docstring."""
    result = SyncResult(objects=len(objects))
    listing: dict[str, tuple[ExternalObject, list[str]]] = {}
    for obj in objects:
        parts = key_parts(prefix, obj.key)
        if parts is None:
            if obj.key.endswith("/"):
                result.folder_markers += 1
            else:
                result.skipped += 1
                if len(result.skipped_keys) < SKIPPED_SHOWN:
                    result.skipped_keys.append(obj.key)
            continue
        listing[obj.key] = (obj, parts)

    tree = DraftTree(db, draft["id"], draft["root"])
    files = [r for r in db.subtree_items(draft["root"]) if r["kind"] != DIR]
    known = db.externals_by_blobs([r["blob"] for r in files])
    seen: set[str] = set()
    removed_paths: list[list[str]] = []
    new_items: list[ItemRow] = []
    by_folder: dict[tuple[str, ...], list[tuple[str, str, int]]] = {}

    def new_item(obj: ExternalObject, folder: tuple[str, ...], name: str) -> None:
        record = ItemRecord.new(obj.blob, obj.size, obj.mtime)
        new_items.append(record.row())
        by_folder.setdefault(folder, []).append((name, record.id, obj.size))

    for row in files:
        rec = known.get(row["blob"])
        if rec is None or rec["bucket"] != bucket or not rec["key"].startswith(prefix):
            continue
        old = _row_object(rec)
        path = row["path"].split("/")
        current = listing.get(old.key)
        seen.add(old.key)
        if current is None:
            removed_paths.append(path)
            result.removed += 1
        elif current[0].etag != old.etag or current[0].size != old.size:
            new_item(current[0], tuple(path[:-1]), path[-1])
            result.changed += 1
        else:
            result.unchanged += 1
        if progress is not None:
            progress(old.size)

    for key, (obj, parts) in listing.items():
        if key in seen:
            continue
        new_item(obj, tuple(parts[:-1]), parts[-1])
        result.added += 1
        if progress is not None:
            progress(obj.size)

    for path in removed_paths:
        tree.remove(path)
        _prune(db, tree, path[:-1])
    db.items_put(new_items)
    db.blobs_put({(i[2], i[3], store_url) for i in new_items})
    fresh = {i[2] for i in new_items}
    db.external_put(obj.row() for obj, _parts in listing.values() if obj.blob in fresh)
    for folder, entries in by_folder.items():
        kept = []
        for name, iid, size in entries:
            if _blocked(db, tree, list(folder), name):
                result.skipped += 1
                result.added -= 1
                if len(result.skipped_keys) < SKIPPED_SHOWN:
                    result.skipped_keys.append("/".join([*folder, name]))
                continue
            kept.append((name, iid, size))
        if kept:
            tree.put_files(list(folder), kept)
    return result


def _blocked(db: CatalogDB, tree: DraftTree, folder: list[str], name: str) -> bool:
    """True when a file cannot go to ``folder/name``: a file stands where one of the
    folders should be, or a folder has that name."""
    current = tree.root
    for part in folder:
        entry = db.entry(current, part)
        if entry is None:
            return False
        if entry["kind"] != DIR:
            return True
        current = entry["ref"]
    entry = db.entry(current, name)
    return entry is not None and entry["kind"] == DIR


def _prune(db: CatalogDB, tree: DraftTree, folder: list[str]) -> None:
    """Remove ``folder`` and its parents while they are empty (S3 has no empty
    prefixes, so a folder whose last object went has no reason to stay)."""
    while folder:
        try:
            entry = db.entry(tree.mutable_dir(folder[:-1]), folder[-1])
        except DlfsError:
            return
        if entry is None or entry["kind"] != DIR or db.entry_count(entry["ref"]):
            return
        tree.remove(folder, recursive=True)
        folder = folder[:-1]
