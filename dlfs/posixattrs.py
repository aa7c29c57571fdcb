"""The POSIX attributes of an item: mode bits, owner, symlink target, ``user.*`` xattrs.

An item keeps them as one canonical JSON text (:attr:`dlfs.items.ItemRecord.posix`),
``""`` when it has none, so items made before dlfs kept these attributes keep their
ids. They are part of the item id: a ``chmod +x``, a ``chown``, a new link target or
a ``user.*`` attribute is a change that ``dlfs diff`` shows and a merge carries.

- ``mode``: the permission bits (``0o7777``); absent means ``0644``.
- ``uid``, ``gid``: the owner; absent means the mounting user.
- ``link``: the item is a symbolic link to this target (its blob is the empty blob).
- ``xattrs``: ``user.*`` extended attributes other than dlfs's own ``user.dlfs.*``,
  name -> value as base64 (values are bytes).
- ``type``: the item is a special file, ``fifo``, ``socket``, ``char`` or ``block``
  (a device, its number in ``rdev``); its blob is the empty blob and it never hands
  out bytes (the kernel serves fifos, sockets and devices itself).

A published mount shows the mode without its write bits (the version is read-only).
"""

from __future__ import annotations

import base64
import json
import stat
from typing import Any, NamedTuple, Protocol

from dlfs.errors import InvalidInput, NoAttribute, NotSupported
from dlfs.objects import canonical_json

DEFAULT_PERMS = 0o644
"""The permission bits of a file that has none of its own."""
DIR_PERMS = 0o755
"""The permission bits of a folder that has none of its own."""

USER_PREFIX = "user."
OWN_PREFIX = "user.dlfs."
XATTR_NAME_MAX = 255
XATTR_VALUE_MAX = 64 * 1024
"""Bytes a ``user.*`` attribute value may hold (Linux's own limit for one value)."""
XATTRS_TOTAL_MAX = 256 * 1024
"""Bytes all ``user.*`` attributes of one item may hold together."""
LINK_MAX = 4095
"""Bytes a symlink target may hold (``PATH_MAX`` less its NUL)."""


class _HasPosix(Protocol):
    @property
    def posix(self) -> str: ...


class Posix(NamedTuple):
    """The POSIX attributes of one item; None (or empty) means "the default"."""

    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    link: str | None = None
    xattrs: tuple[tuple[str, bytes], ...] = ()
    kind: str | None = None
    """A special file's type (a key of :data:`SPECIAL_TYPES`); None: a file or link."""
    rdev: int | None = None
    """The device number of a ``char`` or ``block`` special file."""

    @classmethod
    def parse(cls, text: str | None) -> Posix:
        """The attributes kept as ``text`` (``""``/None: none)."""
        if not text:
            return NONE
        raw: dict[str, Any] = json.loads(text)
        xattrs = tuple(sorted((k, base64.b64decode(v)) for k, v in raw.get("xattrs", {}).items()))
        return cls(
            raw.get("mode"),
            raw.get("uid"),
            raw.get("gid"),
            raw.get("link"),
            xattrs,
            raw.get("type"),
            raw.get("rdev"),
        )

    def text(self, default: int = DEFAULT_PERMS) -> str:
        """The canonical JSON text kept in the catalog; ``""`` when all are defaults
        (``default``: the mode not written, :data:`DIR_PERMS` for a folder)."""
        raw: dict[str, Any] = {}
        if self.mode is not None and (self.mode != default or self.link is not None):
            raw["mode"] = self.mode
        if self.uid is not None:
            raw["uid"] = self.uid
        if self.gid is not None:
            raw["gid"] = self.gid
        if self.link is not None:
            raw["link"] = self.link
            raw.pop("mode", None)  # a link's mode is always 0777
        if self.xattrs:
            raw["xattrs"] = {k: base64.b64encode(v).decode() for k, v in self.xattrs}
        if self.kind is not None:
            raw["type"] = self.kind
            if self.rdev:
                raw["rdev"] = self.rdev
        return canonical_json(raw) if raw else ""

    @property
    def is_link(self) -> bool:
        """True for a symbolic link."""
        return self.link is not None

    def file_mode(self, writable: bool) -> int:
        """``st_mode`` of the item: a link is ``0777``; a read-only view drops the
        write bits."""
        if self.link is not None:
            return stat.S_IFLNK | 0o777
        perms = DEFAULT_PERMS if self.mode is None else self.mode
        if not writable:
            perms &= ~0o222
        return SPECIAL_TYPES.get(self.kind or "", stat.S_IFREG) | perms

    @property
    def is_special(self) -> bool:
        """True for a fifo, socket or device file."""
        return self.kind is not None

    def with_mode(self, mode: int) -> Posix:
        """These attributes with permission bits ``mode`` (its type bits ignored)."""
        return self._replace(mode=stat.S_IMODE(mode))

    def with_owner(self, uid: int | None, gid: int | None) -> Posix:
        """These attributes with another owner (None keeps that part)."""
        return self._replace(
            uid=self.uid if uid is None else uid, gid=self.gid if gid is None else gid
        )

    def xattr(self, name: str) -> bytes:
        """The value of ``user.*`` attribute ``name``, or :class:`NoAttribute`."""
        for k, v in self.xattrs:
            if k == name:
                return v
        raise NoAttribute(name)

    def with_xattr(self, name: str, value: bytes | None) -> Posix:
        """These attributes with ``name`` set to ``value`` (None removes it: then
        :class:`NoAttribute` when it is not set). Checks the name and the limits."""
        check_user_name(name)
        rest = tuple((k, v) for k, v in self.xattrs if k != name)
        if value is None:
            if len(rest) == len(self.xattrs):
                raise NoAttribute(name)
            return self._replace(xattrs=rest)
        if len(value) > XATTR_VALUE_MAX:
            raise InvalidInput(f"{name}: values are limited to {XATTR_VALUE_MAX} bytes")
        xattrs = tuple(sorted((*rest, (name, bytes(value)))))
        if sum(len(k) + len(v) for k, v in xattrs) > XATTRS_TOTAL_MAX:
            raise InvalidInput(f"{name}: a file's attributes are limited to {XATTRS_TOTAL_MAX}")
        return self._replace(xattrs=xattrs)

    def xattr_names(self) -> list[str]:
        """The names of the ``user.*`` attributes set."""
        return [k for k, _v in self.xattrs]


