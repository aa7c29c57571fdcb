"""Blobs in S3 (or MinIO, Ceph, any S3-compatible store), and the one home of boto3.

Layout under a storage URL ``s3://bucket/prefix``::

    prefix/blobs/<blob id>           the bytes, content-addressed (never rewritten)
    prefix/blobs/<blob id>.blocks    for blobs larger than one block: the xxh3-128 of
                                     each block (JSON, with a checksum of its own)
    prefix/datasets/...              versions pushed there (see dlfs.ops.push)

Writing (:class:`S3Batch`): ``dlfs add`` streams each file into a local staging file
while hashing it (the blob id and, for large blobs, the hash of every block);
:meth:`S3Batch.commit`, which runs right before the catalog commits, uploads what the
bucket does not already have (a HEAD per blob: no second upload of the same bytes),
several blobs at once and large ones in parallel multipart (boto3 ``TransferConfig``).
The block manifest goes up before the blob, so a blob that exists always has its
manifest. A failed upload fails the command before the catalog changes.

Reading: the stack the daemon uses is ``S3Store.read`` ->
:class:`dlfs.stores.cache.CachedReader` (memory and disk cache, parallel fetch,
read-ahead) -> :class:`dlfs.stores.s3blocks.S3Blocks` (cut a blob into blocks, check
each against the blob id or its manifest) under ``retry`` ->
:class:`S3Client` (boto3, no retries of its own, every botocore error mapped to a
:class:`dlfs.errors.DlfsError` where it enters).

Endpoint, region and credentials come from boto3's usual configuration (environment,
``~/.aws``) plus ``DLFS_S3_ENDPOINT`` / ``--endpoint-url``; nothing of it is stored in
the catalog.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import boto3
import botocore.exceptions as bex
import urllib3.exceptions
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from dlfs.errors import (
    BadBody,
    Corrupt,
    DlfsError,
    InvalidInput,
    NotFound,
    TemporaryFailure,
    Unavailable,
)
from dlfs.stores import s3send
from dlfs.stores.base import IngestBatch, StagingFolder, clear_dead_staging
from dlfs.stores.blockcache import BlockCache
from dlfs.stores.cache import (
    DEFAULT_READAHEAD,
    CachedReader,
    CachedStore,
    default_prefetch_memory,
)
from dlfs.stores.manifest import DEFAULT_BLOCK_SIZE, BlockHasher, Manifest, hash_file_blocks
from dlfs.stores.retry import RetryPolicy, retrying
from dlfs.stores.s3blocks import S3Blocks
from dlfs.stores.s3http import SignedGetter, fast_get_enabled, frozen, read_body
from dlfs.stores.urls import S3Url, parse_s3_url

__all__ = ["S3Client", "S3Store", "S3Url", "map_error", "parse_s3_url"]

log = logging.getLogger(__name__)

MiB = 1 << 20
MIN_PART = 5 * MiB
DEFAULT_MULTIPART_THRESHOLD = 8 * MiB
UPLOAD_WORKERS = 8

_TEMPORARY_CODES = {
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "OperationAborted",
}
_DIGEST_CODES = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "IncompleteBody"}
_TEMPORARY_BOTO = (
    bex.ConnectionError,  # EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError...
    bex.HTTPClientError,
    bex.ResponseStreamingError,
    bex.IncompleteReadError,
)


# -- the client ---------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectInfo:
    """One object as a listing or HEAD describes it."""

    key: str
    size: int
    etag: str
    version_id: str | None
    mtime: float


def _cause(exc: BaseException) -> BaseException:
    """The botocore error behind boto3's transfer wrappers."""
    seen = exc
    while isinstance(seen, S3UploadFailedError) and (seen.__cause__ or seen.__context__):
        seen = seen.__cause__ or seen.__context__
    return seen


