"""The filesystem semantics of dlfs, with no FUSE in sight.

A :class:`View` answers what a mounted dlfs tree looks like: ``lookup``, ``getattr``,
``listing`` (readdir with attributes), ``readlink``, extended attributes, ``open`` /
``read`` / ``release`` and ``statfs``; it takes no writes (:meth:`View.refuse` says
why: :class:`dlfs.errors.ReadOnly`), :class:`dlfs.draftview.DraftView` serves a draft
read-write. The FUSE daemon (``dlfsd``) only adapts these calls to pyfuse3; model
tests drive a :class:`View` directly, without a kernel. Nodes, roles and listings are
:mod:`dlfs.nodes`; extended attributes come from the table in :mod:`dlfs.xattrs`.

Two trees can be viewed (see :func:`open_view`):

- one version: its root folder is the mount root. A published version never changes,
  so its nodes say so (``Node.cache``): the kernel may keep entries, attributes,
  negative lookups and file pages for :data:`CACHE_TTL` seconds. A draft is served
  here read-only (``-o ro``; :mod:`dlfs.draftview` serves drafts read-write) and
  live: short timeouts, its root re-read from the catalog on every lookup;
- the whole catalog: ``<dataset>/<version id>/...`` for every published version, and
  each tag as a symlink ``<dataset>/<tag> -> <version id>``; the default project's
  datasets at the top, another project's in its folder, ``<project>/<dataset>/...``
  (:mod:`dlfs.projects`). The root, the project and the dataset folders are live
  (:data:`LIVE_TTL`), so new datasets, versions and moved tags appear without a
  remount; what is under a version is immutable and cached like above.

What a node shows for mode, owner and group is :meth:`View.attributes`: a project with
a Unix group has its nodes presented by its :class:`dlfs.access.AccessRule`.

A :class:`Node` carries everything ``getattr`` and ``open`` need (mode, size, mtime,
blob id), so neither touches the catalog: each folder costs one query when it is
listed or one probe per name looked up. Folders are 0555; a file shows the mode its
item keeps (:mod:`dlfs.posixattrs`; 0644 when none) without its write bits, a symlink
item is a symlink; uid and gid are the item's, else those of the mounting user; the
mtime of a file is its item's mtime, that of a folder its version's publish time:
stable, never "now".

Reading never returns wrong bytes: the view hands each read to its
:class:`dlfs.reads.FileReads`, which asks the file's blob store once; the store returns
only verified bytes (local blobs through :class:`dlfs.stores.localread.LocalReader`,
remote ones through :class:`dlfs.stores.cache.CachedReader`) or raises
:class:`Corrupt` / :class:`Unavailable` (EIO for that file only).

Threading: a :class:`View` belongs to one thread (the daemon's event loop) because
its catalog connection does; only :meth:`View.read` may also run in worker threads,
after :meth:`View.read_nowait` returned None for that handle.
"""

from __future__ import annotations

import bisect
import logging
import os
import stat
from collections import OrderedDict
from collections.abc import Callable
from typing import NoReturn, cast

from dlfs import projects, trees, versions, xattrs
from dlfs.access import AccessRule, shown
from dlfs.arranged import Arrangement, At, Magic, ViewPaths
from dlfs.catalog import CatalogDB, Row
from dlfs.errors import (
    Corrupt,
    InvalidInput,
    IsADirectory,
    NameTooLong,
    NoAttribute,
    NotADirectory,
    NotFound,
    ReadOnly,
)
from dlfs.home import Home
from dlfs.items import ItemRecord
from dlfs.names import DEFAULT_PROJECT, NAME_MAX, in_project, project_of
from dlfs.nodes import (
    BLOCK_SIZE,
    CACHE_TTL,
    DIR_MODE,
    LINK_MODE,
    LIVE_TTL,
    FsStats,
    Listing,
    Node,
    Page,
    Role,
    ns,
    ns_kept,
)
from dlfs.objects import DIR, VERSION_ID_RE
from dlfs.posixattrs import (
    Posix,
    folder_fields,
    is_user_xattr,
    link_of,
    node_fields,
    rdev_of,
)
from dlfs.reads import FileReads
from dlfs.stores.registry import StoreFactory, StoreRegistry
from dlfs.viewspec import ViewSpec
from dlfs.xattrs import VersionFacts

