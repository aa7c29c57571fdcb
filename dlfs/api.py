"""The Python API: :class:`Catalog`, :class:`Dataset`, :class:`Version`.

Every CLI command is one call here; each call that writes runs in one catalog
transaction, so a :class:`dlfs.DlfsError` leaves the catalog exactly as before::

    import dlfs

    cat = dlfs.Catalog("/tmp/home")
    ds = cat.create_dataset("cats", description="cat pictures")
    ds.draft().add("photos/", to="train")
    v1 = ds.draft().publish(tags=["gold"])
    print(v1.id, v1.tags, [f.path for f in v1.files()])
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlfs import draftlock, mounts, trees, versions
from dlfs.catalog import CatalogDB, Row
from dlfs.errors import Conflict, DlfsError, InvalidInput, IsADirectory, NotFound
from dlfs.home import Home
from dlfs.items import canonical_labels
from dlfs.names import (
    check_annotations,
    check_dataset_name,
    check_metadata,
    join_path,
    set_dotted,
    split_path,
)
from dlfs.objects import DIR, canonical_json
from dlfs.ops import clone as clone_ops
from dlfs.ops import diff as diff_ops
from dlfs.ops import importer
from dlfs.ops import link as link_ops
from dlfs.ops import merge as merge_ops
from dlfs.ops import push as push_ops
from dlfs.ops.where import equal as json_equal
from dlfs.reader import VersionFile
from dlfs.stores.base import BlobStore
from dlfs.stores.local import LocalStore
from dlfs.stores.urls import is_linked, linked_url, parse_s3_url

if TYPE_CHECKING:
    from dlfs.stores.s3 import S3Store

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Entry:
    """One file or folder of a version, as ``ls`` shows it."""

    path: str
    name: str
    is_dir: bool
    size: int
    mtime: float
    item: str | None
    blob: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "name": self.name,
            "type": "dir" if self.is_dir else "file",
            "size": self.size,
            "mtime": self.mtime,
            "item": self.item,
            "blob": self.blob,
        }


@dataclass(frozen=True)
class Item:
    """A file of a version with its lineage, metadata and annotations."""

    path: str
    id: str
    origin: str
    blob: str
    size: int
    mtime: float
    metadata: dict[str, Any]
    annotations: list[Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "item": self.id,
            "origin": self.origin,
            "blob": self.blob,
            "size": self.size,
            "mtime": self.mtime,
            "metadata": self.metadata,
            "annotations": self.annotations,
        }


class Catalog:
    """A dlfs catalog at ``home`` (default ``$DLFS_HOME`` or ``~/.local/share/dlfs``).

    Opening creates it if needed (folders 0700, files 0600).
    """

    def __init__(self, home: str | os.PathLike[str] | None = None) -> None:
        self.home = Home.at(home)
        self.home.create()
        self.db = CatalogDB(self.home.catalog_path)
        self._stores: dict[str, BlobStore] = {}

    def close(self) -> None:
        """Close the catalog file."""
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
        if url not in self._stores:
            if url == "local":
                self._stores[url] = LocalStore(self.home.blobs)
            else:
                from dlfs.stores.remote import open_store  # boto3 only when needed

                self._stores[url] = open_store(url, self.home)
        return self._stores[url]

    def _store_of(self, version: Row) -> BlobStore:
        ds = self.db.dataset_by_id(version["dataset"])
        assert ds is not None
        return self.store(ds["storage"])

    # -- datasets -----------------------------------------------------------------

    def create_dataset(
        self,
        name: str,
        description: str = "",
        tags: list[str] | None = None,
        labels: Any = None,
        storage: str = "local",
        exist_ok: bool = False,
    ) -> Dataset:
        """Create a dataset with one empty draft; ``exist_ok`` returns an existing one."""
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
    ) -> list[Dataset]:
        """The datasets, by name, or filtered by ``where`` and sorted by ``sort``.

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
        return _select_datasets(self, where, sort)

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
            ds = versions.dataset_row(self.db, name)
            versions.delete_dataset(self.db, name, all_versions, force)
            unused = self._sweep(stores={ds["storage"]}, forget=delete_sources)
        removed = unused if delete_sources else []
        self._delete_blobs(removed, ds["storage"])
        return removed

    # -- versions -----------------------------------------------------------------

    def version(self, ref: str) -> Version:
        """The version a ref names (``NAME`` alone means ``NAME@latest``)."""
        row = versions.resolve(self.db, ref)
        return Version(self, row["id"])

    def draft(self, ref: str) -> Version:
        """The draft a ref names (``NAME`` alone means ``NAME@draft``)."""
        row = versions.resolve_draft(self.db, ref)
        return Version(self, row["id"])

    def publish(self, ref: str, tags: list[str] | None = None, name: str | None = None) -> Version:
        """Publish a draft: new id, next ``vN``, ``latest`` and the given tags.

        A draft mounted read-write is published with everything closed there; while
        files stay open for writing this waits a little, then raises
        :class:`Conflict` (see :mod:`dlfs.draftlock`).
        """
        draft = versions.resolve(self.db, ref, write=True)["id"]
        with draftlock.publishing(self.home, draft) as guard, self.db.transaction():
            row = versions.resolve(self.db, ref, write=True)
            vid = versions.publish(self.db, row, tags, name)
            guard.published(row["id"], vid)
        return Version(self, vid)

    def snapshot(
        self,
        name: str,
        publish_name: str | None = None,
        child_name: str | None = None,
        child_metadata: dict[str, Any] | None = None,
        comment: str | None = None,
    ) -> tuple[Version, Version]:
        """Publish the draft of dataset ``name`` and start a child draft; return both."""
        draft = versions.resolve_draft(self.db, f"{name}@draft")["id"]
        with draftlock.publishing(self.home, draft) as guard, self.db.transaction():
            ds = versions.dataset_row(self.db, name)
            pub, child = versions.snapshot(
                self.db, ds, publish_name, child_name, child_metadata, comment
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
                return [_entry(parts[:-1], entry, dir_time)]
            tree = row["root"] if entry is None else entry["ref"]
            return [_entry(parts, e, dir_time) for e in self.db.entries(tree)]

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
        return _item(join_path(parts), item)

    def cat(self, ref: str, path: str) -> Iterator[bytes]:
        """The bytes of a file, verified against their hash."""
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
                _item(r["path"], self.db.item_get(r["ref"]))  # type: ignore[arg-type]
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
    ) -> importer.AddResult:
        """Copy local files and folders into a draft (see :mod:`dlfs.ops.importer`);
        ``metadata`` and ``annotations``, when given, are set on every file added."""
        row = versions.resolve_draft(self.db, ref)
        files, folders = importer.plan([Path(s) for s in sources], split_path(to))
        if metadata is not None or annotations is not None:
            meta = None if metadata is None else check_metadata(metadata)
            ann = None if annotations is None else check_annotations(annotations)
            for planned in files:
                planned.metadata, planned.annotations = meta, ann
        store = self._store_of(row)
        if isinstance(store, LocalStore):
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
        self._transfer(ref, sources, dest, copy=False)

    def cp(self, ref: str, sources: list[str], dest: str, new_lineage: bool = False) -> None:
        """Copy items in a draft as pointers (no bytes copied), as ``cp -r`` places them.

        Copies share their source's lineage (merge treats them as the same item)
        unless ``new_lineage``, which gives the copies fresh lineage ids."""
        self._transfer(ref, sources, dest, copy=True, new_lineage=new_lineage)

    def _transfer(
        self, ref: str, sources: list[str], dest: str, copy: bool, new_lineage: bool = False
    ) -> None:
        with self.db.transaction():
            _row, tree = self._draft_tree(ref)
            dst = split_path(dest)
            try:
                target = trees.resolve(self.db, tree.root, dst)
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
                        clone_ops.new_lineage(self.db, tree, final)
                else:
                    tree.move(src, final, replace=True)

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
        on_conflict: str = "fail",
        publish: bool = False,
    ) -> Version:
        """Merge versions ``refs`` into a new dataset ``name`` (see :mod:`dlfs.ops.merge`).

        Items of one lineage become one item (annotations united, metadata merged,
        later refs winning; ``metadata=False``/``annotations=False`` keep the first
        copy's); unrelated items are summed, and a path two of them want is an error
        (``on_conflict="fail"``) or renamed (``"rename"``). Returns the first version.
        """
        with self.db.transaction():
            vid = merge_ops.merge(
                self.db,
                name,
                [_ref_of(r) for r in refs],
                metadata,
                annotations,
                on_conflict,
                publish,
            )
        return Version(self, vid)

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

    # -- storage: link, sync, push, pull --------------------------------------------

    def link(self, name: str, url: str, progress: Progress | None = None) -> link_ops.SyncResult:
        """Index the objects under ``s3://bucket/prefix`` into the draft of dataset
        ``name`` without copying them (made, as a linked dataset, if it does not
        exist); see :mod:`dlfs.ops.link`. The bucket is listed before the catalog
        transaction starts."""
        check_dataset_name(name)
        storage = linked_url(url)
        ds = self.db.dataset_by_name(name)
        if ds is not None and ds["storage"] != storage:
            raise Conflict(
                f"dataset {name!r} keeps its binaries in {ds['storage']}; link"
                f" {url} to a new dataset"
            )
        return self._index(name, storage, progress)

    def sync(self, name: str, progress: Progress | None = None) -> link_ops.SyncResult:
        """Index the linked bucket of dataset ``name`` again: new objects are added,
        deleted ones removed, changed ones become new items (see :mod:`dlfs.ops.link`)."""
        ds = versions.dataset_row(self.db, name)
        if not is_linked(ds["storage"]):
            raise InvalidInput(
                f"dataset {name!r} is not linked to a bucket (its storage is {ds['storage']});"
                " use 'dlfs link NAME s3://bucket/prefix'"
            )
        return self._index(name, ds["storage"], progress)

    def _index(self, name: str, storage: str, progress: Progress | None) -> link_ops.SyncResult:
        from dlfs.stores.linked import LinkedStore

        store = self.store(storage)
        assert isinstance(store, LinkedStore)
        versioned, objects = store.scan()
        with self.db.transaction():
            ds = self.db.dataset_by_name(name)
            if ds is None:
                source = {"url": str(store.loc), "versioned": versioned}
                versions.create_dataset(
                    self.db, name, storage=storage, kind="linked", sources=[source]
                )
            draft = versions.resolve_draft(self.db, f"{name}@draft")
            result = link_ops.apply(
                self.db, draft, store.loc.bucket, store.loc.prefix, objects, storage, progress
            )
        result.versioned = versioned
        return result

    def _remote(self, url: str) -> S3Store:
        from dlfs.stores.s3 import S3Store

        remote = self.store(str(parse_s3_url(url)))
        assert isinstance(remote, S3Store)
        return remote

    def push(self, ref: str, url: str, progress: Progress | None = None) -> push_ops.PushResult:
        """Copy published version ``ref`` (its records and the blobs missing there) to
        the remote ``s3://bucket/prefix`` (see :mod:`dlfs.ops.push`); the catalog is
        not changed."""
        remote = self._remote(url)
        with self.db.snapshot():
            row = versions.resolve_published(self.db, ref)
            doc = push_ops.collect(self.db, row)
            source = self._store_of(row)
        uploaded, present, nbytes = push_ops.copy_blobs(doc, source, remote, progress)
        tags = push_ops.write(remote, doc)
        return push_ops.PushResult(
            doc["dataset"]["name"],
            doc["version"]["id"],
            remote.url,
            len(doc["blobs"]),
            uploaded,
            present,
            nbytes,
            tags,
        )

    def pull(
        self,
        url: str,
        ref: str,
        as_name: str | None = None,
        force: bool = False,
        progress: Progress | None = None,
    ) -> push_ops.PullResult:
        """Bring version ``ref`` (``NAME@SPEC`` on the remote) from ``s3://bucket/prefix``
        into this catalog with the same id and user tags, in one transaction; its
        blobs stay in S3 and are read lazily (see :mod:`dlfs.ops.push`). ``as_name``
        names the local dataset; ``force`` moves local user tags the version brings;
        ``progress`` is called with the bytes of the version's files once they are in."""
        if as_name is not None:
            check_dataset_name(as_name)
        remote = self._remote(url)
        name, vid = push_ops.resolve_remote(remote, ref)
        doc = push_ops.fetch(remote, name, vid)
        with self.db.transaction():
            result = push_ops.insert(self.db, doc, remote.url, as_name, force)
        if progress is not None:
            progress(sum(int(size) for _blob, size in doc["blobs"]))
        return result

    # -- maintenance ----------------------------------------------------------------

    def _sweep(self, stores: set[str] | None = None, forget: bool = True) -> list[str]:
        """Drop catalog rows no version reaches; return the unused blobs of ``stores``,
        forgetting them too when ``forget`` (the caller then deletes their bytes)."""
        _trees, _items, unused = self.db.sweep_unreachable()
        known = {r["id"]: r["store"] for r in self.db.blobs_all()}
        removed = [b for b in unused if stores is None or known.get(b) in stores]
        if forget:
            for blob in removed:
                self.db.blob_delete(blob)
        return removed

    def _delete_blobs(self, blobs: list[str], url: str) -> None:
        store = self.store(url)
        for blob in blobs:
            store.delete(blob)

    def gc(self) -> dict[str, int]:
        """Remove catalog rows and local blobs that no version reaches."""
        with self.db.transaction():
            removed = self._sweep(stores={"local"})
        self._delete_blobs(removed, "local")
        local = self.store("local")
        assert isinstance(local, LocalStore)
        local.clear_staging()
        return {"blobs_removed": len(removed)}

    def fsck(self, progress: Progress | None = None) -> list[str]:
        """Check every recorded local blob against its hash (and its block manifest, if
        it has one); return the problems found."""
        problems = []
        local = self.store("local")
        for blob in self.db.blobs_all():
            if blob["store"] != "local":
                continue
            if not local.verify(blob["id"]):
                problems.append(f"blob {blob['id']} is missing or corrupt")
            elif isinstance(local, LocalStore) and (problem := local.check_manifest(blob["id"])):
                problems.append(problem)
            if progress is not None:
                progress(blob["size"])
        return problems

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
            return _entry(parts[:-1], entry, dir_time)

    def mount(
        self,
        ref: str | Version | None = None,
        mountpoint: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> contextlib.AbstractContextManager[Path]:
        """:func:`dlfs.mount` for a version of this catalog (``None``: all of it)."""
        return mount(ref, mountpoint, home=self.home.root, **kwargs)


class Dataset:
    """A handle on a dataset by name; properties read the catalog each time."""

    def __init__(self, catalog: Catalog, name: str) -> None:
        self.catalog = catalog
        self.name = name

    def __repr__(self) -> str:
        return f"Dataset({self.name!r})"

    def info(self, detail: bool = False) -> dict[str, Any]:
        """A JSON-ready description (with the version list when ``detail``)."""
        db = self.catalog.db
        with db.snapshot():
            return versions.dataset_info(db, versions.dataset_row(db, self.name), detail)

    def draft(self) -> Version:
        """The dataset's single draft."""
        return self.catalog.draft(f"{self.name}@draft")

    def versions(self, published: bool = False, drafts: bool = False) -> list[Version]:
        """Versions oldest first; ``published`` or ``drafts`` keep only that state."""
        db = self.catalog.db
        row = versions.dataset_row(db, self.name)
        state = "published" if published and not drafts else "draft" if drafts else None
        return [Version(self.catalog, v["id"]) for v in db.versions_of(row["id"], state)]

    def snapshot(
        self,
        publish_name: str | None = None,
        child_name: str | None = None,
        child_metadata: dict[str, Any] | None = None,
        comment: str | None = None,
    ) -> tuple[Version, Version]:
        """See :meth:`Catalog.snapshot`."""
        return self.catalog.snapshot(self.name, publish_name, child_name, child_metadata, comment)

    def create_version(
        self, parents: list[str] | None = None, name: str | None = None, exist_ok: bool = False
    ) -> Version:
        """See :meth:`Catalog.create_version`."""
        return self.catalog.create_version(self.name, parents, name, exist_ok)

    def tag(self, add: list[str] = (), remove: list[str] = ()) -> list[str]:  # type: ignore[assignment]
        """Add and remove the dataset's own tags; return them."""
        with self.catalog.db.transaction():
            return versions.dataset_tag(self.catalog.db, self.name, list(add), list(remove))

    def set_metadata(self, assignments: list[tuple[str, Any]]) -> dict[str, Any]:
        """Set custom metadata keys; return all of it."""
        with self.catalog.db.transaction():
            return versions.dataset_meta(self.catalog.db, self.name, assignments)

    # -- python api conveniences ----------------------------------------------------

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Dataset) and other.catalog is self.catalog and other.name == self.name
        )

    def __hash__(self) -> int:
        return hash((id(self.catalog), self.name))

    def _row(self) -> Row:
        return versions.dataset_row(self.catalog.db, self.name)

    @property
    def kind(self) -> str:
        """``dataset``, ``clone``, ``merge`` or ``linked``."""
        return str(self._row()["kind"])

    @property
    def description(self) -> str:
        return str(self._row()["description"])

    @property
    def tags(self) -> list[str]:
        """The dataset's own tags (versions have theirs: :attr:`Version.tags`)."""
        return list(json.loads(self._row()["tags"]))

    @property
    def metadata(self) -> dict[str, Any]:
        """The dataset's custom metadata (see :meth:`set_metadata`)."""
        return dict(json.loads(self._row()["metadata"]))

    @property
    def labels(self) -> Any:
        """The label recipe, or ``None``."""
        labels = self._row()["labels"]
        return None if labels is None else json.loads(labels)

    @property
    def storage(self) -> str:
        """Where the binaries live: ``local``, ``s3://...`` or ``linked:s3://...``."""
        return str(self._row()["storage"])

    @property
    def latest(self) -> Version | None:
        """The latest published version, or ``None`` before the first publish."""
        vid = self.catalog.db.tag_get(self._row()["id"], "latest")
        return None if vid is None else Version(self.catalog, vid)

    def version(self, spec: str = "latest") -> Version:
        """The version ``NAME@spec`` names: a tag, a name, an id or id prefix, ``draft``."""
        return self.catalog.version(f"{self.name}@{spec}")

    def add(
        self,
        source: str | os.PathLike[str] | bytes,
        to: str = "",
        metadata: dict[str, Any] | None = None,
        annotations: list[Any] | None = None,
    ) -> importer.AddResult:
        """Add to the dataset's draft (see :meth:`Version.add`)."""
        return self.draft().add(source, to, metadata, annotations)

    def publish(self, tags: list[str] | None = None, name: str | None = None) -> Version:
        """Publish the dataset's draft (see :meth:`Version.publish`)."""
        return self.draft().publish(tags, name)

    def clone(
        self,
        name: str,
        version: str = "latest",
        include: list[str] | None = None,
        where: str | None = None,
        metadata: bool = True,
        annotations: bool = True,
        publish: bool = False,
    ) -> Version:
        """Clone version ``version`` (default ``latest``) into a new dataset ``name``;
        see :meth:`Catalog.clone`. Returns the clone's first version."""
        return self.catalog.clone(
            f"{self.name}@{version}",
            name,
            include=include,
            where=where,
            metadata=metadata,
            annotations=annotations,
            publish=publish,
        )

    def log(self) -> list[dict[str, Any]]:
        """The history of the dataset (see :meth:`Catalog.log`)."""
        return self.catalog.log(self.name)

    def delete(
        self, all_versions: bool = False, force: bool = False, delete_sources: bool = False
    ) -> list[str]:
        """Delete the dataset (see :meth:`Catalog.delete_dataset`)."""
        return self.catalog.delete_dataset(self.name, all_versions, force, delete_sources)


