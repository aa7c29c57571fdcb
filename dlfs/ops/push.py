"""``dlfs push`` and ``dlfs pull``: copy a published version between catalogs via S3.

A *remote* is an S3 prefix laid out like an S3 store (so it can serve as the pulled
dataset's storage), plus the catalog records of pushed versions::

    prefix/blobs/<blob id>[.blocks]                     bytes (see dlfs.stores.s3)
    prefix/datasets/<name>/versions/<version id>.json.gz  one version's records
    prefix/datasets/<name>/versions/<version id>.head.json  the same, without folders
    prefix/datasets/<name>/tags/<tag>.json               {"version": id, "published_at": t}
    prefix/projects/<project>/datasets/<name>/...         the same, for <project>/<name>
    prefix/folders/<tree id>                            one folder and its files' items
    prefix/pushes/<version id>-<pid>-<rand>.json         a push in progress (see pushing)
    prefix/gc.json                                      a remote gc in progress

(:func:`dataset_prefix`: a dataset of the default project where it always was.)

The version document holds the dataset's description, labels, metadata and storage;
the version (id, name, metadata, comment, times, parent ids, user tags); every folder
reachable from its root with its entries; every item; every blob id with its size;
and, for a linked dataset, its linked-object records. It carries an xxh3 checksum of
its content, and on pull each folder and item is re-hashed against its content id, so
a damaged document is refused, never half imported.

Push order makes a remote consistent at every moment: blobs (those missing there,
from one listing), then folder objects (``prefix/folders/<tree id>``, each folder's
entries and its files' item records, checked against the tree id when read: what a
remote mount lists) and the version's head (the document without its folders and
items), then the version document (written only if absent), then its tags
(conditional writes on the tag's ETag, tried again on a lost race). ``latest`` on a
remote is the most recently published version pushed, whatever pushes overlap. Push
changes nothing in the catalog.

Pull resolves ``NAME@SPEC`` on the remote (a full version id, a user tag or
``latest``, or a unique id prefix of 4+ characters), reads the document, and in one
transaction inserts the version with the same id, name, times, parents and user tags;
auto tags are the local catalog's (the next ``vN``; ``latest`` when it is the most
recently published). A new local dataset gets the remote prefix as its storage, so
its blobs are read lazily from S3; a linked dataset's version keeps reading its linked
bucket. Pulling a version that is already here changes nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlfs import versionmeta, versions
from dlfs.catalog import CatalogDB, Row
from dlfs.errors import BadBody, Conflict, Corrupt, InvalidInput, NotFound
from dlfs.items import ItemRecord
from dlfs.names import check_dataset_name, check_user_tag
from dlfs.objects import VERSION_ID_RE, canonical_json, tree_id
from dlfs.ops import versiondoc
from dlfs.ops.versiondoc import Record
from dlfs.stores.base import BlobStore
from dlfs.stores.urls import is_linked

if TYPE_CHECKING:
    from dlfs.stores.s3 import S3Store

Progress = Callable[[int], None]
WORKERS = 8


@dataclass
class PushResult:
    """What a push did."""

    dataset: str
    version: str
    url: str
    blobs: int = 0
    uploaded: int = 0
    present: int = 0
    bytes_uploaded: int = 0
    tags: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def dataset_prefix(name: str) -> str:
    """Where dataset ``name`` lives on a remote, under its prefix: ``datasets/NAME/``
    for the default project (as before projects), ``projects/P/datasets/NAME/`` for
    ``P/NAME``."""
    project, sep, base = name.rpartition("/")
    return f"projects/{project}/datasets/{base}/" if sep else f"datasets/{name}/"


def _version_key(name: str, vid: str) -> str:
    return f"{dataset_prefix(name)}versions/{vid}.json.gz"


def _tag_key(name: str, tag: str) -> str:
    return f"{dataset_prefix(name)}tags/{tag}.json"


def meta_key(name: str, vid: str) -> str:
    """Where a pushed version's metadata, comment and changes live (they move after
    publish: :mod:`dlfs.ops.remotemeta`)."""
    return f"{dataset_prefix(name)}versions/{vid}.meta.json"


def _head_key(name: str, vid: str) -> str:
    return f"{dataset_prefix(name)}versions/{vid}.head.json"


FOLDERS = "folders/"
BLOBS = "blobs/"
PUSHES = "pushes/"
GC_MARKER = "gc.json"
GC_MARKER_TTL = 3600.0
"""Seconds after which a remote gc's marker no longer holds pushes off (a gc killed
before it removed its marker)."""


def push_marker_key(vid: str) -> str:
    """The marker a push in progress keeps while it writes (see :func:`pushing`)."""
    return f"{PUSHES}{vid}-{os.getpid()}-{uuid.uuid4().hex[:8]}.json"


@contextlib.contextmanager
def pushing(remote: S3Store, vid: str) -> Iterator[None]:
    """Hold a push marker for the length of the block, so ``dlfs gc --remote`` keeps
    off (it refuses while a marker younger than its grace period is there); refuse
    (:class:`Conflict`) while a remote gc runs. Each side writes its marker, then looks
    for the other's, so at least one of two that start together sees the other."""
    key = push_marker_key(vid)
    remote.put_object(key, canonical_json({"version": vid, "started_at": time.time()}).encode())
    try:
        found = remote.get_object(GC_MARKER)
        if found is not None and _age(found) < GC_MARKER_TTL:
            raise Conflict(f"a remote gc of {remote.url} is running: push again when it is done")
        yield
    finally:
        remote.delete_object(key)


