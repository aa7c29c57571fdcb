"""``dlfs add``: copy local files and folders into a draft.

Three phases, so that bad input changes nothing and a crash loses nothing published:

1. *plan*: walk the sources and validate every name before any byte is copied;
2. *stage*: stream each file into the blob store's batch, hashing on the way (a few
   threads, since reading, writing and xxh3 release the GIL); identical bytes are
   stored once;
3. *record*: in the caller's transaction, create items and put them into the draft's
   folders (one batch insert per folder), then make the staged blobs durable just
   before the catalog commits.

A file that lands on an existing path keeps that item's lineage, metadata and
annotations and takes the new bytes, as a rewrite in a draft mount does. Symlinks are
stored as symlinks unless asked to follow them, and never followed out of the source
(:func:`plan`; ``docs/security.md``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlfs.catalog import CatalogDB, Row
from dlfs.errors import Conflict, DlfsError, InvalidInput, IsADirectory, NotFound
from dlfs.items import ItemRecord
from dlfs.names import check_name, join_path
from dlfs.objects import DIR, canonical_json, new_origin
from dlfs.posixattrs import NONE, is_user_xattr, link_text
from dlfs.stores.base import BlobStore, IngestBatch
from dlfs.trees import DraftTree

Progress = Callable[[int], None]
WORKERS = 4


@dataclass
class AddResult:
    """What an add did."""

    files: int = 0
    bytes: int = 0
    folders: int = 0
    replaced: int = 0
    paths: list[str] = field(default_factory=list)


@dataclass
class PlannedFile:
    """A file to import: where it comes from and where it lands."""

    source: Path | bytes
    folder: tuple[str, ...]
    name: str
    metadata: dict[str, Any] | None = None
    annotations: list[Any] | None = None
    posix: str = ""
    """Its POSIX attributes (mode, symlink target, xattrs) as the item keeps them."""


def plan(
    sources: list[Path],
    to: list[str],
    follow_symlinks: bool = False,
    warn: Callable[[str], None] | None = None,
) -> tuple[list[PlannedFile], list[tuple[str, ...]]]:
    """Walk ``sources``: a file lands in ``to`` under its own name, a folder brings its
    contents (with sub-folders) into ``to``. Returns the files and the folders to make.

    Every name is validated first. A symlink is stored as a symlink (its target kept
    as text, nothing read through it). With ``follow_symlinks``, a link whose target
    lies inside the source folder it was found in is followed (a file's bytes, a
    folder's contents; a folder reached twice is walked once, the second link stays a
    symlink); a link pointing outside
    it, or nowhere, is still stored as a symlink, and ``warn`` is told in one line: a
    link never brings in bytes from outside the source silently. A source named on
    the command line that is itself a symlink is followed with ``follow_symlinks``.
    Fifos, sockets and devices are skipped. A file keeps its permission bits and its
    ``user.*`` extended attributes (:mod:`dlfs.posixattrs`).
    """
    files: list[PlannedFile] = []
    folders: list[tuple[str, ...]] = []
    base = tuple(to)
    for src in sources:
        if not src.exists() and not src.is_symlink():
            raise NotFound(f"no such file or folder: {src}")
        if src.is_symlink() and not follow_symlinks:
            files.append(_link(src, base, _source_name(src.name, src)))
            continue
        if src.is_file():
            files.append(local_file(src, base, _source_name(src.name, src)))
            continue
        if not src.is_dir():
            raise InvalidInput(f"not a regular file or folder: {src}")
        _walk(src, base, follow_symlinks, warn, files, folders)
    return files, folders


def _walk(
    src: Path,
    base: tuple[str, ...],
    follow: bool,
    warn: Callable[[str], None] | None,
    files: list[PlannedFile],
    folders: list[tuple[str, ...]],
) -> None:
    root = src.resolve()
    seen = {root}
    for dirpath, dirnames, filenames in os.walk(src, followlinks=follow):
        rel = Path(dirpath).relative_to(src)
        folder = base + tuple(_source_name(p, Path(dirpath)) for p in rel.parts)
        dirnames.sort()
        if rel.parts:
            folders.append(folder)
        links = []
        for d in list(dirnames):
            path = Path(dirpath, d)
            if not path.is_symlink():
                continue
            target = path.resolve()
            if follow and _inside(target, root) and target not in seen:
                seen.add(target)
                continue
            dirnames.remove(d)  # not followed, or a folder walked already (a loop)
            links.append(d)
        for name in sorted([*filenames, *links]):
            path = Path(dirpath, name)
            if path.is_symlink():
                inside = _inside(path.resolve(), root)
                if follow and path.is_file() and inside:
                    files.append(local_file(path, folder, _source_name(name, path)))
                    continue
                if follow and not inside and warn is not None:
                    warn(
                        f"not following {path} -> {os.readlink(path)}: it points outside"
                        f" {src} or nowhere; stored as a symlink"
                    )
                files.append(_link(path, folder, _source_name(name, path)))
            elif path.is_file():
                files.append(local_file(path, folder, _source_name(name, path)))
            elif not path.is_dir():
                pass  # fifos, sockets, devices: not dataset content


def _inside(target: Path, root: Path) -> bool:
    return target == root or root in target.parents


def _link(path: Path, folder: tuple[str, ...], name: str) -> PlannedFile:
    """A symlink to store as a symlink: the empty blob, its target kept."""
    return PlannedFile(b"", folder, name, posix=link_text(os.readlink(path)))


def local_file(path: Path, folder: tuple[str, ...], name: str) -> PlannedFile:
    """A file to import, with its permission bits and ``user.*`` xattrs."""
    posix = NONE.with_mode(path.stat().st_mode)
    try:
        names = os.listxattr(path)
    except OSError:  # a filesystem without extended attributes
        names = []
    for key in names:
        if is_user_xattr(key):
            try:
                posix = posix.with_xattr(key, os.getxattr(path, key))
            except OSError:
                continue
            except DlfsError as exc:
                raise InvalidInput(f"{path}: {exc}") from None
    return PlannedFile(path, folder, name, posix=posix.text())


def _source_name(name: str, path: Path) -> str:
    """``name`` checked as an item or folder name; the refusal names the source
    ``path`` (its bytes shown with ``\\x`` escapes when they are not UTF-8)."""
    try:
        return check_name(name)
    except InvalidInput as exc:
        shown = os.fsencode(path).decode("utf-8", "backslashreplace")
        raise InvalidInput(f"cannot add {shown}: {exc}") from None


def stage(
    batch: IngestBatch, files: list[PlannedFile], progress: Progress | None = None
) -> list[tuple[str, int]]:
    """Stream every planned file into ``batch``; return ``(blob, size)`` in order."""

    def one(f: PlannedFile) -> tuple[str, int]:
        if isinstance(f.source, bytes):
            result = batch.add_bytes(f.source)
        else:
            result = batch.add_file(f.source)
        if progress is not None:
            progress(result[1])
        return result

    if len(files) < 8:
        return [one(f) for f in files]
    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(one, files))


def record(
    db: CatalogDB,
    draft: Row,
    files: list[PlannedFile],
    blobs: list[tuple[str, int]],
    folders: list[tuple[str, ...]],
    store_url: str,
    mtime: float | None = None,
) -> AddResult:
    """Create the items and put them into the draft (inside the caller's transaction)."""
    now = time.time() if mtime is None else mtime
    tree = DraftTree(db, draft["id"], draft["root"])
    result = AddResult(folders=len(folders))
    for folder in folders:
        tree.mutable_dir(list(folder), create=True)
    by_folder: dict[tuple[str, ...], list[tuple[PlannedFile, str, int]]] = {}
    for f, (blob, size) in zip(files, blobs, strict=True):
        by_folder.setdefault(f.folder, []).append((f, blob, size))
    db.blobs_put({(blob, size, store_url) for blob, size in blobs})
    for folder, group in by_folder.items():
        folder_tree = tree.mutable_dir(list(folder), create=True)
        items = []
        entries = []
        for f, blob, size in group:
            existing = db.entry(folder_tree, f.name)
            if existing is not None and existing["kind"] == DIR:
                raise IsADirectory(
                    f"cannot add file {f.name!r}: a folder exists at {join_path([*folder, f.name])}"
                )
            meta, ann, origin = _lineage(db, existing, f)
            if existing is not None:
                result.replaced += 1
            record = ItemRecord(origin, blob, size, now, meta, ann, f.posix)
            items.append(record.row())
            entries.append((f.name, 0, record.id, size))
            result.files += 1
            result.bytes += size
            result.paths.append(join_path([*folder, f.name]))
        db.items_put(items)
        db.entries_put(folder_tree, entries)
    return result


def _lineage(db: CatalogDB, existing: Row | None, f: PlannedFile) -> tuple[str, str, str]:
    """(metadata, annotations, origin) for a file landing where ``existing`` was."""
    if existing is not None:
        old = db.item_get(existing["ref"])
        assert old is not None
        meta, ann, origin = old["metadata"], old["annotations"], old["origin"]
    else:
        meta, ann, origin = "{}", "[]", new_origin()
    if f.metadata is not None:
        meta = canonical_json(f.metadata)
    if f.annotations is not None:
        ann = canonical_json(f.annotations)
    return meta, ann, origin


def add(
    db: CatalogDB,
    store: BlobStore,
    draft: Row,
    files: list[PlannedFile],
    folders: list[tuple[str, ...]],
    progress: Progress | None = None,
) -> AddResult:
    """Stage, then record in one transaction; the blobs are durable before it commits."""
    with store.batch() as batch:
        blobs = stage(batch, files, progress)
        with db.transaction():
            current = db.version_get(draft["id"])
            if current is None or current["state"] != "draft":
                raise Conflict(f"draft {draft['id']} was published or deleted meanwhile")
            result = record(db, current, files, blobs, folders, store.url)
            batch.commit()
    return result
