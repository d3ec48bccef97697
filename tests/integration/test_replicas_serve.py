"""Several `sealtrail serve` processes on one instance configuration: replicas (issue 16).

The instance keeps its logs' sequencers, the CA's record and the CT log in PostgreSQL and
its tiles in an S3-compatible bucket (SeaweedFS), both real servers started by the tests.
Each replica is a separate process with its own port; clients alternate between them.

- sigstore-python and sealtrail sign against alternating replicas; every bundle verifies;
  search finds every entry from either replica;
- a hammer of writers on every replica and readers comparing checkpoints across replicas,
  during which the integrator's process is killed with SIGKILL: another replica takes
  over, no acknowledged entry is lost, no index is used twice, and every checkpoint any
  client saw is consistent with the final one;
- a non-integrator killed; PostgreSQL restarted under load; the object store stopped:
  writes are pushed back (429/503 with Retry-After) or retried, and nothing acknowledged
  is lost.

Failover time is measured by `make bench`, not asserted here (no wall-time expectations in
tests); these tests wait for conditions, bounded by a generous patience.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import random
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sealtrail.merkle import verify_consistency, verify_inclusion
from tests.integration.instance_server import BIN, free_port, run
from tests.integration.postgres import PostgresCluster, database, postgres_cluster
from tests.integration.s3 import SeaweedS3, s3_credentials, s3_server
from tests.integration.serving import PATIENCE, poll_until, start_server

pytestmark = pytest.mark.integration

__all__ = ["database", "postgres_cluster", "s3_credentials", "s3_server"]

_databases = itertools.count()




@dataclass
class Replica:
    """One `sealtrail serve` process of the instance."""

    name: str
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def health(self) -> dict[str, Any]:
        answer: dict[str, Any] = httpx.get(self.url + "/healthz", timeout=10).json()
        return answer

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Deployment:
    """An instance on PostgreSQL + S3 and its replicas."""

    directory: Path
    public_port: int
    replicas: list[Replica] = field(default_factory=list)
    _names: Iterator[int] = field(default_factory=itertools.count)

    def start(self, port: int = 0) -> Replica:
        name = f"replica{next(self._names)}"
        port_file = self.directory.parent / f"{name}.port"
        process, bound = start_server(
            [str(BIN / "sealtrail"), "serve", str(self.directory), "--port", str(port),
             "--port-file", str(port_file)], self.directory.parent / f"{name}.log")
        replica = Replica(name, process, bound)
        self.replicas.append(replica)
        return replica

    def trust_config_for(self, replica: Replica) -> Path:
        """The instance's client trust config, with its service URLs on ``replica``."""
        text = (self.directory / "trust" / "trust_config.json").read_text()
        path = self.directory.parent / f"trust_config.{replica.name}.json"
        path.write_text(text.replace(f"127.0.0.1:{self.public_port}",
                                     f"127.0.0.1:{replica.port}"))
        return path

    def token(self, email: str) -> str:
        return run(str(BIN / "sealtrail"), "token", "email", email, "--instance",
                   str(self.directory)).stdout.strip()

    def integrator(self, log: str = "rekor") -> Replica | None:
        for replica in self.replicas:
            if replica.alive() and replica.health()["logs"][log]["integrator"]:
                return replica
        return None

    def stop(self) -> None:
        for replica in self.replicas:
            replica.stop()


@pytest.fixture
def deployment(tmp_path: Path, database: str, s3_credentials: SeaweedS3) -> Iterator[Deployment]:
    bucket = f"replicas-{os.getpid()}-{next(_databases)}"
    s3_credentials.create_bucket(bucket)
    port = free_port()
    directory = tmp_path / "instance"
    run(str(BIN / "sealtrail"), "init", str(directory), "--port", str(port),
        "--builtin-issuer", "--database", database, "--tiles", f"s3://{bucket}/prod",
        "--tiles-endpoint", s3_credentials.endpoint_url)
    deployed = Deployment(directory, port)
    try:
        yield deployed
    finally:
        deployed.stop()




def _until(condition: Callable[[], bool], what: str) -> None:
    """Poll a replica-visible condition; a replica restarting or killed is "not yet"."""
    poll_until(condition, what, tolerate=(httpx.HTTPError,))


# -- the acceptance: real clients against alternating replicas -------------------------------


