"""``dlfs clone``: a new dataset whose first version points at another version's items.

Dataloop's clone, on content-addressed trees:

- The clone is a new dataset of kind ``clone`` that records its source (dataset,
  version id and root tree id), takes the source's labels recipe and stays in the
  source's storage: its items point at the same binaries, so cloning into another
  storage is refused.
- Unfiltered and with metadata and annotations, the clone's first version simply
  starts at the source's root tree id: one dataset row and one version row, whatever
  the size of the source (O(1)).
- ``--no-metadata`` / ``--no-annotations`` give every item a new record with the same
  lineage (``origin``), blob and size and ``{}`` / ``[]``: O(items) rows, and no
  binary is read or copied. Sub-folders are rebuilt bottom-up with
  :func:`dlfs.trees.build_tree`; equal source folders map to equal results, so each
  distinct folder is transformed once.
- ``--include GLOB`` (repeatable, any may match) and ``--where EXPR`` (see
  :mod:`dlfs.ops.where`; both must hold) select a subset. Folders left empty by a
  filter are left out. A folder that an ``--include`` pattern names is selected whole
  (``--include train`` is ``train/**``), and is shared as is when nothing else changes
  in it.

Glob patterns match the whole item path relative to the version root (``train/a.jpg``,
no leading slash). ``*`` and ``?`` never cross a ``/``; ``**`` does: ``train/*.jpg`` is
the jpg files directly in ``train``, ``train/**.jpg`` or ``train/**/*.jpg`` those at
any depth below it, and ``**/*.jpg`` every jpg file. ``[abc]`` and ``[!abc]`` are
character classes.

The source may be a published version (a bare ``NAME`` means ``NAME@latest``) or a
draft (``NAME@draft``): a draft's current state is frozen into immutable trees first,
without changing the draft, so the clone is reproducible from its recorded root either
way.

:func:`new_lineage` gives the items of a draft's folder or file fresh lineage ids: what
``cp --new-lineage`` needs after a pointer copy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dlfs import versions
from dlfs.catalog import CatalogDB, Row
from dlfs.errors import AlreadyExists, Conflict, InvalidInput
from dlfs.items import ItemRecord, ItemRow
from dlfs.names import check_dataset_name
from dlfs.objects import DIR, FILE, is_mutable, new_origin
from dlfs.ops import where as where_lang
from dlfs.trees import DraftTree, build_tree, resolve, totals

Progress = Callable[[int], None]
_STAGE = 10_000


# -- globs ---------------------------------------------------------------------------


def _normalize(pattern: str) -> str:
    pat = pattern.lstrip("/")
    while pat.startswith("./"):
        pat = pat[2:].lstrip("/")
    if not pat:
        raise InvalidInput(f"invalid --include pattern {pattern!r}: it is empty")
    return pat


def _translate(pat: str) -> str:
    out: list[str] = []
    i, n = 0, len(pat)
    while i < n:
        c = pat[i]
        if c == "*":
            if pat.startswith("**/", i):
                out.append("(?:.*/)?")
                i += 3
            elif pat.startswith("**", i):
                out.append(".*")
                i += 2
            else:
                out.append("[^/]*")
                i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            j = i + 1
            if j < n and pat[j] == "!":
                j += 1
            if j < n and pat[j] == "]":
                j += 1
            while j < n and pat[j] != "]":
                j += 1
            if j >= n:
                out.append(re.escape(c))
                i += 1
                continue
            body = pat[i + 1 : j]
            negate = body.startswith("!")
            if negate:
                body = body[1:]
            body = "".join("\\" + ch if ch in "\\^[&~|" else ch for ch in body)
            out.append(f"(?!/)[{'^' if negate else ''}{body}]")
            i = j + 1
        else:
            out.append(re.escape(c))
            i += 1
    return "(?s:" + "".join(out) + r")\Z"


def _compile(pattern: str, pat: str) -> re.Pattern[str]:
    try:
        return re.compile(_translate(pat))
    except re.error as exc:
        raise InvalidInput(f"invalid --include pattern {pattern!r}: {exc}") from exc


def glob_regex(pattern: str) -> re.Pattern[str]:
    """The regex for one ``--include`` pattern (see the module doc for the syntax)."""
    return _compile(pattern, _normalize(pattern))


class Globs:
    """Paths matching any of several ``--include`` patterns.

    Besides testing a path, it tells whether anything under a folder could match, so
    a filtered clone skips the folders no pattern can reach without reading them.
    """

    def __init__(self, patterns: Sequence[str]) -> None:
        self.regexes = [glob_regex(p) for p in patterns]
        # Per pattern, one regex per path segment; None where the segments cannot be
        # told apart: a '**' (matches across folders) or a '/' inside brackets.
        self.segments: list[list[re.Pattern[str] | None]] = []
        for pattern in patterns:
            pat = _normalize(pattern)
            if re.search(r"\[!?\]?[^\]]*/", pat):
                self.segments.append([None])
                continue
            self.segments.append(
                [None if "**" in seg else _compile(pattern, seg) for seg in pat.split("/")]
            )

    def __call__(self, path: str) -> bool:
        """True when ``path`` matches a pattern."""
        return any(r.match(path) for r in self.regexes)

    def may_match_under(self, folder: str) -> bool:
        """False only when no path under ``folder`` (``a/b``) can match a pattern."""
        parts = folder.split("/")
        for segments in self.segments:
            for i, part in enumerate(parts):
                if i >= len(segments):
                    break  # the pattern is shallower than anything under the folder
                seg = segments[i]
                if seg is None:
                    return True
                if not seg.match(part):
                    break
            else:
                if len(segments) > len(parts):
                    return True
        return False


def glob_matcher(patterns: Sequence[str]) -> Globs | None:
    """The :class:`Globs` of ``patterns`` (None when there are none)."""
    return Globs(patterns) if patterns else None


# -- shared tree helpers -------------------------------------------------------------


def frozen_root(db: CatalogDB, tree: str) -> str:
    """An immutable tree equal to ``tree``; a draft's mutable folders are copied and
    hashed (O(changed folders)) and the draft itself is left unchanged."""
    if not is_mutable(tree):
        return tree
    entries = [
        (name, kind, frozen_root(db, ref) if kind == DIR else ref, size)
        for name, kind, ref, size in db.raw_entries(tree)
    ]
    return build_tree(db, entries, db.tree_attrs(tree))


def build_paths(
    db: CatalogDB,
    files: Iterable[tuple[Sequence[str], str, int]],
    folders: Iterable[Sequence[str]] = (),
    attrs: Mapping[tuple[str, ...], tuple[str, float | None, float | None]] | None = None,
) -> str:
    """Store an immutable tree from ``(path parts, item id, size)`` files and extra
    (possibly empty) ``folders``, folders keeping ``attrs`` (path parts -> their
    ``(posix, mtime, ctime)``; ``()`` the root); return the root id. Paths must not
    clash."""
    own: dict[tuple[str, ...], list[tuple[str, int, str, int]]] = {(): []}
    subdirs: dict[tuple[str, ...], set[str]] = {(): set()}

    def ensure(folder: tuple[str, ...]) -> None:
        while folder not in own:
            own[folder] = []
            subdirs.setdefault(folder, set())
            subdirs.setdefault(folder[:-1], set()).add(folder[-1])
            folder = folder[:-1]

    for parts, ref, size in files:
        folder = tuple(parts[:-1])
        ensure(folder)
        own[folder].append((parts[-1], FILE, ref, size))
    for folder_parts in folders:
        ensure(tuple(folder_parts))
    built: dict[tuple[str, ...], str] = {}
    for folder in sorted(own, key=len, reverse=True):
        entries = own[folder] + [(name, DIR, built[(*folder, name)], 0) for name in subdirs[folder]]
        built[folder] = build_tree(db, entries, (attrs or {}).get(folder, ("", None, None)))
    return built[()]


def source_entry(db: CatalogDB, row: Row) -> dict[str, Any]:
    """What a clone or merge records about one source version."""
    ds = db.dataset_by_id(row["dataset"])
    assert ds is not None
    return {"dataset": ds["name"], "version": row["id"], "state": row["state"]}


def check_new_name(db: CatalogDB, name: str) -> None:
    """Fail early, before any work, when ``name`` is invalid or taken."""
    check_dataset_name(name)
    if db.dataset_by_name(name) is not None:
        raise AlreadyExists(f"dataset {name!r} already exists")


# -- clone ---------------------------------------------------------------------------


@dataclass
class _Cloner:
    """Rebuilds a tree keeping the selected items, with or without their metadata and
    annotations. Results are memoized by (tree, selected) when they do not depend on
    the folder's path."""

    db: CatalogDB
    globs: Globs | None
    filt: where_lang.Filter | None
    keep_metadata: bool
    keep_annotations: bool
    progress: Progress | None

    def __post_init__(self) -> None:
        self.memo: dict[tuple[str, bool], str | None] = {}
        self.pending: list[ItemRow] = []
        self.filtering = self.globs is not None or self.filt is not None

    def flush(self) -> None:
        """Write the new item rows: staged per folder, then stored in key order."""
        self.stage()
        self.db.items_unstage()

    def stage(self) -> None:
        """Queue the new item rows collected so far."""
        if self.pending:
            self.db.items_stage(self.pending)
            self.pending = []

    def tree(self, tree: str, prefix: str, selected: bool) -> str | None:
        """The new id of ``tree`` (at ``prefix``, ``a/b/``), or None when a filter
        leaves it empty. ``selected``: an ``--include`` pattern named an ancestor."""
        path_free = self.globs is None or selected
        if path_free and self.filt is None and self.keep_metadata and self.keep_annotations:
            if self.progress is not None:
                self.progress(totals(self.db, tree)[0])
            return tree
        key = (tree, selected)
        if path_free and key in self.memo:
            if self.progress is not None:
                self.progress(totals(self.db, tree)[0])
            return self.memo[key]
        out: list[tuple[str, int, str, int]] = []
        files = 0
        for e in self.db.entries_with_items(tree):
            name, path = e["name"], prefix + e["name"]
            if e["kind"] == DIR:
                sel = selected or (self.globs is not None and self.globs(path))
                if not sel and self.globs is not None and not self.globs.may_match_under(path):
                    if self.progress is not None:
                        self.progress(totals(self.db, e["ref"])[0])
                    continue
                child = self.tree(e["ref"], path + "/", sel)
                if child is not None:
                    out.append((name, DIR, child, 0))
                continue
            files += 1
            ref = self.item(e, path, selected)
            if ref is not None:
                out.append((name, FILE, ref, e["size"]))
        if self.progress is not None and files:
            self.progress(files)
        if len(self.pending) >= _STAGE:
            self.stage()
        result = None if self.filtering and not out else build_tree(self.db, out)
        if path_free:
            self.memo[key] = result
        return result

    def item(self, e: Row, path: str, selected: bool) -> str | None:
        """The clone's item for entry ``e`` at ``path`` (None when not selected)."""
        if self.globs is not None and not selected and not self.globs(path):
            return None
        meta, ann = e["metadata"], e["annotations"]
        if self.filt is not None:
            subject = where_lang.Subject(
                path,
                e["size"],
                json.loads(meta) if self.filt.uses_metadata else {},
                json.loads(ann) if self.filt.uses_annotations else [],
            )
            if not self.filt.matches(subject):
                return None
        new_meta = meta if self.keep_metadata else "{}"
        new_ann = ann if self.keep_annotations else "[]"
        if new_meta == meta and new_ann == ann:
            return str(e["ref"])
        record = ItemRecord.from_row(e).relabelled(new_meta, new_ann)
        self.pending.append(record.row())
        return record.id


