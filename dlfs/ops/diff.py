"""``dlfs diff A B``: what changed between two versions, in O(changes).

Both trees are walked together, folder by folder in name order, and a pair of
folders with equal tree ids is skipped without being read: equal ids mean equal
content, so the cost is proportional to the folders that differ (and the files in
them), not to the size of the versions. A draft's changed folders have unique ids and
are always read; its untouched folders still share ids with its parent.

Items are compared by lineage (``origin``), then by content:

- *modified*: the same path holds an item of the same lineage with another record;
  ``changes`` says which parts differ: ``content`` (blob or size), ``metadata``,
  ``annotations``, ``link`` (a symlink's target), ``mode``, ``owner``, ``xattrs``.
- *moved*: an item of A and an item of B share a lineage but not a path. When a
  lineage has several such items on each side they are paired in path order.
  ``changes`` lists what else changed, as for modified items.
- *removed* / *added*: every other item only in A / only in B. A path whose item
  was replaced by one of another lineage counts as one removed and one added item.

Folders are not reported on their own: an empty folder that appears or disappears is
not a change of any item.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from dlfs import versions
from dlfs.catalog import CatalogDB, Row
from dlfs.objects import DIR
from dlfs.posixattrs import Posix


@dataclass(frozen=True)
class ItemChange:
    """One changed item. ``path`` is its path in B (in A for removed items);
    ``old_path`` is its path in A for moved items."""

    kind: str  # added, removed, modified, moved
    path: str
    item: str | None = None
    old_item: str | None = None
    old_path: str | None = None
    changes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The JSON form ``dlfs diff --json`` prints."""
        if self.kind == "moved":
            return {
                "from": self.old_path,
                "to": self.path,
                "changes": list(self.changes),
                "old_item": self.old_item,
                "item": self.item,
            }
        if self.kind == "modified":
            return {
                "path": self.path,
                "changes": list(self.changes),
                "old_item": self.old_item,
                "item": self.item,
            }
        return {"path": self.path, "item": self.item if self.kind == "added" else self.old_item}


