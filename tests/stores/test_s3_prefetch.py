"""Fetching ahead of S3 readers against a real S3 server (moto behind the fault proxy):
the GET loop, read-ahead under one memory budget, folder-order prefetch, stopping."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from dlfs import Catalog
from dlfs.errors import Corrupt
from dlfs.home import Home
from dlfs.nodes import Role
from dlfs.plan import AccessPlan
from dlfs.stores.registry import StoreRegistry
from dlfs.stores.remote import StoreConfig, open_store
from dlfs.stores.s3 import S3Store
from dlfs.view import open_view
from tests.s3proxy import FaultProxy

BLOCK = 64 * 1024


def settings(proxy: FaultProxy, tmp_path: Path, **kw: Any) -> StoreConfig:
    values: dict[str, Any] = {
        "endpoint_url": proxy.endpoint,
        "cache_dir": tmp_path / f"cache-{time.monotonic_ns()}",
        "block_size": BLOCK,
        "timeout": 3.0,
        "attempt_timeout": 1.0,
        **kw,
    }
    return StoreConfig.from_env(**values)


PATIENT = {"timeout": 20.0, "attempt_timeout": 10.0}
"""Timeouts for the tests that inject no fault: moto answers slowly when the whole
suite runs on every core, and these tests count requests, not time."""


def s3_store(catalog: Catalog, url: str, config: StoreConfig) -> S3Store:
    store = open_store(url, Home.at(catalog.home.root), config)
    assert isinstance(store, S3Store)
    return store


def publish(s3: Any, catalog: Catalog, files: dict[str, bytes]) -> tuple[str, str, dict[str, str]]:
    """``(store url, ref, {path: blob})`` of ``files`` published in a new S3 dataset."""
    url = f"s3://{s3.bucket()}/p"
    catalog.create_dataset("d", storage=url)
    for path, data in files.items():
        catalog.add_bytes("d", path, data)
    version = catalog.publish("d")
    return url, version.ref, {p: version.item(p).blob for p in files}


def until(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Poll ``check`` until it holds (the waiting is bounded, nothing is timed)."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_blocks_come_through_the_get_loop(
    s3: Any, catalog: Catalog, proxy: FaultProxy, tmp_path: Path
) -> None:
    data = os.urandom(5 * BLOCK + 3)
    url, _ref, blobs = publish(s3, catalog, {"f.bin": data})
    store = s3_store(catalog, url, settings(proxy, tmp_path, readahead=0))
    try:
        assert store.reader._start is not None, "the S3 store fetches through its event loop"
        assert store.read(blobs["f.bin"], 0, len(data) + 5) == data
        assert store.read(blobs["f.bin"], 3 * BLOCK + 1, 10) == data[3 * BLOCK + 1 : 3 * BLOCK + 11]
    finally:
        store.close()


def test_a_prefetch_starts_at_once_only_when_it_needs_no_waiting(
    s3: Any, catalog: Catalog, proxy: FaultProxy, tmp_path: Path
) -> None:
    small, large = os.urandom(BLOCK // 2), os.urandom(3 * BLOCK)
    url, _ref, blobs = publish(s3, catalog, {"s.bin": small, "l.bin": large})
    store = s3_store(catalog, url, settings(proxy, tmp_path, readahead=0))
    try:
        # a one-block blob: its GET starts on the store's event loop, no thread needed
        assert store.prefetch_nowait(blobs["s.bin"], len(small))
        assert until(lambda: proxy.count("GET", blobs["s.bin"]) == 1)
        # a large blob needs its block manifest first: left to a thread, nothing sent
        assert not store.prefetch_nowait(blobs["l.bin"], len(large))
        assert proxy.count("GET", blobs["l.bin"]) == 0
        proxy.fail("flip", match=blobs["s.bin"])  # served bytes are still checked ones
        assert store.read(blobs["s.bin"], 0, len(small)) == small
        assert store.prefetch_nowait(blobs["s.bin"], len(small))  # cached: nothing to do
        assert proxy.count("GET", blobs["s.bin"]) == 1
    finally:
        store.close()


def test_a_corrupt_object_is_never_served_even_when_prefetched(
    s3: Any, catalog: Catalog, proxy: FaultProxy, tmp_path: Path
) -> None:
    small, large = os.urandom(BLOCK // 2), os.urandom(6 * BLOCK)
    url, _ref, blobs = publish(s3, catalog, {"s.bin": small, "l.bin": large})
    store = s3_store(catalog, url, settings(proxy, tmp_path, readahead=8 * BLOCK))
    try:
        for name, data in (("s.bin", small), ("l.bin", large)):
            blob = blobs[name]
            store.reader.plan(blob, len(data))  # the block manifest, unspoiled
            proxy.fail("flip", times=1000, match=blob)
            store.prefetch(blob, len(data))
            assert until(lambda b=blob: proxy.count("GET", b) >= 2), "the prefetch was tried"
            with pytest.raises(Corrupt):
                store.read(blob, 0, len(data))
            with pytest.raises(Corrupt):  # read-ahead of a sequential reader: same
                store.read(blob, len(data) - 10, 10)
            proxy.clear()
            assert until(lambda: not store.reader._inflight)
            assert store.read(blob, 0, len(data) + 1) == data  # nothing wrong was kept
    finally:
        store.close()


def test_a_failed_prefetch_does_not_fail_another_read(
    s3: Any, catalog: Catalog, proxy: FaultProxy, tmp_path: Path
) -> None:
    a, b = os.urandom(1000), os.urandom(2000)
    url, _ref, blobs = publish(s3, catalog, {"a": a, "b": b})
    store = s3_store(catalog, url, settings(proxy, tmp_path))
    try:
        proxy.fail("500", times=1000, match=blobs["b"])
        store.prefetch(blobs["b"], len(b))
        assert store.read(blobs["a"], 0, 5000) == a
        assert until(lambda: not store.reader._inflight), "the failed prefetch ended"
        proxy.clear()
        assert store.read(blobs["b"], 0, 5000) == b  # its failure was not remembered
    finally:
        store.close()


def test_sixteen_sequential_readers_stay_within_the_memory_budget(
    s3: Any, catalog: Catalog, proxy: FaultProxy, tmp_path: Path
) -> None:
    files = {f"f{i:02}": os.urandom(24 * BLOCK) for i in range(16)}
    url, _ref, blobs = publish(s3, catalog, files)
    budget = 64 * BLOCK
    config = settings(proxy, tmp_path, readahead=16 * BLOCK, prefetch_memory=budget, **PATIENT)
    store = s3_store(catalog, url, config)

    def read_all(name: str) -> bool:
        data, got, pos = files[name], [], 0
        while pos < len(data):
            got.append(store.read(blobs[name], pos, 32 * 1024))
            pos += 32 * 1024
        return b"".join(got) == data

    try:
        with ThreadPoolExecutor(16) as pool:
            assert all(pool.map(read_all, sorted(files)))
        # Read-ahead ran (fewer GETs than blocks), and the bytes held in memory or
        # in flight never passed the budget, plus one block per reader waiting for
        # its own read.
        gets = sum(
            proxy.count("GET", blob) - proxy.count("GET", f"{blob}.blocks")
            for blob in blobs.values()
        )
        assert gets < 16 * 24
        assert store.reader.peak_held <= budget + 16 * BLOCK, store.reader.peak_held
    finally:
        store.close()


def test_stop_and_close_cancel_gets_in_flight(
    s3: Any, catalog: Catalog, proxy: FaultProxy, tmp_path: Path
) -> None:
    data = os.urandom(40 * BLOCK)
    url, _ref, blobs = publish(s3, catalog, {"f.bin": data})
    blob = blobs["f.bin"]
    config = settings(proxy, tmp_path, readahead=32 * BLOCK, timeout=60.0, attempt_timeout=30.0)
    store = s3_store(catalog, url, config)
    assert store.read(blob, 0, 1000) == data[:1000]
    proxy.fail("hang", times=1000, match=blob, seconds=60)
    for pos in range(1000, BLOCK - 1000, 1000):  # sequential, in block 0: read-ahead
        assert store.read(blob, pos, 1000) == data[pos : pos + 1000]
    loop = store.blocks._loop
    assert loop is not None and until(lambda: loop.in_flight > 0)
    store.stop_prefetch(blob)  # the file was closed
    assert until(lambda: loop.in_flight == 0), "its GETs were cancelled"
    assert store.reader.held() <= 4 * BLOCK
    for pos in range(0, 10000, 1000):  # a blocked read-ahead again...
        store.read(blob, pos, 1000)
    assert until(lambda: loop.in_flight > 0)
    start = time.monotonic()
    store.close()  # ...and the unmount does not wait for it
    assert time.monotonic() - start < 10 < config.attempt_timeout


def test_files_opened_in_folder_order_are_fetched_ahead(
    s3: Any, catalog: Catalog, proxy: FaultProxy, tmp_path: Path
) -> None:
    files = {f"cls/{i:03}.bin": os.urandom(3000 + i) for i in range(40)}
    _url, ref, blobs = publish(s3, catalog, files)
    home = Home.at(catalog.home.root)
    view = open_view(home, ref, StoreRegistry(home, settings(proxy, tmp_path, **PATIENT)))
    try:
        folder = view.lookup(view.root(), "cls")
        names = sorted(n.split("/")[1] for n in files)

        def read(name: str) -> bytes:
            node = view.lookup(folder, name)
            fh = view.open(node, os.O_RDONLY)
            try:
                return bytes(view.read(fh, 0, node.size))
            finally:
                view.release(fh)

        # stat of every file (ls -l, find): no bytes fetched
        for name in names:
            assert view.lookup(folder, name).role == Role.FILE
        for name in names[:4]:
            assert read(name) == files[f"cls/{name}"]
        later = [blobs[f"cls/{n}"] for n in names[6:12]]
        assert until(lambda: all(proxy.count("GET", b) for b in later)), (
            "the next files were fetched before they were opened"
        )
        gets = proxy.count("GET", "/blobs/")
        for name in names[4:20]:
            assert read(name) == files[f"cls/{name}"]
        assert until(lambda: view.reads.ahead.warmed >= 20)
        # files read in order cost one GET each, whoever fetched them
        assert proxy.count("GET", "/blobs/") <= gets + len(names) - 4
    finally:
        view.close()


def test_a_walk_in_folder_order_fetches_the_next_folder_before_it_gets_there(
    s3: Any, catalog: Catalog, proxy: FaultProxy, tmp_path: Path
) -> None:
    folders = ("c0", "c1", "c2")
    files = {f"{d}/{i:03}.bin": os.urandom(2000 + i) for d in folders for i in range(20)}
    files["c0.txt"] = b"a file between the two folders"
    _url, ref, blobs = publish(s3, catalog, files)
    home = Home.at(catalog.home.root)
    view = open_view(home, ref, StoreRegistry(home, settings(proxy, tmp_path, **PATIENT)))
    try:
        folder = view.lookup(view.root(), "c0")  # c1 is not looked up: a walk is in c0
        for i in range(20):
            node = view.lookup(folder, f"{i:03}.bin")
            fh = view.open(node, os.O_RDONLY)
            assert bytes(view.read(fh, 0, node.size)) == files[f"c0/{i:03}.bin"]
            view.release(fh)
        first = [blobs[f"c1/{i:03}.bin"] for i in range(8)]
        assert until(lambda: all(proxy.count("GET", b) for b in first)), (
            "the first files of the next folder were fetched before it was opened"
        )
        assert not proxy.count("GET", blobs["c0.txt"]), "only files of folders"
        c2 = [blobs[f"c2/{i:03}.bin"] for i in range(20)]
        assert not any(proxy.count("GET", b) for b in c2), "only the next folder"
    finally:
        view.close()


def test_with_a_plan_in_force_the_folder_order_is_not_followed(
    s3: Any, catalog: Catalog, proxy: FaultProxy, tmp_path: Path
) -> None:
    files = {f"cls/{i:03}.bin": os.urandom(2000 + i) for i in range(40)}
    _url, ref, _blobs = publish(s3, catalog, files)
    home = Home.at(catalog.home.root)
    config = settings(proxy, tmp_path, **PATIENT)
    view = open_view(home, ref, StoreRegistry(home, config))
    plan_file = tmp_path / "p.plan"
    plan_file.touch()
    try:
        folder = view.lookup(view.root(), "cls")
        names = sorted(n.split("/")[1] for n in files)

        def read(name: str) -> None:
            node = view.lookup(folder, name)
            fh = view.open(node, os.O_RDONLY)
            assert bytes(view.read(fh, 0, node.size)) == files[f"cls/{name}"]
            view.release(fh)

        read(names[0])  # the store is open
        plan = AccessPlan(view, ahead_files=4)
        plan.start(sorted(files, reverse=True), (str(plan_file), plan_file.stat().st_ino))
        for name in names[1:10]:  # the plan says what comes next, not the folder
            read(name)
        assert view.reads.ahead.warmed == 0
        plan.withdraw()
        for name in names[10:20]:
            read(name)
        assert until(lambda: view.reads.ahead.warmed > 0)
    finally:
        view.close()


def test_files_opened_out_of_order_fetch_nothing_ahead(
    s3: Any, catalog: Catalog, proxy: FaultProxy, tmp_path: Path
) -> None:
    files = {f"cls/{i:03}.bin": os.urandom(2000) for i in range(30)}
    _url, ref, _blobs = publish(s3, catalog, files)
    home = Home.at(catalog.home.root)
    view = open_view(home, ref, StoreRegistry(home, settings(proxy, tmp_path, **PATIENT)))
    try:
        folder = view.lookup(view.root(), "cls")
        names = sorted(n.split("/")[1] for n in files)
        shuffled = [names[i] for i in (17, 3, 25, 9, 0, 21, 12, 5, 28, 14)]
        for name in shuffled:
            node = view.lookup(folder, name)
            fh = view.open(node, os.O_RDONLY)
            assert bytes(view.read(fh, 0, node.size)) == files[f"cls/{name}"]
            view.release(fh)
        assert view.reads.ahead.warmed == 0
    finally:
        view.close()
