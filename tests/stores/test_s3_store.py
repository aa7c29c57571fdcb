"""The S3 blob store against a real S3 server: round trips, multipart, dedup, the block
cache, the CLI, and an endpoint that is down."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from dlfs import Catalog
from dlfs.errors import InvalidInput
from dlfs.home import Home
from dlfs.stores.blockcache import HEADER_SIZE, BlockCache, parse_size
from dlfs.stores.remote import StoreConfig, open_store
from dlfs.stores.s3 import S3Store
from tests import s3server
from tests.conftest import SAMPLE, Cli, catalog_dump
from tests.s3proxy import FaultProxy

BLOCK = 64 * 1024


def test_round_trip(s3: Any, catalog: Catalog, sample: Path) -> None:
    bucket = s3.bucket()
    url = f"s3://{bucket}/data/cats"
    catalog.create_dataset("cats", storage=url)
    big = os.urandom(3 * BLOCK + 17)
    catalog.add("cats", [sample])
    catalog.add_bytes("cats", "big.bin", big)
    catalog.add_bytes("cats", "empty", b"")
    v = catalog.publish("cats")
    keys = s3.keys(bucket)
    blobs = {f.blob for f in v.files()}
    assert {f"data/cats/blobs/{b}" for b in blobs} <= set(keys)
    # one manifest, for the one blob larger than a block; nothing else in the bucket
    assert [k for k in keys if k.endswith(".blocks")] == [
        f"data/cats/blobs/{v.item('big.bin').blob}.blocks"
    ]
    assert len(keys) == len(blobs) + 1
    assert not list((catalog.home.blobs).glob("??/*")), "nothing stored locally"
    for path, data in {**SAMPLE, "big.bin": big, "empty": b""}.items():
        assert v.read_bytes(path) == data
    store = catalog.store(url)
    assert isinstance(store, S3Store)
    blob = v.item("big.bin").blob
    for offset, size in [
        (0, 1),
        (BLOCK - 3, 10),
        (BLOCK, BLOCK),
        (10, 3 * BLOCK),
        (len(big) - 5, 99),
    ]:
        assert store.read(blob, offset, size) == big[offset : offset + size]
    assert store.read(blob, len(big), 10) == b""
    assert store.has(blob) and store.verify(blob)
    assert not store.has("0" * 32)


def test_multipart_upload(
    s3: Any, catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DLFS_S3_MULTIPART_THRESHOLD", "5M")
    monkeypatch.setenv("DLFS_S3_BLOCK_SIZE", "4M")
    bucket = s3.bucket()
    catalog.create_dataset("big", storage=f"s3://{bucket}/p")
    data = os.urandom(11 * 1024 * 1024 + 5)
    (tmp_path / "huge.bin").write_bytes(data)
    catalog.add("big", [tmp_path / "huge.bin"])
    v = catalog.publish("big")
    blob = v.item("huge.bin").blob
    head = s3.client().head_object(Bucket=bucket, Key=f"p/blobs/{blob}")
    assert head["ETag"].strip('"').endswith("-3"), head["ETag"]  # 3 parts of 5 MiB
    assert head["ContentLength"] == len(data)
    assert v.read_bytes("huge.bin") == data


def test_no_second_upload_of_the_same_bytes(
    s3: Any, tmp_path: Path, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DLFS_S3_ENDPOINT", proxy.endpoint)
    bucket = s3.bucket()
    url = f"s3://{bucket}/shared"
    one = Catalog(tmp_path / "one")
    two = Catalog(tmp_path / "two")
    one.create_dataset("a", storage=url)
    two.create_dataset("b", storage=url)
    one.add_bytes("a", "x.bin", b"same bytes" * 1000)
    one.add_bytes("a", "y.bin", b"same bytes" * 1000)  # same blob in one catalog
    blob = one.item("a@draft", "x.bin").blob
    key = f"shared/blobs/{blob}"
    first = s3.client().head_object(Bucket=bucket, Key=key)["LastModified"]
    time.sleep(1.1)  # S3 times have a resolution of one second
    two.add_bytes("b", "z.bin", b"same bytes" * 1000)  # and in another catalog
    assert proxy.count("PUT", key) == 1
    assert s3.client().head_object(Bucket=bucket, Key=key)["LastModified"] == first
    assert two.draft("b").read_bytes("z.bin") == b"same bytes" * 1000


def test_block_cache_evicts_least_recently_used(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    limit = 10 * (4096 + HEADER_SIZE)
    cache = BlockCache(root, limit)
    for i in range(8):
        cache.put(f"{i:032x}.0.1000", bytes([i]) * 4096)
    for i in range(8):
        os.utime(cache.path(f"{i:032x}.0.1000"), (1000 + i, 1000 + i))
    # another process (another BlockCache on the folder) uses entry 0: it is recent now
    other = BlockCache(root, limit)
    assert other.get(f"{0:032x}.0.1000", 4096) == bytes([0]) * 4096
    for i in range(8, 12):
        cache.put(f"{i:032x}.0.1000", bytes([i]) * 4096)
        assert cache.usage() <= limit
    present = {i for i in range(12) if cache.path(f"{i:032x}.0.1000").exists()}
    assert present == {0, *range(3, 12)}  # 1 and 2, the least recently used, went
    # a damaged entry is dropped when first used, never returned
    victim = cache.path(f"{11:032x}.0.1000")
    raw = bytearray(victim.read_bytes())
    raw[-1] ^= 0xFF
    victim.write_bytes(bytes(raw))
    assert BlockCache(root, limit).get(f"{11:032x}.0.1000", 4096) is None
    assert not victim.exists()


def test_blocks_written_behind_reach_the_disk_by_flush(tmp_path: Path) -> None:
    cache = BlockCache(tmp_path / "cache", 1 << 30)
    blocks = {f"{i:032x}.0.1000": os.urandom(4096) for i in range(50)}
    for key, data in blocks.items():
        cache.put_soon(key, data)
    cache.flush()
    other = BlockCache(tmp_path / "cache", 1 << 30)  # another process, or a remount
    assert {k: other.get(k, 4096) for k in blocks} == blocks


def test_reads_fill_the_cache_within_its_size(s3: Any, catalog: Catalog, tmp_path: Path) -> None:
    bucket = s3.bucket()
    url = f"s3://{bucket}/p"
    catalog.create_dataset("d", storage=url)
    files = {f"f{i}.bin": os.urandom(BLOCK) for i in range(12)}
    for name, data in files.items():
        catalog.add_bytes("d", name, data)
    v = catalog.publish("d")
    limit = 6 * BLOCK
    config = StoreConfig.from_env(cache_dir=tmp_path / "c", cache_size=limit, block_size=BLOCK)
    store = open_store(url, Home.at(catalog.home.root), config)
    for name, data in files.items():
        assert store.read(v.item(name).blob, 0, BLOCK) == data
    store.close()  # what an unmount does: blocks still queued for the disk get there
    cache = BlockCache(tmp_path / "c", limit)
    assert 0 < cache.usage() <= limit
    # the most recent blocks are on disk
    last = v.item("f11.bin").blob
    assert (tmp_path / "c" / last[:2] / f"{last}.0.{BLOCK:x}").exists()


def test_parse_size() -> None:
    assert parse_size("10G") == 10 << 30
    assert parse_size("64k") == 64 << 10
    assert parse_size("1.5M") == 3 << 19
    assert parse_size("123") == 123
    with pytest.raises(InvalidInput):
        parse_size("ten")


def test_cli_with_s3_storage(s3: Any, cli: Cli, sample: Path, home: Path) -> None:
    bucket = s3.bucket()
    cli("dataset", "create", "cats", "--storage", f"s3://{bucket}/cats")
    cli("add", "cats", str(sample))
    cli("publish", "cats")
    assert cli.bytes("cat", "cats", "train/b.jpg") == SAMPLE["train/b.jpg"]
    info = cli("dataset", "show", "cats", "--json").json()
    assert info["storage"] == f"s3://{bucket}/cats"  # type: ignore[index]
    # credentials are never stored
    raw = (home / "catalog.db").read_bytes()
    for secret in (s3server.SECRET_KEY, s3server.ACCESS_KEY):
        assert secret.encode() not in raw
        assert secret not in repr(catalog_dump(home))


def test_endpoint_down_is_one_clear_error_and_changes_nothing(
    s3: Any, cli: Cli, sample: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = s3.bucket()
    cli("dataset", "create", "cats", "--storage", f"s3://{bucket}/cats")
    cli("add", "cats", str(sample / "cat.jpg"))
    before = catalog_dump(home)
    monkeypatch.setenv("DLFS_S3_ENDPOINT", f"http://127.0.0.1:{s3server.free_port()}")
    monkeypatch.setenv("DLFS_S3_TIMEOUT", "1.5")
    monkeypatch.setenv("DLFS_S3_ATTEMPT_TIMEOUT", "0.5")
    start = time.monotonic()
    res = cli("add", "cats", str(sample / "train"), ok=False)
    assert time.monotonic() - start < 10
    assert res.code == 1
    assert res.err.startswith("dlfs: error: ") and res.err.count("\n") == 1, res.err
    assert "Traceback" not in res.err
    assert catalog_dump(home) == before
    # reading is the same: one line, exit 1 (published content, uncached)
    res = cli("cat", "cats@draft", "cat.jpg", ok=False)
    assert res.code == 1 and res.err.startswith("dlfs: error: ")
    assert catalog_dump(home) == before


@pytest.mark.parametrize(
    "storage", ["s3://", "s3://Bad_Bucket/x", "ftp://host/x", "s3://b/../x", "linked:ftp://x"]
)
def test_bad_storage_urls_change_nothing(cli: Cli, home: Path, storage: str) -> None:
    cli("init")
    before = catalog_dump(home)
    res = cli("dataset", "create", "x", "--storage", storage, ok=False)
    assert res.code == 1 and res.err.startswith("dlfs: error: ")
    assert catalog_dump(home) == before


def _blob_gets(proxy: FaultProxy, blob: str) -> int:
    with proxy._lock:
        return sum(1 for m, p in proxy.requests if m == "GET" and p.endswith(f"/blobs/{blob}"))


def test_parallel_readers_fetch_each_block_once(
    s3: Any, catalog: Catalog, proxy: FaultProxy, tmp_path: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from dlfs.stores.registry import StoreRegistry

    bucket = s3.bucket()
    url = f"s3://{bucket}/p"
    catalog.create_dataset("d", storage=url)
    data = os.urandom(6 * BLOCK + 1)
    catalog.add_bytes("d", "f.bin", data)
    blob = catalog.publish("d").item("f.bin").blob
    config = StoreConfig.from_env(
        endpoint_url=proxy.endpoint, cache_dir=tmp_path / "c", readahead=0, block_size=BLOCK
    )
    factory = StoreRegistry(Home.at(catalog.home.root), config)
    store = factory(url)
    assert factory(url) is store and factory("local") is factory("local")
    chunk = 8192
    offsets = list(range(0, len(data), chunk)) * 2

    def one(offset: int) -> bool:
        return store.read(blob, offset, chunk, blob_size=len(data)) == data[offset : offset + chunk]

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(one, offsets))
    assert _blob_gets(proxy, blob) == 7  # one GET per block, however many readers


def published_file(s3: Any, catalog: Catalog, data: bytes) -> tuple[str, str]:
    """``(store url, blob id)`` of ``data`` published as ``f.bin`` in a new S3 dataset."""
    url = f"s3://{s3.bucket()}/p"
    catalog.create_dataset("d", storage=url)
    catalog.add_bytes("d", "f.bin", data)
    return url, catalog.publish("d").item("f.bin").blob


def proxied(proxy: FaultProxy, tmp_path: Path, readahead: int) -> StoreConfig:
    """Store settings that go through the fault proxy, with small blocks."""
    return StoreConfig.from_env(
        endpoint_url=proxy.endpoint, cache_dir=tmp_path / "c", readahead=readahead, block_size=BLOCK
    )


def test_sequential_reads_are_read_ahead(
    s3: Any, catalog: Catalog, proxy: FaultProxy, tmp_path: Path
) -> None:
    data = os.urandom(8 * BLOCK)
    url, blob = published_file(s3, catalog, data)
    store = open_store(url, Home.at(catalog.home.root), proxied(proxy, tmp_path, 4 * BLOCK))
    assert store.read(blob, 0, 4096) == data[:4096]
    assert store.read(blob, 4096, 4096) == data[4096:8192]
    deadline = time.monotonic() + 5
    while _blob_gets(proxy, blob) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _blob_gets(proxy, blob) >= 3, "the next blocks were fetched before being read"
    # a random reader triggers no read-ahead
    random_blob_reads = _blob_gets(proxy, blob)
    assert store.read(blob, 7 * BLOCK + 5, 10) == data[7 * BLOCK + 5 : 7 * BLOCK + 15]
    time.sleep(0.2)
    assert _blob_gets(proxy, blob) <= random_blob_reads + 1


def test_read_ahead_fetches_runs_of_blocks(
    s3: Any, catalog: Catalog, proxy: FaultProxy, tmp_path: Path
) -> None:
    data = os.urandom(16 * BLOCK)
    url, blob = published_file(s3, catalog, data)
    store = open_store(url, Home.at(catalog.home.root), proxied(proxy, tmp_path, 8 * BLOCK))
    got = b"".join(store.read(blob, off, 16384) for off in range(0, len(data), 16384))
    assert got == data
    assert _blob_gets(proxy, blob) < 12, "consecutive blocks come in fewer, larger GETs"