def _age(marker: bytes) -> float:
    try:
        return time.time() - float(json.loads(marker)["started_at"])
    except (ValueError, KeyError, TypeError):
        return 0.0  # unreadable: assume fresh


def folder_key(tid: str) -> str:
    """The key (under the remote's prefix) of the folder object of tree ``tid``."""
    return f"{FOLDERS}{tid}"


FOLDER_FORMAT = "dlfs-folder/1"
ITEM_FIELDS = ("id", "origin", "blob", "size", "mtime", "metadata", "annotations", "posix")
"""The fields of an item row of a document (``posix`` only when it has any)."""


def encode_folder(
    files: int,
    nbytes: int,
    entries: list[list[Any]],
    items: dict[str, list[Any]],
    attrs: list[Any] | None = None,
    children: dict[str, list[Any]] | None = None,
) -> bytes:
    """A folder object: its ``[name, kind, ref, size]`` entries, the item record of
    each file (``[origin, blob, size, mtime, metadata, annotations(, posix)]`` by item
    id), the folder's file and byte counts, when it keeps any, its own attributes
    ``attrs`` (``[posix, mtime, ctime]``; the posix part is in its id), and what a
    listing shows of each sub-folder (``children``: ``[posix, mtime, ctime, number of
    sub-folders]`` by tree id; the sub-folder's own object is the one checked), as
    canonical JSON."""
    folder: dict[str, Any] = {
        "format": FOLDER_FORMAT,
        "files": files,
        "bytes": nbytes,
        "entries": sorted(entries, key=lambda e: str(e[0]).encode()),
        "items": {e[2]: items[e[2]] for e in entries if e[1] == 0},
    }
    if attrs:
        folder["attrs"] = list(attrs)
    if children:
        folder["folders"] = children
    return canonical_json(folder).encode()


def decode_folder(tid: str, data: bytes) -> dict[str, Any]:
    """A folder object checked against its id: the entries hash to ``tid`` and each
    file's item record to its item id, with the entry's size. :class:`BadBody` for
    anything else (fetched again, then ``Corrupt``)."""
    try:
        folder = json.loads(data)
        entries = folder["entries"]
        items = folder["items"]
        ok = (
            folder["format"] == FOLDER_FORMAT
            and tree_id(
                ((str(n), int(k), str(r)) for n, k, r, _s in entries),
                str((folder.get("attrs") or [""])[0]),
            )
            == tid
        )
        for _n, kind, ref, size in entries if ok else []:
            if kind == 0:
                record = ItemRecord(*items[ref])
                ok = ok and record.id == ref and record.size == size
    except (ValueError, KeyError, TypeError) as exc:
        raise BadBody(f"folder object {tid} is damaged ({exc})") from exc
    if not ok:
        raise BadBody(f"folder object {tid} does not match its id")
    return dict(folder)


