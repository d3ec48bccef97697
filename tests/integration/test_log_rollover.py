"""Shard rollover: frozen logs stay readable, refuse writes, and their bundles still verify;
the new Rekor v1 shard continues the global log index."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from sealtrail.models.trusted_root import TrustedRoot
from sealtrail.clients.rekor import tlog_entry_from_v1
from sealtrail.verify.policy import IdentityPolicy
from sealtrail.verify.verifier import Verifier
from tests.integration.log_server import (
    BIN,
    IDENTITY,
    ISSUER,
    LogServer,
    Trust,
    hashedrekord_v1,
    hashedrekord_v2,
    message_bundle,
)

pytestmark = pytest.mark.integration
POLICY = IdentityPolicy(identity=IDENTITY, issuer=ISSUER)


def _log_v1(server: LogServer, trust: Trust) -> tuple[bytes, dict]:
    key, cert = trust.signer()
    artifact = os.urandom(32)
    request, signature = hashedrekord_v1(key, cert, artifact)
    response = httpx.post(server.url + "/api/v1/log/entries", json=request, timeout=30)
    assert response.status_code == 201, response.text
    return artifact, message_bundle(cert, artifact, signature, tlog_entry_from_v1(response.json()))


def test_rollover_freezes_old_shards_and_continues_the_index(tmp_path: Path) -> None:
    server = LogServer(tmp_path / "instance")
    server.start()
    trust = Trust(server)
    try:
        old_bundles = [_log_v1(server, trust) for _ in range(3)]
        key, cert = trust.signer()
        request_v2, _ = hashedrekord_v2(key, cert, b"before rollover")
        assert httpx.post(server.v2_url() + "/api/v2/log/entries", json=request_v2,
                          timeout=30).status_code == 201
    finally:
        server.stop()
    for api in ("1", "2"):
        done = subprocess.run([str(BIN / "sealtrail"), "log", "rollover", str(server.directory),
                               "--api", api], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    assert "starts at global index 3" in subprocess.run(
        [str(BIN / "sealtrail"), "log", "rollover", str(server.directory), "--api", "1"],
        capture_output=True, text=True, timeout=60).stdout  # a second rollover of v1: shard 3
    server.start()
    try:
        verifier = Verifier(TrustedRoot.from_dict(trust.trusted_root()))
        # Old bundles still verify: the frozen shards are in the trusted root.
        for artifact, bundle in old_bundles:
            verifier.verify_artifact(artifact, bundle, POLICY)
        # The active v1 shard continues the global index; the frozen one is listed.
        artifact, bundle = _log_v1(server, trust)
        assert bundle["verificationMaterial"]["tlogEntries"][0]["logIndex"] == "3"
        verifier.verify_artifact(artifact, bundle, POLICY)
        info = httpx.get(server.url + "/api/v1/log").json()
        assert len(info["inactiveShards"]) == 2 and info["treeSize"] == 1
        # Entries of frozen shards are found by global index.
        old = httpx.get(server.url + "/api/v1/log/entries", params={"logIndex": 1}).json()
        (only,) = old.values()
        assert only["logIndex"] == 1
        # The frozen v2 log refuses writes with 405 and still serves its checkpoint.
        key, cert = trust.signer()
        request_v2, _ = hashedrekord_v2(key, cert, b"after rollover")
        refused = httpx.post(server.v2_url("log1") + "/api/v2/log/entries", json=request_v2, timeout=30)
        assert refused.status_code == 405 and refused.json()["reason"] == "LOG_FROZEN"
        assert httpx.get(server.v2_url("log1") + "/checkpoint").status_code == 200
        accepted = httpx.post(server.v2_url("log2") + "/api/v2/log/entries", json=request_v2, timeout=30)
        assert accepted.status_code == 201 and accepted.json()["logIndex"] == "0"
    finally:
        server.stop()


def test_tlogs_command_prints_trusted_root_entries(tmp_path: Path) -> None:
    from sealtrail.server.log_instance import LogDirectory

    LogDirectory(str(tmp_path / "logs")).create("127.0.0.1")
    done = subprocess.run([str(BIN / "sealtrail"), "log", "tlogs", str(tmp_path / "logs"),
                           "--base-url", "http://127.0.0.1:3000"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    import json

    tlogs = json.loads(done.stdout)
    assert [t["baseUrl"] for t in tlogs] == ["http://127.0.0.1:3000", "http://127.0.0.1:3000/logs/log1"]
    # They parse as a trusted root, keys and all.
    root = TrustedRoot.from_dict({"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
                                  "tlogs": tlogs})
    assert [log.key.family for log in root.tlogs] == ["ecdsa", "ed25519"]