class Version:
    """A handle on one version by id. A draft's id changes when it is published: use
    the :class:`Version` that :meth:`publish` returns."""

    def __init__(self, catalog: Catalog, vid: str) -> None:
        self.catalog = catalog
        self.id = vid

    def __repr__(self) -> str:
        return f"Version({self.ref!r})"

    def _row(self) -> Row:
        row = self.catalog.db.version_get(self.id)
        if row is None:
            raise NotFound(f"version {self.id} no longer exists (published or deleted)")
        return row

    @property
    def dataset(self) -> str:
        ds = self.catalog.db.dataset_by_id(self._row()["dataset"])
        assert ds is not None
        return str(ds["name"])

    @property
    def ref(self) -> str:
        return f"{self.dataset}@{self.id}"

    @property
    def state(self) -> str:
        return str(self._row()["state"])

    @property
    def name(self) -> str | None:
        name = self._row()["name"]
        return None if name is None else str(name)

    @property
    def tags(self) -> list[str]:
        return self.catalog.db.tags_of_version(self.id)

    def info(self) -> dict[str, Any]:
        """A JSON-ready description."""
        return versions.version_info(self.catalog.db, self._row())

    def files(self) -> list[Item]:
        """Every file, in path order."""
        return self.catalog.files(self.ref)

    def ls(self, path: str = "") -> list[Entry]:
        """See :meth:`Catalog.ls`."""
        return self.catalog.ls(self.ref, path)

    def item(self, path: str) -> Item:
        """See :meth:`Catalog.item`."""
        return self.catalog.item(self.ref, path)

    def read_bytes(self, path: str) -> bytes:
        """The whole content of a file, verified."""
        return b"".join(self.catalog.cat(self.ref, path))

    def add(
        self,
        source: str | os.PathLike[str] | bytes,
        to: str = "",
        metadata: dict[str, Any] | None = None,
        annotations: list[Any] | None = None,
        progress: Progress | None = None,
    ) -> importer.AddResult:
        """Add a local file or folder into folder ``to`` of this draft (a file lands
        under its own name, a folder brings its contents); or, given bytes, write
        them as the file at path ``to``. ``metadata`` and ``annotations``, when
        given, are set on every file added; a file that lands on an existing path
        keeps the item's lineage (and its metadata and annotations unless given)."""
        if isinstance(source, bytes):
            return self.catalog.add_bytes(self.ref, to, source, metadata, annotations)
        return self.catalog.add(self.ref, [source], to, progress, metadata, annotations)

    def publish(self, tags: list[str] | None = None, name: str | None = None) -> Version:
        """Publish this draft; return the published version."""
        if self.state != "draft":
            raise Conflict(f"version {self.id} is already published")
        return self.catalog.publish(self.ref, tags, name)

    # -- python api conveniences ----------------------------------------------------

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and other.catalog is self.catalog and other.id == self.id

    def __hash__(self) -> int:
        return hash((id(self.catalog), self.id))

    @property
    def parents(self) -> list[str]:
        """The ids of the versions this one was made from."""
        return list(self.catalog.db.version_parents(self.id))

    @property
    def metadata(self) -> dict[str, Any]:
        """The version's metadata (``snapshot(child_metadata=...)``)."""
        return dict(json.loads(self._row()["metadata"]))

    @property
    def comment(self) -> str | None:
        comment = self._row()["comment"]
        return None if comment is None else str(comment)

    def open(self, path: str, buffer_size: int = 1 << 20) -> VersionFile:
        """The file at ``path`` as a read-only binary file object reading verified
        bytes (see :meth:`Catalog.open`)::

            with version.open("train/a.jpg") as f:
                head = f.read(16)
        """
        return self.catalog.open(self.ref, path, buffer_size)

    def stat(self, path: str = "") -> Entry:
        """See :meth:`Catalog.stat`."""
        return self.catalog.stat(self.ref, path)

    def exists(self, path: str) -> bool:
        """True when ``path`` names a file or folder of this version."""
        try:
            self.stat(path)
        except (NotFound, Conflict):
            return False
        return True

    def diff(self, other: str | Version) -> diff_ops.Diff:
        """What changed from this version to ``other`` (see :meth:`Catalog.diff`)."""
        return self.catalog.diff(self, other)

    def clone(
        self,
        name: str,
        include: list[str] | None = None,
        where: str | None = None,
        metadata: bool = True,
        annotations: bool = True,
        publish: bool = False,
    ) -> Version:
        """Clone this version into a new dataset ``name`` (see :meth:`Catalog.clone`)."""
        return self.catalog.clone(
            self,
            name,
            include=include,
            where=where,
            metadata=metadata,
            annotations=annotations,
            publish=publish,
        )

    def mount(
        self, mountpoint: str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> contextlib.AbstractContextManager[Path]:
        """Mount this version for a ``with`` block (see :func:`dlfs.mount`)."""
        return mount(self, mountpoint, **kwargs)

    def tag(self, *tags: str, force: bool = False) -> list[str]:
        """Add user tags to this published version; return all its tags."""
        return self.catalog.tag(self.ref, list(tags), force)

    def delete(self) -> None:
        """Delete this draft (published versions are immutable)."""
        self.catalog.delete_version(self.ref)

    def mkdir(self, path: str, parents: bool = False) -> None:
        """Make a folder in this draft (with ``parents``, its missing parents too)."""
        self.catalog.mkdir(self.ref, [path], parents)

    def rm(self, path: str, recursive: bool = False) -> None:
        """Remove a file (a folder with ``recursive``) from this draft."""
        self.catalog.rm(self.ref, [path], recursive)

    def mv(self, source: str | Sequence[str], dest: str) -> None:
        """Move items of this draft, as ``mv`` does (see :meth:`Catalog.mv`)."""
        self.catalog.mv(self.ref, [source] if isinstance(source, str) else list(source), dest)

    def cp(self, source: str | Sequence[str], dest: str) -> None:
        """Copy items of this draft as pointers (see :meth:`Catalog.cp`)."""
        self.catalog.cp(self.ref, [source] if isinstance(source, str) else list(source), dest)

    def set_meta(
        self,
        path: str,
        metadata: dict[str, Any] | None = None,
        annotations: list[Any] | None = None,
        **assignments: Any,
    ) -> Item:
        """Replace the metadata and/or annotations of a file of this draft, or set
        single metadata keys (``set_meta("a.jpg", split="train")``); return the item."""
        return self.catalog.set_meta(
            self.ref, path, list(assignments.items()), annotations, metadata
        )


def _entry(folder: list[str], e: Row, dir_time: float) -> Entry:
    is_dir = e["kind"] == DIR
    return Entry(
        path=join_path([*folder, e["name"]]),
        name=e["name"],
        is_dir=is_dir,
        size=0 if is_dir else e["size"],
        mtime=dir_time if is_dir else e["mtime"],
        item=None if is_dir else e["ref"],
        blob=None if is_dir else e["blob"],
    )


def _item(path: str, row: Row) -> Item:
    return Item(
        path=path,
        id=row["id"],
        origin=row["origin"],
        blob=row["blob"],
        size=row["size"],
        mtime=row["mtime"],
        metadata=json.loads(row["metadata"]),
        annotations=json.loads(row["annotations"]),
    )


# -- python api conveniences ----------------------------------------------------------


@contextlib.contextmanager
def mount(
    ref: str | Version | None = None,
    mountpoint: str | os.PathLike[str] | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
    options: Sequence[str] = (),
    cache_dir: str | None = None,
    cache_size: str | None = None,
    timeout: float = mounts.READY_TIMEOUT,
) -> Iterator[Path]:
    """Mount a version for the length of a ``with`` block; yield its root folder.

    The mount is made exactly as ``dlfs mount`` makes it (:func:`dlfs.mounts.mount`:
    a background daemon, ready when this returns) in a new private temporary folder,
    or at ``mountpoint`` when given, and unmounted when the block ends, also when it
    raises. Files still open then (a ``DataLoader`` worker that has not exited...)
    do not keep it: the mount is detached, and its daemon exits once they are
    closed. The temporary folder is removed.

    ``ref`` is a ref (``"cats@v1"``, ``"cats"`` for ``cats@latest``), a
    :class:`Version`, or ``None`` for the whole catalog. ``home`` is the catalog
    (default ``$DLFS_HOME``; a :class:`Version` brings its own). ``options``,
    ``cache_dir`` and ``cache_size`` are those of ``dlfs mount``.

    ```python
    with dlfs.mount("cats@v1") as root:
        print(sorted(p.name for p in root.iterdir()))
    ```
    """
    if isinstance(ref, Version):
        home = ref.catalog.home.root if home is None else home
        ref = ref.ref
    where = Home.at(home)
    made: Path | None = None
    if mountpoint is None:
        made = target = Path(tempfile.mkdtemp(prefix="dlfs-mount-"))
    else:
        target = Path(mountpoint)
    try:
        record = mounts.mount(
            where,
            target,
            ref,
            options=list(options),
            cache_dir=cache_dir,
            cache_size=cache_size,
            timeout=timeout,
        )
    except BaseException:
        if made is not None:
            made.rmdir()
        raise
    root = Path(record.mountpoint)
    try:
        yield root
    except BaseException:
        # The block's own error is what the caller needs: an unmount problem is not
        # allowed to replace it.
        with contextlib.suppress(DlfsError):
            _unmount(where, root)
        raise
    else:
        _unmount(where, root)
    finally:
        if made is not None:
            with contextlib.suppress(OSError):
                made.rmdir()


def _unmount(home: Home, root: Path) -> None:
    """Unmount ``root``; detach it (``--lazy``) when files are still open there."""
    try:
        mounts.unmount(home, root)
    except Conflict:
        mounts.unmount(home, root, lazy=True)


def _ref_of(ref: str | Version) -> str:
    return ref.ref if isinstance(ref, Version) else ref


DATASET_FIELDS = ("name", "kind", "description", "storage", "tags", "labels", "created_at")


def _field(fields: dict[str, Any], key: str) -> Any:
    """The value at a dotted field path (``metadata.a.b``), ``None`` when missing."""
    head, *rest = key.split(".")
    if head not in DATASET_FIELDS and not (head == "metadata" and rest):
        known = ", ".join([*DATASET_FIELDS, "metadata.KEY"])
        raise InvalidInput(f"unknown dataset field {key!r} (fields are {known})")
    value = fields[head]
    for part in rest:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _holds(fields: dict[str, Any], key: str, wanted: Any) -> bool:
    value = _field(fields, key)
    if callable(wanted):
        return bool(wanted(value))
    if key == "tags" and isinstance(wanted, str):
        return wanted in value
    return json_equal(value, wanted)


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, int | float):
        return (0, value)
    if isinstance(value, str):
        return (1, value)
    return (2, canonical_json(value))


def _select_datasets(
    catalog: Catalog,
    where: Mapping[str, Any] | Callable[[Dataset], bool] | None,
    sort: str | Sequence[str] | None,
) -> list[Dataset]:
    with catalog.db.snapshot():
        rows = [
            (Dataset(catalog, r["name"]), versions.dataset_fields(r)) for r in catalog.db.datasets()
        ]
    if isinstance(where, Mapping):
        conditions = list(where.items())
        for key, _ in conditions:
            _field({**dict.fromkeys(DATASET_FIELDS), "metadata": {}}, key)  # check the names
        rows = [(d, f) for d, f in rows if all(_holds(f, k, v) for k, v in conditions)]
    elif where is not None:
        rows = [(d, f) for d, f in rows if where(d)]
    keys = [sort] if isinstance(sort, str) else list(sort or [])
    for key in reversed(keys):
        descending = key.startswith("-")
        field = key[1:] if descending else key
        values = {d.name: _field(f, field) for d, f in rows}
        present = [(d, f) for d, f in rows if values[d.name] is not None]
        present.sort(key=lambda df: _sort_key(values[df[0].name]), reverse=descending)
        rows = present + [(d, f) for d, f in rows if values[d.name] is None]
    return [d for d, _ in rows]
