"""An RFC 3161 timestamp authority shaped like sigstore's timestamp-authority.

SPEC: RFC 3161 (TimeStampReq/TimeStampResp/TSTInfo), RFC 5652 (CMS SignedData), RFC 5816
(ESS signingCertificateV2 in timestamps) and sigstore-wire.md §5 (what Sigstore clients send
and accept). Two request forms are accepted: the DER ``TimeStampReq``
(``application/timestamp-query``: sigstore-python, sigstore-go, cosign) and sigstore-js's JSON
form ``{"artifactHash", "hashAlgorithm", "certificates"?, "nonce"?, "tsaPolicyOID"?}``.

Nothing here encodes DER by hand: tokens are built with cryptography's declarative ASN.1
(``cryptography.hazmat.asn1``, Rust DER encoding and strict DER decoding; the grammar,
shared with the parser that verifies tokens, is in :mod:`sealtrail.models._cms_asn1`). A token takes about 70 µs to build, against 430 µs with asn1crypto.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from cryptography import x509
from cryptography.hazmat import asn1
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from sealtrail._internal.encoding import b64decode
from sealtrail.errors import ConfigInvalidError, KeyMalformedError, TimestampRequestInvalidError
from sealtrail.models import _cms_asn1 as G

__all__ = [
    "MAX_NONCE_BITS",
    "MAX_REQUEST_BYTES",
    "SIGSTORE_TSA_POLICY",
    "TimestampAuthority",
    "TimestampRequest",
]

E = TimestampRequestInvalidError

# SPEC: sigstore-wire.md §5: the sigstore default TSA policy OID.
SIGSTORE_TSA_POLICY = "1.3.6.1.4.1.57264.2"
# A TimeStampReq is ~60-100 bytes and the JSON form ~150; 16 KiB is generous.
MAX_REQUEST_BYTES = 16 * 1024
# Clients send 64-bit nonces; echoing arbitrarily large integers serves nobody.
MAX_NONCE_BITS = 256

# SPEC: sigstore-wire.md §5: SHA-256/384/512 are accepted, SHA-1 is refused.
_DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}
# The hash the TSA signs with follows its key size (RFC 5480 §4 / RFC 5758 §3.2 pairings).
_CURVE_DIGESTS = {"secp256r1": "sha256", "secp384r1": "sha384", "secp521r1": "sha512"}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
_JSON_FIELDS = frozenset({"artifactHash", "hashAlgorithm", "certificates", "nonce",
                          "tsaPolicyOID"})
_OID_RE = re.compile(r"\A[0-2](\.(0|[1-9][0-9]{0,18})){1,63}\Z")

# RFC 3161 §2.4.2: serialNumber is a positive integer of at most 160 bits; 128 random bits
# make collisions negligible without tracking issued serials.
_SERIAL_BITS = 128


@dataclass(frozen=True)
class TimestampRequest:
    """What a client asks to have timestamped (either request form, parsed and checked).

    ``hash_algorithm`` is "sha256", "sha384" or "sha512" and ``hashed_message`` the digest
    the token will carry as its messageImprint. ``policy`` is the requested policy OID, if
    any. Constructing one checks all of this and raises
    :class:`~sealtrail.errors.TimestampRequestInvalidError`.
    """

    hash_algorithm: str
    hashed_message: bytes
    nonce: int | None = None
    cert_req: bool = False
    policy: str | None = None

    def __post_init__(self) -> None:
        _check_hash_algorithm(self.hash_algorithm)
        if not isinstance(self.hashed_message, bytes):
            raise E("message imprint must be bytes", actual=type(self.hashed_message).__name__)
        # SPEC: RFC 3161 §2.4.1: the imprint's length must match its hash algorithm.
        size = _DIGEST_SIZES[self.hash_algorithm]
        if len(self.hashed_message) != size:
            raise E(f"message imprint has the wrong length for {self.hash_algorithm}",
                    actual=len(self.hashed_message), expected=size)
        if self.nonce is not None:
            if isinstance(self.nonce, bool) or not isinstance(self.nonce, int):
                raise E("nonce must be an integer", actual=type(self.nonce).__name__)
            if self.nonce < 0:
                raise E("nonce must not be negative", actual=self.nonce)
            if self.nonce.bit_length() > MAX_NONCE_BITS:
                raise E("nonce is too large", actual=f"{self.nonce.bit_length()} bits",
                        expected=f"<= {MAX_NONCE_BITS} bits")
        if not isinstance(self.cert_req, bool):
            raise E("certReq must be a boolean", actual=type(self.cert_req).__name__)
        if self.policy is not None and (not isinstance(self.policy, str)
                                        or not _OID_RE.match(self.policy)):
            raise E("requested policy is not an OID", actual=self.policy)


class TimestampAuthority:
    """Issues RFC 3161 timestamps with one signing key and its certificate chain.

    ``signing_key`` is an ECDSA private key (P-256, P-384 or P-521) whose certificate is
    ``chain[0]``; ``chain`` runs leaf -> root (at least two certificates, as sigstore-python
    requires of trusted roots). The leaf must carry exactly the timeStamping EKU, critical.
    ``clock`` returns seconds since the epoch (tests pass a fixed one). Misconfiguration
    raises :class:`~sealtrail.errors.ConfigInvalidError` or
    :class:`~sealtrail.errors.KeyMalformedError`.

    Thread-safe: :meth:`issue` shares no mutable state between calls.
    """

    def __init__(self, signing_key: ec.EllipticCurvePrivateKey,
                 chain: Sequence[x509.Certificate], clock: Callable[[], float] = time.time,
                 policy: str = SIGSTORE_TSA_POLICY) -> None:
        if not isinstance(signing_key, ec.EllipticCurvePrivateKey) \
                or signing_key.curve.name not in _CURVE_DIGESTS:
            raise KeyMalformedError("TSA signing key must be an ECDSA P-256, P-384 or P-521 key",
                                    actual=type(signing_key).__name__)
        chain = tuple(chain)
        if len(chain) < 2 or not all(isinstance(c, x509.Certificate) for c in chain):
            raise ConfigInvalidError("TSA chain must hold the leaf and its root (leaf first)",
                                     actual=len(chain), expected=">= 2 certificates")
        if not isinstance(policy, str) or not _OID_RE.match(policy):
            raise ConfigInvalidError("TSA policy is not an OID", actual=policy)
        leaf = chain[0]
        if leaf.public_key() != signing_key.public_key():
            raise ConfigInvalidError("TSA signing key does not match the leaf certificate")
        _check_leaf_profile(leaf)

        self._key = signing_key
        self._chain = chain
        self._clock = clock
        self._policy = policy
        self._digest = _CURVE_DIGESTS[signing_key.curve.name]
        self._hash = _HASHES[self._digest]
        self._chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)

        # Everything that is the same in every token, built once. The declarative ASN.1
        # values and elements are immutable, so concurrent issue() calls can share them.
        leaf_der = leaf.public_bytes(serialization.Encoding.DER)
        issuer = G.element(leaf.issuer.public_bytes())
        self._policy_oid = G.OID(policy)
        self._certificates = [G.element(leaf_der)]
        self._sid = G.IssuerAndSerialNumber(issuer=issuer, serial_number=leaf.serial_number)
        self._signer_digest = G.SHA2_ALGORITHMS[self._digest]
        self._signature_algorithm = G.ECDSA_ALGORITHMS[self._digest]
        self._accuracy = G.Accuracy(seconds=1, millis=None, micros=None)
        # SPEC: RFC 3161 §2.4.2: PKIStatus granted (0).
        self._granted = G.PKIStatusInfo(status=0, status_string=None, fail_info=None)
        self._content_type_attr = G.attribute(G.ID_CONTENT_TYPE, G.ID_CT_TST_INFO)
        # SPEC: RFC 5816 §2.2.1 / RFC 5035: ESS signingCertificateV2 binds the signer
        # certificate (by its SHA-256, the DEFAULT hash, which DER leaves out).
        self._ess_attr = G.attribute(G.ID_SIGNING_CERTIFICATE_V2, G.SigningCertificateV2(
            certs=[G.ESSCertIDv2(cert_hash=hashlib.sha256(leaf_der).digest(),
                                 issuer_serial=G.IssuerSerial(
                                     issuer=[issuer], serial_number=leaf.serial_number))]))

    # -- accessors ----------------------------------------------------------------------

    @property
    def policy(self) -> str:
        """The TSA policy OID every token carries."""
        return self._policy

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """The certificate chain, leaf first."""
        return self._chain

    @property
    def digest_algorithm(self) -> str:
        """The hash of the CMS signature ("sha256" for a P-256 key)."""
        return self._digest

    def certchain_pem(self) -> bytes:
        """The certificate chain as concatenated PEM, leaf first (GET .../certchain)."""
        return self._chain_pem

    # -- requests -----------------------------------------------------------------------

    def parse_der_request(self, der: bytes) -> TimestampRequest:
        """Parse and check a DER ``TimeStampReq`` (``application/timestamp-query``).

        SPEC: RFC 3161 §2.4.1. Refuses: anything but version 1; message imprints other than
        SHA-256/384/512 or of the wrong length; a reqPolicy other than ours; any extension
        (we support none, and RFC 3161 asks a TSA to reject what it does not understand).
        """
        if not isinstance(der, (bytes, bytearray)):
            raise E("timestamp request must be bytes", actual=type(der).__name__)
        der = bytes(der)
        if not der:
            raise E("timestamp request is empty")
        if len(der) > MAX_REQUEST_BYTES:
            raise E("timestamp request is too large", actual=len(der),
                    expected=f"<= {MAX_REQUEST_BYTES} bytes")
        try:
            # DER only: the decoder refuses BER forms, trailing bytes and unknown fields.
            req = asn1.decode_der(G.ReceivedTimeStampReq, der)
        # The Rust decoder raises ValueError (or, for absurd sizes, OverflowError) on
        # anything that is not a TimeStampReq; each one means "this is not a TimeStampReq".
        except Exception as exc:  # noqa: BLE001
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise E(f"timestamp request is not a DER TimeStampReq: {detail[:200]}") from exc
        version = req.version
        imprint_algorithm = req.message_imprint.hash_algorithm
        algorithm = imprint_algorithm.algorithm
        hash_name = G.DIGEST_NAMES.get(algorithm, algorithm.dotted_string)
        hashed = req.message_imprint.hashed_message
        policy = None if req.req_policy is None else req.req_policy.dotted_string
        nonce = req.nonce
        cert_req = bool(req.cert_req)
        has_extensions = req.extensions is not None
        # SPEC: RFC 3161 §2.4.1: version INTEGER { v1(1) }.
        if version != 1:
            raise E("timestamp request version is not 1", actual=version, expected=1)
        # SPEC: RFC 5754 §2: SHA-2 AlgorithmIdentifiers have absent (tolerated: NULL)
        # parameters.
        if imprint_algorithm.parameters is not None \
                and not isinstance(imprint_algorithm.parameters, asn1.Null):
            raise E("message imprint hash algorithm has unexpected parameters")
        _check_hash_algorithm(hash_name)
        if has_extensions:
            raise E("timestamp request extensions are not supported")
        request = TimestampRequest(hash_algorithm=hash_name, hashed_message=hashed, nonce=nonce,
                                   cert_req=cert_req, policy=policy)
        self._check_policy(request.policy)
        return request

    def parse_json_request(self, obj: Any) -> TimestampRequest:
        """Parse and check sigstore-js's JSON request (an already-decoded JSON value).

        ``{"artifactHash": base64 digest, "hashAlgorithm": "sha256"|"sha384"|"sha512",
        "certificates"?: bool, "nonce"?: int, "tsaPolicyOID"?: str}``. ``null`` (and an empty
        policy string) count as absent, as Go clients that marshal a zero-valued struct send
        them. Unknown fields are refused: a misspelt "certificates" would otherwise silently
        yield a token without certificates.
        """
        if not isinstance(obj, dict):
            raise E("JSON timestamp request must be an object", actual=type(obj).__name__)
        unknown = sorted(set(obj) - _JSON_FIELDS)
        if unknown:
            raise E("JSON timestamp request has an unknown field", actual=unknown[0],
                    expected=sorted(_JSON_FIELDS))
        hash_name = obj.get("hashAlgorithm")
        if not isinstance(hash_name, str):
            raise E("JSON timestamp request needs hashAlgorithm as a string",
                    actual=type(hash_name).__name__)
        # sigstore's Go TSA lower-cases the name before matching it.
        hash_name = hash_name.lower()
        _check_hash_algorithm(hash_name)
        if "artifactHash" not in obj:
            raise E("JSON timestamp request needs artifactHash")
        hashed = b64decode(obj["artifactHash"], "artifactHash", E)

        certificates = obj.get("certificates")
        if certificates is None:
            certificates = False
        elif not isinstance(certificates, bool):
            raise E("certificates must be a boolean", actual=type(certificates).__name__)
        nonce = obj.get("nonce")
        if nonce is not None and (isinstance(nonce, bool) or not isinstance(nonce, int)):
            # A float (1.5, 1e3) is not an INTEGER; refuse it rather than round it.
            raise E("nonce must be an integer", actual=type(nonce).__name__)
        policy = obj.get("tsaPolicyOID")
        if policy == "":
            policy = None
        if policy is not None and not isinstance(policy, str):
            raise E("tsaPolicyOID must be a string", actual=type(policy).__name__)
        request = TimestampRequest(hash_algorithm=hash_name, hashed_message=hashed, nonce=nonce,
                                   cert_req=certificates, policy=policy)
        self._check_policy(request.policy)
        return request

    # -- responses ----------------------------------------------------------------------

    def issue(self, request: TimestampRequest) -> bytes:
        """Timestamp ``request`` now: return a DER ``TimeStampResp`` with status granted.

        Raises :class:`~sealtrail.errors.TimestampRequestInvalidError` for a request asking
        another policy, and :class:`~sealtrail.errors.ConfigInvalidError` when the TSA's
        certificates are not valid at the current time (a token then would never verify).
        """
        if not isinstance(request, TimestampRequest):
            raise E("issue() takes a TimestampRequest", actual=type(request).__name__)
        self._check_policy(request.policy)
        gen_time = self._now()
        self._check_certificates_valid(gen_time)

        # SPEC: RFC 3161 §2.4.2 / sigstore-wire.md §5: TSTInfo v1, our policy, the imprint
        # echoed, a unique serial, genTime in UTC, accuracy 1 s, the nonce echoed.
        tst_der = asn1.encode_der(G.TSTInfo(
            version=1,
            policy=self._policy_oid,
            message_imprint=G.MessageImprint(
                hash_algorithm=G.SHA2_ALGORITHMS[request.hash_algorithm],
                hashed_message=request.hashed_message),
            serial_number=secrets.randbits(_SERIAL_BITS) or 1,
            gen_time=G.element(asn1.encode_der(asn1.GeneralizedTime(gen_time))),
            accuracy=self._accuracy,
            ordering=False,
            nonce=request.nonce,
            tsa=None,
            extensions=None))

        # SPEC: RFC 5652 §5.3/§11: contentType = id-ct-TSTInfo, messageDigest = digest of the
        # eContent octets; signingTime (RFC 5652 §11.3: UTCTime for years 1950-2049).
        # SPEC: RFC 5652 §5.3: SignedAttributes is a DER SET OF, sorted by the encoder; that
        # matters: OpenSSL re-encodes the set before checking the signature.
        signed_attrs = asn1.SetOf([
            self._content_type_attr,
            G.attribute(G.ID_MESSAGE_DIGEST, hashlib.new(self._digest, tst_der).digest()),
            G.attribute(G.ID_SIGNING_TIME, _signing_time(gen_time)),
            self._ess_attr,
        ])
        # SPEC: RFC 5652 §5.4: the signature covers the DER of the attributes with the
        # universal SET OF tag, not the [0] IMPLICIT tag they carry inside SignerInfo.
        signature = self._key.sign(asn1.encode_der(signed_attrs), ec.ECDSA(self._hash()))

        signer_info = G.SignerInfo(
            version=1,  # SPEC: RFC 5652 §5.3: version 1 goes with issuerAndSerialNumber.
            sid=self._sid,
            digest_algorithm=self._signer_digest,
            signed_attrs=signed_attrs,
            signature_algorithm=self._signature_algorithm,
            signature=signature,
            unsigned_attrs=None)
        signed_data = G.SignedData(
            version=3,  # SPEC: RFC 5652 §5.1: version 3 because eContentType is not id-data.
            digest_algorithms=asn1.SetOf([self._signer_digest]),
            encap_content_info=G.EncapsulatedContentInfo(e_content_type=G.ID_CT_TST_INFO,
                                                         e_content=tst_der),
            # SPEC: RFC 3161 §2.4.1: certReq true -> the TSA's certificate MUST be included.
            # Only the leaf: verifiers take the rest of the chain from their trusted root,
            # and with one certificate the DER SET OF order (sorted by encoding) cannot put
            # another certificate first for verifiers that look at certificates[0].
            certificates=self._certificates if request.cert_req else None,
            crls=None,
            signer_infos=asn1.SetOf([signer_info]))
        token = G.ContentInfo(content_type=G.ID_SIGNED_DATA,
                              content=G.element(asn1.encode_der(signed_data)))
        return asn1.encode_der(G.TimeStampResp(
            status=self._granted, time_stamp_token=G.element(asn1.encode_der(token))))

    # -- internals ----------------------------------------------------------------------

    def _now(self) -> datetime:
        # Whole seconds: every verifier parses them (fractional GeneralizedTime is optional in
        # RFC 3161 and not universally supported), and accuracy is 1 s anyway.
        seconds = self._clock()
        if not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
            raise ConfigInvalidError("TSA clock returned a non-finite time", actual=seconds)
        return datetime.fromtimestamp(math.floor(seconds), tz=timezone.utc)

    def _check_policy(self, policy: str | None) -> None:
        # SPEC: RFC 3161 §2.4.1: reqPolicy names the policy the client wants; we have one.
        if policy is not None and policy != self._policy:
            raise E("requested TSA policy is not supported", actual=policy,
                    expected=self._policy)

    def _check_certificates_valid(self, when: datetime) -> None:
        for index, cert in enumerate(self._chain):
            if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
                raise ConfigInvalidError(
                    f"TSA certificate [{index}] is not valid now; the TSA needs a new "
                    "certificate", actual=when.isoformat(),
                    expected=f"{cert.not_valid_before_utc.isoformat()} .. "
                             f"{cert.not_valid_after_utc.isoformat()}")


def _check_hash_algorithm(name: object) -> None:
    if name == "sha1":
        # SPEC: sigstore-wire.md §5: SHA-1 is rejected (collisions are practical).
        raise E("SHA-1 message imprints are not accepted", actual="sha1",
                expected="sha256, sha384 or sha512")
    if name not in _DIGEST_SIZES:
        raise E("unsupported message imprint hash algorithm", actual=name,
                expected="sha256, sha384 or sha512")


def _check_leaf_profile(leaf: x509.Certificate) -> None:
    # SPEC: RFC 3161 §2.3 / sigstore-wire.md §5: exactly id-kp-timeStamping, critical.
    # Tokens from any other leaf would fail every verifier, so refuse to start with one.
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound as exc:
        raise ConfigInvalidError("TSA leaf certificate has no extended key usage") from exc
    except ValueError as exc:
        raise ConfigInvalidError("TSA leaf certificate has a malformed extension") from exc
    if list(eku.value) != [ExtendedKeyUsageOID.TIME_STAMPING] or not eku.critical:
        raise ConfigInvalidError("TSA leaf certificate extended key usage must be exactly "
                                 "timeStamping and critical",
                                 actual=[o.dotted_string for o in eku.value])


def _signing_time(when: datetime) -> asn1.UTCTime | asn1.GeneralizedTime:
    # SPEC: RFC 5652 §11.3: UTCTime for 1950-2049, GeneralizedTime otherwise.
    if 1950 <= when.year < 2050:
        return asn1.UTCTime(when)
    return asn1.GeneralizedTime(when)
