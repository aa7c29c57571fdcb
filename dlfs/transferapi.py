"""Moving datasets in and out of a catalog, in the Python API: manifests, linked
buckets and remotes (:class:`Catalog` takes these methods from
:class:`TransferMethods`)::

    cat.import_manifest("pets@draft", "pets.jsonl")      # JSON Lines, CSV or COCO
    cat.export_manifest("pets@v1", "pets-v1.csv")
    cat.link("shots", "s3://bucket/shots")              # index a bucket, no copy
    cat.push("pets@v1", "s3://ml-data/remote")
    cat.pull("s3://ml-data/remote", "pets@v1")
    cat.gc_remote("s3://ml-data/remote")

Each runs as :mod:`dlfs.api` describes: one catalog transaction (a read, in one
snapshot) around a call into :mod:`dlfs.ops`, so an error leaves the catalog as it
was.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from dlfs import apiargs, projects, versions
from dlfs.errors import BadBody
from dlfs.handles import Progress, Version
from dlfs.names import check_dataset_name
from dlfs.ops import link as link_ops
from dlfs.ops import manifest_formats, manifests, remotegc, remotemeta
from dlfs.ops import pull as pull_ops
from dlfs.ops import push as push_ops

if TYPE_CHECKING:
    from dlfs.catalog import CatalogDB, Row
    from dlfs.stores.base import BlobStore
    from dlfs.stores.registry import StoreRegistry
    from dlfs.stores.s3 import S3Store


@apiargs.checked
class TransferMethods:
    """The manifest, linked-bucket and remote methods of :class:`dlfs.Catalog`."""

    db: CatalogDB
    _stores: StoreRegistry

    if TYPE_CHECKING:

        def store(self, url: str = "local") -> BlobStore: ...

        def _store_of(self, version: Row) -> BlobStore: ...

    # -- manifests ----------------------------------------------------------------

    def import_manifest(
        self,
        ref: str,
        manifest: str | os.PathLike[str],
        format: str | None = None,
        images: str | os.PathLike[str] | None = None,
        dry_run: bool = False,
        progress: Progress | None = None,
    ) -> manifests.ImportResult:
        """Fill a draft from a JSON Lines, CSV or COCO manifest (``format`` forces one;
        else by extension or content), all rows or none; see :mod:`dlfs.ops.manifests`.
        Relative sources are found in ``images`` (default: the manifest's folder).
        ``dry_run`` checks everything and returns what would change, changing nothing.
        ``progress`` is called with the bytes of each file stored."""
        doc = manifests.read(Path(manifest), format)
        with self.db.snapshot():
            plan = manifests.plan(self.db, ref, doc, None if images is None else Path(images))
        if plan.linked is not None:
            manifests.lookup_objects(plan, self._stores.linked(plan.storage).objects)
        if not dry_run:
            store = self.store(plan.storage)
            store.clear_staging()
            manifests.apply(self.db, store, plan, progress)
        return manifests.result_of(plan, dry_run)

    def export_manifest(
        self,
        ref: str | Version,
        path: str | os.PathLike[str],
        format: str | None = None,
        with_files: str | os.PathLike[str] | None = None,
        progress: Progress | None = None,
    ) -> manifests.ExportResult:
        """Write the files of version ``ref`` (paths, metadata, annotations) as a
        manifest at ``path`` (``format``, else by extension; JSON Lines by default).
        ``src`` is each file's path (its ``s3://`` object in a linked dataset); with
        ``with_files`` (a new or empty folder) the verified bytes are copied there
        and ``src`` points at the copies. Importing the manifest gives the same files."""
        out = Path(path)
        fmt = manifest_formats.export_format(out, format)
        if with_files is not None:
            manifests.check_files_folder(Path(with_files))
        with self.db.snapshot():
            row = versions.resolve(self.db, ref.ref if isinstance(ref, Version) else ref)
            items, labels, recipe = manifests.collect(self.db, row)
            store = self._store_of(row)
        result = manifests.ExportResult(len(items), fmt)
        if with_files is not None:
            folder = Path(with_files)
            result.copied_bytes = manifests.copy_files(store, items, folder, out, progress)
        records = [i.record for i in items]
        result.dropped_annotations = manifest_formats.write(out, fmt, records, labels, recipe)
        return result

    # -- storage: link, sync, push, pull --------------------------------------------

    def link(self, name: str, url: str, progress: Progress | None = None) -> link_ops.SyncResult:
        """Index the objects under ``s3://bucket/prefix`` into the draft of dataset
        ``name`` without copying them (made, as a linked dataset, if it does not
        exist); see :mod:`dlfs.ops.link`. The bucket is listed before the catalog
        transaction starts."""
        return self._index(name, link_ops.link_storage(self.db, name, url), progress)

    def sync(self, name: str, progress: Progress | None = None) -> link_ops.SyncResult:
        """Index the linked bucket of dataset ``name`` again: new objects are added,
        deleted ones removed, changed ones become new items (see :mod:`dlfs.ops.link`)."""
        return self._index(name, link_ops.sync_storage(self.db, name), progress)

    def _index(self, name: str, storage: str, progress: Progress | None) -> link_ops.SyncResult:
        store = self._stores.linked(storage)
        versioned, objects = store.scan()
        with self.db.transaction():
            return link_ops.index(self.db, name, storage, store.loc, versioned, objects, progress)

    def _remote(self, url: str) -> S3Store:
        return self._stores.s3(url)

    def push(self, ref: str, url: str, progress: Progress | None = None) -> push_ops.PushResult:
        """Copy published version ``ref`` (its records and the blobs missing there) to
        the remote ``s3://bucket/prefix`` (see :mod:`dlfs.ops.push`); the catalog is
        not changed."""
        remote = self._remote(url)
        with self.db.snapshot():
            row = versions.resolve_published(self.db, ref)
            doc = push_ops.collect(self.db, row)
            source = self._store_of(row)
        with push_ops.pushing(remote, doc["version"]["id"]):
            uploaded, present, nbytes = push_ops.copy_blobs(doc, source, remote, progress)
            tags = push_ops.write(remote, doc)
            # after the document: metadata and comment move after publish
            remotemeta.update(remote, doc["dataset"]["name"], doc["version"])
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
    ) -> pull_ops.PullResult:
        """Bring version ``ref`` (``NAME@SPEC`` on the remote) from ``s3://bucket/prefix``
        into this catalog with the same id and user tags, in one transaction; its
        blobs stay in S3 and are read lazily (see :mod:`dlfs.ops.push`). ``as_name``
        names the local dataset; ``force`` moves local user tags the version brings;
        ``progress`` is called with the bytes of the version's files once they are in."""
        if as_name is not None:
            check_dataset_name(as_name)
        remote = self._remote(url)
        name, vid = push_ops.resolve_remote(remote, ref)
        for attempt in range(3):  # a body damaged in transit shows only at its end
            head, records = push_ops.fetch(remote, name, vid)
            meta = remotemeta.read(remote, name, vid)
            head["version"] = remotemeta.apply(head["version"], meta)
            try:
                with self.db.transaction():
                    projects.admit(self.db, as_name or name, make_project=True)
                    result = pull_ops.insert(self.db, head, records, remote.url, as_name, force)
                break
            except BadBody:
                if attempt == 2:
                    raise
        if progress is not None:
            progress(result.bytes)
        return result

    # -- remotes: maintenance -----------------------------------------------------

    def gc_remote(self, url: str, grace_hours: float = remotegc.GRACE_HOURS) -> remotegc.RemoteGc:
        """Remove blobs and folder objects of the remote ``s3://bucket/prefix`` that no
        version pushed there reaches and that are older than ``grace_hours`` (see
        :mod:`dlfs.ops.remotegc`); the catalog is not changed."""
        return remotegc.collect_remote(self._remote(url), grace_hours * 3600.0)
