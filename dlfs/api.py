"""The Python API: :class:`Catalog`, the door to one catalog.

Every CLI command is one call here; each call that writes runs in one catalog
transaction (a read, in one snapshot) around a call into the library (``versions``,
``trees``, ``ops/``), so a :class:`dlfs.DlfsError` leaves the catalog exactly as
before. The handles it returns, :class:`Dataset` and :class:`Version`, are in
:mod:`dlfs.handles`, and :func:`mount` in :mod:`dlfs.mounts`; all are re-exported
by ``dlfs``::

    import dlfs

    cat = dlfs.Catalog("/tmp/home")
    ds = cat.create_dataset("cats", description="cat pictures")
    ds.draft().add("photos/", to="train")
    v1 = ds.draft().publish(tags=["gold"])
    print(v1.id, v1.tags, [f.path for f in v1.files()])
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlfs import apiargs, draftlock, projects, trees, versionmeta, versions
from dlfs.catalog import CatalogDB, Row
from dlfs.errors import Conflict, InvalidInput, IsADirectory
from dlfs.handles import Dataset, Entry, Item, MergedVersion, Progress, Version
from dlfs.home import Home
from dlfs.items import canonical_labels
from dlfs.mounts import mounted as mount
from dlfs.names import (
    check_annotations,
    check_metadata,
    check_project_name,
    join_path,
    set_dotted,
    split_path,
)
from dlfs.objects import DIR
from dlfs.ops import clone as clone_ops
from dlfs.ops import diff as diff_ops
from dlfs.ops import (
    importer,
    maintenance,
    placing,
    selection,
)
from dlfs.ops import merge as merge_ops
from dlfs.ops.selection import DATASET_FIELDS
from dlfs.projectapi import Project, ProjectMethods
from dlfs.reader import VersionFile
from dlfs.stores.base import BlobStore
from dlfs.stores.registry import StoreRegistry
from dlfs.transferapi import TransferMethods

if TYPE_CHECKING:
    pass

__all__ = [
    "DATASET_FIELDS",
    "Catalog",
    "Dataset",
    "Entry",
    "Item",
    "MergedVersion",
    "Progress",
    "Project",
    "Version",
    "VersionFile",
    "mount",
]


@apiargs.checked
class Catalog(ProjectMethods, TransferMethods):
    """A dlfs catalog at ``home`` (default ``$DLFS_HOME`` or ``~/.local/share/dlfs``).

    Opening creates it if needed (folders 0700, files 0600).
    """

    def __init__(self, home: str | os.PathLike[str] | None = None) -> None:
        self.home = Home.at(home)
        self.home.create()
        self.db = CatalogDB(self.home.catalog_path)
        self._stores = StoreRegistry(self.home)

    def close(self) -> None:
        """Close the stores (their cached files) and the catalog file."""
        self._stores.close()
        self.db.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- stores -------------------------------------------------------------------

    def store(self, url: str = "local") -> BlobStore:
        """The blob store for a storage URL: ``local`` is the catalog's own;
        ``s3://bucket/prefix`` and ``linked:s3://bucket/prefix`` are remote stores (see
        :func:`dlfs.stores.remote.open_store`; endpoint from ``DLFS_S3_ENDPOINT``)."""
        return self._stores.get(url)

    def _store_of(self, version: Row) -> BlobStore:
        return self.store(versions.storage_of(self.db, version["dataset"]))

    # -- datasets -----------------------------------------------------------------

    def create_dataset(
        self,
        name: str,
        description: str = "",
        tags: list[str] | None = None,
        labels: Any = None,
        storage: str = "local",
        exist_ok: bool = False,
        project: str | None = None,
    ) -> Dataset:
        """Create a dataset with one empty draft; ``exist_ok`` returns an existing one.

        ``project`` puts it in that project (which must exist), as ``PROJECT/NAME`` does.
        """
        if project is not None:
            name = f"{check_project_name(project)}/{name}"
        self.store(storage)
        with self.db.transaction():
            row, _created = versions.create_dataset(
                self.db, name, description, tags, labels, storage, exist_ok
            )
        return Dataset(self, row["name"])

    def dataset(self, name: str) -> Dataset:
        """The dataset named ``name`` (:class:`NotFound` if there is none)."""
        versions.dataset_row(self.db, name)
        return Dataset(self, name)

    def datasets(
        self,
        where: Mapping[str, Any] | Callable[[Dataset], bool] | None = None,
        sort: str | Sequence[str] | None = None,
        project: str | None = None,
    ) -> list[Dataset]:
        """The datasets (of ``project`` only, if given), by name, or filtered by
        ``where`` and sorted by ``sort``.

        Fields name what a dataset has: ``name``, ``kind``, ``description``,
        ``storage``, ``tags``, ``labels``, ``created_at`` and ``metadata.KEY``
        (a dotted path into its custom metadata, see :meth:`Dataset.set_metadata`;
        a missing key is ``None``).

        ``where`` is a mapping ``{field: value}`` whose every entry must hold (a
        value equals the field's as JSON values do: ``1 != True``; for ``tags`` a
        string holds when it is one of the dataset's tags; a callable value is a
        predicate on the field's value), or a callable taking the
        :class:`Dataset` and returning a bool.

        ``sort`` is a field, ``-field`` for descending order, or a list of them
        (the first decides, the next break ties, the name last). Datasets that lack
        the field come last either way; ascending, numbers come before strings.

        ```python
        cat.datasets(where={"metadata.owner": "ann"}, sort="-metadata.score")
        cat.datasets(where=lambda ds: "pets" in ds.tags)
        ```
        """
        with self.db.snapshot():
            found = (
                self.db.datasets() if project is None else projects.datasets_of(self.db, project)
            )
            rows = [(Dataset(self, r["name"]), versions.dataset_fields(r)) for r in found]
        return selection.select(rows, where, sort)

    def delete_dataset(
        self,
        name: str,
        all_versions: bool = False,
        force: bool = False,
        delete_sources: bool = False,
    ) -> list[str]:
        """Delete a dataset (see :func:`dlfs.versions.delete_dataset`).

        With ``delete_sources`` the blobs no other dataset uses are removed too; the ids
        removed are returned.
        """
        with self.db.transaction():
            storage, removed = maintenance.delete_dataset(
                self.db, name, all_versions, force, delete_sources
            )
        maintenance.delete_blobs(self.store(storage), removed)
        return removed

    def tag_dataset(
        self, name: str, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> list[str]:
        """Add and remove the own tags of dataset ``name``; return them."""
        with self.db.transaction():
            return versions.dataset_tag(self.db, name, list(add), list(remove))

    def set_dataset_metadata(self, name: str, assignments: list[tuple[str, Any]]) -> dict[str, Any]:
        """Set custom metadata keys (dotted paths) of dataset ``name``; return all of it."""
        with self.db.transaction():
            return versions.dataset_meta(self.db, name, assignments)

    # -- versions -----------------------------------------------------------------

    def version(self, ref: str) -> Version:
        """The version a ref names (``NAME`` alone means ``NAME@latest``)."""
        row = versions.resolve(self.db, ref)
        return Version(self, row["id"])

    def draft(self, ref: str) -> Version:
        """The draft a ref names (``NAME`` alone means ``NAME@draft``)."""
        row = versions.resolve_draft(self.db, ref)
        return Version(self, row["id"])

    def publish(
        self,
        ref: str,
        tags: list[str] | None = None,
        name: str | None = None,
        comment: str | None = None,
    ) -> Version:
        """Publish a draft: new id, next ``vN``, ``latest``, the given tags and comment.

        A draft mounted read-write is published with everything closed there; while
        files stay open for writing this waits a little, then raises
        :class:`Conflict` (see :mod:`dlfs.draftlock`).
        """
        draft = versions.resolve(self.db, ref, write=True)["id"]
        with draftlock.publishing(self.home, draft) as guard, self.db.transaction():
            row = versions.resolve(self.db, ref, write=True)
            vid = versions.publish(self.db, row, tags, name, comment)
            guard.published(row["id"], vid)
        return Version(self, vid)

    def snapshot(
        self,
        name: str,
        publish_name: str | None = None,
        child_name: str | None = None,
        child_metadata: dict[str, Any] | None = None,
        comment: str | None = None,
        child_comment: str = "",
    ) -> tuple[Version, Version]:
        """Publish the draft of dataset ``name`` and start a child draft; return both
        (the published version has a new id: the draft's id is gone, see
        ``docs/versions.md``)."""
        draft = versions.resolve_draft(self.db, f"{name}@draft")["id"]
        with draftlock.publishing(self.home, draft) as guard, self.db.transaction():
            ds = versions.dataset_row(self.db, name)
            pub, child = versions.snapshot(
                self.db, ds, publish_name, child_name, child_metadata, comment, child_comment
            )
            guard.published(draft, pub)
        return Version(self, pub), Version(self, child)

    def create_version(
        self,
        name: str,
        parents: list[str] | None = None,
        version_name: str | None = None,
        exist_ok: bool = False,
    ) -> Version:
        """A new draft of dataset ``name``: a child of the published ``parents`` refs,
        or an empty root version without them."""
        with self.db.transaction():
            ds = versions.dataset_row(self.db, name)
            rows = [versions.resolve(self.db, p) for p in parents or []]
            vid, _ = versions.create_version(self.db, ds, rows, version_name, exist_ok)
        return Version(self, vid)

    def delete_version(self, ref: str) -> None:
        """Delete a draft (published versions are immutable; a draft mounted
        read-write is a :class:`Conflict` until it is unmounted)."""
        with self.db.transaction():
            row = versions.resolve(self.db, ref, write=True)
            where = draftlock.mounted_at(self.home, row["id"])
            if where is not None:
                raise Conflict(f"draft {row['id']} is mounted read-write {where}: unmount it first")
            versions.delete_version(self.db, row)

    def set_version_metadata(
        self,
        ref: str,
        assignments: Mapping[str, Any] | Sequence[tuple[str, Any]] = (),
        remove: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Set (dotted) keys of the metadata of any version, draft or published, and
        remove ``remove`` keys; return all of it. Content and id do not change; the
        change is recorded (see :mod:`dlfs.versionmeta`). ``NAME`` means ``NAME@latest``."""
        pairs = list(assignments.items()) if isinstance(assignments, Mapping) else assignments
        with self.db.transaction():
            row = versions.resolve(self.db, ref)
            return versionmeta.set_metadata(self.db, row, pairs, remove)

    def set_version_comment(self, ref: str, comment: str) -> str:
        """Replace the comment of any version, draft or published (recorded)."""
        with self.db.transaction():
            return versionmeta.set_comment(self.db, versions.resolve(self.db, ref), comment)

    def version_changes(self, ref: str) -> list[dict[str, Any]]:
        """The recorded metadata and comment changes of a version, oldest first."""
        with self.db.snapshot():
            return versionmeta.changes(self.db, versions.resolve(self.db, ref)["id"])

    def tag(self, ref: str, tags: list[str], force: bool = False) -> list[str]:
        """Add user tags to a published version; return all its tags."""
        with self.db.transaction():
            return versions.tag_version(self.db, versions.resolve(self.db, ref), tags, force)

    def untag(self, name: str, tag: str) -> None:
        """Remove a user tag from dataset ``name``."""
        with self.db.transaction():
            versions.untag(self.db, name, tag)

    # -- reading ------------------------------------------------------------------

    def ls(self, ref: str, path: str = "") -> list[Entry]:
        """The entries of a folder (or the one entry of a file) of a version."""
        with self.db.snapshot():
            row = versions.resolve(self.db, ref)
            parts = split_path(path)
            entry = trees.resolve(self.db, row["root"], parts)
            dir_time = row["published_at"] or row["created_at"]
            if entry is not None and entry["kind"] != DIR:
                return [Entry.from_row(parts[:-1], entry, dir_time)]
            tree = row["root"] if entry is None else entry["ref"]
            return [Entry.from_row(parts, e, dir_time) for e in self.db.entries(tree)]

    def item(self, ref: str, path: str) -> Item:
        """The item at ``path`` of a version, with metadata and annotations."""
        with self.db.snapshot():
            row = versions.resolve(self.db, ref)
            return self._item(row, split_path(path))

    def _item(self, row: Row, parts: list[str]) -> Item:
        entry = trees.resolve(self.db, row["root"], parts)
        if entry is None or entry["kind"] == DIR:
            raise IsADirectory(f"is a folder: {join_path(parts)}")
        item = self.db.item_get(entry["ref"])
        assert item is not None
        return Item.from_row(join_path(parts), item)

    def cat(self, ref: str, path: str) -> Iterator[bytes]:
        """The bytes of a file, in chunks, each verified against its hash before it is
        yielded (a corrupt chunk raises :class:`Corrupt` instead)."""
        with self.db.snapshot():
            row = versions.resolve(self.db, ref)
            item = self._item(row, split_path(path))
            store = self._store_of(row)
        return store.iter_bytes(item.blob)

    def files(self, ref: str) -> list[Item]:
        """Every file of a version, in path order."""
        with self.db.snapshot():
            row = versions.resolve(self.db, ref)
            rows = self.db.subtree_files(row["root"])
            return [
                Item.from_row(r["path"], self.db.item_get(r["ref"]))  # type: ignore[arg-type]
                for r in rows
            ]

    def log(self, name: str) -> list[dict[str, Any]]:
        """The history of a dataset, oldest first."""
        with self.db.snapshot():
            ds = versions.dataset_row(self.db, name)
            return [versions.version_info(self.db, v, name) for v in self.db.versions_of(ds["id"])]

    # -- writing into drafts --------------------------------------------------------

    def _draft_tree(self, ref: str) -> tuple[Row, trees.DraftTree]:
        row = versions.resolve_draft(self.db, ref)
        return row, trees.DraftTree(self.db, row["id"], row["root"])

    def add(
        self,
        ref: str,
        sources: list[str | os.PathLike[str]],
        to: str = "",
        progress: Progress | None = None,
        metadata: dict[str, Any] | None = None,
        annotations: list[Any] | None = None,
        follow_symlinks: bool = False,
        warn: Callable[[str], None] | None = None,
    ) -> importer.AddResult:
        """Copy local files and folders into a draft (see :mod:`dlfs.ops.importer`);
        ``metadata`` and ``annotations``, when given, are set on every file added.
        Symlinks are stored as symlinks; ``follow_symlinks`` follows those pointing
        inside the source, and ``warn`` hears of each link that was not followed."""
        row = versions.resolve_draft(self.db, ref)
        files, folders = importer.plan(
            [Path(s) for s in sources], split_path(to), follow_symlinks, warn
        )
        if metadata is not None or annotations is not None:
            meta = None if metadata is None else check_metadata(metadata)
            ann = None if annotations is None else check_annotations(annotations)
            for planned in files:
                planned.metadata, planned.annotations = meta, ann
        store = self._store_of(row)
        store.clear_staging()
        return importer.add(self.db, store, row, files, folders, progress)

    def add_bytes(
        self,
        ref: str,
        path: str,
        data: bytes,
        metadata: dict[str, Any] | None = None,
        annotations: list[Any] | None = None,
    ) -> importer.AddResult:
        """Write ``data`` as the file at ``path`` of a draft, with optional metadata."""
        row = versions.resolve_draft(self.db, ref)
        parts = split_path(path)
        if not parts:
            raise InvalidInput("a file needs a name")
        planned = importer.PlannedFile(
            data,
            tuple(parts[:-1]),
            parts[-1],
            None if metadata is None else check_metadata(metadata),
            None if annotations is None else check_annotations(annotations),
        )
        return importer.add(self.db, self._store_of(row), row, [planned], [])

    def mkdir(self, ref: str, paths: list[str], parents: bool = False) -> None:
        """Make folders in a draft."""
        with self.db.transaction():
            _row, tree = self._draft_tree(ref)
            for path in paths:
                tree.mkdir(split_path(path), parents)

    def rm(self, ref: str, paths: list[str], recursive: bool = False) -> None:
        """Remove files (and folders with ``recursive``) from a draft."""
        with self.db.transaction():
            _row, tree = self._draft_tree(ref)
            for path in paths:
                tree.remove(split_path(path), recursive)

    def mv(self, ref: str, sources: list[str], dest: str) -> None:
        """Move items in a draft, as ``mv`` does: into ``dest`` when it is a folder,
        else (one source) to that new path."""
        with self.db.transaction():
            _row, tree = self._draft_tree(ref)
            placing.place(self.db, tree, sources, dest, copy=False)

    def cp(self, ref: str, sources: list[str], dest: str, new_lineage: bool = False) -> None:
        """Copy items in a draft as pointers (no bytes copied), as ``cp -r`` places them.

        Copies share their source's lineage (merge treats them as the same item)
        unless ``new_lineage``, which gives the copies fresh lineage ids."""
        with self.db.transaction():
            _row, tree = self._draft_tree(ref)
            placing.place(self.db, tree, sources, dest, copy=True, new_lineage=new_lineage)

    def cp_into(self, sources: Sequence[str], dest: str, new_lineage: bool = False) -> list[str]:
        """Copy files and folders ``REF:PATH`` of any versions into the folder
        ``DST_REF:FOLDER`` of a draft of another (or the same) dataset in the same
        storage: pointers only, lineage kept unless ``new_lineage``; return the new
        paths (see :func:`dlfs.ops.placing.copy_into`)."""
        with self.db.transaction():
            return placing.copy_into(self.db, list(sources), dest, new_lineage)

    def set_meta(
        self,
        ref: str,
        path: str,
        assignments: list[tuple[str, Any]] | None = None,
        annotations: list[Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Item:
        """Update the metadata (dotted-key assignments, or a whole object) and/or the
        annotations of a draft's file; return the updated item."""
        with self.db.transaction():
            row, tree = self._draft_tree(ref)
            parts = split_path(path)
            old = self._item(row, parts)
            meta = dict(old.metadata) if metadata is None else check_metadata(metadata)
            for key, value in assignments or []:
                set_dotted(meta, key, value)
            ann = None if annotations is None else check_annotations(annotations)
            tree.relabel(tree.mutable_dir(parts[:-1]), parts[-1], *canonical_labels(meta, ann))
            # The first change to a folder re-points the draft's root: read it again.
            current = self.db.version_get(row["id"])
            assert current is not None
            return self._item(current, parts)

    # -- clone, merge, diff -----------------------------------------------------------

    def clone(
        self,
        ref: str | Version,
        name: str,
        include: list[str] | None = None,
        where: str | None = None,
        metadata: bool = True,
        annotations: bool = True,
        publish: bool = False,
        storage: str | None = None,
        progress: Progress | None = None,
    ) -> Version:
        """Clone version ``ref`` into a new dataset ``name`` (see :mod:`dlfs.ops.clone`).

        Unfiltered and with metadata and annotations it costs O(1). ``include`` globs
        and a ``where`` expression (:mod:`dlfs.ops.where`) select a subset;
        ``metadata=False``/``annotations=False`` drop them from the clone's items.
        Returns the clone's first version: a draft, or published with ``publish``.
        ``progress`` is called with counts of files visited.
        """
        with self.db.transaction():
            vid = clone_ops.clone(
                self.db,
                _ref_of(ref),
                name,
                include or [],
                where,
                metadata,
                annotations,
                publish,
                storage,
                progress,
            )
        return Version(self, vid)

    def merge(
        self,
        name: str,
        refs: Sequence[str | Version],
        metadata: bool = True,
        annotations: bool = True,
        on_conflict: str = "rename",
        publish: bool = False,
    ) -> MergedVersion:
        """Merge versions ``refs`` into a new dataset ``name`` (see :mod:`dlfs.ops.merge`).

        Items of one lineage become one item (annotations united, metadata merged,
        later refs winning, bytes from the last ref; ``metadata=False`` /
        ``annotations=False`` give every item none); unrelated items are summed, the
        later of two on one path renamed (``"rename"``, the default). Returns the first
        version, whose ``conflicts`` list what was resolved; ``on_conflict="fail"``
        refuses a merge with any conflict instead.
        """
        with self.db.transaction():
            vid, conflicts = merge_ops.merge(
                self.db,
                name,
                [_ref_of(r) for r in refs],
                metadata,
                annotations,
                on_conflict,
                publish,
            )
        return MergedVersion(self, vid, conflicts)

    def diff(self, a: str | Version, b: str | Version) -> diff_ops.Diff:
        """Added, removed, modified and moved items from version ``a`` to ``b``,
        in O(changes) (see :mod:`dlfs.ops.diff`)."""
        with self.db.snapshot():
            return diff_ops.diff(self.db, _ref_of(a), _ref_of(b))

    def new_lineage(self, ref: str, paths: list[str]) -> int:
        """Give the items at ``paths`` (files or folders) of a draft fresh lineage ids,
        so that merges treat them as new items; return how many items changed."""
        with self.db.transaction():
            _row, tree = self._draft_tree(ref)
            return sum(clone_ops.new_lineage(self.db, tree, split_path(p)) for p in paths)

    # -- maintenance ----------------------------------------------------------------

    def gc(self) -> dict[str, int]:
        """Remove catalog rows and local blobs that no version reaches."""
        with self.db.transaction():
            removed = maintenance.sweep(self.db, stores={"local"})
        return maintenance.finish_gc(self.db, self.store("local"), removed)

    def fsck(self, progress: Progress | None = None) -> list[str]:
        """Check every recorded local blob against its hash (and its block manifest, if
        it has one); return the problems found."""
        return maintenance.fsck(self.db, self.store("local"), progress)

    # -- python api conveniences ----------------------------------------------------

    def __repr__(self) -> str:
        return f"Catalog({str(self.home.root)!r})"

    def open(self, ref: str, path: str, buffer_size: int = 1 << 20) -> VersionFile:
        """The file at ``path`` of a version as a read-only binary file object, which
        reads verified bytes (see :mod:`dlfs.reader`): it is seekable, and
        :class:`Corrupt` is raised rather than a wrong byte returned."""
        with self.db.snapshot():
            row = versions.resolve(self.db, ref)
            item = self._item(row, split_path(path))
            store = self._store_of(row)
        return VersionFile(store, item.blob, item.size, item.path, buffer_size)

    def stat(self, ref: str, path: str = "") -> Entry:
        """The :class:`Entry` of one file or folder of a version (``""`` is its root);
        :class:`NotFound` when there is none."""
        with self.db.snapshot():
            row = versions.resolve(self.db, ref)
            parts = split_path(path)
            entry = trees.resolve(self.db, row["root"], parts)
            dir_time = row["published_at"] or row["created_at"]
            if entry is None:
                return Entry("", "", True, 0, dir_time, None, None)
            if entry["kind"] == DIR:
                return Entry(join_path(parts), parts[-1], True, 0, dir_time, None, None)
            return Entry.from_row(parts[:-1], entry, dir_time)

    def mount(
        self,
        ref: str | Version | None = None,
        mountpoint: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> contextlib.AbstractContextManager[Path]:
        """:func:`dlfs.mount` for a version of this catalog (``None``: all of it)."""
        return mount(ref, mountpoint, home=self.home.root, **kwargs)


def _ref_of(ref: str | Version) -> str:
    return ref.ref if isinstance(ref, Version) else ref
