"""The filesystem semantics of dlfs, with no FUSE in sight.

A :class:`View` answers what a mounted dlfs tree looks like: ``lookup``, ``getattr``,
``listing`` (readdir with attributes), ``readlink``, extended attributes, ``open`` /
``read`` / ``release`` and ``statfs``; it takes no writes (:meth:`View.refuse` says
why: :class:`dlfs.errors.ReadOnly`), :class:`dlfs.draftview.DraftView` serves a draft
read-write. The FUSE daemon (``dlfsd``) only adapts these calls to pyfuse3; model
tests drive a :class:`View` directly, without a kernel. Nodes, roles and listings are
:mod:`dlfs.nodes`; extended attributes come from the table in :mod:`dlfs.xattrs`.

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

Reading never returns wrong bytes. The first time a local blob is read in this
process its whole content is hashed (xxh3-128) through the file descriptor that will
serve it; a mismatch or a missing blob raises :class:`Corrupt` / :class:`Unavailable`
(EIO for that file only), logged once. A reopened blob whose file identity (device,
inode, size, mtime) is unchanged is not hashed again. A large blob with a block
manifest (``<id>.blocks``, written at import, see :mod:`dlfs.stores.manifest`) is
verified block by block instead, each block (4 MiB) on its first read, while worker
threads hash the next blocks ahead of the reader (:data:`READAHEAD_BLOCKS`, read
ahead with ``POSIX_FADV_WILLNEED``): a cold sequential read streams instead of waiting
for the whole blob. A damaged manifest, or one whose size does not match, makes the
blob :class:`Corrupt`; a bad block gives :class:`Corrupt` for reads of that block
only; a large blob without a manifest is hashed whole. Remote stores (S3, linked
buckets) check every block they return against its hash themselves.

Where reads run: verified local blobs are served by ``os.pread`` on file descriptors
kept in a small LRU, inline on the event loop: on mostly cached files that beats
threads on small machines (``measurements.md``). :meth:`View.read_nowait` serves
what it should not hand to a thread and returns None for the rest, which the daemon
runs in worker threads through :meth:`View.read`. The first read of a small blob
(up to 1 MiB: open it, read it whole, hash it) runs inline while the disk is fast: a
moving average of how long that took stays under :data:`INLINE_COLD_MAX`; on a 2-core
machine the thread hop costs more than it saves. On a slower disk first reads go to
threads, so that several disk requests are in flight (one in :data:`INLINE_RETRY`
still runs inline, to notice when the disk got fast again). The buffer that was
hashed serves the file's reads, without a copy, until one reaches its end. Hashing a
large blob (read ahead with ``POSIX_FADV_WILLNEED``) and remote reads whose block is
not in memory go to threads; a remote blob's first block starts coming when its file
is looked up or opened (:mod:`dlfs.prefetch`), unless this mount already served it
to its end (the kernel keeps those pages).

Threading: a :class:`View` belongs to one thread (the daemon's event loop) because
its catalog connection does; only :meth:`View.read` may also run in worker threads,
after :meth:`View.read_nowait` returned None for that handle.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn

from dlfs import trees, versions, xattrs
from dlfs.catalog import CatalogDB, Row
from dlfs.errors import (
    Corrupt,
    InvalidInput,
    IsADirectory,
    NameTooLong,
    NotADirectory,
    NotFound,
    ReadOnly,
    Unavailable,
)
from dlfs.home import Home
from dlfs.items import ItemRecord
from dlfs.names import NAME_MAX
from dlfs.nodes import (
    BLOCK_SIZE,
    CACHE_TTL,
    DIR_MODE,
    FILE_MODE,
    LINK_MODE,
    LIVE_TTL,
    FsStats,
    Listing,
    Node,
    Page,
    Role,
    ns,
)
from dlfs.objects import DIR, VERSION_ID_RE, blob_id, new_hasher
from dlfs.prefetch import Prefetcher
from dlfs.stores.base import BlobStore
from dlfs.stores.local import LocalStore
from dlfs.stores.manifest import Manifest
from dlfs.xattrs import VersionFacts

log = logging.getLogger(__name__)

INLINE_VERIFY_MAX = 1 << 20
"""Blobs up to this size are hashed inline on first read when their bytes are cached;
larger ones always in a worker thread."""

FD_CACHE = 256
"""How many verified local blob files stay open."""

LISTING_CACHE = 262_144
"""Entries of immutable folders kept in memory once listed (the kernel does not cache
listings through pyfuse3, so every ``ls`` or walk lists again)."""

LARGE_CACHE = 64
"""How many large blobs verified block by block stay open (with their block states)."""

READAHEAD_BLOCKS = 8
"""Blocks of a large blob hashed ahead of its reader, by :data:`VERIFY_THREADS`."""

KEPT_MAX = 96 << 20
"""Bytes of verified blocks of large blobs kept in memory to serve the reads that
follow (see :class:`KeptBlocks`): the read-ahead of a few sequential readers."""

VERIFY_THREADS = 2

INLINE_COLD_MAX = 0.002
"""First reads of small local blobs run inline on the event loop while opening and
verifying a blob takes less than this on average (seconds): on a fast disk a thread
hop costs more CPU than it saves, and CPU is what a 2-core machine runs out of. On a
slower disk they go to worker threads, so several disk requests are in flight."""

INLINE_RETRY = 64
"""While first reads go to threads, one in this many still runs inline, so the
average follows a disk that got fast again (cached, or a burst over)."""

FRESH_MAX = 64

CHECKED_MAX = 1_000_000
"""How many verification results (good or bad) are remembered."""

StoreFactory = Callable[[str], BlobStore]


def default_stores(
    home: Home, cache_dir: str | None = None, cache_size: int | None = None
) -> StoreFactory:
    """The stores of a catalog home: ``local`` is its blob folder; remote URLs
    (``s3://``, ``linked:s3://``) come from :func:`dlfs.stores.remote.store_factory`
    with its block cache at ``cache_dir`` of ``cache_size`` bytes (defaults from
    ``DLFS_*`` variables), built on first use so boto3 loads only when needed."""
    local = LocalStore(home.blobs)
    remote: list[StoreFactory] = []

    def factory(url: str) -> BlobStore:
        if url == "local":
            return local
        if not remote:
            from dlfs.stores.remote import StoreConfig, store_factory

            config = StoreConfig.from_env(cache_dir=cache_dir, cache_size=cache_size)
            remote.append(store_factory(home, config))
        return remote[0](url)

    return factory


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
            return View(db, stores or default_stores(home), None)
        row = versions.resolve(db, ref)
        return View(db, stores or default_stores(home), row)
    except BaseException:
        db.close()
        raise


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
        # Verified local blobs: blob id -> open fd, least recently used first.
        self._fds: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()
        self._blob_locks: dict[str, tuple[threading.Lock, int]] = {}
        # Verification results: blob id -> ((dev, ino, size, mtime_ns), good).
        self._checked: dict[str, tuple[tuple[int, int, int, int], bool]] = {}
        # Large blobs verified block by block: blob id -> its file, least recent first.
        self._large: OrderedDict[str, _BlockFile] = OrderedDict()
        self._pool: ThreadPoolExecutor | None = None
        self._kept = KeptBlocks(KEPT_MAX)
        # Moving average of the seconds a first read of a small blob took to open and
        # verify it; above INLINE_COLD_MAX first reads go to threads.
        self._cold_time = 0.0
        self._cold_skipped = 0
        # Small blobs just verified: blob id -> their bytes, which serve the file's
        # reads until one reaches the end (see _from_open_blob).
        self._fresh: dict[str, bytes] = {}
        self._reported: set[str] = set()
        # Remote blobs read to their end by this mount (see _note_served).
        self._served: set[str] = set()
        # Complete listings of immutable folders: (tree, version) -> entries.
        self._listings: OrderedDict[tuple[str, str], Page] = OrderedDict()
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
        """Close cached file descriptors, the stores (their fetched blocks reach the
        disk cache) and the catalog connection."""
        self._prefetch.close()
        for store in {id(s): s for s in self._dataset_stores.values()}.values():
            store.close()
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            self._large.clear()
        self.db.close()

    # -- nodes ----------------------------------------------------------------------

    def _catalog_node(self) -> Node:
        newest = max((d["created_at"] for d in self.db.datasets()), default=0.0)
        return Node(Role.CATALOG, DIR_MODE, 0, ns(newest), LIVE_TTL, False)

    def _dataset_node(self, row: Row) -> Node:
        return Node(
            Role.DATASET, DIR_MODE, 0, ns(row["created_at"]), LIVE_TTL, False, dataset=row["id"]
        )

    def _version_node(self, row: Row) -> Node:
        published = row["state"] == "published"
        return Node(
            Role.VERSION,
            DIR_MODE,
            0,
            ns(row["published_at"] or row["created_at"]),
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
            ns(row["mtime"]),
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

            def fetch(after: str, limit: int) -> Page:
                rows = self.db.entries_after(tree, after, limit)
                return [(r["name"], self._entry_node(node, r)) for r in rows]

            def complete(entries: Page) -> None:
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

    def _remember_listing(self, key: tuple[str, str], entries: Page) -> None:
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
        """The names of the extended attributes dlfs gives ``node`` (:mod:`dlfs.xattrs`)."""
        return xattrs.names(node.role)

    def getxattr(self, node: Node, name: str) -> bytes:
        """The value of extended attribute ``name`` of ``node`` (:mod:`dlfs.xattrs`):
        :class:`NoAttribute` for any other name, without touching the catalog."""
        attr = xattrs.find(node.role, name)
        if node.role == Role.FILE:
            return attr.read(self.item(node)).encode()
        return attr.read(self._version_facts(node)).encode()

    def item(self, node: Node) -> ItemRecord:
        """The item of a file node."""
        row = self.db.item_get(node.ref)
        if row is None:
            raise Corrupt(f"item {node.ref} is missing from the catalog")
        return ItemRecord.from_row(row)

    def _version_facts(self, node: Node) -> VersionFacts:
        row = self.db.version_get(node.version)
        ds = self.db.dataset_by_id(node.dataset)
        return VersionFacts(
            node.version,
            row["state"] if row is not None else "deleted",
            ds["name"] if ds is not None else "",
        )

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
            self.refuse("open for writing")
        fh = next(self._fh)
        self._files[fh] = node
        if node.cache:
            warm = self._warmer(node)
            if warm is not None:
                self._prefetch.opened(node.blob, warm)
        return fh

    def release(self, fh: int) -> None:
        """Forget a handle (the blob's file stays open in the LRU)."""
        self._files.pop(fh, None)

    def flush(self, fh: int) -> None:
        """A ``close`` of a handle: nothing to do in a read-only view."""

    def fsync(self, fh: int, datasync: bool) -> None:
        """``fsync`` of a handle: nothing to do in a read-only view."""

    def read_nowait(self, fh: int, offset: int, size: int) -> bytes | memoryview | None:
        """The bytes :meth:`read` would return, if they can be had without waiting;
        else None, and the caller runs :meth:`read` in a worker thread.

        Served at once: a verified local blob whose file is open (``pread`` of mostly
        cached data), the first read of a small local blob while the disk is fast
        (see the module docstring), and remote bytes already in memory. Left to a
        thread: first reads on a slow disk, hashing a large blob, remote fetches.
        """
        node = self._files[fh]
        end = node.size
        if offset >= end or size <= 0:
            return b""
        size = min(size, end - offset)
        blob = node.blob
        bf = None
        with self._lock:
            data = self._from_open_blob(blob, offset, size, end)
            if data is None:
                bf = self._large.get(blob)
        if bf is not None:
            last = (offset + size - 1) // bf.manifest.block_size
            if not bf.ready(offset // bf.manifest.block_size, last):
                return None
            if last + READAHEAD_BLOCKS // 2 >= bf.ahead:
                self._read_ahead(bf, last)
            kept = bf.take(offset, size)
            if kept is not None:
                return kept
            data = os.pread(bf.fd, size, offset)
        elif data is None:
            store = self._store(node.dataset)  # resolved here: read() may run in a thread
            if store.remote:
                remote = store.read_nowait(blob, offset, size)
                if remote is not None and offset + size >= end:
                    self._note_served(blob)
                return remote
            if end > INLINE_VERIFY_MAX:
                return None
            if self._cold_time > INLINE_COLD_MAX:
                self._cold_skipped += 1
                if self._cold_skipped % INLINE_RETRY:
                    return None
            start = time.monotonic()
            if not self._ensure(node, store, block=False):
                return None  # another thread is verifying this blob: wait there
            self._note_cold(time.monotonic() - start)
            return self.read(fh, offset, size)
        if len(data) != size:
            raise Corrupt(f"blob {blob} is shorter than the catalog says ({end} bytes)")
        return data

    def read(self, fh: int, offset: int, size: int) -> bytes | memoryview:
        """Up to ``size`` bytes of the file from ``offset``: exactly the bytes that
        hash to its blob id, or :class:`Corrupt` / :class:`Unavailable`.

        May block (disk, hashing, network). Safe to call from a worker thread after
        :meth:`read_nowait` returned None for the same handle.
        """
        node = self._files[fh]
        end = node.size
        if offset >= end or size <= 0:
            return b""
        size = min(size, end - offset)
        blob = node.blob
        data: bytes | memoryview
        for _attempt in range(3):
            with self._lock:
                found = self._from_open_blob(blob, offset, size, end)
                if found is not None:
                    data = found
                    break
                bf = self._large.get(blob)
                if bf is not None:
                    self._large.move_to_end(blob)
            if bf is not None:
                data = self._read_blocks(node, bf, offset, size)
                break
            store = self._store(node.dataset)
            if store.remote:
                # Remote readers check every block against its hash before returning it.
                data = store.read(blob, offset, size, end)
                if offset + size >= end:
                    self._note_served(blob)
                break
            start = time.monotonic()
            self._ensure(node, store)
            self._note_cold(time.monotonic() - start)
        else:
            raise Unavailable(f"blob {blob}: its file keeps being evicted from the fd cache")
        if len(data) != size:
            raise Corrupt(f"blob {blob} is shorter than the catalog says ({end} bytes)")
        return data

    def _from_open_blob(
        self, blob: str, offset: int, size: int, end: int
    ) -> bytes | memoryview | None:
        """The bytes of a verified blob whose file is open (None when it is not): from
        the buffer that verified it (no copy; dropped once a read reaches its end), or
        by ``pread``. Called with ``self._lock`` held."""
        fd = self._fds.get(blob)
        if fd is None:
            return None
        self._fds.move_to_end(blob)
        whole = self._fresh.get(blob)
        if whole is None:
            return os.pread(fd, size, offset)
        if len(whole) != end:
            raise Corrupt(f"blob {blob} is {len(whole)} bytes, the catalog says {end}")
        if offset + size >= end:
            del self._fresh[blob]
        return memoryview(whole)[offset : offset + size]

    def _read_blocks(
        self, node: Node, bf: _BlockFile, offset: int, size: int
    ) -> bytes | memoryview:
        """Bytes of a large blob, each block they touch verified first (blocking)."""
        block_size = bf.manifest.block_size
        first, last = offset // block_size, (offset + size - 1) // block_size
        for index in range(first, last + 1):
            if not bf.verify(index):
                self._bad(node, f"block {index} does not match its manifest")
        self._read_ahead(bf, last)
        kept = bf.take(offset, size)
        return kept if kept is not None else os.pread(bf.fd, size, offset)

    def _read_ahead(self, bf: _BlockFile, index: int) -> None:
        """Have worker threads hash the blocks after ``index`` (never blocks)."""
        todo = bf.claim_ahead(index, READAHEAD_BLOCKS)
        if not todo:
            return
        with self._lock:
            pool = self._pool
            if pool is None:
                pool = self._pool = ThreadPoolExecutor(VERIFY_THREADS, "dlfs-verify")
        for j in todo:
            start, length = bf.manifest.span(j)
            os.posix_fadvise(bf.fd, start, length, os.POSIX_FADV_WILLNEED)
        for j in todo:
            try:
                pool.submit(bf.hash_claimed, j)
            except RuntimeError:  # shut down: the reader hashes it itself
                bf.unclaim(j)

    def _note_cold(self, seconds: float) -> None:
        """Fold the time one blob took to open and verify into the moving average
        that decides where first reads run (races between threads only blur it)."""
        self._cold_time += (seconds - self._cold_time) / 8

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

    def _ensure(self, node: Node, store: BlobStore, block: bool = True) -> bool:
        """Open and verify the local blob of ``node`` and cache its fd; True when done.

        Concurrent calls for one blob wait for each other, so it is hashed once; with
        ``block=False`` a call returns False at once when another thread is on it.
        A small blob is read whole to be hashed; those bytes serve its reads.
        """
        blob = node.blob
        with self._lock:
            lock, users = self._blob_locks.get(blob) or (threading.Lock(), 0)
            self._blob_locks[blob] = (lock, users + 1)
        try:
            if not lock.acquire(blocking=block):
                return False
            try:
                return self._ensure_locked(node, store)
            finally:
                lock.release()
        finally:
            with self._lock:
                lock, users = self._blob_locks[blob]
                if users == 1:
                    del self._blob_locks[blob]
                else:
                    self._blob_locks[blob] = (lock, users - 1)

    def _ensure_locked(self, node: Node, store: BlobStore) -> bool:
        blob = node.blob
        path = store.local_file(blob)
        if path is None:
            return True  # remote: nothing to open; reading goes through the store
        if blob in self._fds or blob in self._large:
            return True
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self._report(node, f"its file {path} is missing")
            raise Unavailable(f"blob {blob} is missing from the local store") from None
        except OSError as exc:
            self._report(node, f"cannot open {path}: {exc}")
            raise Unavailable(f"blob {blob} cannot be opened: {exc}") from exc
        try:
            st = os.fstat(fd)
            identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            manifest_path = getattr(store, "manifest_path", None)
            if manifest_path is not None and st.st_size > getattr(store, "block_size", 0):
                manifest = self._load_manifest(node, manifest_path(blob), st.st_size)
                if manifest is not None:
                    with self._lock:
                        self._large[blob] = _BlockFile(fd, manifest, self._kept)
                        while len(self._large) > LARGE_CACHE:
                            self._large.popitem(last=False)
                    return True
            known = self._checked.get(blob)
            if known is not None and known[0] == identity:
                good = known[1]
            else:
                digest = None
                if st.st_size <= INLINE_VERIFY_MAX:
                    # One read both verifies and serves: read() takes the buffer.
                    whole = os.pread(fd, st.st_size, 0)
                    if len(whole) == st.st_size:
                        digest = blob_id(whole)
                        if digest == blob:
                            with self._lock:
                                self._fresh[blob] = whole
                                while len(self._fresh) > FRESH_MAX:
                                    self._fresh.pop(next(iter(self._fresh)))
                if digest is None:
                    digest = _hash_fd(fd, st.st_size)
                good = digest == blob
                if len(self._checked) >= CHECKED_MAX:
                    self._checked.pop(next(iter(self._checked)))
                self._checked[blob] = (identity, good)
            if not good:
                self._bad(node, "its bytes do not match its hash")
        except BaseException:
            os.close(fd)
            raise
        with self._lock:
            old = self._fds.pop(blob, None)
            self._fds[blob] = fd
            while len(self._fds) > FD_CACHE:
                _blob, evicted = self._fds.popitem(last=False)
                os.close(evicted)
        if old is not None:
            os.close(old)
        return True

    def _load_manifest(self, node: Node, path: Any, size: int) -> Manifest | None:
        """The block manifest of a large local blob; None if it has none (hash it
        whole); :class:`Corrupt` if it is damaged or does not fit the blob."""
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._bad(node, f"its block manifest cannot be read: {exc}")
        try:
            manifest = Manifest.decode(node.blob, data)
        except Corrupt:
            self._bad(node, "its block manifest is damaged")
        if manifest.size != size or size != node.size:
            self._bad(node, f"its block manifest says {manifest.size} bytes, the file has {size}")
        return manifest

    def _report(self, node: Node, problem: str) -> None:
        if node.blob not in self._reported:
            self._reported.add(node.blob)
            log.error("blob %s (item %s) is unreadable: %s", node.blob, node.ref, problem)

    def _bad(self, node: Node, problem: str) -> NoReturn:
        self._report(node, problem)
        raise Corrupt(f"blob {node.blob} is corrupt: {problem}")

    # -- writing: refused --------------------------------------------------------------

    def refuse(self, what: str) -> NoReturn:
        """Raise the :class:`ReadOnly` that says why this view takes no writes (the
        daemon answers every write request to a read-only view with it)."""
        if self._root.role == Role.CATALOG:
            raise ReadOnly(f"cannot {what}: the catalog mount is read-only")
        if self._root.cache:
            raise ReadOnly(f"cannot {what}: version {self._root.version} is published")
        raise ReadOnly(f"cannot {what}: this draft is mounted read-only (-o ro)")


_UNKNOWN, _GOOD, _BAD = 0, 1, 2


class KeptBlocks:
    """Verified blocks of large blobs, kept in memory from the read that hashed them
    until a read reaches their end, so their bytes are read from the disk once (not
    once to be hashed and again to be served). At most ``limit`` bytes: the oldest
    go first (their reads then ``pread`` again). Keyed by (blob id, block index):
    the same key always means the same bytes. Thread-safe."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self._blocks: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: tuple[str, int], data: bytes) -> None:
        """Keep a verified block."""
        with self._lock:
            if key in self._blocks or len(data) > self.limit:
                return
            self._blocks[key] = data
            self.size += len(data)
            while self.size > self.limit:
                _key, old = self._blocks.popitem(last=False)
                self.size -= len(old)

    def take(self, key: tuple[str, int], lo: int, hi: int) -> memoryview | None:
        """Bytes ``lo:hi`` of a kept block (no copy), or None; a block whose end was
        reached is let go."""
        with self._lock:
            data = self._blocks.get(key)
            if data is None:
                return None
            if hi >= len(data):
                del self._blocks[key]
                self.size -= len(data)
        return memoryview(data)[lo:hi]


class _BlockFile:
    """A large local blob verified block by block against its manifest.

    Owns its file descriptor (closed when the last reference goes: a worker thread
    may still be hashing a block after the blob left the view's LRU). Each block is
    hashed once; a thread that needs a block another thread is hashing waits for it.
    The bytes that were hashed are kept (in a :class:`KeptBlocks` shared by the view)
    to serve the block's reads.
    """

    def __init__(self, fd: int, manifest: Manifest, kept: KeptBlocks) -> None:
        self.fd = fd
        self.manifest = manifest
        self.kept = kept
        self.state = bytearray(manifest.blocks)
        self.ahead = 0
        """Blocks below this have been claimed for hashing (or hashed)."""
        self._pending: dict[int, threading.Event] = {}
        self._lock = threading.Lock()

    def __del__(self) -> None:
        os.close(self.fd)

    def ready(self, first: int, last: int) -> bool:
        """True when blocks ``first`` to ``last`` were all verified good."""
        state = self.state
        return all(state[i] == _GOOD for i in range(first, last + 1))

    def verify(self, index: int) -> bool:
        """Whether block ``index`` matches its hash; hashes it (or waits for the
        thread hashing it) the first time."""
        while True:
            with self._lock:
                state = self.state[index]
                if state != _UNKNOWN:
                    return state == _GOOD
                event = self._pending.get(index)
                if event is None:
                    event = self._pending[index] = threading.Event()
                    mine = True
                else:
                    mine = False
            if mine:
                self.hash_claimed(index)
            else:
                event.wait()

    def claim_ahead(self, index: int, count: int) -> list[int]:
        """Claim the unhashed blocks among the ``count`` after ``index``."""
        end = min(self.manifest.blocks, index + 1 + count)
        todo = []
        with self._lock:
            for j in range(max(self.ahead, index + 1), end):
                if self.state[j] == _UNKNOWN and j not in self._pending:
                    self._pending[j] = threading.Event()
                    todo.append(j)
            self.ahead = max(self.ahead, end)
        return todo

    def unclaim(self, index: int) -> None:
        with self._lock:
            event = self._pending.pop(index, None)
        if event is not None:
            event.set()

    def take(self, offset: int, size: int) -> memoryview | None:
        """Bytes of a verified block kept in memory, when the range lies in one."""
        block_size = self.manifest.block_size
        index = offset // block_size
        if (offset + size - 1) // block_size != index:
            return None
        start = index * block_size
        return self.kept.take((self.manifest.blob, index), offset - start, offset - start + size)

    def hash_claimed(self, index: int) -> None:
        """Hash block ``index``, claimed by this thread, and record the result (an
        I/O error leaves it unknown: the next reader tries again)."""
        start, length = self.manifest.span(index)
        try:
            data = os.pread(self.fd, length, start)
            good = len(data) == length and blob_id(data) == self.manifest.hashes[index]
            if good:
                self.kept.put((self.manifest.blob, index), data)
            self.state[index] = _GOOD if good else _BAD
        except OSError:
            log.warning("reading block %d of blob %s failed", index, self.manifest.blob)
        finally:
            self.unclaim(index)


HASH_CHUNK = 4 << 20
PREFETCH = 32 << 20


def _hash_fd(fd: int, size: int) -> str:
    """The blob id of everything readable from ``fd`` (``size`` bytes expected).

    Large files are read ahead (``POSIX_FADV_WILLNEED``) so the disk streams while the
    bytes are hashed.
    """
    hasher = new_hasher()
    buf = bytearray(min(HASH_CHUNK, max(size, 1)))
    view = memoryview(buf)
    big = size > HASH_CHUNK
    if big:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    offset = 0
    while True:
        if big and offset % PREFETCH == 0:
            os.posix_fadvise(fd, offset, 2 * PREFETCH, os.POSIX_FADV_WILLNEED)
        n = os.preadv(fd, [view], offset)
        if not n:
            break
        hasher.update(view[:n])
        offset += n
    return str(hasher.hexdigest())
