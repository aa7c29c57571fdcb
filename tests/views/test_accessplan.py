"""The access plan without a kernel: :class:`dlfs.plan.AccessPlan` over a real view of
a real catalog, with the view's reads recording what they are asked to warm, and the
client's path checks and :class:`dlfs.sampler.PlannedSampler` over a plain list."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import dlfs
from dlfs import Catalog, plan
from dlfs.errors import InvalidInput, NotFound, Unavailable
from dlfs.home import Home
from dlfs.nodes import Node
from dlfs.plan import XATTR, AccessPlan
from dlfs.view import View, open_view

FILES = 40
SIZE = 1000


class Recording:
    """Reads that record the files they are asked to warm (nothing is fetched)."""

    def __init__(self) -> None:
        self.warmed: list[str] = []
        self.full = False
        self.broken = False

    def warm(self, node: Node) -> bool:
        if self.broken:
            raise Unavailable("the store cannot be reached")
        if self.full:
            return False
        self.warmed.append(node.blob)
        return True


class RecordingView:
    """A real view whose ``reads`` record warming instead of doing it."""

    def __init__(self, view: View) -> None:
        self._view = view
        self.reads = Recording()

    def root(self) -> Node:
        return self._view.root()

    def lookup(self, parent: Node, name: str) -> Node:
        return self._view.lookup(parent, name)

    def readlink(self, node: Node) -> str:
        return self._view.readlink(node)


@pytest.fixture
def files(catalog: Catalog) -> list[str]:
    """The paths of FILES distinct files of SIZE bytes in a published version."""
    catalog.create_dataset("d")
    paths = [f"part{i % 3}/f{i:03d}.bin" for i in range(FILES)]
    for i, p in enumerate(paths):
        catalog.add_bytes("d", p, i.to_bytes(2, "big") * (SIZE // 2))
    catalog.publish("d")
    return paths


@pytest.fixture
def view(home: Path, files: list[str]) -> Iterator[RecordingView]:
    v = open_view(Home.at(home), "d@latest")
    try:
        yield RecordingView(v)
    finally:
        v.close()


def blobs(view: RecordingView, paths: list[str]) -> list[str]:
    return [n.blob for n in AccessPlan(view).resolve(paths)]


def test_a_plan_warms_a_bounded_number_of_files_ahead_of_the_reader(
    view: RecordingView, files: list[str], tmp_path: Path
) -> None:
    order = files[::-1]
    given = tmp_path / "x.plan"
    given.touch()
    p = AccessPlan(view, ahead_files=5)
    assert p.start(order, (str(given), given.stat().st_ino)) == f"ok {FILES}"
    expected = blobs(view, order)
    assert view.reads.warmed == expected[:5]
    # The reader opens the third planned file: the plan keeps 5 files past it.
    p.opened(AccessPlan(view).resolve([order[2]])[0])
    assert p.position == 2
    assert view.reads.warmed == expected[:8]
    # A file behind the position, or not in the plan, moves nothing.
    p.opened(AccessPlan(view).resolve([order[0]])[0])
    assert p.position == 2 and view.reads.warmed == expected[:8]


def test_the_lead_is_bounded_in_bytes_too(view: RecordingView, files: list[str]) -> None:
    p = AccessPlan(view, ahead_files=30, ahead_bytes=3 * SIZE + 10)
    p.start(files, ("/nonexistent.plan", 0))
    assert len(view.reads.warmed) == 3
    big = AccessPlan(view, ahead_files=30, ahead_bytes=1)
    view.reads.warmed.clear()
    big.start(files, ("/nonexistent.plan", 0))
    assert len(view.reads.warmed) == 1  # one file always, whatever its size


def test_a_full_warming_pool_is_tried_again_at_the_next_open(
    view: RecordingView, files: list[str], tmp_path: Path
) -> None:
    given = tmp_path / "p.plan"
    given.write_text("\n".join(files))
    p = AccessPlan(view, ahead_files=4)
    view.reads.full = True
    p.start(files, (str(given), given.stat().st_ino))
    assert view.reads.warmed == [] and p.issued == -1
    view.reads.full = False
    p.opened(AccessPlan(view).resolve([files[0]])[0])
    assert view.reads.warmed == blobs(view, files[1:5])


def test_a_plan_naming_missing_paths_is_refused_whole_and_the_plan_in_force_stays(
    view: RecordingView, files: list[str]
) -> None:
    p = AccessPlan(view, ahead_files=2)
    p.start(files[:10], ("/a.plan", 1))
    before = list(view.reads.warmed)
    bad = [files[20], "nope/1.bin", "part0", "part1/f001.bin/x", *[f"gone{i}" for i in range(6)]]
    with pytest.raises(NotFound) as exc:
        p.start(bad, ("/b.plan", 2))
    assert str(exc.value) == (
        "9 of 10 planned paths are not files in the mount: "
        "nope/1.bin, part0, part1/f001.bin/x, gone0, gone1, ..."
    )
    assert view.reads.warmed == before
    assert p.active and p._file == ("/a.plan", 1) and len(p._nodes) == 10


def test_a_second_plan_replaces_the_first_and_an_empty_one_withdraws(
    view: RecordingView, files: list[str], tmp_path: Path
) -> None:
    first, second = tmp_path / "1.plan", tmp_path / "2.plan"
    for f in (first, second):
        f.touch()
    p = AccessPlan(view, ahead_files=2)
    p.start(files[:20], (str(first), first.stat().st_ino))
    p.start(files[20:], (str(second), second.stat().st_ino))
    view.reads.warmed.clear()
    p.opened(AccessPlan(view).resolve([files[5]])[0])  # of the first plan: nothing
    assert view.reads.warmed == [] and p.position == -1
    p.opened(AccessPlan(view).resolve([files[21]])[0])
    assert view.reads.warmed == blobs(view, files[22:24])
    assert p.start([], ("", 0)) == "ok 0"
    assert not p.active
    p.opened(AccessPlan(view).resolve([files[25]])[0])
    assert view.reads.warmed == blobs(view, files[22:24])


def test_a_plan_whose_file_was_removed_is_withdrawn_at_the_next_open(
    view: RecordingView, files: list[str], tmp_path: Path
) -> None:
    """How a withdrawal that reached another process of the mount reaches this one."""
    given = tmp_path / "p.plan"
    given.touch()
    p = AccessPlan(view, ahead_files=2)
    p.start(files, (str(given), given.stat().st_ino))
    given.unlink()
    nodes = AccessPlan(view).resolve(files)
    for node in nodes[: plan.CHECK_EVERY - 1]:
        p.opened(node)
    assert p.active  # the file is looked at every CHECK_EVERY opens, not at each
    view.reads.warmed.clear()
    p.opened(nodes[plan.CHECK_EVERY])
    assert not p.active and view.reads.warmed == []


def test_the_channel_reads_a_plan_file_once_and_answers_each_ask_alike(
    view: RecordingView, files: list[str], tmp_path: Path
) -> None:
    given = tmp_path / "p.plan"
    given.write_text("".join(f + "\n" for f in files[:7]))
    p = AccessPlan(view, ahead_files=3)
    name = f"{XATTR}={given}"
    assert p.request(name, os.getuid()) == b"ok 7"
    assert p.request(name, os.getuid()) == b"ok 7"  # the kernel's size probe, then the value
    assert view.reads.warmed == blobs(view, files[:3])
    assert p.request(XATTR, os.getuid()) == b"ok 0" and not p.active


@pytest.mark.parametrize(
    ("name", "answer"),
    [
        (f"{XATTR}=relative.plan", "error InvalidInput: the plan file must be an absolute path"),
        (f"{XATTR}=/nonexistent/x.plan", "error NotFound: cannot open plan file"),
        (f"{XATTR}x", "error InvalidInput: not a plan attribute"),
    ],
)
def test_bad_requests_get_one_error_and_change_nothing(
    view: RecordingView, files: list[str], name: str, answer: str
) -> None:
    p = AccessPlan(view)
    assert p.request(name, os.getuid()).decode().startswith(answer)
    assert not p.active and view.reads.warmed == []


def test_the_daemon_reads_only_a_regular_plan_file(
    view: RecordingView, files: list[str], tmp_path: Path
) -> None:
    p = AccessPlan(view)
    target = tmp_path / "real.plan"
    target.write_text(files[0] + "\n")
    link = tmp_path / "link.plan"
    link.symlink_to(target)
    assert p.request(f"{XATTR}={link}", os.getuid()).startswith(b"error NotFound: ")
    assert p.request(f"{XATTR}={tmp_path}", os.getuid()) == (
        f"error InvalidInput: plan file {tmp_path} is not a regular file".encode()
    )
    other = os.getuid() + 1
    assert p.request(f"{XATTR}={target}", other) == (
        f"error InvalidInput: plan file {target} is owned by another user".encode()
    )
    (tmp_path / "bin.plan").write_bytes(b"\xff\xfe\n")
    assert p.request(f"{XATTR}={tmp_path / 'bin.plan'}", os.getuid()).startswith(
        b"error InvalidInput: "
    )
    assert not p.active


def test_catalog_paths_go_through_tag_symlinks(home: Path, files: list[str]) -> None:
    v = open_view(Home.at(home), None)
    try:
        rv = RecordingView(v)
        p = AccessPlan(rv)
        assert p.start([f"d/latest/{files[0]}", f"d/v0/{files[1]}"], ("/x", 0)) == "ok 2"
        assert len(rv.reads.warmed) == 2
    finally:
        v.close()


def test_the_client_takes_paths_under_the_mount_only(tmp_path: Path) -> None:
    root = tmp_path / "mnt"
    assert plan.relative_paths(root, ["a/b.jpg", root / "c.jpg", "./d//e.jpg"]) == [
        "a/b.jpg",
        "c.jpg",
        "d/e.jpg",
    ]
    for bad in ["/etc/passwd", "../x", "a\nb", "", str(root)]:
        with pytest.raises(InvalidInput):
            plan.relative_paths(root, [bad])


def test_dlfs_prefetch_is_the_function_whatever_is_imported_later() -> None:
    importlib.import_module("dlfs.reads")  # loads every submodule a mount uses

    assert dlfs.prefetch is plan.prefetch
    assert dlfs.PlannedSampler.__module__ == "dlfs.sampler"


def test_a_long_plan_lets_the_event_loop_run_while_it_is_resolved(
    view: RecordingView, files: list[str], tmp_path: Path
) -> None:
    import trio

    given = tmp_path / "long.plan"
    paths = files * 4  # 160 entries
    given.write_text("".join(p + "\n" for p in paths))
    checkpoints = 0

    async def checkpoint() -> None:
        nonlocal checkpoints
        checkpoints += 1
        await trio.lowlevel.checkpoint()

    answer = trio.run(AccessPlan(view).answer, f"{XATTR}={given}", os.getuid(), checkpoint)
    assert answer == f"ok {len(paths)}".encode()
    assert checkpoints == len(paths) // plan.RESOLVE_STEP


def test_a_store_that_cannot_warm_fails_neither_the_plan_nor_the_open(
    view: RecordingView, files: list[str]
) -> None:
    view.reads.broken = True
    p = AccessPlan(view, ahead_files=3)
    assert p.start(files, ("/x.plan", 0)) == f"ok {FILES}"
    p.opened(AccessPlan(view).resolve([files[0]])[0])  # raises nothing
    assert p.position == 0


def test_a_target_is_a_folder_or_a_mounted_ref(home: Path, files: list[str]) -> None:
    with pytest.raises(NotFound, match="no such folder: /no/such/mnt"):
        plan.mountpoint_of("/no/such/mnt", home)
    with pytest.raises(NotFound, match="d@latest is not mounted"):
        plan.mountpoint_of("d@latest", home)
