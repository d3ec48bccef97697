"""Verify RFC 3161 timestamps against the timestamp authorities of a trusted root.

A verified timestamp proves that the bundle's signature existed at ``genTime``. Sigstore
timestamps cover the *signature bytes* (the ``messageSignature.signature`` field, or the
DSSE envelope's ``signatures[0].sig``).

Only the certificates of the trusted root are trusted. Certificates embedded in a token
help nobody: the signer must be the leaf (``chain[0]``) of a trusted TSA chain, and an
embedded copy of the signer certificate must be byte-identical to it (as sigstore-python's
rfc3161-client and sigstore-go's timestamp-authority verifier require).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from sealtrail.errors import TimestampInvalidError
from sealtrail.models.rfc3161 import TST_INFO_OID, TimestampToken
from sealtrail.models.trusted_root import CertificateAuthority

__all__ = ["MAX_TIMESTAMPS", "check_timestamp_count", "verify_timestamp", "verify_timestamp_der",
           "verify_timestamps"]

# SPEC: sigstore-python verify/verifier.py MAX_ALLOWED_TIMESTAMP = 32 (a DoS bound).
MAX_TIMESTAMPS = 32

E = TimestampInvalidError

_ExtensionType = TypeVar("_ExtensionType", bound=x509.ExtensionType)

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}

# Ranks of the checks, so that when every authority fails we report the failure that got
# furthest (the most specific one) rather than "not trusted" from an unrelated TSA.
_RANK_UNTRUSTED = 2
_RANK_EMBEDDED = 3
_RANK_CHAIN = 4
_RANK_PROFILE = 5
_RANK_VALIDITY = 6
_RANK_CMS = 7


class _Failed(Exception):
    """One authority rejected the token at a given check."""

    def __init__(self, rank: int, error: TimestampInvalidError) -> None:
        super().__init__(error.message)
        self.rank = rank
        self.error = error


def verify_timestamp(token: TimestampToken, signature: bytes,
                     authorities: Sequence[CertificateAuthority]) -> datetime:
    """Verify ``token`` over ``signature`` against trusted TSAs; return its genTime.

    Tries every authority whose leaf certificate is the token's signer and returns on the
    first that passes every check. Raises :class:`~sealtrail.errors.TimestampInvalidError`
    naming the check that failed (the most specific failure over all authorities).
    """
    # SPEC: step 1 - RFC 3161 §2.4.2 / sigstore: messageImprint = hash(signature bytes), with
    # the hash algorithm the token declares.
    expected = hashlib.new(token.hash_algorithm, signature).digest()
    if expected != token.hashed_message:
        raise E("timestamp message imprint does not match the signature",
                expected=expected.hex(), actual=token.hashed_message.hex())

    if not authorities:
        raise E("timestamp was not issued by a trusted TSA: the trusted root has no "
                "timestamp authorities")

    best: _Failed | None = None
    for authority in authorities:
        try:
            _verify_with(token, authority)
        except _Failed as failed:
            if best is None or failed.rank > best.rank:
                best = failed
            continue
        return token.gen_time
    assert best is not None
    raise best.error


def check_timestamp_count(tokens_der: Sequence[bytes]) -> None:
    """Refuse too many tokens, or the same token twice, before verifying any.

    SPEC: sigstore-python MAX_ALLOWED_TIMESTAMP = 32; sigstore-go refuses duplicate
    timestamps (a duplicate would count twice towards the threshold of verified times).
    """
    if len(tokens_der) > MAX_TIMESTAMPS:
        raise E("too many RFC 3161 timestamps", actual=len(tokens_der),
                expected=f"<= {MAX_TIMESTAMPS}")
    if not all(isinstance(t, (bytes, bytearray)) for t in tokens_der):
        raise E("RFC 3161 timestamps must be bytes")
    if len(set(bytes(t) for t in tokens_der)) != len(tokens_der):
        raise E("duplicate RFC 3161 timestamp")


def verify_timestamp_der(der: bytes, signature: bytes,
                         authorities: Sequence[CertificateAuthority]) -> datetime:
    """Parse one DER token and verify it over ``signature``; return its genTime."""
    return verify_timestamp(TimestampToken.from_der(der), signature, authorities)


def verify_timestamps(tokens_der: Sequence[bytes], signature: bytes,
                      authorities: Sequence[CertificateAuthority]) -> list[datetime]:
    """Parse and verify every token; return their genTimes in order.

    An invalid timestamp is a failure, never silently skipped: the first bad token raises
    :class:`~sealtrail.errors.TimestampInvalidError`. At most :data:`MAX_TIMESTAMPS`
    tokens are accepted and duplicates are rejected (as sigstore-python does).
    """
    check_timestamp_count(tokens_der)
    times = []
    for index, der in enumerate(tokens_der):
        try:
            token = TimestampToken.from_der(der)
            times.append(verify_timestamp(token, signature, authorities))
        except TimestampInvalidError as exc:
            raise E(f"RFC 3161 timestamp [{index}]: {exc.message}", expected=exc.expected,
                    actual=exc.actual) from exc
    return times


# -- one authority ----------------------------------------------------------------------

def _verify_with(token: TimestampToken, authority: CertificateAuthority) -> None:
    chain = authority.chain
    if not chain:
        raise _Failed(_RANK_UNTRUSTED, E("TSA certificate chain in the trusted root is empty"))
    leaf = chain[0]

    # SPEC: step 2 - RFC 5652 §5.3 sid names the signer certificate; it must be the trusted
    # TSA leaf. Embedded certificates are untrusted input.
    if not token.signer.matches(leaf):
        raise _Failed(_RANK_UNTRUSTED, E(
            "timestamp was not issued by a trusted TSA",
            actual=token.signer.describe()))
    for embedded in token.certificates:
        if token.signer.matches(embedded) and embedded != leaf:
            raise _Failed(_RANK_EMBEDDED, E(
                "embedded signer certificate differs from the trusted TSA certificate",
                actual=embedded.subject.rfc4514_string(), expected=leaf.subject.rfc4514_string()))

    _check_chain(token.gen_time, chain)  # step 3
    _check_leaf_profile(leaf)  # step 4

    # SPEC: step 5 - trusted root validFor of the TSA must contain genTime (inclusive end).
    if not authority.validity.contains(token.gen_time):
        raise _Failed(_RANK_VALIDITY, E(
            "timestamp genTime is outside the TSA's validity in the trusted root",
            actual=token.gen_time.isoformat(),
            expected=f"{authority.validity.start.isoformat()} .. "
                     f"{authority.validity.end.isoformat() if authority.validity.end else ''}"))

    _check_cms(token, leaf)  # step 6


def _check_chain(gen_time: datetime, chain: Sequence[x509.Certificate]) -> None:
    # SPEC: step 3 - sigstore-python requires the TSA chain to hold at least leaf and root.
    if len(chain) < 2:
        raise _Failed(_RANK_CHAIN, E("TSA certificate chain in the trusted root is incomplete",
                                     actual=len(chain), expected=">= 2 certificates"))
    for index, cert in enumerate(chain):
        # SPEC: step 3 - RFC 3161 §2.4.2 / RFC 5280 §6.1.3(a)(2): each certificate is valid at
        # genTime (the verification time of a timestamp is its own genTime).
        if not cert.not_valid_before_utc <= gen_time <= cert.not_valid_after_utc:
            raise _Failed(_RANK_CHAIN, E(
                f"TSA certificate [{index}] is not valid at genTime",
                actual=gen_time.isoformat(),
                expected=f"{cert.not_valid_before_utc.isoformat()} .. "
                         f"{cert.not_valid_after_utc.isoformat()}"))
        if index == 0:
            continue
        issuer = cert
        subject = chain[index - 1]
        # SPEC: step 3 - RFC 5280 §6.1.4(k),(n): issuers must be CAs allowed to sign certificates.
        basic = _extension(issuer, x509.BasicConstraints, _RANK_CHAIN)
        if basic is None or not basic.value.ca:
            raise _Failed(_RANK_CHAIN, E(f"TSA certificate [{index}] is not a CA"))
        key_usage = _key_usage(issuer, _RANK_CHAIN)
        if key_usage is not None and not key_usage.key_cert_sign:
            raise _Failed(_RANK_CHAIN, E(
                f"TSA certificate [{index}] key usage does not allow certificate signing"))
        # SPEC: step 3 - Go x509 EKU nesting: a CA with an EKU must allow timeStamping.
        eku = _eku(issuer, _RANK_CHAIN)
        if eku is not None and not ({ExtendedKeyUsageOID.TIME_STAMPING,
                                     ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE} & set(eku.value)):
            raise _Failed(_RANK_CHAIN, E(
                f"TSA certificate [{index}] extended key usage excludes timeStamping"))
        problem = _link_problem(subject, issuer)
        if problem is not None:
            raise _Failed(_RANK_CHAIN, E(
                f"TSA certificate [{index - 1}] is not signed by certificate [{index}]",
                actual=problem))


@lru_cache(maxsize=256)
def _link_problem(subject: x509.Certificate, issuer: x509.Certificate) -> str | None:
    """Why ``issuer`` did not sign ``subject``, or None. The trusted root's TSA chains are few
    and fixed, so the (costly, deterministic) signature check is remembered."""
    try:
        subject.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm) as exc:
        return str(exc) or type(exc).__name__
    return None


def _check_leaf_profile(leaf: x509.Certificate) -> None:
    # SPEC: step 4 - RFC 3161 §2.3: the TSA certificate has exactly one, critical, EKU:
    # id-kp-timeStamping. OpenSSL's TIMESTAMP_SIGN purpose rejects a non-critical EKU.
    eku = _eku(leaf, _RANK_PROFILE)
    if eku is None:
        raise _Failed(_RANK_PROFILE, E("TSA certificate has no extended key usage",
                                       expected="timeStamping"))
    purposes = [oid.dotted_string for oid in eku.value]
    if purposes != [ExtendedKeyUsageOID.TIME_STAMPING.dotted_string]:
        raise _Failed(_RANK_PROFILE, E("TSA certificate extended key usage is not exactly "
                                       "timeStamping", actual=purposes,
                                       expected=[ExtendedKeyUsageOID.TIME_STAMPING.dotted_string]))
    if not eku.critical:
        raise _Failed(_RANK_PROFILE, E("TSA certificate extended key usage is not critical"))
    key_usage = _key_usage(leaf, _RANK_PROFILE)
    if key_usage is not None and not key_usage.digital_signature:
        raise _Failed(_RANK_PROFILE, E("TSA certificate key usage lacks digitalSignature"))


def _check_cms(token: TimestampToken, leaf: x509.Certificate) -> None:
    # SPEC: step 6 - RFC 5652 §5.3: signedAttrs MUST be present when eContentType is not id-data.
    if token.signed_attrs_der is None:
        raise _Failed(_RANK_CMS, E("timestamp SignerInfo has no signed attributes"))
    # SPEC: step 6 - RFC 5652 §11.1: contentType attribute == eContentType (id-ct-TSTInfo).
    if token.content_type != TST_INFO_OID:
        raise _Failed(_RANK_CMS, E("timestamp contentType attribute is not id-ct-TSTInfo",
                                   actual=token.content_type, expected=TST_INFO_OID))
    # SPEC: step 6 - RFC 5652 §5.4/§11.2: messageDigest = digest of the eContent octets.
    if token.message_digest is None:
        raise _Failed(_RANK_CMS, E("timestamp has no messageDigest attribute"))
    digest = hashlib.new(token.digest_algorithm, token.tst_info_der).digest()
    if digest != token.message_digest:
        raise _Failed(_RANK_CMS, E("timestamp messageDigest attribute does not match the TSTInfo",
                                   expected=digest.hex(), actual=token.message_digest.hex()))
    # A signature algorithm that names its own hash must agree with the digest algorithm;
    # OpenSSL fails such tokens, so we do too.
    if token.signature_hash is not None and token.signature_hash != token.digest_algorithm:
        raise _Failed(_RANK_CMS, E("timestamp signature algorithm hash differs from the "
                                   "SignerInfo digest algorithm",
                                   actual=token.signature_hash, expected=token.digest_algorithm))
    key = leaf.public_key()
    algorithm = _HASHES[token.digest_algorithm]()
    # SPEC: step 6 - RFC 5652 §5.4: the signature is over the DER SET OF signed attributes.
    try:
        if token.signature_family == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(token.signature, token.signed_attrs_der, ec.ECDSA(algorithm))
        elif token.signature_family == "rsa-pkcs1" and isinstance(key, rsa.RSAPublicKey):
            key.verify(token.signature, token.signed_attrs_der, padding.PKCS1v15(), algorithm)
        elif token.signature_family == "rsa-pss" and isinstance(key, rsa.RSAPublicKey):
            pss = padding.PSS(mgf=padding.MGF1(_HASHES[token.digest_algorithm]()),
                              salt_length=token.pss_salt_length
                              if token.pss_salt_length is not None else padding.PSS.AUTO)
            key.verify(token.signature, token.signed_attrs_der, pss, algorithm)
        else:
            raise _Failed(_RANK_CMS, E("timestamp signature algorithm does not match the TSA key",
                                       actual=token.signature_algorithm,
                                       expected=type(key).__name__))
    except (InvalidSignature, ValueError, UnsupportedAlgorithm) as exc:
        raise _Failed(_RANK_CMS, E("timestamp signature does not verify with the TSA "
                                   "certificate")) from exc


def _extension(cert: x509.Certificate, kind: type[_ExtensionType],
               rank: int) -> x509.Extension[_ExtensionType] | None:
    # cryptography parses extensions lazily; a malformed one surfaces here as ValueError.
    try:
        return cert.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return None
    except ValueError as exc:
        raise _Failed(rank, E("TSA certificate has a malformed extension",
                              actual=str(exc))) from exc


def _eku(cert: x509.Certificate, rank: int) -> x509.Extension[x509.ExtendedKeyUsage] | None:
    return _extension(cert, x509.ExtendedKeyUsage, rank)


def _key_usage(cert: x509.Certificate, rank: int) -> x509.KeyUsage | None:
    ext = _extension(cert, x509.KeyUsage, rank)
    return None if ext is None else ext.value
