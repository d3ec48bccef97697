"""Sigstore bundles v0.1, v0.2 and v0.3, parsed strictly.

SPEC: protobuf-specs sigstore_bundle.proto (Bundle, VerificationMaterial, TransparencyLogEntry),
in the protobuf JSON mapping: camelCase names, int64 as strings or numbers, bytes as base64.
Unknown fields and unknown media types are errors: a verifier must not silently skip content
it does not understand.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from cryptography import x509

from sealtrail._internal.encoding import (
    b64decode,
    require_dict,
    require_list,
    require_str,
)
from sealtrail.errors import BundleMalformedError
from sealtrail.models._json import parse_int64 as parse_int
from sealtrail.models._json import reject_lone_surrogates
from sealtrail.models.cosign_bundle import (
    COSIGN_LEGACY_MEDIA_TYPE,
    is_cosign_legacy,
    parse_cosign_legacy,
)

__all__ = [
    "Bundle",
    "DSSEEnvelope",
    "DSSESignature",
    "InclusionProof",
    "MessageSignature",
    "TlogEntry",
]

E = BundleMalformedError

# A real bundle is a few KiB; even a large DSSE attestation stays far below this bound.
MAX_BUNDLE_BYTES = 32 * 1024 * 1024
MAX_TLOG_ENTRIES = 8
MAX_TIMESTAMPS = 32
MAX_PROOF_HASHES = 64  # a Merkle tree of 2**63 leaves needs at most 63 hashes

# SPEC: bundle media types. v0.3 has two spellings; clients accept both.
MEDIA_TYPES: dict[str, tuple[int, int]] = {
    "application/vnd.dev.sigstore.bundle+json;version=0.1": (0, 1),
    "application/vnd.dev.sigstore.bundle+json;version=0.2": (0, 2),
    "application/vnd.dev.sigstore.bundle+json;version=0.3": (0, 3),
    "application/vnd.dev.sigstore.bundle.v0.3+json": (0, 3),
}


def _only_keys(data: dict[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise E(f"{what} has unknown field {unknown[0]!r}")


def _load_certificate(der: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise E(f"{what} is not a DER X.509 certificate") from exc


class InclusionProof(NamedTuple):
    """A Merkle inclusion proof with the checkpoint it leads to."""

    log_index: int  # index within this log shard
    root_hash: bytes
    tree_size: int
    hashes: tuple[bytes, ...]
    checkpoint: str | None

    @classmethod
    def from_json(cls, data: Any, what: str) -> "InclusionProof":
        data = require_dict(data, what, E)
        _only_keys(data, {"logIndex", "rootHash", "treeSize", "hashes", "checkpoint"}, what)
        hashes_json = data.get("hashes", [])
        if isinstance(hashes_json, list) and len(hashes_json) > MAX_PROOF_HASHES:
            # Checked before decoding: a proof of a million hashes costs nothing to reject.
            raise E(f"{what}.hashes is too long", actual=len(hashes_json),
                    expected=f"<= {MAX_PROOF_HASHES}")
        hashes = tuple(
            b64decode(h, f"{what}.hashes[{i}]", E)
            for i, h in enumerate(require_list(hashes_json, f"{what}.hashes", E))
        )
        checkpoint = None
        if "checkpoint" in data:
            cp = require_dict(data["checkpoint"], f"{what}.checkpoint", E)
            _only_keys(cp, {"envelope"}, f"{what}.checkpoint")
            checkpoint = require_str(cp.get("envelope"), f"{what}.checkpoint.envelope", E)
        return cls(
            log_index=parse_int(data.get("logIndex", 0), f"{what}.logIndex", E),
            root_hash=b64decode(data.get("rootHash"), f"{what}.rootHash", E),
            tree_size=parse_int(data.get("treeSize"), f"{what}.treeSize", E),
            hashes=hashes,
            checkpoint=checkpoint,
        )


class TlogEntry(NamedTuple):
    """One transparency log entry as carried in a bundle."""

    log_index: int  # global index (Rekor v1) or the log's index (Rekor v2)
    log_id: bytes
    kind: str
    version: str
    integrated_time: int  # 0 when absent (Rekor v2)
    signed_entry_timestamp: bytes | None
    inclusion_proof: InclusionProof | None
    canonicalized_body: bytes

    @classmethod
    def from_json(cls, data: Any, what: str) -> "TlogEntry":
        data = require_dict(data, what, E)
        _only_keys(data, {"logIndex", "logId", "kindVersion", "integratedTime",
                          "inclusionPromise", "inclusionProof", "canonicalizedBody"}, what)
        log_id_json = require_dict(data.get("logId"), f"{what}.logId", E)
        _only_keys(log_id_json, {"keyId"}, f"{what}.logId")
        kind_version = require_dict(data.get("kindVersion"), f"{what}.kindVersion", E)
        _only_keys(kind_version, {"kind", "version"}, f"{what}.kindVersion")
        promise = None
        if data.get("inclusionPromise") is not None:
            promise_json = require_dict(data["inclusionPromise"], f"{what}.inclusionPromise", E)
            _only_keys(promise_json, {"signedEntryTimestamp"}, f"{what}.inclusionPromise")
            promise = b64decode(promise_json.get("signedEntryTimestamp"),
                                f"{what}.inclusionPromise.signedEntryTimestamp", E)
        proof = None
        if data.get("inclusionProof") is not None:
            proof = InclusionProof.from_json(data["inclusionProof"], f"{what}.inclusionProof")
        if "canonicalizedBody" not in data:
            raise E(f"{what} has no canonicalizedBody")
        return cls(
            # SPEC: protobuf JSON mapping: a zero int64 is omitted, so an entry at log index
            # 0 (the first entry of a log) has no "logIndex"; likewise integratedTime.
            log_index=parse_int(data.get("logIndex", 0), f"{what}.logIndex", E),
            log_id=b64decode(log_id_json.get("keyId"), f"{what}.logId.keyId", E),
            kind=require_str(kind_version.get("kind"), f"{what}.kindVersion.kind", E),
            version=require_str(kind_version.get("version"), f"{what}.kindVersion.version", E),
            integrated_time=parse_int(data.get("integratedTime", 0), f"{what}.integratedTime", E),
            signed_entry_timestamp=promise,
            inclusion_proof=proof,
            canonicalized_body=b64decode(data["canonicalizedBody"], f"{what}.canonicalizedBody", E),
        )


class MessageSignature(NamedTuple):
    """``messageSignature``: a signature over an artifact's digest."""

    digest_algorithm: str | None  # "SHA2_256"... None when the bundle omits messageDigest
    digest: bytes | None
    signature: bytes

    @classmethod
    def from_json(cls, data: Any) -> "MessageSignature":
        what = "messageSignature"
        data = require_dict(data, what, E)
        _only_keys(data, {"messageDigest", "signature"}, what)
        algorithm = digest = None
        if data.get("messageDigest") is not None:
            md = require_dict(data["messageDigest"], f"{what}.messageDigest", E)
            _only_keys(md, {"algorithm", "digest"}, f"{what}.messageDigest")
            algorithm = require_str(md.get("algorithm"), f"{what}.messageDigest.algorithm", E)
            digest = b64decode(md.get("digest"), f"{what}.messageDigest.digest", E)
        signature = b64decode(data.get("signature"), f"{what}.signature", E)
        if not signature:
            raise E(f"{what}.signature is empty")
        return cls(algorithm, digest, signature)