@dataclass
class Diff:
    """The changes from version ``a`` to version ``b``, each list in path order."""

    a: str
    b: str
    added: list[ItemChange] = field(default_factory=list)
    removed: list[ItemChange] = field(default_factory=list)
    modified: list[ItemChange] = field(default_factory=list)
    moved: list[ItemChange] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when the two versions hold the same items at the same paths."""
        return not (self.added or self.removed or self.modified or self.moved)

    def summary(self) -> dict[str, int]:
        """How many items of each kind changed."""
        return {
            "added": len(self.added),
            "removed": len(self.removed),
            "modified": len(self.modified),
            "moved": len(self.moved),
        }

    def to_json(self) -> dict[str, Any]:
        """The JSON form ``dlfs diff --json`` prints."""
        return {
            "a": self.a,
            "b": self.b,
            "summary": self.summary(),
            "added": [c.to_json() for c in self.added],
            "removed": [c.to_json() for c in self.removed],
            "modified": [c.to_json() for c in self.modified],
            "moved": [c.to_json() for c in self.moved],
        }

    def lines(self) -> list[str]:
        """The text form: ``A path``, ``D path``, ``M path (what)``, ``R old -> new``."""
        out: list[tuple[str, str]] = []
        for c in self.added:
            out.append((c.path, f"A  {c.path}"))
        for c in self.removed:
            out.append((c.path, f"D  {c.path}"))
        for c in self.modified:
            out.append((c.path, f"M  {c.path}  ({', '.join(c.changes)})"))
        for c in self.moved:
            extra = f"  ({', '.join(c.changes)})" if c.changes else ""
            out.append((c.path, f"R  {c.old_path} -> {c.path}{extra}"))
        return [line for _path, line in sorted(out)]


def changed_parts(a: Row, b: Row) -> tuple[str, ...]:
    """Which parts of two item records differ: content, metadata, annotations, and the
    POSIX attributes (link target, mode, owner, xattrs: :mod:`dlfs.posixattrs`)."""
    out = []
    if a["blob"] != b["blob"] or a["size"] != b["size"]:
        out.append("content")
    if a["metadata"] != b["metadata"]:
        out.append("metadata")
    if a["annotations"] != b["annotations"]:
        out.append("annotations")
    if a["posix"] != b["posix"]:
        pa, pb = Posix.parse(a["posix"]), Posix.parse(b["posix"])
        if pa.link != pb.link:
            out.append("link")
        if pa.file_mode(True) != pb.file_mode(True):
            out.append("mode")
        if (pa.uid, pa.gid) != (pb.uid, pb.gid):
            out.append("owner")
        if pa.xattrs != pb.xattrs:
            out.append("xattrs")
    return tuple(out)


def diff_trees(db: CatalogDB, a_root: str, b_root: str, a: str = "", b: str = "") -> Diff:
    """The changes from the tree ``a_root`` to ``b_root`` (``a``/``b`` label them)."""
    result = Diff(a, b)
    only_a: list[tuple[str, str]] = []  # (path, item id)
    only_b: list[tuple[str, str]] = []
    same_path: list[tuple[str, str, str]] = []  # (path, item in a, item in b)

    def side(kind: int, ref: str, path: str, out: list[tuple[str, str]]) -> None:
        if kind != DIR:
            out.append((path, ref))
            return
        for r in db.subtree_items(ref):
            if r["kind"] != DIR:
                out.append((f"{path}/{r['path']}", r["ref"]))

    def walk(ta: str, tb: str, prefix: str) -> None:
        if ta == tb:
            return
        ea = {n: (k, r) for n, k, r, _s in db.raw_entries(ta)}
        eb = {n: (k, r) for n, k, r, _s in db.raw_entries(tb)}
        for name in sorted(ea.keys() | eb.keys()):
            x, y = ea.get(name), eb.get(name)
            if x == y:
                continue
            path = prefix + name
            if x is not None and y is not None and x[0] == y[0]:
                if x[0] == DIR:
                    walk(x[1], y[1], path + "/")
                else:
                    same_path.append((path, x[1], y[1]))
                continue
            if x is not None:
                side(x[0], x[1], path, only_a)
            if y is not None:
                side(y[0], y[1], path, only_b)

    walk(a_root, b_root, "")
    rows = db.items_by_ids(
        [i for _p, i in only_a] + [i for _p, i in only_b] + [i for t in same_path for i in t[1:]]
    )
    for path, ia, ib in same_path:
        ra, rb = rows[ia], rows[ib]
        if ra["origin"] == rb["origin"]:
            result.modified.append(
                ItemChange("modified", path, ib, ia, None, changed_parts(ra, rb))
            )
        else:
            only_a.append((path, ia))
            only_b.append((path, ib))

    gone: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for path, iid in sorted(only_a):
        gone[rows[iid]["origin"]].append((path, iid))
    came: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for path, iid in sorted(only_b):
        came[rows[iid]["origin"]].append((path, iid))
    for origin, olds in gone.items():
        news = came.get(origin, [])
        for (old_path, ia), (new_path, ib) in zip(olds, news, strict=False):
            result.moved.append(
                ItemChange("moved", new_path, ib, ia, old_path, changed_parts(rows[ia], rows[ib]))
            )
        for path, ia in olds[len(news) :]:
            result.removed.append(ItemChange("removed", path, None, ia))
        if news[len(olds) :]:
            came[origin] = news[len(olds) :]
        else:
            came.pop(origin, None)
    for news in came.values():
        for path, ib in news:
            result.added.append(ItemChange("added", path, ib))

    for changes in (result.added, result.removed, result.modified, result.moved):
        changes.sort(key=lambda c: c.path)
    return result


def diff(db: CatalogDB, a_ref: str, b_ref: str) -> Diff:
    """The changes from version ``a_ref`` to version ``b_ref`` (bare names: latest)."""
    ra = versions.resolve(db, a_ref)
    rb = versions.resolve(db, b_ref)
    return diff_trees(db, ra["root"], rb["root"], _label(db, ra), _label(db, rb))


def _label(db: CatalogDB, row: Row) -> str:
    ds = db.dataset_by_id(row["dataset"])
    assert ds is not None
    return f"{ds['name']}@{row['id']}"
