"""Transparency log entry bodies (Rekor v1 and v2 kinds), normalised for comparison.

A log entry's canonicalized body says what the log recorded: a digest or a DSSE payload hash,
signatures and the keys or certificates that made them. Each supported kind is parsed into
one :class:`EntryBody` so the verifier can compare it with the bundle without caring which
wire shape it came from.

SPEC: rekor pkg/types/{hashedrekord,dsse,intoto} (v1 API) and rekor-tiles
api/proto/rekor/v2 (hashedrekord 0.0.2, dsse 0.0.2).
"""

from __future__ import annotations

import json
from typing import Any, Callable, NamedTuple

from cryptography import x509

from sealtrail._internal.encoding import b64decode, hexdecode, require_dict, require_list, require_str
from sealtrail.crypto.keys import PublicKey, hash_by_name
from sealtrail.errors import BundleMalformedError, Error
from sealtrail.models._json import reject_lone_surrogates

__all__ = ["EntryBody", "EntrySignature", "Verifier", "parse_entry_body", "SUPPORTED_KINDS"]

E = BundleMalformedError


class Verifier(NamedTuple):
    """The key material a log entry names: a certificate or a bare public key."""

    certificate: x509.Certificate | None = None
    public_key: PublicKey | None = None

    def matches_certificate(self, cert: x509.Certificate) -> bool:
        """Whether this is the same certificate (or the same key as the certificate's)."""
        if self.certificate is not None:
            return self.certificate == cert
        return False

    def matches_key(self, key: PublicKey) -> bool:
        """Whether this names ``key`` (directly, or as a certificate's key)."""
        if self.public_key is not None:
            return self.public_key.same_key(key)
        if self.certificate is not None:
            try:
                return PublicKey.from_key(self.certificate.public_key()).same_key(key)
            except Error:
                return False
        return False

    def describe(self) -> str:
        """Short text for error messages."""
        if self.certificate is not None:
            return f"certificate serial {self.certificate.serial_number:x}"
        assert self.public_key is not None
        return f"public key {self.public_key.key_id.hex()[:16]}"


class EntrySignature(NamedTuple):
    """A signature recorded in a log entry, with the verifier that made it."""

    signature: bytes
    verifier: Verifier


class EntryBody(NamedTuple):
    """A parsed, kind-independent view of a log entry body."""

    kind: str
    version: str
    signatures: tuple[EntrySignature, ...]
    digest_algorithm: str | None = None  # hashlib name; hashedrekord only
    digest: bytes | None = None
    payload_hash_algorithm: str | None = None  # dsse / intoto only
    payload_hash: bytes | None = None
    payload_type: str | None = None  # intoto only


def _pem_verifier(b64_pem: Any, what: str) -> Verifier:
    """Rekor v1 stores a base64 PEM that is either a certificate or a public key."""
    pem = b64decode(b64_pem, what, E)
    if b"-----BEGIN CERTIFICATE-----" in pem:
        try:
            return Verifier(certificate=x509.load_pem_x509_certificate(pem))
        except ValueError as exc:
            raise E(f"{what} is not a PEM certificate") from exc
    return Verifier(public_key=PublicKey.from_pem(pem, E))


def _v2_verifier(data: Any, what: str) -> Verifier:
    data = require_dict(data, what, E)
    if "x509Certificate" in data:
        raw = b64decode(require_dict(data["x509Certificate"], f"{what}.x509Certificate", E)
                        .get("rawBytes"), f"{what}.x509Certificate.rawBytes", E)
        try:
            return Verifier(certificate=x509.load_der_x509_certificate(raw))
        except ValueError as exc:
            raise E(f"{what}.x509Certificate is not a DER certificate") from exc
    if "publicKey" in data:
        raw = b64decode(require_dict(data["publicKey"], f"{what}.publicKey", E).get("rawBytes"),
                        f"{what}.publicKey.rawBytes", E)
        details = data.get("keyDetails")
        return Verifier(public_key=PublicKey.from_spki_der(
            raw, details if isinstance(details, str) else None, E))
    raise E(f"{what} has neither x509Certificate nor publicKey")


def _hashedrekord_001(spec: dict[str, Any]) -> EntryBody:
    hash_json = require_dict(require_dict(spec.get("data"), "spec.data", E).get("hash"),
                             "spec.data.hash", E)
    signature = require_dict(spec.get("signature"), "spec.signature", E)
    verifier = _pem_verifier(
        require_dict(signature.get("publicKey"), "spec.signature.publicKey", E).get("content"),
        "spec.signature.publicKey.content")
    return EntryBody(
        kind="hashedrekord", version="0.0.1",
        signatures=(EntrySignature(b64decode(signature.get("content"), "spec.signature.content", E),
                                   verifier),),
        digest_algorithm=hash_by_name(require_str(hash_json.get("algorithm"),
                                                  "spec.data.hash.algorithm", E), E),
        digest=hexdecode(hash_json.get("value"), "spec.data.hash.value", E),
    )


def _dsse_001(spec: dict[str, Any]) -> EntryBody:
    payload_hash = require_dict(spec.get("payloadHash"), "spec.payloadHash", E)
    signatures = []
    for i, item in enumerate(require_list(spec.get("signatures"), "spec.signatures", E, max_items=16)):
        item = require_dict(item, f"spec.signatures[{i}]", E)
        signatures.append(EntrySignature(
            b64decode(item.get("signature"), f"spec.signatures[{i}].signature", E),
            _pem_verifier(item.get("verifier"), f"spec.signatures[{i}].verifier")))
    return EntryBody(
        kind="dsse", version="0.0.1", signatures=tuple(signatures),
        payload_hash_algorithm=hash_by_name(require_str(payload_hash.get("algorithm"),
                                                        "spec.payloadHash.algorithm", E), E),
        payload_hash=hexdecode(payload_hash.get("value"), "spec.payloadHash.value", E),
    )


