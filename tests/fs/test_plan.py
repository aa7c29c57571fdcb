"""The access plan through real mounts: a plan warms files ahead of the reader (the
page cache of a local store, seen with ``fincore``; the GETs of an S3 store, counted by
a proxy in front of a real S3 server on loopback), and every way of giving one
(``dlfs.prefetch``, ``PlannedSampler``, ``dlfs prefetch``) behaves on bad input."""

from __future__ import annotations

import json
import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dlfs
from dlfs import Catalog, mountregistry
from dlfs.errors import InvalidInput, NotFound
from dlfs.home import Home
from dlfs.plan import AHEAD_FILES
from dlfs.stores.local import LocalStore
from tests.fsutil import Mounter, is_mounted, process_alive, wait_for
from tests.fsutil import dlfs as run_dlfs
from tests.helpers import Cli
from tests.s3proxy import FaultProxy

N = AHEAD_FILES + 16
"""Files in the test version: more than a plan warms at once."""


def build(home: Path, tmp_path: Path, storage: str = "local") -> tuple[str, dict[str, bytes]]:
    """A published version of N small distinct files; its ref and the files."""
    rnd = random.Random(5)
    src = tmp_path / "src"
    files = {f"c{i % 4}/s{i:03d}.bin": rnd.randbytes(rnd.randint(8_000, 24_000)) for i in range(N)}
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    with Catalog(home) as cat:
        cat.create_dataset("d", storage=storage)
        cat.add("d", [src])
        return cat.publish("d").ref, files


def shuffled(files: dict[str, bytes], seed: int = 11) -> list[str]:
    order = sorted(files)
    random.Random(seed).shuffle(order)
    return order


def blob_of(home: Path, ref: str, paths: list[str]) -> dict[str, str]:
    with Catalog(home) as cat:
        return {p: cat.item(ref, p).blob for p in paths}


# -- a local store: the page cache --------------------------------------------------


def resident(files: list[Path]) -> list[int]:
    """Bytes of each file in the page cache (util-linux ``fincore``)."""
    out = subprocess.run(
        ["fincore", "--json", "--bytes", *map(str, files)], capture_output=True, check=True
    ).stdout
    res = {row["file"]: int(row["res"]) for row in json.loads(out)["fincore"]}
    return [res[str(f)] for f in files]


def evict(files: list[Path]) -> None:
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def test_a_plan_warms_local_files_into_the_page_cache_ahead_of_the_reader(
    home: Path, tmp_path: Path, mounter: Mounter
) -> None:
    ref, files = build(home, tmp_path)
    order = shuffled(files)
    blobs = blob_of(home, ref, order)
    store = LocalStore(Home.at(home).blobs)
    on_disk = [store.path(blobs[p]) for p in order]
    # One process: with several, the plan follows only the opens that reach the
    # worker that got it (docs/architecture.md), so its window moves with those.
    m = mounter(ref, tmp_path / "mnt", "--workers", "1")
    evict(on_disk)
    assert sum(resident(on_disk)) == 0
    given = dlfs.prefetch(m.path, order)
    assert given.files == N
    assert wait_for(lambda: all(resident(on_disk[:AHEAD_FILES])))
    assert not any(resident(on_disk[AHEAD_FILES:]))  # no further ahead than the bound
    for p in order[:10]:  # the reader goes on: the plan follows it
        assert (m.path / p).read_bytes() == files[p]
    assert wait_for(lambda: all(resident(on_disk[: AHEAD_FILES + 9])))
    assert not any(resident(on_disk[AHEAD_FILES + 10 :]))


# -- an S3 store: GETs through a counting proxy ---------------------------------------