def clone(
    db: CatalogDB,
    ref: str,
    name: str,
    include: Sequence[str] = (),
    where: str | None = None,
    metadata: bool = True,
    annotations: bool = True,
    publish: bool = False,
    storage: str | None = None,
    progress: Progress | None = None,
) -> str:
    """Clone the version ``ref`` into a new dataset ``name``; return its first version's id.

    Runs inside the caller's transaction; bad input raises before anything is written.
    ``storage``, when given, must be the source's (clones share its binaries).
    """
    source = versions.resolve(db, ref)
    src_ds = db.dataset_by_id(source["dataset"])
    assert src_ds is not None
    if storage is not None and storage != src_ds["storage"]:
        raise Conflict(
            f"cannot clone {ref} into storage {storage!r}: its binaries are in"
            f" {src_ds['storage']!r}, and a clone shares its source's binaries"
        )
    globs = glob_matcher(include)
    filt = where_lang.parse(where) if where is not None else None
    check_new_name(db, name)
    root = frozen_root(db, source["root"])
    if globs is not None or filt is not None or not metadata or not annotations:
        db.map_for_reading()  # a walk of many folders: read them without copies
    cloner = _Cloner(db, globs, filt, metadata, annotations, progress)
    new_root = cloner.tree(root, "", False)
    cloner.flush()
    if new_root is None:
        new_root = build_tree(db, [])
    sources = [{**source_entry(db, source), "root": root}]
    ds, _ = versions.create_dataset(
        db,
        name,
        labels=None if src_ds["labels"] is None else json.loads(src_ds["labels"]),
        storage=src_ds["storage"],
        kind="clone",
        sources=sources,
        root=new_root,
    )
    (draft,) = db.versions_of(ds["id"])
    if not publish:
        return str(draft["id"])
    return versions.publish(db, draft)


