"""Faults of a real S3 server: errors, slowness, cut and damaged bodies, a dead server.

The store under test talks to a fault-injecting proxy (``tests/s3proxy.py``) in front
of moto. Whatever the proxy does, a read returns the right bytes (after a retry) or
raises ``Unavailable``/``Corrupt`` within the configured timeout: never wrong bytes,
never a hang.
"""

from __future__ import annotations

import errno
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from dlfs import Catalog, mountregistry
from dlfs.errors import Corrupt, Unavailable
from dlfs.home import Home
from dlfs.stores.remote import StoreConfig, open_store
from dlfs.stores.s3 import S3Store
from dlfs.stores.s3http import USER_AGENT
from tests.conftest import catalog_dump
from tests.fsutil import Mounter
from tests.s3proxy import FaultProxy

TIMEOUT = 2.0
ATTEMPT = 0.5
BLOCK = 64 * 1024


@pytest.fixture
def loaded(s3: Any, tmp_path: Path) -> tuple[Catalog, str, dict[str, tuple[str, bytes]]]:
    """A catalog whose S3 dataset holds a small and a large (5-block) file."""
    bucket = s3.bucket()
    url = f"s3://{bucket}/store"
    cat = Catalog(tmp_path / "home")
    cat.create_dataset("d", storage=url)
    files = {"small.txt": b"small file\n" * 10, "big.bin": os.urandom(5 * BLOCK + 123)}
    for name, data in files.items():
        cat.add_bytes("d", name, data)
    v = cat.publish("d")
    blobs = {name: (v.item(name).blob, data) for name, data in files.items()}
    return cat, url, blobs


def via(proxy: FaultProxy, url: str, cat: Catalog, tmp_path: Path, **kw: Any) -> S3Store:
    """A fresh store (own caches, own retry state) that reaches S3 through the proxy."""
    settings: dict[str, Any] = {
        "endpoint_url": proxy.endpoint,
        "cache_dir": tmp_path / f"cache-{time.monotonic_ns()}",
        "timeout": TIMEOUT,
        "attempt_timeout": ATTEMPT,
        "block_size": BLOCK,
        "readahead": 0,
        **kw,
    }
    store = open_store(url, Home.at(cat.home.root), StoreConfig.from_env(**settings))
    assert isinstance(store, S3Store)
    return store


def read_all(store: S3Store, blob: str, size: int) -> bytes:
    return store.read(blob, 0, size + 10)


