"""s3range: a small, fast S3-compatible server over a folder, for the benchmarks.

Why: ``bench_s3`` reads S3 through FUSE mounts, and mounts read objects in byte
ranges. ``moto_server`` copies the whole object for every ranged GET and tops out
near 280 GETs/s, so with moto the benchmark measured moto. This server answers a
ranged GET with ``pread``/``sendfile`` from the object's file and nothing else, so
the server is no longer the bottleneck of any client on the machine.

It is a benchmark fixture, not a product: there is **no authentication** (any
signature, SigV4 or none, is accepted unchecked), no ACLs, no versioning, no
encryption, no virtual-hosted addressing; only path-style ``/bucket/key``.

Layout under ``ROOT``: each bucket is a folder ``ROOT/<bucket>/``; each object one
file in it, named by its key percent-escaped into a single flat name (so keys ``a``
and ``a/b`` can both exist; names longer than 240 bytes become ``%%<sha256>``), and a
journal ``ROOT/<bucket>/%%s3range.jsonl`` that keeps ETag, Content-Type, Last-Modified
and user metadata (``%%`` never starts an escaped key). Metadata is held in memory and
the journal is replayed (and compacted) at start; a file found without a journal
entry is adopted with its MD5 as ETag. Temporary files and multipart parts live in
``ROOT/.s3range/``.

Supported:

- HTTP/1.1 with keep-alive, one thread per connection, ``Expect: 100-continue``,
  request bodies with ``Content-Length`` or ``Transfer-Encoding: chunked``, and
  ``Content-Encoding: aws-chunked`` bodies (``STREAMING-UNSIGNED-PAYLOAD-TRAILER``,
  ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``...; chunk signatures and trailing checksums
  are skipped, not checked);
- objects: GET (``Range: bytes=a-b``, ``bytes=a-``, ``bytes=-n``: 206 with
  Content-Range, 416 ``InvalidRange`` when unsatisfiable, a multi-range or malformed
  header is ignored as HTTP says), HEAD, ``If-Match`` (412) and ``If-None-Match``
  (304), PUT (``Content-MD5`` checked when given), CopyObject, DeleteObject,
  DeleteObjects; ETag is the quoted MD5, ``"<md5 of part md5s>-N"`` after multipart;
- multipart: CreateMultipartUpload, UploadPart, CompleteMultipartUpload,
  AbortMultipartUpload, ListMultipartUploads (no part-size minimum is enforced);
- buckets: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation,
  GetBucketVersioning (always unversioned), ListObjectsV2 and ListObjects (v1) with
  prefix, delimiter, max-keys (at most 1,000), continuation-token / start-after /
  marker, ``encoding-type=url``, keys in UTF-8 binary order, XML as AWS writes it;
- errors as S3 error XML with S3's codes and status (none in a HEAD answer's body).

Not supported (501 ``NotImplemented``): versions, ACLs, policies, tagging, ListParts,
UploadPartCopy, and any other sub-resource. Nothing is logged per request.

Use: ``python -m benchmarks.s3range ROOT [--host 127.0.0.1] [--port 9000]``, or in
Python ``with serve(root) as server: server.endpoint``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import bisect
import contextlib
import hashlib
import itertools
import json
import os
import re
import shutil
import socket
import socketserver
import struct
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import parse_qsl, quote, unquote
from xml.sax.saxutils import escape

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
XML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'
JOURNAL = "%%s3range.jsonl"
INTERNAL = ".s3range"
OWNER_ID = "75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a"
OWNER = f"<Owner><ID>{OWNER_ID}</ID><DisplayName>s3range</DisplayName></Owner>"
SMALL_BODY = 256 * 1024  # answers up to this size go out in one send (header + pread)
IO_CHUNK = 1 << 20
MAX_DRAIN = 1 << 20  # a body left unread up to this size is drained, else we close
IDLE_TIMEOUT = 600  # seconds an idle keep-alive connection is kept
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.\-_]{1,254}")  # lenient, like old us-east-1

REASONS = {
    100: "Continue",
    200: "OK",
    204: "No Content",
    206: "Partial Content",
    304: "Not Modified",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    411: "Length Required",
    412: "Precondition Failed",
    416: "Requested Range Not Satisfiable",
    500: "Internal Server Error",
    501: "Not Implemented",
}

# headers kept with an object and given back on GET/HEAD
_KEPT = ("cache-control", "content-disposition", "content-encoding", "content-language")


class S3Error(Exception):
    """An S3 error answer: status, code, message, and extra XML fields."""

    def __init__(self, status: int, code: str, message: str, **fields: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields
        self.headers: list[tuple[str, str]] = []


def _no_bucket(bucket: str) -> S3Error:
    return S3Error(404, "NoSuchBucket", "The specified bucket does not exist", BucketName=bucket)


def _no_key(key: str) -> S3Error:
    return S3Error(404, "NoSuchKey", "The specified key does not exist.", Key=key)


def _no_upload(upload_id: str) -> S3Error:
    return S3Error(
        404,
        "NoSuchUpload",
        "The specified upload does not exist. The upload ID may be invalid, or the upload"
        " may have been aborted or completed.",
        UploadId=upload_id,
    )


# -- storage --------------------------------------------------------------------------


def file_name(key: str) -> str:
    """The flat file name of an object: the key percent-escaped (``/`` too)."""
    name = quote(key, safe="")
    if name.startswith("."):
        name = "%2E" + name[1:]
    if len(name) > 240:
        name = "%%" + hashlib.sha256(key.encode()).hexdigest()
    return name


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def _http_date(t: float) -> str:
    return formatdate(t, usegmt=True)


@dataclass(slots=True)
class Obj:
    """What is known of one object besides its bytes."""

    size: int
    etag: str  # quoted
    mtime: float
    ctype: str
    extra: dict[str, str] | None = None  # user metadata and kept headers
    modified: str = ""  # Last-Modified as HTTP writes it, made on first use

    def last_modified(self) -> str:
        if not self.modified:
            self.modified = _http_date(self.mtime)
        return self.modified


@dataclass
class Bucket:
    name: str
    path: Path
    created: float
    keys: list[str] = field(default_factory=list)  # sorted (code point = UTF-8 order)
    meta: dict[str, Obj] = field(default_factory=dict)
    journal: Any = None

    def record(self, key: str, obj: Obj | None) -> None:
        """Append the object's new state to the journal (caller holds the lock)."""
        if obj is None:
            line = {"k": key, "d": 1}
        else:
            line = {"k": key, "s": obj.size, "e": obj.etag, "m": obj.mtime, "t": obj.ctype}
            if obj.extra:
                line["x"] = obj.extra
        self.journal.write(json.dumps(line, ensure_ascii=False) + "\n")
        self.journal.flush()

    def set(self, key: str, obj: Obj) -> None:
        if key not in self.meta:
            bisect.insort(self.keys, key)
        self.meta[key] = obj
        self.record(key, obj)

    def remove(self, key: str) -> bool:
        if self.meta.pop(key, None) is None:
            return False
        i = bisect.bisect_left(self.keys, key)
        del self.keys[i]
        self.record(key, None)
        return True


