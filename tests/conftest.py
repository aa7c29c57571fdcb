"""Shared fixtures of every tier: a catalog in a temp dir, the CLI runner, sample source
trees, the mount fixture, S3 on loopback; and the log check (:mod:`checklogs`).

The helpers live in :mod:`tests.helpers` and :mod:`tests.fsutil`; the names tests
import from here are re-exported from there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dlfs import Catalog
from tests.checklogs import (  # the log check's hooks: a conftest's hooks are plugins
    expected_patterns,
    pytest_runtest_call,  # noqa: F401
    pytest_runtest_setup,  # noqa: F401
    pytest_runtest_teardown,  # noqa: F401
)
from tests.fsutil import FUSE_OK, Mounter, build_catalog, generate_tree
from tests.helpers import SAMPLE, Cli, Result, blob_files, catalog_dump, make_tree
from tests.s3proxy import FaultProxy

__all__ = ["SAMPLE", "Cli", "Result", "blob_files", "catalog_dump", "make_tree"]

# Every mount of the suite is served by two processes unless DLFS_WORKERS says
# otherwise, so the rules of several workers (docs/architecture.md) are checked by
# every mount test whatever this machine's default (one worker per two cores).
os.environ.setdefault("DLFS_WORKERS", "2")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty catalog home (created on first use)."""
    return tmp_path / "home"


@pytest.fixture
def catalog(home: Path) -> Iterator[Catalog]:
    """A catalog in a temp dir."""
    cat = Catalog(home)
    try:
        yield cat
    finally:
        cat.close()


@pytest.fixture
def cli(home: Path) -> Cli:
    """The ``dlfs`` command bound to the temp catalog."""
    return Cli(home)


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """A small source folder with nested folders and one duplicate file."""
    return make_tree(tmp_path / "src", SAMPLE)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A generated source tree with the shapes that matter (:func:`generate_tree`)."""
    return generate_tree(tmp_path / "src")


@pytest.fixture
def published(home: Path, source: Path) -> str:
    """The exact ref of a published version of ``source`` in the test catalog."""
    return build_catalog(home, source)


# -- real FUSE mounts (tests/fsutil.py); the tests marked ``fuse`` skip without one -----


@pytest.hookimpl(trylast=True)  # after tests/fs/conftest.py marked its tests
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("fuse") is not None and not FUSE_OK:
            item.add_marker(pytest.mark.skip(reason="needs /dev/fuse and fusermount3"))


@pytest.fixture
def mounter(home: Path, request: pytest.FixtureRequest) -> Iterator[Mounter]:
    """Mount through the real CLI; everything is unmounted afterwards, and the daemons'
    logs are checked (see :mod:`checklogs`)."""
    m = Mounter(home, expect_log=expected_patterns(request.node))
    try:
        yield m
    finally:
        m.cleanup()


# -- S3 on loopback (tests/s3server.py, tests/s3proxy.py) ------------------------------


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A moto S3 server on 127.0.0.1, once per session, with dummy credentials in the
    environment (no profile or config file of the machine is read)."""
    from tests import s3server

    logs = tmp_path_factory.mktemp("moto")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", s3server.ACCESS_KEY)
        mp.setenv("AWS_SECRET_ACCESS_KEY", s3server.SECRET_KEY)
        mp.setenv("AWS_DEFAULT_REGION", s3server.REGION)
        mp.setenv("AWS_CONFIG_FILE", str(logs / "no-aws-config"))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(logs / "no-aws-credentials"))
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            mp.delenv(name, raising=False)
        server = s3server.start(logs / "moto.log")
        try:
            yield server
        finally:
            s3server.stop(server)


@pytest.fixture
def s3(s3_server: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    """The S3 server, with dlfs pointed at it (also in ``dlfs`` subprocesses): a
    private block cache, small blocks (64 KiB) and short timeouts."""
    monkeypatch.setenv("DLFS_S3_ENDPOINT", s3_server.endpoint)  # type: ignore[attr-defined]
    monkeypatch.setenv("DLFS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DLFS_S3_BLOCK_SIZE", "64K")
    monkeypatch.setenv("DLFS_S3_TIMEOUT", "5")
    monkeypatch.setenv("DLFS_S3_ATTEMPT_TIMEOUT", "2")
    return s3_server


@pytest.fixture
def proxy(s3: object) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of the S3 server (:mod:`tests.s3proxy`); dlfs
    talks to it only where a test points it there."""
    p = FaultProxy(s3.endpoint)  # type: ignore[attr-defined]
    try:
        yield p
    finally:
        p.stop()
