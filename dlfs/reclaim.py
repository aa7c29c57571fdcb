"""Reclaiming blobs nothing reaches any more, while others read, write and import.

A draft mount stores a new blob at each close of a changed file; the blob it
superseded is then usually reached by nothing. :class:`Reclaimer` deletes such blobs
as the mount goes (no ``dlfs gc`` needed), and :func:`reclaim` is the one safe way to
delete a blob, which ``dlfs gc`` uses too.

**Why it is safe.** A blob may be deleted only when no file entry of any tree (a
version's, a draft's) names an item holding it, and nobody is about to add one. Every
way of adding a reference to a blob already stored runs its "is it stored?" check and
its catalog commit under the catalog's write lock (``BEGIN IMMEDIATE``): a draft mount
adopts a closed file inside the transaction that records it, and an import's
:meth:`~dlfs.stores.base.IngestBatch.commit` (inside the import's transaction)
checks again that every blob it found already stored is still there. :func:`reclaim`
holds the same lock while it checks the catalog, forgets the blob's row and takes the
bytes out of reach (:meth:`~dlfs.stores.base.BlobStore.set_aside`, one rename): a
writer either sees the blob gone (and stores its own copy, or its import fails and
changes nothing) or commits its reference before the reclaim looks. The bytes are
deleted only after the catalog commit; a process killed before that leaves them set
aside, and the next :meth:`~dlfs.stores.base.BlobStore.clear_staging` (run by the next
mount, ``dlfs add`` and ``dlfs gc``) puts them back: ``kill -9`` at any moment loses
nothing, at worst it leaves a blob to reclaim again.

**Open files.** A mount reading a blob through a handle keeps it: the mount's own
handles are passed as ``keep``, and a blob kept that way is tried again later. Only
the local store reclaims; remote stores keep their blobs until ``dlfs gc``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from dlfs.catalog import CatalogDB
from dlfs.stores.base import BlobStore

log = logging.getLogger(__name__)

MADE_MAX = 100_000
"""At most this many blobs a mount stored are offered again at its end (the rest are
left to ``dlfs gc``)."""


def reclaim(db: CatalogDB, store: BlobStore, blobs: Iterable[str], keep: set[str]) -> list[str]:
    """Delete those of ``blobs`` that no file entry names and ``keep`` does not hold;
    return the ones deleted. One write transaction; the bytes go after it commits."""
    aside: list[str] = []
    try:
        with db.transaction():
            for blob in blobs:
                if blob in keep or db.blob_in_use(blob):
                    continue
                if store.set_aside(blob):
                    aside.append(blob)
                db.blob_delete(blob)
    except BaseException:
        for blob in aside:
            store.put_back(blob)
        raise
    for blob in aside:
        store.drop_aside(blob)
    return aside


class Reclaimer:
    """What one draft mount superseded, reclaimed as it goes.

    ``held`` gives the blobs the mount's open handles read: they are kept, and tried
    again at the next :meth:`run` (or at :meth:`close`).
    """

    def __init__(self, db: CatalogDB, held: Callable[[], set[str]]) -> None:
        self.db = db
        self._held = held
        self._pending: dict[str, BlobStore] = {}
        self._made: dict[str, BlobStore] = {}
        self._recovered: set[int] = set()
        self.reclaimed = 0
        """How many blobs this mount reclaimed (for tests and logs)."""

    def offer(self, blob: str, store: BlobStore) -> None:
        """``blob`` of ``store`` may no longer be reached (a file's old bytes)."""
        if blob:
            self._pending[blob] = store

    def made(self, blob: str, store: BlobStore) -> None:
        """This mount stored ``blob``: offered again at :meth:`close` (a file removed
        or renamed over since is then reclaimed)."""
        if len(self._made) < MADE_MAX:
            self._made[blob] = store

    def run(self) -> None:
        """Reclaim what was offered and nothing reaches; never raises (a failure is
        logged, and the blobs are tried again next time)."""
        if not self._pending:
            return
        keep = self._held()
        by_store: dict[int, tuple[BlobStore, list[str]]] = {}
        for blob, store in self._pending.items():
            by_store.setdefault(id(store), (store, []))[1].append(blob)
        for key, (store, blobs) in by_store.items():
            try:
                if key not in self._recovered:  # once: what dead reclaimers set aside
                    store.clear_staging()
                    self._recovered.add(key)
                done = reclaim(self.db, store, blobs, keep)
            except Exception:
                log.exception("reclaiming %d superseded blobs failed; will retry", len(blobs))
                continue
            self.reclaimed += len(done)
            for blob in blobs:
                if blob not in keep:
                    self._pending.pop(blob, None)

    def close(self) -> None:
        """A last :meth:`run`, over every blob this mount made too (the mount's
        handles are gone)."""
        self._pending.update(self._made)
        self._made.clear()
        self.run()
        self._pending.clear()
