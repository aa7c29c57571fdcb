"""The extended attributes dlfs gives a mounted tree: one table, read by every view.

Each :class:`XAttr` says which nodes have it (files or version roots), how its value is
read from what the view knows of the node (an :class:`dlfs.items.ItemRecord` for a
file, a :class:`VersionFacts` for a version root), and, for the writable ones, how a
value is checked and which field of the item it sets. Adding an attribute is one line
in :data:`TABLE`; ``listxattr``, ``getxattr``, ``setxattr`` and ``removexattr`` of both
views follow it.

Names outside ``user.dlfs.`` (``security.selinux``, ACLs...) are answered at once,
without touching the catalog: no such attribute.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from dlfs import jsonvalues
from dlfs.errors import NoAttribute, NotPermitted, NotSupported
from dlfs.items import EMPTY_ANNOTATIONS, EMPTY_METADATA, ItemRecord
from dlfs.nodes import Node, Role

PREFIX = "user.dlfs."


class VersionFacts(NamedTuple):
    """What the attributes of a version root tell."""

    id: str
    state: str
    """``draft``, ``published`` or ``deleted``."""
    dataset: str
    metadata: str = "{}"
    """The version's metadata, canonical JSON (``dlfs version meta``)."""


@dataclass(frozen=True)
class XAttr:
    """One extended attribute of dlfs."""

    name: str
    role: Role
    """The nodes that have it: :attr:`Role.FILE` or :attr:`Role.VERSION`."""
    read: Callable[[Any], str]
    """Its value, from the node's :class:`ItemRecord` or :class:`VersionFacts`."""
    field: str = ""
    """The item field a write sets (``metadata``, ``annotations``); empty: read-only."""
    check: Callable[[Any], str] | None = None
    """Checks a written value (parsed JSON) and returns its canonical text
    (:mod:`dlfs.jsonvalues`)."""
    empty: str = ""
    """The value ``removexattr`` leaves."""
    before_commit: bool = False
    """Readable on a file created in a draft mount and not yet closed (no item yet)."""
    on_node: Callable[[Node], str] | None = None
    """Its value from the node alone, when the node carries it (no catalog query)."""

    def parse(self, value: bytes) -> str:
        """A written value as the canonical JSON text the item keeps;
        :class:`InvalidInput` when it is not valid JSON of the right shape,
        :class:`dlfs.errors.TooLarge` over its limit (see :mod:`dlfs.jsonvalues`)."""
        assert self.check is not None
        return self.check(jsonvalues.parse(value, self.name))


TABLE = (
    XAttr("user.dlfs.item", Role.FILE, lambda item: item.id, on_node=lambda node: node.ref),
    XAttr("user.dlfs.blob", Role.FILE, lambda item: item.blob, on_node=lambda node: node.blob),
    XAttr(
        "user.dlfs.metadata",
        Role.FILE,
        lambda item: item.metadata,
        "metadata",
        jsonvalues.metadata_text,
        EMPTY_METADATA,
        before_commit=True,
    ),
    XAttr(
        "user.dlfs.annotations",
        Role.FILE,
        lambda item: item.annotations,
        "annotations",
        jsonvalues.annotations_text,
        EMPTY_ANNOTATIONS,
        before_commit=True,
    ),
    XAttr("user.dlfs.version", Role.VERSION, lambda version: version.id),
    XAttr("user.dlfs.state", Role.VERSION, lambda version: version.state),
    XAttr("user.dlfs.dataset", Role.VERSION, lambda version: version.dataset),
    XAttr("user.dlfs.version_metadata", Role.VERSION, lambda version: version.metadata),
)
"""Every extended attribute, in the order ``listxattr`` gives them."""

_BY_NAME = {attr.name: attr for attr in TABLE}


def names(role: Role) -> list[str]:
    """The attributes a node of ``role`` has (``listxattr``)."""
    return [attr.name for attr in TABLE if attr.role == role]


def find(role: Role, name: str) -> XAttr:
    """The attribute ``name`` of a node of ``role``; :class:`NoAttribute` if it has none."""
    attr = _BY_NAME.get(name)
    if attr is None or attr.role != role:
        raise NoAttribute(name)
    return attr


def writable(role: Role, name: str) -> XAttr:
    """The attribute ``setxattr`` may set: :class:`NotPermitted` for dlfs's read-only
    ones, :class:`NotSupported` for names dlfs does not keep or nodes that keep none."""
    attr = _BY_NAME.get(name)
    if attr is None or not attr.field:
        if name.startswith(PREFIX):
            settable = " or ".join(a.name for a in TABLE if a.field)
            raise NotPermitted(f"{name} is read-only; set {settable}")
        raise NotSupported(f"dlfs keeps no extended attribute {name!r}")
    if attr.role != role:
        raise NotSupported(f"{name} is kept on files only")
    return attr


def removable(role: Role, name: str) -> XAttr:
    """The attribute ``removexattr`` may reset: :class:`NotPermitted` for dlfs's
    read-only ones the node has (they exist, so not ``ENODATA``), :class:`NoAttribute`
    for names the node does not have."""
    attr = _BY_NAME.get(name)
    if attr is None or attr.role != role:
        raise NoAttribute(name)
    if not attr.field:
        raise NotPermitted(f"{name} is read-only: dlfs computes it")
    return attr


def relabel(item: ItemRecord, attr: XAttr, value: str) -> ItemRecord:
    """``item`` with the field ``attr`` writes set to ``value`` (canonical JSON)."""
    return item.relabelled(**{attr.field: value})