def map_error(exc: BaseException, what: str) -> DlfsError:
    """The :class:`DlfsError` for a boto3/botocore (or socket) error during ``what``."""
    exc = _cause(exc)
    if isinstance(exc, DlfsError):
        return exc
    if isinstance(exc, bex.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        msg = err.get("Message") or code or f"HTTP {status}"
        if code in ("NoSuchKey", "NotFound", "404", "NoSuchVersion"):
            return NotFound(f"{what}: no such object")
        if code == "NoSuchBucket":
            return NotFound(f"{what}: no such bucket")
        if code in ("PreconditionFailed", "412") or status == 412:
            return Corrupt(f"{what}: the object changed (precondition failed)")
        if code in ("InvalidRange", "416") or status == 416:
            return Corrupt(f"{what}: the object is shorter than recorded")
        if code in _DIGEST_CODES:
            return BadBody(f"{what}: {msg}")
        if status >= 500 or status == 429 or code in _TEMPORARY_CODES:
            return TemporaryFailure(f"{what}: server error {status} {code}".rstrip())
        if status == 403 or code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return Unavailable(f"{what}: access denied ({code or status})")
        return Unavailable(f"{what}: {code or status}: {msg}")
    if isinstance(exc, bex.NoCredentialsError | bex.PartialCredentialsError):
        return Unavailable(
            f"{what}: no S3 credentials (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,"
            " AWS_PROFILE or ~/.aws/credentials)"
        )
    if isinstance(exc, bex.ChecksumError | bex.FlexibleChecksumError):
        return BadBody(f"{what}: the body fails its checksum")
    if isinstance(exc, bex.ParamValidationError):
        return InvalidInput(f"{what}: {exc}")
    if isinstance(exc, _TEMPORARY_BOTO):
        return TemporaryFailure(f"{what}: {_short(exc)}")
    if isinstance(exc, bex.BotoCoreError):
        return Unavailable(f"{what}: {_short(exc)}")
    if isinstance(
        exc, OSError | TimeoutError | http.client.HTTPException | urllib3.exceptions.HTTPError
    ):
        return TemporaryFailure(f"{what}: {_short(exc)}")
    return Unavailable(f"{what}: {type(exc).__name__}: {_short(exc)}")


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:300]


@contextlib.contextmanager
def _mapped(what: str) -> Iterator[None]:
    try:
        yield
    except DlfsError:
        raise
    except Exception as exc:
        raise map_error(exc, what) from exc


def _default_ca_bundle() -> str | None:
    """The CA bundle botocore verifies with (certifi's), so both paths trust alike."""
    try:
        from botocore.httpsession import get_cert_path

        return str(get_cert_path(True))
    except Exception:
        return None


def _region(session: boto3.session.Session) -> str:
    return (
        os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or session.region_name
        or "us-east-1"
    )


