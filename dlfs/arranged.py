"""The folders of a view: a version's tree filtered by ``--where`` and grouped by
``--group-by`` (:mod:`dlfs.viewspec`), computed a folder at a time.

:class:`Arrangement` answers ``lookup`` and ``listing`` for the folders of one view;
:class:`dlfs.view.View` hands it every folder whose node carries an :class:`At`.
Mounting costs nothing; listing a folder costs one query for its entries (with their
items) plus what it takes to know which of its sub-folders hold a matching item:

- a folder shows only if something under it matches (as ``dlfs clone --where``
  leaves out folders a filter empties), so a view walks like a filtered clone;
- without ``--group-by``, "something under it matches" stops at the first match;
- with ``--group-by``, the root lists the values found under the version (one walk
  of the version, once: ``label`` without ``--where`` is one query on the catalog's
  label index), and each folder then knows at once which values are under it.

What was learned about an immutable folder (a published tree) is kept for the life
of the view; a draft's folders (mutable trees) are looked at again each time.
"""

from __future__ import annotations

import json
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

from dlfs.catalog import CatalogDB, Row
from dlfs.errors import NotFound
from dlfs.nodes import Listing, Node, Page, Role
from dlfs.objects import DIR, is_mutable
from dlfs.viewspec import EMPTY_NAME, NONE_NAME, ViewSpec, value_name

EntryNode = Callable[[Node, Row], Node]


class At(NamedTuple):
    """Where a folder node of a view is: its arrangement, the group folder it is under
    (``None``: the root of a grouped view, which lists the groups; ``""``: no grouping),
    and its path in the version (``""`` or ``a/b/``)."""

    view: Arrangement
    group: str | None
    prefix: str


