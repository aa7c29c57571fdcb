"""The one place where a storage URL becomes a blob store.

A :class:`StoreRegistry` belongs to a catalog home and gives the one store of each
storage URL a dataset names: ``local`` is the home's blob folder
(:class:`dlfs.stores.local.LocalStore`); ``s3://bucket/prefix`` and
``linked:s3://bucket/prefix`` come from :func:`dlfs.stores.remote.open_store`, with
their block cache and retry settings from a :class:`dlfs.stores.remote.StoreConfig`
(``DLFS_*`` variables, then the overrides given here). Remote stores are built on
first use, so boto3 is imported only by processes that need it. The catalog API, the
views and the daemon all get their stores here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from dlfs.errors import InvalidInput
from dlfs.home import Home
from dlfs.stores.base import BlobStore
from dlfs.stores.blockcache import parse_size
from dlfs.stores.local import LocalStore
from dlfs.stores.urls import is_linked, parse_s3_url

if TYPE_CHECKING:
    from dlfs.stores.linked import LinkedStore
    from dlfs.stores.remote import CatalogLookup, StoreConfig
    from dlfs.stores.s3 import S3Store

__all__ = ["StoreFactory", "StoreRegistry", "parse_size"]

StoreFactory = Callable[[str], BlobStore]
"""What views take to find stores: a ``url -> store`` callable (a registry is one)."""


class StoreRegistry:
    """The stores of one catalog home, one per storage URL, made on first use.

    ``config`` (or, when it is None, ``StoreConfig.from_env`` with ``cache_dir`` and
    ``cache_size`` as overrides) sets up remote stores. Thread-safe: the daemon's
    worker threads may ask at once; each URL still gets one store.
    """

    def __init__(
        self,
        home: Home,
        config: StoreConfig | None = None,
        cache_dir: str | None = None,
        cache_size: str | int | None = None,
        prefetch_memory: int | None = None,
    ) -> None:
        self.home = home
        self._config = config
        self._overrides = {
            "cache_dir": cache_dir,
            "cache_size": cache_size,
            "prefetch_memory": prefetch_memory,
        }
        self._lookup: CatalogLookup | None = None
        self._stores: dict[str, BlobStore] = {}
        self._lock = threading.Lock()

    def get(self, url: str = "local") -> BlobStore:
        """The store of ``url``; :class:`dlfs.errors.InvalidInput` for a URL no
        store serves."""
        store = self._stores.get(url)
        if store is not None:
            return store
        with self._lock:
            store = self._stores.get(url)
            if store is None:
                store = self._stores[url] = self._open(url)
            return store

    __call__ = get

    def s3(self, url: str) -> S3Store:
        """The S3 store of ``s3://bucket/prefix`` (a push/pull remote)."""
        from dlfs.stores.s3 import S3Store

        store = self.get(str(parse_s3_url(url)))
        assert isinstance(store, S3Store)
        return store

    def linked(self, url: str) -> LinkedStore:
        """The store of a linked bucket, ``linked:s3://bucket/prefix``."""
        from dlfs.stores.linked import LinkedStore

        if not is_linked(url):
            raise InvalidInput(f"not a linked storage URL: {url!r}")
        store = self.get(url)
        assert isinstance(store, LinkedStore)
        return store

    def _open(self, url: str) -> BlobStore:
        if url == "local":
            return LocalStore(self.home.blobs)
        from dlfs.stores.remote import CatalogLookup, StoreConfig, open_store  # boto3

        if self._config is None:
            self._config = StoreConfig.from_env(**self._overrides)
        if self._lookup is None:
            self._lookup = CatalogLookup(self.home.catalog_path)
        return open_store(url, self.home, self._config, self._lookup)

    def close(self) -> None:
        """Close every store made so far (remote ones finish their cache writes).
        The registry stays usable."""
        with self._lock:
            stores = list(self._stores.values())
        for store in stores:
            store.close()
