"""Durability: concurrent writers over HTTP while the log server is killed with SIGKILL and
restarted several times. Afterwards every acknowledged entry is at its index, no index was
used twice, and the final checkpoint is consistent with every checkpoint seen before.

The kills are placed by events, not by sleeping: each comes after a random number of
acknowledgements since the last restart, and the restart after the writers have found
the server down, so every round makes progress and interrupts requests on any machine."""

from __future__ import annotations

import base64
import hashlib
import os
import random
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sealtrail.merkle import verify_consistency
from sealtrail.models.checkpoint import Checkpoint, SignedNote
from sealtrail.models.trusted_root import TrustedRoot
from sealtrail.server.log_instance import LogDirectory
from sealtrail.verify._checkpoint import verify_checkpoint
from tests.integration.log_server import LogServer, b64

pytestmark = pytest.mark.integration

KILLS = 4
WRITERS_PER_API = 6
# A bound on waiting for the writers to make progress: a safety net, never a schedule.
PATIENCE = 120.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Acked:
    api: int
    index: int
    body: bytes
    checkpoint: str


@dataclass
class Ledger:
    acked: list[Acked] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    errors: int = 0

    def add(self, item: Acked) -> None:
        with self.changed:
            self.acked.append(item)
            self.changed.notify_all()

    def error(self) -> None:
        with self.changed:
            self.errors += 1
            self.changed.notify_all()

    def wait_for(self, what: str, predicate: Callable[[Ledger], bool]) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: predicate(self), PATIENCE), what


def _request(api: int, key: ec.EllipticCurvePrivateKey, pem: bytes, der: bytes) -> dict:
    artifact = os.urandom(32)
    signature = key.sign(artifact, ec.ECDSA(hashes.SHA256()))
    if api == 1:
        return {"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(artifact).hexdigest()}},
            "signature": {"content": b64(signature), "publicKey": {"content": b64(pem)}}}}
    return {"hashedRekordRequestV002": {
        "digest": b64(hashlib.sha256(artifact).digest()),
        "signature": {"content": b64(signature), "verifier": {
            "publicKey": {"rawBytes": b64(der)}, "keyDetails": "PKIX_ECDSA_P256_SHA_256"}}}}


def _writer(api: int, url: str, ledger: Ledger, stop: threading.Event, up: threading.Event
            ) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    path = "/api/v1/log/entries" if api == 1 else "/logs/log1/api/v2/log/entries"
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            try:
                response = client.post(url + path, json=_request(api, key, pem, der))
            except httpx.HTTPError:
                ledger.error()
                up.wait(PATIENCE)  # the server is down: try again once it is back
                continue
            if response.status_code != 201:
                continue  # e.g. 503 during shutdown; nothing was acknowledged
            data = response.json()
            if api == 1:
                ((_, entry),) = data.items()
                body = base64.b64decode(entry["body"])
                proof = entry["verification"]["inclusionProof"]
                ledger.add(Acked(1, proof["logIndex"], body, proof["checkpoint"]))
            else:
                ledger.add(Acked(2, int(data["logIndex"]), base64.b64decode(data["canonicalizedBody"]),
                                 data["inclusionProof"]["checkpoint"]["envelope"]))


