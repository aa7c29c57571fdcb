"""The filesystem semantics of dlfs, with no FUSE in sight.

A :class:`View` answers what a mounted dlfs tree looks like: ``lookup``, ``getattr``,
``listing`` (readdir with attributes), ``readlink``, extended attributes, ``open`` /
``read`` / ``release`` and ``statfs``, plus every write operation (which, in these
read-only views, raises :class:`dlfs.errors.ReadOnly`;
:class:`dlfs.draftview.DraftView` overrides them). The FUSE daemon (``dlfsd``)
only adapts these calls to pyfuse3 and maps errors to errno values; model tests
drive a :class:`View` directly, without a kernel.

Two trees can be viewed (see :func:`open_view`):

- one version: its root folder is the mount root. A published version never changes,
  so its nodes say so (``Node.cache``): the kernel may keep entries, attributes,
  negative lookups and file pages for :data:`CACHE_TTL` seconds. A draft is served
  here read-only (``-o ro``; :mod:`dlfs.draftview` serves drafts read-write) and
  live: short timeouts, its root re-read from the catalog on every lookup;
- the whole catalog: ``<dataset>/<version id>/...`` for every published version, and
  each tag as a symlink ``<dataset>/<tag> -> <version id>``. The root and the dataset
  folders are live (:data:`LIVE_TTL`), so new datasets, versions and moved tags appear
  without a remount; what is under a version is immutable and cached like above.

A :class:`Node` carries everything ``getattr`` and ``open`` need (mode, size, mtime,
blob id), so neither touches the catalog: each folder costs one query when it is
listed or one probe per name looked up. Modes are 0444 for files and 0555 for folders;
uid and gid are those of the mounting user; the mtime of a file is its item's mtime,
that of a folder its version's publish time: stable, never "now".

Reading never returns wrong bytes: the view asks the file's blob store
(:meth:`dlfs.stores.base.BlobStore.read_nowait`, then ``read``), which returns only
verified bytes: local blobs through :class:`dlfs.stores.localread.LocalReader` (hashed
whole, or block by block against a manifest), remote ones through
:class:`dlfs.stores.cache.CachedReader` (every block checked as it arrives). A blob
that is missing or fails its check raises :class:`Corrupt` / :class:`Unavailable`
(EIO for that file only), and the view logs one line per blob naming its item.

Where reads run: :meth:`View.read_nowait` returns what the store can serve without
waiting (a verified local blob whose file is open, by ``pread`` inline on the event
loop: on mostly cached files that beats threads on small machines,
``measurements.md``; the first read of a small local blob while the disk is fast;
remote bytes already in memory) and None for the rest, which the daemon runs in
worker threads through :meth:`View.read`. A remote blob's first block starts coming
when its file is looked up or opened (:mod:`dlfs.prefetch`), unless this mount
already served it to its end (the kernel keeps those pages).

Threading: a :class:`View` belongs to one thread (the daemon's event loop) because
its catalog connection does; only :meth:`View.read` may also run in worker threads,
after :meth:`View.read_nowait` returned None for that handle.
"""

from __future__ import annotations

import itertools
import logging
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from enum import IntEnum
from typing import Any, NamedTuple, NoReturn

from dlfs import trees, versions
from dlfs.catalog import CatalogDB, Row
from dlfs.errors import (
    Corrupt,
    InvalidInput,
    IsADirectory,
    NameTooLong,
    NoAttribute,
    NotADirectory,
    NotFound,
    ReadOnly,
    Unavailable,
)
from dlfs.home import Home
from dlfs.names import NAME_MAX
from dlfs.objects import DIR, VERSION_ID_RE
from dlfs.prefetch import Prefetcher
from dlfs.stores.base import BlobStore
from dlfs.stores.registry import StoreFactory, StoreRegistry

log = logging.getLogger(__name__)

CACHE_TTL = 300.0
"""Seconds the kernel may cache entries and attributes of immutable (published) nodes."""

LIVE_TTL = 1.0
"""Seconds the kernel may cache entries and attributes of nodes that can change."""

FILE_MODE = stat.S_IFREG | 0o444
DIR_MODE = stat.S_IFDIR | 0o555
LINK_MODE = stat.S_IFLNK | 0o777

BLOCK_SIZE = 4096
IO_SIZE = 128 * 1024
"""The ``st_blksize`` reported: the size of the reads the kernel sends."""

LISTING_PAGE = 8192
"""Entries fetched per catalog query when a big folder is listed."""