def test_clients_sign_against_alternating_replicas_and_search_finds_everything(
        deployment: Deployment, tmp_path: Path) -> None:
    first = deployment.start(deployment.public_port)
    second = deployment.start()
    _until(lambda: deployment.integrator() is not None, "an integrator")
    trusted_root = deployment.directory / "trust" / "trusted_root.json"
    issuer = f"http://127.0.0.1:{deployment.public_port}/oidc"
    signed: list[tuple[Path, str, Replica]] = []
    for n, (client, version, replica) in enumerate([
            ("sealtrail", "1", first), ("sealtrail", "2", second),
            ("sigstore", "1", second), ("sigstore", "2", first),
            ("sealtrail", "1", second), ("sigstore", "1", first)]):
        artifact = tmp_path / f"artifact-{n}.txt"
        artifact.write_bytes(f"release {n} through {replica.name}\n".encode())
        identity = f"dev{n}@example.com"
        config = deployment.trust_config_for(replica)
        token = deployment.token(identity)
        if client == "sealtrail":
            run(str(BIN / "sealtrail"), "sign", str(artifact), "--trust-config", str(config),
                "--rekor-version", version, "--identity-token", token)
        else:
            run(str(BIN / "sigstore"), "--trust-config", str(config), "sign",
                "--rekor-version", version, "--identity-token", token, "--bundle",
                f"{artifact}.sigstore.json", str(artifact))
        signed.append((artifact, identity, replica))
    for artifact, identity, _ in signed:
        done = run(str(BIN / "sealtrail"), "verify", str(artifact), "--trusted-root",
                   str(trusted_root), "--certificate-identity", identity,
                   "--certificate-oidc-issuer", issuer)
        assert identity in done.stdout
        run(str(BIN / "sigstore"), "--trust-config", str(deployment.trust_config_for(first)),
            "verify", "identity", "--bundle", f"{artifact}.sigstore.json",
            "--cert-identity", identity, "--cert-oidc-issuer", issuer, str(artifact))
    # Search by artifact digest finds every entry from either replica, whichever replica
    # logged it: Rekor v1's index API, and the v2 log's search (sealtrail's addition).
    for artifact, _, _ in signed:
        digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
        bundle = json.loads(Path(f"{artifact}.sigstore.json").read_text())
        entry = bundle["verificationMaterial"]["tlogEntries"][0]
        for replica in (first, second):
            if entry["kindVersion"]["version"] == "0.0.1":
                found = httpx.post(replica.url + "/api/v1/index/retrieve",
                                   json={"hash": "sha256:" + digest}, timeout=30).json()
                assert len(found) == 1, (replica.name, artifact.name, found)
            else:
                found = httpx.get(replica.url + "/logs/log1/api/v2/log/search",
                                  params={"sha256": digest}, timeout=30).json()["logIndexes"]
                assert found == [entry["logIndex"]], (replica.name, artifact.name, found)
    health = [r.health() for r in (first, second)]
    for log in ("rekor", "log1"):
        assert sorted(h["logs"][log]["integrator"] for h in health) == [False, True]
    assert sorted(h["ctLog"]["integrator"] for h in health) == [False, True]


# -- load and failures --------------------------------------------------------------------------

_KEY = ec.generate_private_key(ec.SECP256R1())
_PEM = _KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)


def _entry(n: int) -> dict[str, Any]:
    """A distinct, validly signed hashedrekord entry (Rekor v1)."""
    artifact = f"artifact {n} {os.getpid()}".encode()
    signature = _KEY.sign(artifact, ec.ECDSA(hashes.SHA256()))
    return {"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
        "data": {"hash": {"algorithm": "sha256",
                          "value": hashlib.sha256(artifact).hexdigest()}},
        "signature": {"content": base64.b64encode(signature).decode(),
                      "publicKey": {"content": base64.b64encode(_PEM).decode()}}}}


