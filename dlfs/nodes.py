"""What a mounted tree is made of, for every view: nodes, their roles, listings, sizes.

A :class:`Node` is a value carrying everything ``getattr`` and ``open`` need (mode,
size, mtime, blob id), so that neither touches the catalog. Views
(:mod:`dlfs.view`, :mod:`dlfs.draftview`) hand nodes out; the daemon keeps the latest
one per inode and hands it back with each request.
"""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterator
from enum import IntEnum
from typing import NamedTuple

CACHE_TTL = 300.0
"""Seconds the kernel may cache entries and attributes of immutable (published) nodes."""

LIVE_TTL = 1.0
"""Seconds the kernel may cache entries and attributes of nodes that can change."""

FILE_MODE = stat.S_IFREG | 0o444
DIR_MODE = stat.S_IFDIR | 0o555
LINK_MODE = stat.S_IFLNK | 0o777

BLOCK_SIZE = 4096
"""The unit of the sizes ``statfs`` reports."""

IO_SIZE = 128 * 1024
"""The ``st_blksize`` reported: the size of the reads the kernel sends."""

LISTING_PAGE = 8192
"""Entries fetched per catalog query when a big folder is listed."""


class Role(IntEnum):
    """What a node is in the mounted tree."""

    CATALOG = 0
    """The root of a whole-catalog mount, or a project's folder in it (``ref``: the
    project's name)."""
    DATASET = 1
    """``MNT/<dataset>`` in a whole-catalog mount."""
    TAG = 2
    """``MNT/<dataset>/<tag>``: a symlink to a version id."""
    VERSION = 3
    """The root folder of a version."""
    FOLDER = 4
    """A folder inside a version."""
    FILE = 5
    """A file (an item) inside a version."""


class Node(NamedTuple):
    """One file, folder or symlink of the mounted tree, with its attributes.

    A node is a value: the view hands out a new one when something changed, and the
    daemon keeps the latest per inode. ``cache`` promises that neither the node nor
    (for a folder) its entries will ever change, so the kernel may cache them, their
    negative lookups and the file's pages.
    """

    role: Role
    mode: int
    size: int
    mtime_ns: int
    ttl: float
    cache: bool
    ref: str = ""
    """Tree id (VERSION, FOLDER), item id (FILE), target version id (TAG) or project
    name (CATALOG: a project's folder; ``""`` for the root)."""
    blob: str = ""
    """The blob id of a FILE."""
    version: str = ""
    """The version id this node belongs to."""
    dataset: int = 0
    """The numeric id of the dataset this node belongs to."""
    key: object = None
    """What the view that made the node needs to find its entry again, opaque to
    everyone else (a draft view's :class:`dlfs.places.Place`, which follows renames);
    None for views that find entries by ``ref``."""
    uid: int = -1
    """The owner kept with the item; -1: the mounting user."""
    gid: int = -1
    """The group kept with the item; -1: the mounting user's."""
    nlink: int = 1
    """``st_nlink``: 0 for a file removed while still open."""
    posix: str = ""
    """A FILE's POSIX attributes as its item keeps them (:mod:`dlfs.posixattrs`):
    its symlink target and ``user.*`` xattrs are answered without a query."""
    ctime_ns: int = -1
    """``st_ctime``; -1: the mtime."""
    atime_ns: int = -1
    """``st_atime``; -1: the mtime."""
    rdev: int = 0
    """``st_rdev`` of a device file."""

    @property
    def is_dir(self) -> bool:
        return self.role not in (Role.FILE, Role.TAG)


class FsStats(NamedTuple):
    """What ``statfs`` reports: the mounted tree's size, nothing free."""

    block_size: int
    blocks: int
    files: int
    name_max: int
    free_blocks: int = 0
    free_files: int = 0


def ns(seconds: float | None) -> int:
    """Seconds (a catalog time, or None) as integer nanoseconds."""
    return int((seconds or 0.0) * 1_000_000_000)


def ns_kept(seconds: float | None) -> int:
    """A kept time as nanoseconds; -1 when none is kept (then it reads as the mtime)."""
    return -1 if seconds is None else ns(seconds)


Page = list[tuple[str, Node]]


class Listing:
    """The entries of one open folder, addressed by position.

    Entries are fetched from the catalog a page at a time as the kernel asks for
    them (one query for any folder up to :data:`LISTING_PAGE` entries); positions
    stay valid for the life of the listing, so a resumed ``readdir`` never skips
    or repeats an entry.
    """

    def __init__(
        self,
        entries: Page,
        fetch: Callable[[str, int], Page] | None = None,
        complete: Callable[[Page], None] | None = None,
    ) -> None:
        self._entries = entries
        self._fetch = fetch
        self._complete = complete

    def entries_from(self, start: int) -> Iterator[tuple[int, str, Node]]:
        """``(next position, name, node)`` for every entry from position ``start``."""
        i = start
        while True:
            while i >= len(self._entries):  # a listing resumed anywhere (another process)
                if not self._more():
                    return
            name, node = self._entries[i]
            i += 1
            yield i, name, node

    def _more(self) -> bool:
        if self._fetch is None:
            return False
        after = self._entries[-1][0] if self._entries else ""
        page = self._fetch(after, LISTING_PAGE)
        self._entries.extend(page)
        if len(page) < LISTING_PAGE:
            self._fetch = None
            if self._complete is not None:
                self._complete(self._entries)
        return bool(page)
