"""Signed S3 GETs on plain HTTP connections: the read path's hot call, without boto3.

boto3 spends about 1.5 ms of CPU on every ``GetObject`` (parameter validation, some
forty event hooks, response parsing); with the GIL that caps a daemon near 650 GETs/s
whatever the server, where a small file costs one GET. A :class:`SignedGetter` sends
the same request (AWS Signature Version 4, computed here in ~12 us) on a keep-alive
``http.client`` connection per thread: ~0.4 ms a GET, 3x the rate (figures in
``docs/performance.md``). Everything else (HEAD, LIST, PUT, multipart, credentials,
region) stays with boto3; credentials come from the boto3 session on every request,
so refreshed credentials are picked up.

It answers what it understands and returns None for the rest (a redirect, an
unfamiliar error), and the caller asks boto3 instead, which knows every case. Errors
are :class:`dlfs.errors.DlfsError`: ``NotFound`` (404), ``Corrupt`` (412: the object
changed; 416: shorter than recorded), ``Unavailable`` (403), ``TemporaryFailure``
(5xx, 429, connection errors, timeouts, a body cut short).

Not used (boto3 serves every GET) when an HTTP proxy is configured
(``HTTPS_PROXY``/``HTTP_PROXY``) or ``DLFS_S3_FAST_GET=0``.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import os
import re
import ssl
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from dlfs.errors import Corrupt, NotFound, TemporaryFailure, Unavailable

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
"""The payload hash of a GET (no body), as botocore signs it."""
CHUNK = 256 * 1024
_CODE = re.compile(rb"<Code>([^<]{1,64})</Code>")
_DNS_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
_TEMPORARY_STATUS = {429, 500, 502, 503, 504}
USER_AGENT = "dlfs-s3http/1"
"""Sent, unsigned, with every GET, so server logs tell these from boto3's."""

MAX_IDLE = 32
"""Idle keep-alive connections kept per host (the daemon runs at most ~24 GETs at once)."""


@dataclass(frozen=True)
class Credentials:
    """What signs a request (a frozen snapshot of the boto3 session's)."""

    access_key: str
    secret_key: str
    token: str | None = None


@dataclass(frozen=True)
class Reply:
    """A successful GET: its status (200 or 206), headers (lower-case names), body."""

    status: int
    headers: dict[str, str]
    body: bytes


def fast_get_enabled() -> bool:
    """False when a proxy is configured or ``DLFS_S3_FAST_GET=0``."""
    if os.environ.get("DLFS_S3_FAST_GET", "1") == "0":
        return False
    return not any(
        os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")
    )


