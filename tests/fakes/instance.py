"""A whole private Sigstore instance in memory: CA + CT log, TSA, Rekor v1 and Rekor v2.

``FakeInstance`` ties the single-purpose fakes together and emits bundles shaped exactly
like the ones real clients write (compare ``/work/shared/testdata/conformance-sample``:
``happy-path-v0.1`` / ``happy-path-v0.3`` for Rekor v1, ``rekor2-happy-path`` and
``rekor2-dsse-happy-path`` for Rekor v2)::

    instance = FakeInstance()                        # fresh keys; build once per module
    bundle = instance.sign_artifact(b"data")         # Rekor v1, bundle v0.3, dict (JSON)
    bundle = instance.sign_artifact(b"data", rekor=2)  # Rekor v2 + RFC 3161 timestamp
    bundle = instance.sign_dsse(statement_for(b"data"), rekor=1, kind="intoto")
    Verifier(instance.trusted_root(), now=instance.now).verify_artifact(b"data", bundle, policy)

Both logs keep their leaves, so inclusion proofs carry real hashes and checkpoints commit
to real roots. Wire facts come from sigstore-wire.md (§3 Rekor v1, §4 Rekor v2, §6 trust
root, §7 bundle). This module does not use ``sealtrail.verify``: the bodies, the SET and the
bundle layout are written independently of the code under test.

Negative tests mutate the returned dict; :meth:`FakeInstance.reseal` and
:meth:`FakeInstance.restamp` re-sign what sits upstream of a mutation (log proof,
checkpoint and SET; TSA tokens), so that the mutation reaches the check it targets.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from sealtrail.merkle import leaf_hash
from sealtrail.merkle.tree import compute_root, inclusion_proof
from sealtrail.models.trusted_root import TrustedRoot, ValidityWindow
from tests.fakes.ca import DEFAULT_IDENTITY, DEFAULT_ISSUER, TRUSTED_ROOT_MEDIA_TYPE, FakeCA
from tests.fakes.notes import FakeLog, make_ecdsa_log, make_ed25519_log
from tests.fakes.tsa import FakeTSA

__all__ = [
    "DEFAULT_SIGNED_AT",
    "FakeInstance",
    "FakeRekor",
    "INTOTO_PAYLOAD_TYPE",
    "KEY_TYPES",
    "MEDIA_TYPE_V03_PARAMETER",
    "MEDIA_TYPES",
    "Signer",
    "b64",
    "body_of",
    "set_body",
    "statement_for",
]

# The instant a default bundle is signed: inside every fake's validity window.
DEFAULT_SIGNED_AT = datetime(2025, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
_TRUST_START = datetime(2020, 1, 1, tzinfo=timezone.utc)  # FakeCA / FakeLog default start
_TSA_START = datetime(2024, 1, 1, tzinfo=timezone.utc)  # FakeTSA certificates start

# SPEC: sigstore-wire.md §7: the bundle media types. v0.3 has two spellings; current
# clients (sigstore-python 4, cosign 3) write the first, older ones the second.
MEDIA_TYPES = {
    "0.1": "application/vnd.dev.sigstore.bundle+json;version=0.1",
    "0.2": "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "0.3": "application/vnd.dev.sigstore.bundle.v0.3+json",
}
MEDIA_TYPE_V03_PARAMETER = "application/vnd.dev.sigstore.bundle+json;version=0.3"
_SPELLINGS = {"v0.3+json": MEDIA_TYPES["0.3"], "version=0.3": MEDIA_TYPE_V03_PARAMETER}

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
_STATEMENT_V1 = "https://in-toto.io/Statement/v1"

# Signer key types: generator, protobuf keyDetails, hash the key signs messages with.
KEY_TYPES: dict[str, tuple[Any, str, str | None]] = {
    "ecdsa-p256": (lambda: ec.generate_private_key(ec.SECP256R1()), "PKIX_ECDSA_P256_SHA_256",
                   "sha256"),
    "ecdsa-p384": (lambda: ec.generate_private_key(ec.SECP384R1()), "PKIX_ECDSA_P384_SHA_384",
                   "sha384"),
    "rsa-2048": (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
                 "PKIX_RSA_PKCS1V15_2048_SHA256", "sha256"),
    "ed25519": (ed25519.Ed25519PrivateKey.generate, "PKIX_ED25519", None),
}
_CRYPTO_HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
# SPEC: protobuf-specs HashAlgorithm names (Rekor v2 bodies, bundle messageDigest).
_PROTO_HASH = {"sha256": "SHA2_256", "sha384": "SHA2_384", "sha512": "SHA2_512"}


def b64(data: bytes) -> str:
    """Standard padded base64, the protobuf-JSON encoding of bytes."""
    return base64.b64encode(data).decode("ascii")


def _rfc3339(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _validity_json(window: ValidityWindow) -> dict[str, str]:
    out = {"start": _rfc3339(window.start)}
    if window.end is not None:
        out["end"] = _rfc3339(window.end)
    return out


def _spki(public_key: Any) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def _seconds(when: datetime | int) -> int:
    return when if isinstance(when, int) else int(when.timestamp())


def statement_for(*artifacts: bytes, names: tuple[str, ...] | None = None,
                  predicate_type: str = "https://slsa.dev/provenance/v1") -> dict[str, Any]:
    """An in-toto v1 Statement whose subjects are ``artifacts`` (by SHA-256)."""
    names = names or tuple(f"artifact-{i}.txt" for i in range(len(artifacts)))
    return {
        "_type": _STATEMENT_V1,
        "subject": [{"name": name, "digest": {"sha256": hashlib.sha256(data).hexdigest()}}
                    for name, data in zip(names, artifacts)],
        "predicateType": predicate_type,
        "predicate": {"buildDefinition": {"buildType": "https://sealtrail.test/fake"}},
    }


def _pae(payload_type: str, payload: bytes) -> bytes:
    # SPEC: DSSE v1 PAE = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body.
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


# -- signers ----------------------------------------------------------------------------------

@dataclass
class Signer:
    """A signing key with its Fulcio certificate, or a managed key (``certificate`` None)."""

    private_key: Any
    key_type: str
    certificate: x509.Certificate | None
    signed_at: datetime

    @property
    def key_details(self) -> str:
        """The protobuf ``PublicKeyDetails`` name of the key (Rekor v2 verifiers)."""
        return KEY_TYPES[self.key_type][1]

    @property
    def message_hash(self) -> str | None:
        """The hash the key signs messages (DSSE PAE) with; None for pure Ed25519."""
        return KEY_TYPES[self.key_type][2]

    @property
    def public_key_pem(self) -> bytes:
        """PEM SubjectPublicKeyInfo (what ``--key`` takes)."""
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    @property
    def verifier_pem(self) -> bytes:
        """What a Rekor v1 body names: the PEM certificate, else the PEM public key."""
        if self.certificate is not None:
            return self.certificate.public_bytes(serialization.Encoding.PEM)
        return self.public_key_pem

    def verifier_v2(self) -> dict[str, Any]:
        """A Rekor v2 ``Verifier`` message (protobuf JSON)."""
        if self.certificate is not None:
            material = {"x509Certificate": {
                "rawBytes": b64(self.certificate.public_bytes(serialization.Encoding.DER))}}
        else:
            material = {"publicKey": {"rawBytes": b64(_spki(self.private_key.public_key()))}}
        return {"keyDetails": self.key_details, **material}

    def verification_material(self, bundle_version: str) -> dict[str, Any]:
        """The bundle's signer field: certificate (v0.3), chain (v0.1/0.2) or key hint."""
        if self.certificate is None:
            # Real bundles carry SHA-256(SPKI) as the hint (managed-key-happy-path).
            return {"publicKey": {"hint": b64(hashlib.sha256(
                _spki(self.private_key.public_key())).digest())}}
        raw = {"rawBytes": b64(self.certificate.public_bytes(serialization.Encoding.DER))}
        if bundle_version == "0.3":
            return {"certificate": raw}
        return {"x509CertificateChain": {"certificates": [raw]}}

    def sign_message(self, data: bytes) -> bytes:
        """Sign ``data`` the way this key type signs messages (DSSE)."""
        key = self.private_key
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(data)
        digest_name = self.message_hash
        assert digest_name is not None
        algorithm = _CRYPTO_HASHES[digest_name]()
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, padding.PKCS1v15(), algorithm)
        return key.sign(data, ec.ECDSA(algorithm))

    def sign_digest(self, digest: bytes, hash_name: str) -> bytes:
        """Sign a precomputed digest (hashedrekord); pure Ed25519 cannot."""
        key = self.private_key
        algorithm = Prehashed(_CRYPTO_HASHES[hash_name]())
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(digest, padding.PKCS1v15(), algorithm)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(digest, ec.ECDSA(algorithm))
        raise ValueError(f"a {self.key_type} key cannot sign a digest")


