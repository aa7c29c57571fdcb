"""A fault-injecting HTTP proxy in front of the test S3 server.

A real server misbehaving, not a patched client: boto3 connects to this proxy, which
forwards every request to moto and, when armed, spoils the answers to the next N
object GETs (or PUTs):

- ``"500"``: answer HTTP 500 ``InternalError`` without asking moto;
- ``"delay"``: wait ``seconds`` before answering;
- ``"hang"``: never answer (until the proxy stops or ``seconds`` pass);
- ``"reset"``: close the connection without an answer;
- ``"truncate"``: send the headers, half the body, and close (a cut connection);
- ``"short"``: a consistent answer whose body and Content-Length are half the object;
- ``"flip"``: flip one byte in the middle of the body (checksum headers removed, so
  only the client's own verification can notice).

:meth:`FaultProxy.stop` closes the listener and every connection: the server is gone.
The proxy also counts requests by method (``count("PUT", "blobs/")``) so tests can
tell that a blob was not uploaded twice.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import socketserver
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

_ERROR_500 = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
    b"<Message>injected</Message></Error>"
)


@dataclass
class Fault:
    """One armed fault."""

    kind: str
    times: int
    match: str = ""
    seconds: float = 0.0
    method: str = "GET"


@dataclass
class FaultProxy:
    """The proxy; ``endpoint`` is what the client under test uses."""

    upstream: str
    endpoint: str = ""
    requests: list[tuple[str, str]] = field(default_factory=list)
    agents: list[tuple[str, str, str]] = field(default_factory=list)
    """``(method, path, User-Agent)`` of every request."""
    faults: list[Fault] = field(default_factory=list)
    injected: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._stopped = threading.Event()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    # -- control ----------------------------------------------------------------------

    def fail(
        self,
        kind: str,
        times: int = 1,
        match: str = "",
        seconds: float = 0.0,
        method: str = "GET",
    ) -> None:
        """Spoil the next ``times`` object requests of ``method`` (GET by default)
        whose path contains ``match``."""
        assert kind in {"500", "delay", "hang", "reset", "truncate", "short", "flip"}
        with self._lock:
            self.faults.append(Fault(kind, times, match, seconds, method))

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self.faults.clear()

    def agents_of(self, method: str, contains: str = "") -> list[str]:
        """The User-Agent of each request of ``method`` whose path contains ``contains``."""
        with self._lock:
            return [a for m, p, a in self.agents if m == method and contains in p]

    def count(self, method: str, contains: str = "") -> int:
        """How many requests of ``method`` whose path contains ``contains`` came by."""
        with self._lock:
            return sum(1 for m, p in self.requests if m == method and contains in p)

    def stop(self) -> None:
        """Close the listener and every connection (the server is gone)."""
        self._stopped.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for conn in list(self._conns):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    conn.close()

    # -- serving ----------------------------------------------------------------------

    def _take(self, method: str, path: str) -> Fault | None:
        if path.split("?")[0].count("/") < 2:
            return None  # only object requests (path style: /bucket/key)
        with self._lock:
            for fault in self.faults:
                if fault.method == method and fault.match in path and fault.times > 0:
                    fault.times -= 1
                    self.injected += 1
                    if fault.times == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def _serve(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.add(conn)
        up = urlsplit(self.upstream)
        upstream = http.client.HTTPConnection(up.hostname or "127.0.0.1", up.port, timeout=60)
        reader = conn.makefile("rb")
        try:
            while not self._stopped.is_set():
                request = _read_request(reader, conn)
                if request is None:
                    return
                method, path, headers, body = request
                agent = next((v for k, v in headers if k.lower() == "user-agent"), "")
                with self._lock:
                    self.requests.append((method, path))
                    self.agents.append((method, path, agent))
                fault = self._take(method, path)
                if fault is not None and fault.kind == "500":
                    conn.sendall(_response(500, "Internal Server Error", [], _ERROR_500))
                    continue
                if fault is not None and fault.kind == "reset":
                    return
                if fault is not None and fault.kind == "hang":
                    self._stopped.wait(fault.seconds or 3600)
                    return
                if fault is not None and fault.kind == "delay":
                    time.sleep(fault.seconds)
                upstream.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
                for name, value in headers:
                    upstream.putheader(name, value)
                upstream.endheaders(body or None)
                resp = upstream.getresponse()
                data = resp.read()
                out_headers = [
                    (k, v)
                    for k, v in resp.getheaders()
                    if k.lower() not in ("transfer-encoding", "connection", "content-length")
                ]
                length = len(data)
                if method == "HEAD":
                    length = int(resp.getheader("Content-Length") or 0)
                if fault is not None and fault.kind == "truncate" and len(data) > 1:
                    conn.sendall(_head(resp.status, resp.reason, out_headers, len(data)))
                    conn.sendall(data[: len(data) // 2])
                    return
                if fault is not None and fault.kind == "short" and len(data) > 1:
                    data = data[: len(data) // 2]
                    length = len(data)
                if fault is not None and fault.kind == "flip" and data:
                    spoiled = bytearray(data)
                    spoiled[len(spoiled) // 2] ^= 0x01
                    data = bytes(spoiled)
                    out_headers = [
                        (k, v) for k, v in out_headers if not k.lower().startswith("x-amz-checksum")
                    ]
                conn.sendall(_head(resp.status, resp.reason, out_headers, length))
                if method != "HEAD":
                    conn.sendall(data)
        except OSError:
            return
        finally:
            upstream.close()
            with contextlib.suppress(OSError):
                reader.close()
            with contextlib.suppress(OSError):
                conn.close()
            with self._lock:
                self._conns.discard(conn)


def _read_request(
    reader: object, conn: socket.socket
) -> tuple[str, str, list[tuple[str, str]], bytes] | None:
    line = reader.readline()  # type: ignore[attr-defined]
    if not line:
        return None
    method, path, _version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    headers: list[tuple[str, str]] = []
    while True:
        h = reader.readline()  # type: ignore[attr-defined]
        if h in (b"\r\n", b"\n", b""):
            break
        name, _, value = h.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))
    lower = {k.lower(): v for k, v in headers}
    if lower.get("expect", "").lower() == "100-continue":
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        headers = [(k, v) for k, v in headers if k.lower() != "expect"]
    body = b""
    if lower.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int(reader.readline().split(b";")[0].strip() or b"0", 16)  # type: ignore[attr-defined]
            if size == 0:
                while reader.readline() not in (b"\r\n", b"\n", b""):  # type: ignore[attr-defined]
                    pass
                break
            parts.append(reader.read(size))  # type: ignore[attr-defined]
            reader.readline()  # type: ignore[attr-defined]
        body = b"".join(parts)
        headers = [(k, v) for k, v in headers if k.lower() != "transfer-encoding"]
        headers.append(("Content-Length", str(len(body))))
    elif "content-length" in lower:
        body = reader.read(int(lower["content-length"]))  # type: ignore[attr-defined]
    return method, path, headers, body


def _head(status: int, reason: str, headers: list[tuple[str, str]], length: int) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _response(status: int, reason: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    return _head(status, reason, [*headers, ("Content-Type", "application/xml")], len(body)) + body
