"""Folder-order prefetch without a store or a kernel: which files FolderAhead warms."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from dlfs import warming as prefetch
from dlfs.warming import FolderAhead, Prefetcher

NAMES = [f"{i:04}" for i in range(500)]


class Folder:
    """A folder of NAMES; records which names were warmed."""

    def __init__(self) -> None:
        self.warmed: list[str] = []
        self.lock = threading.Lock()

    def following(self, _folder: object, name: str, n: int) -> list[tuple[str, object]]:
        after = [x for x in NAMES if x > name][:n]
        return [(x, x) for x in after]

    def warm(self, items: list[object]) -> Callable[[], None]:
        def run() -> None:
            with self.lock:
                self.warmed.extend(str(i) for i in items)

        return run


def settle(p: Prefetcher) -> None:
    """Wait until the queued warming jobs ran (bounded)."""
    deadline = time.monotonic() + 10
    while p.pending() and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.fixture
def folder() -> Iterator[tuple[Folder, FolderAhead, Prefetcher]]:
    f = Folder()
    p = Prefetcher(threads=1)
    try:
        yield f, FolderAhead(p, f.following, f.warm), p
    finally:
        p.close()


def test_reading_in_order_warms_ahead_within_a_bounded_window(
    folder: tuple[Folder, FolderAhead, Prefetcher],
) -> None:
    f, ahead, p = folder
    for i, name in enumerate(NAMES[:300]):
        ahead.opened("dir", name)
        # never more than AHEAD_MAX files warmed beyond the one being read
        assert ahead.warmed <= i + 1 + prefetch.AHEAD_MAX
    settle(p)
    assert len(f.warmed) == len(set(f.warmed)), "no file is warmed twice"
    assert set(NAMES[prefetch.STREAK + 1 : 300]) <= set(f.warmed)


def test_shuffled_opens_warm_nothing(folder: tuple[Folder, FolderAhead, Prefetcher]) -> None:
    import random

    _f, ahead, _p = folder
    order = NAMES[:]
    random.Random(7).shuffle(order)
    for name in order:
        ahead.opened("dir", name)
    assert ahead.warmed <= 3 * prefetch.AHEAD_MIN  # an accidental run at most, short


def test_a_jump_drops_the_window(folder: tuple[Folder, FolderAhead, Prefetcher]) -> None:
    _f, ahead, _p = folder
    for name in NAMES[:20]:
        ahead.opened("dir", name)
    before = ahead.warmed
    ahead.opened("dir", NAMES[400])  # far outside what was warmed
    ahead.opened("dir", NAMES[100])  # backwards
    assert ahead.warmed == before


def test_eight_readers_of_one_folder_still_read_in_order(
    folder: tuple[Folder, FolderAhead, Prefetcher],
) -> None:
    import random

    f, ahead, p = folder
    rng, order = random.Random(1), []
    for base in range(0, 400, 8):  # 8 readers: each group of 8 opens comes in any order
        group = NAMES[base : base + 8]
        rng.shuffle(group)
        order += group
    for name in order:
        ahead.opened("dir", name)
    settle(p)
    assert len(set(f.warmed) & set(NAMES[:400])) >= 380


class Tree:
    """Folders d00..d09 of 25 files each (a ``tar`` walk's view); records the
    ``(folder, name)`` warmed."""

    FOLDERS = tuple(f"d{i:02}" for i in range(10))

    def __init__(self) -> None:
        self.warmed: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def following(self, folder: object, name: str, n: int) -> list[tuple[str, object]]:
        after = [x for x in NAMES[:25] if x > name][:n]
        return [(x, (folder, x)) for x in after]

    def next_folder(self, folder: object) -> object | None:
        at = self.FOLDERS.index(str(folder)) + 1
        return self.FOLDERS[at] if at < len(self.FOLDERS) else None

    def warm(self, items: list[object]) -> Callable[[], None]:
        def run() -> None:
            with self.lock:
                self.warmed.extend(items)  # type: ignore[arg-type]

        return run


def test_a_walk_in_order_warms_the_next_folder_before_it_gets_there() -> None:
    t = Tree()
    p = Prefetcher(threads=1)
    try:
        ahead = FolderAhead(p, t.following, t.warm, t.next_folder)
        for folder in t.FOLDERS[:3]:
            for name in NAMES[:25]:
                ahead.opened(folder, name)
        settle(p)
    finally:
        p.close()
    warmed = set(t.warmed)
    assert len(warmed) == len(t.warmed), "no file is warmed twice"
    # every file of the next folders was on its way before the walk opened it, from
    # the first one on (no streak to show again in each new folder)...
    for folder in ("d01", "d02"):
        assert {(folder, n) for n in NAMES[:25]} <= warmed
    # ...and the walk went no further than the folder after the one it stopped in
    assert {f for f, _n in warmed} == {"d00", "d01", "d02", "d03"}
    assert len([1 for f, _n in warmed if f == "d03"]) <= prefetch.AHEAD_MAX


def test_shuffled_opens_across_folders_warm_no_next_folder() -> None:
    import random

    t = Tree()
    p = Prefetcher(threads=1)
    try:
        ahead = FolderAhead(p, t.following, t.warm, t.next_folder)
        order = [(f, n) for f in t.FOLDERS for n in NAMES[:25]]
        random.Random(3).shuffle(order)
        for folder, name in order:
            ahead.opened(folder, name)
        settle(p)
    finally:
        p.close()
    assert ahead.warmed <= 3 * prefetch.AHEAD_MIN