class Load:
    """Writers on every live replica, readers recording checkpoints from every replica.

    A writer sends each entry until some replica acknowledges it (201, or 409 naming the
    index an earlier, unanswered attempt got); 429, 503 and connection failures are
    retried, as real clients do. What it records is what clients were told.
    """

    def __init__(self, replicas: list[Replica], writers: int = 4) -> None:
        self.replicas = replicas
        self.acknowledged: dict[int, str] = {}  # entry number -> uuid
        self.indexes: dict[int, int] = {}  # entry number -> log index
        self.checkpoints: list[tuple[int, str]] = []  # (size, root hex) as clients saw
        self.pushed_back = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._numbers = itertools.count()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._write, daemon=True)
                         for _ in range(writers)]
        self._threads.append(threading.Thread(target=self._read, daemon=True))

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(PATIENCE)

    def live(self) -> list[Replica]:
        return [r for r in self.replicas if r.alive()]

    def count(self) -> int:
        with self._lock:
            return len(self.acknowledged)

    def _write(self) -> None:
        with httpx.Client(timeout=30) as http:
            while not self._stop.is_set():
                n = next(self._numbers)
                entry = _entry(n)
                while not self._stop.is_set():
                    replica = random.choice(self.live() or self.replicas)
                    try:
                        answer = http.post(replica.url + "/api/v1/log/entries", json=entry)
                    except httpx.HTTPError:
                        continue  # killed or restarting: another replica, or later
                    if answer.status_code == 201:
                        (uuid, body), = answer.json().items()
                        self._record(n, uuid, int(body["logIndex"]))
                        break
                    if answer.status_code == 409:
                        uuid = answer.headers["ETag"].strip('"')
                        found = http.get(replica.url + f"/api/v1/log/entries/{uuid}")
                        if found.status_code == 200:
                            (uuid, body), = found.json().items()
                            self._record(n, uuid, int(body["logIndex"]))
                            break
                        continue  # sequenced, not yet in a checkpoint: ask again
                    if answer.status_code in (429, 503):
                        assert answer.headers.get("Retry-After"), answer.headers
                        with self._lock:
                            self.pushed_back += 1
                        self._stop.wait(0.05)  # the client's back-off, not a sync
                        continue
                    with self._lock:
                        self.errors.append(f"{answer.status_code} {answer.text[:200]}")
                    return

    def _record(self, n: int, uuid: str, index: int) -> None:
        with self._lock:
            self.acknowledged[n] = uuid
            self.indexes[n] = index

    def _read(self) -> None:
        with httpx.Client(timeout=30) as http:
            while not self._stop.is_set():
                for replica in self.live():
                    try:
                        info = http.get(replica.url + "/api/v1/log").json()
                    except (httpx.HTTPError, ValueError):
                        continue
                    with self._lock:
                        self.checkpoints.append((int(info["treeSize"]), info["rootHash"]))
                self._stop.wait(0.05)  # a reader's pace, not a sync


def _check_nothing_lost(load: Load, survivor: Replica) -> None:
    """Every acknowledged entry is in the survivor's log at its index, with a valid
    inclusion proof; no index twice; every checkpoint seen is consistent with the last."""
    assert not load.errors, load.errors[:5]
    indexes = list(load.indexes.values())
    assert len(set(indexes)) == len(indexes), "an index was given to two entries"
    top = max(indexes)
    _until(lambda: httpx.get(survivor.url + "/api/v1/log", timeout=10).json()["treeSize"]
                > top, "a checkpoint covering every acknowledged entry")
    final = httpx.get(survivor.url + "/api/v1/log", timeout=10).json()
    size, root = int(final["treeSize"]), bytes.fromhex(final["rootHash"])
    # Every other live replica publishes the same tree: the survivor's inclusion proofs
    # are checked against the root another replica serves.
    published = {size: root.hex()}
    for other in load.live():
        if other is not survivor:
            _until(lambda: httpx.get(other.url + "/api/v1/log", timeout=10).json()
                        ["treeSize"] >= size, f"{other.name} to publish the final tree")
            info = httpx.get(other.url + "/api/v1/log", timeout=10).json()
            assert (info["treeSize"], info["rootHash"]) == (size, root.hex())
    cross_checked = 0
    with httpx.Client(timeout=30) as http:
        for n, uuid in load.acknowledged.items():
            (found_uuid, entry), = http.get(survivor.url + f"/api/v1/log/entries/{uuid}"
                                            ).json().items()
            assert entry["logIndex"] == load.indexes[n]
            proof = entry["verification"]["inclusionProof"]
            leaf = hashlib.sha256(b"\x00" + base64.b64decode(entry["body"])).digest()
            verify_inclusion(leaf, proof["logIndex"], proof["treeSize"],
                             [bytes.fromhex(h) for h in proof["hashes"]],
                             bytes.fromhex(proof["rootHash"]))
            assert published[proof["treeSize"]] == proof["rootHash"]
            cross_checked += 1
        for seen_size, seen_root in set(load.checkpoints):
            assert seen_size <= size, "a client saw a bigger tree than the final one"
            if seen_size == 0:
                continue
            answer = http.get(survivor.url + "/api/v1/log/proof",
                              params={"firstSize": seen_size, "lastSize": size}).json()
            verify_consistency(seen_size, size, [bytes.fromhex(h) for h in answer["hashes"]],
                               bytes.fromhex(seen_root), root)
    assert cross_checked == len(load.acknowledged)


