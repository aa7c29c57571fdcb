"""Mounting a pushed version straight from its remote, without pulling it.

``dlfs mount --remote s3://bucket/prefix NAME@SPEC MNT`` (and
:func:`open_remote_view`) serves a version on a node whose catalog never pulled it.
Nothing of the version enters the node's catalog: a :class:`RemoteRecords` answers the
few catalog questions a :class:`dlfs.view.View` asks from the remote's objects (see
:mod:`dlfs.ops.push` for the layout):

- mounting reads O(1) objects: the tag (or nothing, for a full version id) and the
  version's head (``datasets/<name>/versions/<id>.head.json``); the root folder is
  read on the first lookup or listing;
- each folder is one object ``folders/<tree id>`` read once when first listed or
  looked into, checked before use (its entries hash to its tree id, each file's item
  record to its item id, with the entry's size), then kept in memory
  (:data:`FOLDER_CACHE` entries, least recently used first out). A folder object
  that is missing, or still damaged after the store's retries, is :class:`Corrupt`
  (``EIO``) with one log line: never a wrong listing;
- file bytes come from the remote's blobs through the usual store stack (block cache,
  read-ahead, each block checked).

A linked dataset's versions (whose bytes live in another bucket, with records kept in
the catalog) cannot be mounted this way: pull them.
"""

from __future__ import annotations

import bisect
import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, cast

from dlfs.catalog import CatalogDB
from dlfs.errors import Corrupt, DlfsError, NotFound, NotSupported
from dlfs.home import Home
from dlfs.ops import push, remotemeta
from dlfs.stores.registry import StoreRegistry
from dlfs.stores.urls import is_linked
from dlfs.view import View

if TYPE_CHECKING:
    from dlfs.stores.s3 import S3Store

log = logging.getLogger(__name__)

FOLDER_CACHE = 1_000_000
"""Entries of remote folders kept in memory once read."""
DATASET_ID = 1
"""The numeric id the one dataset of a remote view has."""


def open_remote_view(home: Home, url: str, ref: str, stores: StoreRegistry | None = None) -> View:
    """A read-only view of version ``NAME@SPEC`` as pushed to the remote ``url``,
    read from there (see the module docstring). Raises :class:`NotFound` for an
    unknown ref, :class:`NotSupported` for a linked dataset's version."""
    stores = stores or StoreRegistry(home)
    remote = stores.s3(url)
    name, vid = push.resolve_remote(remote, ref)
    head = push.read_head(remote, name, vid)
    head["version"] = remotemeta.apply(head["version"], remotemeta.read(remote, name, vid))
    if head.get("linked") or is_linked(str(head["dataset"]["storage"])):
        raise NotSupported(f"{name}@{vid} keeps its bytes in a linked bucket: pull it to mount it")
    records = RemoteRecords(remote, head)
    row = records.version_get(vid)
    assert row is not None
    return View(cast(CatalogDB, records), stores, cast(Any, row))


class _Entry:
    """One folder entry as a catalog row: ``row["name"]``, ``row["blob"]``... (a
    quarter of a dict's memory: a walk of millions of files keeps them all)."""

    __slots__ = ("item", "kind", "name", "ref", "size")

    def __init__(self, name: str, kind: int, ref: str, size: int, item: list[Any] | None):
        self.name, self.kind, self.ref, self.size, self.item = name, kind, ref, size, item

    def __getitem__(self, key: str) -> Any:
        if key in ("name", "kind", "ref", "size"):
            return getattr(self, key)
        item = self.item
        where = _FOLDER_AT if self.kind == 1 else _ITEM_AT
        if key not in where:
            if key in _NOT_PUSHED:
                return None
            raise KeyError(key)
        if item is None:
            return None
        at = where[key]
        return item[at] if at < len(item) else ""


_ITEM_AT = {"origin": 0, "blob": 1, "mtime": 3, "posix": 6}
"""Where an entry row's item columns are in a folder object's item record."""
_FOLDER_AT = {"posix": 0, "mtime": 1, "ctime": 2, "folders": 3}
"""Where a sub-folder entry's columns are in its parent's ``folders`` record."""
_NOT_PUSHED = frozenset({"origin", "blob", "ctime", "atime", "folders", "posix", "mtime"})
"""Entry columns a folder object may not hold (an item's ctime and atime; what a
listing shows of a sub-folder, in objects pushed before it was written): NULL, as
the catalog shows an unknown value."""


