"""Inode numbers that mean the same thing in every process serving one mount.

A mount served by several processes (``dlfs mount --workers N``, see
``docs/architecture.md``) gets each request in whichever process reads it first: an
inode number handed out by one process must name the same path in all of them, and
``forget`` may reach another process than the ``lookup`` it balances.

As in the one-process daemon, an inode is a *path*: the pair (parent inode, name).
Each worker ``w`` of ``N`` numbers the paths it is first asked about from its own
residue class (``FIRST + k * N + w``), so workers never need a lock to number, and
writes the pair ``k`` into its own :class:`InodeLog`: two files in memory
(``memfd``) made before the workers fork, so every worker can read every log. Any
worker turns a number into its node by reading the pair (two ``pread``) and asking
the view for ``name`` in the parent's node (one indexed catalog query), recursively
up to a node it knows; what it learned is cached (bounded, oldest dropped first).
The kernel only sends a number after the reply that carried it, and a worker writes
the pair before it replies, so a number a request carries is always readable.

Published content never changes, so a node read back this way is the node the
numbering worker saw. Nodes that can change (a whole-catalog mount's datasets and
tags) are looked up again on every use. A path two workers number at once gets two
numbers (both stay valid, naming the same entry); otherwise a worker about to number
a path first reads what the others numbered since it last looked (a few ``pread``)
and hands out their number: a path keeps one number whichever worker answers, so
the kernel's cached entries stay valid (a ``readdir`` answered by another worker
would otherwise renumber every entry of the folder). Numbers are never dropped
(``forget`` is a no-op), so a log only grows: 16 bytes plus the name per path
numbered (see ``docs/performance.md``).

Only read-only views are served this way: renames and removals of a writable draft
would have to be told to every worker, so a writable draft mount stays one process.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

from dlfs.errors import NameTooLong, StaleInode
from dlfs.nodes import Node

ROOT = 1
"""The root's inode number (FUSE's ``FUSE_ROOT_ID``)."""

FIRST = 2
"""The first number handed out below the root."""

NODES = 1 << 18
"""Nodes each worker keeps in memory (about 0.5 KB each); older ones are read again
(two ``pread`` and one query) when a request names them."""

KEYS = 1 << 19
"""Paths whose number each worker remembers (about 150 bytes each), so that asking
again gives the same number; past that, a path asked again gets a new number (both
stay valid) and the log grows by one record."""

_RECORD = struct.Struct("<QQ")  # parent inode, name offset << 8 | name length
_CHUNK = 4096  # records read at once when catching up with another worker's log


class InodeLog:
    """One worker's numbered paths: record ``k`` is (parent inode, name).

    Written by its worker only (appends), read by every worker. Made before the
    workers fork; both files are inherited.
    """

    def __init__(self, index_fd: int | None = None, names_fd: int | None = None) -> None:
        self._index = os.memfd_create("dlfs-inodes") if index_fd is None else index_fd
        self._names = os.memfd_create("dlfs-names") if names_fd is None else names_fd
        self._count = 0
        self._names_end = 0

    def close(self) -> None:
        """Close both files (only when no worker reads them any more)."""
        for fd in (self._index, self._names):
            os.close(fd)

    def append(self, parent: int, name: str) -> int:
        """Record (``parent``, ``name``); its index ``k``."""
        raw = os.fsencode(name)
        if len(raw) > 255:
            raise NameTooLong(f"name longer than 255 bytes: {name[:40]}...")
        os.pwrite(self._names, raw, self._names_end)
        k = self._count
        os.pwrite(self._index, _RECORD.pack(parent, self._names_end << 8 | len(raw)), k * 16)
        self._names_end += len(raw)
        self._count = k + 1
        return k

    def read(self, k: int) -> tuple[int, str] | None:
        """Record ``k`` (parent inode, name), or None if it was never written."""
        raw = os.pread(self._index, 16, k * 16)
        if len(raw) < 16:
            return None
        parent, where = _RECORD.unpack(raw)
        if parent == 0 or where & 0xFF == 0:  # not written (yet): names are never empty
            return None
        size = where & 0xFF
        return parent, os.fsdecode(os.pread(self._names, size, where >> 8))

    def read_from(self, start: int) -> list[tuple[int, str]]:
        """Every record written from index ``start`` on, in order (a few reads)."""
        out: list[tuple[int, str]] = []
        while True:
            raw = os.pread(self._index, 16 * _CHUNK, (start + len(out)) * 16)
            found = []
            for parent, where in _RECORD.iter_unpack(raw[: len(raw) // 16 * 16]):
                if parent == 0 or where & 0xFF == 0:
                    break
                found.append((parent, where >> 8, where & 0xFF))
            if not found:
                return out
            first = found[0][1]
            names = os.pread(self._names, found[-1][1] + found[-1][2] - first, first)
            out += [
                (parent, os.fsdecode(names[at - first : at - first + size]))
                for parent, at, size in found
            ]
            if len(found) < _CHUNK:
                return out


Resolver = Callable[[Node, str], Node]
"""Looks ``name`` up in a folder node (the view's ``lookup``)."""


class SharedInodes:
    """Inode number <-> (parent inode, name) for one worker of a mount served by
    several: numbers handed out here mean the same in every worker (see the module).

    The interface is the one-process table's (``daemon/inodes.py``): ``node``,
    ``parent``, ``update``, ``assign``, ``incref``, ``remember``, ``forget``,
    ``drop_unused``; lookup counts are not kept (any worker may get the ``forget``).
    """

    def __init__(self, root: Node, logs: list[InodeLog], worker: int, resolve: Resolver) -> None:
        self.logs = logs
        self.worker = worker
        self.resolve = resolve
        self._root = root
        self._nodes: dict[int, tuple[Node, int, str]] = {}
        self._by_key: dict[tuple[int, str], int] = {}
        self._seen = [0] * len(logs)

    def __len__(self) -> int:
        return len(self._nodes) + 1

    def become(self, worker: int, resolve: Resolver, root: Node) -> None:
        """Serve as worker ``worker`` (a forked child) through a fresh view: what the
        parent cached is dropped, numbers are kept."""
        self.worker = worker
        self.resolve = resolve
        self._root = root
        self._nodes.clear()
        self._by_key.clear()
        self._seen = [0] * len(self.logs)

    def _where(self, ino: int) -> tuple[InodeLog, int]:
        k, w = divmod(ino - FIRST, len(self.logs))
        return self.logs[w], k

    def _key(self, ino: int) -> tuple[int, str]:
        if ino < FIRST:
            raise StaleInode(f"unknown inode {ino}")
        log, k = self._where(ino)
        key = log.read(k)
        if key is None:
            raise StaleInode(f"unknown inode {ino}")
        return key

    def node(self, ino: int) -> Node:
        """The node of inode ``ino``, from any worker; :class:`StaleInode` if no
        worker numbered it, what the view raises if its entry is gone."""
        if ino == ROOT:
            return self._root
        known = self._nodes.get(ino)
        if known is not None and known[0].cache:
            return known[0]
        parent, name = (known[1], known[2]) if known is not None else self._key(ino)
        node = self.resolve(self.node(parent), name)
        self._keep(ino, node, parent, name)
        return node

    def parent(self, ino: int) -> int:
        """The inode of the folder holding ``ino`` (the root for the root)."""
        if ino == ROOT:
            return ROOT
        known = self._nodes.get(ino)
        return known[1] if known is not None else self._key(ino)[0]

    def path(self, ino: int) -> str | None:
        """The path of ``ino`` in the mount (``/a/b.txt``), None if no worker
        numbered it (for log lines)."""
        names: list[str] = []
        try:
            while ino != ROOT:
                known = self._nodes.get(ino)
                ino, name = (known[1], known[2]) if known is not None else self._key(ino)
                names.append(name)
        except StaleInode:
            return None
        return "/" + "/".join(reversed(names))

    def update(self, ino: int, node: Node) -> None:
        """Keep a fresher node for ``ino``."""
        if ino == ROOT:
            self._root = node
            return
        known = self._nodes.get(ino)
        if known is not None:
            self._nodes[ino] = (node, known[1], known[2])

    def assign(self, parent: int, name: str, node: Node) -> int:
        """The inode of ``name`` in ``parent`` (numbered and logged if new), holding
        ``node``."""
        key = (parent, name)
        ino = self._by_key.get(key)
        if ino is None:
            self._catch_up()  # another worker may have numbered it: the same number then
            ino = self._by_key.get(key)
        if ino is None:
            k = self.logs[self.worker].append(parent, name)
            ino = FIRST + k * len(self.logs) + self.worker
            self._remember_key(key, ino)
        self._keep(ino, node, parent, name)
        return ino

    def remember(self, parent: int, name: str, node: Node) -> int:
        """:meth:`assign`: what a successful lookup does."""
        return self.assign(parent, name, node)

    def incref(self, ino: int, n: int = 1) -> None:
        """Nothing: numbers live as long as the mount."""

    def forget(self, ino: int, n: int) -> None:
        """Nothing: the lookups it balances may have been answered elsewhere."""

    def drop_unused(self, ino: int) -> None:
        """Nothing (see :meth:`forget`)."""

    def _catch_up(self) -> None:
        """Learn the paths the other workers numbered since the last call."""
        count = len(self.logs)
        for w, log in enumerate(self.logs):
            if w == self.worker:
                continue
            start = self._seen[w]
            records = log.read_from(start)
            for k, key in enumerate(records, start):
                self._remember_key(key, FIRST + k * count + w)
            self._seen[w] = start + len(records)

    def _keep(self, ino: int, node: Node, parent: int, name: str) -> None:
        nodes = self._nodes
        if ino not in nodes and len(nodes) >= NODES:
            del nodes[next(iter(nodes))]
        nodes[ino] = (node, parent, name)
        self._remember_key((parent, name), ino)

    def _remember_key(self, key: tuple[int, str], ino: int) -> None:
        by_key = self._by_key
        if key not in by_key and len(by_key) >= KEYS:
            del by_key[next(iter(by_key))]
        by_key.setdefault(key, ino)