LISTING_CACHE = 262_144
"""Entries of immutable folders kept in memory once listed (the kernel does not cache
listings through pyfuse3, so every ``ls`` or walk lists again)."""

CHECKED_MAX = 1_000_000
"""How many remote blobs served to their end are remembered (see ``_note_served``)."""

XATTR_PREFIX = "user.dlfs."
X_ITEM = "user.dlfs.item"
X_BLOB = "user.dlfs.blob"
X_METADATA = "user.dlfs.metadata"
X_ANNOTATIONS = "user.dlfs.annotations"
X_VERSION = "user.dlfs.version"
X_STATE = "user.dlfs.state"
X_DATASET = "user.dlfs.dataset"
FILE_XATTRS = (X_ITEM, X_BLOB, X_METADATA, X_ANNOTATIONS)
VERSION_XATTRS = (X_VERSION, X_STATE, X_DATASET)


class Role(IntEnum):
    """What a node is in the mounted tree."""

    CATALOG = 0
    """The root of a whole-catalog mount."""
    DATASET = 1
    """``MNT/<dataset>`` in a whole-catalog mount."""
    TAG = 2
    """``MNT/<dataset>/<tag>``: a symlink to a version id."""
    VERSION = 3
    """The root folder of a version."""
    FOLDER = 4
    """A folder inside a version."""
    FILE = 5
    """A file (an item) inside a version."""


class Node(NamedTuple):
    """One file, folder or symlink of the mounted tree, with its attributes.

    A node is a value: the view hands out a new one when something changed, and the
    daemon keeps the latest per inode. ``cache`` promises that neither the node nor
    (for a folder) its entries will ever change, so the kernel may cache them, their
    negative lookups and the file's pages.
    """

    role: Role
    mode: int
    size: int
    mtime_ns: int
    ttl: float
    cache: bool
    ref: str = ""
    """Tree id (VERSION, FOLDER), item id (FILE) or target version id (TAG)."""
    blob: str = ""
    """The blob id of a FILE."""
    version: str = ""
    """The version id this node belongs to."""
    dataset: int = 0
    """The numeric id of the dataset this node belongs to."""
    place: Any = None
    """Writable draft views only: where the entry is (a :class:`dlfs.draftview.Place`,
    which follows renames, so an inode keeps naming its entry)."""

    @property
    def is_dir(self) -> bool:
        return self.role not in (Role.FILE, Role.TAG)


class FsStats(NamedTuple):
    """What ``statfs`` reports: the mounted tree's size, nothing free."""

    block_size: int
    blocks: int
    files: int
    name_max: int
    free_blocks: int = 0
    free_files: int = 0


def _ns(seconds: float | None) -> int:
    return int((seconds or 0.0) * 1_000_000_000)


def open_view(home: Home, ref: str | None = None, stores: StoreFactory | None = None) -> View:
    """A read-only view of the version ``ref`` names, or of the whole catalog.

    ``ref`` is resolved once, now (``NAME`` alone means ``NAME@latest``): the view
    keeps serving that version even when tags move. Raises :class:`NotFound` for an
    unknown ref or a missing catalog.
    """
    if not home.exists():
        raise NotFound(f"no catalog at {home.root} (create one with 'dlfs init')")
    db = CatalogDB(home.catalog_path, readonly=True)
    try:
        db.map_for_reading()
        if ref is None:
            return View(db, stores or StoreRegistry(home), None)
        row = versions.resolve(db, ref)
        return View(db, stores or StoreRegistry(home), row)
    except BaseException:
        db.close()
        raise


class Listing:
    """The entries of one open folder, addressed by position.

    Entries are fetched from the catalog a page at a time as the kernel asks for
    them (one query for any folder up to :data:`LISTING_PAGE` entries); positions
    stay valid for the life of the listing, so a resumed ``readdir`` never skips
    or repeats an entry.
    """

    def __init__(
        self,
        entries: list[tuple[str, Node]],
        fetch: Callable[[str, int], list[tuple[str, Node]]] | None = None,
        complete: Callable[[list[tuple[str, Node]]], None] | None = None,
    ) -> None:
        self._entries = entries
        self._fetch = fetch
        self._complete = complete

    def entries_from(self, start: int) -> Iterator[tuple[int, str, Node]]:
        """``(next position, name, node)`` for every entry from position ``start``."""
        i = start
        while True:
            if i >= len(self._entries) and not self._more():
                return
            name, node = self._entries[i]
            i += 1
            yield i, name, node

    def _more(self) -> bool:
        if self._fetch is None:
            return False
        after = self._entries[-1][0] if self._entries else ""
        page = self._fetch(after, LISTING_PAGE)
        self._entries.extend(page)
        if len(page) < LISTING_PAGE:
            self._fetch = None
            if self._complete is not None:
                self._complete(self._entries)
        return bool(page)


