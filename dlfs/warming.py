"""Warming a file's bytes before the kernel asks for them.

A training loader opens files by path: for each one the kernel sends ``lookup``,
``open``, then the first ``read``, one round trip after the other, and only the read
says which bytes are needed. When a cold file costs a disk read (or an S3 GET), a
:class:`Prefetcher` starts that work in a background thread as soon as the ``lookup``
(or the ``open``) arrives, so it overlaps the round trips that follow, and several
readers keep several fetches in flight.

A lookup is not always followed by a read: ``find``, ``du`` and ``stat`` of a list of
paths look files up without opening them. The prefetcher counts, in windows of
:data:`WINDOW` lookups, how many files were opened; below half as many opens as
lookups it stops warming on lookups until reading picks up again (an ``open`` always
warms: opening is what readers do). Warming is a hint: its errors are dropped (the
read that follows reports them), and at most :data:`MAX_PENDING` jobs wait at once.

Opening in folder order (:class:`FolderAhead`): ``cp -r``, ``tar``, ``rsync`` and a
loader walking a class folder open the files of a folder one after the other in
listing order. After :data:`STREAK` opens in a row that each name one of the next
:data:`NEAR` files of the folder (several readers' opens interleave), the files after
the furthest one opened are warmed in one background job, a window of
:data:`AHEAD_MIN` files that doubles to :data:`AHEAD_MAX` while the reader keeps
landing inside it, and is dropped as soon as it opens a file outside it (a shuffled
epoch never sets it off for long). When the window reaches the end of the folder, the
rest of it (at least :data:`AHEAD_MIN` files) goes on with the first files of the next
folder of its parent's listing, which starts out followed with the same window: a walk
goes on there, and at a bucket's latency each new folder would otherwise cost the
readers a round trip before its order shows. Only ``open`` moves it: ``ls -l``,
``find`` and ``stat`` look files up and never open them, so they fetch nothing.
"""

from __future__ import annotations

import bisect
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from dlfs.warmpool import WarmPool

log = logging.getLogger(__name__)

THREADS = 4
"""Background threads warming files (each mostly waits on the disk or the network)."""

WINDOW = 64
"""Lookups per decision on whether lookups are followed by reads."""

MAX_PENDING = 32
"""Warming jobs queued or running at most; more are dropped (they are only hints)."""

STREAK = 3
"""Opens in a row, each of a later file of the same folder, before files ahead are warmed."""

NEAR = 8
"""An open of one of this many files after the last one opened counts as in order
(several readers of a folder open its files a little out of order)."""

AHEAD_MIN = 16
"""Files warmed ahead of a reader that just showed it reads a folder in order."""

AHEAD_MAX = 128
"""Files warmed ahead at most (the window doubles up to this)."""

FOLDERS = 256
"""Folders whose reading order is followed at once (the least recent is dropped)."""


class Prefetcher:
    """Runs ``warm`` jobs for files about to be read; see the module docstring.

    ``looked_up`` and ``opened`` are called from the daemon's event loop and never
    block; the jobs run in up to :data:`THREADS` threads. A key (the blob id) is
    warmed once at a time.
    """

    def __init__(self, threads: int = THREADS) -> None:
        self._jobs = WarmPool(threads, MAX_PENDING)
        self._lookups = 0
        self._opens = 0
        self.on_lookup = True
        """Whether lookups are currently followed by reads (so warming them pays)."""

    def looked_up(
        self, key: str, warm: Callable[[], None], now: Callable[[], bool] | None = None
    ) -> None:
        """A file was looked up: warm it if lookups have lately led to reads.
        ``now()``, when given, tries to start the warming here without waiting (True:
        started, no job needed)."""
        self._lookups += 1
        if self._lookups >= WINDOW:
            self.on_lookup = self._opens * 2 >= self._lookups
            self._lookups = self._opens = 0
        if self.on_lookup:
            self._submit(key, warm, now)

    def opened(
        self, key: str, warm: Callable[[], None], now: Callable[[], bool] | None = None
    ) -> None:
        """A file was opened for reading: warm it (a no-op if it is being warmed)."""
        self._opens += 1
        self._submit(key, warm, now)

    def submit(self, key: str, warm: Callable[[], None]) -> None:
        """Run a warming job (dropped when one for ``key`` is pending, or too many are)."""
        self._submit(key, warm)

    def _submit(
        self, key: str, warm: Callable[[], None], now: Callable[[], bool] | None = None
    ) -> None:
        if now is not None:
            try:
                if now():
                    return  # started here: a thread hop saved
            except Exception as exc:  # a hint: the read that follows reports real errors
                log.debug("warming %s failed: %r", key, exc)
                return
        self._jobs.submit(key, warm)

    def pending(self) -> int:
        """How many warming jobs wait or run."""
        return self._jobs.pending()

    def close(self) -> None:
        """Stop: queued jobs are dropped, running ones finish."""
        self._jobs.close()


