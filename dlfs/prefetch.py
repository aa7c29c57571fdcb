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
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)

THREADS = 4
"""Background threads warming files (each mostly waits on the disk or the network)."""

WINDOW = 64
"""Lookups per decision on whether lookups are followed by reads."""

MAX_PENDING = 32
"""Warming jobs queued or running at most; more are dropped (they are only hints)."""


class Prefetcher:
    """Runs ``warm`` jobs for files about to be read; see the module docstring.

    ``looked_up`` and ``opened`` are called from the daemon's event loop and never
    block; the jobs run in up to :data:`THREADS` threads. A key (the blob id) is
    warmed once at a time.
    """

    def __init__(self, threads: int = THREADS) -> None:
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._lookups = 0
        self._opens = 0
        self.on_lookup = True
        """Whether lookups are currently followed by reads (so warming them pays)."""

    def looked_up(self, key: str, warm: Callable[[], None]) -> None:
        """A file was looked up: warm it if lookups have lately led to reads."""
        self._lookups += 1
        if self._lookups >= WINDOW:
            self.on_lookup = self._opens * 2 >= self._lookups
            self._lookups = self._opens = 0
        if self.on_lookup:
            self._submit(key, warm)

    def opened(self, key: str, warm: Callable[[], None]) -> None:
        """A file was opened for reading: warm it (a no-op if it is being warmed)."""
        self._opens += 1
        self._submit(key, warm)

    def _submit(self, key: str, warm: Callable[[], None]) -> None:
        with self._lock:
            if key in self._pending or len(self._pending) >= MAX_PENDING:
                return
            self._pending.add(key)
            pool = self._pool
            if pool is None:
                pool = self._pool = ThreadPoolExecutor(self._threads, "dlfs-prefetch")
        try:
            pool.submit(self._run, key, warm)
        except RuntimeError:  # shut down
            with self._lock:
                self._pending.discard(key)

    def _run(self, key: str, warm: Callable[[], None]) -> None:
        try:
            warm()
        except Exception as exc:  # a hint: the read that follows reports real errors
            log.debug("warming %s failed: %r", key, exc)
        finally:
            with self._lock:
                self._pending.discard(key)

    def close(self) -> None:
        """Stop: queued jobs are dropped, running ones finish."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
