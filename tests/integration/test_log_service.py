"""The log service over real HTTP: bundles built from its responses verify with sealtrail and
with sigstore-python, for Rekor v1 and v2 entries; reads, proofs, tiles and search."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any, Iterator

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sealtrail.merkle import leaf_hash, verify_consistency, verify_inclusion
from sealtrail.models.checkpoint import Checkpoint, SignedNote
from sealtrail.models.trusted_root import TrustedRoot
from sealtrail.clients.rekor import RekorV1Client, RekorV2Client
from sealtrail.verify.policy import IdentityPolicy
from sealtrail.verify.verifier import Verifier
from tests.integration.log_server import (
    IDENTITY,
    ISSUER,
    LogServer,
    Trust,
    b64,
    hashedrekord_v1,
    hashedrekord_v2,
    message_bundle,
)

pytestmark = pytest.mark.integration
POLICY = IdentityPolicy(identity=IDENTITY, issuer=ISSUER)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LogServer]:
    log_server = LogServer(tmp_path_factory.mktemp("logsvc") / "instance")
    log_server.start()
    yield log_server
    log_server.stop()


@pytest.fixture(scope="module")
def trust(server: LogServer) -> Trust:
    return Trust(server)


@pytest.fixture(scope="module")
def verifier(trust: Trust) -> Verifier:
    return Verifier(TrustedRoot.from_dict(trust.trusted_root()))


def sigstore_python_verify(trust: Trust, artifact: bytes, bundle: dict[str, Any]) -> None:
    from sigstore.models import Bundle as SPBundle
    from sigstore.models import TrustedRoot as SPTrustedRoot
    from sigstore.verify import Verifier as SPVerifier
    from sigstore.verify.policy import Identity
    from sigstore_models.trustroot import v1 as trustroot_v1

    # sigstore-models parses strictly (extra="forbid"): this also vets the root's shape.
    inner = trustroot_v1.TrustedRoot.from_json(json.dumps(trust.trusted_root()))
    SPVerifier(trusted_root=SPTrustedRoot(inner)).verify_artifact(
        artifact, SPBundle.from_json(json.dumps(bundle)), Identity(identity=IDENTITY, issuer=ISSUER))


def test_v1_hashedrekord_bundle_verifies_with_sealtrail_and_sigstore_python(
        server: LogServer, trust: Trust, verifier: Verifier) -> None:
    key, cert = trust.signer()
    artifact = os.urandom(64)
    request, signature = hashedrekord_v1(key, cert, artifact)
    response = httpx.post(server.url + "/api/v1/log/entries", json=request, timeout=30)
    assert response.status_code == 201, response.text
    (entry_id,) = response.json()
    assert response.headers["ETag"] == entry_id[16:]
    assert response.headers["Location"] == f"/api/v1/log/entries/{entry_id}"
    from sealtrail.clients.rekor import tlog_entry_from_v1

    bundle = message_bundle(cert, artifact, signature, tlog_entry_from_v1(response.json()))
    result = verifier.verify_artifact(artifact, bundle, POLICY)
    assert result.identity == IDENTITY
    sigstore_python_verify(trust, artifact, bundle)
    # The same artifact presented as another fails: the log entry is bound to the digest.
    with pytest.raises(Exception) as info:
        verifier.verify_artifact(b"another artifact", bundle, POLICY)
    assert getattr(info.value, "code", None) == "DIGEST_MISMATCH"

    # A duplicate is refused with 409 and points at the existing entry.
    again = httpx.post(server.url + "/api/v1/log/entries", json=request, timeout=30)
    assert again.status_code == 409
    assert again.headers["Location"] == f"/api/v1/log/entries/{entry_id}"
    assert again.json()["code"] == 409


def test_v2_hashedrekord_with_timestamp_verifies_with_both(
        server: LogServer, trust: Trust, verifier: Verifier) -> None:
    key, cert = trust.signer()
    artifact = os.urandom(64)
    request, signature = hashedrekord_v2(key, cert, artifact)
    entry = RekorV2Client(server.v2_url()).create_entry(request)
    assert entry["kindVersion"] == {"kind": "hashedrekord", "version": "0.0.2"}
    bundle = message_bundle(cert, artifact, signature, entry, [trust.timestamp(signature)])
    verifier.verify_artifact(artifact, bundle, POLICY)
    sigstore_python_verify(trust, artifact, bundle)
    # Without the timestamp there is no verified time for a v2 entry.
    bare = message_bundle(cert, artifact, signature, entry)
    with pytest.raises(Exception) as info:
        verifier.verify_artifact(artifact, bare, POLICY)
    assert getattr(info.value, "code", None) == "NO_VERIFIED_TIME"
    # Duplicate: 409 with the existing index.
    again = httpx.post(server.v2_url() + "/api/v2/log/entries", json=request, timeout=30)
    assert again.status_code == 409 and again.headers["x-log-index"] == entry["logIndex"]


def _dsse(key: ec.EllipticCurvePrivateKey, statement: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    payload = json.dumps(statement).encode()
    payload_type = "application/vnd.in-toto+json"
    pae = b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type.encode(), len(payload), payload)
    signature = key.sign(pae, ec.ECDSA(hashes.SHA256()))
    return {"payload": b64(payload), "payloadType": payload_type,
            "signatures": [{"sig": b64(signature), "keyid": ""}]}, pae


def _statement(artifact: bytes) -> dict[str, Any]:
    return {"_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "artifact.bin", "digest": {"sha256": hashlib.sha256(artifact).hexdigest()}}],
            "predicateType": "https://slsa.dev/provenance/v1", "predicate": {}}


def _dsse_bundle(cert: Any, envelope: dict[str, Any], entry: dict[str, Any],
                 timestamps: list[bytes] = ()) -> dict[str, Any]:
    material: dict[str, Any] = {
        "certificate": {"rawBytes": b64(cert.public_bytes(serialization.Encoding.DER))},
        "tlogEntries": [entry]}
    if timestamps:
        material["timestampVerificationData"] = {
            "rfc3161Timestamps": [{"signedTimestamp": b64(t)} for t in timestamps]}
    return {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": material, "dsseEnvelope": envelope}


def test_dsse_entries_on_both_apis(server: LogServer, trust: Trust, verifier: Verifier) -> None:
    key, cert = trust.signer()
    artifact = os.urandom(32)
    envelope, pae = _dsse(key, _statement(artifact))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    # Rekor v1: dsse 0.0.1 with the envelope as a JSON string.
    v1 = RekorV1Client(server.url).create_entry({"apiVersion": "0.0.1", "kind": "dsse", "spec": {
        "proposedContent": {"envelope": json.dumps(envelope), "verifiers": [b64(pem)]}}})
    verifier.verify_artifact(artifact, _dsse_bundle(cert, envelope, v1), POLICY)
    # Rekor v2, the deprecated dsseRequestV002 (sigstore-js) ...
    der = b64(cert.public_bytes(serialization.Encoding.DER))
    verifier_json = {"x509Certificate": {"rawBytes": der}, "keyDetails": "PKIX_ECDSA_P256_SHA_256"}
    v2 = RekorV2Client(server.v2_url()).create_entry(
        {"dsseRequestV002": {"envelope": envelope, "verifiers": [verifier_json]}})
    signature = base64.b64decode(envelope["signatures"][0]["sig"])
    stamp = [trust.timestamp(signature)]
    verifier.verify_artifact(artifact, _dsse_bundle(cert, envelope, v2, stamp), POLICY)
    # ... and hashedrekord over PAE (sigstore-python, cosign v3).
    key2, cert2 = trust.signer()
    envelope2, pae2 = _dsse(key2, _statement(artifact))
    signature2 = base64.b64decode(envelope2["signatures"][0]["sig"])
    v2b = RekorV2Client(server.v2_url()).create_entry({"hashedRekordRequestV002": {
        "digest": b64(hashlib.sha256(pae2).digest()),
        "signature": {"content": b64(signature2), "verifier": {
            "x509Certificate": {"rawBytes": b64(cert2.public_bytes(serialization.Encoding.DER))},
            "keyDetails": "PKIX_ECDSA_P256_SHA_256"}}}})
    bundle = _dsse_bundle(cert2, envelope2, v2b, [trust.timestamp(signature2)])
    verifier.verify_artifact(artifact, bundle, POLICY)


def test_v1_reads_proofs_and_search(server: LogServer, trust: Trust) -> None:
    key, cert = trust.signer(identity="https://github.com/example/search-me/.github/workflows/r.yml@refs/heads/main")
    artifact = os.urandom(48)
    request, _ = hashedrekord_v1(key, cert, artifact)
    created = httpx.post(server.url + "/api/v1/log/entries", json=request, timeout=30).json()
    (entry_id,) = created
    entry = created[entry_id]
    uuid = entry_id[16:]
    by_uuid = httpx.get(f"{server.url}/api/v1/log/entries/{uuid}").json()
    by_id = httpx.get(f"{server.url}/api/v1/log/entries/{entry_id}").json()
    by_index = httpx.get(f"{server.url}/api/v1/log/entries", params={"logIndex": entry["logIndex"]}).json()
    assert list(by_uuid) == list(by_id) == list(by_index) == [entry_id]
    assert by_uuid[entry_id]["body"] == entry["body"]
    retrieved = httpx.post(f"{server.url}/api/v1/log/entries/retrieve",
                           json={"entryUUIDs": [uuid]}).json()
    assert [list(r) for r in retrieved] == [[entry_id]]
    retrieved = httpx.post(f"{server.url}/api/v1/log/entries/retrieve",
                           json={"entries": [request]}).json()
    assert [list(r) for r in retrieved] == [[entry_id]]
    # The inclusion proof of a read verifies against its checkpoint.
    proof = by_index[entry_id]["verification"]["inclusionProof"]
    note = SignedNote.from_text(proof["checkpoint"])
    checkpoint = Checkpoint.from_body(note.body)
    verify_inclusion(leaf_hash(base64.b64decode(entry["body"])), proof["logIndex"],
                     proof["treeSize"], [bytes.fromhex(h) for h in proof["hashes"]],
                     checkpoint.root_hash)
    # Log info and a consistency proof between an older and the current tree.
    info = httpx.get(f"{server.url}/api/v1/log").json()
    assert int(info["treeID"]) > 0 and info["treeSize"] >= 1
    size = info["treeSize"]
    consistency = httpx.get(f"{server.url}/api/v1/log/proof",
                            params={"firstSize": 1, "lastSize": size}).json()
    first_root = _root_of_first_entry(server)
    verify_consistency(1, size, [bytes.fromhex(h) for h in consistency["hashes"]], first_root,
                       bytes.fromhex(info["rootHash"]))
    # Search by digest, identity and key.
    digest = hashlib.sha256(artifact).hexdigest()
    assert uuid in httpx.post(f"{server.url}/api/v1/index/retrieve", json={"hash": f"sha256:{digest}"}).json()
    assert uuid in httpx.post(f"{server.url}/api/v1/index/retrieve",
                              json={"identity": "https://github.com/example/search-me/.github/workflows/r.yml@refs/heads/main"}).json()
    pem = cert.public_bytes(serialization.Encoding.PEM)
    assert uuid in httpx.post(f"{server.url}/api/v1/index/retrieve",
                              json={"publicKey": {"format": "x509", "content": b64(pem)}}).json()
    assert httpx.post(f"{server.url}/api/v1/index/retrieve",
                      json={"hash": "sha256:" + "0" * 64}).json() == []
    public_key = httpx.get(f"{server.url}/api/v1/log/publicKey")
    assert public_key.text.startswith("-----BEGIN PUBLIC KEY-----")


def _root_of_first_entry(server: LogServer) -> bytes:
    first = httpx.get(f"{server.url}/api/v1/log/entries", params={"logIndex": 0}).json()
    (only,) = first.values()
    return leaf_hash(base64.b64decode(only["body"]))


def test_v2_tiles_checkpoint_and_search(server: LogServer, trust: Trust) -> None:
    key, cert = trust.signer()
    artifact = os.urandom(40)
    request, _ = hashedrekord_v2(key, cert, artifact)
    entry = RekorV2Client(server.v2_url()).create_entry(request)
    checkpoint_response = httpx.get(server.v2_url() + "/checkpoint")
    assert checkpoint_response.status_code == 200
    assert checkpoint_response.headers["cache-control"] == "no-cache"
    checkpoint = Checkpoint.from_body(SignedNote.from_text(checkpoint_response.text).body)
    size = checkpoint.size
    assert size >= int(entry["logIndex"]) + 1
    # The level-0 tile holds the leaf hashes; the entry bundle holds the bodies.
    width = size % 256 or 256
    suffix = "" if size >= 256 and size % 256 == 0 else f".p/{width}"
    tile = httpx.get(server.v2_url() + "/tile/0/000" + suffix)
    assert tile.status_code == 200 and len(tile.content) == 32 * min(size, 256)
    assert "max-age" in tile.headers["cache-control"]
    index = int(entry["logIndex"])
    body = base64.b64decode(entry["canonicalizedBody"])
    assert tile.content[32 * index: 32 * index + 32] == leaf_hash(body)
    bundle = httpx.get(server.v2_url() + "/tile/entries/000" + suffix)
    assert bundle.status_code == 200 and body in bundle.content
    # Search: by artifact digest and by identity.
    found = httpx.get(server.v2_url() + "/api/v2/log/search",
                      params={"sha256": hashlib.sha256(artifact).hexdigest()}).json()
    assert entry["logIndex"] in found["logIndexes"]
    found = httpx.get(server.v2_url() + "/api/v2/log/search", params={"identity": IDENTITY}).json()
    assert entry["logIndex"] in found["logIndexes"]


@pytest.mark.parametrize("path, body, status", [
    ("/api/v1/log/entries", b"{not json", 400),
    ("/api/v1/log/entries", b'{"apiVersion": "0.0.1", "kind": "nope", "spec": {}}', 400),
    ("/api/v1/log/entries", b"[]", 400),
    ("/logs/log1/api/v2/log/entries", b'{"hashedRekordRequestV002": {"digest": 5}}', 400),
    ("/api/v1/log/entries/retrieve", b'{"logIndexes": "x"}', 400),
    ("/api/v1/index/retrieve", b'{"hash": "md5:00"}', 400),
])
def test_malformed_requests_get_json_4xx(server: LogServer, path: str, body: bytes, status: int) -> None:
    response = httpx.post(server.url + path, content=body,
                          headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()
    assert error["code"] == status and error["message"]


def test_oversized_body_and_unknown_paths(server: LogServer) -> None:
    response = httpx.post(server.url + "/api/v1/log/entries", content=b"x" * (5 * 1024 * 1024))
    assert response.status_code == 413 and response.json()["code"] == 413
    for path in ("/nope", "/logs/log1/tile/0/x1", "/logs/log1/tile/99/000",
                 "/api/v1/log/entries/zz", "/api/v1/log/entries?logIndex=99999999"):
        response = httpx.get(server.url + path)
        assert 400 <= response.status_code < 500, (path, response.status_code)
        assert response.json()["code"] == response.status_code


def test_v1_client_returns_the_existing_entry_for_a_resubmission(server: LogServer, trust: Trust,
                                                                 verifier: Verifier) -> None:
    # A retried POST whose first answer was lost gets 409: the client fetches the entry.
    key, cert = trust.signer()
    artifact = os.urandom(24)
    request, signature = hashedrekord_v1(key, cert, artifact)
    client = RekorV1Client(server.url)
    first = client.create_entry(request)
    again = client.create_entry(request)
    assert again["logIndex"] == first["logIndex"]
    assert again["canonicalizedBody"] == first["canonicalizedBody"]
    verifier.verify_artifact(artifact, message_bundle(cert, artifact, signature, again), POLICY)


def test_v2_entry_is_recovered_from_tiles_after_a_lost_answer(server: LogServer, trust: Trust,
                                                               verifier: Verifier) -> None:
    # The signer's answer to 409 on Rekor v2 (no read API): rebuild the entry from the tiles.
    from sealtrail.errors import LogEntryInvalidError
    from sealtrail.sign.recover import recover_v2_entry
    from sealtrail.net.http import RetryPolicy, http_client

    key, cert = trust.signer()
    artifact = os.urandom(24)
    request, signature = hashedrekord_v2(key, cert, artifact)
    client = RekorV2Client(server.v2_url())
    first = client.create_entry(request)
    with pytest.raises(LogEntryInvalidError) as info:
        client.create_entry(request)  # the retry of a request whose answer was lost
    assert info.value.actual == first["logIndex"]
    root = TrustedRoot.from_dict(trust.trusted_root())
    with http_client(RetryPolicy(timeout=30)) as http:
        recovered = recover_v2_entry(server.v2_url(), int(info.value.actual), root, http)
    assert recovered["canonicalizedBody"] == first["canonicalizedBody"]
    stamp = [trust.timestamp(signature)]
    verifier.verify_artifact(artifact, message_bundle(cert, artifact, signature, recovered, stamp),
                             POLICY)