def _intoto_002(spec: dict[str, Any]) -> EntryBody:
    content = require_dict(spec.get("content"), "spec.content", E)
    envelope = require_dict(content.get("envelope"), "spec.content.envelope", E)
    payload_hash = require_dict(content.get("payloadHash"), "spec.content.payloadHash", E)
    signatures = []
    for i, item in enumerate(require_list(envelope.get("signatures"), "spec.content.envelope.signatures",
                                          E, max_items=16)):
        item = require_dict(item, f"spec.content.envelope.signatures[{i}]", E)
        # SPEC: intoto 0.0.2 stores the DSSE "sig" base64-encoded a second time.
        inner = b64decode(item.get("sig"), f"spec.content.envelope.signatures[{i}].sig", E)
        sig = b64decode(inner.decode("ascii", "replace"),
                        f"spec.content.envelope.signatures[{i}].sig (inner)", E)
        signatures.append(EntrySignature(
            sig, _pem_verifier(item.get("publicKey"),
                               f"spec.content.envelope.signatures[{i}].publicKey")))
    return EntryBody(
        kind="intoto", version="0.0.2", signatures=tuple(signatures),
        payload_hash_algorithm=hash_by_name(require_str(payload_hash.get("algorithm"),
                                                        "spec.content.payloadHash.algorithm", E), E),
        payload_hash=hexdecode(payload_hash.get("value"), "spec.content.payloadHash.value", E),
        payload_type=require_str(envelope.get("payloadType"),
                                 "spec.content.envelope.payloadType", E),
    )


def _hashedrekord_002(spec: dict[str, Any]) -> EntryBody:
    inner = require_dict(spec.get("hashedRekordV002"), "spec.hashedRekordV002", E)
    data = require_dict(inner.get("data"), "spec.hashedRekordV002.data", E)
    signature = require_dict(inner.get("signature"), "spec.hashedRekordV002.signature", E)
    return EntryBody(
        kind="hashedrekord", version="0.0.2",
        signatures=(EntrySignature(
            b64decode(signature.get("content"), "spec.hashedRekordV002.signature.content", E),
            _v2_verifier(signature.get("verifier"), "spec.hashedRekordV002.signature.verifier")),),
        digest_algorithm=hash_by_name(require_str(data.get("algorithm"),
                                                  "spec.hashedRekordV002.data.algorithm", E), E),
        digest=b64decode(data.get("digest"), "spec.hashedRekordV002.data.digest", E),
    )


def _dsse_002(spec: dict[str, Any]) -> EntryBody:
    inner = require_dict(spec.get("dsseV002"), "spec.dsseV002", E)
    payload_hash = require_dict(inner.get("payloadHash"), "spec.dsseV002.payloadHash", E)
    signatures = []
    for i, item in enumerate(require_list(inner.get("signatures"), "spec.dsseV002.signatures", E,
                                          max_items=16)):
        item = require_dict(item, f"spec.dsseV002.signatures[{i}]", E)
        signatures.append(EntrySignature(
            b64decode(item.get("content"), f"spec.dsseV002.signatures[{i}].content", E),
            _v2_verifier(item.get("verifier"), f"spec.dsseV002.signatures[{i}].verifier")))
    return EntryBody(
        kind="dsse", version="0.0.2", signatures=tuple(signatures),
        payload_hash_algorithm=hash_by_name(require_str(payload_hash.get("algorithm"),
                                                        "spec.dsseV002.payloadHash.algorithm", E), E),
        payload_hash=b64decode(payload_hash.get("digest"), "spec.dsseV002.payloadHash.digest", E),
    )


_PARSERS: dict[tuple[str, str], Callable[[dict[str, Any]], EntryBody]] = {
    ("hashedrekord", "0.0.1"): _hashedrekord_001,
    ("dsse", "0.0.1"): _dsse_001,
    ("intoto", "0.0.2"): _intoto_002,
    ("hashedrekord", "0.0.2"): _hashedrekord_002,
    ("dsse", "0.0.2"): _dsse_002,
}

SUPPORTED_KINDS = tuple(sorted(_PARSERS))


def parse_entry_body(body: bytes, kind: str, version: str) -> EntryBody:
    """Parse a canonicalized body whose kind and version the bundle announced.

    Raises :class:`BundleMalformedError` if the body is not JSON, is of another kind than
    announced, or is of a kind this verifier does not support.
    """
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise E("log entry body is not valid JSON") from exc
    reject_lone_surrogates(data, "log entry body", E)
    data = require_dict(data, "log entry body", E)
    if data.get("kind") != kind or data.get("apiVersion") != version:
        raise E("log entry body does not match the announced kind and version",
                actual=f"{data.get('kind')} {data.get('apiVersion')}", expected=f"{kind} {version}")
    parser = _PARSERS.get((kind, version))
    if parser is None:
        raise E("unsupported log entry kind", actual=f"{kind} {version}",
                expected=", ".join(f"{k} {v}" for k, v in SUPPORTED_KINDS))
    return parser(require_dict(data.get("spec"), "log entry spec", E))
