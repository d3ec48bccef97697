"""cosign's legacy bundle (``cosign sign-blob --bundle`` before the Sigstore bundle format).

SPEC: cosign pkg/cosign/bundle (LocalSignedPayload, RekorBundle, RFC3161Timestamp), as
cosign 1.x and 2.x write it::

    {"base64Signature": b64 signature,
     "cert": b64 of a PEM certificate (keyless) or PEM public key (--key),
     "rekorBundle": {"SignedEntryTimestamp": b64,
                     "Payload": {"body": b64 canonical entry, "integratedTime": int,
                                 "logIndex": int (global), "logID": hex SHA-256(log SPKI)}},
     "RFC3161Timestamp": {"SignedRFC3161Timestamp": b64 DER}}   (optional)

It is read into a :class:`~sealtrail.models.bundle.Bundle` like a v0.1 Sigstore bundle: a
message signature without a declared digest (the log entry's hashedrekord body supplies
it), and one Rekor v1 entry carrying only its inclusion promise (SET), whose integrated
time is the verified time at which the certificate chain is checked. cosign compares the
fields case-insensitively (Go's encoding/json); the names it writes are the ones accepted.
"""

from __future__ import annotations

import binascii
import json
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from sealtrail._internal.encoding import b64decode, hexdecode, require_dict, require_str
from sealtrail.errors import BundleMalformedError
from sealtrail.models._json import parse_int64

__all__ = ["COSIGN_LEGACY_MEDIA_TYPE", "is_cosign_legacy", "parse_cosign_legacy"]

E = BundleMalformedError

#: Not a real media type (the format has none): what ``Bundle.media_type`` says for it.
COSIGN_LEGACY_MEDIA_TYPE = "cosign legacy bundle (base64Signature, cert, rekorBundle)"
_TOP = {"base64Signature", "cert", "rekorBundle", "RFC3161Timestamp"}


def is_cosign_legacy(data: Any) -> bool:
    """Whether decoded JSON looks like cosign's legacy bundle (it has ``base64Signature``)."""
    return isinstance(data, dict) and "base64Signature" in data and "mediaType" not in data


def _only(data: dict[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise E(f"{what} has unknown field {unknown[0]!r}")


def _pem(value: Any) -> bytes:
    """cosign writes base64(PEM); a bare PEM is accepted as cosign itself does."""
    text = require_str(value, "cert", E)
    if text.lstrip().startswith("-----BEGIN"):
        return text.encode("ascii", "replace")
    return b64decode(text, "cert", E)


def parse_cosign_legacy(data: dict[str, Any]) -> dict[str, Any]:
    """Rewrite a legacy bundle as the equivalent v0.1 Sigstore bundle JSON (then parsed
    strictly by ``Bundle.from_dict``)."""
    _only(data, _TOP, "cosign bundle")
    signature = require_str(data.get("base64Signature"), "base64Signature", E)
    material: dict[str, Any] = {}
    if data.get("cert"):
        pem = _pem(data["cert"])
        if b"-----BEGIN CERTIFICATE-----" in pem:
            try:
                certificate = x509.load_pem_x509_certificate(pem)
            except ValueError as exc:
                raise E("cert is not a PEM certificate") from exc
            der = certificate.public_bytes(Encoding.DER)
            material["x509CertificateChain"] = {"certificates": [
                {"rawBytes": binascii.b2a_base64(der, newline=False).decode()}]}
        elif b"-----BEGIN PUBLIC KEY-----" in pem:
            material["publicKey"] = {"hint": ""}
        else:
            raise E("cert is neither a PEM certificate nor a PEM public key")
    else:
        # cosign --key without a certificate: the key comes from the verifier's policy.
        material["publicKey"] = {"hint": ""}

    entries = []
    if data.get("rekorBundle") is not None:
        rekor = require_dict(data["rekorBundle"], "rekorBundle", E)
        _only(rekor, {"SignedEntryTimestamp", "Payload"}, "rekorBundle")
        payload = require_dict(rekor.get("Payload"), "rekorBundle.Payload", E)
        _only(payload, {"body", "integratedTime", "logIndex", "logID"}, "rekorBundle.Payload")
        body_b64 = require_str(payload.get("body"), "rekorBundle.Payload.body", E)
        body = b64decode(body_b64, "rekorBundle.Payload.body", E)
        try:
            body_json = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise E("rekorBundle.Payload.body is not a JSON log entry") from exc
        body_json = require_dict(body_json, "rekorBundle.Payload.body", E)
        kind = require_str(body_json.get("kind"), "rekorBundle.Payload.body.kind", E)
        version = require_str(body_json.get("apiVersion"), "rekorBundle.Payload.body.apiVersion", E)
        log_id = hexdecode(payload.get("logID"), "rekorBundle.Payload.logID", E)
        entries.append({
            "logIndex": str(parse_int64(payload.get("logIndex"), "rekorBundle.Payload.logIndex", E)),
            "logId": {"keyId": binascii.b2a_base64(log_id, newline=False).decode()},
            "kindVersion": {"kind": kind, "version": version},
            "integratedTime": str(parse_int64(payload.get("integratedTime"),
                                              "rekorBundle.Payload.integratedTime", E)),
            "inclusionPromise": {"signedEntryTimestamp": require_str(
                rekor.get("SignedEntryTimestamp"), "rekorBundle.SignedEntryTimestamp", E)},
            "canonicalizedBody": body_b64,
        })
    material["tlogEntries"] = entries
    if data.get("RFC3161Timestamp") is not None:
        stamp = require_dict(data["RFC3161Timestamp"], "RFC3161Timestamp", E)
        _only(stamp, {"SignedRFC3161Timestamp"}, "RFC3161Timestamp")
        material["timestampVerificationData"] = {"rfc3161Timestamps": [{
            "signedTimestamp": require_str(stamp.get("SignedRFC3161Timestamp"),
                                           "RFC3161Timestamp.SignedRFC3161Timestamp", E)}]}
    return {
        "mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.1",
        "verificationMaterial": material,
        "messageSignature": {"signature": signature},
    }

