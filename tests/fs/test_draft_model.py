"""Model-based test of a writable draft mount: a seeded random sequence of create,
write (any offset), append, truncate, rename, unlink, mkdir and rmdir, with some
files held open across steps, runs on the mount and on a plain folder (the model);
after every step both trees must hold the same names, kinds, sizes and bytes, and
every failure the same errno. At the end the draft is published and the published
version, read through the API, must equal the model."""

from __future__ import annotations

import os
import random
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest

from dlfs import Catalog
from tests.fsutil import Mounter

NAMES = ("a", "b", "c.txt", "d.bin", "sub", "x y")
STEPS = 150
KINDS = (
    *("create", "create", "write", "append", "truncate", "rename", "rename", "unlink"),
    *("mkdir", "rmdir", "hold", "held_write", "release"),
)


def tree(root: Path) -> dict[str, tuple[str, int, bytes]]:
    """Every entry under ``root``: path -> (kind, size, bytes)."""
    out: dict[str, tuple[str, int, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        for d in dirnames:
            out[str(rel / d)] = ("dir", 0, b"")
        for f in filenames:
            path = Path(dirpath, f)
            data = path.read_bytes()
            assert path.stat().st_size == len(data)
            out[str(rel / f)] = ("file", len(data), data)
    return out


def api_tree(cat: Catalog, ref: str, folder: str = "") -> dict[str, tuple[str, int, bytes]]:
    out: dict[str, tuple[str, int, bytes]] = {}
    for entry in cat.ls(ref, folder):
        if entry.is_dir:
            out[entry.path] = ("dir", 0, b"")
            out.update(api_tree(cat, ref, entry.path))
        else:
            data = b"".join(cat.cat(ref, entry.path))
            out[entry.path] = ("file", len(data), data)
    return out


class Side:
    """One of the two trees, with the files it holds open."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.held: dict[int, BinaryIO] = {}

    def run(self, op: Callable[[Side], object]) -> int | None:
        """Apply ``op``; the errno it failed with, or None."""
        try:
            op(self)
        except OSError as exc:
            return exc.errno
        return None

    def close_all(self) -> None:
        for f in self.held.values():
            f.close()
        self.held.clear()


def plan(rnd: random.Random, model: Path, held: list[int]) -> tuple[str, Callable[[Side], object]]:
    """The next operation, chosen from the model's current state."""
    entries = [p for p in tree(model)]
    dirs = [""] + [p for p in entries if (model / p).is_dir()]
    files = [p for p in entries if (model / p).is_file()]

    def new_path() -> str:
        return os.path.join(rnd.choice(dirs), rnd.choice(NAMES))

    def any_path() -> str:
        return rnd.choice(entries) if entries and rnd.random() < 0.8 else new_path()

    data = rnd.randbytes(rnd.choice([0, 1, 100, 5000, 70_000]))
    offset = rnd.choice([0, 1, 50, 4096, 80_000])
    size = rnd.choice([0, 1, 30, 3000, 90_000])
    kind = rnd.choice(KINDS)
    if kind == "create":
        path = new_path() if rnd.random() < 0.7 else any_path()
        return f"create {path} ({len(data)})", lambda s: (s.root / path).write_bytes(data)
    if kind == "write":
        path = rnd.choice(files) if files else new_path()

        def write(s: Side) -> None:
            with open(s.root / path, "r+b") as f:
                f.seek(offset)
                f.write(data)

        return f"write {path} @{offset} ({len(data)})", write
    if kind == "append":
        path = any_path()

        def append(s: Side) -> None:
            with open(s.root / path, "ab") as f:
                f.write(data)

        return f"append {path} ({len(data)})", append
    if kind == "truncate":
        path = any_path()
        return f"truncate {path} {size}", lambda s: os.truncate(s.root / path, size)
    if kind == "rename":
        src, dst = any_path(), any_path() if rnd.random() < 0.5 else new_path()
        return f"rename {src} -> {dst}", lambda s: os.rename(s.root / src, s.root / dst)
    if kind == "unlink":
        path = any_path()
        return f"unlink {path}", lambda s: os.unlink(s.root / path)
    if kind == "mkdir":
        path = new_path()
        return f"mkdir {path}", lambda s: os.mkdir(s.root / path)
    if kind == "rmdir":
        path = any_path()
        return f"rmdir {path}", lambda s: os.rmdir(s.root / path)
    if kind == "hold":
        path = any_path()
        key = rnd.randrange(1 << 30)

        def hold(s: Side) -> None:
            f = open(s.root / path, "ab+", buffering=0)  # noqa: SIM115 - kept open
            f.write(data)
            s.held[key] = f

        return f"hold {path} ({len(data)}) #{key}", hold
    if kind == "held_write" and held:
        key = rnd.choice(held)

        def held_write(s: Side) -> None:
            f = s.held[key]
            f.seek(offset)
            f.write(data)

        return f"write held #{key} @{offset} ({len(data)})", held_write
    if held:
        key = held.pop(rnd.randrange(len(held)))
        return f"close held #{key}", lambda s: s.held.pop(key).close()
    return "nothing", lambda s: None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_operations_match_a_plain_folder(
    home: Path, mounter: Mounter, tmp_path: Path, seed: int
):
    with Catalog(home) as cat:
        cat.create_dataset("model")
    mount = mounter("model@draft", tmp_path / "mnt")
    model = Side(tmp_path / "model")
    model.root.mkdir()
    dlfs_side = Side(mount.path)
    rnd = random.Random(seed)
    held: list[int] = []
    history: list[str] = []
    try:
        for step in range(STEPS):
            what, op = plan(rnd, model.root, held)
            history.append(what)
            expected = model.run(op)
            got = dlfs_side.run(op)
            if what.startswith("hold ") and expected is None:
                held.append(int(what.rpartition("#")[2]))
            context = f"step {step}: {what}\n" + "\n".join(history[-10:])
            assert got == expected, f"errno {got} instead of {expected} at {context}"
            assert tree(mount.path) == tree(model.root), f"trees differ after {context}"
            if step % 20 == 0:  # attributes as the kernel reports them
                for rel, (kind, size, _data) in tree(model.root).items():
                    st = (mount.path / rel).stat()
                    assert stat.S_ISDIR(st.st_mode) == (kind == "dir"), rel
                    assert kind == "dir" or st.st_size == size, rel
    finally:
        model.close_all()
        dlfs_side.close_all()
    assert tree(mount.path) == tree(model.root)
    with Catalog(home) as cat:
        version = cat.publish("model")
        assert api_tree(cat, version.ref) == tree(model.root)
