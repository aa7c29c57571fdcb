"""Inode numbers and kernel lookup counts.

Every *path* of the mounted tree gets its own inode number, even when two paths
hold the same content (a tree id or an item can appear at several places; a version
at ``MNT/cats/<id>`` and through the tag ``MNT/cats/latest``): an inode is the pair
(parent inode, name). In a writable mount a rename moves an inode to its new pair
and a removal detaches it (:meth:`InodeTable.rename`, :meth:`InodeTable.detach`), so
an inode keeps naming the same entry; the entry itself is tracked by the view (its
node's ``place``). Numbers are handed out in increasing order and never reused
while the daemon runs, so a stale number can never name another file (no
generation numbers needed).

The kernel holds a lookup count on each inode it knows (one per ``lookup`` reply and
per accepted ``readdir`` entry) and gives them back with ``forget``; an inode whose
count falls to zero is dropped. The root is never dropped.

Each inode keeps the latest :class:`dlfs.view.Node` the view gave for its path, so
``getattr`` and ``open`` are answered without asking the catalog.
"""

from __future__ import annotations

from pyfuse3 import ROOT_INODE

from dlfs.errors import StaleInode
from dlfs.nodes import Node


class InodeTable:
    """Inode number <-> (parent inode, name), with the node and the lookup count."""

    def __init__(self, root: Node) -> None:
        self._nodes: dict[int, Node] = {ROOT_INODE: root}
        self._counts: dict[int, int] = {ROOT_INODE: 1}
        self._keys: dict[int, tuple[int, str]] = {ROOT_INODE: (ROOT_INODE, "")}
        self._by_key: dict[tuple[int, str], int] = {}
        self._names: dict[int, set[tuple[int, str]]] = {}
        """Every name of a hard-linked inode (others have one: ``_keys``)."""
        self._next = ROOT_INODE + 1

    def __len__(self) -> int:
        return len(self._nodes)

    def node(self, ino: int) -> Node:
        """The node of inode ``ino``; :class:`StaleInode` if it is unknown."""
        try:
            return self._nodes[ino]
        except KeyError:
            raise StaleInode(f"unknown inode {ino}") from None

    def parent(self, ino: int) -> int:
        """The inode of the folder holding ``ino`` (the root for the root)."""
        try:
            return self._keys[ino][0]
        except KeyError:
            raise StaleInode(f"unknown inode {ino}") from None

    def path(self, ino: int) -> str | None:
        """The path of ``ino`` in the mount (``/a/b.txt``), None if it is unknown."""
        names: list[str] = []
        while ino != ROOT_INODE:
            key = self._keys.get(ino)
            if key is None:
                return None
            ino, name = key
            names.append(name)
        return "/" + "/".join(reversed(names))

    def update(self, ino: int, node: Node) -> None:
        """Keep a fresher node for ``ino``."""
        if ino in self._nodes:
            self._nodes[ino] = node

    def assign(self, parent: int, name: str, node: Node) -> int:
        """The inode of ``name`` in ``parent`` (new if needed), holding ``node``; the
        lookup count is not changed (see :meth:`incref`)."""
        key = (parent, name)
        ino = self._by_key.get(key)
        if ino is None or ino not in self._counts:  # (another name of a dropped inode)
            ino = self._next
            self._next += 1
            self._by_key[key] = ino
            self._keys[ino] = key
            self._counts[ino] = 0
        self._nodes[ino] = node
        return ino

    def incref(self, ino: int, n: int = 1) -> None:
        """The kernel now holds ``n`` more references to ``ino``."""
        self._counts[ino] += n

    def remember(self, parent: int, name: str, node: Node) -> int:
        """:meth:`assign` and :meth:`incref`: what a successful lookup does."""
        ino = self.assign(parent, name, node)
        self._counts[ino] += 1
        return ino

    def link(self, ino: int, parent: int, name: str) -> None:
        """``name`` in ``parent`` is another name of ``ino`` (a hard link; the reply
        counts as a lookup)."""
        names = self._names.setdefault(ino, {self._keys[ino]})
        names.add((parent, name))
        self._by_key[(parent, name)] = ino
        self._counts[ino] += 1

    def detach(self, parent: int, name: str) -> tuple[int, tuple[int, str]] | None:
        """``name`` was removed from ``parent``: its inode (if any) keeps living while
        the kernel holds it, but the name will get a new inode if it is made again.
        Returns ``(inode, another name)`` when the inode has another name left."""
        key = (parent, name)
        ino = self._by_key.pop(key, None)
        names = self._names.get(ino) if ino is not None else None
        if ino is None or names is None:
            return None
        names.discard(key)
        if not names:
            del self._names[ino]
            return None
        if self._keys.get(ino) == key:
            self._keys[ino] = next(iter(names))
        return ino, self._keys[ino]

    def rename(
        self, parent: int, name: str, new_parent: int, new_name: str
    ) -> tuple[int, tuple[int, str]] | None:
        """``name`` in ``parent`` moved to ``new_name`` in ``new_parent``: its inode
        moves with it (open files and cached dentries keep naming it), and an inode
        that was at the target is detached (returned as by :meth:`detach`)."""
        left = self.detach(new_parent, new_name)
        ino = self._by_key.pop((parent, name), None)
        if ino is not None:
            self._by_key[(new_parent, new_name)] = ino
            self._keys[ino] = (new_parent, new_name)
            names = self._names.get(ino)
            if names is not None:
                names.discard((parent, name))
                names.add((new_parent, new_name))
        return left

    def drop_unused(self, ino: int) -> None:
        """Drop ``ino`` if the kernel holds no reference to it."""
        if ino != ROOT_INODE and self._counts.get(ino) == 0:
            self._drop(ino)

    def forget(self, ino: int, n: int) -> None:
        """The kernel gave back ``n`` references to ``ino``."""
        count = self._counts.get(ino)
        if count is None:
            return
        count -= n
        if count > 0 or ino == ROOT_INODE:
            self._counts[ino] = max(count, 1 if ino == ROOT_INODE else 0)
        else:
            self._drop(ino)

    def _drop(self, ino: int) -> None:
        del self._nodes[ino], self._counts[ino]
        self._names.pop(ino, None)
        key = self._keys.pop(ino)
        if self._by_key.get(key) == ino:
            del self._by_key[key]
