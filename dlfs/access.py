"""The access rule of a project's mounts: who may reach the files, as the kernel checks.

A project with a Unix group (:mod:`dlfs.projects`) is mounted with ``allow_other`` and
``default_permissions``; every node of such a mount is presented through its
:class:`AccessRule`, so the kernel lets the group in and no one else:

- the group of every file, folder and symlink is the project's, whatever an item keeps;
- the owner is the item's own (:mod:`dlfs.posixattrs`), else the project's owner;
- the mode gives the group what it gives the owner, others nothing, and is capped at
  ``0550`` (``r-x`` for owner and group) on a read-only mount, ``0770`` on a draft
  mounted read-write: a file kept as ``0644`` shows ``0440`` (``0660`` in a writable
  draft), ``0755`` shows ``0550``; set-id and sticky bits never show.

A symlink's mode is never checked by the kernel and is left as it is.
"""

from __future__ import annotations

import stat
from typing import NamedTuple

from dlfs.nodes import Node


class AccessRule(NamedTuple):
    """How the nodes of one project's mount are presented."""

    owner: int
    """The uid shown for what keeps no owner of its own."""
    group: int
    """The gid shown for everything."""
    writable: bool
    """True for a draft mounted read-write: the cap is ``0770``, else ``0550``."""

    def present(self, mode: int, uid: int, gid: int) -> tuple[int, int, int]:
        """``(st_mode, st_uid, st_gid)`` shown for a node whose own are the arguments
        (``uid`` -1: it keeps no owner)."""
        owner = self.owner if uid < 0 else uid
        if stat.S_ISLNK(mode):
            return mode, owner, self.group
        bits = (mode >> 6) & 0o7
        cap = 0o770 if self.writable else 0o550
        return stat.S_IFMT(mode) | ((bits << 6 | bits << 3) & cap), owner, self.group


def shown(node: Node, rule: AccessRule | None, uid: int, gid: int) -> tuple[int, int, int]:
    """``(st_mode, st_uid, st_gid)`` a mount shows for ``node``: through ``rule`` when
    its project has one, else its own, ``uid``/``gid`` (the mounting user's) standing
    for the owner it does not keep."""
    if rule is not None:
        return rule.present(node.mode, node.uid, node.gid)
    return node.mode, uid if node.uid < 0 else node.uid, gid if node.gid < 0 else node.gid
