"""Signing-certificate checks: Fulcio leaf profile, chain to a trusted CA, embedded SCT.

Pure: every function takes the time to check at as a parameter and reads no clock.
Chain building and path validation are delegated to ``cryptography``'s RFC 5280 / WebPKI
verifier (``cryptography.x509.verification``); this module only configures it for the
Fulcio profile and turns its errors into sealtrail errors.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.certificate_transparency import (
    LogEntryType,
    SignatureAlgorithm,
    SignedCertificateTimestamp,
    Version,
)
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
)
from cryptography.x509.verification import VerificationError as X509VerificationError

from sealtrail.errors import (
    CertChainInvalidError,
    CertProfileInvalidError,
    Error,
    SCTInvalidError,
    UsageError,
)
from sealtrail.models.trusted_root import CertificateAuthority, TransparencyLog, ValidityWindow

__all__ = [
    "check_leaf_profile",
    "verify_certificate",
    "verify_chain",
    "verify_embedded_sct",
]

_CODE_SIGNING = ExtendedKeyUsageOID.CODE_SIGNING
_ANY_EKU = ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE

# Exceptions cryptography raises while parsing extensions of a hostile certificate.
_PARSE_ERRORS = (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType)

# RFC 6962 §3.2 field limits (TLS vectors): TBSCertificate<1..2^24-1>, CtExtensions<0..2^16-1>.
_MAX_TBS = 2**24 - 1
_MAX_SCT_EXTENSIONS = 2**16 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise UsageError("verification time must be timezone-aware", actual=at.isoformat())
    return at.astimezone(timezone.utc)


def _extensions(cert: x509.Certificate, error: type[Error]) -> x509.Extensions:
    try:
        return cert.extensions
    except _PARSE_ERRORS as exc:
        raise error(f"certificate extensions do not parse: {exc}") from exc


def _window(window: ValidityWindow) -> str:
    end = window.end.isoformat() if window.end else "open-ended"
    return f"{window.start.isoformat()} to {end}"


def _cert_window(cert: x509.Certificate) -> str:
    return f"{cert.not_valid_before_utc.isoformat()} to {cert.not_valid_after_utc.isoformat()}"


def _name(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "<empty subject>"


# -- 1. leaf profile ------------------------------------------------------------------------

def check_leaf_profile(leaf: x509.Certificate) -> None:
    """Check that ``leaf`` is a code-signing certificate in the Fulcio profile.

    SPEC: Fulcio certificate-specification.md: KeyUsage digitalSignature, ExtendedKeyUsage
    codeSigning, and a SubjectAlternativeName holding the identity.
    Raises :class:`CertProfileInvalidError`.
    """
    E = CertProfileInvalidError
    extensions = _extensions(leaf, E)
    try:
        key_usage = extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise E("certificate has no KeyUsage extension",
                expected="KeyUsage with digitalSignature", actual="no KeyUsage") from None
    if not key_usage.digital_signature:
        raise E("certificate KeyUsage does not allow digitalSignature",
                expected="digitalSignature", actual=repr(key_usage))
    try:
        eku = list(extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        raise E("certificate has no ExtendedKeyUsage extension",
                expected="ExtendedKeyUsage with codeSigning",
                actual="no ExtendedKeyUsage") from None
    if _CODE_SIGNING not in eku:
        raise E("certificate ExtendedKeyUsage does not include codeSigning",
                expected=_CODE_SIGNING.dotted_string, actual=[oid.dotted_string for oid in eku])
    try:
        extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        raise E("certificate has no SubjectAlternativeName extension",
                expected="a SAN holding the signer identity", actual="no SAN") from None


# -- 2. chain ---------------------------------------------------------------------------------

def _leaf_eku(_policy: object, _cert: x509.Certificate, eku: x509.ExtendedKeyUsage) -> None:
    if _CODE_SIGNING not in eku:
        raise ValueError("leaf ExtendedKeyUsage does not include codeSigning")


def _ca_eku(_policy: object, cert: x509.Certificate, eku: x509.ExtendedKeyUsage | None) -> None:
    # An EKU on a CA constrains what it may issue for (Go's verifier, used by sigstore-go and
    # cosign, enforces this nesting): it must then allow code signing.
    if eku is not None and _CODE_SIGNING not in eku and _ANY_EKU not in eku:
        raise ValueError(
            f"CA certificate {_name(cert)} ExtendedKeyUsage does not allow codeSigning")


# Client verifiers want the clientAuth EKU by default; Fulcio certificates carry codeSigning.
# Everything else stays WebPKI: the leaf needs an AKI, its SAN must be critical because the
# subject is empty, EKU must be non-critical (sigstore-wire.md §0).
_EE_POLICY = ExtensionPolicy.webpki_defaults_ee().require_present(
    x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, _leaf_eku)
_CA_POLICY = ExtensionPolicy.webpki_defaults_ca().may_be_present(
    x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, _ca_eku)


@lru_cache(maxsize=64)
def _trusted_chain_problem(chain: tuple[x509.Certificate, ...]) -> str | None:
    """Why a trusted-root CA chain is internally inconsistent, or None. Pure, so memoised.

    Each certificate must be a CA (basicConstraints cA) allowed to sign certificates, and
    each but the root must be issued by the next one.
    """
    for index, cert in enumerate(chain):
        try:
            constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
            key_usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        except (x509.ExtensionNotFound, *_PARSE_ERRORS):
            return f"CA certificate {_name(cert)} lacks basicConstraints or keyUsage"
        if not constraints.ca or not key_usage.key_cert_sign:
            return f"certificate {_name(cert)} of the trusted root is not a CA"
        if index + 1 == len(chain):
            break  # the root: a trust anchor's self-signature proves nothing
        issuer = chain[index + 1]
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature) as exc:
            return f"CA certificate {_name(cert)} is not issued by {_name(issuer)}: {exc}"
    return None


def _path_via(leaf: x509.Certificate, ca: CertificateAuthority,
              at: datetime) -> list[x509.Certificate]:
    """The validated path leaf -> ... -> ca root, or raise cryptography's error.

    The trusted root vouches for the CA chain as a whole, so the chain's own links are
    checked once (memoised) and the certificate nearest the leaf serves as the trust anchor
    of cryptography's verifier. This spares one P-384 signature check (about 0.5 ms) per
    verification; validity at ``at`` is still checked for every certificate of the chain.
    """
    problem = _trusted_chain_problem(tuple(ca.chain))
    if problem is not None:
        raise X509VerificationError(problem)
    for cert in ca.chain:
        if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
            raise X509VerificationError(f"CA certificate {_name(cert)} is not valid at "
                                        f"{at.isoformat()}")
    # A Fulcio leaf is issued by a certificate of the trusted chain: public-good's by the
    # first, GitHub's older ones by "Fulcio Intermediate l1", the second (SPEC: sigstore-go
    # puts every chain certificate but the last among the intermediates, so a leaf of any of
    # them verifies). The issuer named by the leaf is tried as the anchor, then the first.
    candidates = [i for i, cert in enumerate(ca.chain) if cert.subject == leaf.issuer] or [0]
    error: X509VerificationError | None = None
    for index in candidates:
        verifier = (
            PolicyBuilder()
            .store(Store([ca.chain[index]]))
            .time(at)
            .max_chain_depth(1)
            .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
            .build_client_verifier()
        )
        try:
            path = list(verifier.verify(leaf, []).chain)
        except X509VerificationError as exc:
            error = exc
            continue
        return path + list(ca.chain[index + 1:])
    assert error is not None
    raise error


def _explain(leaf: x509.Certificate, authorities: Sequence[CertificateAuthority],
             failures: list[str], at: datetime) -> CertChainInvalidError:
    """The most specific error for a leaf that no CA validated."""
    E = CertChainInvalidError
    if at > leaf.not_valid_after_utc:
        return E(f"certificate has expired at {at.isoformat()}",
                 expected=f"a time within {_cert_window(leaf)}", actual=at.isoformat())
    if at < leaf.not_valid_before_utc:
        return E(f"certificate is not yet valid at {at.isoformat()}",
                 expected=f"a time within {_cert_window(leaf)}", actual=at.isoformat())
    for ca in authorities:
        if not any(cert.subject == leaf.issuer for cert in ca.chain):
            continue  # not a candidate issuer of this leaf
        for cert in ca.chain:
            if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
                return E(f"CA certificate {_name(cert)} is not valid at {at.isoformat()}",
                         expected=f"a time within {_cert_window(cert)}", actual=at.isoformat())
    interior = [f for f in failures if "no interior errors" not in f]
    if interior:
        return E(f"certificate chain is invalid: {interior[0]}")
    return E("certificate does not chain to any trusted certificate authority",
             expected=[_name(ca.chain[0]) for ca in authorities],
             actual=f"issued by {leaf.issuer.rfc4514_string()}")


def verify_chain(
    leaf: x509.Certificate,
    authorities: Sequence[CertificateAuthority],
    at: datetime,
    untrusted_intermediates: Sequence[x509.Certificate] = (),
) -> list[x509.Certificate]:
    """Validate that ``leaf`` chains to a trusted CA at time ``at``; return the path.

    The leaf must chain to the root of one of ``authorities`` through that authority's
    intermediates, every certificate on the path must be valid at ``at``, and the
    authority's own ``validFor`` window must contain ``at``. Returns the verified path
    ``[leaf, intermediate..., root]``. Raises :class:`CertChainInvalidError`.
    """
    at = _utc(at)
    # SPEC: protobuf-specs sigstore_bundle.proto, on the v0.1/v0.2 x509CertificateChain:
    # "the chain is informational, verifiers MUST use the trusted root". Bundle-supplied
    # certificates are therefore never used as intermediates: only the trusted root's are.
    del untrusted_intermediates
    if not authorities:
        raise CertChainInvalidError("the trusted root has no certificate authorities")

    failures: list[str] = []
    out_of_window: list[CertificateAuthority] = []
    for ca in authorities:
        try:
            path = _path_via(leaf, ca, at)
        except (X509VerificationError, *_PARSE_ERRORS) as exc:
            failures.append(str(exc).removeprefix("validation failed: "))
            continue
        # SPEC: sigstore_trustroot.proto CertificateAuthority.valid_for: the CA may only be
        # used for certificates issued within this window.
        if ca.validity.contains(at):
            return path
        out_of_window.append(ca)

    if out_of_window:
        ca = out_of_window[0]
        raise CertChainInvalidError(
            f"certificate chains to CA {ca.uri or _name(ca.chain[-1])} but the trusted root "
            f"does not trust that CA at {at.isoformat()}",
            expected=f"a time within {_window(ca.validity)}", actual=at.isoformat())
    raise _explain(leaf, authorities, failures, at)


# -- 3. embedded SCT --------------------------------------------------------------------------

def _single_sct(leaf: x509.Certificate) -> SignedCertificateTimestamp:
    E = SCTInvalidError
    extensions = _extensions(leaf, E)
    try:
        # (cryptography leaves the items of this extension untyped.)
        scts: list[SignedCertificateTimestamp] = list(extensions.get_extension_for_class(
            x509.PrecertificateSignedCertificateTimestamps).value)
    except x509.ExtensionNotFound:
        raise E("certificate has no embedded SCT", expected=1, actual=0) from None
    # SPEC: sigstore-wire.md §2: clients require exactly one SCT, from a trusted CT log.
    if len(scts) != 1:
        raise E("certificate must embed exactly one SCT", expected=1, actual=len(scts))
    return scts[0]


def _signed_data(sct: SignedCertificateTimestamp, leaf: x509.Certificate,
                 issuer: x509.Certificate, timestamp_ms: int) -> bytes:
    """RFC 6962 §3.2 ``digitally-signed`` input of a precert_entry SCT (TLS encoding)."""
    E = SCTInvalidError
    issuer_key = issuer.public_key()
    if not isinstance(issuer_key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
        raise E("SCT issuer key must be ECDSA or RSA", actual=type(issuer_key).__name__)
    issuer_key_hash = hashlib.sha256(issuer_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).digest()
    try:
        # The final certificate's TBS with the SCT list extension removed: byte-for-byte the
        # TBS of the precertificate without its poison extension, which is what the log signed.
        tbs = leaf.tbs_precertificate_bytes
    except _PARSE_ERRORS as exc:
        raise E(f"cannot rebuild the precertificate TBS: {exc}") from exc
    extensions = sct.extension_bytes
    if not 0 < len(tbs) <= _MAX_TBS or len(extensions) > _MAX_SCT_EXTENSIONS:
        raise E("SCT signed data is out of range", actual=(len(tbs), len(extensions)))
    return b"".join((
        # SPEC: RFC 6962 §3.2: sct_version, signature_type = certificate_timestamp(0),
        # uint64 timestamp, LogEntryType entry_type = precert_entry(1).
        struct.pack(">BBQH", sct.version.value, 0, timestamp_ms,
                    LogEntryType.PRE_CERTIFICATE.value),
        # PreCert: opaque issuer_key_hash[32]; TBSCertificate tbs_certificate<1..2^24-1>.
        issuer_key_hash,
        len(tbs).to_bytes(3, "big"),
        tbs,
        # CtExtensions extensions<0..2^16-1>.
        struct.pack(">H", len(extensions)),
        extensions,
    ))


def verify_embedded_sct(
    leaf: x509.Certificate,
    issuer: x509.Certificate,
    ctlogs: Sequence[TransparencyLog],
) -> None:
    """Verify the one SCT embedded in ``leaf`` against the trusted CT logs.

    ``issuer`` is the certificate that issued ``leaf`` (the element after the leaf in the
    verified path): its key hash is part of what the CT log signed.
    Raises :class:`SCTInvalidError`.
    """
    E = SCTInvalidError
    sct = _single_sct(leaf)
    if sct.version != Version.v1:
        raise E("unsupported SCT version", expected="v1", actual=sct.version.name)
    if sct.entry_type != LogEntryType.PRE_CERTIFICATE:
        raise E("embedded SCT is not for a precertificate",
                expected="precert_entry", actual=sct.entry_type.name)

    log_id = sct.log_id.hex()
    log = next((log for log in ctlogs if log.log_id == sct.log_id), None)
    if log is None:
        raise E(f"SCT log id {log_id} is not in the trusted root", actual=log_id,
                expected=[log.log_id.hex() for log in ctlogs])

    timestamp = sct.timestamp
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=timezone.utc)  # cryptography gives naive UTC
    timestamp_ms = (timestamp - _EPOCH) // timedelta(milliseconds=1)
    # SPEC: sigstore-go requires the SCT time to fall inside the CT log's validFor.
    if not log.validity.contains(timestamp):
        raise E(f"CT log {log.base_url} is not trusted at the SCT time {timestamp.isoformat()}",
                expected=f"a time within {_window(log.validity)}", actual=timestamp.isoformat())

    # SPEC: sigstore-wire.md §2: the SCT hash must be SHA-256; the signature algorithm must
    # be the log key's (RFC 6962 §2.1.4 allows only ECDSA and RSA).
    if not isinstance(sct.signature_hash_algorithm, hashes.SHA256):
        raise E("SCT hash algorithm must be SHA-256", expected="sha256",
                actual=getattr(sct.signature_hash_algorithm, "name", "unknown"))
    expected_algorithm = {"ecdsa": SignatureAlgorithm.ECDSA,
                          "rsa-pkcs1": SignatureAlgorithm.RSA}.get(log.key.family)
    if sct.signature_algorithm != expected_algorithm:
        raise E(f"SCT signature algorithm does not match the key of CT log {log.base_url}",
                expected=expected_algorithm.name if expected_algorithm else None,
                actual=sct.signature_algorithm.name)

    data = _signed_data(sct, leaf, issuer, timestamp_ms)
    if not log.key.verify(sct.signature, data, "sha256"):
        raise E(f"SCT signature does not verify with the key of CT log {log.base_url}",
                actual=f"log id {log_id}")


def _embeds_sct(leaf: x509.Certificate) -> bool:
    try:
        _extensions(leaf, SCTInvalidError).get_extension_for_class(
            x509.PrecertificateSignedCertificateTimestamps)
    except x509.ExtensionNotFound:
        return False
    return True


# -- all together -----------------------------------------------------------------------------

def verify_certificate(
    leaf: x509.Certificate,
    authorities: Sequence[CertificateAuthority],
    ctlogs: Sequence[TransparencyLog],
    at: datetime,
    *,
    require_sct: bool | None = True,
) -> list[x509.Certificate]:
    """Check a Fulcio signing certificate at time ``at``; return the verified path.

    ``require_sct=None`` asks for an SCT only if ``ctlogs`` is not empty or the leaf embeds
    one: GitHub's own instance issues certificates without SCTs and its trusted root has no
    CT logs; an SCT that is there is always checked. Raises :class:`CertProfileInvalidError`, :class:`CertChainInvalidError` or
    :class:`SCTInvalidError`.
    """
    # 1. SPEC: Fulcio certificate-specification.md: the leaf is a code-signing
    #    certificate that names its subject in the SAN.
    check_leaf_profile(leaf)
    # 2. SPEC: sigstore client spec "Certificate": the leaf chains to a CA of the trusted
    #    root, with every certificate on the path valid at the verified signing time.
    path = verify_chain(leaf, authorities, at)
    if len(path) < 2:  # a leaf that is its own trust anchor has no issuer to bind the SCT
        raise CertChainInvalidError("verified path has no issuer", actual=len(path),
                                    expected=">= 2 certificates")
    # 3. SPEC: sigstore client spec "Certificate Transparency": the SCT embedded in the leaf
    #    verifies with a trusted CT log key, over a TBS bound to the leaf's issuer.
    #    SPEC: gh attestation verify (sigstore-go config of GitHub's instance) asks for no
    #    SCT; a trusted root without CT logs cannot vouch for one anyway.
    if require_sct is None:
        require_sct = bool(ctlogs) or _embeds_sct(leaf)
    if require_sct:
        verify_embedded_sct(leaf, path[1], ctlogs)
    return path
