"""The local store's verified reads (dlfs.stores.localread), without a kernel, and the
user paths that share them: ``dlfs cat``, ``Version.open``, ``read_bytes``, fsspec."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import dlfs
from dlfs import Catalog
from dlfs.errors import BlobMissing, Corrupt, Unavailable
from dlfs.fsspec import DlfsFileSystem
from dlfs.stores import localread
from dlfs.stores.local import LocalStore

BLOCK = 64 * 1024
SMALL = b"small blob\n" * 300
LARGE = os.urandom(5 * BLOCK + 123)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "blobs", block_size=BLOCK)


def put(store: LocalStore, data: bytes) -> str:
    with store.batch() as batch:
        blob, _size = batch.add_bytes(data)
        batch.commit()
    return blob


def damage(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 1
    path.write_bytes(bytes(data))


def in_thread(fn, *args):  # type: ignore[no-untyped-def]
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result()


# -- the reader ---------------------------------------------------------------------------


def test_small_blob_is_verified_whole_and_served_inline(store: LocalStore) -> None:
    blob = put(store, SMALL)
    size = len(SMALL)
    assert bytes(store.read_nowait(blob, 0, 5, size) or b"") == SMALL[:5]  # fast disk: inline
    assert bytes(store.read(blob, 10, 20, size)) == SMALL[10:30]
    assert bytes(store.read(blob, size - 3, 100, size)) == SMALL[-3:]  # clipped at the end
    assert store.read(blob, size, 10, size) == b""
    assert bytes(store.read(blob, 0, size)) == SMALL  # size from the file
    assert b"".join(store.iter_bytes(blob)) == SMALL
    assert store.verify(blob) and store.check(blob) is None


def test_large_blob_is_verified_block_by_block(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(localread, "INLINE_COLD_MAX", -1.0)  # a slow disk: hash in threads
    blob = put(store, LARGE)
    size = len(LARGE)
    assert store.manifest_path(blob).exists()
    assert store.read_nowait(blob, 0, 10, size) is None  # hashing: a worker thread
    assert bytes(in_thread(store.read, blob, 0, 10, size)) == LARGE[:10]
    span = (BLOCK - 5, 2 * BLOCK + 5)  # three blocks in one read
    assert bytes(store.read(blob, span[0], span[1] - span[0], size)) == LARGE[span[0] : span[1]]
    assert bytes(store.read_nowait(blob, 20, 10, size) or b"") == LARGE[20:30]  # verified
    assert b"".join(store.iter_bytes(blob)) == LARGE
    assert store.check(blob) is None


def test_a_corrupt_block_fails_only_its_reads(store: LocalStore) -> None:
    blob = put(store, LARGE)
    size = len(LARGE)
    damage(store.path(blob), 2 * BLOCK + 7)
    assert bytes(store.read(blob, 0, 100, size)) == LARGE[:100]
    assert bytes(store.read(blob, 4 * BLOCK, 100, size)) == LARGE[4 * BLOCK : 4 * BLOCK + 100]
    for offset in (2 * BLOCK, 3 * BLOCK - 10, 2 * BLOCK - 5):
        with pytest.raises(Corrupt, match="block 2"):
            store.read(blob, offset, 10, size)
    chunks = []
    with pytest.raises(Corrupt):
        for chunk in store.iter_bytes(blob):
            chunks.append(chunk)
    assert b"".join(chunks) == LARGE[: 2 * BLOCK]  # the good blocks, nothing after
    assert not store.verify(blob)
    assert store.check(blob) == f"blob {blob} is missing or corrupt"


def test_a_corrupt_small_blob_yields_nothing(store: LocalStore) -> None:
    blob = put(store, SMALL)
    damage(store.path(blob), len(SMALL) - 1)
    with pytest.raises(Corrupt, match="do not match its hash"):
        store.read(blob, 0, 10, len(SMALL))
    with pytest.raises(Corrupt):
        next(iter(store.iter_bytes(blob)))


def test_missing_blob_is_unavailable(store: LocalStore) -> None:
    blob = put(store, SMALL)
    store.path(blob).unlink()
    with pytest.raises(Unavailable, match="missing") as exc:
        store.read(blob, 0, 10, len(SMALL))
    assert isinstance(exc.value, BlobMissing)
    with pytest.raises(Unavailable):
        store.read_nowait(blob, 0, 10, len(SMALL))
    with pytest.raises(Unavailable):
        next(iter(store.iter_bytes(blob)))
    assert not store.verify(blob)


@pytest.mark.parametrize("how", ["garbage", "missing-hash", "other-size"])
def test_a_damaged_manifest_makes_the_blob_corrupt(store: LocalStore, how: str) -> None:
    blob = put(store, LARGE)
    path = store.manifest_path(blob)
    doc = json.loads(path.read_bytes())
    if how == "garbage":
        path.write_bytes(path.read_bytes()[:-3])
    elif how == "missing-hash":
        doc["hashes"].pop()
        path.write_text(json.dumps(doc))
    else:
        doc["size"] -= 1
        path.write_text(json.dumps(doc))
    with pytest.raises(Corrupt, match="manifest"):
        store.read(blob, 0, 10, len(LARGE))
    assert store.check(blob) == f"the block manifest of blob {blob} is damaged"


def test_a_blob_shorter_than_the_catalog_says_is_corrupt(store: LocalStore) -> None:
    blob = put(store, SMALL)
    with pytest.raises(Corrupt, match=r"shorter|catalog says"):
        store.read(blob, 0, len(SMALL) + 10, len(SMALL) + 10)


def test_a_closed_reader_reads_again(store: LocalStore) -> None:
    blob = put(store, LARGE)
    assert bytes(store.read(blob, BLOCK, 10, len(LARGE))) == LARGE[BLOCK : BLOCK + 10]
    store.close()
    assert not store.reader()._fds and not store.reader()._large
    assert bytes(store.read(blob, BLOCK, 10, len(LARGE))) == LARGE[BLOCK : BLOCK + 10]


# -- every user path over a corrupt local blob ---------------------------------------------

BIG_BLOCK = 4 << 20  # the CLI runs in its own process, with the default block size
CASES = {
    "small": (SMALL, len(SMALL) // 2),
    "large": (os.urandom(2 * BIG_BLOCK + 1000), BIG_BLOCK + 10),  # bad byte in block 1
}


@pytest.fixture(params=sorted(CASES))
def corrupt(request: pytest.FixtureRequest, catalog: Catalog) -> tuple[str, bytes, int]:
    """A published file whose blob has one bad byte: ``(ref, good bytes, bad offset)``."""
    data, bad = CASES[request.param]
    catalog.create_dataset("d")
    catalog.add_bytes("d", "f.bin", data)
    version = catalog.publish("d")
    blob = version.item("f.bin").blob
    path = catalog.home.blobs / blob[:2] / blob
    path.chmod(0o600)
    damage(path, bad)
    if len(data) > BIG_BLOCK:
        assert path.with_name(f"{blob}.blocks").exists()
    return version.ref, data, bad


def good_prefix(out: bytes, data: bytes, bad: int) -> bool:
    """True when ``out`` holds only bytes of whole good blocks before the bad one."""
    return len(out) <= (bad // BIG_BLOCK) * BIG_BLOCK and out == data[: len(out)]


def test_cli_cat_prints_no_byte_of_a_bad_block(home: Path, corrupt: tuple[str, bytes, int]):
    ref, data, bad = corrupt
    env = {**os.environ, "DLFS_HOME": str(home)}
    proc = subprocess.run(
        [sys.executable, "-m", "dlfs", "cat", ref, "f.bin"], capture_output=True, env=env
    )
    assert proc.returncode == 1 and b"corrupt" in proc.stderr
    assert good_prefix(proc.stdout, data, bad)


def test_version_open_never_returns_a_bad_byte(
    catalog: Catalog, corrupt: tuple[str, bytes, int]
) -> None:
    ref, data, bad = corrupt
    version = catalog.version(ref)
    if len(data) <= BIG_BLOCK:
        with pytest.raises(dlfs.Corrupt):
            version.open("f.bin")
        return
    with version.open("f.bin", buffer_size=4096) as f:
        assert f.read(100) == data[:100]
        f.seek(2 * BIG_BLOCK)
        assert f.read() == data[2 * BIG_BLOCK :]
        f.seek(bad - 5)
        with pytest.raises(dlfs.Corrupt):
            f.read(10)


def test_read_bytes_fails_on_a_bad_byte(catalog: Catalog, corrupt: tuple[str, bytes, int]):
    ref, _data, _bad = corrupt
    with pytest.raises(dlfs.Corrupt):
        catalog.version(ref).read_bytes("f.bin")


def test_fsspec_cat_file_fails_on_a_bad_byte(home: Path, corrupt: tuple[str, bytes, int]):
    ref, data, bad = corrupt
    fs = DlfsFileSystem(home=home)
    with pytest.raises(OSError) as exc:  # found on open (small) or by a read (a block)
        fs.cat_file(f"{ref}/f.bin")
    assert exc.value.errno == errno.EIO and isinstance(exc.value.__cause__, dlfs.Corrupt)
    if len(data) <= BIG_BLOCK:
        return
    assert fs.cat_file(f"{ref}/f.bin", 10, 20) == data[10:20]
    with pytest.raises(OSError) as exc:
        fs.cat_file(f"{ref}/f.bin", bad - 1, bad + 1)
    assert exc.value.errno == errno.EIO
