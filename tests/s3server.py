"""A real S3 server on loopback for the tests: ``moto_server`` on a free port.

Started once per test session (see the ``s3_server`` fixture in ``conftest.py``) and
terminated by pid at the end. Nothing is patched: boto3 talks HTTP to it exactly as
it would to any S3-compatible server.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

ACCESS_KEY = "dlfs-test-access-key"
SECRET_KEY = "dlfs-test-secret-key-never-stored"
REGION = "us-east-1"


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class S3Server:
    """A running moto server."""

    endpoint: str
    proc: subprocess.Popen[bytes]
    buckets: list[str] = field(default_factory=list)

    def client(self, endpoint: str | None = None) -> Any:
        """A plain boto3 client for arranging and inspecting test data."""
        return boto3.client(
            "s3",
            endpoint_url=endpoint or self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 2}),
        )

    def bucket(self, versioned: bool = False) -> str:
        """A new, empty bucket with a unique name."""
        name = f"t-{uuid.uuid4().hex[:12]}"
        c = self.client()
        c.create_bucket(Bucket=name)
        if versioned:
            c.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        self.buckets.append(name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> dict[str, Any]:
        """Every object under ``prefix``: key -> listing entry."""
        out = {}
        for page in (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        ):
            for o in page.get("Contents", []):
                out[o["Key"]] = o
        return out


def start(log: Path) -> S3Server:
    """Start ``moto_server`` on 127.0.0.1 and wait until it answers."""
    port = free_port()
    exe = Path(sys.executable).with_name("moto_server")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(exe), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if time.monotonic() > deadline:
                stop(S3Server(endpoint, proc))
                raise RuntimeError("moto_server did not start within 30 s") from None
            time.sleep(0.05)
    return S3Server(endpoint, proc)


def stop(server: S3Server) -> None:
    """Terminate the server by its pid (then kill it if it lingers)."""
    proc = server.proc
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
