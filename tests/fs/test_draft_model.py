"""Model-based test of a writable draft mount: the state machine of
:mod:`tests.draftmodel` (create, write at offsets, truncate, rename, unlink, mkdir,
rmdir, ``user.dlfs.metadata``, files held open across steps) carried out with plain
``os`` calls in a real mount. After every step the mount holds the model's names,
kinds, sizes and bytes, and every failure has the model's errno; at the end the draft
is published and the published version, read through the API, equals the model.
A smaller run than the kernel-free one (``tests/views/test_draftview.py``)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings

from tests.draftmodel import X_METADATA, DraftMachine, Driver, Tree, make_dataset
from tests.fsutil import Mounter


class OsDriver:
    """The operations as a program makes them on a mounted draft."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write_file(self, path: str, data: bytes) -> None:
        (self.root / path).write_bytes(data)

    def write_at(self, path: str, offset: int, data: bytes) -> None:
        fd = os.open(self.root / path, os.O_WRONLY)
        try:
            os.pwrite(fd, data, offset)
        finally:
            os.close(fd)

    def truncate(self, path: str, size: int) -> None:
        os.truncate(self.root / path, size)

    def mkdir(self, path: str) -> None:
        os.mkdir(self.root / path)

    def rmdir(self, path: str) -> None:
        os.rmdir(self.root / path)

    def unlink(self, path: str) -> None:
        os.unlink(self.root / path)

    def rename(self, src: str, dst: str) -> None:
        os.rename(self.root / src, self.root / dst)

    def set_meta(self, path: str, value: bytes) -> None:
        os.setxattr(self.root / path, X_METADATA, value)

    def hold(self, path: str) -> object:
        return os.open(self.root / path, os.O_RDWR | os.O_CREAT, 0o644)

    def held_write(self, handle: Any, offset: int, data: bytes) -> None:
        os.pwrite(handle, data, offset)

    def held_flush(self, handle: Any) -> None:
        os.close(os.dup(handle))  # a close of one descriptor of the file: a FUSE flush

    def release(self, handle: Any) -> None:
        os.close(handle)

    def tree(self) -> Tree:
        out: Tree = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel = Path(dirpath).relative_to(self.root)
            for d in dirnames:
                out[(rel / d).as_posix()] = ("dir", 0, b"")
            for f in filenames:
                path = Path(dirpath, f)
                data = path.read_bytes()
                assert path.stat().st_size == len(data), path
                out[(rel / f).as_posix()] = ("file", len(data), data)
        return out

    def meta(self, path: str) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(os.getxattr(self.root / path, X_METADATA))
        return value


class MountMachine(DraftMachine):
    """The rules in a real mount of the draft, made through ``dlfs mount``."""

    def open(self) -> Driver:
        self.tmp = Path(tempfile.mkdtemp(prefix="dlfs-draft-model-"))
        self.home = self.tmp / "home"
        make_dataset(self.home, self.dataset)
        self.mounter = Mounter(self.home)
        return OsDriver(self.mounter(f"{self.dataset}@draft", self.tmp / "mnt").path)

    def close(self) -> None:
        self.mounter.cleanup()  # unmounts; the daemon's log must hold no error

    def cleanup(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


MountMachine.TestCase.settings = settings(
    max_examples=4,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestDraftMount = MountMachine.TestCase
