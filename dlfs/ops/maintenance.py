"""Keeping a catalog tidy and honest: sweeping what no version reaches (``dlfs gc``,
``dataset delete --delete-sources``) and checking local blobs (``dlfs fsck``).

A sweep runs inside the caller's transaction and only changes catalog rows; the
bytes of the blobs it forgot are deleted afterwards (:func:`delete_blobs`), outside
the transaction, so that a failure there leaves orphan bytes (which the next ``gc``
finds again) rather than rows pointing at missing bytes. ``gc`` deletes local bytes
through :func:`dlfs.reclaim.reclaim`, which checks again under the catalog's write
lock that nothing names them (an import may have found them stored meanwhile), and
also takes the blob files the catalog has no row for (left by a reclaim killed
after its commit, or by a writer killed between storing and recording).
"""

from __future__ import annotations

from collections.abc import Callable

from dlfs import versions
from dlfs.catalog import CatalogDB
from dlfs.reclaim import reclaim
from dlfs.stores.base import BlobStore

Progress = Callable[[int], None]
"""Called with the bytes of each blob checked."""


def sweep(db: CatalogDB, stores: set[str] | None = None, forget: bool = True) -> list[str]:
    """Drop catalog rows no version reaches; return the unused blobs of ``stores``,
    forgetting them too when ``forget`` (the caller then deletes their bytes)."""
    _trees, _items, unused = db.sweep_unreachable()
    known = {r["id"]: r["store"] for r in db.blobs_all()}
    removed = [b for b in unused if stores is None or known.get(b) in stores]
    if forget:
        for blob in removed:
            db.blob_delete(blob)
    return removed


def delete_blobs(store: BlobStore, blobs: list[str]) -> None:
    """Delete the bytes of ``blobs`` from ``store`` (after a sweep forgot them)."""
    for blob in blobs:
        store.delete(blob)


def delete_dataset(
    db: CatalogDB, name: str, all_versions: bool, force: bool, delete_sources: bool
) -> tuple[str, list[str]]:
    """Delete dataset ``name`` (see :func:`dlfs.versions.delete_dataset`) and sweep;
    return its storage and, with ``delete_sources``, the blobs of that storage no
    other dataset uses, which the catalog forgot and the caller is to delete."""
    ds = versions.dataset_row(db, name)
    versions.delete_dataset(db, name, all_versions, force)
    unused = sweep(db, stores={ds["storage"]}, forget=delete_sources)
    return ds["storage"], unused if delete_sources else []


def finish_gc(db: CatalogDB, local: BlobStore, removed: list[str]) -> dict[str, int]:
    """The part of ``gc`` after its sweep: put back what dead reclaimers set aside,
    clear what dead writers left in staging, then reclaim the ``removed`` local blobs
    and the local blob files the catalog has no row for; return the counts."""
    local.clear_staging()
    orphans = [b for b in local.blob_ids() if not db.blob_recorded(b)]
    done = reclaim(db, local, [*removed, *orphans], keep=set())
    for blob in set(removed) - set(done):  # already gone from the store: rows only
        local.delete(blob)
    return {"blobs_removed": len(set(removed) | set(done))}


def fsck(db: CatalogDB, local: BlobStore, progress: Progress | None = None) -> list[str]:
    """Check every recorded local blob against its hash (and its block manifest, if
    it has one); return the problems found."""
    problems = []
    for blob in db.blobs_all():
        if blob["store"] != "local":
            continue
        problem = local.check(blob["id"])
        if problem is not None:
            problems.append(problem)
        if progress is not None:
            progress(blob["size"])
    return problems