def folder_objects(doc: dict[str, Any]) -> Iterator[tuple[str, bytes]]:
    """``(tree id, folder object)`` for every folder of a version document."""
    items = {row[0]: row[1:] for row in doc["items"]}
    own = {t[0]: (t[4] if len(t) > 4 else None) for t in doc["trees"]}
    subfolders = {t[0]: sum(1 for e in t[3] if e[1] == 1) for t in doc["trees"]}
    for tid, files, nbytes, entries, *attrs in doc["trees"]:
        children = {
            e[2]: [*(own[e[2]] or ["", None, None]), subfolders[e[2]]]
            for e in entries
            if e[1] == 1 and e[2] in own
        }
        yield (
            tid,
            encode_folder(files, nbytes, entries, items, attrs[0] if attrs else None, children),
        )


def copy_folders(doc: dict[str, Any], remote: S3Store) -> int:
    """Write the folder objects the remote lacks (one listing of ``folders/``);
    return how many were written. They go before the version document, so a version
    there always has its folders."""
    start = len(remote.loc.key(FOLDERS))
    have = {k[start:] for k in remote.keys(FOLDERS)}
    missing = [(folder_key(t), data) for t, data in folder_objects(doc) if t not in have]
    remote.put_objects(missing)
    return len(missing)


# -- push ---------------------------------------------------------------------------


def collect(db: CatalogDB, row: Row) -> dict[str, Any]:
    """The records of a published version, as the document a push writes."""
    ds = db.dataset_by_id(row["dataset"])
    assert ds is not None
    trees = []
    item_ids: list[str] = []
    for t in db.subtree_ids(row["root"]):
        entries = db.raw_entries(t["id"])
        tree = [t["id"], t["files"], t["bytes"], [list(e) for e in entries]]
        # A folder's own attributes (posix, mtime, ctime) are a fifth field, written
        # only when it keeps any: documents of plain folders stay as before.
        attrs = db.tree_attrs(t["id"])
        trees.append(tree + ([list(attrs)] if attrs != ("", None, None) else []))
        item_ids.extend(ref for _name, kind, ref, _size in entries if kind == 0)
    items = db.items_by_ids(item_ids)
    # An item's POSIX attributes (mode, owner, link, user.* xattrs) are an eighth
    # field, written only when it has any: documents of plain items stay as before.
    item_rows = [
        [r["id"], r["origin"], r["blob"], r["size"], r["mtime"], r["metadata"], r["annotations"]]
        + ([r["posix"]] if r["posix"] else [])
        for r in items.values()
    ]
    blob_ids = sorted({r["blob"] for r in items.values()})
    blobs = db.blobs_by_ids(blob_ids)
    sizes = {r["blob"]: r["size"] for r in items.values()}
    externals = db.externals_by_blobs(blob_ids)
    user_tags = [
        t["tag"]
        for t in db.tags_of_dataset(ds["id"])
        if t["version"] == row["id"] and not t["auto"]
    ]
    return {
        "format": versiondoc.FORMAT,
        "dataset": {
            "name": ds["name"],
            "kind": ds["kind"],
            "description": ds["description"],
            "labels": ds["labels"],
            "metadata": ds["metadata"],
            "tags": ds["tags"],
            "storage": ds["storage"],
            "sources": ds["sources"],
        },
        "version": {
            "id": row["id"],
            "name": row["name"],
            "root": row["root"],
            "metadata": row["metadata"],
            "comment": row["comment"],
            "created_at": row["created_at"],
            "published_at": row["published_at"],
            "parents": db.version_parents(row["id"]),
            "tags": sorted(user_tags),
            # Added later: documents without it read as having no recorded changes.
            "history": versionmeta.history(db, row["id"]),
        },
        "trees": sorted(trees),
        "items": sorted(item_rows),
        "blobs": [[b, blobs[b]["size"] if b in blobs else sizes[b]] for b in blob_ids],
        "external": sorted(
            [
                [e[c] for c in ("blob", "bucket", "key", "etag", "version_id", "size", "mtime")]
                for e in externals.values()
            ]
        ),
    }


