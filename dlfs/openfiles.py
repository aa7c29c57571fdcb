"""Files open for writing in a draft mount: their bytes until they are committed.

Opening a file for writing gives it an :class:`OpenFile`, shared by every handle on it.
Its bytes go to a staging file (:mod:`dlfs.staging`), copied from the current blob on
the first write unless it was truncated; readers of a file open for writing read the
staged bytes. :meth:`OpenFiles.store` turns the staged bytes into a blob (hashed
incrementally while written in order); recording that blob in the catalog is the draft
view's part (:meth:`dlfs.draftview.DraftView` commits on ``flush``, ``fsync`` and the
last ``release``).

The first writer of a mount takes the draft's writers lock and the last one lets it go
(:class:`dlfs.draftlock.MountLock`): a publish never runs while files are open for
writing here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dlfs.draftlock import MountLock
from dlfs.errors import Corrupt
from dlfs.home import Home
from dlfs.items import ItemRecord
from dlfs.places import Place
from dlfs.staging import StagedFile, StagingArea, store_blob
from dlfs.stores.base import BlobStore

log = logging.getLogger(__name__)


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

    def get(self, place: Place | None) -> OpenFile | None:
        """The open file at ``place``, if any."""
        return None if place is None else self.by_place.get(place)

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
            self._unseal(f, store)
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
        assert f.staged is not None
        f.staged.truncate(size)
        f.size = size
        f.dirty = True
        f.mtime_ns = time.time_ns()

    def _unseal(self, f: OpenFile, store: BlobStore) -> None:
        """Give ``f`` a staging file holding its current content."""
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

    def store(self, f: OpenFile, store: BlobStore, durable: bool) -> None:
        """Make the staged bytes of ``f`` a blob of ``store`` (``f.blob``, ``f.size``)."""
        if f.staged is None:
            return
        blob, moved = store_blob(store, f.staged, durable)
        f.blob, f.size = blob, f.staged.size
        if moved:
            f.staged = None

    # -- the end ----------------------------------------------------------------------

    def close_file(self, f: OpenFile) -> None:
        """Forget an open file; its staged bytes (never committed) go."""
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
