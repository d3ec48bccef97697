"""The instance's CT log is a real static-ct-api log: a monitor finds every certificate issued.

A fresh `sealtrail serve` issues certificates to `sealtrail sign` and to sigstore-python
(whose verification accepts the SCT with its leaf_index extension); then this test plays a
monitor, from the trusted root alone: it fetches /ct/checkpoint and checks its
RFC6962NoteSignature with the CT log key, reads every data tile, finds the precertificate of
each issued certificate, recomputes its leaf hash, proves its inclusion from the hash tiles,
and checks that the SCT's leaf_index names that leaf. The precertificates verify against the
issuers the log serves.

A second instance, served in this process with a CT log storage whose sequencing fails on
demand: issuance answers 503, `sealtrail sign` gets no certificate and writes nothing, and
once the storage works again so does issuance (the log resumes at the right index).

On PostgreSQL, two replicas of the log issue from several threads at once, and the monitor's
checks hold for everything they issued.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import struct
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sealtrail.ca.authority import CertificateAuthority
from sealtrail.ca.ctlog import (
    POISON_OID,
    CTLog,
    TileLeaf,
    leaf_index_extension,
    parse_leaf_index,
    read_tile_leaf,
    timestamped_entry,
)
from sealtrail.ca.keys import create_ca, create_ct_key
from sealtrail.errors import LogStorageError
from sealtrail.log.storage import Assignment, LogStorage, NewEntry
from sealtrail.merkle import verify_inclusion
from sealtrail.merkle.tile_proofs import inclusion_proof_from_tiles
from sealtrail.merkle.tiles import TILE_WIDTH, encode_index
from sealtrail.models.checkpoint import Checkpoint, SignedNote
from sealtrail.server.ct_log import CTLogService
from sealtrail.server.instance import Instance
from tests.integration.instance_server import BIN, InstanceServer, free_port, run
from tests.integration.postgres import PostgresCluster, postgres_cluster
from tests.integration.serving import poll_until
from tests.unit.ca.test_ct_static import principal

__all__ = ["postgres_cluster"]  # the fixture, imported for pytest

pytestmark = pytest.mark.integration

SEALTRAIL = str(BIN / "sealtrail")
PATIENCE = 60.0


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstanceServer]:
    server = InstanceServer(tmp_path_factory.mktemp("ct") / "sealtrail")
    server.init()
    server.start()
    yield server
    server.stop()


def certificate_of(bundle: Path) -> x509.Certificate:
    material = json.loads(bundle.read_text())["verificationMaterial"]
    raw = (material.get("certificate") or material["x509CertificateChain"]["certificates"][0])
    return x509.load_der_x509_certificate(base64.b64decode(raw["rawBytes"]))


def sct_of(cert: x509.Certificate) -> Any:
    (sct,) = list(cert.extensions.get_extension_for_class(
        x509.PrecertificateSignedCertificateTimestamps).value)
    return sct


class Monitor:
    """What a CT monitor knows: the log's URL, key and log id (the trusted root's entry)."""

    def __init__(self, url: str, key: ec.EllipticCurvePublicKey, log_id: bytes) -> None:
        self.url, self.key, self.log_id = url, key, log_id
        # SPEC: static-ct-api: the checkpoint origin is the prefix without its scheme.
        self.origin = self.url.split("://", 1)[1]

    @classmethod
    def from_trusted_root(cls, trusted_root: Path) -> Monitor:
        (ctlog,) = json.loads(trusted_root.read_text())["ctlogs"]
        key = serialization.load_der_public_key(base64.b64decode(ctlog["publicKey"]["rawBytes"]))
        assert isinstance(key, ec.EllipticCurvePublicKey)
        return cls(ctlog["baseUrl"], key, base64.b64decode(ctlog["logId"]["keyId"]))

    def get(self, path: str) -> bytes:
        response = httpx.get(f"{self.url}/{path}", timeout=30)
        assert response.status_code == 200, (path, response.text)
        return response.content

    def checkpoint(self) -> Checkpoint:
        """The latest checkpoint, its RFC6962NoteSignature verified with the log key."""
        note = SignedNote.from_text(self.get("checkpoint").decode())
        checkpoint = Checkpoint.from_body(note.body)
        assert checkpoint.origin == self.origin
        # SPEC: static-ct-api: key id = SHA-256(origin || 0x0A || 0x05 || LogID)[:4].
        hint = hashlib.sha256(self.origin.encode() + b"\n\x05" + self.log_id).digest()[:4]
        (signature,) = [s for s in note.signatures if s.name == self.origin]
        assert signature.key_hint == hint
        blob = signature.signature
        # RFC6962NoteSignature: u64 timestamp || DigitallySigned(sha256, ecdsa, u16 sig).
        (timestamp,) = struct.unpack(">Q", blob[:8])
        (length,) = struct.unpack(">H", blob[10:12])
        assert blob[8:10] == b"\x04\x03" and len(blob) == 12 + length
        # SPEC: RFC 6962 §3.5 TreeHeadSignature.
        signed = struct.pack(">BBQQ", 0, 1, timestamp, checkpoint.size) + checkpoint.root_hash
        self.key.verify(blob[12:], signed, ec.ECDSA(hashes.SHA256()))
        return checkpoint

    def leaves(self, size: int) -> list[TileLeaf]:
        """Every entry of the tree of ``size``, from the data tiles."""
        out: list[TileLeaf] = []
        for n in range((size + TILE_WIDTH - 1) // TILE_WIDTH):
            width = min(TILE_WIDTH, size - n * TILE_WIDTH)
            path = f"tile/data/{encode_index(n)}" + ("" if width == TILE_WIDTH else f".p/{width}")
            data, offset, count = self.get(path), 0, 0
            while offset < len(data):
                leaf, offset = read_tile_leaf(data, offset)
                out.append(leaf)
                count += 1
            assert count == width
        return out

    def check_issued(self, certificates: Sequence[x509.Certificate]) -> None:
        """Each certificate's precertificate is in the log where its SCT says, proven."""
        # The SCT is a promise of inclusion: wait (bounded) for a checkpoint that keeps it.
        needed = max(parse_leaf_index(sct_of(c).extension_bytes) for c in certificates) + 1
        poll_until(lambda: self.checkpoint().size >= needed,
                   f"a checkpoint covering {needed} entries")
        checkpoint = self.checkpoint()
        leaves = self.leaves(checkpoint.size)
        for index, leaf in enumerate(leaves):
            assert leaf.leaf_index == index  # every stored entry names its own place
        by_tbs = {leaf.tbs: (index, leaf) for index, leaf in enumerate(leaves)}
        for cert in certificates:
            index, leaf = by_tbs[cert.tbs_precertificate_bytes]
            sct = sct_of(cert)
            assert parse_leaf_index(sct.extension_bytes) == index
            assert sct.extension_bytes == leaf.extensions
            assert int(sct.timestamp.timestamp() * 1000) == leaf.timestamp
            # The leaf hash, recomputed: SHA-256(0x00 || v1 || timestamped_entry || entry).
            leaf_hash = hashlib.sha256(b"\x00\x00\x00" + leaf.timestamped_entry).digest()
            proof = inclusion_proof_from_tiles(self.get, index, checkpoint.size)
            verify_inclusion(leaf_hash, index, checkpoint.size, proof, checkpoint.root_hash)
            # The precertificate, poisoned, signed by the issuer the log serves.
            issuers = [x509.load_der_x509_certificate(self.get(f"issuer/{fp.hex()}"))
                       for fp in leaf.chain_fingerprints]
            assert [i.fingerprint(hashes.SHA256()) for i in issuers] == list(
                leaf.chain_fingerprints)
            precert = x509.load_der_x509_certificate(leaf.precertificate)
            assert precert.extensions.get_extension_for_oid(
                x509.ObjectIdentifier(POISON_OID)).critical
            precert.verify_directly_issued_by(issuers[0])
            assert issuers[0].subject == cert.issuer
            assert leaf.issuer_key_hash == hashlib.sha256(issuers[0].public_key().public_bytes(
                serialization.Encoding.DER,
                serialization.PublicFormat.SubjectPublicKeyInfo)).digest()