class S3Client:
    """A thread-safe boto3 S3 client that retries nothing and raises only DlfsError.

    ``attempt_timeout`` bounds connecting, each socket read, and reading a whole body.
    """

    def __init__(
        self,
        endpoint_url: str | None = None,
        attempt_timeout: float = 10.0,
        pool: int = 32,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.attempt_timeout = attempt_timeout
        session = boto3.session.Session()
        config = Config(
            connect_timeout=attempt_timeout,
            read_timeout=attempt_timeout,
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=pool,
            s3={"addressing_style": "path"} if endpoint_url else None,
        )
        with _mapped("configuring S3"):
            self._s3: Any = session.client(
                "s3", endpoint_url=endpoint_url, region_name=_region(session), config=config
            )
        self._fast = self._signed_getter(session) if fast_get_enabled() else None

    @property
    def signed_getter(self) -> SignedGetter | None:
        """The boto3-free GET path (:mod:`dlfs.stores.s3http`), None when it is off."""
        return self._fast

    def _signed_getter(self, session: boto3.session.Session) -> SignedGetter | None:
        """The boto3-free GET path (see :mod:`dlfs.stores.s3http`), or None when the
        session has no credentials yet (boto3 then says what is missing)."""
        creds = session.get_credentials()
        if creds is None:
            return None
        verify = os.environ.get("AWS_CA_BUNDLE")
        try:
            return SignedGetter(
                self._s3.meta.endpoint_url,
                self._s3.meta.region_name,
                frozen(creds),
                path_style=self.endpoint_url is not None,
                timeout=self.attempt_timeout,
                ca_bundle=verify or _default_ca_bundle(),
            )
        except ValueError:
            return None

    def head(self, bucket: str, key: str, version_id: str | None = None) -> ObjectInfo | None:
        """The object at ``key`` (that version of it), or None when there is none."""
        args = {"Bucket": bucket, "Key": key}
        if version_id:
            args["VersionId"] = version_id
        try:
            with _mapped(f"s3://{bucket}/{key}"):
                r = self._s3.head_object(**args)
        except NotFound:
            return None
        return ObjectInfo(
            key, int(r["ContentLength"]), r["ETag"], r.get("VersionId"), _ts(r["LastModified"])
        )

    def get(
        self,
        bucket: str,
        key: str,
        start: int | None = None,
        length: int | None = None,
        *,
        total: int | None = None,
        version_id: str | None = None,
        if_match: str | None = None,
    ) -> bytes:
        """The object's bytes, or ``length`` bytes from ``start``; checked for length.

        ``total``: the object's size as recorded (a different size is
        :class:`Corrupt`); ``version_id``/``if_match``: read that version / only if
        the ETag matches. A body that is cut short is :class:`TemporaryFailure`, one
        of the wrong length :class:`BadBody`; slower than ``attempt_timeout`` in all,
        :class:`TemporaryFailure`.
        """
        what = f"s3://{bucket}/{key}"
        args: dict[str, Any] = {"Bucket": bucket, "Key": key}
        ranged = start is not None and length is not None and length > 0
        if ranged:
            assert start is not None and length is not None
            args["Range"] = f"bytes={start}-{start + length - 1}"
        if version_id:
            args["VersionId"] = version_id
        if if_match:
            args["IfMatch"] = if_match
        deadline = time.monotonic() + self.attempt_timeout
        reply = None
        if self._fast is not None:
            reply = self._fast.get(
                bucket,
                key,
                byte_range=(start, start + length - 1) if start is not None and length else None,
                version_id=version_id,
                if_match=if_match,
                deadline=deadline,
            )
        if reply is not None:
            data = reply.body
            resp: dict[str, Any] = {
                "ETag": reply.headers.get("etag"),
                "ContentRange": reply.headers.get("content-range", ""),
            }
        else:
            with _mapped(what):
                resp = self._s3.get_object(**args)
                body = resp["Body"]
                try:
                    data = read_body(body, deadline, what)
                finally:
                    body.close()
        if if_match and resp.get("ETag") and resp["ETag"].strip('"') != if_match.strip('"'):
            raise Corrupt(f"{what}: the object changed (ETag {resp['ETag']})")
        if ranged:
            m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", str(resp.get("ContentRange", "")))
            if m is None:
                raise BadBody(f"{what}: the server ignored the byte range")
            if total is not None and int(m.group(3)) != total:
                raise Corrupt(f"{what}: the object is {m.group(3)} bytes, expected {total}")
            if int(m.group(1)) != start:
                raise BadBody(f"{what}: the server sent another range")
            if len(data) != length:
                raise BadBody(f"{what}: got {len(data)} of {length} bytes")
        elif total is not None and len(data) != total:
            raise BadBody(f"{what}: got {len(data)} bytes, expected {total}")
        return data

    def put_bytes(self, bucket: str, key: str, data: bytes) -> None:
        """Write a small object in one PUT."""
        with _mapped(f"writing s3://{bucket}/{key}"):
            self._s3.put_object(Bucket=bucket, Key=key, Body=data)

    def put_if(self, bucket: str, key: str, data: bytes, etag: str | None) -> bool:
        """Write a small object only if it is absent (``etag`` None: ``If-None-Match:
        *``) or still has ``etag`` (``If-Match``); False when the condition failed
        (another writer got there first: 412, 409, or 404 for a vanished object)."""
        args: dict[str, Any] = {"Bucket": bucket, "Key": key, "Body": data}
        if etag is None:
            args["IfNoneMatch"] = "*"
        else:
            args["IfMatch"] = etag
        try:
            self._s3.put_object(**args)
        except bex.ClientError as exc:
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if status in (409, 412) or code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            if etag is not None and (status == 404 or code in ("NoSuchKey", "NotFound")):
                return False
            raise map_error(exc, f"writing s3://{bucket}/{key}") from exc
        except Exception as exc:
            raise map_error(exc, f"writing s3://{bucket}/{key}") from exc
        return True

    def get_tagged(self, bucket: str, key: str) -> tuple[bytes, str] | None:
        """A small object's bytes and ETag (for a later :meth:`put_if`), or None."""
        what = f"s3://{bucket}/{key}"
        try:
            with _mapped(what):
                resp = self._s3.get_object(Bucket=bucket, Key=key)
                body = resp["Body"]
                try:
                    data = read_body(body, time.monotonic() + self.attempt_timeout, what)
                finally:
                    body.close()
        except NotFound:
            return None
        length = resp.get("ContentLength")
        if length is not None and int(length) != len(data):
            raise TemporaryFailure(f"{what}: the body was cut short")
        return data, str(resp["ETag"])

    def upload_file(self, bucket: str, key: str, path: Path, config: TransferConfig) -> None:
        """Upload a local file: multipart and parallel above the config's threshold."""
        with _mapped(f"uploading s3://{bucket}/{key}"):
            self._s3.upload_file(str(path), bucket, key, Config=config)

    def delete(self, bucket: str, key: str) -> None:
        """Delete an object (no error if it is missing)."""
        with _mapped(f"deleting s3://{bucket}/{key}"):
            self._s3.delete_object(Bucket=bucket, Key=key)

    def list(self, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under ``prefix``, in key order (version ids are None)."""
        with _mapped(f"listing s3://{bucket}/{prefix}"):
            pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for page in pages:
                for o in page.get("Contents", []):
                    yield ObjectInfo(
                        o["Key"], int(o["Size"]), o["ETag"], None, _ts(o["LastModified"])
                    )

    def list_latest_versions(self, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        """The current version of every object under ``prefix`` of a versioned bucket
        (deleted objects, whose latest version is a delete marker, are left out)."""
        with _mapped(f"listing versions of s3://{bucket}/{prefix}"):
            pages = self._s3.get_paginator("list_object_versions").paginate(
                Bucket=bucket, Prefix=prefix
            )
            for page in pages:
                for o in page.get("Versions", []):
                    if o.get("IsLatest"):
                        vid = o.get("VersionId")
                        yield ObjectInfo(
                            o["Key"],
                            int(o["Size"]),
                            o["ETag"],
                            None if vid in (None, "null") else vid,
                            _ts(o["LastModified"]),
                        )

    def versioned(self, bucket: str) -> bool:
        """True when the bucket keeps object versions."""
        with _mapped(f"reading the versioning of s3://{bucket}"):
            return bool(self._s3.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled")


def _ts(value: Any) -> float:
    return float(value.timestamp()) if hasattr(value, "timestamp") else float(value)


# -- the store ----------------------------------------------------------------------


class S3Store(CachedStore):
    """Content-addressed blobs under ``s3://bucket/prefix/blobs/``.

    ``sizes`` returns a blob's size from the catalog (saving a HEAD before the first
    read); ``staging`` is where :meth:`batch` stages files before upload.
    """

    def __init__(
        self,
        url: str,
        client: S3Client,
        *,
        retry: RetryPolicy | None = None,
        cache: BlockCache | None = None,
        staging: Path | None = None,
        block_size: int = DEFAULT_BLOCK_SIZE,
        multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
        sizes: Callable[[str], int | None] | None = None,
        workers: int = 8,
        readahead: int = DEFAULT_READAHEAD,
        memory: int | None = None,
    ) -> None:
        self.loc = parse_s3_url(url)
        self.url = str(self.loc)
        self.client = client
        self.retry = retry or RetryPolicy()
        self.block_size = block_size
        self.staging = staging or Path(tempfile.gettempdir()) / "dlfs-staging"
        self.sizes = sizes
        self.transfer = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=max(MIN_PART, multipart_threshold),
            max_concurrency=4,
        )
        self.blocks = S3Blocks(self, cache)
        self.reader = CachedReader(
            self.blocks,
            cache,
            workers=workers,
            readahead=readahead,
            memory=default_prefetch_memory() if memory is None else memory,
        )

    def __repr__(self) -> str:
        return f"S3Store({self.url!r})"

    def key(self, blob: str) -> str:
        """The object key of a blob."""
        return self.loc.key(f"blobs/{blob}")

    def manifest_key(self, blob: str) -> str:
        """The object key of a blob's block manifest."""
        return self.loc.key(f"blobs/{blob}.blocks")

    # -- BlobStore ----------------------------------------------------------------

    @retrying("looking for blob {0}")
    def has(self, blob: str) -> bool:
        return self.client.head(self.loc.bucket, self.key(blob)) is not None

    def batch(self) -> S3Batch:
        clear_dead_staging(self.staging)
        return S3Batch(self)

    @retrying("deleting blob {0}")
    def delete(self, blob: str) -> None:
        self.client.delete(self.loc.bucket, self.key(blob))
        self.client.delete(self.loc.bucket, self.manifest_key(blob))

    # -- writing ------------------------------------------------------------------

    def put_file(
        self,
        blob: str,
        path: Path,
        size: int,
        hashes: list[str] | None,
        verify: bool = False,
    ) -> bool:
        """Upload a local file as ``blob`` unless the bucket has it; True if uploaded.

        ``hashes``: the per-block hashes of a blob larger than one block (computed
        here when None). ``verify``: hash the file first and refuse it
        (:class:`Corrupt`) unless it is exactly ``blob``.
        """
        if self.has(blob):
            return False
        if verify or (hashes is None and size > self.block_size):
            whole, hashes = hash_file_blocks(path, self.block_size)
            if whole != blob or path.stat().st_size != size:
                raise Corrupt(f"blob {blob}: {path} does not hold its bytes")
        if size > self.block_size:
            assert hashes is not None
            manifest = Manifest(blob, size, self.block_size, tuple(hashes))
            self._put(self.manifest_key(blob), manifest.encode())
        self._upload(blob, path)
        return True

    def present_blobs(self) -> set[str]:
        """The ids of the blobs in the bucket, from one paged listing of
        ``prefix/blobs/`` (a blob whose key is there has its manifest too)."""
        start = len(self.loc.key("blobs/"))
        return {k[start:] for k in self._keys(self.loc.key("blobs/")) if "." not in k[start:]}

    def upload_many(
        self, files: Iterable[tuple[str, Path, int]], progress: Callable[[int], None] | None
    ) -> int:
        """Upload local files ``(blob, path, size)`` many at once, each checked against
        its id; the bytes sent (see :func:`dlfs.stores.s3send.upload_many`)."""
        return s3send.upload_many(self, files, progress)

    def put_objects(self, objects: Iterable[tuple[str, bytes]]) -> None:
        """Write small objects ``(rel, data)`` under the prefix, many at once."""
        s3send.put_many(self, [(self.loc.key(rel), data) for rel, data in objects])

    @retrying("writing {0}")
    def _put(self, key: str, data: bytes) -> None:
        self.client.put_bytes(self.loc.bucket, key, data)

    # -- small objects under the prefix (pushed records) --------------------------

    def put_object(self, rel: str, data: bytes) -> None:
        """Write ``data`` at ``prefix/rel``."""
        self._put(self.loc.key(rel), data)

    @retrying("writing s3://{self.loc.bucket}/{0}")
    def _put_if(self, key: str, data: bytes, etag: str | None) -> bool:
        return self.client.put_if(self.loc.bucket, key, data, etag)

    def put_object_if(self, rel: str, data: bytes, etag: str | None) -> bool:
        """Write ``data`` at ``prefix/rel`` only if nothing is there (``etag`` None)
        or what is there still has ``etag``; False when another writer got there first.
        A retried attempt may find its own first attempt done: callers read again."""
        return self._put_if(self.loc.key(rel), data, etag)

    @retrying("reading s3://{self.loc.bucket}/{0}")
    def _get_tagged(self, key: str) -> tuple[bytes, str] | None:
        return self.client.get_tagged(self.loc.bucket, key)

    def get_object_tagged(self, rel: str) -> tuple[bytes, str] | None:
        """The bytes at ``prefix/rel`` and their ETag (None if there is none)."""
        return self._get_tagged(self.loc.key(rel))

    def get_object(self, rel: str, check: Callable[[bytes], object] | None = None) -> bytes | None:
        """The bytes at ``prefix/rel`` (None if there is none). ``check`` may raise
        :class:`dlfs.stores.retry.BadBody` to have a damaged body fetched again."""
        return self._get_object(self.loc.key(rel), check)

    @retrying("reading s3://{self.loc.bucket}/{0}")
    def _get_object(self, key: str, check: Callable[[bytes], object] | None) -> bytes | None:
        try:
            data = self.client.get(self.loc.bucket, key)
        except NotFound:
            return None
        if check is not None:
            check(data)
        return data

    @retrying("looking for s3://{self.loc.bucket}/{0}")
    def _head_key(self, key: str) -> bool:
        return self.client.head(self.loc.bucket, key) is not None

    def exists(self, rel: str) -> bool:
        """True when an object is at ``prefix/rel``."""
        return self._head_key(self.loc.key(rel))

    @retrying("listing s3://{self.loc.bucket}/{0}")
    def _keys(self, prefix: str) -> list[str]:
        return [o.key for o in self.client.list(self.loc.bucket, prefix)]

    @retrying("listing s3://{self.loc.bucket}/{0}")
    def _objects(self, prefix: str) -> list[ObjectInfo]:
        return list(self.client.list(self.loc.bucket, prefix))

    def objects(self, rel_prefix: str) -> list[tuple[str, int, float]]:
        """``(rel key, size, mtime)`` of each object under ``prefix/rel_prefix``."""
        start = len(self.loc.key(""))
        return [(o.key[start:], o.size, o.mtime) for o in self._objects(self.loc.key(rel_prefix))]

    @retrying("deleting s3://{self.loc.bucket}/{0}")
    def _delete_key(self, key: str) -> None:
        self.client.delete(self.loc.bucket, key)

    def delete_object(self, rel: str) -> None:
        """Delete the object at ``prefix/rel`` (nothing if there is none)."""
        self._delete_key(self.loc.key(rel))

    def keys(self, rel_prefix: str) -> list[str]:
        """The full keys of the objects under ``prefix/rel_prefix``."""
        return self._keys(self.loc.key(rel_prefix))

    @retrying("uploading blob {0}")
    def _upload(self, blob: str, path: Path) -> None:
        self.client.upload_file(self.loc.bucket, self.key(blob), path, self.transfer)


# -- batches ------------------------------------------------------------------------


class S3Batch(IngestBatch):
    """Blobs staged locally, uploaded by :meth:`commit` (before the catalog commits).

    After :meth:`commit`, ``uploaded`` and ``present`` list the blobs that were sent
    and those the bucket already had.
    """

    def __init__(self, store: S3Store) -> None:
        self.store = store
        self._staged: dict[str, tuple[Path, int, list[str] | None]] = {}
        self._staging = StagingFolder(store.staging)
        self._lock = threading.Lock()
        self.uploaded: list[str] = []
        self.present: list[str] = []

    def add_stream(self, stream: BinaryIO) -> tuple[str, int]:
        block_size = self.store.block_size
        hasher = BlockHasher(block_size)
        tmp = self._staging.copy_in(stream, hasher)
        blob, hashes = hasher.finish()
        size = hasher.size
        with self._lock:
            duplicate = blob in self._staged
            if not duplicate:
                self._staged[blob] = (tmp, size, hashes if size > block_size else None)
        if duplicate:
            os.unlink(tmp)
        return blob, size

    def commit(self) -> None:
        """Upload every staged blob the bucket lacks, several at once; raise the first
        failure (:class:`Unavailable` once retries are spent)."""
        staged = list(self._staged.items())
        try:
            if len(staged) == 1:
                self._one(staged[0])
            elif staged:
                with ThreadPoolExecutor(UPLOAD_WORKERS, thread_name_prefix="dlfs-up") as pool:
                    for _ in pool.map(self._one, staged):
                        pass
        finally:
            self.abort()

    def _one(self, entry: tuple[str, tuple[Path, int, list[str] | None]]) -> None:
        blob, (path, size, hashes) = entry
        sent = self.store.put_file(blob, path, size, hashes)
        with self._lock:
            (self.uploaded if sent else self.present).append(blob)

    def abort(self) -> None:
        self._staged.clear()
        self._staging.remove()