def copy_blobs(
    doc: dict[str, Any],
    source: BlobStore,
    remote: S3Store,
    progress: Progress | None = None,
) -> tuple[int, int, int]:
    """Upload the version's blobs the remote lacks; return ``(uploaded, present,
    bytes uploaded)``. What the remote has comes from one paged listing, not a request
    per blob; local files go up many at once (:meth:`S3Store.upload_many`, each
    checked against its id and by the server's MD5 check). Linked blobs stay where they
    are (their records travel in the document); blobs already in the remote's store are
    not read at all."""
    if is_linked(doc["dataset"]["storage"]) or source.url == remote.url:
        for _blob, size in doc["blobs"]:
            if progress is not None:
                progress(size)
        return 0, len(doc["blobs"]), 0
    have = remote.present_blobs()
    local: list[tuple[str, Path, int]] = []
    others: list[tuple[str, int]] = []
    for blob, size in doc["blobs"]:
        if blob in have:
            if progress is not None:
                progress(int(size))
            continue
        path = source.local_path(blob)
        if path is not None:
            local.append((blob, path, int(size)))
        else:
            others.append((blob, int(size)))
    sent = remote.upload_many(local, progress)
    staging = remote.staging

    def one(entry: tuple[str, int]) -> int:
        blob, size = entry
        copied = _copy_remote(source, remote, blob, size, staging)
        if progress is not None:
            progress(size)
        return size if copied else 0

    if others:
        with ThreadPoolExecutor(WORKERS, thread_name_prefix="dlfs-push") as pool:
            sent += sum(pool.map(one, others))
    uploaded = len(local) + len(others)
    return uploaded, len(doc["blobs"]) - uploaded, sent


def _copy_remote(source: BlobStore, remote: S3Store, blob: str, size: int, staging: Path) -> bool:
    """Copy a blob from another remote store through a local file (checked on the way)."""
    staging.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f"{os.getpid()}-push-", dir=staging)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in source.iter_bytes(blob):
                out.write(chunk)
        return remote.put_file(blob, Path(tmp), size, None, verify=True)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


TAG_RACES = 50
"""Conditional writes of one tag tried before a push gives up (each lost race means
another push moved the tag meanwhile)."""


HEAD_FORMAT = "dlfs-version-head/1"


def head(doc: dict[str, Any]) -> dict[str, Any]:
    """A version's head object: the document without its folders, items and blobs
    (what a remote mount reads, O(1) in the version's size); every other field of the
    document, present or future, travels in it."""
    heavy = ("trees", "items", "blobs", "external")
    out = {k: v for k, v in doc.items() if k not in heavy}
    root = next(t for t in doc["trees"] if t[0] == doc["version"]["root"])
    out.update(format=HEAD_FORMAT, files=root[1], bytes=root[2], linked=bool(doc["external"]))
    return out


def read_head(remote: S3Store, name: str, vid: str) -> dict[str, Any]:
    """The head object of version ``vid`` of ``name`` on the remote, checked."""

    def check(data: bytes) -> dict[str, Any]:
        try:
            value = json.loads(data)
            if value["format"] != HEAD_FORMAT or value["version"]["id"] != vid:
                raise ValueError(vid)
        except (ValueError, KeyError, TypeError) as exc:
            raise BadBody(f"the head of version {vid} at {remote.url} is damaged") from exc
        return dict(value)

    data = remote.get_object(_head_key(name, vid), check=check)
    if data is None:
        raise NotFound(
            f"version {vid} of {name} at {remote.url} was pushed without its folders"
            " (by an older dlfs): push it again to mount it from there, or pull it"
        )
    return check(data)


def write(remote: S3Store, doc: dict[str, Any]) -> list[str]:
    """Write the folder objects the remote lacks and the version's head, then the
    version document (only if absent: a version's document never
    changes), then its tags, then ``latest`` when it is the most recently published
    version there; return the tags written. Tags are conditional writes (``If-Match``
    on the ETag read, ``If-None-Match: *`` for a new one), tried again on a lost race,
    so concurrent pushes never undo each other's ``latest``."""
    name, vid = doc["dataset"]["name"], doc["version"]["id"]
    copy_folders(doc, remote)
    remote.put_object_if(_head_key(name, vid), canonical_json(head(doc)).encode(), None)
    remote.put_object_if(_version_key(name, vid), versiondoc.encode(doc), None)
    stamp = {"version": vid, "published_at": doc["version"]["published_at"]}
    tags = [t for t in doc["version"]["tags"] if _set_tag(remote, name, t, stamp, newer=False)]
    if _set_tag(remote, name, "latest", stamp, newer=True):
        tags.append("latest")
    return tags


