"""The prefetcher: warms files on open, on lookups only while lookups lead to reads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from dlfs.warming import MAX_PENDING, WINDOW, Prefetcher


@pytest.fixture
def prefetcher() -> Iterator[Prefetcher]:
    p = Prefetcher(threads=2)
    try:
        yield p
    finally:
        p.close()


class Jobs:
    """Warming jobs that record which keys ran."""

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.lock = threading.Lock()

    def job(self, key: str, gate: threading.Event | None = None) -> Callable[[], None]:
        def run() -> None:
            if gate is not None:
                gate.wait(5)
            with self.lock:
                self.ran.append(key)

        return run

    def wait_for(self, count: int) -> list[str]:
        deadline = time.monotonic() + 5
        while len(self.ran) < count and time.monotonic() < deadline:
            time.sleep(0.005)
        return sorted(self.ran)


def settle(p: Prefetcher) -> None:
    """Wait until no job is queued or running."""
    deadline = time.monotonic() + 5
    while p.pending() and time.monotonic() < deadline:
        time.sleep(0.005)


def test_an_open_warms_the_file(prefetcher: Prefetcher) -> None:
    jobs = Jobs()
    prefetcher.opened("a", jobs.job("a"))
    assert jobs.wait_for(1) == ["a"]


def test_lookups_warm_while_they_are_followed_by_opens(prefetcher: Prefetcher) -> None:
    jobs = Jobs()
    for i in range(WINDOW):
        key = f"f{i}"
        prefetcher.looked_up(key, jobs.job(key))
        assert key in jobs.wait_for(2 * i + 1)  # warmed on its lookup
        prefetcher.opened(key, jobs.job(key))  # a reader: every file looked up is opened
    assert prefetcher.on_lookup


def test_lookups_without_reads_stop_warming_until_reads_come_back(
    prefetcher: Prefetcher,
) -> None:
    jobs = Jobs()
    for i in range(WINDOW):  # find / du: lookups, no opens
        prefetcher.looked_up(f"s{i}", jobs.job(f"s{i}"))
    assert not prefetcher.on_lookup
    settle(prefetcher)
    done = len(jobs.ran)
    prefetcher.looked_up("quiet", jobs.job("quiet"))
    time.sleep(0.05)
    assert "quiet" not in jobs.ran and len(jobs.ran) == done
    for i in range(WINDOW):  # a reader again
        prefetcher.looked_up(f"r{i}", jobs.job(f"r{i}"))
        prefetcher.opened(f"r{i}", jobs.job(f"r{i}"))
    assert prefetcher.on_lookup


def test_a_key_is_warmed_once_at_a_time_and_the_queue_is_bounded(
    prefetcher: Prefetcher,
) -> None:
    jobs = Jobs()
    gate = threading.Event()
    prefetcher.opened("same", jobs.job("same", gate))
    prefetcher.opened("same", jobs.job("same", gate))  # still pending: dropped
    for i in range(MAX_PENDING + 10):
        prefetcher.opened(f"k{i}", jobs.job(f"k{i}", gate))
    gate.set()
    jobs.wait_for(MAX_PENDING)
    time.sleep(0.05)
    assert jobs.ran.count("same") == 1
    assert len(jobs.ran) == MAX_PENDING  # the rest were hints, dropped


def test_a_failing_job_is_dropped_and_later_ones_still_run(prefetcher: Prefetcher) -> None:
    jobs = Jobs()

    def boom() -> None:
        raise OSError("disk on fire")

    prefetcher.opened("bad", boom)
    prefetcher.opened("good", jobs.job("good"))
    assert jobs.wait_for(1) == ["good"]
