"""dlfs.warmpool: bounded fire-and-forget warming jobs, without a kernel."""

from __future__ import annotations

import threading

from dlfs.warmpool import WarmPool


def test_jobs_run_once_per_key_and_the_pool_refuses_past_its_bound() -> None:
    gate = threading.Event()
    ran: list[str] = []
    done = threading.Semaphore(0)

    def job(key: str) -> None:
        gate.wait()
        ran.append(key)
        done.release()

    pool = WarmPool(threads=2, pending=3)
    try:
        assert pool.submit("a", lambda: job("a"))
        assert pool.submit("a", lambda: job("a"))  # already queued: one run
        assert pool.submit("b", lambda: job("b"))
        assert pool.submit("c", lambda: job("c"))
        assert not pool.submit("d", lambda: job("d"))  # full: refused, not queued
        gate.set()
        for _ in range(3):
            done.acquire()
        assert sorted(ran) == ["a", "b", "c"]
    finally:
        pool.close()
    assert not pool.submit("e", lambda: job("e"))  # closed


def test_a_failing_job_is_dropped_and_frees_its_place() -> None:
    pool = WarmPool(threads=1, pending=1)
    ran = threading.Event()

    def fail() -> None:
        ran.set()
        raise OSError("unreachable")

    assert pool.submit("x", fail)
    ran.wait()
    pool.close()  # waits for the running job
    assert not pool._pending


def test_close_drops_queued_jobs() -> None:
    gate = threading.Event()
    ran: list[str] = []
    pool = WarmPool(threads=1, pending=10)
    started = threading.Event()

    def first() -> None:
        started.set()
        gate.wait()
        ran.append("first")

    pool.submit("first", first)
    pool.submit("second", lambda: ran.append("second"))
    started.wait()
    closer = threading.Thread(target=pool.close)
    closer.start()
    while not pool._closed:  # close() has begun; the first job still runs
        closer.join(0.01)
    gate.set()
    closer.join()
    assert "first" in ran and "second" not in ran