NONE = Posix()

SPECIAL_TYPES = {
    "fifo": stat.S_IFIFO,
    "socket": stat.S_IFSOCK,
    "char": stat.S_IFCHR,
    "block": stat.S_IFBLK,
}
"""The special files an item may be: name kept -> its ``st_mode`` type bits."""


def special(mode: int, rdev: int) -> Posix:
    """The attributes of a special file of ``mode`` (type and permission bits) and
    device ``rdev``; :class:`NotSupported` for a type that is not special."""
    for name, bits in SPECIAL_TYPES.items():
        if stat.S_IFMT(mode) == bits:
            device = bits in (stat.S_IFCHR, stat.S_IFBLK)
            return Posix(mode=stat.S_IMODE(mode), kind=name, rdev=rdev if device else None)
    raise NotSupported(f"cannot make a file of type {stat.S_IFMT(mode):o}")


def rdev_of(text: str | None) -> int:
    """``st_rdev`` of an item keeping ``text`` (0 but for a device file)."""
    if not text or '"rdev"' not in text:
        return 0
    return Posix.parse(text).rdev or 0


def node_fields(text: str | None, writable: bool) -> tuple[int, int, int, int]:
    """``(st_mode, uid, gid, link size)`` of a file whose item keeps ``text`` (uid/gid
    -1: the mounting user's; link size -1: not a symlink, else its target's length in
    bytes, its ``st_size``); no parsing for the common item that keeps nothing."""
    if not text:
        return stat.S_IFREG | (DEFAULT_PERMS if writable else 0o444), -1, -1, -1
    posix = Posix.parse(text)
    uid = -1 if posix.uid is None else posix.uid
    gid = -1 if posix.gid is None else posix.gid
    size = -1 if posix.link is None else len(posix.link.encode())
    return posix.file_mode(writable), uid, gid, size


def folder_fields(text: str | None, writable: bool) -> tuple[int, int, int]:
    """``(st_mode, uid, gid)`` of a folder whose tree keeps ``text`` (uid/gid -1: the
    mounting user's); a read-only view drops the write bits."""
    posix = Posix.parse(text)
    perms = DIR_PERMS if posix.mode is None else posix.mode
    if not writable:
        perms &= ~0o222
    uid = -1 if posix.uid is None else posix.uid
    gid = -1 if posix.gid is None else posix.gid
    return stat.S_IFDIR | perms, uid, gid


def is_user_xattr(name: str) -> bool:
    """True for a ``user.*`` name that is not one of dlfs's own ``user.dlfs.*``."""
    return name.startswith(USER_PREFIX) and not name.startswith(OWN_PREFIX)


def check_user_name(name: str) -> str:
    """``name`` when an item may keep it; else :class:`NotSupported` (other
    namespaces) or :class:`InvalidInput` (too long, empty)."""
    if not is_user_xattr(name):
        raise NotSupported(f"{name}: only user.* extended attributes are kept")
    if len(name.encode("utf-8", "surrogateescape")) > XATTR_NAME_MAX or name == USER_PREFIX:
        raise InvalidInput(f"invalid extended attribute name {name[:40]!r}")
    return name


def check_link_target(target: str) -> str:
    """``target`` when a symlink may hold it; else :class:`InvalidInput`."""
    try:
        size = len(target.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput(f"symlink target {target!r} is not UTF-8") from None
    if not target or size > LINK_MAX or "\0" in target:
        raise InvalidInput(f"invalid symlink target {target[:40]!r}")
    return target


def link_of(item: _HasPosix) -> str:
    """The target of a symlink item; :class:`InvalidInput` for another item."""
    link = Posix.parse(item.posix).link
    if link is None:
        raise InvalidInput("not a symlink")
    return link


def link_text(target: str) -> str:
    """The kept text of a symlink to ``target``."""
    return Posix(link=check_link_target(target)).text()
