"""The daemon's lifecycle: mount, serve, unmount.

``dlfs mount`` runs ``python -m dlfsd MOUNTPOINT --home H [--ref NAME@ID] ...``.
The daemon:

1. with ``--daemonize``, forks into the background (new session, cwd ``/``, stdio
   on the log file); the parent exits at once;
2. opens the view (one read-only catalog connection; for a draft, unless ``-o ro``,
   a read-write one and the draft's mount lock, see :mod:`dlfs.draftview`) and mounts
   with ``fsname=dlfs,subtype=dlfs,default_permissions`` (and ``ro`` unless the view
   is writable) plus the user's ``-o`` options; without ``allow_other`` only the
   mounting user can enter the mount, which the daemon adds for a project with a
   Unix group (``view.shared``, :mod:`dlfs.access`);
3. records itself in ``<home>/mounts/`` (:mod:`dlfs.mounts`), serves
   (``pyfuse3.main`` under trio), and once the kernel got a first answer reports
   ``ok`` on ``--ready-fd`` (or ``error: <message>`` if anything failed before);
4. on SIGTERM, SIGINT or SIGHUP, or when unmounted from outside (``dlfs umount``,
   ``fusermount3 -u``), stops serving, unmounts, removes its record and exits 0.

Logs go to ``--log`` (``<home>/logs/mount-<hash>.log``), and to stderr too in the
foreground.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TextIO

import pyfuse3
import trio

from dlfs import mountregistry, mounts
from dlfs.draftview import DraftView
from dlfs.errors import DlfsError
from dlfs.home import Home
from dlfs.mountviews import open_mount_view
from dlfs.stores.registry import StoreRegistry
from dlfs.view import View
from dlfs.viewspec import ViewSpec

from .ops import Operations, SharedOperations, WritableOperations
from .readahead import raise_read_ahead
from .workers import Workers

log = logging.getLogger("dlfsd")

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Reporter:
    """Tells whoever started the daemon how mounting went, once, on a pipe."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd

    def _send(self, line: str) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.write(self.fd, line.encode() + b"\n")

    def pid(self) -> None:
        """Say which process the daemon is (so a starter can stop a stuck one)."""
        self._send(f"pid {os.getpid()}")

    def ok(self) -> None:
        """The mount is serving."""
        self._send("ok")
        self.close()

    def fail(self, message: str) -> None:
        """Mounting failed: ``message`` is one line for the user."""
        log.error("%s", message)
        self._send("error: " + message.replace("\n", " "))
        self.close()

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="dlfsd", description="The dlfs FUSE daemon.")
    p.add_argument("mountpoint")
    p.add_argument("--home", default=None, help="catalog folder")
    p.add_argument("--ref", default=None, help="NAME@ID to mount (default: the whole catalog)")
    p.add_argument("--display-ref", default=None, help="the ref as the user wrote it")
    p.add_argument("-o", dest="options", action="append", default=[], help="mount options")
    p.add_argument("--log", default=None, help="log file")
    p.add_argument("--foreground", action="store_true", help="also log to stderr")
    p.add_argument("--daemonize", action="store_true", help="fork into the background")
    p.add_argument("--ready-fd", type=int, default=None, help="report readiness here")
    p.add_argument("--cache-dir", default=None, help="block cache folder of remote stores")
    p.add_argument("--cache-size", type=int, default=None, help="block cache size in bytes")
    p.add_argument(
        "--prefetch-memory", type=int, default=None, help="read-ahead memory budget in bytes"
    )
    p.add_argument("--debug", action="store_true", help="log every request")
    p.add_argument("--workers", type=int, default=None, help="processes serving a read-only mount")
    p.add_argument("--where", default=None, help="a view: only the items this selects")
    p.add_argument("--group-by", default=None, help="a view: a folder per value of this key")
    p.add_argument("--remote", default=None, help="s3://bucket/prefix the version is read from")
    return p.parse_args(argv)


def daemonize(log_file: str | None) -> None:
    """Fork into the background: the parent exits, the child leads a new session."""
    if os.fork():
        os._exit(0)
    os.setsid()
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    out = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600) if log_file else null
    os.dup2(out, 1)
    os.dup2(out, 2)