def _rank(stamp: dict[str, Any]) -> tuple[float, str]:
    return (float(stamp.get("published_at") or 0), str(stamp.get("version")))


def _set_tag(remote: S3Store, name: str, tag: str, stamp: dict[str, Any], *, newer: bool) -> bool:
    """Make ``tag`` name ``stamp``'s version by a conditional write; with ``newer``,
    only while what it names was published earlier. True when it names it after."""
    body = canonical_json(stamp).encode()
    for _ in range(TAG_RACES):
        found = _read_tag_tagged(remote, name, tag)
        etag = None
        if found is not None:
            value, etag = found
            if value.get("version") == stamp["version"]:
                return True  # already so (or our own retried write went through)
            if newer and _rank(value) > _rank(stamp):
                return False
        if remote.put_object_if(_tag_key(name, tag), body, etag):
            return True
    raise Conflict(f"tag {tag!r} of {name} at {remote.url} keeps changing; push again")


def _read_tag_tagged(remote: S3Store, name: str, tag: str) -> tuple[dict[str, Any], str] | None:
    found = remote.get_object_tagged(_tag_key(name, tag))
    if found is None:
        return None
    return _parse_tag(found[0], remote, name, tag), found[1]


def _read_tag(remote: S3Store, name: str, tag: str) -> dict[str, Any] | None:
    data = remote.get_object(_tag_key(name, tag))
    return None if data is None else _parse_tag(data, remote, name, tag)


def _parse_tag(data: bytes, remote: S3Store, name: str, tag: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
        if not isinstance(value, dict) or not VERSION_ID_RE.match(str(value.get("version"))):
            raise ValueError(tag)
    except ValueError as exc:
        raise Corrupt(f"tag {tag!r} of {name} at {remote.url} is damaged") from exc
    return value


# -- pull ---------------------------------------------------------------------------


def resolve_remote(remote: S3Store, ref: str) -> tuple[str, str]:
    """``(dataset name, version id)`` that ``NAME@SPEC`` names on the remote."""
    name, spec = versions.parse_ref(ref)
    name = check_dataset_name(name)
    spec = spec or "latest"
    where = f"{remote.url}"
    if VERSION_ID_RE.match(spec) and remote.exists(_version_key(name, spec)):
        return name, spec
    if spec == "latest" or _looks_like_tag(spec):
        tagged = _read_tag(remote, name, spec)
        if tagged is not None:
            return name, str(tagged["version"])
    if len(spec) >= versions.PREFIX_MIN and spec.isalnum() and spec.lower() == spec:
        prefix = remote.loc.key(f"{dataset_prefix(name)}versions/")
        ids = [
            k[len(prefix) :].removesuffix(".json.gz")
            for k in remote.keys(f"{dataset_prefix(name)}versions/{spec}")
            if k.endswith(".json.gz")
        ]
        if len(ids) == 1:
            return name, ids[0]
        if len(ids) > 1:
            raise InvalidInput(f"ref {ref!r} is ambiguous at {where}: {', '.join(sorted(ids))}")
    if not remote.keys(dataset_prefix(name)):
        raise NotFound(f"no dataset named {name!r} was pushed to {where}")
    raise NotFound(f"unknown ref {ref!r} at {where}: no version id, tag or id prefix matches")


def _looks_like_tag(spec: str) -> bool:
    try:
        check_user_tag(spec)
    except InvalidInput:
        return False
    return True


def fetch(remote: S3Store, name: str, vid: str) -> tuple[dict[str, Any], Iterator[Record]]:
    """The head of the document of version ``vid`` of ``name`` on the remote and an
    iterator of its records, checked as they come (:func:`versiondoc.records`)."""
    data = remote.get_object(_version_key(name, vid))
    if data is None:
        raise NotFound(f"version {vid} of {name} is not at {remote.url}")
    return versiondoc.records(data, vid)
