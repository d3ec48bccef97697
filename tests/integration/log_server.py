"""Start `sealtrail log serve` as a real process on 127.0.0.1 and build trust for it.

Shared by the log service's integration tests (functional, durability, fuzzing).
"""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sealtrail.server.log_instance import LogDirectory
from tests.fakes.ca import FakeCA
from tests.fakes.tsa import FakeTSA
from tests.integration.serving import start_server

BIN = Path(sys.executable).parent
TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
IDENTITY = "https://github.com/example/project/.github/workflows/release.yml@refs/tags/v1.0.0"
ISSUER = "https://token.actions.githubusercontent.com"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class LogServer:
    """A running `sealtrail log serve DIR` process."""

    directory: Path
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    log_file: Path | None = None
    extra_args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def v2_url(self, name: str = "log1") -> str:
        return f"{self.url}/logs/{name}"

    def start(self, timeout: float = 60.0) -> None:
        port_file = self.directory.parent / f"{self.directory.name}.port"
        if port_file.exists():
            port_file.unlink()
        self.log_file = self.directory.parent / f"{self.directory.name}.log"
        self.process, self.port = start_server(
            [str(BIN / "sealtrail"), "log", "serve", str(self.directory), "--port",
             str(self.port), "--port-file", str(port_file), *self.extra_args],
            self.log_file, timeout=timeout)
        assert self.port == int(port_file.read_text())

    def kill(self) -> None:
        """SIGKILL: no chance to flush or shut down gracefully."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Trust:
    """A fake CA and TSA plus the log server's keys: a trusted root and signers."""

    server: LogServer
    ca: FakeCA = field(default_factory=FakeCA)
    tsa: FakeTSA = field(default_factory=FakeTSA)

    def trusted_root(self) -> dict[str, Any]:
        root = self.ca.trusted_root()
        root["tlogs"] = LogDirectory(str(self.server.directory)).trusted_root_tlogs(self.server.url)
        root["timestampAuthorities"] = [self.tsa.trusted_root_json_entry()]
        root["mediaType"] = TRUSTED_ROOT_MEDIA_TYPE
        return root

    def signer(self, identity: str = IDENTITY) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(timezone.utc) - timedelta(seconds=30)
        return key, self.ca.issue_leaf(key.public_key(), not_before=now, identity=identity,
                                       issuer=ISSUER)

    def timestamp(self, signature: bytes) -> bytes:
        # Bundles carry the TSA's whole TimeStampResp, as real clients store it.
        return self.tsa.response(signature, gen_time=datetime.now(timezone.utc))


def hashedrekord_v1(key: ec.EllipticCurvePrivateKey, cert: x509.Certificate,
                    artifact: bytes) -> tuple[dict[str, Any], bytes]:
    signature = key.sign(artifact, ec.ECDSA(hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    request = {"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
        "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(artifact).hexdigest()}},
        "signature": {"content": b64(signature), "publicKey": {"content": b64(pem)}}}}
    return request, signature


def hashedrekord_v2(key: ec.EllipticCurvePrivateKey, cert: x509.Certificate,
                    artifact: bytes) -> tuple[dict[str, Any], bytes]:
    signature = key.sign(artifact, ec.ECDSA(hashes.SHA256()))
    request = {"hashedRekordRequestV002": {
        "digest": b64(hashlib.sha256(artifact).digest()),
        "signature": {"content": b64(signature), "verifier": {
            "x509Certificate": {"rawBytes": b64(cert.public_bytes(serialization.Encoding.DER))},
            "keyDetails": "PKIX_ECDSA_P256_SHA_256"}}}}
    return request, signature


def message_bundle(cert: x509.Certificate, artifact: bytes, signature: bytes,
                   tlog_entry: dict[str, Any], timestamps: list[bytes] = ()) -> dict[str, Any]:
    material: dict[str, Any] = {
        "certificate": {"rawBytes": b64(cert.public_bytes(serialization.Encoding.DER))},
        "tlogEntries": [tlog_entry],
    }
    if timestamps:
        material["timestampVerificationData"] = {
            "rfc3161Timestamps": [{"signedTimestamp": b64(t)} for t in timestamps]}
    return {"mediaType": BUNDLE_MEDIA_TYPE, "verificationMaterial": material,
            "messageSignature": {"messageDigest": {"algorithm": "SHA2_256",
                                                   "digest": b64(hashlib.sha256(artifact).digest())},
                                 "signature": b64(signature)}}