def setup_logging(log_file: str | None, foreground: bool, debug: bool) -> None:
    handlers: list[logging.Handler] = []
    dump_to: TextIO = sys.stderr
    if log_file:
        to_file = logging.FileHandler(log_file)
        handlers.append(to_file)
        dump_to = to_file.stream or sys.stderr
    if foreground or not handlers:
        handlers.append(logging.StreamHandler(sys.stderr))
    fmt = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO, format=fmt, handlers=handlers
    )
    # `kill -USR1 PID` writes every thread's Python stack to the log (of a worker
    # too: the handler is inherited across the fork), to see where a stuck daemon waits.
    faulthandler.register(signal.SIGUSR1, file=dump_to, all_threads=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``dlfsd`` / ``python -m dlfsd``; exits 0 after a clean unmount."""
    args = parse_args(argv)
    if args.daemonize:
        daemonize(args.log)
    setup_logging(args.log, args.foreground, args.debug)
    reporter = Reporter(args.ready_fd)
    reporter.pid()
    try:
        code = run(args, reporter)
    except BaseException as exc:
        log.exception("the daemon failed")
        reporter.fail(f"the dlfs daemon failed: {exc!r}")
        raise
    sys.exit(code)


def run(args: argparse.Namespace, reporter: Reporter) -> int:
    """Mount, serve until told to stop, unmount; the exit status."""
    home = Home.at(args.home)
    # Normalized now: once mounted, resolving the path would wait on ourselves.
    mountpoint = str(mountregistry.normalize(args.mountpoint))
    try:
        mounts.mount_options(args.options, writable=True)  # bad options fail first
        stores = StoreRegistry(
            home,
            cache_dir=args.cache_dir,
            cache_size=args.cache_size,
            prefetch_memory=args.prefetch_memory,
        )
        read_only = mounts.read_only_requested(args.options)
        spec = ViewSpec.parse(args.where, args.group_by)
        warm_catalog(home)
        view = open_mount_view(home, args.ref, stores, mountpoint, read_only, spec, args.remote)
        options = mounts.mount_options(args.options, view.writable, shared=view.shared)
    except DlfsError as exc:
        reporter.fail(f"{type(exc).__name__}: {exc}")
        return 1
    # A signal between mounting and serving must still end in a clean unmount.
    early: list[int] = []

    def remember(signum: int, _frame: FrameType | None) -> None:
        early.append(signum)

    for signum in SIGNALS:
        signal.signal(signum, remember)
    count = worker_count(args.workers, view)
    workers: Workers | None = None
    if view.writable:
        ops: Operations = WritableOperations(view)
    elif count > 1:

        def reopen() -> View | DraftView:
            stores = StoreRegistry(
                home,
                cache_dir=args.cache_dir,
                cache_size=args.cache_size,
                prefetch_memory=args.prefetch_memory,  # each worker's own budget
            )
            return open_mount_view(home, args.ref, stores, mountpoint, read_only, spec, args.remote)

        workers = Workers(count, reopen, start_warmup, reporter.close)
        ops = SharedOperations(view, workers)
    else:
        ops = Operations(view)
    if workers is None:  # with workers, each warms up after the fork
        start_warmup(view)
    else:
        workers.turns.install()
    try:
        pyfuse3.init(ops, mountpoint, set(options))
    except RuntimeError as exc:
        view.close()
        reporter.fail(f"cannot mount at {mountpoint}: {exc} (see {args.log})")
        return 1
    record = mountregistry.MountRecord(
        mountpoint=mountpoint,
        ref=args.display_ref or args.ref,
        version=view.root().version or None,
        pid=os.getpid(),
        pid_start=mountregistry.process_start(os.getpid()) or 0,
        log=str(args.log or ""),
        started_at=time.time(),
        mode=view.mode,
        options=options,
        cache_dir=args.cache_dir,
        cache_size=args.cache_size,
        prefetch_memory=args.prefetch_memory,
        view=spec.describe() if spec is not None else "",
    )
    mountregistry.register(home, record)
    log.info(
        "mounted %s at %s (%s, %d process%s)",
        record.ref or "the catalog",
        mountpoint,
        view.mode,
        count if workers else 1,
        "es" if workers else "",
    )
    outcome: list[str] = []
    started = Started(home, record, workers, view)
    try:
        trio.run(serve, mountpoint, reporter, early, outcome, started)
    finally:
        pyfuse3.close(unmount=True)
        if workers is not None:
            workers.stop()
        mountregistry.unregister(home, mountpoint, os.getpid())
        release(view)
        log.info("unmounted %s", mountpoint)
    return 1 if outcome else 0


def worker_count(asked: int | None, view: View | DraftView) -> int:
    """How many processes serve ``view``: ``asked`` (default:
    :func:`dlfs.mounts.default_workers`) for a published version or the catalog;
    one for a draft, whose state lives in one process (its open files, renames, the
    draft's lock)."""
    count = mounts.default_workers() if asked is None else asked
    if view.mode not in ("published", "catalog"):
        if asked is not None and asked > 1:
            log.info("a draft is served by one process (--workers %d ignored)", asked)
        return 1
    return max(1, count)


def start_warmup(view: View | DraftView) -> None:
    """Open the mounted version's store in the background (see ``View.store_warmup``)."""
    warmup = view.store_warmup()
    if warmup is not None:
        threading.Thread(target=_quietly, args=(warmup,), name="dlfs-warmup", daemon=True).start()


class Started:
    """What the daemon does once its mount answers: with workers, wait until every
    one serves, then record their pids."""

    def __init__(
        self,
        home: Home,
        record: mountregistry.MountRecord,
        workers: Workers | None,
        view: View | DraftView,
    ) -> None:
        self.home = home
        self.record = record
        self.workers = workers
        self.view = view

    def wait(self) -> str | None:
        """Block until every process serves; None, or why one could not start."""
        if self.workers is not None:
            problem = self.workers.wait_ready()
            if problem is not None:
                return problem
        self.record.workers = [os.getpid(), *(self.workers.pids if self.workers else [])]
        mountregistry.register(self.home, self.record)
        return None


def _quietly(job: Callable[[], None]) -> None:
    """Run a warm-up job; its errors are left for the reads that need it."""
    try:
        job()
    except Exception as exc:
        log.warning("warming up failed: %s", exc)


WARM_CATALOG_MAX = 512 << 20
"""Catalog files up to this size are read ahead when a mount starts."""


def warm_catalog(home: Home) -> None:
    """Ask the kernel to read the catalog (and its WAL) ahead, so the lookups of a cold
    mount, made on the event loop, find its pages in memory instead of each waiting
    for a random 4 KiB read. Bounded by :data:`WARM_CATALOG_MAX`; never fails."""
    budget = WARM_CATALOG_MAX
    for path in (home.catalog_path, f"{home.catalog_path}-wal"):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            size = min(os.fstat(fd).st_size, budget)
            if size > 0:
                os.posix_fadvise(fd, 0, size, os.POSIX_FADV_WILLNEED)
                budget -= size
        except OSError:
            pass
        finally:
            os.close(fd)


def release(view: View | DraftView) -> None:
    try:
        view.close()
    except Exception:
        log.exception("closing the view failed")


async def serve(
    mountpoint: str, reporter: Reporter, early: list[int], failed: list[str], started: Started
) -> None:
    """Serve FUSE requests until unmounted or signalled; a failure to get ready, or
    the death of a worker, is appended to ``failed``."""

    def fail(message: str) -> None:
        failed.append(message)
        reporter.fail(message)

    async with trio.open_nursery() as nursery:
        await nursery.start(watch_signals, early, started.workers, failed)
        nursery.start_soon(announce, mountpoint, reporter.ok, fail, started)
        await pyfuse3.main()
        nursery.cancel_scope.cancel()


async def watch_signals(
    early: list[int],
    workers: Workers | None,
    failed: list[str],
    task_status: trio.TaskStatus[None],
) -> None:
    """On SIGTERM, SIGINT or SIGHUP, or when a worker process dies, stop serving (the
    caller then unmounts)."""
    watched = (*SIGNALS, signal.SIGCHLD) if workers is not None else SIGNALS
    with trio.open_signal_receiver(*watched) as received:
        task_status.started()
        if early:
            log.info("signal %s before serving: unmounting", signal.Signals(early[0]).name)
            stop_serving(workers)
            return
        async for signum in received:
            if signum == signal.SIGCHLD:
                died = workers.reap() if workers is not None else None
                if died is None:
                    continue
                log.error("%s", died)
                failed.append(died)
            else:
                log.info("got %s: unmounting", signal.Signals(signum).name)
            stop_serving(workers)
            return


def stop_serving(workers: Workers | None) -> None:
    """End this process's ``pyfuse3.main`` (with workers, also its tasks waiting
    for their turn to read, see :mod:`dlfsd.turns`)."""
    if workers is not None:
        workers.turns.stop()
    else:
        pyfuse3.terminate()


async def announce(
    mountpoint: str, ok: Callable[[], None], fail: Callable[[str], None], started: Started
) -> None:
    """Report readiness once the mount answers (a ``stat`` of its root) and every
    worker serves, after raising its read-ahead (:mod:`dlfsd.readahead`): no file is
    opened there before that."""
    try:
        await trio.to_thread.run_sync(os.stat, mountpoint)
    except OSError as exc:
        fail(f"the mount at {mountpoint} does not answer: {exc.strerror}")
        stop_serving(started.workers)
        return
    problem = await trio.to_thread.run_sync(started.wait)
    if problem is not None:
        fail(problem)
        stop_serving(started.workers)
        return
    if started.workers is not None:  # after the fork: see Workers
        start_warmup(started.view)
    read_ahead = await trio.to_thread.run_sync(raise_read_ahead, mountpoint)
    log.info("ready (read-ahead %s KiB)", read_ahead)
    ok()
