"""Opening remote stores: the one entry point for ``s3://`` and ``linked:s3://`` URLs.

:func:`open_store` builds the whole read/write stack for a storage URL::

    S3Store / LinkedStore          BlobStore API: has, batch, read, iter_bytes, ...
      CachedReader                 memory LRU + disk BlockCache, parallel, read-ahead
        S3Blocks / LinkedBlocks    fetch one block and check it, under RetryPolicy
          S3Client                 boto3, errors mapped to DlfsError

Stores are thread-safe; :class:`dlfs.stores.registry.StoreRegistry` makes one per
URL for the catalog, the views and the daemon. Settings come from
:class:`StoreConfig` (``StoreConfig.from_env()`` reads the ``DLFS_*`` variables listed
there). Blob sizes and linked objects are looked
up in the catalog through :class:`CatalogLookup`, which opens one read-only
connection per thread, so reads may come from any thread.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from dlfs.catalog import CatalogDB
from dlfs.errors import InvalidInput
from dlfs.home import Home
from dlfs.stores.base import BlobStore
from dlfs.stores.blockcache import (
    DEFAULT_CACHE_SIZE,
    BlockCache,
    default_cache_dir,
    parse_size,
)
from dlfs.stores.cache import DEFAULT_READAHEAD, default_prefetch_memory
from dlfs.stores.linked import SCHEME, LinkedStore
from dlfs.stores.manifest import DEFAULT_BLOCK_SIZE
from dlfs.stores.retry import RetryPolicy
from dlfs.stores.s3 import DEFAULT_MULTIPART_THRESHOLD, S3Client, S3Store
from dlfs.stores.urls import ExternalObject


@dataclass(frozen=True)
class StoreConfig:
    """Settings of remote stores (environment variable in brackets).

    - ``endpoint_url`` [``DLFS_S3_ENDPOINT``]: an S3-compatible server; default AWS.
    - ``cache_dir`` [``DLFS_CACHE_DIR``]: the block cache folder (default
      ``~/.cache/dlfs/blocks``); ``cache_size`` [``DLFS_CACHE_SIZE``, e.g. ``10G``];
      ``cache=False`` [``DLFS_CACHE=off``] keeps blocks in memory only.
    - ``timeout`` [``DLFS_S3_TIMEOUT``, seconds, default 30]: an unreachable endpoint
      is ``Unavailable`` after this long; ``attempt_timeout``
      [``DLFS_S3_ATTEMPT_TIMEOUT``, default 10] bounds one request.
    - ``block_size`` [``DLFS_S3_BLOCK_SIZE``, default 4M]: the size of ranged reads
      and of hashed blocks; ``multipart_threshold`` [``DLFS_S3_MULTIPART_THRESHOLD``,
      default 8M]; ``readahead`` [``DLFS_S3_READAHEAD``, default 32M];
      ``workers`` [``DLFS_S3_WORKERS``, default 8] parallel fetches per store.
    - ``prefetch_memory`` [``DLFS_PREFETCH_MEMORY``, default 512M or an eighth of the
      RAM, the smaller]: the bytes of blocks a store holds in memory or has in flight
      (read-ahead of all open files, prefetch), ``dlfs mount --prefetch-memory``.
    """

    endpoint_url: str | None = None
    cache_dir: Path | None = None
    cache_size: int = DEFAULT_CACHE_SIZE
    cache: bool = True
    timeout: float = 30.0
    attempt_timeout: float = 10.0
    block_size: int = DEFAULT_BLOCK_SIZE
    multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD
    readahead: int = DEFAULT_READAHEAD
    workers: int = 8
    prefetch_memory: int = field(default_factory=default_prefetch_memory)

    @classmethod
    def from_env(cls, **overrides: object) -> StoreConfig:
        """The settings from ``DLFS_*`` variables, then ``overrides`` (None ignored)."""
        env = os.environ
        config = cls(
            endpoint_url=env.get("DLFS_S3_ENDPOINT") or None,
            cache_dir=Path(env["DLFS_CACHE_DIR"]) if env.get("DLFS_CACHE_DIR") else None,
            cache_size=parse_size(env.get("DLFS_CACHE_SIZE") or DEFAULT_CACHE_SIZE),
            cache=(env.get("DLFS_CACHE") or "on").lower() not in ("off", "0", "no", "false"),
            timeout=_float(env, "DLFS_S3_TIMEOUT", 30.0),
            attempt_timeout=_float(env, "DLFS_S3_ATTEMPT_TIMEOUT", 10.0),
            block_size=parse_size(env.get("DLFS_S3_BLOCK_SIZE") or DEFAULT_BLOCK_SIZE),
            multipart_threshold=parse_size(
                env.get("DLFS_S3_MULTIPART_THRESHOLD") or DEFAULT_MULTIPART_THRESHOLD
            ),
            readahead=parse_size(env.get("DLFS_S3_READAHEAD") or DEFAULT_READAHEAD),
            workers=int(_float(env, "DLFS_S3_WORKERS", 8)),
            prefetch_memory=parse_size(
                env.get("DLFS_PREFETCH_MEMORY") or default_prefetch_memory()
            ),
        )
        fields = {k: v for k, v in overrides.items() if v is not None}
        if "cache_size" in fields:
            fields["cache_size"] = parse_size(fields["cache_size"])  # type: ignore[arg-type]
        if "cache_dir" in fields:
            fields["cache_dir"] = Path(fields["cache_dir"])  # type: ignore[arg-type]
        return replace(config, **fields)  # type: ignore[arg-type]


def _float(env: os._Environ[str], name: str, default: float) -> float:
    text = env.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise InvalidInput(f"{name}={text!r} is not a number") from None
    if value <= 0:
        raise InvalidInput(f"{name} must be positive")
    return value


class CatalogLookup:
    """Blob sizes and linked objects from a catalog, one read-only connection per
    thread (the daemon reads from many threads)."""

    def __init__(self, catalog_path: Path) -> None:
        self.path = catalog_path
        self._local = threading.local()

    def _db(self) -> CatalogDB:
        db: CatalogDB | None = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = CatalogDB(self.path, readonly=True)
        return db

    def size(self, blob: str) -> int | None:
        """The recorded size of a blob, or None."""
        return self._db().blob_size(blob)

    def external(self, blob: str) -> ExternalObject | None:
        """The linked object a blob id stands for, or None."""
        row = self._db().external_get(blob)
        if row is None:
            return None
        return ExternalObject(
            row["bucket"], row["key"], row["etag"], row["version_id"], row["size"], row["mtime"]
        )


_clients: dict[tuple[str | None, float], S3Client] = {}
_clients_lock = threading.Lock()


def s3_client(config: StoreConfig) -> S3Client:
    """A shared client for the config's endpoint (boto3 clients are thread-safe)."""
    key = (config.endpoint_url, min(config.attempt_timeout, config.timeout))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = S3Client(
                config.endpoint_url, key[1], pool=max(10, 4 * config.workers)
            )
        return client


