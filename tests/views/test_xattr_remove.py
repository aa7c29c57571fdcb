"""``removexattr`` of dlfs's own attributes in a draft view, without a kernel: the
computed ones exist and cannot be removed (``EPERM``, as ``setxattr`` of them), a
name the node does not have is ``ENODATA``, and nothing changes."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dlfs import Catalog
from dlfs.errors import NoAttribute, NotPermitted
from dlfs.home import Home
from dlfs.mountviews import open_mount_view


@pytest.fixture
def draft(tmp_path: Path) -> Iterator[Any]:
    home = tmp_path / "home"
    with Catalog(home) as cat:
        cat.create_dataset("cats")
        cat.add_bytes("cats", "a.txt", b"a\n")
    view = open_mount_view(Home.at(home), "cats@draft")
    try:
        yield view
    finally:
        view.close()


@pytest.mark.parametrize("name", ["user.dlfs.item", "user.dlfs.blob"])
def test_computed_file_attributes_are_read_only(draft: Any, name: str) -> None:
    node = draft.lookup(draft.root(), "a.txt")
    before = draft.getxattr(node, name)
    with pytest.raises(NotPermitted, match="read-only") as exc:
        draft.removexattr(node, name)
    assert exc.value.errno == errno.EPERM
    again = draft.lookup(draft.root(), "a.txt")
    assert draft.getxattr(again, name) == before and name in draft.listxattr(again)


@pytest.mark.parametrize("name", ["user.dlfs.version", "user.dlfs.state", "user.dlfs.dataset"])
def test_computed_version_attributes_are_read_only(draft: Any, name: str) -> None:
    with pytest.raises(NotPermitted):
        draft.removexattr(draft.root(), name)


def test_a_name_the_node_lacks_is_enodata(draft: Any) -> None:
    node = draft.lookup(draft.root(), "a.txt")
    for name in ("user.dlfs.version", "user.dlfs.nothing"):
        with pytest.raises(NoAttribute) as exc:
            draft.removexattr(node, name)
        assert exc.value.errno == errno.ENODATA