def test_killing_the_integrator_under_load_loses_nothing(deployment: Deployment) -> None:
    replicas = [deployment.start(deployment.public_port), deployment.start(),
                deployment.start()]
    _until(lambda: deployment.integrator() is not None, "an integrator")
    load = Load(replicas)
    load.start()
    try:
        _until(lambda: load.count() >= 40, "entries acknowledged before the kill")
        victim = deployment.integrator()
        assert victim is not None
        victim.kill()
        _until(lambda: deployment.integrator() not in (None, victim),
                    "another replica to take over")
        before = load.count()
        _until(lambda: load.count() >= before + 40, "entries acknowledged after")
    finally:
        load.stop()
    survivor = deployment.integrator()
    assert survivor is not None and survivor is not victim
    _check_nothing_lost(load, survivor)
    # Exactly one integrator per log among the live replicas.
    live = [r.health() for r in replicas if r.alive()]
    for log in ("rekor", "log1"):
        assert [h["logs"][log]["integrator"] for h in live].count(True) == 1


def test_killing_a_follower_under_load_loses_nothing(deployment: Deployment) -> None:
    replicas = [deployment.start(deployment.public_port), deployment.start()]
    _until(lambda: deployment.integrator() is not None, "an integrator")
    load = Load(replicas)
    load.start()
    try:
        _until(lambda: load.count() >= 40, "entries acknowledged before the kill")
        integrator = deployment.integrator()
        follower = next(r for r in replicas if r is not integrator)
        follower.kill()
        before = load.count()
        _until(lambda: load.count() >= before + 40, "entries acknowledged after")
    finally:
        load.stop()
    assert integrator is not None and deployment.integrator() is integrator
    _check_nothing_lost(load, integrator)


def test_a_postgres_restart_under_load_loses_nothing(deployment: Deployment,
                                                     postgres_cluster: PostgresCluster) -> None:
    replicas = [deployment.start(deployment.public_port), deployment.start()]
    _until(lambda: deployment.integrator() is not None, "an integrator")
    load = Load(replicas)
    load.start()
    try:
        _until(lambda: load.count() >= 40, "entries acknowledged before the restart")
        postgres_cluster.crash()  # immediate: no clean shutdown, WAL replay at start
        postgres_cluster.start()
        before = load.count()
        _until(lambda: load.count() >= before + 40, "entries acknowledged after")
    finally:
        load.stop()
    _until(lambda: deployment.integrator() is not None, "an integrator again")
    survivor = deployment.integrator()
    assert survivor is not None
    _check_nothing_lost(load, survivor)


def test_the_object_store_down_pushes_writes_back_and_loses_nothing(
        deployment: Deployment, s3_credentials: SeaweedS3) -> None:
    replicas = [deployment.start(deployment.public_port), deployment.start()]
    _until(lambda: deployment.integrator() is not None, "an integrator")
    load = Load(replicas)
    load.start()
    try:
        _until(lambda: load.count() >= 40, "entries acknowledged before the outage")
        s3_credentials.stop()
        try:
            # Integration stops (tiles cannot be written): entries are still sequenced
            # until the backlog bound, and clients are told to come back later.
            _until(lambda: load.pushed_back >= 4, "clients to be pushed back")
        finally:
            s3_credentials.start()
        before = load.count()
        _until(lambda: load.count() >= before + 40, "entries acknowledged after")
    finally:
        load.stop()
    survivor = deployment.integrator()
    assert survivor is not None
    _check_nothing_lost(load, survivor)
