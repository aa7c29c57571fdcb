"""The benchmarks' S3 server with a bucket's latency (``latency_ms``) and a
per-connection download cap (``rate_mbs``): answers stay right, connections do not
wait for each other.

Times are only bounded where the bound cannot flake: a paced answer can never come
sooner than its pacing allows; "concurrent" is asserted as "faster than the same
requests one after the other could possibly be", with a margin of seconds.
"""

from __future__ import annotations

import hashlib
import http.client
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.s3range import serve

DELAY_MS = 600
CONNECTIONS = 4


def _put(endpoint: str, path: str, body: bytes) -> None:
    conn = http.client.HTTPConnection(endpoint.removeprefix("http://"), timeout=30)
    try:
        conn.request("PUT", path, body=body)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
    finally:
        conn.close()


def _connections(endpoint: str, n: int) -> list[http.client.HTTPConnection]:
    conns = [
        http.client.HTTPConnection(endpoint.removeprefix("http://"), timeout=30) for _ in range(n)
    ]
    for c in conns:
        c.connect()
    return conns


@pytest.fixture
def slow(tmp_path: Path) -> Iterator[tuple[str, bytes]]:
    """A server whose answers come ``DELAY_MS`` after each request, with one object."""
    with serve(tmp_path / "s3", latency_ms=DELAY_MS) as srv:
        data = random.Random(3).randbytes(300 * 1024)  # over SMALL_BODY: the sendfile path
        _put(srv.endpoint, "/bkt", b"")
        _put(srv.endpoint, "/bkt/obj", data)
        yield srv.endpoint, data


def test_a_delayed_answer_is_right_and_not_early(slow: tuple[str, bytes]) -> None:
    endpoint, data = slow
    (conn,) = _connections(endpoint, 1)
    start = time.monotonic()
    conn.request("GET", "/bkt/obj", headers={"Range": "bytes=1000-200999"})
    resp = conn.getresponse()
    body = resp.read()
    elapsed = time.monotonic() - start
    assert resp.status == 206
    assert body == data[1000:201000]
    assert elapsed >= DELAY_MS / 1000  # a sleep never ends early
    # the same connection keeps working (keep-alive), delayed again
    conn.request("HEAD", "/bkt/obj")
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 200
    assert resp.getheader("Content-Length") == str(len(data))
    conn.close()


def test_requests_on_several_connections_are_delayed_together(slow: tuple[str, bytes]) -> None:
    """Four requests in flight on four connections: all answered, each right, in less
    time than four delays one after the other (which could not be any shorter)."""
    endpoint, data = slow
    conns = _connections(endpoint, CONNECTIONS)
    start = time.monotonic()
    for i, c in enumerate(conns):
        c.request("GET", "/bkt/obj", headers={"Range": f"bytes={i * 1000}-{i * 1000 + 999}"})
    bodies = [c.getresponse().read() for c in conns]
    elapsed = time.monotonic() - start
    assert bodies == [data[i * 1000 : i * 1000 + 1000] for i in range(CONNECTIONS)]
    assert elapsed < CONNECTIONS * DELAY_MS / 1000
    for c in conns:
        c.close()


def test_a_capped_connection_delivers_every_byte_at_no_more_than_its_rate(
    tmp_path: Path,
) -> None:
    rate_mbs = 2.0
    data = random.Random(4).randbytes(2_000_000)
    with serve(tmp_path / "s3", rate_mbs=rate_mbs) as srv:
        _put(srv.endpoint, "/bkt", b"")
        _put(srv.endpoint, "/bkt/obj", data)
        conns = _connections(srv.endpoint, 2)
        start = time.monotonic()
        for c in conns:
            c.request("GET", "/bkt/obj")
        bodies = [c.getresponse().read() for c in conns]
        elapsed = time.monotonic() - start
        for c in conns:
            c.close()
    assert [hashlib.sha256(b).digest() for b in bodies] == [hashlib.sha256(data).digest()] * 2
    one = len(data) / (rate_mbs * 1e6)  # 1 s: the least one capped answer can take
    assert elapsed >= one
    # each connection has its own cap: two answers at once beat two in a row
    assert elapsed < 2 * one


def test_the_command_line_takes_the_options_and_refuses_bad_ones(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "benchmarks.s3range", str(tmp_path / "s3"), "--port", "0"]
    bad = subprocess.run([*cmd, "--latency-ms", "-5"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert "--latency-ms: '-5': must be a finite number, 0 or more" in bad.stderr
    assert not (tmp_path / "s3").exists()  # nothing was started or made
    bad = subprocess.run([*cmd, "--rate-mbs", "fast"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert "'fast' is not a number" in bad.stderr
    proc = subprocess.Popen(
        [*cmd, "--latency-ms", "50", "--rate-mbs", "100"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.startswith(f"s3range: serving {tmp_path / 's3'} at http://127.0.0.1:")
        endpoint = line.rsplit(" ", 1)[1].strip()
        _put(endpoint, "/bkt", b"")
        _put(endpoint, "/bkt/k", b"hello")
        (conn,) = _connections(endpoint, 1)
        conn.request("GET", "/bkt/k")
        assert conn.getresponse().read() == b"hello"
        conn.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()
