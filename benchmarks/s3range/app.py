"""s3range's S3 operations: routing a request to an object, bucket or multipart
operation, and answering it as S3 does."""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import os
import shutil
import time
import uuid
import xml.etree.ElementTree as ET
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote
from xml.sax.saxutils import escape

from benchmarks.s3range.store import IO_CHUNK, Obj, S3Error, Store, Upload, _iso, _no_upload

if TYPE_CHECKING:
    from benchmarks.s3range.wire import Exchange

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
OWNER_ID = "75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a"
OWNER = f"<Owner><ID>{OWNER_ID}</ID><DisplayName>s3range</DisplayName></Owner>"
# headers kept with an object and given back on GET/HEAD
_KEPT = ("cache-control", "content-disposition", "content-encoding", "content-language")


# -- S3 --------------------------------------------------------------------------------


def _parse_range(spec: str, size: int) -> tuple[int, int] | None:
    """``(start, end)`` inclusive; None to ignore the header; S3Error if unsatisfiable."""
    spec = spec.strip()
    if not spec.startswith("bytes=") or "," in spec:
        return None
    first, sep, last = spec[6:].strip().partition("-")
    if not sep:
        return None
    first, last = first.strip(), last.strip()
    if (first and not first.isdigit()) or (last and not last.isdigit()):
        return None
    if not first:
        if not last:
            return None
        n = int(last)
        if n == 0 or size == 0:
            raise _bad_range(size)
        return max(0, size - n), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if end < start:
        return None
    if start >= size:
        raise _bad_range(size)
    return start, min(end, size - 1)


def _bad_range(size: int) -> S3Error:
    err = S3Error(
        416,
        "InvalidRange",
        "The requested range is not satisfiable",
        ActualObjectSize=str(size),
    )
    err.headers.append(("Content-Range", f"bytes */{size}"))
    return err


def _precondition(condition: str) -> S3Error:
    return S3Error(
        412,
        "PreconditionFailed",
        "At least one of the pre-conditions you specified did not hold",
        Condition=condition,
    )


def _etags(value: str) -> list[str]:
    return [v.strip().removeprefix("W/").strip('"') for v in value.split(",")]


def _meta_from(headers: dict[str, str]) -> tuple[str, dict[str, str] | None]:
    ctype = headers.get("content-type") or "binary/octet-stream"
    extra = {k: v for k, v in headers.items() if k.startswith("x-amz-meta-") or k in _KEPT}
    if "content-encoding" in extra:
        enc = [e for e in extra["content-encoding"].split(",") if e.strip() != "aws-chunked"]
        if enc:
            extra["content-encoding"] = ",".join(e.strip() for e in enc)
        else:
            del extra["content-encoding"]
    return ctype, extra or None


def _encoder(query: dict[str, str]) -> Any:
    if query.get("encoding-type") == "url":
        return lambda s: quote(s, safe="/")
    return escape