class DSSESignature(NamedTuple):
    """One DSSE signature."""

    sig: bytes
    keyid: str


class DSSEEnvelope(NamedTuple):
    """A DSSE envelope (https://github.com/secure-systems-lab/dsse)."""

    payload: bytes
    payload_type: str
    signatures: tuple[DSSESignature, ...]

    def pae(self) -> bytes:
        """The pre-authentication encoding that DSSE signatures cover.

        SPEC: DSSE v1 PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body.
        """
        type_bytes = self.payload_type.encode()
        return b"DSSEv1 %d %s %d %s" % (len(type_bytes), type_bytes, len(self.payload), self.payload)

    @classmethod
    def from_json(cls, data: Any) -> "DSSEEnvelope":
        what = "dsseEnvelope"
        data = require_dict(data, what, E)
        _only_keys(data, {"payload", "payloadType", "signatures"}, what)
        signatures = []
        for i, item in enumerate(require_list(data.get("signatures"), f"{what}.signatures", E,
                                              max_items=16)):
            item = require_dict(item, f"{what}.signatures[{i}]", E)
            _only_keys(item, {"sig", "keyid"}, f"{what}.signatures[{i}]")
            keyid = item.get("keyid", "")
            if not isinstance(keyid, str):
                raise E(f"{what}.signatures[{i}].keyid must be a string")
            signatures.append(DSSESignature(
                b64decode(item.get("sig"), f"{what}.signatures[{i}].sig", E), keyid))
        # SPEC: bundle spec: a DSSE envelope in a bundle carries exactly one signature.
        if len(signatures) != 1:
            raise E(f"{what} must carry exactly one signature", actual=len(signatures), expected=1)
        return cls(
            # SPEC: protobuf JSON mapping: empty bytes are omitted.
            payload=b64decode(data.get("payload", ""), f"{what}.payload", E),
            payload_type=require_str(data.get("payloadType"), f"{what}.payloadType", E),
            signatures=tuple(signatures),
        )


