"""Uploads on the event loop (dlfs.stores.s3send via S3Store.upload_many) against the
real S3 server, through the fault proxy: many PUTs with Content-MD5, no HEAD per blob,
parallel multipart for a large blob, retries, and a file that is not its blob."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from dlfs import Catalog
from dlfs.errors import Corrupt
from dlfs.home import Home
from dlfs.objects import blob_id
from dlfs.stores.manifest import hash_file_blocks
from dlfs.stores.remote import StoreConfig, open_store
from dlfs.stores.s3 import S3Store
from dlfs.stores.s3send import upload_many
from tests.s3proxy import FaultProxy

BLOCK = 64 * 1024
MiB = 1 << 20


def _store(proxy: FaultProxy, tmp_path: Path, url: str, catalog: Catalog) -> S3Store:
    config = StoreConfig.from_env(
        endpoint_url=proxy.endpoint,
        cache_dir=tmp_path / "cache",
        block_size=BLOCK,
        multipart_threshold=5 * MiB,
    )
    store = open_store(url, Home.at(catalog.home.root), config)
    assert isinstance(store, S3Store)
    return store


def _files(tmp_path: Path, sizes: list[int]) -> list[tuple[str, Path, int]]:
    out = []
    for n, size in enumerate(sizes):
        data = os.urandom(size)
        path = tmp_path / f"f{n}"
        path.write_bytes(data)
        blob = blob_id(data) if size <= BLOCK else hash_file_blocks(path, BLOCK)[0]
        out.append((blob, path, size))
    return out


def test_many_small_and_one_multipart_blob(
    s3: Any, proxy: FaultProxy, tmp_path: Path, catalog: Catalog
) -> None:
    bucket = s3.bucket()
    store = _store(proxy, tmp_path, f"s3://{bucket}/r", catalog)
    files = _files(tmp_path, [0, 1, 60, BLOCK, *range(100, 140), 11 * MiB + 5])
    proxy.fail("500", times=3, method="PUT")  # retried, never a wrong object
    seen: list[int] = []
    sent = upload_many(store, files, seen.append, window=16)
    assert sent == sum(size for _b, _p, size in files) and sorted(seen) == sorted(
        size for _b, _p, size in files
    )
    assert proxy.count("HEAD") == 0, "nobody asked whether a blob was there"
    assert proxy.count("POST", "uploads") == 1, "the large blob went up in parts"
    assert proxy.count("PUT", "partNumber=3") >= 1
    assert store.present_blobs() == {b for b, _p, _s in files}
    keys = s3.keys(bucket)
    big = files[-1]
    assert f"r/blobs/{big[0]}.blocks" in keys
    for blob, path, size in files:
        assert keys[f"r/blobs/{blob}"]["Size"] == size
        assert store.read(blob, 0, size) == path.read_bytes()
    assert store.verify(big[0])


def test_a_file_that_is_not_its_blob_is_refused(
    s3: Any, proxy: FaultProxy, tmp_path: Path, catalog: Catalog
) -> None:
    bucket = s3.bucket()
    store = _store(proxy, tmp_path, f"s3://{bucket}/r", catalog)
    (blob, path, size), *_ = _files(tmp_path, [100])
    path.write_bytes(b"x" * size)  # changed behind the catalog's back
    with pytest.raises(Corrupt, match="does not hold its bytes"):
        upload_many(store, [(blob, path, size)])
    assert not s3.keys(bucket)
