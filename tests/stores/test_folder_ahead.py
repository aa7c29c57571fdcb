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
