"""RFC 3161 timestamp tokens, parsed strictly with asn1crypto.

A Sigstore bundle carries each timestamp in
``verificationMaterial.timestampVerificationData.rfc3161Timestamps[i].signedTimestamp``.
The specs call it a TimeStampToken, but real clients (sigstore-python, cosign) store the
whole TSA reply, a ``TimeStampResp`` whose ``timeStampToken`` is the token. So
:meth:`TimestampToken.from_der` accepts both: a bare token (a CMS ``ContentInfo``) and a
``TimeStampResp`` with status ``granted``.

This module only parses. :mod:`sealtrail.verify._timestamp` decides whether a token is
trustworthy.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from datetime import datetime, timezone

from asn1crypto import cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509

from sealtrail.errors import TimestampInvalidError

__all__ = [
    "MAX_TOKEN_BYTES",
    "SignerIdentifier",
    "TST_INFO_OID",
    "TimestampToken",
]

# A sigstore token is ~1.3 KiB, one with a full embedded RSA chain ~6 KiB.
MAX_TOKEN_BYTES = 64 * 1024
MAX_EMBEDDED_CERTS = 16

# SPEC: RFC 3161 §2.4.2: id-ct-TSTInfo.
TST_INFO_OID = "1.2.840.113549.1.9.16.1.4"

# SPEC: RFC 3161 message imprints and RFC 5652 digest algorithms; Sigstore accepts only the
# SHA-2 family (SHA-1 is rejected by the TSA and the clients). asn1crypto names == hashlib.
_DIGESTS = frozenset({"sha256", "sha384", "sha512"})

# SignerInfo.signatureAlgorithm -> (family, hash named by the algorithm or None).
# SPEC: RFC 5754 §3 (ecdsa-with-SHA*), RFC 4055 / RFC 3370 (rsaEncryption with the
# digest algorithm, sha*WithRSAEncryption); RSASSA-PSS is handled from its parameters.
_SIGNATURE_ALGORITHMS: dict[str, tuple[str, str | None]] = {
    "sha256_ecdsa": ("ecdsa", "sha256"),
    "sha384_ecdsa": ("ecdsa", "sha384"),
    "sha512_ecdsa": ("ecdsa", "sha512"),
    "rsassa_pkcs1v15": ("rsa-pkcs1", None),
    "sha256_rsa": ("rsa-pkcs1", "sha256"),
    "sha384_rsa": ("rsa-pkcs1", "sha384"),
    "sha512_rsa": ("rsa-pkcs1", "sha512"),
}

E = TimestampInvalidError


class SignerIdentifier(NamedTuple):
    """The SignerInfo ``sid``: issuer and serial number, or a subject key identifier."""

    issuer_der: bytes | None = None
    serial_number: int | None = None
    subject_key_identifier: bytes | None = None

    def matches(self, cert: x509.Certificate) -> bool:
        """Whether ``cert`` is the certificate this identifier names."""
        if self.subject_key_identifier is not None:
            try:
                ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            except (x509.ExtensionNotFound, ValueError):
                return False
            return ski.value.digest == self.subject_key_identifier
        if self.issuer_der is None or self.serial_number != cert.serial_number:
            return False
        try:
            cert_issuer = cert.issuer.public_bytes()
        except ValueError:
            return False
        if cert_issuer == self.issuer_der:
            return True
        # SPEC: RFC 5280 §7.1: names compare after normalisation, not byte for byte.
        try:
            return bool(asn1_x509.Name.load(cert_issuer) == asn1_x509.Name.load(self.issuer_der))
        except Exception:  # noqa: BLE001 - asn1crypto raises many types on odd names
            return False

    def describe(self) -> str:
        """A short human description, for error messages."""
        if self.subject_key_identifier is not None:
            return f"subjectKeyIdentifier {self.subject_key_identifier.hex()}"
        try:
            issuer = asn1_x509.Name.load(self.issuer_der or b"").human_friendly
        except Exception:  # noqa: BLE001
            issuer = "?"
        return f"issuer {issuer!r} serial {self.serial_number}"


class TimestampToken(NamedTuple):
    """A parsed TimeStampToken (CMS SignedData over a TSTInfo).

    ``signed_attrs_der`` is the DER of the signed attributes re-tagged as a SET OF, the
    exact bytes the TSA signed (RFC 5652 §5.4). It, ``message_digest`` and
    ``content_type`` are ``None`` when the SignerInfo has no signed attributes; the
    verifier rejects such tokens.
    """

    # TSTInfo
    gen_time: datetime
    hash_algorithm: str
    hashed_message: bytes
    serial_number: int
    nonce: int | None
    policy: str
    # SignedData
    certificates: tuple[x509.Certificate, ...]
    signer: SignerIdentifier
    digest_algorithm: str
    signature_algorithm: str
    signature_family: str  # "ecdsa" | "rsa-pkcs1" | "rsa-pss"
    signature_hash: str | None  # the hash the signature algorithm itself names, if any
    pss_salt_length: int | None
    signature: bytes
    signed_attrs_der: bytes | None
    message_digest: bytes | None
    content_type: str | None  # dotted OID of the contentType signed attribute
    tst_info_der: bytes
    token_der: bytes

    @classmethod
    def from_der(cls, der: bytes) -> "TimestampToken":
        """Parse a DER TimeStampToken or TimeStampResp, strictly.

        Raises :class:`~sealtrail.errors.TimestampInvalidError` on any problem.
        """
        if not isinstance(der, (bytes, bytearray)):
            raise E("timestamp token must be bytes", actual=type(der).__name__)
        der = bytes(der)
        if len(der) > MAX_TOKEN_BYTES:
            raise E("timestamp token is too large", actual=len(der),
                    expected=f"<= {MAX_TOKEN_BYTES} bytes")
        if not der:
            raise E("timestamp token is empty")
        try:
            return _parse(der)
        except TimestampInvalidError:
            raise
        # asn1crypto parses lazily and raises ValueError, TypeError, KeyError, IndexError,
        # OverflowError, RecursionError... from deep inside; each means "malformed token".
        except Exception as exc:  # noqa: BLE001
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise E(f"timestamp token does not parse: {detail}") from exc


def _unwrap_response(der: bytes) -> bytes:
    """Return the token DER, unwrapping a TimeStampResp if that is what ``der`` holds."""
    outer = core.Sequence.load(der, strict=True)
    if len(outer) < 1:
        raise E("timestamp token is an empty SEQUENCE")
    if isinstance(outer[0], core.ObjectIdentifier):
        return der  # a ContentInfo: contentType OID first
    # SPEC: RFC 3161 §2.4.2: TimeStampResp ::= SEQUENCE { status PKIStatusInfo,
    # timeStampToken TimeStampToken OPTIONAL }.
    resp = tsp.TimeStampResp.load(der, strict=True)
    status = resp["status"]["status"].native
    # rfc3161-client (sigstore-python) accepts only "granted", not "granted_with_mods".
    if status != "granted":
        raise E("timestamp response status is not granted", actual=status, expected="granted")
    token = resp["time_stamp_token"]
    if isinstance(token, core.Void) or token.contents is None:
        raise E("timestamp response carries no token")
    return token.dump()


def _parse(der: bytes) -> TimestampToken:
    token_der = _unwrap_response(der)
    content_info = cms.ContentInfo.load(token_der, strict=True)
    # SPEC: RFC 3161 §2.4.2: the token is a ContentInfo of type id-signedData.
    if content_info["content_type"].native != "signed_data":
        raise E("timestamp token is not CMS SignedData",
                actual=content_info["content_type"].dotted, expected="signed_data")
    signed_data = content_info["content"]
    # SPEC: RFC 5652 §5.1: version is 3 when eContentType is not id-data and only X.509
    # certificates are present (the only kind accepted below).
    if signed_data["version"].native != "v3":
        raise E("SignedData version is not 3", actual=signed_data["version"].native,
                expected="v3")

    # SPEC: RFC 3161 §2.4.2: eContentType is id-ct-TSTInfo and eContent holds the DER TSTInfo.
    encap = signed_data["encap_content_info"]
    if encap["content_type"].dotted != TST_INFO_OID:
        raise E("timestamp token does not encapsulate a TSTInfo",
                actual=encap["content_type"].dotted, expected=TST_INFO_OID)
    econtent = encap["content"]
    if isinstance(econtent, core.Void) or econtent.contents is None:
        raise E("timestamp token has no encapsulated TSTInfo")
    if econtent.method != 0:
        raise E("timestamp token TSTInfo is not a primitive OCTET STRING")
    tst_info_der = bytes(econtent.contents)
    tst_info = tsp.TSTInfo.load(tst_info_der, strict=True)
    tst = tst_info.native  # forces a full parse of the TSTInfo

    # SPEC: RFC 3161 §2.4.2: version INTEGER { v1(1) }.
    if tst["version"] != "v1":
        raise E("TSTInfo version is not 1", actual=tst["version"], expected="v1")
    imprint_hash = tst["message_imprint"]["hash_algorithm"]["algorithm"]
    if imprint_hash not in _DIGESTS:
        raise E("unsupported message imprint hash algorithm", actual=imprint_hash,
                expected="sha256, sha384 or sha512")
    _check_digest_params(tst_info["message_imprint"]["hash_algorithm"], "message imprint")
    hashed_message = tst["message_imprint"]["hashed_message"]
    if len(hashed_message) != _digest_size(imprint_hash):
        raise E("message imprint has the wrong length for its hash algorithm",
                actual=len(hashed_message), expected=_digest_size(imprint_hash))
    gen_time = tst["gen_time"]
    # SPEC: RFC 3161 §2.4.2: genTime is expressed in UTC ("Z"); reject local times.
    if not isinstance(gen_time, datetime) or gen_time.tzinfo is None:
        raise E("TSTInfo genTime is not a UTC time", actual=str(gen_time))
    gen_time = gen_time.astimezone(timezone.utc)

    certificates = _parse_certificates(signed_data)

    signer_infos = signed_data["signer_infos"]
    # SPEC: RFC 3161 §2.4.1: the token "MUST NOT include any signatures other than the
    # signature of the TSA".
    if len(signer_infos) != 1:
        raise E("timestamp token must have exactly one SignerInfo", actual=len(signer_infos),
                expected=1)
    signer_info = signer_infos[0]
    signer = _parse_sid(signer_info)

    digest_algorithm = signer_info["digest_algorithm"]["algorithm"].native
    if digest_algorithm not in _DIGESTS:
        raise E("unsupported SignerInfo digest algorithm", actual=digest_algorithm,
                expected="sha256, sha384 or sha512")
    _check_digest_params(signer_info["digest_algorithm"], "SignerInfo digest algorithm")
    # SPEC: RFC 5652 §5.1: digestAlgorithms lists the digest algorithms of the signers.
    listed = {alg["algorithm"].native for alg in signed_data["digest_algorithms"]}
    if digest_algorithm not in listed:
        raise E("SignerInfo digest algorithm is not listed in SignedData digestAlgorithms",
                actual=sorted(listed), expected=digest_algorithm)
    family, signature_hash, salt = _parse_signature_algorithm(signer_info["signature_algorithm"])
    signature = signer_info["signature"].native
    if not signature:
        raise E("SignerInfo signature is empty")

    signed_attrs_der, message_digest, content_type = _parse_signed_attrs(signer_info)

    return TimestampToken(
        gen_time=gen_time,
        hash_algorithm=imprint_hash,
        hashed_message=hashed_message,
        serial_number=tst["serial_number"],
        nonce=tst["nonce"],
        policy=tst_info["policy"].dotted,
        certificates=certificates,
        signer=signer,
        digest_algorithm=digest_algorithm,
        signature_algorithm=signer_info["signature_algorithm"]["algorithm"].native,
        signature_family=family,
        signature_hash=signature_hash,
        pss_salt_length=salt,
        signature=signature,
        signed_attrs_der=signed_attrs_der,
        message_digest=message_digest,
        content_type=content_type,
        tst_info_der=tst_info_der,
        token_der=token_der,
    )


def _digest_size(name: str) -> int:
    return {"sha256": 32, "sha384": 48, "sha512": 64}[name]


def _check_digest_params(alg: cms.DigestAlgorithm, what: str) -> None:
    # SPEC: RFC 5754 §2: SHA-2 AlgorithmIdentifiers have absent (or, tolerated, NULL) params.
    params = alg["parameters"]
    if not isinstance(params, (core.Void, core.Null)):
        raise E(f"{what} has unexpected parameters")


def _parse_certificates(signed_data: cms.SignedData) -> tuple[x509.Certificate, ...]:
    choices = signed_data["certificates"]
    if isinstance(choices, core.Void) or choices.contents is None:
        return ()
    if len(choices) > MAX_EMBEDDED_CERTS:
        raise E("timestamp token embeds too many certificates", actual=len(choices),
                expected=f"<= {MAX_EMBEDDED_CERTS}")
    certs = []
    for choice in choices:
        if choice.name != "certificate":
            raise E("timestamp token embeds a non-X.509 certificate", actual=choice.name)
        der = choice.chosen.dump()
        cert = _PARSED_CERTIFICATES.get(der)
        if cert is None:
            cert = _parse_certificate(choice.chosen, der)
            _remember(_PARSED_CERTIFICATES, der, cert)
        certs.append(cert)
    return tuple(certs)


def _parse_certificate(chosen: asn1_x509.Certificate, der: bytes) -> x509.Certificate:
    # SPEC: RFC 5280 §4.1.2.2: serial numbers are positive (cryptography deprecates others).
    if chosen["tbs_certificate"]["serial_number"].native <= 0:
        raise E("timestamp token embeds a certificate with a non-positive serial number")
    try:
        cert = x509.load_der_x509_certificate(der)
        # cryptography decodes names and extensions lazily: force them now so that a
        # malformed embedded certificate fails here, not in the verifier.
        cert.issuer.public_bytes()
        cert.subject.rfc4514_string()
        len(cert.extensions)
    except ValueError as exc:
        raise E("timestamp token embeds a certificate that does not parse") from exc
    return cert


# A TSA puts the same certificate and names in every token: what parsed and passed the
# checks above is kept by its exact DER (a pure function of those bytes), so verifying many
# bundles from one TSA parses them once. Bounded, so hostile input cannot grow it.
_MEMO_LIMIT = 64
_PARSED_CERTIFICATES: dict[bytes, x509.Certificate] = {}
_CHECKED_NAMES: dict[bytes, bool] = {}


def _remember(memo: dict[bytes, Any], key: bytes, value: Any) -> None:
    if len(memo) >= _MEMO_LIMIT:
        memo.clear()
    memo[key] = value


def _parse_sid(signer_info: cms.SignerInfo) -> SignerIdentifier:
    sid = signer_info["sid"]
    version = signer_info["version"].native
    if sid.name == "issuer_and_serial_number":
        # SPEC: RFC 5652 §5.3: version is 1 with issuerAndSerialNumber, 3 with an SKI.
        if version != "v1":
            raise E("SignerInfo version must be 1 with issuerAndSerialNumber", actual=version)
        ias = sid.chosen
        issuer_der = ias["issuer"].dump()
        if issuer_der not in _CHECKED_NAMES:
            ias["issuer"].native  # force parsing of the name: a malformed one fails here
            _remember(_CHECKED_NAMES, issuer_der, True)
        return SignerIdentifier(issuer_der=issuer_der,
                                serial_number=ias["serial_number"].native)
    if version != "v3":
        raise E("SignerInfo version must be 3 with subjectKeyIdentifier", actual=version)
    ski = sid.chosen.native
    if not ski:
        raise E("SignerInfo subjectKeyIdentifier is empty")
    return SignerIdentifier(subject_key_identifier=ski)


def _parse_signature_algorithm(
        alg: cms.SignedDigestAlgorithm) -> tuple[str, str | None, int | None]:
    name = alg["algorithm"].native
    if name in _SIGNATURE_ALGORITHMS:
        family, digest = _SIGNATURE_ALGORITHMS[name]
        return family, digest, None
    if name == "rsassa_pss":
        # SPEC: RFC 4055 §3.1: RSASSA-PSS-params; the defaults (SHA-1) are not acceptable.
        params = alg["parameters"]
        if isinstance(params, core.Void):
            raise E("RSASSA-PSS signature algorithm has no parameters")
        native = params.native
        digest = native["hash_algorithm"]["algorithm"]
        mgf = native["mask_gen_algorithm"]
        if mgf["algorithm"] != "mgf1" or mgf["parameters"]["algorithm"] != digest:
            raise E("RSASSA-PSS mask generation must be MGF1 with the signature hash",
                    actual=f"{mgf['algorithm']}/{mgf['parameters']['algorithm']}")
        if digest not in _DIGESTS:
            raise E("unsupported RSASSA-PSS hash algorithm", actual=digest)
        if native["trailer_field"] != "trailer_field_bc":
            raise E("unsupported RSASSA-PSS trailer field", actual=native["trailer_field"])
        return "rsa-pss", digest, int(native["salt_length"])
    raise E("unsupported SignerInfo signature algorithm", actual=alg["algorithm"].dotted,
            expected="ECDSA with SHA-2, RSA PKCS#1 v1.5 or RSASSA-PSS")


def _parse_signed_attrs(
        signer_info: cms.SignerInfo) -> tuple[bytes | None, bytes | None, str | None]:
    attrs = signer_info["signed_attrs"]
    if isinstance(attrs, core.Void) or attrs.contents is None:
        return None, None, None
    message_digest: bytes | None = None
    content_type: str | None = None
    seen: set[str] = set()
    for attr in attrs:
        oid = attr["type"].dotted
        # SPEC: RFC 5652 §5.3: signedAttrs MUST NOT hold two attributes of the same type.
        if oid in seen:
            raise E("duplicate signed attribute", actual=attr["type"].native)
        seen.add(oid)
        name = attr["type"].native
        if name not in ("content_type", "message_digest"):
            continue
        values = attr["values"]
        # SPEC: RFC 5652 §11.1/§11.2: contentType and messageDigest are single-valued.
        if len(values) != 1:
            raise E(f"signed attribute {name} must have exactly one value", actual=len(values))
        if name == "content_type":
            content_type = values[0].dotted
        else:
            message_digest = values[0].native
    # SPEC: RFC 5652 §5.4: the signature covers the DER of the attributes with the SET OF tag,
    # not the [0] IMPLICIT tag they carry inside SignerInfo. untag() keeps the content octets.
    signed_attrs_der = attrs.untag().dump()
    return signed_attrs_der, message_digest, content_type