# -- transparency logs ------------------------------------------------------------------------

class FakeRekor:
    """A Rekor log (v1 or v2) that keeps its leaves and emits bundle ``tlogEntries`` items.

    Rekor v1 numbers entries globally across shards, so its bundle ``logIndex`` is the
    shard-local index plus ``index_offset``; Rekor v2 has one index.
    """

    def __init__(self, fake_log: FakeLog, *, version: int, index_offset: int = 0,
                 filler: int = 5, trailing: int = 2) -> None:
        self.fake = fake_log
        self.version = version
        self.index_offset = index_offset
        # Other clients' entries: around ours, so proofs have siblings on both sides.
        self.trailing = trailing
        self.leaves: list[bytes] = []
        self._add_filler(filler)

    # -- identity ---------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """The log's URL (its host is the checkpoint origin / key name)."""
        return self.fake.log.base_url

    @property
    def log_id(self) -> bytes:
        """The trusted-root logId: SHA-256(SPKI) for v1, the note key id for v2 (§6)."""
        return self.fake.log.log_id

    @property
    def key_details(self) -> str:
        """The trusted-root keyDetails of the log key."""
        if isinstance(self.fake.private_key, ed25519.Ed25519PrivateKey):
            return "PKIX_ED25519"
        return "PKIX_ECDSA_P256_SHA_256"

    def trusted_root_entry(self, validity: ValidityWindow | None = None) -> dict[str, Any]:
        """The ``tlogs[]`` item of trusted_root.json (sigstore-wire.md §6)."""
        return {
            "baseUrl": self.base_url,
            "hashAlgorithm": "SHA2_256",
            "publicKey": {
                "rawBytes": b64(_spki(self.fake.private_key.public_key())),
                "keyDetails": self.key_details,
                "validFor": _validity_json(validity or ValidityWindow(_TRUST_START)),
            },
            "logId": {"keyId": b64(self.log_id)},
        }

    # -- the tree ---------------------------------------------------------------------------
    def _add_filler(self, count: int) -> None:
        self.leaves.extend(leaf_hash(b"filler entry " + os.urandom(16)) for _ in range(count))

    def append(self, body: bytes) -> int:
        """Integrate ``body``; return its shard-local index (later leaves may follow)."""
        self.leaves.append(leaf_hash(body))
        index = len(self.leaves) - 1
        self._add_filler(self.trailing)
        return index

    def checkpoint(self, size: int, root: bytes, *, origin: str | None = None) -> str:
        """A checkpoint signed by the log (``origin`` overrides the real one)."""
        return self.fake.checkpoint(size, root, origin=origin)

    def proof_json(self, index: int) -> dict[str, Any]:
        """``inclusionProof`` for leaf ``index`` against the current tree, with checkpoint."""
        size = len(self.leaves)
        root = compute_root(self.leaves)
        return {
            "logIndex": str(index),
            "rootHash": b64(root),
            "treeSize": str(size),
            "hashes": [b64(h) for h in inclusion_proof(self.leaves, index)],
            "checkpoint": {"envelope": self.checkpoint(size, root)},
        }

    def sign_set(self, body: bytes, integrated_time: int, log_index: int,
                 log_id: bytes | None = None) -> bytes:
        """The Rekor v1 signed entry timestamp.

        SPEC: sigstore-wire.md §3 "SET": ECDSA over JCS({body: b64, integratedTime,
        logID: hex, logIndex: global index}).
        """
        payload = rfc8785.dumps({
            "body": b64(body),
            "integratedTime": integrated_time,
            "logID": (log_id or self.log_id).hex(),
            "logIndex": log_index,
        })
        return self.fake.private_key.sign(payload, ec.ECDSA(hashes.SHA256()))

    def entry_json(self, body: bytes, kind: str, version: str,
                   integrated_time: int) -> dict[str, Any]:
        """Log ``body`` and return the bundle's ``tlogEntries[]`` item for it.

        v1: logIndex (global), logId, kindVersion, integratedTime, inclusionPromise,
        inclusionProof, canonicalizedBody; v2 omits integratedTime and the promise (they are
        zero / null in the log's response and protobuf JSON drops them).
        """
        local = self.append(body)
        entry: dict[str, Any] = {
            "logIndex": str(local + self.index_offset),
            "logId": {"keyId": b64(self.log_id)},
            "kindVersion": {"kind": kind, "version": version},
        }
        if self.version == 1:
            entry["integratedTime"] = str(integrated_time)
            entry["inclusionPromise"] = {"signedEntryTimestamp": b64(
                self.sign_set(body, integrated_time, local + self.index_offset))}
        entry["inclusionProof"] = self.proof_json(local)
        entry["canonicalizedBody"] = b64(body)
        return entry


