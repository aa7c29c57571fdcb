"""The threads that fetch blocks in the background for a
:class:`dlfs.stores.cache.CachedReader` whose source has no event loop of its own (a
linked bucket, S3 through boto3 with ``DLFS_S3_FAST_GET=0``)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

log = logging.getLogger(__name__)


class FetchPool:
    """A few daemon threads running block fetches, started on first use.

    Daemon threads, unlike ``ThreadPoolExecutor``'s, never hold up the exit of the
    process for read-ahead nobody waits for; :meth:`shutdown` cancels what is queued.
    """

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self._queue: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` in a pool thread (RuntimeError once shut down)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the fetch pool is shut down")
            if len(self._threads) < self.workers:
                t = threading.Thread(target=self._work, name="dlfs-fetch", daemon=True)
                self._threads.append(t)
                t.start()
        self._queue.put((fn, args))

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            fn, args = job
            try:
                fn(*args)
            except BaseException:  # the job reports through its future; keep the thread
                log.debug("fetch job failed", exc_info=True)

    def shutdown(self) -> None:
        """Stop the threads; queued jobs are dropped (their futures cancelled)."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                fut = job[1][0] if job[1] else None
                if isinstance(fut, Future):
                    fut.cancel()
        for _ in threads:
            self._queue.put(None)
