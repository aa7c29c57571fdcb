"""Files open for writing in a draft mount: their bytes until they are committed.

Opening a file for writing gives it an :class:`OpenFile`, shared by every handle on it.
Its bytes go to a staging file (:mod:`dlfs.staging`), copied from the current blob on
the first write unless it was truncated; readers of a file open for writing read the
staged bytes.

:meth:`OpenFiles.store` turns the staged bytes into a blob (hashed
incrementally while written in order); recording that blob in the catalog is the draft
view's part (:meth:`dlfs.draftview.DraftView` commits on ``flush``, ``fsync`` and the
last ``release``).

**Appending without a copy.** A first write at the end of a file (``>>``) whose blob
this mount made, whose running hash it kept, and which nothing else names (one file
entry, the file's own, in the draft's mutable tree; no other handle of the mount) takes
the blob's file back as the working file instead of copying it
(:meth:`dlfs.stores.base.BlobStore.take_back`: a rename, under the catalog's write
lock, so no import can dedup against it meanwhile), and the hash goes on from the
kept state: the ``n``-th append of a large file costs its own bytes, not the file's.
The blob's bytes stay the working file's first bytes until it is stored again: a
write before them, a truncation below them, or a close without a commit first puts
the blob back (a copy, as without take-back), and a mount that dies is followed by
one that puts it back (:func:`dlfs.staging.clear_abandoned`). While taken back, the
blob is this mount's alone: other processes reading that draft file meanwhile get
:class:`~dlfs.errors.BlobMissing` (``EIO``) until the close.

The first writer of a mount takes the draft's writers lock and the last one lets it go
(:class:`dlfs.draftlock.MountLock`): a publish never runs while files are open for
writing here.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from dlfs.catalog import CatalogDB
from dlfs.draftlock import MountLock
from dlfs.errors import Corrupt
from dlfs.home import Home
from dlfs.items import ItemRecord
from dlfs.objects import is_mutable
from dlfs.places import Place, PlaceIndex
from dlfs.reads import FileReads
from dlfs.reclaim import Reclaimer
from dlfs.staging import StagedFile, StagingArea, store_blob
from dlfs.stores.base import BlobStore
from dlfs.stores.manifest import BlockHasher

log = logging.getLogger(__name__)

TAKE_BACK_MIN = 1 << 20
"""Smaller files are copied on their first write (cheaper than the catalog checks)."""
KEPT_HASHES = 64
"""Running hashes kept of the last blobs stored (to go on appending to them)."""


@dataclass(eq=False)
class OpenFile:
    """A file open for writing (and its readers): its content, staged or committed."""

    place: Place
    blob: str
    """The blob of the committed (or original) content; ``""`` when there is none."""
    size: int
    mtime_ns: int
    committed: bool
    """True when the catalog has an entry for this file."""
    staged: StagedFile | None = None
    """The working copy, once written or truncated (None: the content is ``blob``)."""
    dirty: bool = False
    """Changed since the last commit."""
    writers: int = 0
    handles: set[int] = field(default_factory=set)
    inherit: ItemRecord | None = None
    """The item of a file this one replaced by a rename (its lineage is taken)."""
    taken: tuple[str, int, BlobStore] | None = None
    """``(blob, size, store)`` when ``staged`` is that blob's file taken back: its
    first ``size`` bytes must not change (see the module docstring)."""
    posix: str = ""
    """The POSIX attributes a created file starts with (its mode at ``create``)."""


class OpenFiles:
    """The open files of one draft mount, by place, and its handles.

    ``check`` is called when the first writer arrives (after the writers lock is
    taken): it raises when the draft may no longer be written.
    """

    def __init__(self, home: Home, lock: MountLock, check: Callable[[str], None]) -> None:
        self.home = home
        self._lock = lock
        self._check = check
        self.by_place: dict[Place, OpenFile] = {}
        self.handles: dict[int, tuple[OpenFile | None, bool]] = {}
        """Handle -> (the open file, or None for a plain reader; opened for writing)."""
        self._writers = 0
        self._staging: StagingArea | None = None
        self.reclaimer: Reclaimer | None = None
        """Told of the blobs :meth:`store` makes and supersedes (see dlfs.reclaim)."""
        self._db: CatalogDB | None = None
        self._places: PlaceIndex | None = None
        self._reads: FileReads | None = None
        self._hashes: OrderedDict[str, BlockHasher] = OrderedDict()

    def bind(self, db: CatalogDB, places: PlaceIndex, reads: FileReads) -> Reclaimer:
        """Reclaim what this mount supersedes, and take blobs back to append to them
        (the draft view's catalog, places and reads); return the reclaimer."""
        self._db, self._places, self._reads = db, places, reads
        self.reclaimer = Reclaimer(db, lambda: self.held(reads))
        return self.reclaimer

    def get(self, place: Place | None) -> OpenFile | None:
        """The open file at ``place``, if any."""
        return None if place is None else self.by_place.get(place)

    def held(self, reads: FileReads) -> set[str]:
        """The blobs this mount's handles may still read: those of open files, and
        those of plain readers (a reader keeps the bytes it opened once the file is
        rewritten, as on a local file system)."""
        blobs = {f.blob for f in self.by_place.values()}
        blobs.update(reads.node(fh).blob for fh, (f, _w) in self.handles.items() if f is None)
        return blobs

    def pending_children(self, folder: Place) -> list[OpenFile]:
        """Files created in ``folder`` that were never committed (not in the catalog)."""
        return [f for p, f in self.by_place.items() if p.parent is folder and not f.committed]

    # -- writers ----------------------------------------------------------------------

    def begin_writing(self, what: str) -> None:
        """One more writer: the first one takes the writers lock (see draftlock)."""
        if self._writers == 0:
            self._lock.start_writing()
            try:
                self._check(what)  # a publish may have ended while we waited
            except BaseException:
                self._lock.stop_writing()
                raise
        self._writers += 1

    def end_writing(self) -> None:
        """One writer fewer: the last one lets the writers lock go."""
        self._writers -= 1
        if self._writers == 0:
            self._lock.stop_writing()

    # -- handles ----------------------------------------------------------------------

    def open(
        self,
        place: Place,
        current: tuple[str, int, int],
        writable: bool,
        truncate: bool,
        store: BlobStore,
    ) -> OpenFile | None:
        """The open file a new handle on ``place`` uses: for writing, the file's (made
        from its ``current`` ``(blob, size, mtime_ns)`` if it has none; the writers
        lock taken, and cut to nothing with ``truncate``); for reading, the file's if
        it is being written, else None."""
        f = self.by_place.get(place)
        if not writable:
            return f
        self.begin_writing("open for writing")
        made = None
        try:
            if f is None:
                f = made = self.by_place[place] = OpenFile(place, *current, True)
            if truncate:
                self.truncate(f, 0, store)
        except BaseException:
            if made is not None:
                self.close_file(made)
            self.end_writing()
            raise
        return f

    def create(self, place: Place) -> OpenFile:
        """A new file at ``place``, open for writing, not in the catalog yet."""
        self.begin_writing("create a file")
        try:
            staged = self.new_staged()
        except BaseException:
            self.end_writing()
            raise
        f = OpenFile(place, "", 0, time.time_ns(), False, staged=staged, dirty=True)
        self.by_place[place] = f
        return f

    def attach(self, fh: int, f: OpenFile | None, writable: bool) -> None:
        """Handle ``fh`` uses ``f`` (None: a plain reader of committed bytes)."""
        self.handles[fh] = (f, writable)
        if f is not None:
            f.handles.add(fh)
            if writable:
                f.writers += 1

    def release(self, fh: int, commit: Callable[[OpenFile], None]) -> None:
        """The last close of a handle: the last writer commits what is left (writes
        through a shared mapping may come after ``flush``), then the handle goes.
        Never raises: a failed commit is logged."""
        f, writable = self.handles.pop(fh, (None, False))
        if f is None:
            return
        f.handles.discard(fh)
        try:
            if writable and f.dirty and f.writers == 1:
                commit(f)
        except Exception:
            log.exception("committing %r on release failed: its last changes are lost", f.place)
        finally:
            if writable:
                f.writers -= 1
                self.end_writing()
            if not f.handles:
                self.close_file(f)

    def truncate_at(
        self,
        place: Place,
        current: Callable[[], tuple[str, int, int]],
        size: int,
        store: BlobStore,
        commit: Callable[[OpenFile], None],
    ) -> None:
        """``truncate(2)``: cut or extend the file at ``place`` to ``size``; a file
        nobody has open for writing is committed at once (no close will come)."""
        self.begin_writing("truncate a file")
        try:
            f = self.by_place.get(place)
            transient = f is None
            if f is None:
                f = self.by_place[place] = OpenFile(place, *current(), True)
            try:
                self.truncate(f, size, store)
                if f.writers == 0:
                    commit(f)
            finally:
                if transient:
                    self.close_file(f)
        finally:
            self.end_writing()

    # -- bytes ------------------------------------------------------------------------

    def new_staged(self) -> StagedFile:
        """An empty staging file in this mount's staging folder."""
        if self._staging is None:
            self._staging = StagingArea(self.home.blobs)
        return self._staging.new_file()

    def write(self, f: OpenFile, offset: int, data: bytes, store: BlobStore) -> int:
        """Write to the staging file (made on the first write, from the current bytes)."""
        if f.staged is None:
            self._unseal(f, store, offset)
        elif f.taken is not None and offset < f.taken[1]:
            self._put_back(f)
        assert f.staged is not None
        written = f.staged.write(offset, data)
        f.size = f.staged.size
        f.dirty = True
        f.mtime_ns = time.time_ns()
        return written

    def truncate(self, f: OpenFile, size: int, store: BlobStore) -> None:
        """Cut or extend the file to ``size`` bytes."""
        if f.staged is None:
            if size == 0:
                f.staged = self.new_staged()
            else:
                self._unseal(f, store)
        elif f.taken is not None and size < f.taken[1]:
            self._put_back(f)
        assert f.staged is not None
        f.staged.truncate(size)
        f.size = size
        f.dirty = True
        f.mtime_ns = time.time_ns()

    def _unseal(self, f: OpenFile, store: BlobStore, at: int = -1) -> None:
        """Give ``f`` a staging file holding its current content (its blob taken
        back when the first write, at ``at``, appends; see the module docstring)."""
        if at == f.size and self._take_back(f, store):
            return
        staged = self.new_staged()
        try:
            if f.size:  # iter_bytes checks the bytes against their hash
                staged.fill(store.iter_bytes(f.blob))
                if staged.size != f.size:
                    raise Corrupt(f"blob {f.blob} is not {f.size} bytes long: not copied")
        except BaseException:
            staged.discard()
            raise
        f.staged = staged

    def _take_back(self, f: OpenFile, store: BlobStore) -> bool:
        """Make ``f``'s blob its working file, if nothing else may reach it."""
        hasher = self._hashes.get(f.blob)
        places, db, reads = self._places, self._db, self._reads
        if hasher is None or places is None or db is None or reads is None:
            return False
        if f.size < TAKE_BACK_MIN or not f.committed or f.place.parent is None:
            return False
        others = {o.blob for o in self.by_place.values() if o is not f}
        others.update(reads.node(fh).blob for fh, (o, _w) in self.handles.items() if o is None)
        if f.blob in others:
            return False
        self.new_staged().discard()  # the staging folder exists
        assert self._staging is not None
        with db.transaction():  # no import dedups, no reclaim runs, meanwhile
            tree = places.dir_tree(f.place.parent)
            if not is_mutable(tree) or db.blob_entries(f.blob) != [(tree, f.place.name)]:
                return False
            path = store.take_back(f.blob, f.size, self._staging.dir)
        if path is None:
            return False
        f.staged = StagedFile(path, resume=hasher.copy())
        f.taken = (f.blob, f.size, store)
        return True

    def _put_back(self, f: OpenFile) -> None:
        """Give a taken-back blob back to its store; ``f`` goes on with a copy."""
        assert f.staged is not None and f.taken is not None
        copy = self.new_staged()
        try:
            chunk = 4 << 20
            for offset in range(0, f.staged.size, chunk):
                copy.write(offset, f.staged.read(offset, chunk))
        except BaseException:
            copy.discard()
            raise
        self._release_taken(f)
        f.staged = copy

    def _keep_taken(self, f: OpenFile) -> None:
        """Store the taken-back blob again from the working file's first bytes (a
        copy, checked against its id), so that the file may become a new blob."""
        assert f.staged is not None and f.taken is not None
        blob, size, store = f.taken
        copy = self.new_staged()
        try:
            chunk = 4 << 20
            for offset in range(0, size, chunk):
                copy.write(offset, f.staged.read(offset, min(chunk, size - offset)))
            if copy.size != size or copy.digest() != blob:
                raise Corrupt(f"blob {blob} changed while taken back: not stored")
            if not store_blob(store, copy)[1]:
                copy.discard()
        except BaseException:
            copy.discard()
            raise
        f.taken = None

    def _release_taken(self, f: OpenFile) -> None:
        """Put the taken-back blob of ``f`` back (its working file is dropped)."""
        assert f.staged is not None and f.taken is not None
        f.staged.close()
        f.taken[2].put_back_taken(f.staged.path)
        f.staged, f.taken = None, None

    def content(self, f: OpenFile) -> tuple[str, int]:
        """``(blob id, size)`` of what :meth:`store` will store."""
        if f.staged is None:
            return f.blob, f.size
        return f.staged.digest(), f.staged.size

    def store(self, f: OpenFile, store: BlobStore, durable: bool) -> None:
        """Make the staged bytes of ``f`` a blob of ``store`` (``f.blob``, ``f.size``)."""
        if f.staged is None:
            return
        if f.taken is not None and self._db is not None and self._db.blob_entries(f.taken[0], 1):
            self._keep_taken(f)  # named elsewhere since it was taken (a pointer copy)
        old, staged = f.blob, f.staged
        blob, moved = store_blob(store, staged, durable)
        f.blob, f.size = blob, staged.size
        if moved:
            f.staged = f.taken = None
            running = staged.running_hash()
            if running is not None and self._db is not None:
                self._hashes[blob] = running
                while len(self._hashes) > KEPT_HASHES:
                    self._hashes.popitem(last=False)
        if self.reclaimer is not None:
            if moved:
                self.reclaimer.made(blob, store)
            if old != blob:
                self.reclaimer.offer(old, store)

    # -- the end ----------------------------------------------------------------------

    def close_file(self, f: OpenFile) -> None:
        """Forget an open file; its staged bytes (never committed) go, and a blob it
        took back returns to its store."""
        if f.taken is not None:
            self._release_taken(f)
        if f.staged is not None:
            f.staged.discard()
            f.staged = None
        if self.by_place.get(f.place) is f:
            del self.by_place[f.place]

    def close(self) -> list[OpenFile]:
        """Drop every open file and the staging folder; return the files that had
        changes never committed (they are lost, as after a crash)."""
        lost = [f for f in self.by_place.values() if f.dirty and f.place.parent is not None]
        for f in list(self.by_place.values()):
            self.close_file(f)
        if self._staging is not None:
            self._staging.close()
        return lost
