"""Real FUSE mounts for tests: catalogs built from generated trees, mounted through the
real ``dlfs mount`` command and always unmounted afterwards, even when a test fails
(see :mod:`tests.fsutil`; the ``mounter``, ``source`` and ``published``
fixtures are in ``tests/conftest.py``). Every
test here is marked ``fuse`` and skipped without /dev/fuse.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.checklogs import expected_patterns
from tests.fsutil import Mounter, Shared, build_catalog, generate_tree


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.fuse)


@pytest.fixture(scope="module", params=["local", "s3"])
def shared(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Shared]:
    """One published version mounted once for a whole module (read-only tests), its
    blobs in the catalog's local store, then in S3 (a moto server on loopback): every
    test that reads through it runs over both stores."""
    base = tmp_path_factory.mktemp(f"shared-{request.param}")
    home = base / "home"
    source = generate_tree(base / "src")
    with pytest.MonkeyPatch.context() as env:
        storage = "local"
        if request.param == "s3":
            server = request.getfixturevalue("s3_server")
            env.setenv("DLFS_S3_ENDPOINT", server.endpoint)
            env.setenv("DLFS_CACHE_DIR", str(base / "cache"))
            env.setenv("DLFS_S3_BLOCK_SIZE", "64K")
            storage = f"s3://{server.bucket()}/data"
        ref = build_catalog(home, source, storage=storage)
        m = Mounter(home, expect_log=expected_patterns(request.node))
        try:
            yield Shared(home, source, ref, m(ref, base / "mnt"))
        finally:
            m.cleanup()
