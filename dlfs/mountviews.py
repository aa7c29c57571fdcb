"""Which view a mount serves: a draft read-write, anything else read-only.

:func:`open_mount_view` is what the daemon calls at mount time. A draft gets a
:class:`dlfs.draftview.DraftView` after it took the draft's mount lock (one writable
mount per draft, :mod:`dlfs.draftlock`) and cleared the staging folders of daemons that
died; a published version, a draft mounted ``-o ro``, a draft of a read-only project,
any view (``--where``, ``--group-by``) and the whole catalog get
:func:`dlfs.view.open_view`'s read-only view. A project's access rule
(:mod:`dlfs.access`) goes with the view.
"""

from __future__ import annotations

from dlfs import projects, versions
from dlfs.catalog import CatalogDB
from dlfs.draftlock import MountLock
from dlfs.draftview import DraftView
from dlfs.errors import NotFound
from dlfs.home import Home
from dlfs.names import DEFAULT_PROJECT, project_of
from dlfs.staging import clear_abandoned
from dlfs.stores.registry import StoreFactory, StoreRegistry
from dlfs.view import View, open_view
from dlfs.viewspec import ViewSpec


def open_mount_view(
    home: Home,
    ref: str | None,
    stores: StoreFactory | None = None,
    mountpoint: str = "",
    read_only: bool = False,
    spec: ViewSpec | None = None,
    remote: str | None = None,
) -> View | DraftView:
    """The view a mount serves: a :class:`DraftView` for a draft (unless
    ``read_only`` or a ``spec``), else :func:`dlfs.view.open_view`'s read-only view
    (arranged by ``spec``, ``--where`` / ``--group-by``, when given); with
    ``remote``, the version ``ref`` as pushed there
    (:func:`dlfs.ops.remotemount.open_remote_view`).

    Raises :class:`dlfs.errors.Conflict` when the draft is already mounted read-write.
    """
    if remote is not None and ref is not None:
        from dlfs.ops.remotemount import open_remote_view

        registry = stores if isinstance(stores, StoreRegistry) else StoreRegistry(home)
        return open_remote_view(home, remote, ref, registry)
    if ref is None or read_only or spec is not None:
        return open_view(home, ref, stores, spec)
    if not home.exists():
        raise NotFound(f"no catalog at {home.root} (create one with 'dlfs init')")
    probe = CatalogDB(home.catalog_path, readonly=True)
    try:
        row = versions.resolve(probe, ref)
        ds = probe.dataset_by_id(row["dataset"])
        project = project_of(ds["name"]) if ds is not None else DEFAULT_PROJECT
        frozen = projects.is_read_only(probe, project)
        rule = projects.rule_of(probe, project, writable=True)
    finally:
        probe.close()
    if row["state"] != "draft" or frozen:
        return open_view(home, ref, stores)
    lock = MountLock.acquire(home, row["id"], mountpoint)
    try:
        db = CatalogDB(home.catalog_path)
        try:
            db.map_for_reading()
            current = db.version_get(row["id"])
            if current is None or current["state"] != "draft":
                raise NotFound(f"draft {row['id']} was published or deleted meanwhile")
            stores = stores or StoreRegistry(home)
            clear_abandoned(home.blobs, stores("local"))  # left by daemons that died
            return DraftView(db, stores, current, home, lock, access=rule)
        except BaseException:
            db.close()
            raise
    except BaseException:
        lock.release()
        raise
