"""pyfuse3 operations: a short adapter per request over a view of dlfs.

Each handler unpacks the request, makes one call to the view (a read-only
:class:`dlfs.view.View`, or a :class:`dlfs.draftview.DraftView` that takes writes: a
write to a read-only view is refused by :meth:`dlfs.view.View.refuse`, ``EROFS``) and
builds the reply.
Errors are mapped in one place, the :func:`fuse_errors` decorator on every handler
that can fail: the request answers the errno each :class:`dlfs.errors.DlfsError`
carries (:func:`errno_of`). There is no SQL and no filesystem logic here; what the
kernel is told to cache comes from the nodes the view returns (``Node.ttl``,
``Node.cache``).

What is deliberately *not* implemented by :class:`Operations`, for speed (see
``docs/mounting.md``): ``flush`` (the first ``ENOSYS`` makes the kernel stop sending
it on every ``close``), ``fsync``, ``access`` (``default_permissions`` lets the
kernel check modes itself) and ``poll``. :class:`WritableOperations`, for a writable
draft, adds ``flush`` and ``fsync``: a written file is committed when it is closed.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar, cast

import pyfuse3
import trio
from pyfuse3 import (
    EntryAttributes,
    FileInfo,
    FUSEError,
    ReaddirToken,
    RequestContext,
    SetattrFields,
    StatvfsData,
)

from dlfs import errors
from dlfs.draftview import DraftView
from dlfs.errors import DlfsError, NotFound
from dlfs.inodenumbers import SharedInodes
from dlfs.nodes import IO_SIZE, Listing, Node
from dlfs.plan import XATTR as PLAN_XATTR
from dlfs.plan import AccessPlan
from dlfs.view import View

from .inodes import InodeTable
from .workers import Workers

log = logging.getLogger(__name__)

H = TypeVar("H", bound=Callable[..., Coroutine[Any, Any, Any]])

PLAN_BYTES = PLAN_XATTR.encode()

READ_THREADS = 16
"""At most this many blocking reads (bytes not yet in the page cache, hashing a
large blob, remote stores) run at once, in worker threads."""


def errno_of(exc: BaseException) -> int:
    """The errno a failed request answers: a ``FUSEError`` keeps its own, anything
    else the one table's (:func:`dlfs.errors.errno_of`: a
    :class:`dlfs.errors.DlfsError` names its own, a local ``OSError`` such as
    ``EFBIG`` or ``ENOSPC`` keeps its errno, the rest is ``EIO``)."""
    if isinstance(exc, FUSEError):
        return exc.errno
    return errors.errno_of(exc)


def fuse_error(exc: BaseException) -> FUSEError:
    """The ``FUSEError`` to raise for ``exc``; unexpected exceptions are logged with
    their traceback (the request fails with ``EIO``, the daemon keeps serving); a
    local failure that keeps its errno (a full disk...) is logged as one warning."""
    if isinstance(exc, FUSEError):
        return exc
    if not isinstance(exc, DlfsError):
        if errors.is_expected(exc):
            log.warning("a request failed: %s", exc)
        else:
            log.error("unexpected error in a request", exc_info=exc)
    return FUSEError(errno_of(exc))


def fuse_errors(handler: H) -> H:
    """Decorate a request handler so that whatever it raises reaches pyfuse3 as the
    ``FUSEError`` of :func:`fuse_error` (chained to nothing: the kernel only sees the
    errno). The cost is one more coroutine per request, nothing else; arguments are
    passed on positionally only, as pyfuse3 passes them (``**kwargs`` would cost
    every request a little more)."""

    @functools.wraps(handler)
    async def answer(*args: Any) -> Any:
        try:
            return await handler(*args)
        except Exception as exc:
            raise fuse_error(exc) from None

    return cast(H, answer)


class Operations(pyfuse3.Operations):
    """The dlfs filesystem as pyfuse3 sees it."""

    supports_dot_lookup = True
    enable_writeback_cache = False
    enable_acl = False

    def __init__(self, view: View | DraftView) -> None:
        super().__init__()
        self.view = view
        self.inodes = InodeTable(view.root())
        self._dirs: dict[int, tuple[int, Listing]] = {}
        self._dir_handles = itertools.count(1)
        self._limiter = trio.CapacityLimiter(READ_THREADS)
        self.plan = AccessPlan(view)
        """The access plan in force (:mod:`dlfs.plan`): given by a ``getxattr`` of
        ``user.dlfs.plan=FILE`` on the root, told of each open."""
        self._handle_inodes: dict[int, int] = {}
        """Open file handle -> its inode, so that a failed read's log line names the
        path (:attr:`dlfs.reads.FileReads.path_of`)."""
        view.reads.path_of = self._path_of_handle

    def _path_of_handle(self, fh: int) -> str | None:
        ino = self._handle_inodes.get(fh)
        return None if ino is None else self.inodes.path(ino)

    def _attr(self, ino: int, node: Node) -> EntryAttributes:
        attr = EntryAttributes()
        attr.st_ino = ino
        attr.st_mode, attr.st_uid, attr.st_gid = self.view.attributes(node)
        attr.st_nlink = node.nlink
        attr.st_size = node.size
        attr.st_rdev = node.rdev
        attr.st_blksize = IO_SIZE
        attr.st_blocks = (node.size + 511) // 512
        attr.st_mtime_ns = node.mtime_ns
        attr.st_ctime_ns = node.mtime_ns if node.ctime_ns < 0 else node.ctime_ns
        attr.st_atime_ns = node.mtime_ns if node.atime_ns < 0 else node.atime_ns
        attr.entry_timeout = attr.attr_timeout = node.ttl
        return attr

    def _entry(self, parent: int, name: bytes, node: Node) -> EntryAttributes:
        return self._attr(self.inodes.remember(parent, os.fsdecode(name), node), node)

    def _writer(self, what: str) -> DraftView:
        """The view that takes a write request; a read-only view refuses it (EROFS)."""
        view = self.view
        if isinstance(view, DraftView):
            return view
        view.refuse(what)

    # -- reading the tree -------------------------------------------------------------

    @fuse_errors
    async def lookup(self, parent_inode: int, name: bytes, ctx: RequestContext) -> EntryAttributes:
        if name == b".":
            ino = parent_inode
        elif name == b"..":
            ino = self.inodes.parent(parent_inode)
        else:
            parent = self.inodes.node(parent_inode)
            try:
                node = self.view.lookup(parent, os.fsdecode(name))
            except NotFound as exc:
                if parent.cache and type(exc) is NotFound:
                    # Immutable folder: let the kernel remember the miss too.
                    miss = EntryAttributes()
                    miss.st_ino = 0
                    miss.entry_timeout = parent.ttl
                    return miss
                raise
            return self._entry(parent_inode, name, node)
        node = self.inodes.node(ino)
        self.inodes.incref(ino)
        return self._attr(ino, node)

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for ino, n in inode_list:
            self.inodes.forget(ino, n)

    @fuse_errors
    async def getattr(self, inode: int, ctx: RequestContext) -> EntryAttributes:
        node = self.view.getattr(self.inodes.node(inode))
        self.inodes.update(inode, node)
        return self._attr(inode, node)

    @fuse_errors
    async def readlink(self, inode: int, ctx: RequestContext) -> bytes:
        return os.fsencode(self.view.readlink(self.inodes.node(inode)))

    @fuse_errors
    async def opendir(self, inode: int, ctx: RequestContext) -> int:
        listing = self.view.listing(self.inodes.node(inode))
        fh = next(self._dir_handles)
        self._dirs[fh] = (inode, listing)
        return fh

    @fuse_errors
    async def readdir(self, fh: int, start_id: int, token: ReaddirToken) -> None:
        inodes = self.inodes
        parent, listing = self._dirs[fh]
        for next_id, name, node in listing.entries_from(start_id):
            ino = inodes.assign(parent, name, node)
            if not pyfuse3.readdir_reply(token, os.fsencode(name), self._attr(ino, node), next_id):
                inodes.drop_unused(ino)
                return
            inodes.incref(ino)

    async def releasedir(self, fh: int) -> None:
        self._dirs.pop(fh, None)

    @fuse_errors
    async def statfs(self, ctx: RequestContext) -> StatvfsData:
        stats = self.view.statfs()
        out = StatvfsData()
        out.f_bsize = out.f_frsize = stats.block_size
        out.f_blocks = stats.blocks
        out.f_bfree = out.f_bavail = stats.free_blocks
        out.f_files = stats.files
        out.f_ffree = out.f_favail = stats.free_files
        out.f_namemax = stats.name_max
        return out

    # -- extended attributes ------------------------------------------------------------

    @fuse_errors
    async def getxattr(self, inode: int, name: bytes, ctx: RequestContext) -> bytes:
        if inode == pyfuse3.ROOT_INODE and name.startswith(PLAN_BYTES):
            return await self.plan.answer(os.fsdecode(name), ctx.uid, trio.lowlevel.checkpoint)
        return self.view.getxattr(self.inodes.node(inode), os.fsdecode(name))

    @fuse_errors
    async def listxattr(self, inode: int, ctx: RequestContext) -> list[bytes]:
        return [os.fsencode(n) for n in self.view.listxattr(self.inodes.node(inode))]

    # -- reading bytes ------------------------------------------------------------------

    @fuse_errors
    async def open(self, inode: int, flags: int, ctx: RequestContext) -> FileInfo:
        node = self.inodes.node(inode)
        fh = self.view.open(node, flags)
        if self.plan.active:
            self.plan.opened(node)
        self._handle_inodes[fh] = inode
        return FileInfo(fh=fh, keep_cache=node.cache)

    @fuse_errors
    async def read(self, fh: int, off: int, size: int) -> bytes | memoryview:  # type: ignore[override]  # pyfuse3 sends any buffer
        view = self.view
        data = view.read_nowait(fh, off, size)
        if data is None:
            data = await trio.to_thread.run_sync(view.read, fh, off, size, limiter=self._limiter)
        return data

    async def release(self, fh: int) -> None:
        self._handle_inodes.pop(fh, None)
        self.view.release(fh)

    # -- writing: the view decides (read-only views refuse: EROFS) ---------------------

    @fuse_errors
    async def create(
        self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: RequestContext
    ) -> tuple[FileInfo, EntryAttributes]:
        parent = self.inodes.node(parent_inode)
        fh, node = self._writer("create a file").create(
            parent, os.fsdecode(name), mode, flags, (ctx.uid, ctx.gid)
        )
        entry = self._entry(parent_inode, name, node)
        self._handle_inodes[fh] = entry.st_ino
        return FileInfo(fh=fh, keep_cache=False), entry

    @fuse_errors
    async def mkdir(
        self, parent_inode: int, name: bytes, mode: int, ctx: RequestContext
    ) -> EntryAttributes:
        node = self._writer("make a folder").mkdir(
            self.inodes.node(parent_inode), os.fsdecode(name), mode, (ctx.uid, ctx.gid)
        )
        return self._entry(parent_inode, name, node)

    @fuse_errors
    async def mknod(
        self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: RequestContext
    ) -> EntryAttributes:
        node = self._writer("make a file").mknod(
            self.inodes.node(parent_inode), os.fsdecode(name), mode, rdev, (ctx.uid, ctx.gid)
        )
        return self._entry(parent_inode, name, node)

    @fuse_errors
    async def symlink(
        self, parent_inode: int, name: bytes, target: bytes, ctx: RequestContext
    ) -> EntryAttributes:
        parent = self.inodes.node(parent_inode)
        node = self._writer("make a symlink").symlink(
            parent, os.fsdecode(name), os.fsdecode(target), (ctx.uid, ctx.gid)
        )
        return self._entry(parent_inode, name, node)

    @fuse_errors
    async def link(
        self, inode: int, new_parent_inode: int, new_name: bytes, ctx: RequestContext
    ) -> EntryAttributes:
        node = self._writer("make a link").link(
            self.inodes.node(inode), self.inodes.node(new_parent_inode), os.fsdecode(new_name)
        )
        self.inodes.link(inode, new_parent_inode, os.fsdecode(new_name))
        return self._attr(inode, node)

    @fuse_errors
    async def unlink(self, parent_inode: int, name: bytes, ctx: RequestContext) -> None:
        view = self._writer("remove a file")
        view.unlink(self.inodes.node(parent_inode), os.fsdecode(name))
        left = self.inodes.detach(parent_inode, os.fsdecode(name))
        if left is not None:
            self._renamed_over(*left)

    def _renamed_over(self, ino: int, other: tuple[int, str]) -> None:
        """A name of hard-linked inode ``ino`` went away: it now stands for ``other``."""
        self.inodes.update(ino, self.view.lookup(self.inodes.node(other[0]), other[1]))

    @fuse_errors
    async def rmdir(self, parent_inode: int, name: bytes, ctx: RequestContext) -> None:
        self._writer("remove a folder").rmdir(self.inodes.node(parent_inode), os.fsdecode(name))
        self.inodes.detach(parent_inode, os.fsdecode(name))

    @fuse_errors
    async def rename(
        self,
        parent_inode_old: int,
        name_old: bytes,
        parent_inode_new: int,
        name_new: bytes,
        flags: int,
        ctx: RequestContext,
    ) -> None:
        self._writer("rename").rename(
            self.inodes.node(parent_inode_old),
            os.fsdecode(name_old),
            self.inodes.node(parent_inode_new),
            os.fsdecode(name_new),
            flags,
        )
        left = self.inodes.rename(
            parent_inode_old, os.fsdecode(name_old), parent_inode_new, os.fsdecode(name_new)
        )
        if left is not None:
            self._renamed_over(*left)

    @fuse_errors
    async def setattr(
        self,
        inode: int,
        attr: EntryAttributes,
        fields: SetattrFields,
        fh: int | None,
        ctx: RequestContext,
    ) -> EntryAttributes:
        node = self._writer("change attributes").setattr(
            self.inodes.node(inode),
            size=attr.st_size if fields.update_size else None,
            mode=attr.st_mode if fields.update_mode else None,
            mtime_ns=attr.st_mtime_ns if fields.update_mtime else None,
            atime_ns=attr.st_atime_ns if fields.update_atime else None,
            uid=attr.st_uid if fields.update_uid else None,
            gid=attr.st_gid if fields.update_gid else None,
        )
        self.inodes.update(inode, node)
        return self._attr(inode, node)

    @fuse_errors
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        return self._writer("write").write(fh, off, buf)

    @fuse_errors
    async def setxattr(self, inode: int, name: bytes, value: bytes, ctx: RequestContext) -> None:
        self._writer("set extended attributes").setxattr(
            self.inodes.node(inode), os.fsdecode(name), value
        )

    @fuse_errors
    async def removexattr(self, inode: int, name: bytes, ctx: RequestContext) -> None:
        self._writer("remove extended attributes").removexattr(
            self.inodes.node(inode), os.fsdecode(name)
        )


class WritableOperations(Operations):
    """The operations of a writable draft: :class:`Operations` plus ``flush`` (every
    ``close``) and ``fsync``, where the view commits a written file."""

    @fuse_errors
    async def flush(self, fh: int) -> None:
        self._writer("write").flush(fh)

    @fuse_errors
    async def fsync(self, fh: int, datasync: bool) -> None:
        self._writer("write").fsync(fh, datasync)

    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        return  # folder changes are committed before their request is answered


WORKER_XATTR = b"user.dlfs.debug.worker"
"""Read on any node of a mount served by several processes: the pid of the process
that answered (not listed; for tests and for watching how requests spread)."""

HANDLES = 65_536
"""Open files and folders each worker keeps a handle for; older ones are opened
again if a request still names them."""


HANDLERS = (
    *("access", "create", "flush", "forget", "fsync", "fsyncdir", "getattr", "getxattr"),
    *("link", "listxattr", "lookup", "mkdir", "mknod", "open", "opendir", "poll", "read"),
    *("readdir", "readlink", "release", "releasedir", "removexattr", "rename", "rmdir"),
    *("setattr", "setxattr", "statfs", "symlink", "unlink", "write"),
)
"""pyfuse3's request handlers (its ``Operations``' coroutines)."""


def _giving_turn_back(handler: H) -> H:
    """``handler``, first letting the next process read a request (see
    :mod:`dlfsd.turns`): the turn is held only from a request's read to here."""

    @functools.wraps(handler)
    async def first_give_back(self: SharedOperations, *args: Any) -> Any:
        self.turns.give_back()
        return await handler(self, *args)

    return cast(H, first_give_back)