class Bundle(NamedTuple):
    """A parsed Sigstore bundle."""

    version: tuple[int, int]
    media_type: str
    # Exactly one of the three is set.
    certificate: x509.Certificate | None
    chain_extras: tuple[x509.Certificate, ...]  # v0.1/v0.2 chain beyond the leaf (untrusted)
    public_key_hint: str | None
    tlog_entries: tuple[TlogEntry, ...]
    rfc3161_timestamps: tuple[bytes, ...]
    message_signature: MessageSignature | None
    dsse_envelope: DSSEEnvelope | None

    @property
    def signature(self) -> bytes:
        """The signature bytes that timestamps cover."""
        if self.message_signature is not None:
            return self.message_signature.signature
        assert self.dsse_envelope is not None
        return self.dsse_envelope.signatures[0].sig

    @classmethod
    def from_json(cls, text: str | bytes) -> "Bundle":
        """Parse the JSON text of a bundle."""
        if len(text) > MAX_BUNDLE_BYTES:
            raise E("bundle is too large", actual=len(text), expected=f"<= {MAX_BUNDLE_BYTES} bytes")
        try:
            data = json.loads(text)
        except RecursionError as exc:
            raise E("bundle JSON is nested too deeply") from exc
        except (ValueError, UnicodeDecodeError) as exc:
            raise E(f"bundle is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> "Bundle":
        """Build from decoded JSON."""
        reject_lone_surrogates(data, "bundle", E)
        if is_cosign_legacy(data):
            # SPEC: cosign pkg/cosign/bundle: the legacy format of cosign 1.x/2.x
            # `sign-blob --bundle`, read as the v0.1 bundle it is equivalent to.
            return cls.from_dict(parse_cosign_legacy(data))._replace(
                media_type=COSIGN_LEGACY_MEDIA_TYPE)
        data = require_dict(data, "bundle", E)
        _only_keys(data, {"mediaType", "verificationMaterial", "messageSignature",
                          "dsseEnvelope"}, "bundle")
        media_type = data.get("mediaType")
        version = MEDIA_TYPES.get(media_type) if isinstance(media_type, str) else None
        if version is None:
            raise E("unsupported bundle media type", actual=media_type,
                    expected="a Sigstore bundle v0.1, v0.2 or v0.3 media type")

        vm = require_dict(data.get("verificationMaterial"), "verificationMaterial", E)
        _only_keys(vm, {"certificate", "x509CertificateChain", "publicKey", "tlogEntries",
                        "timestampVerificationData"}, "verificationMaterial")
        present = [k for k in ("certificate", "x509CertificateChain", "publicKey") if k in vm]
        if len(present) != 1:
            raise E("verificationMaterial must hold exactly one of certificate, "
                    "x509CertificateChain or publicKey", actual=present or "none")
        certificate = None
        extras: tuple[x509.Certificate, ...] = ()
        hint = None
        if "certificate" in vm:
            cert_json = require_dict(vm["certificate"], "verificationMaterial.certificate", E)
            _only_keys(cert_json, {"rawBytes"}, "verificationMaterial.certificate")
            certificate = _load_certificate(
                b64decode(cert_json.get("rawBytes"), "verificationMaterial.certificate.rawBytes", E),
                "verificationMaterial.certificate")
        elif "x509CertificateChain" in vm:
            # SPEC: bundle v0.3 replaced the chain with a single leaf certificate.
            if version >= (0, 3):
                raise E("a v0.3 bundle must carry a certificate, not x509CertificateChain")
            what = "verificationMaterial.x509CertificateChain"
            chain_json = require_dict(vm["x509CertificateChain"], what, E)
            _only_keys(chain_json, {"certificates"}, what)
            certs = require_list(chain_json.get("certificates"), f"{what}.certificates", E,
                                 max_items=16)
            if not certs:
                raise E(f"{what} is empty")
            parsed = []
            for i, item in enumerate(certs):
                item = require_dict(item, f"{what}.certificates[{i}]", E)
                _only_keys(item, {"rawBytes"}, f"{what}.certificates[{i}]")
                parsed.append(_load_certificate(
                    b64decode(item.get("rawBytes"), f"{what}.certificates[{i}].rawBytes", E),
                    f"{what}.certificates[{i}]"))
            certificate, extras = parsed[0], tuple(parsed[1:])
        else:
            pk = require_dict(vm["publicKey"], "verificationMaterial.publicKey", E)
            _only_keys(pk, {"hint"}, "verificationMaterial.publicKey")
            hint = pk.get("hint", "")
            if not isinstance(hint, str):
                raise E("verificationMaterial.publicKey.hint must be a string")

        entries_json = require_list(vm.get("tlogEntries", []), "verificationMaterial.tlogEntries",
                                    E, max_items=MAX_TLOG_ENTRIES)
        entries = tuple(TlogEntry.from_json(item, f"verificationMaterial.tlogEntries[{i}]")
                        for i, item in enumerate(entries_json))
        for i, entry in enumerate(entries):
            where = f"verificationMaterial.tlogEntries[{i}]"
            # SPEC: v0.1 bundles need an inclusion promise; from v0.2 on an inclusion proof.
            if version == (0, 1) and entry.signed_entry_timestamp is None:
                raise E(f"{where} has no inclusionPromise, which a v0.1 bundle requires")
            if version >= (0, 2) and entry.inclusion_proof is None:
                raise E(f"{where} has no inclusionProof, which a v{version[0]}.{version[1]} "
                        "bundle requires")

        timestamps: list[bytes] = []
        if vm.get("timestampVerificationData") is not None:
            what = "verificationMaterial.timestampVerificationData"
            tvd = require_dict(vm["timestampVerificationData"], what, E)
            _only_keys(tvd, {"rfc3161Timestamps"}, what)
            for i, item in enumerate(require_list(tvd.get("rfc3161Timestamps", []),
                                                  f"{what}.rfc3161Timestamps", E,
                                                  max_items=MAX_TIMESTAMPS)):
                item = require_dict(item, f"{what}.rfc3161Timestamps[{i}]", E)
                _only_keys(item, {"signedTimestamp"}, f"{what}.rfc3161Timestamps[{i}]")
                timestamps.append(b64decode(item.get("signedTimestamp"),
                                            f"{what}.rfc3161Timestamps[{i}].signedTimestamp", E))

        has_message = data.get("messageSignature") is not None
        has_dsse = data.get("dsseEnvelope") is not None
        if has_message == has_dsse:
            raise E("bundle must hold exactly one of messageSignature or dsseEnvelope")
        message = MessageSignature.from_json(data["messageSignature"]) if has_message else None
        envelope = DSSEEnvelope.from_json(data["dsseEnvelope"]) if has_dsse else None
        return cls(version, media_type, certificate, extras, hint, entries, tuple(timestamps),
                   message, envelope)