log = logging.getLogger(__name__)

LISTING_CACHE = 262_144
"""Entries of immutable folders kept in memory once listed (the kernel does not cache
listings through pyfuse3, so every ``ls`` or walk lists again)."""


def open_view(
    home: Home,
    ref: str | None = None,
    stores: StoreFactory | None = None,
    spec: ViewSpec | None = None,
) -> View:
    """A read-only view of the version ``ref`` names, or of the whole catalog.

    ``ref`` is resolved once, now (``NAME`` alone means ``NAME@latest``): the view
    keeps serving that version even when tags move. ``spec`` (``--where`` /
    ``--group-by``, :mod:`dlfs.viewspec`) shows the version's items arranged by it
    (:mod:`dlfs.arranged`); it needs a ref. Raises :class:`NotFound` for an unknown
    ref or a missing catalog.
    """
    if not home.exists():
        raise NotFound(f"no catalog at {home.root} (create one with 'dlfs init')")
    db = CatalogDB(home.catalog_path, readonly=True)
    try:
        db.map_for_reading()
        if ref is None:
            return View(db, stores or StoreRegistry(home), None)
        row = versions.resolve(db, ref)
        ds = db.dataset_by_id(row["dataset"])
        rule = None if ds is None else projects.rule_of(db, project_of(ds["name"]))
        return View(db, stores or StoreRegistry(home), row, access=rule, spec=spec)
    except BaseException:
        db.close()
        raise


PARENTS_KEPT = 4096
"""Folders whose parent is remembered (to find the folder after one read in order)."""

NEXT_FOLDER_SCAN = 64
"""Entries after a folder looked at for the next folder (files between are skipped)."""