def _after(prefix: str) -> str:
    """The least string above every string that starts with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class App:
    """S3 operations on a :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def handle(self, ex: Exchange) -> None:
        try:
            self.route(ex)
        except S3Error as err:
            self._fail(ex, err)
        except Exception as exc:  # a bug or a file gone under us: 500, then close
            ex.close = True
            self._fail(ex, S3Error(500, "InternalError", f"{type(exc).__name__}: {exc}"))

    @staticmethod
    def _fail(ex: Exchange, err: S3Error) -> None:
        if ex.answered:  # too late for an error answer: the client sees a cut body
            ex.close = True
        else:
            ex.send_error(err)

    def route(self, ex: Exchange) -> None:
        bucket, _, key = ex.path.lstrip("/").partition("/")
        m, q = ex.method, ex.query
        if not bucket:
            if m in ("GET", "HEAD"):
                return self.list_buckets(ex)
            raise S3Error(405, "MethodNotAllowed", "not allowed on the service")
        if not key:
            if m in ("GET", "HEAD"):
                if m == "HEAD":
                    self.store.bucket(bucket)
                    return ex.send(200, [("x-amz-bucket-region", "us-east-1")])
                if "location" in q:
                    self.store.bucket(bucket)
                    return ex.send_xml(200, f'<LocationConstraint xmlns="{NS}"/>')
                if "versioning" in q:
                    self.store.bucket(bucket)
                    return ex.send_xml(200, f'<VersioningConfiguration xmlns="{NS}"/>')
                if "uploads" in q:
                    return self.list_uploads(ex, bucket)
                if _unsupported(q):
                    raise S3Error(501, "NotImplemented", "not implemented by s3range")
                return self.list_objects(ex, bucket, v2=q.get("list-type") == "2")
            if m == "PUT":
                if _unsupported(q):
                    raise S3Error(501, "NotImplemented", "not implemented by s3range")
                self.store.create_bucket(bucket)
                return ex.send(200, [("Location", f"/{bucket}")])
            if m == "DELETE":
                self.store.delete_bucket(bucket)
                return ex.send(204, [])
            if m == "POST" and "delete" in q:
                return self.delete_objects(ex, bucket)
            raise S3Error(501, "NotImplemented", "not implemented by s3range")
        if m in ("GET", "HEAD"):
            if "uploadId" in q or _unsupported(q):
                raise S3Error(501, "NotImplemented", "not implemented by s3range")
            return self.get_object(ex, bucket, key)
        if m == "PUT":
            if "uploadId" in q:
                return self.upload_part(ex, bucket, key)
            if _unsupported(q):
                raise S3Error(501, "NotImplemented", "not implemented by s3range")
            if "x-amz-copy-source" in ex.headers:
                return self.copy_object(ex, bucket, key)
            return self.put_object(ex, bucket, key)
        if m == "POST":
            if "uploads" in q:
                return self.create_upload(ex, bucket, key)
            if "uploadId" in q:
                return self.complete_upload(ex, bucket, key)
        if m == "DELETE":
            if "uploadId" in q:
                return self.abort_upload(ex, q["uploadId"])
            self.store.delete(bucket, key)
            return ex.send(204, [])
        raise S3Error(501, "NotImplemented", "not implemented by s3range")

    # objects

    def get_object(self, ex: Exchange, bucket: str, key: str) -> None:
        obj, fd = self.store.open(bucket, key)
        try:
            headers = [
                ("Content-Type", obj.ctype),
                ("ETag", obj.etag),
                ("Last-Modified", obj.last_modified()),
                ("Accept-Ranges", "bytes"),
            ]
            if obj.extra:
                headers.extend(obj.extra.items())
            h = ex.headers
            etag = obj.etag.strip('"')
            if "if-match" in h:
                tags = _etags(h["if-match"])
                if "*" not in tags and etag not in tags:
                    raise S3Error(
                        412,
                        "PreconditionFailed",
                        "At least one of the pre-conditions you specified did not hold",
                        Condition="If-Match",
                    )
            if "if-unmodified-since" in h and _since(h["if-unmodified-since"], obj.mtime, False):
                raise S3Error(
                    412,
                    "PreconditionFailed",
                    "At least one of the pre-conditions you specified did not hold",
                    Condition="If-Unmodified-Since",
                )
            if "if-none-match" in h:
                tags = _etags(h["if-none-match"])
                if "*" in tags or etag in tags:
                    return ex.send(304, headers[1:3])
            elif "if-modified-since" in h and _since(h["if-modified-since"], obj.mtime, True):
                return ex.send(304, headers[1:3])
            rng = _parse_range(h["range"], obj.size) if "range" in h else None
            if rng is None:
                return ex.send_file(200, headers, fd, 0, obj.size)
            start, end = rng
            headers.append(("Content-Range", f"bytes {start}-{end}/{obj.size}"))
            ex.send_file(206, headers, fd, start, end - start + 1)
        finally:
            os.close(fd)

    def _receive(self, ex: Exchange) -> tuple[Path, str, int]:
        """The body into a temp file: (path, md5 hex, size); checked against
        Content-MD5 and x-amz-decoded-content-length."""
        body = ex.body()
        tmp = self.store.temp()
        md5 = hashlib.md5()
        size = 0
        try:
            with open(tmp, "wb") as f:
                while data := body.read(IO_CHUNK):
                    md5.update(data)
                    f.write(data)
                    size += len(data)
            h = ex.headers
            decoded = h.get("x-amz-decoded-content-length")
            if decoded is not None and body is not ex._raw and int(decoded) != size:
                raise S3Error(400, "IncompleteBody", "the body does not match its length")
            if "content-md5" in h:
                try:
                    want = base64.b64decode(h["content-md5"], validate=True)
                except binascii.Error:
                    raise S3Error(400, "InvalidDigest", "bad Content-MD5") from None
                if want != md5.digest():
                    raise S3Error(
                        400,
                        "BadDigest",
                        "The Content-MD5 you specified did not match what we received.",
                    )
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp, md5.hexdigest(), size

    def put_object(self, ex: Exchange, bucket: str, key: str) -> None:
        self.store.bucket(bucket)
        tmp, md5, size = self._receive(ex)
        ctype, extra = _meta_from(ex.headers)
        etag = f'"{md5}"'
        h = ex.headers

        def condition(there: Obj | None) -> None:
            """If-None-Match: * (only if absent) and If-Match (only if the ETag is one
            of these), checked at the moment of writing, as S3 does."""
            if there is not None and "*" in _etags(h.get("if-none-match", "")):
                raise _precondition("If-None-Match")
            if "if-match" in h:
                if there is None:
                    raise S3Error(404, "NoSuchKey", "The specified key does not exist.", Key=key)
                tags = _etags(h["if-match"])
                if "*" not in tags and there.etag.strip('"') not in tags:
                    raise _precondition("If-Match")

        self.store.commit(
            bucket, key, tmp, Obj(size, etag, time.time(), ctype, extra), check=condition
        )
        ex.send(200, [("ETag", etag)])

    def copy_object(self, ex: Exchange, bucket: str, key: str) -> None:
        self.store.bucket(bucket)
        source = unquote(ex.headers["x-amz-copy-source"].partition("?")[0]).lstrip("/")
        src_bucket, _, src_key = source.partition("/")
        obj, fd = self.store.open(src_bucket, src_key)
        tmp = self.store.temp()
        md5 = hashlib.md5()
        try:
            if "x-amz-copy-source-if-match" in ex.headers:
                tags = _etags(ex.headers["x-amz-copy-source-if-match"])
                if "*" not in tags and obj.etag.strip('"') not in tags:
                    raise S3Error(
                        412,
                        "PreconditionFailed",
                        "At least one of the pre-conditions you specified did not hold",
                    )
            with open(tmp, "wb") as f:
                offset = 0
                while data := os.pread(fd, IO_CHUNK, offset):
                    md5.update(data)
                    f.write(data)
                    offset += len(data)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)
        if ex.headers.get("x-amz-metadata-directive", "COPY").upper() == "REPLACE":
            ctype, extra = _meta_from(ex.headers)
        else:
            ctype, extra = obj.ctype, obj.extra
        now = time.time()
        etag = f'"{md5.hexdigest()}"'
        self.store.commit(bucket, key, tmp, Obj(offset, etag, now, ctype, extra))
        ex.send_xml(
            200,
            f'<CopyObjectResult xmlns="{NS}"><LastModified>{_iso(now)}</LastModified>'
            f"<ETag>{escape(etag)}</ETag></CopyObjectResult>",
        )

    def delete_objects(self, ex: Exchange, bucket: str) -> None:
        self.store.bucket(bucket)
        try:
            root = ET.fromstring(ex.read_all())
        except ET.ParseError:
            raise S3Error(400, "MalformedXML", "The XML you provided was not well-formed") from None
        quiet = False
        keys = []
        for el in root:
            tag = el.tag.rsplit("}", 1)[-1]
            if tag == "Quiet":
                quiet = (el.text or "").strip().lower() == "true"
            elif tag == "Object":
                for sub in el:
                    if sub.tag.rsplit("}", 1)[-1] == "Key":
                        keys.append(sub.text or "")
        out = []
        for key in keys:
            self.store.delete(bucket, key)
            if not quiet:
                out.append(f"<Deleted><Key>{escape(key)}</Key></Deleted>")
        ex.send_xml(200, f'<DeleteResult xmlns="{NS}">{"".join(out)}</DeleteResult>')

    # multipart

    def create_upload(self, ex: Exchange, bucket: str, key: str) -> None:
        self.store.bucket(bucket)
        ctype, extra = _meta_from(ex.headers)
        upload_id = uuid.uuid4().hex
        path = self.store.uploads_dir / upload_id
        path.mkdir()
        with self.store.lock:
            self.store.uploads[upload_id] = Upload(bucket, key, ctype, extra, path, time.time())
        ex.send_xml(
            200,
            f'<InitiateMultipartUploadResult xmlns="{NS}"><Bucket>{escape(bucket)}</Bucket>'
            f"<Key>{escape(key)}</Key><UploadId>{upload_id}</UploadId>"
            "</InitiateMultipartUploadResult>",
        )

    def _upload(self, upload_id: str, bucket: str, key: str) -> Upload:
        up = self.store.uploads.get(upload_id)
        if up is None or up.bucket != bucket or up.key != key:
            raise _no_upload(upload_id)
        return up

    def upload_part(self, ex: Exchange, bucket: str, key: str) -> None:
        upload_id = ex.query["uploadId"]
        try:
            number = int(ex.query.get("partNumber", ""))
        except ValueError:
            number = 0
        if not 1 <= number <= 10000:
            raise S3Error(
                400,
                "InvalidArgument",
                "Part number must be an integer between 1 and 10000, inclusive",
            )
        with self.store.lock:
            up = self._upload(upload_id, bucket, key)
        if "x-amz-copy-source" in ex.headers:
            raise S3Error(501, "NotImplemented", "UploadPartCopy is not implemented")
        tmp, md5, size = self._receive(ex)
        with self.store.lock:
            if self.store.uploads.get(upload_id) is not up:
                tmp.unlink(missing_ok=True)
                raise _no_upload(upload_id)
            os.replace(tmp, up.path / str(number))
            up.parts[number] = (md5, size)
        ex.send(200, [("ETag", f'"{md5}"')])

    def complete_upload(self, ex: Exchange, bucket: str, key: str) -> None:
        upload_id = ex.query["uploadId"]
        with self.store.lock:
            self._upload(upload_id, bucket, key)
        try:
            root = ET.fromstring(ex.read_all())
        except ET.ParseError:
            raise S3Error(400, "MalformedXML", "The XML you provided was not well-formed") from None
        wanted: list[tuple[int, str]] = []
        for part in root:
            if part.tag.rsplit("}", 1)[-1] != "Part":
                continue
            fields = {sub.tag.rsplit("}", 1)[-1]: (sub.text or "").strip() for sub in part}
            try:
                wanted.append((int(fields.get("PartNumber", "")), fields.get("ETag", "")))
            except ValueError:
                raise S3Error(400, "MalformedXML", "bad PartNumber") from None
        if not wanted:
            raise S3Error(400, "MalformedXML", "The XML you provided was not well-formed")
        numbers = [n for n, _ in wanted]
        if numbers != sorted(set(numbers)):
            raise S3Error(400, "InvalidPartOrder", "The list of parts was not in ascending order.")
        with self.store.lock:
            up = self._upload(upload_id, bucket, key)
            del self.store.uploads[upload_id]  # nobody else may complete or add parts
        try:
            digests = []
            for n, etag in wanted:
                have = up.parts.get(n)
                if have is None or (etag and etag.strip('"') != have[0]):
                    raise S3Error(
                        400,
                        "InvalidPart",
                        "One or more of the specified parts could not be found.",
                        PartNumber=str(n),
                    )
                digests.append(bytes.fromhex(have[0]))
            tmp = self.store.temp()
            size = 0
            with open(tmp, "wb") as out:
                for n, _ in wanted:
                    with open(up.path / str(n), "rb") as part:
                        size += _copy(part.fileno(), out.fileno(), up.parts[n][1])
            etag = f'"{hashlib.md5(b"".join(digests)).hexdigest()}-{len(wanted)}"'
            self.store.commit(bucket, key, tmp, Obj(size, etag, time.time(), up.ctype, up.extra))
        except S3Error:
            with self.store.lock:  # the upload stays open, as in S3
                self.store.uploads[upload_id] = up
            raise
        shutil.rmtree(up.path, ignore_errors=True)
        ex.send_xml(
            200,
            f'<CompleteMultipartUploadResult xmlns="{NS}">'
            f"<Location>/{escape(bucket)}/{escape(key)}</Location>"
            f"<Bucket>{escape(bucket)}</Bucket><Key>{escape(key)}</Key>"
            f"<ETag>{escape(etag)}</ETag></CompleteMultipartUploadResult>",
        )

    def abort_upload(self, ex: Exchange, upload_id: str) -> None:
        with self.store.lock:
            up = self.store.uploads.pop(upload_id, None)
        if up is None:
            raise _no_upload(upload_id)
        shutil.rmtree(up.path, ignore_errors=True)
        ex.send(204, [])

    def list_uploads(self, ex: Exchange, bucket: str) -> None:
        self.store.bucket(bucket)
        with self.store.lock:
            ups = sorted(
                ((u.key, i, u.started) for i, u in self.store.uploads.items() if u.bucket == bucket)
            )
        prefix = ex.query.get("prefix", "")
        items = "".join(
            f"<Upload><Key>{escape(k)}</Key><UploadId>{i}</UploadId>"
            f"<Initiator><ID>{OWNER_ID}</ID><DisplayName>s3range</DisplayName></Initiator>"
            f"{OWNER}<StorageClass>STANDARD</StorageClass><Initiated>{_iso(t)}</Initiated>"
            "</Upload>"
            for k, i, t in ups
            if k.startswith(prefix)
        )
        ex.send_xml(
            200,
            f'<ListMultipartUploadsResult xmlns="{NS}"><Bucket>{escape(bucket)}</Bucket>'
            f"<KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>"
            f"<Prefix>{escape(prefix)}</Prefix><MaxUploads>1000</MaxUploads>"
            f"<IsTruncated>false</IsTruncated>{items}</ListMultipartUploadsResult>",
        )

    # buckets

    def list_buckets(self, ex: Exchange) -> None:
        with self.store.lock:
            buckets = sorted((b.name, b.created) for b in self.store.buckets.values())
        items = "".join(
            f"<Bucket><Name>{escape(n)}</Name><CreationDate>{_iso(t)}</CreationDate></Bucket>"
            for n, t in buckets
        )
        ex.send_xml(
            200,
            f'<ListAllMyBucketsResult xmlns="{NS}">{OWNER}<Buckets>{items}</Buckets>'
            "</ListAllMyBucketsResult>",
        )

    def list_objects(self, ex: Exchange, bucket: str, v2: bool) -> None:
        q = ex.query
        prefix = q.get("prefix", "")
        delimiter = q.get("delimiter", "")
        try:
            max_keys = min(1000, int(q.get("max-keys", "1000")))
            if max_keys < 0:
                raise ValueError
        except ValueError:
            raise S3Error(
                400, "InvalidArgument", "Provided max-keys not an integer or within integer range"
            ) from None
        token = q.get("continuation-token")
        if v2:
            if token is not None:
                try:
                    after = base64.urlsafe_b64decode(token.encode()).decode()
                except (binascii.Error, UnicodeDecodeError):
                    raise S3Error(
                        400, "InvalidArgument", "The continuation token provided is incorrect"
                    ) from None
            else:
                after = q.get("start-after", "")
        else:
            after = q.get("marker", "")
        contents: list[tuple[str, Obj]] = []
        prefixes: list[str] = []
        truncated = False
        last = ""
        with self.store.lock:
            b = self.store.bucket(bucket)
            keys, meta = b.keys, b.meta
            i = bisect.bisect_right(keys, after) if after else 0
            if prefix:
                i = max(i, bisect.bisect_left(keys, prefix))
            n, plen, end = 0, len(prefix), len(keys)
            while i < end:
                k = keys[i]
                if not k.startswith(prefix):
                    break
                if delimiter:
                    j = k.find(delimiter, plen)
                    if j >= 0:
                        cp = k[: j + len(delimiter)]
                        if cp != after:
                            if n == max_keys:
                                truncated = True
                                break
                            prefixes.append(cp)
                            n += 1
                            last = cp
                        i = bisect.bisect_left(keys, _after(cp), i)
                        continue
                if n == max_keys:
                    truncated = True
                    break
                contents.append((k, meta[k]))
                n += 1
                last = k
                i += 1
        enc = _encoder(q)
        parts = [f'<ListBucketResult xmlns="{NS}"><Name>{escape(bucket)}</Name>']
        parts.append(f"<Prefix>{enc(prefix)}</Prefix>")
        if v2:
            parts.append(f"<KeyCount>{len(contents) + len(prefixes)}</KeyCount>")
        else:
            parts.append(f"<Marker>{enc(after)}</Marker>")
        parts.append(f"<MaxKeys>{max_keys}</MaxKeys>")
        if delimiter:
            parts.append(f"<Delimiter>{enc(delimiter)}</Delimiter>")
        if "encoding-type" in q:
            parts.append(f"<EncodingType>{escape(q['encoding-type'])}</EncodingType>")
        parts.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
        if v2:
            if token is not None:
                parts.append(f"<ContinuationToken>{escape(token)}</ContinuationToken>")
            if truncated:
                next_token = base64.urlsafe_b64encode(last.encode()).decode()
                parts.append(f"<NextContinuationToken>{next_token}</NextContinuationToken>")
            if "start-after" in q:
                parts.append(f"<StartAfter>{enc(q['start-after'])}</StartAfter>")
        elif truncated:
            parts.append(f"<NextMarker>{enc(last)}</NextMarker>")
        owner = OWNER if not v2 or q.get("fetch-owner") == "true" else ""
        parts.extend(
            f"<Contents><Key>{enc(k)}</Key><LastModified>{_iso(o.mtime)}</LastModified>"
            f"<ETag>{escape(o.etag, {chr(34): '&quot;'})}</ETag><Size>{o.size}</Size>"
            f"{owner}<StorageClass>STANDARD</StorageClass></Contents>"
            for k, o in contents
        )
        parts.extend(
            f"<CommonPrefixes><Prefix>{enc(p)}</Prefix></CommonPrefixes>" for p in prefixes
        )
        parts.append("</ListBucketResult>")
        ex.send_xml(200, "".join(parts))