class SharedOperations(Operations):
    """The operations of one of several processes serving a read-only view
    (:mod:`dlfsd.workers`): any of them may get any request, so inode numbers come
    from :class:`dlfs.inodenumbers.SharedInodes`, and a file or folder handle is the
    inode number: each worker opens its own handle on the view the first time a
    request names it."""

    def __init__(self, view: View | DraftView, workers: Workers) -> None:
        super().__init__(view)
        self.workers = workers
        self.turns = workers.turns
        self.inodes = SharedInodes(view.root(), workers.logs, 0, view.lookup)  # type: ignore[assignment]
        self._files: dict[int, int] = {}
        self._listings: dict[int, Listing] = {}

    def init(self) -> None:
        self.workers.fork(self)

    def become(self, view: View | DraftView, worker: int) -> None:
        """Serve as worker ``worker`` through ``view``, the child's own (after a fork)."""
        self.view = view
        self._files = {}
        self._listings = {}
        self._handle_inodes = {}
        self.plan = AccessPlan(view)
        view.reads.path_of = self._path_of_handle
        self._limiter = trio.CapacityLimiter(READ_THREADS)
        cast(SharedInodes, self.inodes).become(worker, view.lookup, view.root())

    @fuse_errors
    async def getxattr(self, inode: int, name: bytes, ctx: RequestContext) -> bytes:
        if name == WORKER_XATTR:
            return str(os.getpid()).encode()
        if inode == pyfuse3.ROOT_INODE and name.startswith(PLAN_BYTES):
            return await self.plan.answer(os.fsdecode(name), ctx.uid, trio.lowlevel.checkpoint)
        return self.view.getxattr(self.inodes.node(inode), os.fsdecode(name))

    @fuse_errors
    async def opendir(self, inode: int, ctx: RequestContext) -> int:
        self._keep(self._listings, inode, self.view.listing(self.inodes.node(inode)))
        return inode

    @fuse_errors
    async def readdir(self, fh: int, start_id: int, token: ReaddirToken) -> None:
        listing = self._listings.get(fh) if start_id else None
        if listing is None:  # opened by another worker, or listed again from the start
            listing = self.view.listing(self.inodes.node(fh))
            self._keep(self._listings, fh, listing)
        inodes = self.inodes
        for next_id, name, node in listing.entries_from(start_id):
            ino = inodes.assign(fh, name, node)
            if not pyfuse3.readdir_reply(token, os.fsencode(name), self._attr(ino, node), next_id):
                return

    async def releasedir(self, fh: int) -> None:
        self._listings.pop(fh, None)

    @fuse_errors
    async def open(self, inode: int, flags: int, ctx: RequestContext) -> FileInfo:
        node = self.inodes.node(inode)
        fh = self.view.open(node, flags)
        self._handle_inodes[fh] = inode
        old = self._keep(self._files, inode, fh)
        if old is not None:
            self._forget_handle(old)
        if self.plan.active:
            self.plan.opened(node)
        return FileInfo(fh=inode, keep_cache=node.cache)

    def _handle(self, ino: int) -> int:
        fh = self._files.get(ino)
        if fh is None:  # opened by another worker
            fh = self.view.open(self.inodes.node(ino), os.O_RDONLY)
            self._handle_inodes[fh] = ino
            self._keep(self._files, ino, fh)
        return fh

    def _forget_handle(self, fh: int) -> None:
        self._handle_inodes.pop(fh, None)
        self.view.release(fh)

    @fuse_errors
    async def read(self, fh: int, off: int, size: int) -> bytes | memoryview:  # type: ignore[override]  # pyfuse3 sends any buffer
        view = self.view
        data = view.read_nowait(self._handle(fh), off, size)
        if data is None:
            try:
                data = await trio.to_thread.run_sync(
                    view.read, self._handle(fh), off, size, limiter=self._limiter
                )
            except KeyError:  # released meanwhile by another open of the same file
                data = await trio.to_thread.run_sync(
                    view.read, self._handle(fh), off, size, limiter=self._limiter
                )
        return data

    async def release(self, fh: int) -> None:
        handle = self._files.pop(fh, None)
        if handle is not None:
            self._forget_handle(handle)

    def _keep(self, table: dict[int, Any], key: int, value: Any) -> Any:
        """``table[key] = value``, dropping the oldest entry when full; the value
        ``key`` had before, if any."""
        old = table.pop(key, None)
        if len(table) >= HANDLES:
            oldest = next(iter(table))
            dropped = table.pop(oldest)
            if table is self._files:
                self._forget_handle(dropped)
        table[key] = value
        return old


for _name in HANDLERS:
    setattr(SharedOperations, _name, _giving_turn_back(getattr(SharedOperations, _name)))