# -- new lineage ---------------------------------------------------------------------


def new_lineage(db: CatalogDB, tree: DraftTree, parts: list[str]) -> int:
    """Give the file or every file under the folder at ``parts`` of a draft a fresh
    lineage id; return how many items changed.

    Files under it that shared a lineage still share one (new) lineage with each
    other, so a pointer copy followed by this is "clone items to a folder" as a new
    lineage. Metadata, annotations and bytes are unchanged.
    """
    if not parts:
        raise InvalidInput("refusing to give the whole version a new lineage; name a path")
    entry = resolve(db, tree.root, parts)
    assert entry is not None
    origins: dict[str, str] = {}
    items: list[ItemRow] = []

    def renew(ref: str) -> str:
        row = db.item_get(ref)
        assert row is not None
        old = ItemRecord.from_row(row)
        record = old._replace(origin=origins.setdefault(old.origin, new_origin()))
        items.append(record.row())
        return record.id

    def rebuild(folder: str) -> str:
        entries = [
            (n, k, rebuild(r) if k == DIR else renew(r), s) for n, k, r, s in db.raw_entries(folder)
        ]
        return build_tree(db, entries, db.tree_attrs(folder))

    if entry["kind"] == DIR:
        new_ref = rebuild(entry["ref"])
        db.items_put(items)
        parent = tree.mutable_dir(parts[:-1])
        tree._drop(DIR, entry["ref"])
        db.entries_put(parent, [(parts[-1], DIR, new_ref, 0)])
    else:
        new_ref = renew(entry["ref"])
        db.items_put(items)
        tree.set_file(parts, new_ref, entry["size"])
    return len(items)