@pytest.fixture
def proxy(s3: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """A proxy in front of the S3 server, which dlfs (and its daemons) talk to."""
    p = FaultProxy(s3.endpoint)
    monkeypatch.setenv("DLFS_S3_ENDPOINT", p.endpoint)
    try:
        yield p
    finally:
        p.stop()


def test_a_plan_fetches_s3_files_ahead_of_the_reader_even_past_the_cache_size(
    s3: Any, proxy: FaultProxy, home: Path, tmp_path: Path, mounter: Mounter
) -> None:
    ref, files = build(home, tmp_path, storage=f"s3://{s3.bucket()}/data")
    order = shuffled(files)
    blobs = blob_of(home, ref, order)
    # The plan's files add up to well over the block cache (1.2 MiB against 256 KiB).
    m = mounter(ref, tmp_path / "mnt", "--cache-dir", str(tmp_path / "c"), "--cache-size", "256K")

    def fetched(paths: list[str]) -> list[int]:
        return [proxy.count("GET", blobs[p]) for p in paths]

    assert sum(fetched(order)) == 0
    dlfs.prefetch(m.path, order)
    assert wait_for(lambda: all(fetched(order[:AHEAD_FILES])))
    assert not any(fetched(order[AHEAD_FILES:]))
    for p in order:  # every byte as stored (each block verified), in the planned order
        assert (m.path / p).read_bytes() == files[p]
    assert all(fetched(order))


@pytest.mark.parametrize("fast_get", ["1", "0"], ids=["get-loop", "boto3-threads"])
def test_unmount_returns_with_planned_gets_in_flight(
    s3: Any,
    proxy: FaultProxy,
    home: Path,
    tmp_path: Path,
    mounter: Mounter,
    monkeypatch: pytest.MonkeyPatch,
    fast_get: str,
) -> None:
    # The server never answers the planned GETs, and the daemon would wait 10 minutes
    # for each: an unmount that returns (and a daemon that exits) at all cancelled them.
    monkeypatch.setenv("DLFS_S3_TIMEOUT", "600")
    monkeypatch.setenv("DLFS_S3_ATTEMPT_TIMEOUT", "600")
    monkeypatch.setenv("DLFS_S3_FAST_GET", fast_get)
    ref, files = build(home, tmp_path, storage=f"s3://{s3.bucket()}/data")
    m = mounter(ref, tmp_path / "mnt")
    assert (m.path / "c0" / "s000.bin").read_bytes() == files["c0/s000.bin"]  # store open
    proxy.fail("hang", times=10 * N, match="/data/")
    order = shuffled(files)
    dlfs.prefetch(m.path, order)
    assert wait_for(lambda: proxy.injected >= min(8, N)), "GETs are held by the server"
    run_dlfs(home, "umount", str(m.path), timeout=30)  # TimeoutExpired: it hung
    assert not is_mounted(m.path)
    assert wait_for(lambda: not process_alive(m.pid), 20), "the daemon exits"


# -- giving plans: replaced, withdrawn, refused -------------------------------------


def test_a_plan_naming_missing_paths_is_one_error_and_the_plan_in_force_stays(
    home: Path, tmp_path: Path, mounter: Mounter
) -> None:
    ref, files = build(home, tmp_path)
    # One process: a plan is kept by the worker that got it (docs/architecture.md),
    # and the log lines counted here are that worker's bookkeeping.
    m = mounter(ref, tmp_path / "mnt", "--workers", "1")
    order = shuffled(files)
    first = dlfs.prefetch(m.path, order)
    assert first.file is not None and first.file.exists()
    with pytest.raises(NotFound) as exc:
        dlfs.prefetch(m.path, [order[0], "nope.bin", "c0"])
    assert str(exc.value) == ("2 of 3 planned paths are not files in the mount: nope.bin, c0")
    assert first.file.exists()  # still the plan in force
    with pytest.raises(InvalidInput):
        dlfs.prefetch(m.path, ["/etc/passwd"])
    second = dlfs.prefetch(m.path, order[::-1])  # replaces the first
    assert not first.file.exists() and second.file is not None and second.file.exists()
    first.cancel()  # replaced already: nothing happens
    assert second.file.exists()
    second.cancel()
    assert second.file is None
    assert dlfs.prefetch(m.path, []).files == 0  # nothing in force: still fine
    log = mountregistry.log_path(Home.at(home), m.path).read_text()
    assert log.count("access plan of") == 2 and log.count("withdrawn") == 1


def test_a_plan_for_a_file_being_read_changes_none_of_its_bytes(
    home: Path, tmp_path: Path, mounter: Mounter
) -> None:
    ref, files = build(home, tmp_path)
    big = os.urandom(3 << 20)
    with Catalog(home) as cat:
        cat.create_version("d", [ref])
        cat.add_bytes("d", "big.bin", big)
        ref = cat.publish("d").ref
    m = mounter(ref, tmp_path / "mnt")
    with open(m.path / "big.bin", "rb") as f:
        head = f.read(1 << 20)
        dlfs.prefetch(m.path, ["big.bin", *shuffled(files)[:5]])
        assert head + f.read() == big


def test_a_plan_by_ref_for_a_draft_and_for_the_catalog_mount(
    home: Path, tmp_path: Path, mounter: Mounter
) -> None:
    ref, files = build(home, tmp_path)
    order = shuffled(files)[:3]
    with Catalog(home) as cat:
        cat.create_version("d", [ref])
    draft = mounter("d@draft", tmp_path / "draft")
    (draft.path / "new.bin").write_bytes(b"written in the draft")
    assert dlfs.prefetch("d@draft", [*order, "new.bin"], home=home).files == 4
    whole = mounter(None, tmp_path / "all")
    assert dlfs.prefetch(whole.path, [f"d/latest/{p}" for p in order]).files == 3
    assert (whole.path / "d/latest" / order[0]).read_bytes() == files[order[0]]
    with pytest.raises(NotFound, match="not mounted"):
        dlfs.prefetch(ref, order, home=home)  # the published version is mounted nowhere


def test_the_planned_sampler_hands_over_each_epochs_order(
    home: Path, tmp_path: Path, mounter: Mounter
) -> None:
    ref, files = build(home, tmp_path)
    paths = sorted(files)
    m = mounter(ref, tmp_path / "mnt")

    class Shuffled:  # any sampler: iterable, with a length
        def __init__(self) -> None:
            self.epoch = 0

        def __iter__(self) -> Iterator[int]:
            order = list(range(len(paths)))
            random.Random(self.epoch).shuffle(order)
            return iter(order)

        def __len__(self) -> int:
            return len(paths)

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

    sampler = dlfs.PlannedSampler(Shuffled(), paths, m.path)
    for epoch in range(2):
        sampler.set_epoch(epoch)
        drawn = list(sampler)
        same = Shuffled()
        same.set_epoch(epoch)
        assert drawn == list(same)
        assert sampler.plan is not None and sampler.plan.files == len(paths)
        assert [(m.path / paths[i]).read_bytes() for i in drawn[:3]] == [
            files[paths[i]] for i in drawn[:3]
        ]
    batches = dlfs.PlannedSampler([[3, 1], [2]], paths, m.path)
    assert list(batches) == [[3, 1], [2]] and batches.plan is not None
    assert batches.plan.files == 3 and len(batches) == 2


def test_the_cli_gives_and_withdraws_plans_and_bad_input_is_one_line(
    home: Path, tmp_path: Path, mounter: Mounter
) -> None:
    ref, files = build(home, tmp_path)
    m = mounter(ref, tmp_path / "mnt")
    order = shuffled(files)
    listing = tmp_path / "order.txt"
    listing.write_text("".join(p + "\n" for p in order))
    res = run_dlfs(home, "prefetch", str(m.path), "--from", str(listing))
    assert res.out == f"plan of {N} files given to {m.path}\n"
    piped = "".join(p + "\n" for p in order[:5]).encode()
    res = Cli(home)("prefetch", str(m.path), "--from", "-", input=piped)
    assert res.out == f"plan of 5 files given to {m.path}\n"
    res = run_dlfs(home, "prefetch", str(m.path), "--cancel")
    assert res.out == f"plan withdrawn at {m.path}\n"
    bad = tmp_path / "bad.txt"
    bad.write_text(f"{order[0]}\nmissing.bin\n")
    for args in (
        ["--from", str(bad)],
        ["--from", str(tmp_path / "no-such-list")],
    ):
        res = run_dlfs(home, "prefetch", str(m.path), *args, ok=False)
        assert res.code == 1 and res.out == ""
        assert res.err.count("\n") == 1 and res.err.startswith("dlfs: error: "), res.err
    res = run_dlfs(home, "prefetch", str(tmp_path), "--cancel", ok=False)
    assert res.code == 1 and res.err.startswith("dlfs: error: ") and res.err.count("\n") == 1
    assert "does not take access plans" in res.err
    res = run_dlfs(home, "prefetch", str(m.path), ok=False)
    assert res.code == 2  # a usage error: neither --from nor --cancel