def _stored_bodies(server: LogServer, client: httpx.Client, api: int, indexes: list[int]) -> dict[int, bytes]:
    """What the log now holds at ``indexes`` (read back over its public API)."""
    found: dict[int, bytes] = {}
    if api == 1:
        for start in range(0, len(indexes), 10):  # retrieve takes at most 10 at a time
            chunk = indexes[start:start + 10]
            response = client.post(f"{server.url}/api/v1/log/entries/retrieve",
                                   json={"logIndexes": chunk})
            for item in response.json():
                ((_, entry),) = item.items()
                found[entry["logIndex"]] = base64.b64decode(entry["body"])
        return found
    # Rekor v2 has no entry read API: read the entry bundles, one per 256 entries.
    from sealtrail.merkle.tiles import decode_entry_bundle, entries_path

    size = Checkpoint.from_body(SignedNote.from_text(
        client.get(server.v2_url() + "/checkpoint").text).body).size
    for tile_index in sorted({i // 256 for i in indexes}):
        width = None if (tile_index + 1) * 256 <= size else size - tile_index * 256
        response = client.get(f"{server.v2_url()}/{entries_path(tile_index, width)}")
        assert response.status_code == 200, response.text
        for offset, body in enumerate(decode_entry_bundle(response.content)):
            found[tile_index * 256 + offset] = body
    return found


def test_sigkill_during_concurrent_writes_loses_nothing(tmp_path: Path) -> None:
    server = LogServer(tmp_path / "instance", port=_free_port())
    server.start()
    ledger = Ledger()
    stop = threading.Event()
    up = threading.Event()
    up.set()
    threads = [threading.Thread(target=_writer, args=(api, server.url, ledger, stop, up),
                                daemon=True)
               for api in (1, 2) for _ in range(WRITERS_PER_API)]
    for thread in threads:
        thread.start()
    rng = random.Random(1234)

    def progress(count: int) -> None:
        target = len(ledger.acked) + count
        ledger.wait_for(f"{count} more acknowledgements", lambda led: len(led.acked) >= target)

    try:
        for _ in range(KILLS):
            progress(rng.randint(10, 80))  # the kill lands anywhere in the stream
            up.clear()
            errors = ledger.errors
            server.kill()
            ledger.wait_for("a writer finding the server down", lambda led: led.errors > errors)
            server.start()
            up.set()
        progress(20)
    finally:
        stop.set()
        up.set()
        for thread in threads:
            thread.join(60)
    try:
        assert len(ledger.acked) > 50, "the writers should have made progress between kills"
        assert ledger.errors > 0, "the kills should have interrupted some requests"
        # No index acknowledged twice (per log), and every acknowledged entry is where it was said to be.
        for api in (1, 2):
            mine = [a for a in ledger.acked if a.api == api]
            indexes = [a.index for a in mine]
            assert len(indexes) == len(set(indexes)), f"an index was used twice in the v{api} log"
            with httpx.Client(timeout=30) as client:
                stored = _stored_bodies(server, client, api, indexes)
            for item in mine:
                assert stored.get(item.index) == item.body, f"v{api} entry {item.index} was lost"
        # The final checkpoints are consistent with every checkpoint a client was given.
        root = TrustedRoot.from_dict({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": LogDirectory(str(server.directory)).trusted_root_tlogs(server.url)})
        logs = {1: root.tlogs[0], 2: root.tlogs[1]}
        client = httpx.Client(timeout=30)
        for api in (1, 2):
            latest_note = (client.get(f"{server.url}/api/v1/log").json()["signedTreeHead"]
                           if api == 1 else client.get(server.v2_url() + "/checkpoint").text)
            latest = verify_checkpoint(latest_note, logs[api])
            seen = {a.checkpoint for a in ledger.acked if a.api == api}
            for note in seen:
                old = verify_checkpoint(note, logs[api])
                assert old.size <= latest.size
                if old.size == latest.size:
                    assert old.root_hash == latest.root_hash
                    continue
                proof = _consistency(server, client, api, old.size, latest.size)
                verify_consistency(old.size, latest.size, proof, old.root_hash, latest.root_hash)
        client.close()
    finally:
        server.stop()


def _consistency(server: LogServer, client: httpx.Client, api: int, old: int, new: int) -> list[bytes]:
    if api == 1:
        data = client.get(f"{server.url}/api/v1/log/proof",
                          params={"firstSize": old, "lastSize": new}).json()
        return [bytes.fromhex(h) for h in data["hashes"]]
    # For the v2 log, compute the proof from its public tiles like a monitor would.
    from sealtrail.merkle.tile_proofs import consistency_proof_from_tiles

    def fetch(path: str) -> bytes:
        response = client.get(f"{server.v2_url()}/{path}")
        assert response.status_code == 200, (path, response.text)
        return response.content

    return consistency_proof_from_tiles(fetch, old, new)
