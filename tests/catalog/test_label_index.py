"""The label index (schema step 8, :mod:`dlfs.labelindex`): filled for the items of a
catalog made before it, kept by triggers, built bottom-up for published folders."""

from __future__ import annotations

from pathlib import Path

from dlfs import Catalog
from dlfs.catalog import CatalogDB
from dlfs.labelindex import index_labels
from tests.helpers import downgrade_catalog


def test_a_catalog_from_before_the_index_gets_it(home: Path) -> None:
    with Catalog(home) as cat:
        cat.create_dataset("pets")
        cat.add_bytes("pets", "a/1.jpg", b"1", annotations=[{"label": "dog"}, {"label": 3}])
        cat.add_bytes("pets", "b/2.jpg", b"2", annotations=[{"label": "cat"}, "x", {}])
        cat.add_bytes("pets", "3.jpg", b"3")
        ref = cat.publish("pets").ref
    downgrade_catalog(home, 4)  # before the label index (and every later step)
    with Catalog(home) as cat:  # migrates
        db = cat.db
        labels = db._all("SELECT label FROM item_labels ORDER BY label")
        assert [r[0] for r in labels] == ["cat", "dog"]
        row = db.version_get(cat.version(ref).id)
        assert row is not None and db.tree_labelled(row["root"]) is None
        with db.transaction():
            assert index_labels(db, row["root"]) == 3  # the root, a/ and b/
        assert sorted(db.tree_labels(row["root"])) == ["cat", "dog"]
        assert db.tree_labelled(row["root"]) is True  # 3.jpg has no label
        a = db.entry(row["root"], "a")
        assert a is not None and db.tree_labelled(a["ref"]) is False


def test_deleted_items_and_trees_leave_no_index_rows(home: Path) -> None:
    with Catalog(home) as cat:
        cat.create_dataset("tmp")
        cat.add_bytes("tmp", "d/1.jpg", b"1", annotations=[{"label": "dog"}])
        cat.publish("tmp")
        for table in ("item_labels", "tree_labels", "trees_labelled"):
            assert cat.db._all(f"SELECT * FROM {table}") != [], table
        cat.delete_dataset("tmp", force=True)
    db = CatalogDB(home / "catalog.db")
    try:
        for table in ("item_labels", "tree_labels", "trees_labelled"):
            assert db._all(f"SELECT * FROM {table}") == [], table
    finally:
        db.close()
