"""Content ids: what makes two things the same."""

from __future__ import annotations

import re

import xxhash

from dlfs.objects import (
    DIR,
    EMPTY_TREE,
    FILE,
    blob_id,
    is_mutable,
    item_id,
    new_mutable_tree_id,
    new_version_id,
    tree_id,
)


def test_blob_id_is_xxh3_128_of_the_bytes() -> None:
    assert blob_id(b"hello") == xxhash.xxh3_128_hexdigest(b"hello")
    assert re.fullmatch(r"[0-9a-f]{32}", blob_id(b""))


def test_version_ids_are_40_chars_of_base32_and_unique() -> None:
    ids = {new_version_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"[a-z2-7]{40}", i) for i in ids)


def test_tree_id_ignores_entry_order_but_not_content() -> None:
    a = [("a", FILE, "1" * 32), ("b", DIR, "2" * 32)]
    assert tree_id(a) == tree_id(list(reversed(a)))
    assert tree_id(a) != tree_id([("a", FILE, "1" * 32), ("b", FILE, "2" * 32)])
    assert tree_id(a) != tree_id([("a", FILE, "1" * 32)])
    assert tree_id([]) == EMPTY_TREE


def test_item_id_depends_on_every_field() -> None:
    base = ("o" * 32, "b" * 32, 10, "{}", "[]")
    ids = {
        item_id(*base),
        item_id("x" * 32, *base[1:]),
        item_id(base[0], "c" * 32, *base[2:]),
        item_id(*base[:2], 11, *base[3:]),
        item_id(*base[:3], '{"a":1}', "[]"),
        item_id(*base[:4], '[{"label":"cat"}]'),
    }
    assert len(ids) == 6


def test_mutable_tree_ids_never_look_like_content_ids() -> None:
    m = new_mutable_tree_id()
    assert is_mutable(m) and not is_mutable(EMPTY_TREE)
    assert not re.fullmatch(r"[0-9a-f]{32}", m)