class Arrangement:
    """The folders of one view (a :class:`ViewSpec`) of a version.

    ``root_tree`` gives the version's current root tree id (a draft's root moves);
    ``entry_node`` makes the node of a catalog entry in a folder, as the plain view
    does.
    """

    def __init__(
        self,
        db: CatalogDB,
        spec: ViewSpec,
        root_tree: Callable[[], str],
        entry_node: EntryNode,
    ) -> None:
        self.db = db
        self.spec = spec
        self._root_tree = root_tree
        self._entry_node = entry_node
        self._groups: dict[tuple[str, str], frozenset[str]] = {}
        self._labelled = LabelledFiles(db)
        self._any: dict[tuple[str, str], bool] = {}

    def root(self, version: Node) -> Node:
        """The root node of the view, made from the version's root node."""
        group = None if self.spec.group is not None else ""
        return version._replace(key=At(self, group, ""))

    # -- folders ------------------------------------------------------------------------

    def tree(self, node: Node) -> str:
        """The tree id of a folder node of this view."""
        at = node.key
        assert isinstance(at, At)
        return self._root_tree() if at.prefix == "" else node.ref

    def lookup(self, parent: Node, name: str) -> Node:
        """The node called ``name`` in the view folder ``parent``, or :class:`NotFound`."""
        at = parent.key
        assert isinstance(at, At)
        tree = self.tree(parent)
        if at.group is None:
            if name not in self.groups(tree, ""):
                raise NotFound(f"no item has the value {name!r} ({self.spec.describe()})")
            return parent._replace(role=Role.FOLDER, ref=tree, key=At(self, name, ""))
        row = self.db.entry(tree, name)
        if row is None:
            raise NotFound(f"no such file or folder: {name}")
        node = self._visible(parent, at, tree, row, None)
        if node is None:
            raise NotFound(f"no such file or folder in this view: {name}")
        return node

    def listing(self, node: Node) -> Listing:
        """The entries of the view folder ``node``."""
        at = node.key
        assert isinstance(at, At)
        tree = self.tree(node)
        if at.group is None:
            folder = node._replace(role=Role.FOLDER, ref=tree)
            return Listing(
                [(g, folder._replace(key=At(self, g, ""))) for g in sorted(self.groups(tree, ""))]
            )
        page: Page = []
        label = self._label_of(at.group)
        if label is not False:  # the label index says which files: no JSON is read
            files = self._labelled.files(tree, label) if label is not None else None
            indexed = not is_mutable(tree) and self.db.tree_labelled(tree) is not None
            if not indexed:
                rows = self.db.entries_with_label(tree, label)
            else:  # so are its sub-folders: those holding the label, in one query
                if files is None:
                    files = [r for r in self.db.entries_with_label(tree, label) if r["kind"] != DIR]
                rows = self.db.folders_with_label(tree, label) + files
            for row in rows:
                if row["kind"] != DIR:
                    page.append((row["name"], self._entry_node(node, row)._replace(key=None)))
                elif indexed:
                    at_child = At(self, at.group, f"{at.prefix}{row['name']}/")
                    page.append((row["name"], self._entry_node(node, row)._replace(key=at_child)))
                else:
                    child = self._visible(node, at, tree, row, None)
                    if child is not None:
                        page.append((row["name"], child))
            page.sort(key=lambda e: e[0])
            return Listing(page)
        for row in self.db.entries_with_items(tree):
            child = self._visible(node, at, tree, row, row)
            if child is not None:
                page.append((row["name"], child))
        return Listing(page)

    def _label_of(self, group: str) -> str | Literal[False] | None:
        """The label a group folder of a ``--group-by label`` view (without
        ``--where``) stands for (None: ``@none``); False when the label index cannot
        answer (another view, or a name cut to fit)."""
        group_key = self.spec.group
        if self.spec.where is not None or group_key is None or not group_key.is_label:
            return False
        if group == NONE_NAME:
            return None
        if group == EMPTY_NAME:
            return ""
        if "@" in group:
            return False
        return urllib.parse.unquote(group)

    def _visible(self, parent: Node, at: At, tree: str, row: Row, item: Row | None) -> Node | None:
        """The node of entry ``row`` of folder ``parent`` if the view shows it."""
        name = row["name"]
        path = at.prefix + name
        assert at.group is not None
        if row["kind"] == DIR:
            prefix = path + "/"
            if not self._folder_shown(at.group, row["ref"], prefix):
                return None
            return self._entry_node(parent, row)._replace(key=At(self, at.group, prefix))
        if item is None and self.spec.uses_item:
            item = self.db.item_get(row["ref"])
            if item is None:
                return None
        if not self._file_in(at.group, path, row["size"], item):
            return None
        return self._entry_node(parent, row)._replace(key=None)

    def _file_in(self, group: str, path: str, size: int, item: Row | None) -> bool:
        meta, ann = _parsed(self.spec, item)
        if not self.spec.matches(path, size, meta, ann):
            return False
        return group == "" or group in self.spec.names(meta, ann)

    # -- what is under a folder ---------------------------------------------------------

    def _folder_shown(self, group: str, tree: str, prefix: str) -> bool:
        """True when the folder ``tree`` (at ``prefix``) holds an item of ``group``."""
        if group == "":
            return self.any_match(tree, prefix)
        label = self._label_of(group)
        if label is not False and not is_mutable(tree):
            unlabelled = self.db.tree_labelled(tree)
            if unlabelled is not None:  # indexed: one probe
                return unlabelled if label is None else self.db.tree_has_label(tree, label)
        return group in self.groups(tree, prefix)

    def groups(self, tree: str, prefix: str) -> frozenset[str]:
        """The group names of the matching items under ``tree`` (at ``prefix``)."""
        key = (tree, prefix if self.spec.where is not None else "")
        found = self._groups.get(key)
        if found is not None:
            return found
        names: set[str] = set()
        group = self.spec.group
        if prefix == "" and self.spec.where is None and group is not None and group.is_label:
            return self._label_groups(tree)  # the whole version: one query on the label index
        for row in self.db.entries_with_items(tree):
            path = prefix + row["name"]
            if row["kind"] == DIR:
                names |= self.groups(row["ref"], path + "/")
                continue
            meta, ann = _parsed(self.spec, row)
            if self.spec.matches(path, row["size"], meta, ann):
                names.update(self.spec.names(meta, ann))
        result = frozenset(names)
        if not is_mutable(tree):
            self._groups[key] = result
        return result

    def _label_groups(self, root: str) -> frozenset[str]:
        """Every folder's label groups under ``root`` from the label index, kept for
        the sub-folders too (a label is its own name when grouping by label)."""
        if not is_mutable(root):
            unlabelled = self.db.tree_labelled(root)
            if unlabelled is not None:  # indexed (dlfs.labelindex): the labels at once
                names = {value_name(label) for label in self.db.tree_labels(root)}
                return frozenset(names | ({NONE_NAME} if unlabelled else set()))
        per_tree: dict[str, set[str]] = {}
        for tree, label in self.db.subtree_labels(root):
            per_tree.setdefault(tree, set()).add(NONE_NAME if label is None else value_name(label))
        children: dict[str, list[str]] = {}
        for parent, child in self.db.subtree_folders(root):
            children.setdefault(parent, []).append(child)

        def total(tree: str) -> frozenset[str]:
            known = self._groups.get((tree, ""))
            if known is not None:
                return known
            names = set(per_tree.get(tree, ()))
            for child in children.get(tree, ()):
                names |= total(child)
            result = frozenset(names)
            if not is_mutable(tree):
                self._groups[(tree, "")] = result
            return result

        return total(root)

    def any_match(self, tree: str, prefix: str) -> bool:
        """True when some item under ``tree`` (at ``prefix``) passes ``--where``;
        stops at the first."""
        key = (tree, prefix)
        found = self._any.get(key)
        if found is not None:
            return found
        result = False
        for row in self.db.entries_with_items(tree):
            path = prefix + row["name"]
            if row["kind"] == DIR:
                result = self.any_match(row["ref"], path + "/")
            else:
                meta, ann = _parsed(self.spec, row)
                result = self.spec.matches(path, row["size"], meta, ann)
            if result:
                break
        if not is_mutable(tree):
            self._any[key] = result
        return result