class RemoteRecords:
    """The catalog queries of a :class:`View` of one pushed version, answered from
    the remote's head and folder objects (rows are dicts with the catalog's column
    names). Belongs to the view's thread, like a catalog connection."""

    def __init__(self, remote: S3Store, head: dict[str, Any]) -> None:
        self.remote = remote
        d, v = head["dataset"], head["version"]
        self._totals = (int(head["files"]), int(head["bytes"]))
        self._dataset = {
            "id": DATASET_ID,
            "name": d["name"],
            "kind": d["kind"],
            "description": d["description"],
            "labels": d["labels"],
            "metadata": d["metadata"],
            "tags": d["tags"],
            "storage": remote.url,
            "sources": d["sources"],
            "created_at": v["created_at"],
        }
        self._version = {
            "id": v["id"],
            "dataset": DATASET_ID,
            "state": "published",
            "name": v["name"],
            "root": v["root"],
            "metadata": v["metadata"],
            "comment": v["comment"],
            "created_at": v["created_at"],
            "published_at": v["published_at"],
        }
        self._folders: OrderedDict[str, tuple[list[str], list[_Entry], dict]] = OrderedDict()
        self._held = 0
        self._attrs: dict[str, tuple[str, float | None, float | None]] = {}
        """The own attributes of the folders read that keep any."""

    # -- folders ------------------------------------------------------------------------

    def _folder(self, tid: str) -> tuple[list[str], list[_Entry], dict]:
        """``(names, entry rows, items)`` of a folder, read and checked once."""
        cached = self._folders.get(tid)
        if cached is not None:
            self._folders.move_to_end(tid)
            return cached
        where = f"{self.remote.url}/{push.folder_key(tid)}"
        try:
            data = self.remote.get_object(
                push.folder_key(tid), check=lambda b: push.decode_folder(tid, b)
            )
            if data is None:
                raise Corrupt(f"folder object {where} is missing")
            folder = push.decode_folder(tid, data)
        except DlfsError as exc:
            log.error("remote folder %s: %s", tid, exc)
            if isinstance(exc, Corrupt | NotFound):
                raise Corrupt(str(exc)) from exc
            raise
        items: dict[str, list[Any]] = folder["items"]
        children: dict[str, list[Any]] = folder.get("folders") or {}
        rows = [
            _Entry(name, kind, ref, size, items.get(ref) if kind == 0 else children.get(ref))
            for name, kind, ref, size in folder["entries"]
        ]
        rows.sort(key=lambda r: r.name)
        entry = ([r.name for r in rows], rows, items)
        self._folders[tid] = entry
        attrs = folder.get("attrs")
        if attrs:
            self._attrs[tid] = (str(attrs[0]), attrs[1], attrs[2])
        self._held += len(rows)
        while self._held > FOLDER_CACHE and len(self._folders) > 1:
            _t, (_n, old, _i) = self._folders.popitem(last=False)
            self._held -= len(old)
        return entry

    def entry(self, tree: str, name: str) -> _Entry | None:
        """One entry of a folder (the catalog's ``entry``)."""
        names, rows, _items = self._folder(tree)
        at = bisect.bisect_left(names, name)
        return rows[at] if at < len(names) and names[at] == name else None

    def entries_after(self, tree: str, after: str, limit: int) -> list[_Entry]:
        """Up to ``limit`` entries of a folder whose names sort after ``after``."""
        names, rows, _items = self._folder(tree)
        at = bisect.bisect_right(names, after)
        return rows[at : at + limit]

    def tree_attrs(self, tree: str) -> tuple[str, float | None, float | None]:
        """A folder's own ``(posix, mtime, ctime)``, as the catalog's ``tree_attrs``."""
        self._folder(tree)
        return self._attrs.get(tree, ("", None, None))

    def folder_count(self, tree: str) -> int:
        """How many sub-folders a folder has."""
        return sum(1 for row in self._folder(tree)[1] if row.kind == 1)

    def item_get(self, iid: str) -> dict[str, Any] | None:
        """An item of a folder read so far (what a file's node came from)."""
        for _names, _rows, items in reversed(self._folders.values()):
            fields = items.get(iid)
            if fields is not None:
                row = dict(zip(push.ITEM_FIELDS, [iid, *fields], strict=False))
                row.setdefault("posix", "")
                return row
        return None

    # -- the one version and its dataset ------------------------------------------------

    def version_get(self, vid: str) -> dict[str, Any] | None:
        return dict(self._version) if vid == self._version["id"] else None

    def dataset_by_id(self, dataset: int) -> dict[str, Any] | None:
        return dict(self._dataset) if dataset == DATASET_ID else None

    def dataset_by_name(self, name: str) -> dict[str, Any] | None:
        return dict(self._dataset) if name == self._dataset["name"] else None

    def datasets(self) -> list[dict[str, Any]]:
        return [dict(self._dataset)]

    def versions_of(self, dataset: int, state: str) -> list[dict[str, Any]]:
        ok = dataset == DATASET_ID and state == "published"
        return [dict(self._version)] if ok else []

    def tag_get(self, dataset: int, tag: str) -> str | None:
        return None

    def tags_of_dataset(self, dataset: int) -> list[dict[str, Any]]:
        return []

    def tags_of_version(self, vid: str) -> list[str]:
        return []

    def tree_totals(self, tree: str) -> tuple[int, int] | None:
        """``(files, bytes)`` of the version's root (from its head), else unknown."""
        return self._totals if tree == self._version["root"] else None

    def subtree_totals(self, tree: str) -> tuple[int, int]:
        return self.tree_totals(tree) or (0, 0)

    def blob_totals(self) -> tuple[int, int]:
        return self._totals

    def close(self) -> None:
        """Forget the folders read."""
        self._folders.clear()
        self._held = 0