def test_a_monitor_finds_every_certificate_issued(instance: InstanceServer,
                                                  tmp_path: Path) -> None:
    artifacts = []
    for name in ("a.tar.gz", "b.whl"):
        path = tmp_path / name
        path.write_bytes(f"contents of {name}".encode())
        artifacts.append(path)
    # sealtrail sign (one certificate for both files), then sigstore-python.
    env = {"SIGSTORE_ID_TOKEN": "", "ACTIONS_ID_TOKEN_REQUEST_URL": "", "GITLAB_CI": ""}
    run(SEALTRAIL, "sign", *map(str, artifacts), "--instance-dir", str(instance.directory),
        "--builtin-email", "ct@example.com", env=env)
    python_artifact = tmp_path / "c.txt"
    python_artifact.write_bytes(b"signed by sigstore-python")
    python_bundle = tmp_path / "c.txt.sigstore.json"
    identity = "python-ct@example.com"
    run(str(BIN / "sigstore"), "--trust-config", str(instance.trust_config), "sign",
        "--identity-token", instance.token(identity), "--bundle", str(python_bundle),
        str(python_artifact))
    # sigstore-python's verification checks the SCT (with its leaf_index extension).
    run(str(BIN / "sigstore"), "--trust-config", str(instance.trust_config), "verify",
        "identity", "--bundle", str(python_bundle), "--cert-identity", identity,
        "--cert-oidc-issuer", instance.issuer, str(python_artifact))
    certificates = [certificate_of(Path(f"{p}.sigstore.json")) for p in artifacts]
    certificates.append(certificate_of(python_bundle))
    assert len({c.serial_number for c in certificates}) >= 2
    Monitor.from_trusted_root(instance.trusted_root).check_issued(certificates)