# -- the instance -----------------------------------------------------------------------------

class FakeInstance:
    """A private Sigstore instance: Fulcio-like CA with CT log, TSA, Rekor v1 and v2.

    Key generation is the slow part: build one per test module and share it.
    """

    def __init__(self, *, signed_at: datetime = DEFAULT_SIGNED_AT) -> None:
        self.signed_at = signed_at
        # Bundles are verified an hour after signing: certificates have expired by then,
        # as in real life, so only verified times can make them valid.
        self.now = signed_at + timedelta(hours=1)
        self.ca = FakeCA()
        self.tsa = FakeTSA()
        self.rekor_v1 = FakeRekor(make_ecdsa_log("https://rekor.fake.test"), version=1,
                                  index_offset=41_000_000)
        self.rekor_v2 = FakeRekor(make_ed25519_log("https://log2099-1.rekor.fake.test"),
                                  version=2)
        self._rsa_key: Any = None

    # -- trust root -------------------------------------------------------------------------
    def trusted_root_json(
        self, *,
        ca_validity: ValidityWindow | None = None,
        ctlog_validity: ValidityWindow | None = None,
        rekor_v1_validity: ValidityWindow | None = None,
        rekor_v2_validity: ValidityWindow | None = None,
        tsa_validity: ValidityWindow | None = None,
        tsa: bool = True,
    ) -> dict[str, Any]:
        """trusted_root.json for this instance (sigstore-wire.md §6); knobs narrow windows."""
        tsa_window = tsa_validity or ValidityWindow(_TSA_START)
        return {
            "mediaType": TRUSTED_ROOT_MEDIA_TYPE,
            "tlogs": [self.rekor_v1.trusted_root_entry(rekor_v1_validity),
                      self.rekor_v2.trusted_root_entry(rekor_v2_validity)],
            "certificateAuthorities": [self.ca.ca_trusted_root_entry(ca_validity)],
            "ctlogs": [self.ca.ctlog_trusted_root_entry(ctlog_validity)],
            "timestampAuthorities": (
                [self.tsa.trusted_root_json_entry(tsa_window.start, tsa_window.end)]
                if tsa else []),
        }

    def trusted_root(self, data: Mapping[str, Any] | None = None, **knobs: Any) -> TrustedRoot:
        """The parsed trusted root (of ``data`` if given, else of :meth:`trusted_root_json`)."""
        document = dict(data) if data is not None else self.trusted_root_json(**knobs)
        return TrustedRoot.from_json(json.dumps(document))

    # -- signers ----------------------------------------------------------------------------
    def _new_key(self, key_type: str) -> Any:
        if key_type not in KEY_TYPES:
            raise ValueError(f"unknown key type {key_type!r}; one of {sorted(KEY_TYPES)}")
        if key_type == "rsa-2048":
            # RSA generation is slow; one key per instance is plenty for tests.
            self._rsa_key = self._rsa_key or KEY_TYPES[key_type][0]()
            return self._rsa_key
        return KEY_TYPES[key_type][0]()

    def signer(self, *, key_type: str = "ecdsa-p256", managed: bool = False,
               identity: str = DEFAULT_IDENTITY, issuer: str | None = DEFAULT_ISSUER,
               github: Mapping[str, str] | None = None, signed_at: datetime | None = None,
               cert_not_before: datetime | None = None, **leaf_options: Any) -> Signer:
        """A fresh key with a Fulcio certificate issued at ``signed_at`` (or a managed key).

        ``leaf_options`` go to :meth:`FakeCA.issue_leaf` (``san_kind``, ``sct_count``,
        ``digital_signature``, ``eku``...), so one certificate property can be broken.
        """
        when = signed_at or self.signed_at
        key = self._new_key(key_type)
        certificate = None
        if not managed:
            certificate = self.ca.issue_leaf(
                key.public_key(), not_before=cert_not_before or when, identity=identity,
                issuer=issuer, github=github, **leaf_options)
        return Signer(key, key_type, certificate, when)

    # -- bundles ----------------------------------------------------------------------------
    def sign_artifact(
        self, data: bytes, *, signer: Signer | None = None, rekor: int = 1,
        version: str = "0.3", media_type_spelling: str = "v0.3+json",
        timestamp: bool | None = None, digest_algorithm: str = "sha256",
        message_digest: bool = True, integrated_time: datetime | int | None = None,
        timestamp_time: datetime | None = None, **signer_options: Any,
    ) -> dict[str, Any]:
        """A message-signature bundle over ``data`` (hashedrekord 0.0.1 or 0.0.2).

        ``signer_options`` (``key_type``, ``managed``, ``identity``, ``issuer``,
        ``github``, ``signed_at`` and FakeCA leaf knobs) make the signer when none is given.
        ``message_digest=False`` omits the optional ``messageDigest``.
        """
        signer = signer or self.signer(**signer_options)
        digest = hashlib.new(digest_algorithm, data).digest()
        signature = signer.sign_digest(digest, digest_algorithm)
        if rekor == 1:
            # SPEC: sigstore-wire.md §3 hashedrekord 0.0.1 (hex digest, base64 PEM).
            body = _canonical("hashedrekord", "0.0.1", {
                "data": {"hash": {"algorithm": digest_algorithm, "value": digest.hex()}},
                "signature": {"content": b64(signature),
                              "publicKey": {"content": b64(signer.verifier_pem)}},
            })
        else:
            body = self._hashedrekord_v2(signer, signature, digest, digest_algorithm)
        content: dict[str, Any] = {"signature": b64(signature)}
        if message_digest:
            content = {"messageDigest": {"algorithm": _PROTO_HASH[digest_algorithm],
                                         "digest": b64(digest)}, **content}
        return self._bundle(
            signer, "messageSignature", content, signature, body, ("hashedrekord", f"0.0.{rekor}"),
            rekor=rekor, version=version, media_type_spelling=media_type_spelling,
            timestamp=timestamp, integrated_time=integrated_time, timestamp_time=timestamp_time)

    def sign_dsse(
        self, statement: Mapping[str, Any] | bytes, *, payload_type: str = INTOTO_PAYLOAD_TYPE,
        kind: str | None = None, signer: Signer | None = None, rekor: int = 1,
        version: str = "0.3", media_type_spelling: str = "v0.3+json",
        timestamp: bool | None = None, integrated_time: datetime | int | None = None,
        timestamp_time: datetime | None = None, **signer_options: Any,
    ) -> dict[str, Any]:
        """A DSSE bundle over ``statement`` (a dict, serialised as JSON, or raw payload bytes).

        ``kind``: Rekor v1 ``"dsse"`` (dsse 0.0.1, default) or ``"intoto"`` (intoto 0.0.2);
        Rekor v2 ``"hashedrekord"`` (0.0.2 over H(PAE), default, what sigstore-python and
        cosign upload) or ``"dsse"`` (the deprecated dsse 0.0.2).
        """
        payload = (statement if isinstance(statement, bytes)
                   else json.dumps(statement, separators=(",", ":")).encode())
        signer = signer or self.signer(**signer_options)
        signature = signer.sign_message(_pae(payload_type, payload))
        envelope = {"payload": b64(payload), "payloadType": payload_type,
                    "signatures": [{"sig": b64(signature)}]}
        kind = kind or ("dsse" if rekor == 1 else "hashedrekord")
        body_maker = {
            (1, "dsse"): self._dsse_v1, (1, "intoto"): self._intoto_v2,
            (2, "hashedrekord"): self._dsse_as_hashedrekord_v2, (2, "dsse"): self._dsse_v2,
        }.get((rekor, kind))
        if body_maker is None:
            raise ValueError(f"Rekor v{rekor} does not log DSSE envelopes as {kind!r}")
        body, kind_version = body_maker(signer, envelope, payload, signature)
        return self._bundle(
            signer, "dsseEnvelope", envelope, signature, body, kind_version, rekor=rekor,
            version=version, media_type_spelling=media_type_spelling, timestamp=timestamp,
            integrated_time=integrated_time, timestamp_time=timestamp_time)

    # -- entry bodies (canonical JSON) -----------------------------------------------------
    @staticmethod
    def _hashedrekord_v2(signer: Signer, signature: bytes, digest: bytes,
                         algorithm: str) -> bytes:
        # SPEC: sigstore-wire.md §4: Entry = JCS(protojson) with spec.hashedRekordV002.
        return _canonical("hashedrekord", "0.0.2", {"hashedRekordV002": {
            "data": {"algorithm": _PROTO_HASH[algorithm], "digest": b64(digest)},
            "signature": {"content": b64(signature), "verifier": signer.verifier_v2()},
        }})

    @staticmethod
    def _dsse_v1(signer: Signer, envelope: dict[str, Any], payload: bytes,
                 signature: bytes) -> tuple[bytes, tuple[str, str]]:
        # SPEC: sigstore-wire.md §3 dsse 0.0.1 canonical body; the envelope hash covers the
        # envelope JSON as the client submitted it (compact JSON, like JCS here).
        return _canonical("dsse", "0.0.1", {
            "envelopeHash": {"algorithm": "sha256",
                             "value": hashlib.sha256(rfc8785.dumps(envelope)).hexdigest()},
            "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
            "signatures": [{"signature": b64(signature), "verifier": b64(signer.verifier_pem)}],
        }), ("dsse", "0.0.1")

    @staticmethod
    def _intoto_v2(signer: Signer, envelope: dict[str, Any], payload: bytes,
                   signature: bytes) -> tuple[bytes, tuple[str, str]]:
        # SPEC: sigstore-wire.md §3 intoto 0.0.2: payload and sig are base64 applied twice
        # (conformance intoto-with-custom-trust-root keeps the payload in the body too).
        logged_envelope = {
            "payload": b64(b64(payload).encode()),
            "payloadType": envelope["payloadType"],
            "signatures": [{"publicKey": b64(signer.verifier_pem),
                            "sig": b64(b64(signature).encode())}],
        }
        return _canonical("intoto", "0.0.2", {"content": {
            "envelope": logged_envelope,
            # The client-computed envelope hash; no verifier can recompute it.
            "hash": {"algorithm": "sha256",
                     "value": hashlib.sha256(rfc8785.dumps(envelope)).hexdigest()},
            "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
        }}), ("intoto", "0.0.2")

    def _dsse_as_hashedrekord_v2(self, signer: Signer, envelope: dict[str, Any], payload: bytes,
                                 signature: bytes) -> tuple[bytes, tuple[str, str]]:
        # SPEC: sigstore-wire.md §4: new clients log a DSSE envelope as hashedrekord 0.0.2
        # with digest = H(PAE(type, payload)), H taken from the key details.
        algorithm = signer.message_hash
        if algorithm is None:
            raise ValueError("pure Ed25519 cannot be logged as hashedrekord 0.0.2")
        digest = hashlib.new(algorithm, _pae(envelope["payloadType"], payload)).digest()
        body = self._hashedrekord_v2(signer, signature, digest, algorithm)
        return body, ("hashedrekord", "0.0.2")

    @staticmethod
    def _dsse_v2(signer: Signer, envelope: dict[str, Any], payload: bytes,
                 signature: bytes) -> tuple[bytes, tuple[str, str]]:
        # SPEC: sigstore-wire.md §4: the legacy spec.dsseV002 entry.
        return _canonical("dsse", "0.0.2", {"dsseV002": {
            "payloadHash": {"algorithm": "SHA2_256",
                            "digest": b64(hashlib.sha256(payload).digest())},
            "signatures": [{"content": b64(signature), "verifier": signer.verifier_v2()}],
        }}), ("dsse", "0.0.2")

    # -- assembly ---------------------------------------------------------------------------
    def _bundle(self, signer: Signer, content_field: str, content: dict[str, Any],
                signature: bytes, body: bytes, kind_version: tuple[str, str], *, rekor: int,
                version: str, media_type_spelling: str, timestamp: bool | None,
                integrated_time: datetime | int | None,
                timestamp_time: datetime | None) -> dict[str, Any]:
        if version not in MEDIA_TYPES:
            raise ValueError(f"unknown bundle version {version!r}")
        if version == "0.1" and rekor != 1:
            raise ValueError("a v0.1 bundle needs an inclusion promise, which only Rekor v1 gives")
        log = {1: self.rekor_v1, 2: self.rekor_v2}[rekor]
        # Times follow a real signing flow: certificate, signature, TSA, log integration.
        integrated = _seconds(integrated_time if integrated_time is not None
                              else signer.signed_at + timedelta(seconds=2))
        material: dict[str, Any] = dict(signer.verification_material(version))
        material["tlogEntries"] = [log.entry_json(body, *kind_version, integrated)]
        if timestamp if timestamp is not None else rekor == 2:
            # SPEC: sigstore-wire.md §7: the TSA token covers the signature bytes; bundles
            # store the whole TimeStampResp.
            gen_time = timestamp_time or signer.signed_at + timedelta(seconds=1)
            material["timestampVerificationData"] = {"rfc3161Timestamps": [
                {"signedTimestamp": b64(self.tsa.response(signature, gen_time=gen_time))}]}
        media_type = MEDIA_TYPES[version]
        if version == "0.3":
            media_type = _SPELLINGS[media_type_spelling]
        return {"mediaType": media_type, "verificationMaterial": material,
                content_field: content}

    # -- re-signing after a mutation ---------------------------------------------------------
    def log_for(self, entry: Mapping[str, Any]) -> FakeRekor:
        """The fake log that an entry's ``logId`` names."""
        log_id = base64.b64decode(entry["logId"]["keyId"])
        for log in (self.rekor_v1, self.rekor_v2):
            if log.log_id == log_id:
                return log
        raise KeyError("entry names neither fake log")

    def reseal(self, bundle: dict[str, Any], entry_index: int = 0) -> dict[str, Any]:
        """Re-log an entry's (mutated) body: new index, proof, checkpoint and SET, in place.

        This models a log that really recorded the mutated body, so the inclusion proof,
        checkpoint and SET all verify and the test reaches the body-vs-bundle check.
        The SET is re-signed over the entry's current ``integratedTime``.
        """
        entry = bundle["verificationMaterial"]["tlogEntries"][entry_index]
        log = self.log_for(entry)
        body = base64.b64decode(entry["canonicalizedBody"])
        local = log.append(body)
        entry["logIndex"] = str(local + log.index_offset)
        entry["inclusionProof"] = log.proof_json(local)
        if "inclusionPromise" in entry:
            entry["inclusionPromise"] = {"signedEntryTimestamp": b64(log.sign_set(
                body, int(entry["integratedTime"]), local + log.index_offset))}
        return bundle

    def restamp(self, bundle: dict[str, Any], gen_time: datetime | None = None) -> dict[str, Any]:
        """Replace the TSA tokens by one over the bundle's current signature, in place."""
        if "messageSignature" in bundle:
            signature = base64.b64decode(bundle["messageSignature"]["signature"])
        else:
            signature = base64.b64decode(bundle["dsseEnvelope"]["signatures"][0]["sig"])
        when = gen_time or self.signed_at + timedelta(seconds=1)
        bundle["verificationMaterial"]["timestampVerificationData"] = {"rfc3161Timestamps": [
            {"signedTimestamp": b64(self.tsa.response(signature, gen_time=when))}]}
        return bundle


def _canonical(kind: str, version: str, spec: dict[str, Any]) -> bytes:
    """A log entry's canonicalized body: RFC 8785 JSON of {apiVersion, kind, spec}."""
    return rfc8785.dumps({"apiVersion": version, "kind": kind, "spec": spec})


def body_of(bundle: Mapping[str, Any], entry_index: int = 0) -> dict[str, Any]:
    """The decoded canonicalized body of a bundle's log entry (for mutations)."""
    entry = bundle["verificationMaterial"]["tlogEntries"][entry_index]
    return json.loads(base64.b64decode(entry["canonicalizedBody"]))


def set_body(bundle: dict[str, Any], body: Mapping[str, Any], entry_index: int = 0) -> None:
    """Write a (mutated) body back, canonicalised like a log would; see :meth:`reseal`."""
    entry = bundle["verificationMaterial"]["tlogEntries"][entry_index]
    entry["canonicalizedBody"] = b64(rfc8785.dumps(dict(body)))