class LabelledFiles:
    """The file entries of a label, loaded whole when the label is small enough
    (:data:`LABEL_LOAD`): listing a label's folders then costs O(its items there).
    Labels are kept while they hold at most :data:`LABELS_KEPT` entries in all."""

    def __init__(self, db: CatalogDB) -> None:
        self.db = db
        self._kept: OrderedDict[str, dict[str, list[Row]]] = OrderedDict()
        self._size = 0
        self._big: set[str] = set()

    def files(self, tree: str, label: str) -> list[Row] | None:
        """The files of ``tree`` that have ``label``; None when the label is too big
        to load (ask the folder instead)."""
        if label in self._big or is_mutable(tree):
            return None
        by_tree = self._kept.get(label)
        if by_tree is None:
            if self.db.label_count(label) > LABEL_LOAD:
                self._big.add(label)
                return None
            by_tree = {}
            for row in self.db.label_entries(label):
                by_tree.setdefault(row["tree"], []).append(row)
            self._kept[label] = by_tree
            self._size += sum(len(rows) for rows in by_tree.values())
            while self._size > LABELS_KEPT and len(self._kept) > 1:
                _old, dropped = self._kept.popitem(last=False)
                self._size -= sum(len(rows) for rows in dropped.values())
        else:
            self._kept.move_to_end(label)
        return by_tree.get(tree, [])


LABEL_LOAD = 50_000
"""The most items a label may have to be loaded whole by :class:`LabelledFiles`."""

LABELS_KEPT = 262_144
"""File entries of loaded labels kept in memory."""


def _parsed(spec: ViewSpec, item: Row | None) -> tuple[Any, Any]:
    """The metadata and annotations of an item row, parsed only when the view uses them."""
    if item is None or not spec.uses_item:
        return {}, []
    return json.loads(item["metadata"]), json.loads(item["annotations"])


# -- the views of the catalog mount: <dataset>/<version>/@where/EXPR/, .../@by/KEY/ ----

BY = "@by"
"""``<version>/@by/KEY/`` (and ``@where/EXPR/@by/KEY/``): the version grouped by KEY."""

WHERE = "@where"
"""``<version>/@where/EXPR/``: the version's items EXPR selects (``/`` as ``%2F``)."""


class Magic(NamedTuple):
    """A folder of the catalog mount's view paths: ``@by`` or ``@where`` of a version
    (``version`` is the version's root node), under a ``--where`` for ``@by``."""

    kind: str
    version: Node
    where: str | None


class ViewPaths:
    """The view folders of a whole-catalog mount, hidden in every version folder (not
    listed, found by name; an entry of the version with that name wins)."""

    def __init__(self, db: CatalogDB, entry_node: EntryNode) -> None:
        self.db = db
        self._entry_node = entry_node
        self._made: dict[tuple[str, str | None, str | None], Arrangement] = {}

    def magic(self, parent: Node, name: str) -> Node | None:
        """The ``@by`` / ``@where`` folder called ``name`` in ``parent``, if any."""
        at = parent.key
        if parent.role == Role.VERSION and at is None and name in (BY, WHERE):
            return parent._replace(role=Role.FOLDER, key=Magic(name, parent, None))
        if isinstance(at, At) and name == BY and at.prefix == "" and at.group == "":
            where = at.view.spec.where
            if where is not None and at.view.spec.group is None:
                version = parent._replace(role=Role.VERSION, key=None)
                return parent._replace(role=Role.FOLDER, key=Magic(BY, version, where.text))
        return None

    def lookup(self, parent: Node, name: str) -> Node:
        """The view root ``name`` names in a ``@by`` or ``@where`` folder."""
        magic = parent.key
        assert isinstance(magic, Magic)
        if magic.kind == BY:
            where, group = magic.where, name
        else:
            where, group = urllib.parse.unquote(name), None
        key = (magic.version.version, where, group)
        made = self._made.get(key)
        if made is None:
            spec = ViewSpec.parse(where, group)
            assert spec is not None
            tree = magic.version.ref
            made = self._made[key] = Arrangement(self.db, spec, lambda: tree, self._entry_node)
        return made.root(magic.version)

    def listing(self, node: Node) -> Listing:
        """``@by`` lists ``label`` (any ``metadata.FIELD`` is found by name too);
        ``@where`` lists nothing (any expression is found by name)."""
        magic = node.key
        assert isinstance(magic, Magic)
        if magic.kind == BY:
            return Listing([("label", self.lookup(node, "label"))])
        return Listing([])