def test_add_pre_chain_over_http_is_logged(instance: InstanceServer) -> None:
    """RFC 6962 add-pre-chain (under the log URL): the precertificate is logged and the SCT
    names its entry; a chain through an issuer the log does not serve is a 400."""
    from datetime import datetime, timedelta, timezone

    from sealtrail.ca.keys import load_ca

    material = load_ca(*Instance(str(instance.directory)).active_ca_dirs(),
                       with_root_key=True)
    now = datetime.now(timezone.utc).replace(microsecond=0)

    def precert_builder(issuer: x509.Name) -> x509.CertificateBuilder:
        return (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(issuer)
                .public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now).not_valid_after(now + timedelta(minutes=10))
                .add_extension(x509.SubjectAlternativeName(
                    [x509.RFC822Name("pre@example.com")]), critical=True))

    builder = precert_builder(material.intermediate_cert.subject)
    twin = builder.sign(material.intermediate_key, hashes.SHA384())
    precert = builder.add_extension(x509.PrecertPoison(), critical=True).sign(
        material.intermediate_key, hashes.SHA384())

    def b64(cert: x509.Certificate) -> str:
        return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()

    chain = [b64(precert), b64(material.intermediate_cert), b64(material.root_cert)]
    response = httpx.post(f"{instance.url}/ct/ct/v1/add-pre-chain", json={"chain": chain},
                          timeout=60)
    assert response.status_code == 200, response.text
    answer = response.json()
    monitor = Monitor.from_trusted_root(instance.trusted_root)
    assert base64.b64decode(answer["id"]) == monitor.log_id and answer["sct_version"] == 0
    index = parse_leaf_index(base64.b64decode(answer["extensions"]))
    # The SCT verifies over the entry the log stored (RFC 6962 §3.2 signed data).
    entry = timestamped_entry(answer["timestamp"], hashlib.sha256(
        material.intermediate_cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    ).digest(), twin.tbs_certificate_bytes, leaf_index_extension(index))
    signature = base64.b64decode(answer["signature"])
    assert signature[:2] == b"\x04\x03"
    monitor.key.verify(signature[4:], b"\x00\x00" + entry, ec.ECDSA(hashes.SHA256()))
    poll_until(lambda: monitor.checkpoint().size > index, "a checkpoint covering the entry")
    stored = monitor.leaves(index + 1)[index]
    assert stored.timestamped_entry == entry
    assert stored.precertificate == precert.public_bytes(serialization.Encoding.DER)
    # An intermediate the log does not serve, though certified by the same root: refused.
    assert material.root_key is not None
    other_key = ec.generate_private_key(ec.SECP384R1())
    other = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "other")]))
             .issuer_name(material.root_cert.subject).public_key(other_key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(now).not_valid_after(now + timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
             .sign(material.root_key, hashes.SHA384()))
    stray = precert_builder(other.subject).add_extension(
        x509.PrecertPoison(), critical=True).sign(other_key, hashes.SHA384())
    foreign = httpx.post(f"{instance.url}/ct/v1/add-pre-chain", timeout=60,
                         json={"chain": [b64(stray), b64(other), b64(material.root_cert)]})
    assert foreign.status_code == 400, foreign.text
    assert foreign.json()["reason"] == "CERTIFICATE_REQUEST_INVALID"
    assert "does not serve" in foreign.json()["message"]
    stray_der = stray.public_bytes(serialization.Encoding.DER)
    assert all(leaf.precertificate != stray_der
               for leaf in monitor.leaves(monitor.checkpoint().size))


def test_read_api_refuses_bad_paths_with_json(instance: InstanceServer) -> None:
    base = instance.url + "/ct"
    for path in ("tile/data/abc", "tile/entries/000", "tile/data/000.p/0", "tile/0/x001",
                 "tile/64/000", "tile/0/999", "tile/data/999", "issuer/zz",
                 "issuer/" + "0" * 64, "tile/", "nothing"):
        response = httpx.get(f"{base}/{path}", timeout=30)
        assert response.status_code in (400, 404), (path, response.status_code)
        assert response.json()["message"], path
    assert httpx.get(f"{base}/checkpoint", timeout=30).headers["cache-control"] == "no-cache"


# -- a CT log that cannot sequence ------------------------------------------------------------


class SwitchableSequencer:
    """The real SQLite sequencer, whose assign() fails while ``failing`` is set."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.failing = threading.Event()

    def assign(self, entries: Sequence[NewEntry], integrated_time: int) -> list[Assignment]:
        if self.failing.is_set():
            raise LogStorageError("simulated CT log storage failure")
        result: list[Assignment] = self._inner.assign(entries, integrated_time)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class FailingCTInstance(Instance):
    def __init__(self, directory: str) -> None:
        super().__init__(directory)
        self.sequencer: SwitchableSequencer | None = None

    def ct_log_storage(self) -> LogStorage:
        storage = super().ct_log_storage()
        self.sequencer = SwitchableSequencer(storage.sequencer)
        return LogStorage(self.sequencer, storage.tiles)


@contextlib.contextmanager
def serving(app: Any, port: int = 0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 in a thread; yield its URL; stop it."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            access_log=False, lifespan="on")
    uv = uvicorn.Server(config)
    started = threading.Event()
    original_startup = uv.startup

    async def startup(sockets: Any = None) -> None:
        await original_startup(sockets)
        started.set()  # after the socket listens (or after a failed start: checked below)

    uv.startup = startup  # type: ignore[method-assign]
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    try:
        assert started.wait(PATIENCE) and uv.started, "the server did not start"
        bound = uv.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{bound}"
    finally:
        uv.should_exit = True
        thread.join(PATIENCE)


@pytest.fixture
def failing(tmp_path: Path) -> Iterator[tuple[InstanceServer, FailingCTInstance]]:
    server = InstanceServer(tmp_path / "sealtrail")
    server.init()
    served = FailingCTInstance(str(server.directory))
    with serving(served.build_app(), server.port):
        yield server, served


def request_certificate(server: InstanceServer, email: str) -> httpx.Response:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(
        key, hashes.SHA256())
    body = {"certificateSigningRequest": base64.b64encode(
        csr.public_bytes(serialization.Encoding.PEM)).decode()}
    return httpx.post(f"{server.url}/api/v2/signingCert", json=body, timeout=60,
                      headers={"Authorization": f"Bearer {server.token(email)}"})


def test_no_certificate_while_the_ct_log_cannot_sequence(
        failing: tuple[InstanceServer, FailingCTInstance], tmp_path: Path) -> None:
    server, served = failing
    assert served.sequencer is not None
    first = request_certificate(server, "before@example.com")
    assert first.status_code == 200, first.text
    served.sequencer.failing.set()
    refused = request_certificate(server, "during@example.com")
    assert refused.status_code == 503, refused.text
    assert refused.json()["reason"] == "SERVICE_UNAVAILABLE" and "CT log" in \
        refused.json()["message"]
    assert "BEGIN CERTIFICATE" not in refused.text
    # The client: sealtrail sign fails and writes no bundle.
    artifact = tmp_path / "x.bin"
    artifact.write_bytes(b"never signed")
    done = run(SEALTRAIL, "sign", str(artifact), "--trust-config", str(server.trust_config),
               "--identity-token", server.token("cli@example.com"), check=False)
    assert done.returncode != 0 and "503" in done.stderr + done.stdout
    assert not Path(f"{artifact}.sigstore.json").exists()
    # Storage back: issuance works again, and the log is whole (the monitor's checks).
    served.sequencer.failing.clear()
    after = request_certificate(server, "after@example.com")
    assert after.status_code == 200, after.text
    issued = [x509.load_pem_x509_certificate(r.json()["signedCertificateEmbeddedSct"]["chain"]
                                             ["certificates"][0].encode())
              for r in (first, after)]
    Monitor.from_trusted_root(server.trusted_root).check_issued(issued)
    assert [parse_leaf_index(sct_of(c).extension_bytes) for c in issued] == [0, 1]


# -- on PostgreSQL ------------------------------------------------------------------------------


def test_the_ct_log_on_postgres_with_two_replicas(postgres_cluster: PostgresCluster,
                                                   tmp_path: Path) -> None:
    """The same log on the PostgreSQL sequencer: issued certificates are monitored, a reopened
    log continues at the right index, and two replicas (two services on one schema and one
    tile directory, as two `sealtrail serve` processes hold them) issue from several
    threads at once: every SCT names a stored entry that carries the same index and
    timestamp, no index twice, and the monitor's checks pass."""
    from starlette.applications import Starlette

    from sealtrail.server._http import EXCEPTION_HANDLERS

    schema = f"ct_test_{os.getpid()}"
    material = create_ca("sealtrail.test", "CT on PostgreSQL")
    key = create_ct_key()

    def open_log(origin: str) -> CTLogService:
        storage = LogStorage.postgres(postgres_cluster.dsn, tmp_path / "tiles", schema=schema)
        return CTLogService.open(storage, key, origin, material.chain)

    def authority(service: CTLogService) -> CertificateAuthority:
        return CertificateAuthority(material.intermediate_key, material.chain,
                                    CTLog(key, append=service.append))

    who = principal()
    issued = []
    with contextlib.ExitStack() as stack:
        # The origin names the URL the log is served at: bind a port first, then open.
        port = free_port()
        origin = f"127.0.0.1:{port}/ct"
        service = open_log(origin)
        stack.callback(service.close)
        for _ in range(3):
            issued.append(authority(service).issue(
                ec.generate_private_key(ec.SECP256R1()).public_key(), who)[0])
        service.close()
        # Reopened: the next index is the sequencer's.
        service = open_log(origin)
        stack.callback(service.close)
        issued.append(authority(service).issue(
            ec.generate_private_key(ec.SECP256R1()).public_key(), who)[0])
        assert [parse_leaf_index(sct_of(c).extension_bytes) for c in issued] == [0, 1, 2, 3]

        # A second replica; three threads on each issue at once.
        replica = open_log(origin)
        stack.callback(replica.close)
        assert service.engine.is_integrator != replica.engine.is_integrator
        lock = threading.Lock()
        errors: list[BaseException] = []

        def issue_many(target: CTLogService) -> None:
            try:
                ca = authority(target)
                for _ in range(6):
                    cert = ca.issue(ec.generate_private_key(ec.SECP256R1()).public_key(),
                                    who)[0]
                    with lock:
                        issued.append(cert)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=issue_many, args=(target,))
                   for target in (service, replica) * 3]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(PATIENCE)
            assert not thread.is_alive(), "an issuing thread did not finish"
        assert not errors, errors
        indexes = [parse_leaf_index(sct_of(c).extension_bytes) for c in issued]
        assert sorted(indexes) == list(range(4 + 36))  # no index twice, none skipped

        app = Starlette(routes=service.routes(), exception_handlers=EXCEPTION_HANDLERS)
        url = stack.enter_context(serving(app, port))
        monitor = Monitor(url + "/ct", CTLog(key).public_key, CTLog(key).log_id)
        # Every stored entry names its own index; each SCT's index, extensions and
        # timestamp are its entry's; inclusion proven against a verified checkpoint.
        monitor.check_issued(issued)
        # The other replica serves the same entries.
        replica.engine.wait_blocking(len(issued) - 1, PATIENCE)
        for index in (0, len(issued) // 2, len(issued) - 1):
            assert replica.engine.entry(index).body == service.engine.entry(index).body
