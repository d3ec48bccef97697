"""An in-process Certificate Transparency log that signs SCTs for the CA's precertificates.

It keeps no log: the instance's CA is its only client and the point is the SCT that clients
require in every Fulcio certificate (sigstore-wire.md §2). The SCT binds the certificate's
TBS (minus the SCT list) and its issuer's key to a time, under the CT log key listed in the
trusted root's ``ctlogs``.

SPEC: RFC 6962 §3.2 (SignedCertificateTimestamp, precert_entry signed data), §3.3
(SignedCertificateTimestampList), §4.1 (add-pre-chain); sigstore-wire.md §2.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Sequence
from typing import Any

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from sealtrail._internal.encoding import b64decode, require_list
from sealtrail.errors import CertificateRequestInvalidError, ConfigInvalidError

__all__ = ["CTLog", "POISON_OID", "SCT_LIST_OID", "add_pre_chain_response", "sct_list"]

# SPEC: RFC 6962 §3.1: precertificate poison, critical, DER NULL; §3.3: embedded SCT list.
POISON_OID = "1.3.6.1.4.1.11129.2.4.3"
SCT_LIST_OID = "1.3.6.1.4.1.11129.2.4.2"

# SPEC: RFC 5246 §7.4.1.4.1: HashAlgorithm sha256(4), SignatureAlgorithm ecdsa(3).
_TLS_SHA256 = 4
_TLS_ECDSA = 3
# RFC 6962 §3.2 vector bounds: TBSCertificate<1..2^24-1>, CtExtensions<0..2^16-1>.
_MAX_TBS = 2**24 - 1
_MAX_EXTENSIONS = 2**16 - 1
# add-pre-chain: a precertificate and its issuers; Fulcio chains have 3 certificates.
MAX_CHAIN_CERTS = 8
MAX_CERT_BYTES = 64 * 1024

E = CertificateRequestInvalidError


def _spki(public_key: CertificatePublicKeyTypes) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def sct_list(scts: Sequence[bytes]) -> bytes:
    """TLS-encode a ``SignedCertificateTimestampList`` (RFC 6962 §3.3).

    ``opaque SerializedSCT<1..2^16-1>; SerializedSCT sct_list<1..2^16-1>``. The result is
    what the X.509 extension's OCTET STRING wraps.
    """
    if not scts:
        raise ValueError("an SCT list holds at least one SCT")
    if any(not 0 < len(sct) <= 0xFFFF for sct in scts):
        raise ValueError("an SCT is empty or too long")
    body = b"".join(struct.pack(">H", len(sct)) + sct for sct in scts)
    if len(body) > 0xFFFF:
        raise ValueError("SCT list is too long")
    return struct.pack(">H", len(body)) + body


def add_pre_chain_response(sct: bytes) -> dict[str, Any]:
    """The RFC 6962 §4.1 ``add-pre-chain`` JSON response for one TLS-encoded v1 SCT.

    ``{"sct_version": 0, "id": b64(log_id), "timestamp": ms, "extensions": b64,
    "signature": b64(TLS DigitallySigned)}`` (sigstore-wire.md §2).
    """
    # Layout written by CTLog.sign_precert: u8 version, log_id[32], u64 timestamp,
    # u16-prefixed extensions, then the DigitallySigned struct to the end.
    version = sct[0]
    log_id = sct[1:33]
    (timestamp,) = struct.unpack(">Q", sct[33:41])
    (ext_len,) = struct.unpack(">H", sct[41:43])
    extensions = sct[43:43 + ext_len]
    signature = sct[43 + ext_len:]
    return {
        "sct_version": version,
        "id": base64.b64encode(log_id).decode(),
        "timestamp": timestamp,
        "extensions": base64.b64encode(extensions).decode(),
        "signature": base64.b64encode(signature).decode(),
    }


class CTLog:
    """A CT log key that signs precertificate SCTs.

    ``private_key`` must be an ECDSA P-256 key (sigstore-wire.md §2); other types raise
    :class:`ConfigInvalidError`.
    """

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(private_key, ec.EllipticCurvePrivateKey) \
                or private_key.curve.name != "secp256r1":
            raise ConfigInvalidError("the CT log key must be an ECDSA P-256 key",
                                     actual=type(private_key).__name__)
        self._key = private_key
        self.public_key = private_key.public_key()
        self.public_key_der = _spki(self.public_key)
        # SPEC: RFC 6962 §3.2: LogID is the SHA-256 hash of the log's DER SPKI.
        self.log_id = hashlib.sha256(self.public_key_der).digest()

    def sign_precert(self, tbs: bytes, issuer_spki_der: bytes, timestamp_ms: int,
                     extensions: bytes = b"") -> bytes:
        """Sign a precertificate TBS and return one TLS-encoded v1 SCT.

        ``tbs`` is the DER TBSCertificate without poison or SCT list (what
        ``x509.Certificate.tbs_precertificate_bytes`` returns for the final certificate);
        ``issuer_spki_der`` the DER SPKI of the certificate's issuer.
        """
        if not 0 < len(tbs) <= _MAX_TBS:
            raise ValueError("TBSCertificate length is out of range")
        if len(extensions) > _MAX_EXTENSIONS:
            raise ValueError("SCT extensions are too long")
        if not 0 <= timestamp_ms < 2**64:
            raise ValueError("SCT timestamp is out of range")
        issuer_key_hash = hashlib.sha256(issuer_spki_der).digest()
        signed = b"".join((
            # SPEC: RFC 6962 §3.2 digitally-signed struct: sct_version v1(0),
            # signature_type certificate_timestamp(0), uint64 timestamp,
            # entry_type precert_entry(1), PreCert {issuer_key_hash[32], tbs<1..2^24-1>},
            # CtExtensions<0..2^16-1>.
            struct.pack(">BBQH", 0, 0, timestamp_ms, 1),
            issuer_key_hash,
            len(tbs).to_bytes(3, "big"),
            tbs,
            struct.pack(">H", len(extensions)),
            extensions,
        ))
        signature = self._key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return b"".join((
            # SPEC: RFC 6962 §3.2 SignedCertificateTimestamp: version, LogID id[32],
            # uint64 timestamp, CtExtensions, digitally-signed (hash, sig alg, opaque<0..2^16-1>).
            struct.pack(">B", 0),
            self.log_id,
            struct.pack(">Q", timestamp_ms),
            struct.pack(">H", len(extensions)),
            extensions,
            struct.pack(">BBH", _TLS_SHA256, _TLS_ECDSA, len(signature)),
            signature,
        ))

    def add_pre_chain(self, chain_b64: Any, accepted_roots: Sequence[x509.Certificate],
                      timestamp_ms: int) -> dict[str, Any]:
        """Handle an RFC 6962 §4.1 ``add-pre-chain`` request body's ``chain``.

        ``chain_b64`` is the JSON array of base64 DER certificates: the precertificate
        (with the critical poison extension), its issuer, ..., a root among
        ``accepted_roots``. Every link must verify. The signed TBS is the precertificate's
        TBS with the poison removed. Returns the JSON response (see
        :func:`add_pre_chain_response`). Raises :class:`CertificateRequestInvalidError`.
        """
        items = require_list(chain_b64, "chain", E, max_items=MAX_CHAIN_CERTS)
        if len(items) < 2:
            raise E("add-pre-chain needs the precertificate and its issuer chain",
                    actual=len(items), expected=">= 2 certificates")
        ders = [b64decode(item, f"chain[{i}]", E) for i, item in enumerate(items)]
        certs = []
        for i, der in enumerate(ders):
            if len(der) > MAX_CERT_BYTES:
                raise E(f"chain[{i}] is too large", actual=len(der))
            try:
                certs.append(x509.load_der_x509_certificate(der))
            except ValueError as exc:
                raise E(f"chain[{i}] is not a DER certificate") from exc
        for i in range(len(certs) - 1):
            try:
                certs[i].verify_directly_issued_by(certs[i + 1])
            except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm) as exc:
                raise E(f"chain[{i}] is not issued by chain[{i + 1}]") from exc
        # SPEC: RFC 6962 §4.1: the chain must end in a root the log accepts.
        if certs[-1] not in accepted_roots:
            raise E("chain does not end in a root accepted by this CT log")
        tbs = _tbs_without_poison(ders[0])
        sct = self.sign_precert(tbs, _spki(certs[1].public_key()), timestamp_ms)
        return add_pre_chain_response(sct)


def _tbs_without_poison(precert_der: bytes) -> bytes:
    """The precertificate's TBS with its poison extension removed (RFC 6962 §3.2).

    asn1crypto re-encodes only the part we change; every other field keeps its original
    bytes, so the result equals the final certificate's TBS minus the SCT list.
    """
    try:
        cert = asn1_x509.Certificate.load(precert_der)
        tbs = cert["tbs_certificate"]
        extensions = tbs["extensions"]
        kept = [ext for ext in extensions if ext["extn_id"].dotted != POISON_OID]
        poison = [ext for ext in extensions if ext["extn_id"].dotted == POISON_OID]
    except (ValueError, TypeError, KeyError) as exc:
        raise E("precertificate does not parse") from exc
    if len(poison) != 1 or not poison[0]["critical"].native:
        raise E("precertificate must carry exactly one critical poison extension")
    try:
        stripped = tbs.copy()
        stripped["extensions"] = asn1_x509.Extensions(kept) if kept else None
        der: bytes = stripped.dump(force=False)
        return der
    except (ValueError, TypeError) as exc:
        raise E("precertificate TBS cannot be re-encoded") from exc
