"""s3range's storage: buckets as folders, objects as files, metadata in memory
and in a journal per bucket; and the S3 error every layer raises."""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

JOURNAL = "%%s3range.jsonl"
INTERNAL = ".s3range"
IO_CHUNK = 1 << 20
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.\-_]{1,254}")  # lenient, like old us-east-1


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

    def commit(
        self,
        bucket: str,
        key: str,
        tmp: Path,
        obj: Obj,
        check: Callable[[Obj | None], None] | None = None,
    ) -> None:
        """Move a finished temp file in place as the object ``key``; ``check`` (the
        object there now, or None) may refuse it with an :class:`S3Error`, under the
        same lock, so a conditional write is atomic."""
        with self.lock:
            b = self.buckets.get(bucket)
            if b is None:
                tmp.unlink(missing_ok=True)
                raise _no_bucket(bucket)
            if check is not None:
                try:
                    check(b.meta.get(key))
                except BaseException:
                    tmp.unlink(missing_ok=True)
                    raise
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
