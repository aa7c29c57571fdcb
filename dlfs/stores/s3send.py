"""Many S3 uploads in flight from one thread: PUTs and multipart on the GET loop.

``dlfs push`` of many small files used to cost a HEAD and a boto3 PUT per blob from
eight threads (~10 ms of round trips and ~3 ms of CPU each). :class:`Sender` sends
signed PUTs on the keep-alive connections of the store's
:class:`dlfs.stores.s3loop.GetLoop` instead, as many at once as the caller allows,
and never asks whether an object is there (the caller lists the prefix once).

Integrity is checked by the upload itself: every PUT and every part carries
``Content-MD5``, which S3 (and MinIO, Ceph, ``benchmarks/s3range``) verifies before it
keeps the object, answering ``BadDigest`` otherwise; that answer is retried like a
body damaged in transit. The payload is sent ``UNSIGNED-PAYLOAD`` (the MD5 header is
signed). A blob larger than ``multipart_threshold`` goes up in parts of at least
``part_size``, :data:`PARTS_IN_FLIGHT` of them at once; a failed multipart upload is
aborted. Retries follow the store's :class:`dlfs.stores.retry.RetryPolicy`.

Content-addressed keys make a repeated PUT harmless, so every request is retried on a
temporary failure. Nothing here knows what a key means: the caller names them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import re
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote
from xml.sax.saxutils import escape

from dlfs.errors import BadBody, Corrupt, TemporaryFailure, Unavailable
from dlfs.objects import blob_id
from dlfs.stores.manifest import Manifest, hash_file_blocks
from dlfs.stores.retry import RetryPolicy, call_async
from dlfs.stores.s3http import USER_AGENT, SignedGetter, _raise_failure

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from dlfs.stores.s3 import S3Store
    from dlfs.stores.s3loop import GetLoop

MiB = 1 << 20
PART_SIZE = 8 * MiB
"""The least part of a multipart upload (S3's own least is 5 MiB)."""
MAX_PARTS = 10_000
UPLOADS_IN_FLIGHT = 64
"""Blobs :func:`upload_many` has in flight at once."""
UPLOAD_WORKERS = 8
"""Threads of the boto3 fallback."""
PARTS_IN_FLIGHT = 8
"""Parts of one store's multipart uploads in flight (and in memory) at once."""

_CODE = re.compile(rb"<Code>([^<]{1,64})</Code>")
_UPLOAD_ID = re.compile(rb"<UploadId>([^<]{1,1024})</UploadId>")
_DIGEST_CODES = {"BadDigest", "InvalidDigest", "IncompleteBody", "XAmzContentSHA256Mismatch"}


def content_md5(data: bytes | memoryview) -> str:
    """The ``Content-MD5`` header of a body."""
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def _read_part(fd: int, length: int, offset: int) -> tuple[bytes, bytes]:
    data = os.pread(fd, length, offset)
    return data, hashlib.md5(data).digest()


class Sender:
    """Signed uploads of one bucket through a :class:`GetLoop` (thread-safe: every
    request runs in the loop's thread)."""

    def __init__(
        self,
        loop: GetLoop,
        getter: SignedGetter,
        bucket: str,
        retry: RetryPolicy,
        *,
        multipart_threshold: int = PART_SIZE,
        part_size: int = PART_SIZE,
    ) -> None:
        self.loop = loop
        self.getter = getter
        self.bucket = bucket
        self.retry = retry
        self.multipart_threshold = max(multipart_threshold, 1)
        self.part_size = max(part_size, 5 * MiB)
        self._parts: asyncio.Semaphore | None = None

    # -- what callers use -----------------------------------------------------------------

    def put(self, key: str, data: bytes) -> Future[None]:
        """Start a PUT of ``data`` at ``key``; the future completes once the server
        has kept it (its MD5 checked), or holds the final error."""
        return self.loop.submit(self._put(key, data, content_md5(data)))

    def put_file(self, key: str, path: Path, size: int) -> Future[None]:
        """Start uploading the file at ``path`` (``size`` bytes) to ``key``: one PUT,
        or a parallel multipart upload above the threshold."""
        if size <= self.multipart_threshold:
            return self.put(key, path.read_bytes())
        return self.loop.submit(self._multipart(key, path, size))

    # -- requests -----------------------------------------------------------------------

    async def _put(self, key: str, data: bytes, md5: str) -> None:
        await self._retried(
            lambda: self._request("PUT", key, {}, data, {"content-md5": md5}),
            f"uploading s3://{self.bucket}/{key}",
        )

    async def _multipart(self, key: str, path: Path, size: int) -> None:
        what = f"uploading s3://{self.bucket}/{key}"
        if self._parts is None:
            self._parts = asyncio.Semaphore(PARTS_IN_FLIGHT)
        part = max(self.part_size, -(-size // MAX_PARTS))
        created = await self._retried(lambda: self._request("POST", key, {"uploads": ""}), what)
        m = _UPLOAD_ID.search(created)
        if m is None:
            raise Unavailable(f"{what}: the server gave no upload id")
        upload_id = m.group(1).decode()
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                tasks = [
                    asyncio.ensure_future(
                        self._part(key, upload_id, fd, n + 1, n * part, min(part, size - n * part))
                    )
                    for n in range(-(-size // part))
                ]
                try:
                    etags = await asyncio.gather(*tasks)
                except BaseException:
                    for t in tasks:
                        t.cancel()
                    raise
            finally:
                os.close(fd)
            body = (
                "<CompleteMultipartUpload>"
                + "".join(
                    f"<Part><PartNumber>{n}</PartNumber><ETag>{escape(e)}</ETag></Part>"
                    for n, e in enumerate(etags, 1)
                )
                + "</CompleteMultipartUpload>"
            ).encode()
            await self._retried(
                lambda: self._request("POST", key, {"uploadId": upload_id}, body, complete=True),
                what,
            )
        except BaseException:
            self.loop.submit(self._abort(key, upload_id))
            raise

    async def _part(
        self, key: str, upload_id: str, fd: int, number: int, offset: int, length: int
    ) -> str:
        assert self._parts is not None
        async with self._parts:
            # read and hashed in a worker thread: MD5 releases the GIL, parts hash at once
            data, md5 = await asyncio.get_running_loop().run_in_executor(
                None, _read_part, fd, length, offset
            )
            if len(data) != length:
                raise Unavailable(f"s3://{self.bucket}/{key}: the file shrank while uploading")
            query = {"partNumber": str(number), "uploadId": upload_id}
            headers = {"content-md5": base64.b64encode(md5).decode()}
            digest = md5.hex()

            async def once() -> bytes:
                reply = await self._request("PUT", key, query, data, headers, want_etag=True)
                if reply.strip(b'"').decode() != digest:
                    raise BadBody(f"s3://{self.bucket}/{key}: part {number} came back changed")
                return reply

            etag = await self._retried(once, f"uploading part {number} of s3://{self.bucket}/{key}")
            return etag.decode()

    async def _abort(self, key: str, upload_id: str) -> None:
        # best effort: a bucket lifecycle rule cleans up what is left
        with contextlib.suppress(Exception):
            await self._request("DELETE", key, {"uploadId": upload_id})

    async def _request(
        self,
        method: str,
        key: str,
        query: dict[str, str],
        body: bytes = b"",
        extra: dict[str, str] | None = None,
        *,
        want_etag: bool = False,
        complete: bool = False,
    ) -> bytes:
        """One signed request; the reply's body (its ETag with ``want_etag``)."""
        g = self.getter
        what = f"s3://{self.bucket}/{key}"
        host, path, _ = g.target(self.bucket, key, None)
        q = "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in sorted(query.items()))
        headers = g.sign(
            host,
            path,
            q,
            g.credentials(),
            time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
            extra,
            method=method,
            payload="UNSIGNED-PAYLOAD",
        )
        headers["user-agent"] = USER_AGENT
        headers["content-length"] = str(len(body))
        url = f"{path}?{q}" if q else path
        head = (
            f"{method} {url} HTTP/1.1\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "\r\n"
        ).encode()
        status, reply, answer = await self.loop.exchange(host, head + body, what)
        if 200 <= status < 300 and not (complete and b"<Error>" in answer):
            return reply.get("etag", "").encode() if want_etag else answer
        if complete and status == 200:  # S3 reports a failed completion in a 200
            raise TemporaryFailure(f"{what}: completing the upload failed")
        _raise_failure(status, answer, what)
        m = _CODE.search(answer)
        code = m.group(1).decode(errors="replace") if m else ""
        if code in _DIGEST_CODES:
            raise BadBody(f"{what}: the server refused the body ({code})")
        raise Unavailable(f"{what}: HTTP {status} {code}".rstrip())

    async def _retried(self, attempt: Callable[[], Awaitable[bytes]], what: str) -> bytes:
        """What :meth:`RetryPolicy.call` does, without a thread."""
        return await call_async(self.retry, attempt, what)


def _sender(store: S3Store) -> Sender | None:
    getter = store.client.signed_getter
    loop = store.blocks._get_loop() if getter is not None else None
    if getter is None or loop is None:
        return None
    return Sender(
        loop,
        getter,
        store.loc.bucket,
        store.retry,
        multipart_threshold=store.transfer.multipart_threshold,
        part_size=store.transfer.multipart_chunksize,
    )


def put_many(store: S3Store, objects: list[tuple[str, bytes]]) -> None:
    """PUT small objects ``(key, data)`` of ``store``'s bucket, :data:`UPLOADS_IN_FLIGHT`
    at once (boto3 from threads when the signed path is off)."""
    sender = _sender(store) if objects else None
    if sender is None:
        with ThreadPoolExecutor(UPLOAD_WORKERS, thread_name_prefix="dlfs-up") as pool:
            list(pool.map(lambda o: store._put(o[0], o[1]), objects))
        return
    pending: set[Future[None]] = set()
    try:
        for key, data in objects:
            pending.add(sender.put(key, data))
            if len(pending) >= UPLOADS_IN_FLIGHT:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    fut.result()
        for fut in pending:
            fut.result()
    finally:
        for fut in pending:
            fut.cancel()


def upload_many(
    store: S3Store,
    files: Iterable[tuple[str, Path, int]],
    progress: Callable[[int], None] | None = None,
    window: int = UPLOADS_IN_FLIGHT,
) -> int:
    """Upload local files ``(blob, path, size)`` as blobs of ``store``, ``window`` at
    once, without asking whether the bucket has them (list it first:
    :meth:`S3Store.present_blobs`). Each file is hashed here and refused
    (:class:`Corrupt`) unless it holds exactly its blob; a large one's manifest goes
    first. ``progress(size)`` after each blob; returns the bytes sent. Threads and
    boto3 when the signed request path is off (a proxy, ``DLFS_S3_FAST_GET=0``)."""
    sender = _sender(store)
    if sender is None:
        with ThreadPoolExecutor(UPLOAD_WORKERS, thread_name_prefix="dlfs-up") as pool:
            return sum(pool.map(lambda f: _put_checked(store, f, progress), files))
    pending: dict[Future[None], int] = {}
    sent = 0

    def harvest() -> None:
        nonlocal sent
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        for fut in done:
            size = pending.pop(fut)
            fut.result()
            sent += size
            if progress is not None:
                progress(size)

    try:
        for blob, path, size in files:
            if size <= store.block_size:
                data = path.read_bytes()
                if len(data) != size or blob_id(data) != blob:
                    raise Corrupt(f"blob {blob}: {path} does not hold its bytes")
                fut = sender.put(store.key(blob), data)
            else:
                whole, hashes = hash_file_blocks(path, store.block_size)
                if whole != blob or path.stat().st_size != size:
                    raise Corrupt(f"blob {blob}: {path} does not hold its bytes")
                manifest = Manifest(blob, size, store.block_size, tuple(hashes))
                # the manifest first: a blob that exists always has its manifest
                sender.put(store.manifest_key(blob), manifest.encode()).result()
                fut = sender.put_file(store.key(blob), path, size)
            pending[fut] = size
            while len(pending) >= window:
                harvest()
        while pending:
            harvest()
    finally:
        for fut in pending:
            fut.cancel()
    return sent


def _put_checked(
    store: S3Store, entry: tuple[str, Path, int], progress: Callable[[int], None] | None
) -> int:
    blob, path, size = entry
    sent = store.put_file(blob, path, size, None, verify=True)
    if progress is not None:
        progress(size)
    return size if sent else 0