class View:
    """The read-only filesystem view of one version, or of the whole catalog.

    Build one with :func:`open_view`. Every method raises a
    :class:`dlfs.errors.DlfsError` subclass on failure: :class:`NotFound`,
    :class:`NameTooLong`, :class:`NoAttribute`, :class:`NotADirectory`,
    :class:`ReadOnly`, :class:`Corrupt` or :class:`Unavailable`.
    """

    def __init__(
        self,
        db: CatalogDB,
        stores: StoreFactory,
        version: Row | None,
        uid: int | None = None,
        gid: int | None = None,
    ) -> None:
        self.db = db
        self.uid = os.getuid() if uid is None else uid
        self.gid = os.getgid() if gid is None else gid
        self._stores = stores
        self._dataset_stores: dict[int, BlobStore] = {}
        self._store_lock = threading.Lock()
        if version is None:
            self._root = self._catalog_node()
        else:
            self._root = self._version_node(version)
        self._fh = itertools.count(1)
        self._files: dict[int, Node] = {}
        self._reported: set[str] = set()
        # Remote blobs read to their end by this mount (see _note_served).
        self._served: set[str] = set()
        # Complete listings of immutable folders: (tree, version) -> entries.
        self._listings: OrderedDict[tuple[str, str], list[tuple[str, Node]]] = OrderedDict()
        self._listed = 0
        self._prefetch = Prefetcher()

    @property
    def mode(self) -> str:
        """``catalog`` for a whole-catalog view, else the state of the version."""
        if self._root.role == Role.CATALOG:
            return "catalog"
        return "published" if self._root.cache else "draft"

    @property
    def writable(self) -> bool:
        """True for a view that accepts writes (a :class:`dlfs.draftview.DraftView`)."""
        return False

    def close(self) -> None:
        """Close the stores (their cached files close, their fetched blocks reach the
        disk cache) and the catalog connection."""
        self._prefetch.close()
        for store in {id(s): s for s in self._dataset_stores.values()}.values():
            store.close()
        self.db.close()

    # -- nodes ----------------------------------------------------------------------

    def _catalog_node(self) -> Node:
        newest = max((d["created_at"] for d in self.db.datasets()), default=0.0)
        return Node(Role.CATALOG, DIR_MODE, 0, _ns(newest), LIVE_TTL, False)

    def _dataset_node(self, row: Row) -> Node:
        return Node(
            Role.DATASET, DIR_MODE, 0, _ns(row["created_at"]), LIVE_TTL, False, dataset=row["id"]
        )

    def _version_node(self, row: Row) -> Node:
        published = row["state"] == "published"
        return Node(
            Role.VERSION,
            DIR_MODE,
            0,
            _ns(row["published_at"] or row["created_at"]),
            CACHE_TTL if published else LIVE_TTL,
            published,
            ref=row["root"],
            version=row["id"],
            dataset=row["dataset"],
        )

    def _tag_node(self, parent: Node, vid: str) -> Node:
        return Node(
            Role.TAG,
            LINK_MODE,
            len(vid),
            parent.mtime_ns,
            LIVE_TTL,
            False,
            ref=vid,
            dataset=parent.dataset,
        )

    def _entry_node(self, parent: Node, row: Row) -> Node:
        if row["kind"] == DIR:
            return Node(
                Role.FOLDER,
                DIR_MODE,
                0,
                parent.mtime_ns,
                parent.ttl,
                parent.cache,
                ref=row["ref"],
                version=parent.version,
                dataset=parent.dataset,
            )
        return Node(
            Role.FILE,
            FILE_MODE,
            row["size"],
            _ns(row["mtime"]),
            parent.ttl,
            parent.cache,
            ref=row["ref"],
            blob=row["blob"],
            version=parent.version,
            dataset=parent.dataset,
        )

    def _tree(self, node: Node) -> str:
        """The tree id of a version folder; a draft's root is re-read (it moves)."""
        if node.role == Role.VERSION and not node.cache:
            row = self.db.version_get(node.version)
            if row is None:
                raise NotFound(
                    f"version {node.version} no longer exists (published or deleted):"
                    " unmount and mount the new version"
                )
            return str(row["root"])
        return node.ref

    # -- reading the tree -----------------------------------------------------------

    def root(self) -> Node:
        """The node of the mount root."""
        return self._root

    def lookup(self, parent: Node, name: str) -> Node:
        """The node called ``name`` in folder ``parent``.

        Raises :class:`NotFound`, :class:`NameTooLong` (over 255 bytes) or
        :class:`NotADirectory` (``parent`` is a file or symlink).
        """
        try:
            size = len(name.encode("utf-8"))
        except UnicodeEncodeError:  # not UTF-8: no catalog name can match
            raise NotFound(f"no such file or folder: {name!r}") from None
        if size > NAME_MAX:
            raise NameTooLong(f"name longer than {NAME_MAX} bytes: {name[:40]}...")
        role = parent.role
        if role >= Role.VERSION:
            if role == Role.FILE:
                raise NotADirectory("not a folder")
            row = self.db.entry(self._tree(parent), name)
            if row is None:
                raise NotFound(f"no such file or folder: {name}")
            node = self._entry_node(parent, row)
            if node.role == Role.FILE and node.cache:
                warm = self._warmer(node)
                if warm is not None:
                    self._prefetch.looked_up(node.blob, warm)
            return node
        if role == Role.CATALOG:
            ds = self.db.dataset_by_name(name)
            if ds is None:
                raise NotFound(f"no dataset named {name!r}")
            return self._dataset_node(ds)
        if role == Role.DATASET:
            if VERSION_ID_RE.match(name):
                v = self.db.version_get(name)
                if v is not None and v["dataset"] == parent.dataset and v["state"] == "published":
                    return self._version_node(v)
            vid = self.db.tag_get(parent.dataset, name)
            if vid is not None:
                return self._tag_node(parent, vid)
            raise NotFound(f"no version or tag named {name!r}")
        raise NotADirectory("not a folder")

    def getattr(self, node: Node) -> Node:
        """``node`` with up-to-date attributes (the same node when it is immutable)."""
        if node.role == Role.CATALOG:
            return self._catalog_node()
        if node.role == Role.DATASET:
            row = self.db.dataset_by_id(node.dataset)
            if row is None:
                raise NotFound("the dataset was deleted")
            return self._dataset_node(row)
        return node

    def listing(self, node: Node) -> Listing:
        """The entries of folder ``node`` (for ``readdir``), with their attributes."""
        role = node.role
        if role in (Role.VERSION, Role.FOLDER):
            tree = self._tree(node)
            key = (tree, node.version)
            cached = self._listings.get(key)
            if cached is not None:
                self._listings.move_to_end(key)
                return Listing(cached)

            def fetch(after: str, limit: int) -> list[tuple[str, Node]]:
                rows = self.db.entries_after(tree, after, limit)
                return [(r["name"], self._entry_node(node, r)) for r in rows]

            def complete(entries: list[tuple[str, Node]]) -> None:
                self._remember_listing(key, entries)

            return Listing([], fetch, complete if node.cache else None)
        if role == Role.CATALOG:
            return Listing([(d["name"], self._dataset_node(d)) for d in self.db.datasets()])
        if role == Role.DATASET:
            published = self.db.versions_of(node.dataset, "published")
            entries = [(v["id"], self._version_node(v)) for v in published]
            ids = {v["id"] for v in published}
            entries += [
                (t["tag"], self._tag_node(node, t["version"]))
                for t in self.db.tags_of_dataset(node.dataset)
                if t["tag"] not in ids
            ]
            return Listing(entries)
        raise NotADirectory("not a folder")

    def _remember_listing(self, key: tuple[str, str], entries: list[tuple[str, Node]]) -> None:
        if len(entries) > LISTING_CACHE or key in self._listings:
            return
        self._listings[key] = entries
        self._listed += len(entries)
        while self._listed > LISTING_CACHE:
            _key, old = self._listings.popitem(last=False)
            self._listed -= len(old)

    def readlink(self, node: Node) -> str:
        """The target of a tag symlink: the version id, a sibling folder."""
        if node.role != Role.TAG:
            raise InvalidInput("not a symlink")
        return node.ref

    def listxattr(self, node: Node) -> list[str]:
        """The names of the extended attributes dlfs gives ``node``."""
        if node.role == Role.FILE:
            return list(FILE_XATTRS)
        if node.role == Role.VERSION:
            return list(VERSION_XATTRS)
        return []

    def getxattr(self, node: Node, name: str) -> bytes:
        """The value of extended attribute ``name`` of ``node``.

        Names outside ``user.dlfs.`` (``security.selinux``, ACLs...) raise
        :class:`NoAttribute` at once, without touching the catalog.
        """
        if not name.startswith(XATTR_PREFIX):
            raise NoAttribute(name)
        if node.role == Role.FILE:
            if name == X_ITEM:
                return node.ref.encode()
            if name == X_BLOB:
                return node.blob.encode()
            if name in (X_METADATA, X_ANNOTATIONS):
                item = self.db.item_get(node.ref)
                if item is None:
                    raise Corrupt(f"item {node.ref} is missing from the catalog")
                column = "metadata" if name == X_METADATA else "annotations"
                return str(item[column]).encode()
        elif node.role == Role.VERSION:
            if name == X_VERSION:
                return node.version.encode()
            if name == X_STATE:
                row = self.db.version_get(node.version)
                return (row["state"] if row is not None else "deleted").encode()
            if name == X_DATASET:
                ds = self.db.dataset_by_id(node.dataset)
                return (ds["name"] if ds is not None else "").encode()
        raise NoAttribute(name)

    def statfs(self) -> FsStats:
        """Sizes for ``df``: the version's bytes and files, or the catalog's blobs."""
        if self._root.role == Role.VERSION:
            files, nbytes = trees.totals(self.db, self._tree(self._root))
        else:
            files, nbytes = self.db.blob_totals()
        return FsStats(BLOCK_SIZE, -(-nbytes // BLOCK_SIZE), files, NAME_MAX)

    # -- reading bytes --------------------------------------------------------------

    def open(self, node: Node, flags: int) -> int:
        """Open a file for reading; return a handle for :meth:`read`.

        Does no I/O and no query (the node has what reading needs). Opening for
        writing raises :class:`ReadOnly`.
        """
        if node.role != Role.FILE:
            raise IsADirectory("is a folder") if node.is_dir else InvalidInput("not a file")
        if flags & os.O_ACCMODE != os.O_RDONLY or flags & (os.O_TRUNC | os.O_APPEND):
            self._refuse("open for writing")
        fh = next(self._fh)
        self._files[fh] = node
        if node.cache:
            warm = self._warmer(node)
            if warm is not None:
                self._prefetch.opened(node.blob, warm)
        return fh

    def release(self, fh: int) -> None:
        """Forget a handle (the store keeps the blob's file open in its LRU)."""
        self._files.pop(fh, None)

    def flush(self, fh: int) -> None:
        """A ``close`` of a handle: nothing to do in a read-only view."""

    def fsync(self, fh: int, datasync: bool) -> None:
        """``fsync`` of a handle: nothing to do in a read-only view."""

    def read_nowait(self, fh: int, offset: int, size: int) -> bytes | memoryview | None:
        """The bytes :meth:`read` would return, if the store has them without waiting;
        else None, and the caller runs :meth:`read` in a worker thread (see
        :meth:`dlfs.stores.base.BlobStore.read_nowait`)."""
        node = self._files[fh]
        store = self._dataset_stores.get(node.dataset) or self._store(node.dataset)
        try:
            data = store.read_nowait(node.blob, offset, size, node.size)
        except (Corrupt, Unavailable) as exc:
            self._report(node, exc)
            raise
        if data is not None and offset + size >= node.size and store.remote:
            self._note_served(node.blob)
        return data

    def read(self, fh: int, offset: int, size: int) -> bytes | memoryview:
        """Up to ``size`` bytes of the file from ``offset``: exactly the bytes that
        hash to its blob id, or :class:`Corrupt` / :class:`Unavailable`.

        May block (disk, hashing, network). Safe to call from a worker thread after
        :meth:`read_nowait` returned None for the same handle.
        """
        node = self._files[fh]
        store = self._dataset_stores.get(node.dataset) or self._store(node.dataset)
        try:
            data = store.read(node.blob, offset, size, node.size)
        except (Corrupt, Unavailable) as exc:
            self._report(node, exc)
            raise
        if offset + size >= node.size and store.remote:
            self._note_served(node.blob)
        return data

    def _note_served(self, blob: str) -> None:
        """A read of a remote blob reached its end: the kernel now keeps its pages
        (immutable files are opened with ``keep_cache``). Called from any thread."""
        served = self._served
        if len(served) >= CHECKED_MAX:
            served.clear()
        served.add(blob)

    def _warmer(self, node: Node) -> Callable[[], None] | None:
        """A job that starts fetching a remote blob's first block into the caches, so
        that the read following a lookup or open finds it there or on its way; None
        for local blobs (on a local disk a background open costs more than it
        saves: measured, see ``docs/performance.md``), and for a blob this mount
        already served to its end: the kernel's page cache answers its next reads, so
        warming it would only cost a thread hop per open. None as well until a read
        of the dataset resolved its store: lookups and opens make no query."""
        store = self._dataset_stores.get(node.dataset)
        if store is None or not store.remote or node.blob in self._served:
            return None
        blob, size = node.blob, node.size
        return lambda: store.prefetch(blob, size)

    def _store(self, dataset: int) -> BlobStore:
        store = self._dataset_stores.get(dataset)
        if store is None:
            row = self.db.dataset_by_id(dataset)
            if row is None:
                raise NotFound("the dataset was deleted")
            store = self._open_store(dataset, row["storage"])
        return store

    def _open_store(self, dataset: int, url: str) -> BlobStore:
        with self._store_lock:  # one store per dataset, even with a warm-up running
            store = self._dataset_stores.get(dataset)
            if store is None:
                store = self._dataset_stores[dataset] = self._stores(url)
            return store

    def store_warmup(self) -> Callable[[], None] | None:
        """A job, safe to run in another thread, that opens the blob store of the
        mounted version's dataset, so that the first read does not wait for it (an S3
        client takes a few hundred milliseconds to build); None for a catalog view."""
        dataset = self._root.dataset
        if self._root.role != Role.VERSION or dataset in self._dataset_stores:
            return None
        row = self.db.dataset_by_id(dataset)
        if row is None:
            return None
        url = str(row["storage"])

        def warm() -> None:
            self._open_store(dataset, url)

        return warm

    def _report(self, node: Node, problem: Exception) -> None:
        """Log once per blob that a file cannot be read, and why."""
        if node.blob not in self._reported:
            self._reported.add(node.blob)
            log.error("blob %s (item %s) is unreadable: %s", node.blob, node.ref, problem)

    # -- writing (refused here; DraftView overrides these) ---------------------------

    def _refuse(self, what: str) -> NoReturn:
        if self._root.role == Role.CATALOG:
            raise ReadOnly(f"cannot {what}: the catalog mount is read-only")
        if self._root.cache:
            raise ReadOnly(f"cannot {what}: version {self._root.version} is published")
        raise ReadOnly(f"cannot {what}: this draft is mounted read-only (-o ro)")

    def create(self, parent: Node, name: str, mode: int, flags: int) -> tuple[int, Node]:
        """Create and open a file: always :class:`ReadOnly` here."""
        self._refuse("create a file")

    def mkdir(self, parent: Node, name: str, mode: int) -> Node:
        """Make a folder: always :class:`ReadOnly` here."""
        self._refuse("make a folder")

    def mknod(self, parent: Node, name: str, mode: int, rdev: int) -> Node:
        """Make a special file: always :class:`ReadOnly` here."""
        self._refuse("make a file")

    def symlink(self, parent: Node, name: str, target: str) -> Node:
        """Make a symlink: always :class:`ReadOnly` here."""
        self._refuse("make a symlink")

    def link(self, node: Node, parent: Node, name: str) -> Node:
        """Make a hard link: always :class:`ReadOnly` here."""
        self._refuse("make a link")

    def unlink(self, parent: Node, name: str) -> None:
        """Remove a file: always :class:`ReadOnly` here."""
        self._refuse("remove a file")

    def rmdir(self, parent: Node, name: str) -> None:
        """Remove a folder: always :class:`ReadOnly` here."""
        self._refuse("remove a folder")

    def rename(self, parent: Node, name: str, new_parent: Node, new_name: str, flags: int) -> None:
        """Move an entry: always :class:`ReadOnly` here."""
        self._refuse("rename")

    def setattr(
        self,
        node: Node,
        size: int | None = None,
        mode: int | None = None,
        mtime_ns: int | None = None,
    ) -> Node:
        """Change size, mode or times: always :class:`ReadOnly` here."""
        self._refuse("change attributes")

    def write(self, fh: int, offset: int, data: bytes) -> int:
        """Write bytes: always :class:`ReadOnly` here."""
        self._refuse("write")

    def setxattr(self, node: Node, name: str, value: bytes) -> None:
        """Set an extended attribute: always :class:`ReadOnly` here."""
        self._refuse("set extended attributes")

    def removexattr(self, node: Node, name: str) -> None:
        """Remove an extended attribute: always :class:`ReadOnly` here."""
        self._refuse("remove extended attributes")