@dataclass
class Upload:
    bucket: str
    key: str
    ctype: str
    extra: dict[str, str] | None
    path: Path
    started: float
    parts: dict[int, tuple[str, int]] = field(default_factory=dict)  # n -> (etag, size)


class Store:
    """Buckets as folders, metadata in memory, one lock for all of it."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.internal = self.root / INTERNAL
        self.tmp = self.internal / "tmp"
        self.uploads_dir = self.internal / "uploads"
        shutil.rmtree(self.tmp, ignore_errors=True)
        shutil.rmtree(self.uploads_dir, ignore_errors=True)
        self.tmp.mkdir(parents=True)
        self.uploads_dir.mkdir(parents=True)
        self.lock = threading.Lock()
        self.buckets: dict[str, Bucket] = {}
        self.uploads: dict[str, Upload] = {}
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            if entry.is_dir() and not entry.name.startswith("."):
                self.buckets[entry.name] = self._load(entry.name)

    def close(self) -> None:
        with self.lock:
            for b in self.buckets.values():
                b.journal.close()

    def _load(self, name: str) -> Bucket:
        """A bucket folder: replay its journal, adopt stray files, compact."""
        path = self.root / name
        b = Bucket(name, path, path.stat().st_mtime)
        journal = path / JOURNAL
        meta: dict[str, Obj] = {}
        if journal.exists():
            with open(journal, encoding="utf-8") as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue  # a torn last line
                    if rec.get("d"):
                        meta.pop(rec["k"], None)
                    else:
                        meta[rec["k"]] = Obj(rec["s"], rec["e"], rec["m"], rec["t"], rec.get("x"))
        names = {e.name: e for e in os.scandir(path) if e.is_file() and e.name != JOURNAL}
        for key, obj in list(meta.items()):
            entry = names.pop(file_name(key), None)
            if entry is None:
                del meta[key]
            else:
                obj.size = entry.stat().st_size
        for fname, entry in names.items():  # files put there by hand
            if fname.startswith("%%"):
                continue
            key = unquote(fname)
            if file_name(key) != fname:
                continue
            md5 = hashlib.md5()
            with open(entry.path, "rb") as f:
                while chunk := f.read(IO_CHUNK):
                    md5.update(chunk)
            st = entry.stat()
            meta[key] = Obj(st.st_size, f'"{md5.hexdigest()}"', st.st_mtime, "binary/octet-stream")
        b.meta = meta
        b.keys = sorted(meta)
        tmp = self.tmp / f"journal-{uuid.uuid4().hex}"
        b.journal = open(tmp, "w", encoding="utf-8")  # noqa: SIM115 - kept open
        for key in b.keys:
            b.record(key, meta[key])
        os.replace(tmp, journal)
        return b

    def bucket(self, name: str) -> Bucket:
        b = self.buckets.get(name)
        if b is None:
            raise _no_bucket(name)
        return b

    def create_bucket(self, name: str) -> None:
        if not _BUCKET_NAME.fullmatch(name) or name.startswith("."):
            raise S3Error(400, "InvalidBucketName", "The specified bucket is not valid.")
        with self.lock:
            if name in self.buckets:
                return  # us-east-1 answers 200 to its owner
            path = self.root / name
            path.mkdir(exist_ok=True)
            b = Bucket(name, path, time.time())
            b.journal = open(path / JOURNAL, "a", encoding="utf-8")  # noqa: SIM115
            self.buckets[name] = b

    def delete_bucket(self, name: str) -> None:
        with self.lock:
            b = self.bucket(name)
            if b.keys:
                raise S3Error(
                    409,
                    "BucketNotEmpty",
                    "The bucket you tried to delete is not empty",
                    BucketName=name,
                )
            b.journal.close()
            shutil.rmtree(b.path, ignore_errors=True)
            del self.buckets[name]

    def temp(self) -> Path:
        return self.tmp / uuid.uuid4().hex

    def commit(self, bucket: str, key: str, tmp: Path, obj: Obj) -> None:
        """Move a finished temp file in place as the object ``key``."""
        with self.lock:
            b = self.buckets.get(bucket)
            if b is None:
                tmp.unlink(missing_ok=True)
                raise _no_bucket(bucket)
            os.replace(tmp, b.path / file_name(key))
            b.set(key, obj)

    def open(self, bucket: str, key: str) -> tuple[Obj, int]:
        """The object's metadata and an open fd of its bytes (caller closes)."""
        with self.lock:
            b = self.bucket(bucket)
            obj = b.meta.get(key)
            if obj is None:
                raise _no_key(key)
            return obj, os.open(b.path / file_name(key), os.O_RDONLY)

    def delete(self, bucket: str, key: str) -> None:
        with self.lock:
            b = self.bucket(bucket)
            if b.remove(key):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(b.path / file_name(key))


