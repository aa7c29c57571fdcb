"""The reads of a mounted tree: open files by handle, each read asked of its store once.

Both views (:mod:`dlfs.view`, :mod:`dlfs.draftview`) hold a :class:`FileReads`. A read
goes daemon -> view -> :class:`FileReads` -> the store of the file's dataset and back:
the store returns verified bytes or raises (:class:`Corrupt`, :class:`Unavailable`), and
this module logs each unreadable blob once, naming its item.

Where reads run: :meth:`FileReads.read_nowait` serves what the store has without waiting
(a verified local file that is open, the first read of a small local blob while the disk
is fast, remote bytes already in memory); it returns None for the rest, which the daemon
runs in worker threads through :meth:`FileReads.read`. A remote blob's first block
starts coming when its file is looked up or opened (:mod:`dlfs.warming`), unless this
mount already served it to its end (the kernel keeps those pages).

Threading: everything runs on the daemon's event loop except :meth:`FileReads.read`,
which may run in worker threads after :meth:`read_nowait` returned None for its handle.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import cast

from dlfs import versions
from dlfs.catalog import CatalogDB
from dlfs.errors import Corrupt, NotFound, Unavailable
from dlfs.nodes import Node
from dlfs.stores.base import BlobStore
from dlfs.stores.registry import StoreFactory
from dlfs.warming import FolderAhead, Prefetcher
from dlfs.warmpool import WarmPool, advise_willneed

log = logging.getLogger(__name__)

REPORT_EVERY = 60.0
"""A blob that keeps failing is logged again after this many seconds (the cause may
have changed: a server that came back and went down again), not on every read."""

REPORTED_MAX = 10_000
"""How many failing blobs are remembered for the rate limit."""

SERVED_MAX = 1_000_000
"""How many remote blobs served to their end are remembered."""


class FileReads:
    """The open files of one view (handle -> :class:`Node`) and their reads."""

    def __init__(self, db: CatalogDB, stores: StoreFactory) -> None:
        self.db = db
        self._stores = stores
        self._dataset_stores: dict[int, BlobStore] = {}
        self._store_lock = threading.Lock()
        self._fh = itertools.count(1)
        self._files: dict[int, Node] = {}
        self._reported: dict[str, float] = {}
        """Failing blob -> when it was last logged (see :meth:`_report`)."""
        self.path_of: Callable[[int], str | None] | None = None
        """Names the path a handle was opened at, for the log (the daemon, which
        knows the paths, sets it); None: the log names the item only."""
        self._served: set[str] = set()
        """Remote blobs read to their end by this mount (see :meth:`_note_served`)."""
        self._prefetch = Prefetcher()
        self._warming = WarmPool()
        self._open_blobs: dict[str, int] = {}
        self.following: Callable[[object, str, int], list[tuple[str, Node]]] | None = None
        """Set by the view: up to ``n`` ``(name, file node)`` after ``name`` in a folder
        ``(tree, version, dataset)`` (see :class:`dlfs.warming.FolderAhead`)."""
        self.next_folder: Callable[[object], object | None] | None = None
        """Set by the view: the folder after a folder in its parent's listing (see
        :class:`dlfs.warming.FolderAhead`)."""
        self.planned = False
        """An access plan is in force (:mod:`dlfs.plan`): it, not the folder order,
        says what is read next, so opens are not followed by :attr:`ahead`."""
        self.ahead = FolderAhead(
            self._prefetch, self._next_files, self._batch_warmer, self._folder_after
        )

    def close(self) -> None:
        """Stop warming and close the stores (their cached files close, their fetched
        blocks reach the disk cache)."""
        self._prefetch.close()
        self._warming.close()
        for store in {id(s): s for s in self._dataset_stores.values()}.values():
            store.close()

    # -- handles ----------------------------------------------------------------------

    def open(self, node: Node) -> int:
        """A new handle reading ``node``; a published remote file starts warming."""
        fh = next(self._fh)
        self._files[fh] = node
        if node.cache:
            blob = node.blob
            self._open_blobs[blob] = self._open_blobs.get(blob, 0) + 1
            warm = self._warmer(node)
            if warm is not None:
                self._prefetch.opened(blob, warm, self._starter(node))
            if node.key is not None and self.following is not None and not self.planned:
                store = self._dataset_stores.get(node.dataset)
                if store is None or store.remote:  # local files are not warmed
                    tree, name = cast(tuple[str, str], node.key)
                    self.ahead.opened((tree, node.version, node.dataset), name)
        return fh

    def looked_up(self, node: Node) -> None:
        """A published file was looked up: warm it if that is worth it."""
        warm = self._warmer(node)
        if warm is not None:
            self._prefetch.looked_up(node.blob, warm, self._starter(node))

    def node(self, fh: int) -> Node:
        """The node a handle reads."""
        return self._files[fh]

    def update(self, fh: int, node: Node) -> None:
        """The handle now reads ``node`` (other bytes: a draft file was committed)."""
        self._files[fh] = node

    def release(self, fh: int) -> None:
        """Forget a handle (the store keeps the blob's file open in its LRU); the
        last handle of a remote blob stops its read-ahead."""
        node = self._files.pop(fh, None)
        if node is None or not node.cache:
            return
        left = self._open_blobs.get(node.blob, 1) - 1
        if left > 0:
            self._open_blobs[node.blob] = left
            return
        self._open_blobs.pop(node.blob, None)
        store = self._dataset_stores.get(node.dataset)
        if store is not None and store.remote:
            store.stop_prefetch(node.blob)

    def warm(self, node: Node) -> bool:
        """Start bringing the bytes of file ``node`` into the caches now, and return
        at once (fire and forget; an access plan calls it ahead of the reader, see
        :mod:`dlfs.plan`). A remote blob is fetched by ``store.prefetch`` into the
        memory and disk block caches (shared by every process of a mount); a local one
        is read ahead into the kernel's page cache (``POSIX_FADV_WILLNEED``). Nothing
        is served from here: the read that follows verifies its bytes as always, and
        reports what failed. False when the job was not queued (no bytes yet, the
        bounded pool is full, or the reads are closed). Opens the dataset's store on
        first use (one catalog query)."""
        blob, size = node.blob, node.size
        if not blob or size <= 0:
            return False
        store = self._dataset_stores.get(node.dataset) or self.store(node.dataset)
        if store.remote:
            return self._warming.submit(blob, lambda: store.prefetch(blob, size))
        path = store.local_path(blob)
        if path is None:
            return False
        local = str(path)
        return self._warming.submit(blob, lambda: advise_willneed(local, size))

    # -- reading ----------------------------------------------------------------------

    def read_nowait(self, fh: int, offset: int, size: int) -> bytes | memoryview | None:
        """The bytes :meth:`read` would return, if the store has them without waiting;
        else None (see :meth:`dlfs.stores.base.BlobStore.read_nowait`)."""
        node = self._files[fh]
        store = self._dataset_stores.get(node.dataset) or self.store(node.dataset)
        try:
            data = store.read_nowait(node.blob, offset, size, node.size)
        except (Corrupt, Unavailable) as exc:
            self._report(fh, node, exc)
            raise
        if data is not None and offset + size >= node.size and store.remote:
            self._note_served(node.blob)
        return data

    def read(self, fh: int, offset: int, size: int) -> bytes | memoryview:
        """Up to ``size`` bytes of the file from ``offset``: exactly the bytes that
        hash to its blob id, or :class:`Corrupt` / :class:`Unavailable`. May block."""
        node = self._files[fh]
        store = self._dataset_stores.get(node.dataset) or self.store(node.dataset)
        try:
            data = store.read(node.blob, offset, size, node.size)
        except (Corrupt, Unavailable) as exc:
            self._report(fh, node, exc)
            raise
        if offset + size >= node.size and store.remote:
            self._note_served(node.blob)
        return data

    def _report(self, fh: int, node: Node, problem: Exception) -> None:
        """Log that a file cannot be read (its ``EIO``): one line naming its path,
        blob, item and the cause (corrupt bytes, a cut body, a failing or unreachable
        server, a missing blob), once per blob every :data:`REPORT_EVERY` seconds.
        Called from any thread; two threads may both log a blob's first failure."""
        now = time.monotonic()
        last = self._reported.get(node.blob)
        if last is not None and now - last < REPORT_EVERY:
            return
        if len(self._reported) >= REPORTED_MAX:
            self._reported.clear()
        self._reported[node.blob] = now
        path = None
        if self.path_of is not None:
            try:
                path = self.path_of(fh)
            except Exception:  # naming the path must never hide the failure
                path = None
        log.error(
            "cannot read %s: blob %s (item %s) is unreadable: %s",
            path or "a file",
            node.blob,
            node.ref,
            problem,
        )

    def _note_served(self, blob: str) -> None:
        """A read of a remote blob reached its end: the kernel now keeps its pages
        (immutable files are opened with ``keep_cache``). Called from any thread."""
        served = self._served
        if len(served) >= SERVED_MAX:
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

    def _starter(self, node: Node) -> Callable[[], bool] | None:
        """Starts the fetch of a remote blob's first block here if that takes no
        waiting (see :meth:`BlobStore.prefetch_nowait`); None for no store yet."""
        store = self._dataset_stores.get(node.dataset)
        if store is None or not store.remote:
            return None
        blob, size = node.blob, node.size
        return lambda: store.prefetch_nowait(blob, size)

    def _next_files(self, folder: object, name: str, n: int) -> list[tuple[str, Node]]:
        return self.following(folder, name, n) if self.following is not None else []

    def _folder_after(self, folder: object) -> object | None:
        return self.next_folder(folder) if self.next_folder is not None else None

    def _batch_warmer(self, nodes: list[object]) -> Callable[[], None] | None:
        """One job starting the fetch of several files (of a folder read in order)."""
        jobs = [w for n in nodes if isinstance(n, Node) and (w := self._warmer(n)) is not None]
        if not jobs:
            return None

        def warm() -> None:
            for job in jobs:
                try:
                    job()
                except Exception as exc:  # a hint: the read reports real errors
                    log.debug("warming ahead failed: %r", exc)

        return warm

    # -- stores -----------------------------------------------------------------------

    def store(self, dataset: int) -> BlobStore:
        """The blob store of a dataset (opened on first use)."""
        store = self._dataset_stores.get(dataset)
        if store is None:
            store = self._open_store(dataset, versions.storage_of(self.db, dataset))
        return store

    def _open_store(self, dataset: int, url: str) -> BlobStore:
        with self._store_lock:  # one store per dataset, even with a warm-up running
            store = self._dataset_stores.get(dataset)
            if store is None:
                store = self._dataset_stores[dataset] = self._stores(url)
            return store

    def store_warmup(self, dataset: int) -> Callable[[], None] | None:
        """A job, safe to run in another thread, that opens the blob store of a
        dataset, so that the first read does not wait for it (an S3 client takes a
        few hundred milliseconds to build); None when it is open already."""
        if dataset in self._dataset_stores:
            return None
        try:
            url = versions.storage_of(self.db, dataset)
        except NotFound:
            return None

        def warm() -> None:
            self._open_store(dataset, url)

        return warm