@dataclass
class _Order:
    """How one folder is being read: the last file opened, the opens in a row in
    listing order, and how far ahead files were warmed."""

    last: str
    """The furthest name opened in this run."""
    start: str = ""
    """The first name of this run (each later one was among the ``nexts`` of another)."""
    streak: int = 0
    window: int = 0
    nexts: tuple[str, ...] = ()
    """The names just after ``last`` in the listing, when they were looked at."""
    upto: str = ""
    """The last name warmed ("" for none)."""
    pending: list[str] = field(default_factory=list)
    """The names warmed after ``last``, in order."""
    ended: bool = False
    """The window reached the folder's end (the next folder was warmed)."""


class FolderAhead:
    """Warms the next files of a folder while a reader opens them in listing order
    (see the module docstring). Called from the daemon's event loop; the warming runs
    in the :class:`Prefetcher`'s threads.

    ``following(folder, name, n)`` returns up to ``n`` ``(name, item)`` pairs that
    come after ``name`` in the folder's listing (``name`` "": from its start);
    ``warm(items)`` returns a job that starts fetching those items (None for nothing
    to do); ``next_folder(folder)`` names the folder after
    ``folder`` in its parent's listing, or None.
    """

    def __init__(
        self,
        prefetcher: Prefetcher,
        following: Callable[[object, str, int], Sequence[tuple[str, object]]],
        warm: Callable[[list[object]], Callable[[], None] | None],
        next_folder: Callable[[object], object | None] | None = None,
    ) -> None:
        self._prefetcher = prefetcher
        self._following = following
        self._warm = warm
        self._next_folder = next_folder
        self._folders: OrderedDict[object, _Order] = OrderedDict()
        self.warmed = 0
        """Files handed to warming jobs so far (read by tests)."""

    def opened(self, folder: object, name: str) -> None:
        """A file ``name`` of ``folder`` was opened: follow the order, warm ahead."""
        st = self._folders.get(folder)
        if st is None:
            self._folders[folder] = _Order(name, start=name)
            while len(self._folders) > FOLDERS:
                self._folders.popitem(last=False)
            return
        self._folders.move_to_end(folder)
        if st.streak and st.start <= name < st.last:
            return  # several readers of one folder: their opens come a little out of order
        inside = st.last < name <= st.upto
        if name in st.nexts or inside:
            st.streak += 1
        elif not st.nexts and st.last < name and st.streak == 0:
            st.streak = 1  # forward: worth learning what comes next
            st.start = name
        else:
            st.streak, st.window, st.upto, st.pending = 0, 0, "", []
            st.start = name
        st.last, st.nexts = name, ()
        if st.streak < STREAK:
            if st.streak:
                st.nexts = tuple(n for n, _i in self._following(folder, name, NEAR))
            return
        del st.pending[: bisect.bisect_right(st.pending, name)]
        if st.window == 0:
            st.window = AHEAD_MIN
        elif len(st.pending) * 2 > st.window:
            return  # enough is on its way
        else:
            st.window = min(AHEAD_MAX, st.window * 2)
        self._ahead(folder, st, name)

    def _ahead(self, folder: object, st: _Order, name: str) -> None:
        """Warm files after the last one warmed, until ``st.window`` are ahead."""
        start = st.upto if st.upto > name else name
        want = st.window - len(st.pending)
        items = list(self._following(folder, start, want))
        if items:
            st.upto = items[-1][0]
            st.pending.extend(n for n, _i in items)
        if len(items) < want and not st.ended:
            st.ended = True
            items += self._enter_next(folder, st.window, want - len(items))
        if not items:
            return
        job = self._warm([i for _n, i in items])
        if job is not None:
            self.warmed += len(items)
            self._prefetcher.submit(f"ahead:{id(folder)}:{start}", job)

    def _enter_next(self, folder: object, window: int, room: int) -> list[tuple[str, object]]:
        """The first files of the folder after ``folder`` (what is left of the window,
        ``room``, at least :data:`AHEAD_MIN`), which is then followed as read in order
        with the same ``window`` (unless it is followed already)."""
        nxt = self._next_folder(folder) if self._next_folder is not None else None
        if nxt is None or nxt in self._folders:
            return []
        items = list(self._following(nxt, "", min(AHEAD_MAX, max(AHEAD_MIN, room))))
        if items:
            names = [n for n, _i in items]
            self._folders[nxt] = _Order(
                "", streak=STREAK, window=max(AHEAD_MIN, window), upto=names[-1], pending=names
            )
            while len(self._folders) > FOLDERS:
                self._folders.popitem(last=False)
        return items

    def forget(self) -> None:
        """Drop what is known of every folder."""
        self._folders.clear()