def test_blob_gets_take_the_signed_path_unless_it_is_turned_off(
    loaded: tuple[Catalog, str, dict[str, tuple[str, bytes]]],
    proxy: FaultProxy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cat, url, blobs = loaded
    blob, data = blobs["small.txt"]
    assert read_all(via(proxy, url, cat, tmp_path), blob, len(data)) == data
    assert proxy.agents_of("GET", blob) == [USER_AGENT]  # one GET, not boto3's
    monkeypatch.setenv("DLFS_S3_FAST_GET", "0")  # read when a client is made: a new one
    store = via(proxy, url, cat, tmp_path, attempt_timeout=ATTEMPT + 0.1)
    assert read_all(store, blob, len(data)) == data
    agents = proxy.agents_of("GET", blob)
    assert len(agents) == 2 and agents[1].startswith("Boto3/")


@pytest.mark.parametrize("kind", ["500", "reset", "truncate", "short", "flip"])
def test_one_bad_answer_is_retried(
    loaded: tuple[Catalog, str, dict[str, tuple[str, bytes]]],
    proxy: FaultProxy,
    tmp_path: Path,
    kind: str,
) -> None:
    cat, url, blobs = loaded
    for blob, data in blobs.values():
        store = via(proxy, url, cat, tmp_path)
        proxy.fail(kind, times=2, match=blob)
        assert read_all(store, blob, len(data)) == data
        # a ranged block in the middle of the large blob, spoiled once more
        if len(data) > BLOCK:
            store2 = via(proxy, url, cat, tmp_path)
            proxy.fail(kind, times=1, match=blob)
            assert store2.read(blob, 2 * BLOCK + 7, 1000) == data[2 * BLOCK + 7 : 2 * BLOCK + 1007]
    assert proxy.injected >= 3


def test_slow_answers_time_out_and_are_retried(
    loaded: tuple[Catalog, str, dict[str, tuple[str, bytes]]],
    proxy: FaultProxy,
    tmp_path: Path,
) -> None:
    cat, url, blobs = loaded
    blob, data = blobs["small.txt"]
    store = via(proxy, url, cat, tmp_path)
    proxy.fail("delay", times=1, match=blob, seconds=1.5)
    start = time.monotonic()
    assert read_all(store, blob, len(data)) == data
    assert time.monotonic() - start < TIMEOUT + 1


@pytest.mark.parametrize("kind", ["500", "delay", "hang", "truncate"])
def test_a_failing_server_is_unavailable_within_the_timeout(
    loaded: tuple[Catalog, str, dict[str, tuple[str, bytes]]],
    proxy: FaultProxy,
    tmp_path: Path,
    kind: str,
) -> None:
    cat, url, blobs = loaded
    blob, _data = blobs["big.bin"]
    store = via(proxy, url, cat, tmp_path)
    proxy.fail(kind, times=1000, match=blob, seconds=3)
    start = time.monotonic()
    with pytest.raises(Unavailable) as err:
        store.read(blob, BLOCK, 100)
    elapsed = time.monotonic() - start
    assert elapsed < TIMEOUT + 1, elapsed
    assert blob in str(err.value) and "\n" not in str(err.value)


def test_bytes_that_keep_failing_their_hash_are_corrupt_never_returned(
    loaded: tuple[Catalog, str, dict[str, tuple[str, bytes]]],
    proxy: FaultProxy,
    tmp_path: Path,
) -> None:
    cat, url, blobs = loaded
    for blob, data in blobs.values():
        store = via(proxy, url, cat, tmp_path)
        proxy.fail("flip", times=1000, match=blob)
        start = time.monotonic()
        with pytest.raises(Corrupt):
            store.read(blob, len(data) - 10, 10)
        assert time.monotonic() - start < TIMEOUT + 1
        proxy.clear()
        assert store.read(blob, 0, len(data)) == data


def test_server_stopped_mid_read(
    loaded: tuple[Catalog, str, dict[str, tuple[str, bytes]]],
    proxy: FaultProxy,
    tmp_path: Path,
) -> None:
    """What was read stays readable (memory and disk cache, also in a new store over
    the same cache folder, as after a remount); the rest is Unavailable quickly."""
    cat, url, blobs = loaded
    blob, data = blobs["big.bin"]
    cache_dir = tmp_path / "shared-cache"
    store = via(proxy, url, cat, tmp_path, cache_dir=cache_dir)
    assert store.read(blob, 0, 2 * BLOCK) == data[: 2 * BLOCK]
    proxy.stop()
    assert store.read(blob, 100, BLOCK) == data[100 : BLOCK + 100]
    start = time.monotonic()
    with pytest.raises(Unavailable):
        store.read(blob, 4 * BLOCK, 10)
    assert time.monotonic() - start < TIMEOUT + 1
    # the endpoint is presumed down for a while: the next miss fails at once
    start = time.monotonic()
    with pytest.raises(Unavailable):
        store.read(blob, 3 * BLOCK, 10)
    assert time.monotonic() - start < 0.5
    remounted = via(proxy, url, cat, tmp_path, cache_dir=cache_dir)
    assert remounted.read(blob, BLOCK - 5, 10) == data[BLOCK - 5 : BLOCK + 5]


def test_upload_failures(
    s3: Any, proxy: FaultProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 500 on a PUT is retried; a dead server fails ``add`` with Unavailable before
    the catalog changes."""
    bucket = s3.bucket()
    home = tmp_path / "home"
    monkeypatch.setenv("DLFS_S3_TIMEOUT", str(TIMEOUT))
    monkeypatch.setenv("DLFS_S3_ATTEMPT_TIMEOUT", str(ATTEMPT))
    monkeypatch.setenv("DLFS_S3_ENDPOINT", proxy.endpoint)
    cat = Catalog(home)
    cat.create_dataset("d", storage=f"s3://{bucket}/p")
    proxy.fail("500", times=2, method="PUT", match="/blobs/")
    cat.add_bytes("d", "a.txt", b"first")
    assert cat.draft("d").read_bytes("a.txt") == b"first"
    assert proxy.count("PUT", "/blobs/") == 3
    before = catalog_dump(home)
    proxy.stop()
    start = time.monotonic()
    with pytest.raises(Unavailable):
        cat.add_bytes("d", "b.txt", b"second")
    assert time.monotonic() - start < TIMEOUT + 1
    assert catalog_dump(home) == before
    cat.close()


def test_retry_policy() -> None:
    """Temporary failures are retried until the deadline, permanent ones are not;
    after giving up, the next call makes one attempt only (cooldown)."""
    from dlfs.errors import BadBody, NotFound, TemporaryFailure
    from dlfs.stores.retry import RetryPolicy

    policy = RetryPolicy(timeout=0.6, attempt_timeout=0.1, cooldown=0.3)
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TemporaryFailure("refused")
        return "ok"

    assert policy.call("x", flaky) == "ok" and len(calls) == 3

    def dead() -> None:
        calls.append(1)
        raise TemporaryFailure("refused")

    calls.clear()
    start = time.monotonic()
    with pytest.raises(Unavailable, match="refused"):
        policy.call("reading", dead)
    assert time.monotonic() - start <= 0.6 and len(calls) > 1
    calls.clear()
    with pytest.raises(Unavailable):
        policy.call("reading", dead)
    assert len(calls) == 1, "cooldown: one attempt"

    def missing() -> None:
        calls.append(1)
        raise NotFound("gone")

    time.sleep(0.35)
    calls.clear()
    with pytest.raises(NotFound):
        policy.call("reading", missing)
    assert len(calls) == 1

    def damaged() -> None:
        raise BadBody("flipped")

    with pytest.raises(Corrupt, match="flipped") as err:
        policy.call("reading", damaged)
    assert not isinstance(err.value, BadBody)


@pytest.mark.fuse
@pytest.mark.expect_log("is unreadable")
def test_every_eio_of_an_s3_mount_is_explained_once_in_the_daemons_log(
    s3: Any,
    proxy: FaultProxy,
    home: Path,
    mounter: Mounter,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A damaged body, a cut body, a server answering 500 and a server that is gone:
    each read fails with EIO, and the daemon's log holds one line per failing blob
    (per serving process that met it) naming the file's path, its blob and the cause,
    however often it was read."""
    monkeypatch.setenv("DLFS_S3_TIMEOUT", str(TIMEOUT))
    monkeypatch.setenv("DLFS_S3_ATTEMPT_TIMEOUT", str(ATTEMPT))
    monkeypatch.setenv("DLFS_S3_BLOCK_SIZE", "64K")
    bucket = s3.bucket()
    files = {f"{cause}.bin": os.urandom(3 * BLOCK + 5) for cause in CAUSES}
    with Catalog(home) as cat:
        cat.create_dataset("d", storage=f"s3://{bucket}/store")
        for name, data in files.items():
            cat.add_bytes("d", f"dir/{name}", data)
        v = cat.publish("d")
        blobs = {name: v.item(f"dir/{name}").blob for name in files}
        ref = v.ref
    monkeypatch.setenv("DLFS_S3_ENDPOINT", proxy.endpoint)
    m = mounter(ref, tmp_path / "mnt", "--cache-dir", str(tmp_path / "cache"))
    for cause, kind in CAUSES.items():
        name = f"{cause}.bin"
        if kind == "down":
            proxy.stop()
        else:
            proxy.fail(kind, times=100_000, match=blobs[name])
        for _ in range(3):  # read again and again: still one line
            with pytest.raises(OSError) as exc:
                (m.path / "dir" / name).read_bytes()
            assert exc.value.errno == errno.EIO, cause
    log = mountregistry.log_path(Home.at(home), m.path).read_text()
    for cause, why in CAUSES_LOGGED.items():
        name, blob = f"{cause}.bin", blobs[f"{cause}.bin"]
        lines = [line for line in log.splitlines() if blob in line and " ERROR " in line]
        # One line per serving process that met the blob (each worker logs its own).
        pids = [line.split()[2] for line in lines]
        assert lines and len(pids) == len(set(pids)), (cause, log)
        assert f"/dir/{name}" in lines[0] and "is unreadable" in lines[0], lines[0]
        assert re.search(why, lines[0], re.IGNORECASE), (cause, lines[0])


CAUSES = {"corrupt": "flip", "cut": "truncate", "failing": "500", "down": "down"}
"""Each S3 failure that ends in EIO, and how the proxy makes it."""

CAUSES_LOGGED = {
    "corrupt": r"hash|checksum|corrupt|damaged",
    "cut": r"short|cut|incomplete|length|bytes",
    "failing": r"500|server error|InternalError",
    "down": r"connect|refused|unreachable|down",
}
"""What the log line says of each cause."""
