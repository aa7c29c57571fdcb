"""Reclaiming local blobs (:mod:`dlfs.reclaim`) without a kernel: what a version, a
draft or an import in progress reaches is kept, the rest goes, and a reclaim that
does not commit puts the bytes back."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlfs import Catalog
from dlfs.errors import Unavailable
from dlfs.objects import blob_id
from dlfs.reclaim import reclaim
from dlfs.stores.local import LocalStore

OLD, NEW = b"old bytes\n" * 100, b"new bytes\n" * 100


def test_reclaim_takes_only_what_nothing_names(catalog: Catalog):
    catalog.create_dataset("a")
    catalog.add_bytes("a", "kept.txt", OLD)
    catalog.add_bytes("a", "gone.txt", NEW)
    catalog.rm("a", ["gone.txt"])
    store = catalog.store("local")
    assert isinstance(store, LocalStore)
    done = reclaim(catalog.db, store, [blob_id(OLD), blob_id(NEW)], keep=set())
    assert done == [blob_id(NEW)]
    assert store.has(blob_id(OLD)) and not store.has(blob_id(NEW))
    assert b"".join(catalog.cat("a@draft", "kept.txt")) == OLD
    assert catalog.fsck() == []  # the row went with the bytes
    held = reclaim(catalog.db, store, [blob_id(OLD)], keep={blob_id(OLD)})
    assert held == [] and store.has(blob_id(OLD))


def test_an_import_that_deduped_against_a_reclaimed_blob_changes_nothing(catalog: Catalog):
    """The race of git's prune: an import finds a blob stored (so does not store it
    again), a reclaim deletes it, then the import would commit a reference to it."""
    catalog.create_dataset("a")
    catalog.create_dataset("b")
    catalog.add_bytes("a", "f", OLD)
    catalog.rm("a", ["f"])  # nothing names OLD now
    store = catalog.store("local")
    before = catalog.db.dump()
    with store.batch() as batch:
        assert batch.add_bytes(OLD)[0] == blob_id(OLD)  # found stored: not staged
        assert reclaim(catalog.db, store, [blob_id(OLD)], keep=set()) == [blob_id(OLD)]
        after_reclaim = catalog.db.dump()
        refused = pytest.raises(Unavailable, match="reclaimed while this import ran")
        with refused, catalog.db.transaction():
            catalog.db.blobs_put([(blob_id(OLD), len(OLD), "local")])
            batch.commit()
    assert catalog.db.dump() == after_reclaim != before
    catalog.add_bytes("b", "f", OLD)  # run again: stored anew
    assert b"".join(catalog.cat("b@draft", "f")) == OLD


def test_a_reclaim_that_rolls_back_puts_the_bytes_back(catalog: Catalog, home: Path):
    catalog.create_dataset("a")
    catalog.add_bytes("a", "f", NEW)
    catalog.rm("a", ["f"])
    store = catalog.store("local")

    class Boom(Exception):
        pass

    real = catalog.db.blob_delete

    def failing(blob: str) -> None:
        real(blob)
        raise Boom

    catalog.db.blob_delete = failing  # type: ignore[method-assign]
    with pytest.raises(Boom):
        reclaim(catalog.db, store, [blob_id(NEW)], keep=set())
    del catalog.db.blob_delete
    assert store.has(blob_id(NEW)) and store.verify(blob_id(NEW))
    assert catalog.db.blob_recorded(blob_id(NEW))
    assert not any((home / "blobs" / ".aside").iterdir())
