"""Taking turns at reading ``/dev/fuse`` when several processes serve one mount.

pyfuse3 waits with trio until the device is readable, then reads the request with a
*blocking* ``read`` while holding the GIL. With several processes on one device,
every request wakes all of them (the device's poll wakes every waiter) and all but
one then block in that ``read``, GIL held, until another request comes: their other
threads (reads in flight, whose replies are due) cannot run meanwhile, and when no
other request comes (the reader waits for one of those replies) the mount hangs.

So a process waits for and reads a request only while it holds the one *turn*: a
byte in a pipe made before the fork and shared by all workers. It takes the byte
(a non-blocking read, waiting for the pipe with trio), waits for the device as
pyfuse3 does, reads one request, and puts the byte back as soon as that request's
handler starts (:meth:`Turns.give_back`, called first by every handler of
:class:`daemon.ops.SharedOperations`); for a request that reaches no handler,
when the next of its tasks gets to wait. The read that follows a readable device
can then never block, and the turn is held only between a request's arrival and the
start of its handler.

This replaces ``pyfuse3._wait_fuse_readable`` (pyfuse3's session loop looks it up
by name on each request), wrapping pyfuse3's own, which keeps its checks for a
session that ended.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any, cast

import pyfuse3
import trio


class Turns:
    """The turn to read the next request, shared by the processes of one mount."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        os.write(self._w, b"t")
        self._held = False
        self._stopping = False
        self._lock: trio.Lock | None = None
        self._wait_readable: Callable[[], Awaitable[bool]] | None = None

    def install(self) -> None:
        """Make pyfuse3 take turns (before ``pyfuse3.main``; forks inherit it)."""
        module = cast(Any, pyfuse3)
        if self._wait_readable is None:
            self._wait_readable = module._wait_fuse_readable
        module._wait_fuse_readable = self._wait

    def forked(self) -> None:
        """Start afresh in a child: the turn the parent held (it read ``INIT``) is
        the parent's to give back."""
        self._held = False
        self._stopping = False
        self._lock = None

    def give_back(self) -> None:
        """Let another process read the next request (if this one holds the turn)."""
        if self._held:
            self._held = False
            os.write(self._w, b"t")

    def stop(self) -> None:
        """End this process's serving (``pyfuse3.terminate``), waking its tasks that
        wait for a turn. Called in the process's trio run."""
        self._stopping = True
        pyfuse3.terminate()
        trio.lowlevel.notify_closing(self._r)

    async def _take(self) -> None:
        while True:
            try:
                if os.read(self._r, 1):
                    self._held = True
                    return
            except BlockingIOError:
                pass
            await trio.lowlevel.wait_readable(self._r)

    async def _wait(self) -> bool:
        """pyfuse3's wait for a readable device, within a turn; False when the
        session ended (the turn is given back then)."""
        if self._lock is None:
            self._lock = trio.Lock()
        assert self._wait_readable is not None
        async with self._lock:  # one task of this process competes for the turn
            # Held here, the turn is left over from a request that reached no
            # handler (outside the lock, it may be another task's, waiting for the
            # device with it).
            self.give_back()
            if self._stopping:
                return False
            try:
                await self._take()
                ready = await self._wait_readable()
            except trio.ClosedResourceError:
                ready = False
            except BaseException:
                self.give_back()
                raise
            if not ready:
                self.give_back()
            return ready
