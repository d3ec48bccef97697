"""Transparency log checks: the inclusion promise (SET), and the entry body against the bundle.

Pure functions; the checkpoint and Merkle proof checks live in ``_checkpoint`` and
``sealtrail.merkle``.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography import x509

from sealtrail.crypto.keys import PublicKey, hash_by_name
from sealtrail.errors import Error, SETInvalidError, TlogEntryMismatchError
from sealtrail.models.bundle import Bundle, TlogEntry
from sealtrail.models.rekor import EntryBody
from sealtrail.models.trusted_root import TransparencyLog

__all__ = ["match_entry_body", "verify_set"]


def set_payload(entry: TlogEntry) -> bytes:
    """The bytes a Rekor v1 log signs as the signed entry timestamp.

    SPEC: rekor pkg/api/entries.go: the SET signs the RFC 8785 canonical JSON of
    {"body": base64(canonicalized body), "integratedTime", "logID": hex, "logIndex"}.
    """
    import rfc8785  # only Rekor v1 entries need it; keep it off the CLI's start-up path

    return rfc8785.dumps({
        "body": base64.b64encode(entry.canonicalized_body).decode(),
        "integratedTime": entry.integrated_time,
        "logID": entry.log_id.hex(),
        "logIndex": entry.log_index,
    })


def verify_set(entry: TlogEntry, log: TransparencyLog) -> None:
    """Raise :class:`SETInvalidError` unless the entry's inclusion promise verifies."""
    assert entry.signed_entry_timestamp is not None
    if not log.key.verify(entry.signed_entry_timestamp, set_payload(entry)):
        raise SETInvalidError(
            f"signed entry timestamp of log entry {entry.log_index} does not verify with the key "
            f"of {log.base_url}")


def _signer_problem(body: EntryBody, index: int, certificate: x509.Certificate | None,
                    key: PublicKey | None) -> str | None:
    """Why the entry's recorded signer is not the bundle's, naming what was compared."""
    verifier = body.signatures[index].verifier
    if certificate is not None:
        if verifier.certificate is not None:
            if verifier.matches_certificate(certificate):
                return None
            return (f"the entry records certificate serial {verifier.certificate.serial_number:x}, "
                    f"the bundle's is serial {certificate.serial_number:x}")
        assert verifier.public_key is not None
        try:
            cert_key = PublicKey.from_key(certificate.public_key())
        except Error:
            return "the bundle's certificate key is not a supported signing key"
        if body.version == "0.0.2" and body.kind == "hashedrekord":
            # SPEC: rekor-tiles hashedrekord 0.0.2 Verifier is a certificate or a public
            # key; a signer may log its key alone, which binds the entry to the certificate
            # only through that key.
            if verifier.public_key.same_key(cert_key):
                return None
            return (f"the entry records public key {verifier.public_key.key_id.hex()[:16]}, "
                    f"the bundle certificate's key is {cert_key.key_id.hex()[:16]}")
        return (f"the entry records public key {verifier.public_key.key_id.hex()[:16]}, not a "
                "certificate, and only a hashedrekord 0.0.2 entry may record the "
                "certificate's key alone")
    assert key is not None
    if verifier.matches_key(key):
        return None
    return f"the entry records {verifier.describe()}, the expected key is {key.key_id.hex()[:16]}"


def match_entry_body(body: EntryBody, bundle: Bundle, certificate: x509.Certificate | None,
                     key: PublicKey | None) -> bytes | None:
    """Check that the log entry records this bundle's signature, signer and content.

    Returns the digest that a hashedrekord entry recorded for a message signature (so the
    caller can compare it with the artifact), else None. Raises
    :class:`TlogEntryMismatchError` naming the field that differs.
    """
    where = f"log entry ({body.kind} {body.version})"
    if len(body.signatures) != 1:
        raise TlogEntryMismatchError(f"{where} must record exactly one signature",
                                     actual=len(body.signatures), expected=1)
    recorded = body.signatures[0]
    problem = _signer_problem(body, 0, certificate, key)
    if problem is not None:
        raise TlogEntryMismatchError(f"{where} was made by a different signer: {problem}")
    if recorded.signature != bundle.signature:
        raise TlogEntryMismatchError(f"{where} records a different signature than the bundle")

    if bundle.message_signature is not None:
        if body.kind != "hashedrekord":
            raise TlogEntryMismatchError(f"{where} cannot record a message signature",
                                         expected="hashedrekord")
        message = bundle.message_signature
        if message.digest is not None:
            assert body.digest_algorithm is not None
            if hash_by_name(message.digest_algorithm or "", TlogEntryMismatchError) \
                    != body.digest_algorithm or message.digest != body.digest:
                raise TlogEntryMismatchError(
                    f"{where} records a different artifact digest than the bundle",
                    actual=(body.digest or b"").hex(), expected=message.digest.hex())
        return body.digest

    envelope = bundle.dsse_envelope
    assert envelope is not None
    if body.kind == "hashedrekord":
        # SPEC: rekor-v2 spec §6.1.4: DSSE logged as hashedrekord over H(PAE(type, payload)).
        assert body.digest_algorithm is not None
        expected = hashlib.new(body.digest_algorithm, envelope.pae()).digest()
        if body.digest != expected:
            raise TlogEntryMismatchError(f"{where} records a digest other than the envelope's PAE",
                                         actual=(body.digest or b"").hex(), expected=expected.hex())
        return None
    if body.kind in ("dsse", "intoto"):
        assert body.payload_hash_algorithm is not None
        expected = hashlib.new(body.payload_hash_algorithm, envelope.payload).digest()
        if body.payload_hash != expected:
            raise TlogEntryMismatchError(f"{where} records a different payload hash",
                                         actual=(body.payload_hash or b"").hex(),
                                         expected=expected.hex())
        if body.payload_type is not None and body.payload_type != envelope.payload_type:
            raise TlogEntryMismatchError(f"{where} records a different payload type",
                                         actual=body.payload_type, expected=envelope.payload_type)
        return None
    raise TlogEntryMismatchError(f"{where} cannot record a DSSE envelope")
