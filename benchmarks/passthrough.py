"""The Python peer: a minimal read-only pyfuse3 + trio passthrough of a folder.

It gives the kernel what dlfs gives it for immutable content: entry and attribute
timeouts of 300 s, ``keep_cache`` on every open, no ``flush`` (ENOSYS once, then the
kernel stops asking), readdir with attributes (pyfuse3 answers readdirplus), a
read-ahead of 1 MiB (``dlfsd.readahead``, root only). Reads are
an inline ``pread`` on the source file, as the measurements found fastest on 2 cores.
What dlfs does beyond this (a catalog, content addressing) is what the bench weighs.

Inodes are the source's inode numbers (the source root is ``ROOT_INODE``); the path
of each inode is remembered for the life of the mount, so ``forget`` is a no-op.

Run: ``python -m benchmarks.passthrough SOURCE MOUNTPOINT`` (stays in front; unmount
with ``fusermount3 -u MOUNTPOINT`` or send SIGTERM).
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from typing import Any

import pyfuse3
import trio
from dlfsd.readahead import raise_read_ahead

TIMEOUT = 300.0


def _fail(exc: OSError) -> pyfuse3.FUSEError:
    return pyfuse3.FUSEError(exc.errno or errno.EIO)


class Passthrough(pyfuse3.Operations):
    """Serve ``source`` read-only."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source
        self.root_ino = os.lstat(source).st_ino
        self.paths: dict[int, str] = {pyfuse3.ROOT_INODE: source}
        self.listings: dict[int, list[tuple[bytes, pyfuse3.EntryAttributes]]] = {}
        self.next_dir = 0

    def _attr(self, st: os.stat_result) -> pyfuse3.EntryAttributes:
        attr = pyfuse3.EntryAttributes()
        attr.st_ino = pyfuse3.ROOT_INODE if st.st_ino == self.root_ino else st.st_ino
        attr.generation = 0
        attr.entry_timeout = TIMEOUT
        attr.attr_timeout = TIMEOUT
        attr.st_mode = st.st_mode
        attr.st_nlink = st.st_nlink
        attr.st_uid = st.st_uid
        attr.st_gid = st.st_gid
        attr.st_rdev = st.st_rdev
        attr.st_size = st.st_size
        attr.st_blksize = st.st_blksize
        attr.st_blocks = st.st_blocks
        attr.st_atime_ns = st.st_atime_ns
        attr.st_mtime_ns = st.st_mtime_ns
        attr.st_ctime_ns = st.st_ctime_ns
        return attr

    def _stat(self, path: str) -> pyfuse3.EntryAttributes:
        try:
            attr = self._attr(os.lstat(path))
        except OSError as exc:
            raise _fail(exc) from None
        self.paths.setdefault(attr.st_ino, path)
        return attr

    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        return self._stat(os.path.join(self.paths[parent_inode], os.fsdecode(name)))

    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._stat(self.paths[inode])

    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        try:
            return os.fsencode(os.readlink(self.paths[inode]))
        except OSError as exc:
            raise _fail(exc) from None

    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        # List once per open: readdir comes back with growing offsets, and a 100,000
        # entry folder must not be rescanned for every batch.
        path = self.paths[inode]
        try:
            with os.scandir(path) as it:
                names = sorted(e.name for e in it)
        except OSError as exc:
            raise _fail(exc) from None
        listing = []
        for name in names:
            try:
                attr = self._stat(os.path.join(path, name))
            except pyfuse3.FUSEError:
                continue  # vanished since the scan
            listing.append((os.fsencode(name), attr))
        self.next_dir += 1
        self.listings[self.next_dir] = listing
        return self.next_dir

    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        listing = self.listings[fh]
        for i in range(start_id, len(listing)):
            name, attr = listing[i]
            if not pyfuse3.readdir_reply(token, name, attr, i + 1):
                return

    async def releasedir(self, fh: int) -> None:
        self.listings.pop(fh, None)

    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND):
            raise pyfuse3.FUSEError(errno.EROFS)
        try:
            fd = os.open(self.paths[inode], os.O_RDONLY)
        except OSError as exc:
            raise _fail(exc) from None
        return pyfuse3.FileInfo(fh=fd, keep_cache=True)

    async def read(self, fh: int, off: int, size: int) -> bytes:
        try:
            return os.pread(fh, size, off)
        except OSError as exc:
            raise _fail(exc) from None

    async def release(self, fh: int) -> None:
        os.close(fh)

    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        try:
            return os.getxattr(self.paths[inode], os.fsdecode(name), follow_symlinks=False)
        except OSError as exc:
            raise _fail(exc) from None

    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> list[bytes]:
        try:
            names = os.listxattr(self.paths[inode], follow_symlinks=False)
        except OSError as exc:
            raise _fail(exc) from None
        return [os.fsencode(n) for n in names]

    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        st = os.statvfs(self.source)
        out = pyfuse3.StatvfsData()
        for field in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail"):
            setattr(out, field, getattr(st, field))
        for field in ("f_files", "f_ffree", "f_favail", "f_namemax"):
            setattr(out, field, getattr(st, field))
        return out


def _read_ahead(mountpoint: str) -> None:
    os.stat(mountpoint)
    raise_read_ahead(mountpoint)


async def _serve(mountpoint: str) -> None:
    async with trio.open_nursery() as nursery:

        async def on_signal() -> None:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    pyfuse3.terminate()
                    return

        nursery.start_soon(on_signal)
        # The kernel setting dlfs's daemon makes too (root only), once INIT is answered;
        # the bench waits for it before reading.
        nursery.start_soon(trio.to_thread.run_sync, _read_ahead, os.path.abspath(mountpoint))
        await pyfuse3.main()
        nursery.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        raise SystemExit("usage: python -m benchmarks.passthrough SOURCE MOUNTPOINT")
    source, mountpoint = os.path.abspath(args[0]), args[1]
    options: set[Any] = set(pyfuse3.default_options)
    options |= {"fsname=passthrough", "ro"}
    pyfuse3.init(Passthrough(source), mountpoint, options)
    try:
        trio.run(_serve, mountpoint)
    finally:
        pyfuse3.close(unmount=True)


if __name__ == "__main__":
    main()
