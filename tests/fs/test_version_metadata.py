"""A version's metadata on the root of its mount: ``user.dlfs.version_metadata``."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from dlfs import Catalog
from tests.fsutil import Mounter

MASKS = {"0": "background", "255": "cat"}


def test_version_metadata_is_an_xattr_of_the_version_root(
    home: Path, published: str, mounter: Mounter, tmp_path: Path
) -> None:
    with Catalog(home) as cat:
        cat.set_version_metadata(published, {"mask_labels": MASKS})
        draft = cat.create_version("cats", [published])
        draft.set_metadata({"stage": "labelling"})
    m = mounter(published, tmp_path / "pub")
    d = mounter("cats@draft", tmp_path / "draft")
    name = "user.dlfs.version_metadata"
    assert name in os.listxattr(m.path)
    assert json.loads(os.getxattr(m.path, name)) == {"mask_labels": MASKS}
    assert json.loads(os.getxattr(d.path, name)) == {"stage": "labelling"}
    with Catalog(home) as cat:  # a change shows in a version already mounted
        cat.set_version_metadata(published, remove=["mask_labels"])
    assert json.loads(os.getxattr(m.path, name)) == {}
    with pytest.raises(OSError) as exc:
        os.setxattr(d.path, name, b"{}")
    assert exc.value.errno in (errno.EPERM, errno.ENOTSUP)
