"""The label index of immutable folders: which labels are found under each folder.

``--group-by label`` views (:mod:`dlfs.arranged`) list the labels of a version and
show a folder under a label only if the label is found below it. Both questions are
one probe of the catalog's ``tree_labels`` once the version's folders are indexed,
rather than a walk of the whole version. :func:`index_labels` indexes the folders of
a tree that are not indexed yet, bottom-up; folders are immutable and shared between
versions, so a new version costs only its new folders. It runs at publish (inside
its transaction) and before a view is mounted (for versions published before the
index existed, or pulled from a remote). A draft's mutable folders are never indexed:
a view of a draft asks the item label index directly.
"""

from __future__ import annotations

from dlfs.catalog import CatalogDB
from dlfs.objects import is_mutable


def index_labels(db: CatalogDB, root: str) -> int:
    """Index every immutable folder under (and including) ``root`` that is not indexed
    yet; return how many were. Runs inside the caller's transaction."""
    if is_mutable(root) or db.tree_labelled(root) is not None:
        return 0
    done = 0
    # Post-order without recursion: a folder is indexed after its sub-folders.
    stack: list[tuple[str, bool]] = [(root, False)]
    seen: set[str] = set()
    while stack:
        tree, children_done = stack.pop()
        if children_done:
            db.tree_label(tree)
            done += 1
            continue
        if tree in seen or db.tree_labelled(tree) is not None:
            continue
        seen.add(tree)
        stack.append((tree, True))
        stack.extend((child, False) for child in db.child_folders(tree))
    return done
