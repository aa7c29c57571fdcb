"""Where ``mv`` and ``cp`` put things in a draft: the rules of the shell commands.

With one source, an existing folder ``dest`` (or the root, ``""``) receives the
source under its own name, and any other ``dest`` is the source's new path (an
existing file there is replaced). With several sources, ``dest`` must be an existing
folder. A copy is a pointer copy (no bytes move) that keeps the lineage of what it
copies unless asked for new lineage (:func:`dlfs.ops.clone.new_lineage`).
"""

from __future__ import annotations

from dlfs import trees
from dlfs.catalog import CatalogDB
from dlfs.errors import InvalidInput, NotFound
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
