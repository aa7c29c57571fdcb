"""``dlfs merge``: one new dataset from several versions, with Dataloop's semantics.

*Lineage decides what is "the same item".* Every item carries an ``origin``, given at
import and kept through clones, edits and pointer copies, so two items with one origin
are copies of one item (typically a dataset and its clones, annotated by different
teams). The merge of refs ``R1 R2 ...`` is built like this:

1. Checks, before anything is written: at least two refs; one storage for all
   (binaries are never copied across storages); one labels recipe for all (a
   :class:`Conflict` names the labels that differ); a free name for the result.
2. Matching: the refs are read in order, each in path order. An item of ``Rk`` joins
   an item already collected from ``R1..Rk-1`` with the same origin: preferably one
   at the same path, otherwise the first unmatched one in path order. Any other item
   starts a new merged item. (One version may hold several items of one origin after
   a ``cp``: they stay distinct, paired one to one.)
3. A merged item keeps the path where it was first seen (its first ref's path) and
   takes its bytes from the last ref that has it. Its annotations are the union of all
   its copies' lists in ref order, duplicates (equal JSON) removed, first occurrence
   kept. Its metadata is the deep merge of its copies' objects in ref order (nested
   objects merge key by key; for any other value the later ref wins).
   ``--no-metadata`` / ``--no-annotations`` give every item of the result none, as
   clone does. Otherwise an item seen only once is taken unchanged. Copies holding
   different bytes are a *content conflict*: there is no common base to tell which
   copy changed, so the last ref's bytes win and the conflict is reported
   (:class:`MergeConflict`); ``on_conflict="fail"`` refuses them.
4. Unrelated items are summed (Dataloop's rule). When two want one path, ``"rename"``
   (the default) keeps both, the later one (in ref order, then path order) renamed
   ``a (2).jpg``, ``a (3).jpg``... with the lowest number that is free, and reports
   it; ``"fail"`` stops with a :class:`Conflict` listing the paths and writes
   nothing. Folders keep their names: a file that clashes with a folder is the one
   renamed. The result is deterministic.
5. Folders, including empty ones, are the union of the refs' folders. The result is
   stored as immutable trees built bottom-up; the new dataset (kind ``merge``)
   records its sources and the common recipe and storage, and its first version is
   a draft, or published with ``publish=True``.

Refs may be published versions (a bare ``NAME`` means ``NAME@latest``) or drafts,
whose current state is frozen first without changing them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from dlfs import versions
from dlfs.catalog import CatalogDB, Row
from dlfs.errors import Conflict, InvalidInput
from dlfs.items import EMPTY_ANNOTATIONS, EMPTY_METADATA, ItemRecord, ItemRow
from dlfs.objects import DIR, canonical_json
from dlfs.ops.clone import build_paths, check_new_name, frozen_root, source_entry

ON_CONFLICT = ("rename", "fail")
_LIST_MAX = 20


# -- label recipes -------------------------------------------------------------------


def recipe_labels(recipe: Any) -> dict[str, str]:
    """The labels a recipe defines, each with its definition as canonical JSON.

    A recipe is a JSON list or object. A list holds label names, or objects naming
    their label under ``"label"``, ``"name"`` or ``"tag"``; an object with a
    ``"labels"`` key defines its labels there; any other object maps label names to
    their definitions.
    """
    if recipe is None:
        return {}
    if isinstance(recipe, dict) and "labels" in recipe:
        return recipe_labels(recipe["labels"])
    out: dict[str, str] = {}
    if isinstance(recipe, dict):
        for name, definition in recipe.items():
            out[str(name)] = canonical_json(definition)
    elif isinstance(recipe, list):
        for entry in recipe:
            if isinstance(entry, str):
                out[entry] = canonical_json(entry)
            elif isinstance(entry, dict):
                name = next(
                    (entry[k] for k in ("label", "name", "tag") if isinstance(entry.get(k), str)),
                    canonical_json(entry),
                )
                out[name] = canonical_json(entry)
            else:
                out[canonical_json(entry)] = canonical_json(entry)
    return out


def check_recipes(refs: list[str], recipes: list[str | None]) -> None:
    """Refuse different label recipes, naming the labels that differ."""
    first = recipes[0]
    for ref, recipe in zip(refs[1:], recipes[1:], strict=True):
        if recipe == first:
            continue
        a = recipe_labels(None if first is None else json.loads(first))
        b = recipe_labels(None if recipe is None else json.loads(recipe))
        only_a = sorted(set(a) - set(b))
        only_b = sorted(set(b) - set(a))
        changed = sorted(k for k in set(a) & set(b) if a[k] != b[k])
        bits = []
        if only_a:
            bits.append(f"only in {refs[0]}: {', '.join(only_a)}")
        if only_b:
            bits.append(f"only in {ref}: {', '.join(only_b)}")
        if changed:
            bits.append(f"defined differently: {', '.join(changed)}")
        if not bits:
            bits.append("same labels, in another order or with other settings")
        raise Conflict(
            f"cannot merge {refs[0]} and {ref}: their label recipes differ ({'; '.join(bits)})"
        )


# -- merging items -------------------------------------------------------------------


@dataclass
class _Slot:
    """One item of the result: the copies of it found in the refs, in ref order, and
    the index of the ref each copy came from."""

    path: str
    copies: list[Row] = field(default_factory=list)
    refs: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class MergeConflict:
    """One conflict a merge met and resolved by its rule (or refused, with
    ``on_conflict="fail"``).

    ``kind`` is ``"content"`` (copies of one item hold different bytes: the last ref's
    bytes are taken) or ``"path"`` (unrelated items want one path: the later one is
    renamed to ``path_taken``). ``refs`` are the refs involved, in ref order.
    """

    kind: str
    path: str
    refs: tuple[str, ...]
    took: str
    """``content``: the ref whose bytes the item has; ``path``: the path it got."""

    def line(self) -> str:
        """One line for people."""
        if self.kind == "content":
            return (
                f"content differs at {self.path} in {', '.join(self.refs)}:"
                f" took {self.took}'s bytes"
            )
        where = f"also in {self.refs[0]}" if len(self.refs) > 1 else "a folder"
        return f"{self.path} of {self.refs[-1]} is {where}: kept as {self.took}"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path, "refs": list(self.refs), "took": self.took}


def deep_merge(base: Any, top: Any) -> Any:
    """``top`` over ``base``: objects merge key by key, anything else ``top`` wins."""
    if isinstance(base, dict) and isinstance(top, dict):
        out = dict(base)
        for key, value in top.items():
            out[key] = deep_merge(out[key], value) if key in out else value
        return out
    return top


# canonical_json's settings, with one encoder instead of one per call (merge is hot).
_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def union(lists: list[list[Any]]) -> list[Any]:
    """The concatenation of ``lists`` without repeats (equal JSON), first kept."""
    seen: set[str] = set()
    out = []
    for values in lists:
        for value in values:
            key = _canonical(value)
            if key not in seen:
                seen.add(key)
                out.append(value)
    return out


def _match(slots: list[_Slot], rows: list[Row], ref: int) -> None:
    """Add the file rows (path order) of ref number ``ref`` to ``slots``, matching by
    lineage."""
    by_origin: dict[str, list[_Slot]] = defaultdict(list)
    for slot in slots:
        by_origin[slot.copies[0]["origin"]].append(slot)
    mine: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        mine[row["origin"]].append(row)
    fresh: list[Row] = []
    pairs: list[tuple[_Slot, Row]] = []
    for origin, group in mine.items():
        candidates = list(by_origin.get(origin, ()))
        if not candidates:
            fresh.extend(group)
            continue
        if len(group) == 1 and len(candidates) == 1:
            pairs.append((candidates[0], group[0]))  # the usual case: one copy each
            continue
        rest: list[Row] = []
        for row in group:
            same = next((s for s in candidates if s.path == row["path"]), None)
            if same is not None:
                candidates.remove(same)
                pairs.append((same, row))
            else:
                rest.append(row)
        for row in rest:
            if candidates:
                pairs.append((candidates.pop(0), row))
            else:
                fresh.append(row)
    for slot, row in pairs:
        slot.copies.append(row)
        slot.refs.append(ref)
    fresh.sort(key=lambda r: r["path"])
    slots.extend(_Slot(row["path"], [row], [ref]) for row in fresh)


def _merged_item(slot: _Slot, metadata: bool, annotations: bool) -> tuple[str, ItemRow | None, int]:
    """``(item id, new item row or None, size)`` for one slot."""
    first, last = slot.copies[0], slot.copies[-1]
    drops = (not metadata and first["metadata"] != EMPTY_METADATA) or (
        not annotations and first["annotations"] != EMPTY_ANNOTATIONS
    )
    if len(slot.copies) == 1 and not drops:
        return first["ref"], None, first["size"]
    meta_texts = [c["metadata"] for c in slot.copies]
    if not metadata:
        meta_text = EMPTY_METADATA
    elif all(t == meta_texts[0] for t in meta_texts):
        meta_text = meta_texts[0]  # deep-merging an object over itself gives itself
    else:
        meta: Any = {}
        for text in meta_texts:
            meta = deep_merge(meta, json.loads(text))
        meta_text = _canonical(meta)
    ann_texts = [c["annotations"] for c in slot.copies]
    if not annotations:
        ann_text = EMPTY_ANNOTATIONS
    elif len(ann_texts) == 1:
        ann_text = ann_texts[0]
    else:
        distinct = list(dict.fromkeys(ann_texts))
        ann_text = _canonical(union([json.loads(t) for t in distinct]))
    record = ItemRecord(
        first["origin"],
        last["blob"],
        last["size"],
        last["mtime"],
        meta_text,
        ann_text,
        last["posix"] or "",  # mode, owner, link and xattrs go with the bytes
    )
    return record.id, record.row(), record.size


# -- paths ---------------------------------------------------------------------------


def renamed(path: str, n: int) -> str:
    """``a/b.jpg`` -> ``a/b (n).jpg``; ``a/b`` -> ``a/b (n)``."""
    folder, sep, name = path.rpartition("/")
    dot = name.rfind(".")
    stem, ext = (name[:dot], name[dot:]) if dot > 0 else (name, "")
    return f"{folder}{sep}{stem} ({n}){ext}"


def place(paths: list[str], folders: set[str], rename: bool) -> list[str]:
    """Final paths for files that want ``paths`` (in priority order) among ``folders``.

    The first file to want a free path gets it; the others are conflicts, renamed
    when ``rename``, else reported with a :class:`Conflict`.
    """
    final: list[str | None] = []
    claimed: set[str] = set()
    conflicts: list[int] = []
    for i, path in enumerate(paths):
        if path in folders or path in claimed:
            final.append(None)
            conflicts.append(i)
        else:
            claimed.add(path)
            final.append(path)
    if conflicts and not rename:
        clashing = sorted({paths[i] for i in conflicts})
        shown = ", ".join(clashing[:_LIST_MAX])
        more = f" and {len(clashing) - _LIST_MAX} more" if len(clashing) > _LIST_MAX else ""
        raise Conflict(
            f"cannot merge: unrelated items want the same path: {shown}{more}"
            " (use --on-conflict rename to keep both)"
        )
    for i in conflicts:
        n = 2
        while (candidate := renamed(paths[i], n)) in claimed or candidate in folders:
            n += 1
        claimed.add(candidate)
        final[i] = candidate
    return [p for p in final if p is not None]


# -- merge ---------------------------------------------------------------------------


def merge(
    db: CatalogDB,
    name: str,
    refs: list[str],
    metadata: bool = True,
    annotations: bool = True,
    on_conflict: str = "rename",
    publish: bool = False,
) -> tuple[str, list[MergeConflict]]:
    """Merge the versions ``refs`` into a new dataset ``name``; return its first
    version's id and the conflicts it resolved. Runs inside the caller's transaction;
    see the module doc."""
    if len(refs) < 2:
        raise InvalidInput("merge needs at least two refs")
    if on_conflict not in ON_CONFLICT:
        raise InvalidInput(f"invalid --on-conflict {on_conflict!r}: use rename or fail")
    rows = [versions.resolve(db, ref) for ref in refs]
    datasets = []
    for row in rows:
        ds = db.dataset_by_id(row["dataset"])
        assert ds is not None
        datasets.append(ds)
    storages = {ds["storage"] for ds in datasets}
    if len(storages) > 1:
        where = ", ".join(
            f"{ref} in {ds['storage']!r}" for ref, ds in zip(refs, datasets, strict=True)
        )
        raise Conflict(f"cannot merge across storages ({where}): binaries stay in one storage")
    check_recipes(refs, [ds["labels"] for ds in datasets])
    check_new_name(db, name)

    roots = [frozen_root(db, row["root"]) for row in rows]
    db.map_for_reading()  # every item of every ref is read: without copies
    slots: list[_Slot] = []
    folders: set[str] = set()
    # a folder keeps its attributes as the first ref holding it has them
    attrs: dict[tuple[str, ...], tuple[str, float | None, float | None]] = {
        (): db.tree_attrs(roots[0])
    }
    for k, root in enumerate(roots):
        files = []
        for r in db.subtree_items(root):
            if r["kind"] == DIR:
                folders.add(r["path"])
                attrs.setdefault(tuple(r["path"].split("/")), db.tree_attrs(r["ref"]))
            else:
                files.append(r)
        _match(slots, files, k)

    for slot in slots:
        parts = slot.path.split("/")
        folders.update("/".join(parts[:i]) for i in range(1, len(parts)))
    conflicts = _content_conflicts(slots, refs)
    if conflicts and on_conflict == "fail":
        shown = "; ".join(f"{c.path} ({', '.join(c.refs)})" for c in conflicts[:_LIST_MAX])
        more = f" and {len(conflicts) - _LIST_MAX} more" if len(conflicts) > _LIST_MAX else ""
        raise Conflict(
            f"cannot merge: copies of one item hold different bytes: {shown}{more}"
            " (without --on-conflict fail the last ref's bytes are taken)"
        )
    paths = place([s.path for s in slots], folders, on_conflict == "rename")
    conflicts += _path_conflicts(slots, paths, refs)

    new_items = []
    files_out: list[tuple[list[str], str, int]] = []
    for slot, path in zip(slots, paths, strict=True):
        iid, new, size = _merged_item(slot, metadata, annotations)
        if new is not None:
            new_items.append(new)
        files_out.append((path.split("/"), iid, size))
    db.items_put(sorted(new_items))  # in key order: each B-tree page is written once
    root = build_paths(db, files_out, [f.split("/") for f in folders], attrs)

    sources = [{**source_entry(db, row), "root": r} for row, r in zip(rows, roots, strict=True)]
    labels = datasets[0]["labels"]
    ds, _ = versions.create_dataset(
        db,
        name,
        labels=None if labels is None else json.loads(labels),
        storage=datasets[0]["storage"],
        kind="merge",
        sources=sources,
        root=root,
    )
    (draft,) = db.versions_of(ds["id"])
    if not publish:
        return str(draft["id"]), conflicts
    return versions.publish(db, draft), conflicts


def _content_conflicts(slots: list[_Slot], refs: list[str]) -> list[MergeConflict]:
    """The items whose copies hold different bytes, in path order."""
    out = []
    for slot in slots:
        if len(slot.copies) > 1 and any(c["blob"] != slot.copies[0]["blob"] for c in slot.copies):
            involved = tuple(dict.fromkeys(refs[k] for k in slot.refs))
            out.append(MergeConflict("content", slot.path, involved, refs[slot.refs[-1]]))
    out.sort(key=lambda c: c.path)
    return out


def _path_conflicts(slots: list[_Slot], paths: list[str], refs: list[str]) -> list[MergeConflict]:
    """The items renamed because another item (or a folder) had their path."""
    owner = {slot.path: slot for slot, path in zip(slots, paths, strict=True) if path == slot.path}
    out = []
    for slot, path in zip(slots, paths, strict=True):
        if path != slot.path:
            first = owner.get(slot.path)
            involved = (refs[first.refs[0]],) if first is not None else ()
            out.append(MergeConflict("path", slot.path, (*involved, refs[slot.refs[0]]), path))
    return out
