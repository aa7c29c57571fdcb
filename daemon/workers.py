"""Several processes serving one mount (``--workers N``, read-only views only).

libfuse marks a session initialised before it calls the filesystem's ``init``, so a
process that forks inside :meth:`SharedOperations.init` gives each child a ready
session on the same ``/dev/fuse`` descriptor; the kernel then hands each request to
whichever process reads first. The daemon (worker 0) forks the others there, once;
each child:

- leaves the forked copy of the parent's stack blocked for good (the parent sends
  the ``INIT`` reply), ignores SIGINT and SIGHUP (the daemon stops everyone), dies
  with the daemon (``PR_SET_PDEATHSIG``);
- opens its own view in a fresh thread (its own catalog connection: sqlite
  connections must not cross a fork; its own stores, caches and threads) and runs
  ``trio.run(pyfuse3.main)`` there; says so on a pipe; exits when the mount is gone.

The daemon answers ``ok`` to ``dlfs mount`` only once every worker said it serves
(:meth:`Workers.wait_ready`), reaps workers on SIGCHLD (:meth:`Workers.reap`: a worker
that died unmounts the whole mount with one log line, since a request it held would
otherwise never be answered) and ends them all when it unmounts (:meth:`Workers.stop`).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pyfuse3
import trio

from dlfs.draftview import DraftView
from dlfs.inodenumbers import InodeLog
from dlfs.view import View

from .turns import Turns

if TYPE_CHECKING:
    from .ops import SharedOperations

log = logging.getLogger("dlfsd")

PR_SET_PDEATHSIG = 1


class Workers:
    """The processes serving one mount: this daemon (worker 0) and ``count - 1``
    children forked in ``init``."""

    def __init__(
        self,
        count: int,
        reopen: Callable[[], View | DraftView],
        warmup: Callable[[View | DraftView], None],
        close_in_child: Callable[[], None],
    ) -> None:
        self.count = count
        self.reopen = reopen
        """Opens a worker's own view (in the worker, after the fork)."""
        self.warmup = warmup
        self.close_in_child = close_in_child
        """Closes what only the daemon may hold (its report pipe)."""
        self.logs = [InodeLog() for _ in range(count)]
        self.turns = Turns()
        """Whose turn it is to read the next request (see :mod:`dlfsd.turns`)."""
        self.pids: list[int] = []
        self.forked = False
        self.stopping = False
        self._ready_r, self._ready_w = os.pipe()

    # -- in the daemon ------------------------------------------------------------------

    def fork(self, ops: SharedOperations) -> None:
        """Fork the other workers (once; from ``init``, on the daemon's event loop)."""
        if self.forked:
            return
        self.forked = True
        for worker in range(1, self.count):
            pid = os.fork()
            if pid == 0:
                self._child(ops, worker)  # never returns
            self.pids.append(pid)
        os.close(self._ready_w)

    def wait_ready(self) -> str | None:
        """Block until every worker serves; None, or why one could not start."""
        expected = len(self.pids)
        got = 0
        while got < expected:
            data = os.read(self._ready_r, expected - got)
            if not data:
                os.close(self._ready_r)
                return f"{expected - got} of {expected} worker processes failed to start"
            got += len(data)
        os.close(self._ready_r)
        return None

    def reap(self) -> str | None:
        """Collect workers that exited; a line saying which one died, if one did
        while the mount was serving."""
        died = None
        for pid in list(self.pids):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done == 0:
                continue
            self.pids.remove(pid)
            # Status 0: the worker saw the mount end (unmounted from outside).
            if status != 0 and not self.stopping and died is None:
                died = f"worker process {pid} {_how(status)}: unmounting"
        return died

    def stop(self) -> None:
        """End every worker and wait for them (after the daemon unmounted)."""
        self.stopping = True
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in self.pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.pids.clear()

    # -- in a child ---------------------------------------------------------------------

    def _child(self, ops: SharedOperations, worker: int) -> None:
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
            if os.getppid() == 1:  # the daemon died already
                os._exit(1)
            os.close(self._ready_r)
            self.close_in_child()
            self.turns.forked()
            threading.Thread(
                target=self._serve, args=(ops, worker), name=f"dlfs-worker-{worker}"
            ).start()
        except BaseException:
            log.exception("worker %d could not start", worker)
            os._exit(1)
        while True:  # the forked copy of the daemon's stack never returns
            time.sleep(3600)

    def _serve(self, ops: SharedOperations, worker: int) -> None:
        code = 0
        try:
            view = self.reopen()
            ops.become(view, worker)
            self.warmup(view)
            trio.run(self._main)
        except BaseException:
            log.exception("worker %d failed", worker)
            code = 1
        finally:
            log.info("worker %d stops", worker)
            logging.shutdown()
            os._exit(code)

    async def _main(self) -> None:
        os.write(self._ready_w, b"1")
        os.close(self._ready_w)
        try:
            await pyfuse3.main()
        finally:
            self.turns.give_back()  # so that the others see the mount end too


def _how(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"