def open_store(
    url: str,
    home: Home,
    config: StoreConfig | None = None,
    lookup: CatalogLookup | None = None,
) -> BlobStore:
    """The store of a remote storage URL, with its cache and retry policy.

    ``s3://bucket/prefix`` gives an :class:`S3Store`, ``linked:s3://bucket/prefix``
    a :class:`LinkedStore`; anything else is :class:`InvalidInput`.
    """
    config = config or StoreConfig.from_env()
    lookup = lookup or CatalogLookup(home.catalog_path)
    retry = RetryPolicy(timeout=config.timeout, attempt_timeout=config.attempt_timeout)
    cache = None
    if config.cache:
        cache = BlockCache(config.cache_dir or default_cache_dir(), config.cache_size)
    if url.startswith("s3://"):
        return S3Store(
            url,
            s3_client(config),
            retry=retry,
            cache=cache,
            staging=home.blobs / ".staging",
            block_size=config.block_size,
            multipart_threshold=config.multipart_threshold,
            sizes=lookup.size,
            workers=config.workers,
            readahead=config.readahead,
            memory=config.prefetch_memory,
        )
    if url.startswith(SCHEME):
        return LinkedStore(
            url,
            s3_client(config),
            lookup.external,
            retry=retry,
            cache=cache,
            block_size=config.block_size,
            workers=config.workers,
            readahead=config.readahead,
            memory=config.prefetch_memory,
        )
    raise InvalidInput(
        f"unsupported storage {url!r}: use 'local', s3://bucket/prefix or a linked bucket"
    )