class View:
    """The read-only filesystem view of one version, or of the whole catalog.

    Build one with :func:`open_view`. Every method raises a
    :class:`dlfs.errors.DlfsError` subclass on failure: :class:`NotFound`,
    :class:`NameTooLong`, :class:`NoAttribute`, :class:`NotADirectory`,
    :class:`ReadOnly`, :class:`Corrupt` or :class:`Unavailable`.
    """

    def __init__(
        self,
        db: CatalogDB,
        stores: StoreFactory,
        version: Row | None,
        uid: int | None = None,
        gid: int | None = None,
        access: AccessRule | None = None,
        spec: ViewSpec | None = None,
    ) -> None:
        self.db = db
        self.uid = os.getuid() if uid is None else uid
        self.gid = os.getgid() if gid is None else gid
        self.access = access
        """The rule of a version mount's project (None: none, or a catalog mount)."""
        self._rules: dict[int | str, AccessRule | None] = {}
        """A catalog mount's rules: by dataset id, and by project name (project
        folders); each refreshed when its dataset or project node is made."""
        self.reads = FileReads(db, stores)
        """The open files and their reads."""
        if version is None:
            self._root = self._catalog_node()
        else:
            self._root = self._version_node(version)
        self.spec = spec
        """The ``--where`` / ``--group-by`` of this view; None for the plain tree."""
        self.paths = ViewPaths(db, self._entry_node) if version is None else None
        """The ``@by`` / ``@where`` folders of the catalog mount's versions."""
        if spec is not None and version is not None:
            version_root = self._root
            arrangement = Arrangement(db, spec, lambda: self._tree(version_root), self._entry_node)
            self._root = arrangement.root(version_root)
        # Complete listings of immutable folders: (tree, version) -> entries.
        self._listings: OrderedDict[tuple[str, str], Page] = OrderedDict()
        self._listed = 0
        self._parents: OrderedDict[str, tuple[Node, str]] = OrderedDict()
        """Immutable folder tree -> (its parent folder's node, its name), for
        :meth:`_next_folder`."""
        self.reads.following = self._following
        self.reads.next_folder = self._next_folder

    @property
    def mode(self) -> str:
        """``catalog`` for a whole-catalog view, else the state of the version."""
        if self._root.role == Role.CATALOG:
            return "catalog"
        return "published" if self._root.cache else "draft"

    @property
    def writable(self) -> bool:
        """True for a view that accepts writes (a :class:`dlfs.draftview.DraftView`)."""
        return False

    def close(self) -> None:
        """Close the stores (their cached files close, their fetched blocks reach the
        disk cache) and the catalog connection."""
        self.reads.close()
        self.db.close()

    # -- nodes ----------------------------------------------------------------------

    def _catalog_node(self) -> Node:
        newest = max((d["created_at"] for d in self.db.datasets()), default=0.0)
        return Node(Role.CATALOG, DIR_MODE, 0, ns(newest), LIVE_TTL, False)

    def _project_node(self, row: Row) -> Node:
        """A project's folder of the catalog mount: a CATALOG node whose ref names it."""
        self._rules[row["name"]] = projects.rule_of(self.db, row["name"])
        return Node(
            Role.CATALOG, DIR_MODE, 0, ns(row["created_at"]), LIVE_TTL, False, ref=row["name"]
        )

    def _dataset_node(self, row: Row) -> Node:
        self._rules[row["id"]] = projects.rule_of(self.db, project_of(row["name"]))
        return Node(
            Role.DATASET, DIR_MODE, 0, ns(row["created_at"]), LIVE_TTL, False, dataset=row["id"]
        )

    def _version_node(self, row: Row) -> Node:
        published = row["state"] == "published"
        posix, mtime, ctime = self.db.tree_attrs(row["root"])
        mode, uid, gid = folder_fields(posix, False)
        return Node(
            Role.VERSION,
            mode,
            0,
            ns(mtime or row["published_at"] or row["created_at"]),
            CACHE_TTL if published else LIVE_TTL,
            published,
            ref=row["root"],
            version=row["id"],
            dataset=row["dataset"],
            uid=uid,
            gid=gid,
            nlink=2 + self.db.folder_count(row["root"]),
            ctime_ns=ns_kept(ctime),
        )

    def _tag_node(self, parent: Node, vid: str) -> Node:
        return Node(
            Role.TAG,
            LINK_MODE,
            len(vid),
            parent.mtime_ns,
            LIVE_TTL,
            False,
            ref=vid,
            dataset=parent.dataset,
        )

    def _entry_node(self, parent: Node, row: Row) -> Node:
        if row["kind"] == DIR:
            mode, uid, gid = folder_fields(row["posix"], False)
            return Node(
                Role.FOLDER,
                mode,
                0,
                parent.mtime_ns if row["mtime"] is None else ns(row["mtime"]),
                parent.ttl,
                parent.cache,
                ref=row["ref"],
                version=parent.version,
                dataset=parent.dataset,
                uid=uid,
                gid=gid,
                nlink=2 + (row["folders"] or 0),
                ctime_ns=ns_kept(row["ctime"]),
                atime_ns=ns_kept(row["atime"]),
            )
        mode, uid, gid, link_size = node_fields(row["posix"], False)
        return Node(
            Role.FILE,
            mode,
            row["size"] if link_size < 0 else link_size,
            ns(row["mtime"]),
            parent.ttl,
            parent.cache,
            ref=row["ref"],
            blob=row["blob"],
            version=parent.version,
            dataset=parent.dataset,
            key=(parent.ref, row["name"]) if parent.cache else None,
            uid=uid,
            gid=gid,
            posix=row["posix"] or "",
            rdev=rdev_of(row["posix"]),
            ctime_ns=ns_kept(row["ctime"]),
            atime_ns=ns_kept(row["atime"]),
        )

    def _tree(self, node: Node) -> str:
        """The tree id of a version folder; a draft's root is re-read (it moves)."""
        if node.role == Role.VERSION and not node.cache:
            row = self.db.version_get(node.version)
            if row is None:
                raise NotFound(
                    f"version {node.version} no longer exists (published or deleted):"
                    " unmount and mount the new version"
                )
            return str(row["root"])
        return node.ref

    # -- reading the tree -----------------------------------------------------------

    def root(self) -> Node:
        """The node of the mount root."""
        return self._root

    def lookup(self, parent: Node, name: str) -> Node:
        """The node called ``name`` in folder ``parent``.

        Raises :class:`NotFound`, :class:`NameTooLong` (over 255 bytes) or
        :class:`NotADirectory` (``parent`` is a file or symlink).
        """
        try:
            size = len(name.encode("utf-8"))
        except UnicodeEncodeError:  # not UTF-8: no catalog name can match
            raise NotFound(f"no such file or folder: {name!r}") from None
        if size > NAME_MAX:
            raise NameTooLong(f"name longer than {NAME_MAX} bytes: {name[:40]}...")
        if self.paths is None:
            return self._lookup(parent, name)
        if isinstance(parent.key, Magic):
            return self.paths.lookup(parent, name)
        try:
            return self._lookup(parent, name)
        except NotFound:
            magic = self.paths.magic(parent, name)
            if magic is None:
                raise
            return magic

    def _lookup(self, parent: Node, name: str) -> Node:
        if isinstance(parent.key, At):
            return parent.key.view.lookup(parent, name)
        role = parent.role
        if role >= Role.VERSION:
            if role == Role.FILE:
                raise NotADirectory("not a folder")
            row = self.db.entry(self._tree(parent), name)
            if row is None:
                raise NotFound(f"no such file or folder: {name}")
            node = self._entry_node(parent, row)
            if node.role == Role.FILE and node.cache:
                self.reads.looked_up(node)
            elif node.role == Role.FOLDER and node.cache:  # an immutable parent: ref is its tree
                self._note_parent(node.ref, parent, name)
            return node
        if role == Role.CATALOG:
            ds = self.db.dataset_by_name(in_project(parent.ref or DEFAULT_PROJECT, name))
            if ds is not None:
                return self._dataset_node(ds)
            project = None if parent.ref or name == DEFAULT_PROJECT else self.db.project_get(name)
            if project is not None:
                return self._project_node(project)
            raise NotFound(f"no dataset or project named {name!r}")
        if role == Role.DATASET:
            if VERSION_ID_RE.match(name):
                v = self.db.version_get(name)
                if v is not None and v["dataset"] == parent.dataset and v["state"] == "published":
                    return self._version_node(v)
            vid = self.db.tag_get(parent.dataset, name)
            if vid is not None:
                return self._tag_node(parent, vid)
            raise NotFound(f"no version or tag named {name!r}")
        raise NotADirectory("not a folder")

    def getattr(self, node: Node) -> Node:
        """``node`` with up-to-date attributes (the same node when it is immutable)."""
        if node.role == Role.CATALOG:
            if not node.ref:
                return self._catalog_node()
            project = self.db.project_get(node.ref)
            if project is None:
                raise NotFound("the project was deleted")
            return self._project_node(project)
        if node.role == Role.DATASET:
            row = self.db.dataset_by_id(node.dataset)
            if row is None:
                raise NotFound("the dataset was deleted")
            return self._dataset_node(row)
        return node

    def listing(self, node: Node) -> Listing:
        """The entries of folder ``node`` (for ``readdir``), with their attributes."""
        if isinstance(node.key, At):
            return node.key.view.listing(node)
        if isinstance(node.key, Magic) and self.paths is not None:
            return self.paths.listing(node)
        role = node.role
        if role in (Role.VERSION, Role.FOLDER):
            tree = self._tree(node)
            key = (tree, node.version)
            cached = self._listings.get(key)
            if cached is not None:
                self._listings.move_to_end(key)
                return Listing(cached)

            def fetch(after: str, limit: int) -> Page:
                rows = self.db.entries_after(tree, after, limit)
                return [(r["name"], self._entry_node(node, r)) for r in rows]

            def complete(entries: Page) -> None:
                self._remember_listing(key, entries)

            return Listing([], fetch, complete if node.cache else None)
        if role == Role.CATALOG:
            entries = [
                (d["name"].rpartition("/")[2], self._dataset_node(d))
                for d in self.db.datasets_in(node.ref or None)
            ]
            if not node.ref:
                entries += [
                    (p["name"], self._project_node(p))
                    for p in self.db.projects()
                    if p["name"] != DEFAULT_PROJECT
                ]
            return Listing(sorted(entries, key=lambda e: e[0]))
        if role == Role.DATASET:
            published = self.db.versions_of(node.dataset, "published")
            entries = [(v["id"], self._version_node(v)) for v in published]
            ids = {v["id"] for v in published}
            entries += [
                (t["tag"], self._tag_node(node, t["version"]))
                for t in self.db.tags_of_dataset(node.dataset)
                if t["tag"] not in ids
            ]
            return Listing(entries)
        raise NotADirectory("not a folder")

    def _following(self, folder: object, name: str, n: int) -> list[tuple[str, Node]]:
        """Up to ``n`` files after ``name`` in the listing of an immutable folder
        ``(tree, version, dataset)``: from the listing in memory when the folder was listed,
        else one index range of the catalog. Its file nodes are keyed by
        ``(tree, name)`` (what :class:`dlfs.warming.FolderAhead` follows)."""
        tree, version, dataset = cast(tuple[str, str, int], folder)
        cached = self._listings.get((tree, version))
        if cached is not None:
            at = bisect.bisect_right(cached, name, key=lambda e: e[0])
            page = cached[at : at + n]
        else:
            parent = Node(
                Role.FOLDER,
                DIR_MODE,
                0,
                0,
                CACHE_TTL,
                True,
                ref=tree,
                version=version,
                dataset=dataset,
            )
            rows = self.db.entries_after(tree, name, n)
            page = [(r["name"], self._entry_node(parent, r)) for r in rows]
        return [(nm, node) for nm, node in page if node.role == Role.FILE]

    def _note_parent(self, tree: str, parent: Node, name: str) -> None:
        parents = self._parents
        parents[tree] = (parent, name)
        parents.move_to_end(tree)
        while len(parents) > PARENTS_KEPT:
            parents.popitem(last=False)

    def _next_folder(self, folder: object) -> object | None:
        """The folder after immutable folder ``(tree, version, dataset)`` in its
        parent's listing, as the same kind of key; None when it is the last one, or
        when its parent is not known (the folder was not looked up by name)."""
        tree, version, dataset = cast(tuple[str, str, int], folder)
        known = self._parents.get(tree)
        if known is None:
            return None
        parent, name = known
        cached = self._listings.get((parent.ref, version))
        if cached is not None:
            at = bisect.bisect_right(cached, name, key=lambda e: e[0])
            later = [node for _nm, node in cached[at : at + NEXT_FOLDER_SCAN]]
        else:
            rows = self.db.entries_after(parent.ref, name, NEXT_FOLDER_SCAN)
            later = [self._entry_node(parent, r) for r in rows if r["kind"] == DIR]
        for node in later:
            if node.role == Role.FOLDER:
                return (node.ref, version, dataset)
        return None

    def _remember_listing(self, key: tuple[str, str], entries: Page) -> None:
        if len(entries) > LISTING_CACHE or key in self._listings:
            return
        self._listings[key] = entries
        self._listed += len(entries)
        while self._listed > LISTING_CACHE:
            _key, old = self._listings.popitem(last=False)
            self._listed -= len(old)

    @property
    def shared(self) -> bool:
        """True when users other than the mounting one are let in: a project with a
        group (for a catalog mount: any project with one)."""
        if self._root.role == Role.CATALOG:
            return any(p["grp"] is not None for p in self.db.projects())
        return self.access is not None

    def attributes(self, node: Node) -> tuple[int, int, int]:
        """``(st_mode, st_uid, st_gid)`` that ``node`` shows: its own (the mounting
        user's when it keeps no owner), through its project's access rule if any."""
        if self.access is not None or self._root.role != Role.CATALOG:
            rule: AccessRule | None = self.access  # a version mount's rule, set at open
        elif node.role == Role.CATALOG:
            rule = self._rules.get(node.ref) if node.ref else None
        else:
            if node.dataset not in self._rules:
                ds = self.db.dataset_by_id(node.dataset)
                if ds is not None:
                    self._dataset_node(ds)
            rule = self._rules.get(node.dataset)
        return shown(node, rule, self.uid, self.gid)

    def readlink(self, node: Node) -> str:
        """The target of a symlink: a tag's version id (a sibling folder), or the
        target a symlink item keeps."""
        if node.role == Role.TAG:
            return node.ref
        if node.role == Role.FILE and stat.S_ISLNK(node.mode):
            return link_of(node)
        raise InvalidInput("not a symlink")

    def listxattr(self, node: Node) -> list[str]:
        """The names of the extended attributes of ``node``: dlfs's own
        (:mod:`dlfs.xattrs`), then a file's ``user.*`` ones."""
        names = xattrs.names(node.role)
        if node.role == Role.FILE:
            names = names + Posix.parse(node.posix).xattr_names()
        return names

    def getxattr(self, node: Node, name: str) -> bytes:
        """The value of extended attribute ``name`` of ``node`` (:mod:`dlfs.xattrs`,
        or a ``user.*`` one the file keeps, from the node): :class:`NoAttribute` for any
        other name."""
        if is_user_xattr(name):
            if node.role != Role.FILE:
                raise NoAttribute(name)
            return Posix.parse(node.posix).xattr(name)
        attr = xattrs.find(node.role, name)
        if attr.on_node is not None:  # an immutable node's item and blob: no query
            return attr.on_node(node).encode()
        if node.role == Role.FILE:
            return attr.read(self.item(node)).encode()
        return attr.read(self._version_facts(node)).encode()

    def item(self, node: Node) -> ItemRecord:
        """The item of a file node."""
        row = self.db.item_get(node.ref)
        if row is None:
            raise Corrupt(f"item {node.ref} is missing from the catalog")
        return ItemRecord.from_row(row)

    def _version_facts(self, node: Node) -> VersionFacts:
        row = self.db.version_get(node.version)
        ds = self.db.dataset_by_id(node.dataset)
        return VersionFacts(
            node.version,
            row["state"] if row is not None else "deleted",
            ds["name"] if ds is not None else "",
            row["metadata"] if row is not None else "{}",
        )

    def statfs(self) -> FsStats:
        """Sizes for ``df``: the version's bytes and files, or the catalog's blobs."""
        if self._root.role == Role.VERSION:
            files, nbytes = trees.totals(self.db, self._tree(self._root))
        else:
            files, nbytes = self.db.blob_totals()
        return FsStats(BLOCK_SIZE, -(-nbytes // BLOCK_SIZE), files, NAME_MAX)

    # -- reading bytes --------------------------------------------------------------

    def open(self, node: Node, flags: int) -> int:
        """Open a file for reading; return a handle for :meth:`read`.

        Does no I/O and no query (the node has what reading needs). Opening for
        writing raises :class:`ReadOnly`.
        """
        if node.role != Role.FILE:
            raise IsADirectory("is a folder") if node.is_dir else InvalidInput("not a file")
        if not stat.S_ISREG(node.mode):
            raise InvalidInput("not a regular file: it has no bytes")
        if flags & os.O_ACCMODE != os.O_RDONLY or flags & (os.O_TRUNC | os.O_APPEND):
            self.refuse("open for writing")
        return self.reads.open(node)

    def release(self, fh: int) -> None:
        """Forget a handle."""
        self.reads.release(fh)

    def read_nowait(self, fh: int, offset: int, size: int) -> bytes | memoryview | None:
        """The bytes :meth:`read` would return, if they can be had without waiting;
        else None, and the caller runs :meth:`read` in a worker thread."""
        return self.reads.read_nowait(fh, offset, size)

    def read(self, fh: int, offset: int, size: int) -> bytes | memoryview:
        """Up to ``size`` bytes of the file from ``offset``: exactly the bytes that
        hash to its blob id, or :class:`Corrupt` / :class:`Unavailable`. May block;
        safe in a worker thread after :meth:`read_nowait` returned None."""
        return self.reads.read(fh, offset, size)

    def store_warmup(self) -> Callable[[], None] | None:
        """A job, safe to run in another thread, that opens the blob store of the
        mounted version's dataset (see :meth:`FileReads.store_warmup`); None for a
        catalog view."""
        if self._root.role != Role.VERSION:
            return None
        return self.reads.store_warmup(self._root.dataset)

    # -- writing: refused ------------------------------------------------------------

    def refuse(self, what: str) -> NoReturn:
        """Raise the :class:`ReadOnly` that says why this view takes no writes (the
        daemon answers every write request to a read-only view with it)."""
        if self._root.role == Role.CATALOG:
            raise ReadOnly(f"cannot {what}: the catalog mount is read-only")
        if self.spec is not None:
            raise ReadOnly(f"cannot {what}: a view ({self.spec.describe()}) is read-only")
        if self._root.cache:
            raise ReadOnly(f"cannot {what}: version {self._root.version} is published")
        raise ReadOnly(f"cannot {what}: this draft is mounted read-only (-o ro)")