_SUBRESOURCES = {
    "acl", "analytics", "attributes", "cors", "encryption", "intelligent-tiering",
    "inventory", "legal-hold", "lifecycle", "logging", "metrics", "notification",
    "object-lock", "ownershipControls", "policy", "policyStatus", "publicAccessBlock",
    "replication", "requestPayment", "restore", "retention", "select", "tagging",
    "torrent", "versions", "website", "accelerate", "versionId",
}  # fmt: skip


def _unsupported(query: dict[str, str]) -> bool:
    if "versionId" in query and query["versionId"] in ("", "null"):
        return any(k in _SUBRESOURCES for k in query if k != "versionId")
    return any(k in _SUBRESOURCES for k in query)


def _since(value: str, mtime: float, modified: bool) -> bool:
    """If-Modified-Since (``modified``): True when not modified since; with
    If-Unmodified-Since: True when modified since. False if the date is bad."""
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return False
    return int(mtime) <= when if modified else int(mtime) > when


def _copy(src: int, dst: int, count: int) -> int:
    """Copy ``count`` bytes from fd ``src`` to fd ``dst`` (kernel-side when it can)."""
    done = 0
    while done < count:
        try:
            n = os.copy_file_range(src, dst, count - done)
        except OSError:
            data = os.read(src, min(IO_CHUNK, count - done))
            n = os.write(dst, data) if data else 0
        if n == 0:
            raise S3Error(500, "InternalError", "a part file is shorter than recorded")
        done += n
    return done
