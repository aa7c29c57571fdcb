"""A bounded pool of fire-and-forget jobs that warm caches (:meth:`FileReads.warm`).

A warming job only moves bytes closer (an S3 block into the block cache, a local file
into the page cache); the read that follows verifies what it serves, so a job's errors
are dropped here and reported by that read. At most :data:`WARM_PENDING` jobs wait or
run at once: more are refused (the caller learns it, :meth:`WarmPool.submit` returns
False) rather than queued without bound. The threads start on first use (after a
daemon forked its workers) and stop at :meth:`WarmPool.close`, dropping what is queued.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)

WARM_THREADS = 8
"""Threads running warming jobs (each mostly waits on the disk or the network)."""

WARM_PENDING = 128
"""Jobs waiting or running at most."""


class WarmPool:
    """Runs warming jobs, one per key at a time; see the module docstring."""

    def __init__(self, threads: int = WARM_THREADS, pending: int = WARM_PENDING) -> None:
        self._threads = threads
        self._limit = pending
        self._pool: ThreadPoolExecutor | None = None
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, key: str, job: Callable[[], None]) -> bool:
        """Run ``job`` soon in a pool thread; never blocks. True when it is queued (or
        a job of the same key already is), False when the pool is full or closed."""
        with self._lock:
            if self._closed:
                return False
            if key in self._pending:
                return True
            if len(self._pending) >= self._limit:
                return False
            self._pending.add(key)
            pool = self._pool
            if pool is None:
                pool = self._pool = ThreadPoolExecutor(self._threads, "dlfs-warm")
        try:
            pool.submit(self._run, key, job)
        except RuntimeError:  # closed meanwhile
            with self._lock:
                self._pending.discard(key)
            return False
        return True

    def pending(self) -> int:
        """How many jobs wait or run."""
        with self._lock:
            return len(self._pending)

    def _run(self, key: str, job: Callable[[], None]) -> None:
        try:
            if not self._closed:  # closing: what has not started does not start
                job()
        except Exception as exc:  # a hint: the read that follows reports real errors
            log.debug("warming %s failed: %r", key, exc)
        finally:
            with self._lock:
                self._pending.discard(key)

    def close(self) -> None:
        """Stop: queued jobs are dropped, running ones finish (each is one bounded
        fetch or one ``posix_fadvise``)."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def advise_willneed(path: str, size: int) -> None:
    """Ask the kernel to read a local file into the page cache, in the background
    (``POSIX_FADV_WILLNEED``): the reads that follow find its pages in memory."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.posix_fadvise(fd, 0, size, os.POSIX_FADV_WILLNEED)
    finally:
        os.close(fd)
