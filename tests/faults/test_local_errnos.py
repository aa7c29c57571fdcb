"""Failures that are not I/O answer their own errno through a draft mount, never
``EIO``: a size over the disk's limit is ``EFBIG``, bad JSON in an extended attribute
``EINVAL``, a name that is not UTF-8 ``EINVAL``; nothing changes and the daemon logs no
error (the log check fails the test on any ERROR line or traceback)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from dlfs import Catalog
from tests.fsutil import Mounter

pytestmark = pytest.mark.fuse

DEEP = b"[" * 10_000 + b"]" * 10_000


@pytest.fixture
def draft(home: Path, mounter: Mounter, tmp_path: Path) -> Path:
    with Catalog(home) as cat:
        cat.create_dataset("d")
        cat.add_bytes("d", "f.txt", b"hello\n")
    return mounter("d@draft", tmp_path / "mnt").path


def oserror_of(call: object, *args: object) -> int:
    with pytest.raises(OSError) as exc:
        call(*args)  # type: ignore[operator]
    return exc.value.errno


def test_a_size_over_the_disks_limit_is_efbig(draft: Path, home: Path) -> None:
    f = draft / "f.txt"
    assert oserror_of(os.truncate, f, 999_999_999_999_999) == errno.EFBIG
    assert f.read_bytes() == b"hello\n"
    with open(f, "r+b") as handle:  # through an open file too
        assert oserror_of(os.ftruncate, handle.fileno(), 999_999_999_999_999) == errno.EFBIG
    assert f.read_bytes() == b"hello\n"
    with Catalog(home) as cat:
        assert cat.draft("d").read_bytes("f.txt") == b"hello\n"


BAD_XATTRS = [
    ("user.dlfs.annotations", DEEP),
    ("user.dlfs.metadata", b'{"a":' * 5_000 + b"1" + b"}" * 5_000),
    ("user.dlfs.metadata", b'{"a": 1, "a": 2}'),
    ("user.dlfs.metadata", b'{"a": NaN}'),
    ("user.dlfs.annotations", b"[Infinity]"),
]
"""Too deep (a list, an object), a duplicate key, NaN, Infinity."""


def test_bad_json_in_an_xattr_is_einval(draft: Path) -> None:
    f = draft / "f.txt"
    for name, value in BAD_XATTRS:
        assert oserror_of(os.setxattr, f, name, value) == errno.EINVAL, (name, value[:20])
    assert os.getxattr(f, "user.dlfs.metadata") == b"{}"
    assert os.getxattr(f, "user.dlfs.annotations") == b"[]"


def test_a_name_that_is_not_utf8_is_einval(draft: Path) -> None:
    bad = os.fsencode(draft) + b"/b\xff.txt"
    assert oserror_of(os.open, bad, os.O_CREAT | os.O_WRONLY, 0o644) == errno.EINVAL
    assert oserror_of(os.mkdir, bad) == errno.EINVAL
    assert sorted(os.listdir(draft)) == ["f.txt"]