class SignedGetter:
    """GETs of one S3 endpoint, signed with SigV4; thread-safe (keep-alive
    connections shared through an idle list per host). ``path_style``:
    ``/bucket/key`` (custom endpoints) or ``bucket.host/key`` (AWS; buckets whose
    names are not DNS labels stay path-style)."""

    def __init__(
        self,
        endpoint_url: str,
        region: str,
        credentials: Callable[[], Credentials],
        *,
        path_style: bool,
        timeout: float,
        ca_bundle: str | None = None,
        verify: bool = True,
    ) -> None:
        parts = urlsplit(endpoint_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"unsupported endpoint {endpoint_url!r}")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.base = parts.path.rstrip("/")
        self.region = region
        self.credentials = credentials
        self.path_style = path_style
        self.timeout = timeout
        self._context: ssl.SSLContext | None = None
        if self.https:
            self._context = ssl.create_default_context(cafile=ca_bundle)
            if not verify:
                self._context.check_hostname = False
                self._context.verify_mode = ssl.CERT_NONE
        self._lock = threading.Lock()
        self._idle: dict[str, list[http.client.HTTPConnection]] = {}
        self._closed = False
        weakref.finalize(self, _close_all, self._idle)  # no socket outlives its getter
        self._keys: dict[tuple[str, str], bytes] = {}

    # -- signing ----------------------------------------------------------------------

    def _signing_key(self, secret: str, date: str) -> bytes:
        key = self._keys.get((secret, date))
        if key is None:
            key = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
            for part in (self.region, "s3", "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._keys = {(secret, date): key}  # one date at a time is enough
        return key

    def sign(
        self,
        host: str,
        path: str,
        query: str,
        creds: Credentials,
        amz_date: str,
        extra: dict[str, str] | None = None,
        *,
        method: str = "GET",
        payload: str = EMPTY_SHA256,
    ) -> dict[str, str]:
        """The headers that authenticate ``GET path?query`` (or ``method``) on ``host``
        at ``amz_date`` (``YYYYMMDDTHHMMSSZ``); ``path`` and ``query`` already
        URI-encoded; ``extra`` headers (lower-case names) are signed too; ``payload``:
        the body's SHA-256 hex, or ``UNSIGNED-PAYLOAD``."""
        headers = {"host": host, "x-amz-content-sha256": payload, "x-amz-date": amz_date}
        headers.update(extra or {})
        if creds.token:
            headers["x-amz-security-token"] = creds.token
        names = sorted(headers)
        signed = ";".join(names)
        canonical = "\n".join(
            [
                method,
                path,
                query,
                "".join(f"{n}:{headers[n].strip()}\n" for n in names),
                signed,
                payload,
            ]
        )
        date = amz_date[:8]
        scope = f"{date}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256",
                amz_date,
                scope,
                hashlib.sha256(canonical.encode()).hexdigest(),
            ]
        )
        key = self._signing_key(creds.secret_key, date)
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope},"
            f" SignedHeaders={signed}, Signature={signature}"
        )
        return headers

    def target(self, bucket: str, key: str, version_id: str | None) -> tuple[str, str, str]:
        """``(host header, encoded path, encoded query)`` of an object."""
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 literal
        if (self.https and self.port != 443) or (not self.https and self.port != 80):
            host = f"{host}:{self.port}"
        encoded = quote(key, safe="/~")
        if self.path_style or not _DNS_BUCKET.fullmatch(bucket):
            path = f"{self.base}/{bucket}/{encoded}"
        else:
            host = f"{bucket}.{host}"
            path = f"{self.base}/{encoded}"
        query = f"versionId={quote(version_id, safe='~')}" if version_id else ""
        return host, path, query

    # -- sending ----------------------------------------------------------------------

    def _take(self, host: str) -> tuple[http.client.HTTPConnection, bool]:
        """An idle connection to ``host`` (reused: True) or a new one."""
        with self._lock:
            idle = self._idle.get(host)
            if idle:
                return idle.pop(), True
        name = _connect_name(host)
        if self.https:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                name, self.port, timeout=self.timeout, context=self._context
            )
        else:
            conn = http.client.HTTPConnection(name, self.port, timeout=self.timeout)
        return conn, False

    def _give(self, host: str, conn: http.client.HTTPConnection) -> None:
        """Keep a connection whose last response was read whole, for the next GET."""
        with self._lock:
            idle = self._idle.setdefault(host, [])
            if not self._closed and len(idle) < MAX_IDLE:
                idle.append(conn)
                return
        conn.close()

    def get(
        self,
        bucket: str,
        key: str,
        *,
        byte_range: tuple[int, int] | None = None,
        version_id: str | None = None,
        if_match: str | None = None,
        deadline: float | None = None,
    ) -> Reply | None:
        """GET an object (``byte_range``: first and last byte, inclusive); None when
        the answer is one to leave to boto3 (a redirect, an unknown error)."""
        what = f"s3://{bucket}/{key}"
        host, path, query = self.target(bucket, key, version_id)
        url = f"{path}?{query}" if query else path
        for attempt in (0, 1):
            amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            headers = self.sign(host, path, query, self.credentials(), amz_date)
            if byte_range is not None:
                headers["range"] = f"bytes={byte_range[0]}-{byte_range[1]}"
            if if_match:
                headers["if-match"] = if_match
            headers["user-agent"] = USER_AGENT
            conn, reused = self._take(host)
            try:
                conn.request("GET", url, headers=headers)
                resp = conn.getresponse()
                status = resp.status
                body = read_body(resp, deadline, what)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                conn.close()
                if reused and attempt == 0:
                    continue  # the server closed an idle keep-alive connection: reconnect
                raise TemporaryFailure(f"{what}: {exc or type(exc).__name__}") from exc
            except TemporaryFailure:
                conn.close()
                raise
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise TemporaryFailure(f"{what}: {exc or type(exc).__name__}") from exc
            if resp.will_close:
                conn.close()
            else:
                self._give(host, conn)
            reply_headers = {k.lower(): v for k, v in resp.getheaders()}
            if status in (200, 206):
                length = reply_headers.get("content-length")
                if length is not None and int(length) != len(body):
                    raise TemporaryFailure(f"{what}: the body was cut short")
                return Reply(status, reply_headers, body)
            _raise_failure(status, body, what)
            return None  # redirects, signature or region trouble, the unknown: boto3
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the idle connections; the ones in use close when their GET ends."""
        with self._lock:
            self._closed = True
        _close_all(self._idle)


def _close_all(idle: dict[str, list[http.client.HTTPConnection]]) -> None:
    for conns in list(idle.values()):
        while conns:
            conns.pop().close()


def read_body(stream: Any, deadline: float | None, what: str) -> bytes:
    """A response body read to its end (``stream`` has ``read(n)``): a body cut short
    or one that takes past ``deadline`` (``time.monotonic``) is a
    :class:`TemporaryFailure`."""
    chunks = []
    try:
        while chunk := stream.read(CHUNK):
            chunks.append(chunk)
            if deadline is not None and time.monotonic() > deadline:
                raise TemporaryFailure(f"{what}: reading the body took too long")
    except (TimeoutError, http.client.IncompleteRead) as exc:
        raise TemporaryFailure(f"{what}: the body was cut short ({exc})") from exc
    return b"".join(chunks)


def _raise_failure(status: int, body: bytes, what: str) -> None:
    """Raise the error an S3 error reply means; return when it is not one known here."""
    m = _CODE.search(body)
    code = m.group(1).decode(errors="replace") if m else ""
    if status == 404:
        raise NotFound(f"{what}: no such {'bucket' if code == 'NoSuchBucket' else 'object'}")
    if status == 412:
        raise Corrupt(f"{what}: the object changed (precondition failed)")
    if status == 416:
        raise Corrupt(f"{what}: the object is shorter than recorded")
    if status in _TEMPORARY_STATUS or code in ("SlowDown", "RequestTimeout", "InternalError"):
        raise TemporaryFailure(f"{what}: server error {status} {code}".rstrip())
    if status == 403 and code in ("AccessDenied", "InvalidAccessKeyId", "AllAccessDisabled"):
        raise Unavailable(f"{what}: access denied ({code})")


def frozen(credentials: Any) -> Callable[[], Credentials]:
    """A credentials callable over a botocore credentials object (refreshed by it)."""

    def current() -> Credentials:
        c = credentials.get_frozen_credentials()
        return Credentials(c.access_key, c.secret_key, c.token)

    return current


def _connect_name(host: str) -> str:
    """The name to connect to, from a Host header: ``name``, ``name:port`` or
    ``[IPv6 literal]:port``."""
    if host.startswith("["):
        return host[1 : host.index("]")]
    return host.rsplit(":", 1)[0] if ":" in host else host
