"""Where ``mv`` and ``cp`` put things in a draft: the rules of the shell commands.

With one source, an existing folder ``dest`` (or the root, ``""``) receives the
source under its own name, and any other ``dest`` is the source's new path (an
existing file there is replaced). With several sources, ``dest`` must be an existing
folder. A copy is a pointer copy (no bytes move) that keeps the lineage of what it
copies unless asked for new lineage (:func:`dlfs.ops.clone.new_lineage`).

:func:`copy_into` copies between datasets (Dataloop's "clone items to a folder"):
``REF:PATH`` sources of any versions into ``DST_REF:FOLDER`` of a draft, as pointers.
"""

from __future__ import annotations

from dlfs import trees, versions
from dlfs.catalog import CatalogDB, Row
from dlfs.errors import AlreadyExists, Conflict, DlfsError, InvalidInput, NotFound
from dlfs.names import join_path, split_path
from dlfs.objects import DIR
from dlfs.ops import clone as clone_ops


def place(
    db: CatalogDB,
    tree: trees.DraftTree,
    sources: list[str],
    dest: str,
    copy: bool,
    new_lineage: bool = False,
) -> None:
    """Move (or, with ``copy``, copy) the paths ``sources`` of a draft to ``dest``, as
    ``mv`` and ``cp -r`` place them (see the module docstring); inside the caller's
    transaction."""
    dst = split_path(dest)
    try:
        target = trees.resolve(db, tree.root, dst)
    except NotFound:
        target = None
    into = (target is None and not dst) or (target is not None and target["kind"] == DIR)
    if len(sources) > 1 and not into:
        raise InvalidInput(f"target {join_path(dst)} is not an existing folder")
    for source in sources:
        src = split_path(source)
        if not src:
            raise InvalidInput("cannot move or copy the root folder")
        final = [*dst, src[-1]] if into else dst
        if copy:
            tree.copy(src, final, replace=True)
            if new_lineage:
                clone_ops.new_lineage(db, tree, final)
        else:
            tree.move(src, final, replace=True)


# -- between datasets: cp SRC_REF:PATH... DST_REF:FOLDER -------------------------------


def split_ref_path(db: CatalogDB, text: str, write: bool = False) -> tuple[Row, list[str]]:
    """``REF:PATH`` as ``(version row, path parts)``. The ref is the shortest text
    before a ``:`` that names a version (so a path may hold ``:``); with ``write`` it
    must name a draft (a bare ``NAME`` is ``NAME@draft``)."""
    if not isinstance(text, str) or ":" not in text:
        raise InvalidInput(f"expected REF:PATH, got {text!r}")
    error: DlfsError | None = None
    for i, char in enumerate(text):
        if char != ":" or i == 0:
            continue
        try:
            row = (versions.resolve_draft if write else versions.resolve)(db, text[:i])
        except DlfsError as exc:
            error = error or exc
            continue
        return row, split_path(text[i + 1 :])
    raise error or InvalidInput(f"expected REF:PATH, got {text!r}")


def copy_into(db: CatalogDB, sources: list[str], dest: str, new_lineage: bool = False) -> list[str]:
    """Copy the files and folders ``REF:PATH`` of any versions into the folder
    ``DST_REF:FOLDER`` of a draft (made if missing), as pointers: the copies are the
    same items (same lineage, same blobs), unless ``new_lineage``. The datasets must
    share one storage (no byte is copied), and a name taken in the folder is refused.
    Returns the new paths; inside the caller's transaction."""
    dst_row, folder = split_ref_path(db, dest, write=True)
    dst_storage = versions.storage_of(db, dst_row["dataset"])
    tree = trees.DraftTree(db, dst_row["id"], dst_row["root"])
    placed = []
    for source in sources:
        row, parts = split_ref_path(db, source)
        if not parts:
            raise InvalidInput(f"{source}: cannot copy a version's root; use dlfs clone")
        storage = versions.storage_of(db, row["dataset"])
        if storage != dst_storage:
            raise Conflict(
                f"cannot copy {source} into {dest}: its binaries are in {storage},"
                f" the draft's in {dst_storage} (copies share binaries)"
            )
        entry = trees.resolve(db, clone_ops.frozen_root(db, row["root"]), parts)
        assert entry is not None
        final = [*folder, parts[-1]]
        parent = tree.mutable_dir(folder, create=True)
        if db.entry(parent, parts[-1]) is not None:
            raise AlreadyExists(f"already exists: {join_path(final)} in {dest}")
        db.entries_put(parent, [(parts[-1], entry["kind"], entry["ref"], entry["size"])])
        if new_lineage:
            clone_ops.new_lineage(db, tree, final)
        placed.append(join_path(final))
    return placed