# -- request bodies -------------------------------------------------------------------


class Source(Protocol):
    def read(self, n: int, /) -> bytes: ...
    def readline(self, limit: int, /) -> bytes: ...


class LengthBody:
    """Exactly ``length`` bytes of the connection."""

    def __init__(self, rfile: BinaryIO, length: int) -> None:
        self.rfile, self.remaining = rfile, length

    def read(self, n: int) -> bytes:
        return self._take(self.rfile.read, n)

    def readline(self, limit: int = 65536) -> bytes:
        return self._take(self.rfile.readline, limit)

    def _take(self, read: Callable[[int], bytes], n: int) -> bytes:
        if self.remaining <= 0:
            return b""
        data = read(min(n, self.remaining))
        if not data:
            raise ConnectionError("the body was cut short")
        self.remaining -= len(data)
        return data

    def finished(self) -> bool:
        return self.remaining <= 0


class ChunkedBody:
    """Chunked framing: HTTP ``Transfer-Encoding: chunked`` and ``aws-chunked`` alike
    (``size[;ext]\\r\\n data \\r\\n ... 0[;ext]\\r\\n trailers \\r\\n``)."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.left = 0
        self.done = False
        self.trailers: dict[str, str] = {}

    def _next_chunk(self) -> None:
        line = self.source.readline(4096)
        if not line.endswith(b"\n"):
            raise S3Error(400, "IncompleteBody", "bad chunk header")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise S3Error(400, "IncompleteBody", "bad chunk size") from None
        if size:
            self.left = size
            return
        while True:  # trailers up to an empty line
            line = self.source.readline(65536)
            if not line or line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode("latin-1").partition(":")
            self.trailers[name.strip().lower()] = value.strip()
        self.done = True

    def read(self, n: int) -> bytes:
        if self.done:
            return b""
        if not self.left:
            self._next_chunk()
            if self.done:
                return b""
        data = self.source.read(min(n, self.left))
        if not data:
            raise ConnectionError("the body was cut short")
        self.left -= len(data)
        if not self.left and self.source.readline(4) not in (b"\r\n", b"\n"):
            raise S3Error(400, "IncompleteBody", "a chunk does not end with CRLF")
        return data

    def readline(self, limit: int = 65536) -> bytes:
        out = bytearray()
        while len(out) < limit:
            c = self.read(1)
            if not c:
                break
            out += c
            if c == b"\n":
                break
        return bytes(out)

    def finished(self) -> bool:
        return self.done


# -- the HTTP side ----------------------------------------------------------------------

_request_ids = itertools.count(1)
_date_cache: tuple[int, str] = (0, "")


def _now_date() -> str:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, _http_date(now))
    return _date_cache[1]


class Exchange:
    """One request on a connection, and the means to answer it."""

    def __init__(self, conn: Connection, method: str, target: str, headers: dict[str, str]):
        self.conn = conn
        self.sock = conn.sock
        self.method = method
        self.headers = headers
        if target.startswith(("http://", "https://")):
            target = "/" + target.split("/", 3)[3] if target.count("/") >= 3 else "/"
        path, _, query = target.partition("?")
        self.path = unquote(path)
        self.query = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
        self.head = method == "HEAD"
        self.close = False
        self.answered = False
        self._raw: LengthBody | ChunkedBody | None = None
        self._body: LengthBody | ChunkedBody | None = None
        self.request_id = f"{next(_request_ids):016X}"

    # the body

    def has_body(self) -> bool:
        h = self.headers
        return "transfer-encoding" in h or int(h.get("content-length") or 0) > 0

    def body(self) -> LengthBody | ChunkedBody:
        """The request body, decoded (``aws-chunked`` too); sends 100 Continue."""
        if self._body is not None:
            return self._body
        h = self.headers
        if "chunked" in h.get("transfer-encoding", "").lower():
            raw: LengthBody | ChunkedBody = ChunkedBody(self.conn.rfile)
        else:
            try:
                raw = LengthBody(self.conn.rfile, int(h.get("content-length") or 0))
            except ValueError:
                raise S3Error(400, "InvalidArgument", "bad Content-Length") from None
        if "100-continue" in h.get("expect", "").lower():
            self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        self._raw = raw
        encoding = h.get("content-encoding", "").lower()
        sha = h.get("x-amz-content-sha256", "")
        if "aws-chunked" in encoding or sha.startswith("STREAMING-"):
            self._body = ChunkedBody(raw)
        else:
            self._body = raw
        return self._body

    def read_all(self, limit: int = 16 << 20) -> bytes:
        body = self.body()
        chunks, n = [], 0
        while data := body.read(IO_CHUNK):
            chunks.append(data)
            n += len(data)
            if n > limit:
                raise S3Error(400, "MaxMessageLengthExceeded", "the request is too large")
        return b"".join(chunks)

    def finish_body(self) -> None:
        """Make the connection ready for the next request: drain what is left of a
        small body; close the connection if the body is big or was never asked for
        after ``Expect: 100-continue``."""
        if self._raw is None:
            if not self.has_body():
                return
            if "100-continue" in self.headers.get("expect", "").lower():
                self.close = True
                return
            try:
                if int(self.headers.get("content-length") or -1) > MAX_DRAIN:
                    self.close = True
                    return
            except ValueError:
                self.close = True
                return
            self.body()
        assert self._raw is not None
        drained = 0
        with contextlib.suppress(S3Error):
            while not self._raw.finished() and drained <= MAX_DRAIN:
                drained += len(self._raw.read(65536))
        if not self._raw.finished():
            self.close = True

    # answers

    def _head(self, status: int, headers: list[tuple[str, str]], length: int) -> bytes:
        lines = [
            f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}\r\n"
            f"Date: {_now_date()}\r\nServer: s3range\r\n"
            f"x-amz-request-id: {self.request_id}\r\n"
        ]
        lines.extend(f"{k}: {v}\r\n" for k, v in headers)
        if status != 304:
            lines.append(f"Content-Length: {length}\r\n")
        if self.close:
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        return "".join(lines).encode("latin-1", "replace")

    def send(self, status: int, headers: list[tuple[str, str]], body: bytes = b"") -> None:
        if self.answered:
            return
        self.answered = True
        self.finish_body()
        head = self._head(status, headers, len(body))
        self.sock.sendall(head if self.head or status == 304 else head + body)

    def send_xml(self, status: int, xml: str, headers: list[tuple[str, str]] | None = None) -> None:
        body = (XML_HEAD + xml).encode()
        self.send(status, [("Content-Type", "application/xml"), *(headers or [])], body)

    def send_file(
        self, status: int, headers: list[tuple[str, str]], fd: int, offset: int, length: int
    ) -> None:
        self.answered = True
        self.finish_body()
        head = self._head(status, headers, length)
        if self.head or length == 0:
            self.sock.sendall(head)
        elif length <= SMALL_BODY:
            data = os.pread(fd, length, offset)
            if len(data) != length:  # the file shrank under us: cannot keep the promise
                self.close = True
                raise ConnectionError("object changed while being read")
            self.sock.sendall(head + data)
        else:
            self.sock.sendall(head)
            out = self.sock.fileno()
            while length > 0:
                sent = os.sendfile(out, fd, offset, min(length, 1 << 30))
                if sent == 0:
                    self.close = True
                    raise ConnectionError("object changed while being read")
                offset += sent
                length -= sent

    def send_error(self, err: S3Error) -> None:
        if self.head:
            self.send(err.status, err.headers)
            return
        fields = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in err.fields.items())
        xml = (
            f"<Error><Code>{err.code}</Code><Message>{escape(err.message)}</Message>{fields}"
            f"<Resource>{escape(self.path)}</Resource><RequestId>{self.request_id}</RequestId>"
            "</Error>"
        )
        self.send_xml(err.status, xml, err.headers)


class Connection(socketserver.BaseRequestHandler):
    """A keep-alive connection: requests one after the other."""

    server: Server

    def handle(self) -> None:
        self.sock: socket.socket = self.request
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # idle connections are dropped by the kernel's receive timeout, the socket
        # itself stays blocking (so os.sendfile can be used on it)
        timeval = struct.pack("ll", IDLE_TIMEOUT, 0)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
        self.rfile = self.sock.makefile("rb", 65536)
        app = self.server.app
        try:
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    continue
                parts = line.decode("latin-1").split()
                if len(parts) != 3 or not parts[2].startswith("HTTP/"):
                    self.sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                    return
                method, target, version = parts
                headers: dict[str, str] = {}
                for _ in range(500):
                    h = self.rfile.readline(65537)
                    if h in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = h.decode("latin-1").partition(":")
                    k, v = name.strip().lower(), value.strip()
                    headers[k] = f"{headers[k]},{v}" if k in headers else v
                ex = Exchange(self, method, target, headers)
                conn_hdr = headers.get("connection", "").lower()
                if "close" in conn_hdr or (version == "HTTP/1.0" and "keep-alive" not in conn_hdr):
                    ex.close = True
                app.handle(ex)
                if ex.close:
                    return
        except (OSError, ValueError):
            return  # the peer went away, timed out, or sent garbage
        finally:
            with contextlib.suppress(OSError):
                self.rfile.close()


class Server(socketserver.ThreadingTCPServer):
    """The listening socket; ``endpoint`` is the URL to give clients."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = App(Store(Path(root)))
        if ":" in host:  # an IPv6 literal
            self.address_family = socket.AF_INET6
        super().__init__((host, port), Connection)
        self.host, self.port = self.server_address[:2]
        name = f"[{self.host}]" if ":" in self.host else self.host
        self.endpoint = f"http://{name}:{self.port}"

    def server_close(self) -> None:
        super().server_close()
        self.app.store.close()


@contextlib.contextmanager
def serve(root: Path | str, host: str = "127.0.0.1", port: int = 0) -> Iterator[Server]:
    """Serve ``root`` from a thread of this process (port 0: a free one) while in the
    block; yields the server (``.endpoint``, ``.port``)."""
    server = Server(Path(root), host, port)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="s3range", daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


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
        self.store.commit(bucket, key, tmp, Obj(size, etag, time.time(), ctype, extra))
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


def main(argv: list[str] | None = None) -> None:
    """``python -m benchmarks.s3range ROOT [--host H] [--port N]``."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.s3range",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("root", type=Path, help="the folder holding the buckets")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9000, help="0: a free port (printed)")
    args = p.parse_args(argv)
    server = Server(args.root, args.host, args.port)
    print(f"s3range: serving {args.root} at {server.endpoint}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
