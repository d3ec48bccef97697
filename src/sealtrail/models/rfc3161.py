"""RFC 3161 timestamp tokens, parsed strictly (DER) with cryptography's ASN.1 codec.

A Sigstore bundle carries each timestamp in
``verificationMaterial.timestampVerificationData.rfc3161Timestamps[i].signedTimestamp``.
The specs call it a TimeStampToken, but real clients (sigstore-python, cosign) store the
whole TSA reply, a ``TimeStampResp`` whose ``timeStampToken`` is the token. So
:meth:`TimestampToken.from_der` accepts both: a bare token (a CMS ``ContentInfo``) and a
``TimeStampResp`` with status ``granted``.

The grammar is in :mod:`sealtrail.models._cms_asn1`; decoding is done by
``cryptography.hazmat.asn1`` (Rust), which refuses any non-DER encoding. This module only
parses. :mod:`sealtrail.verify._timestamp` decides whether a token is trustworthy.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, NamedTuple

from cryptography import x509
from cryptography.hazmat import asn1

from sealtrail._internal.memo import BoundedMemo
from sealtrail.errors import TimestampInvalidError
from sealtrail.models import _cms_asn1 as g

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
TST_INFO_OID = g.ID_CT_TST_INFO.dotted_string

# SPEC: RFC 3161 message imprints and RFC 5652 digest algorithms; Sigstore accepts only the
# SHA-2 family (SHA-1 is rejected by the TSA and the clients). Names == hashlib's.
_DIGESTS = frozenset({"sha256", "sha384", "sha512"})
_DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}

# SignerInfo.signatureAlgorithm -> (name, family, hash named by the algorithm or None).
# Names are the ones asn1crypto used, which TimestampToken.signature_algorithm keeps.
# SPEC: RFC 5758 §3.2 (ecdsa-with-SHA*), RFC 4055 / RFC 3370 (rsaEncryption with the
# digest algorithm, sha*WithRSAEncryption); RSASSA-PSS is handled from its parameters.
_SIGNATURE_ALGORITHMS: dict[x509.ObjectIdentifier, tuple[str, str, str | None]] = {
    g.ID_ECDSA_SHA256: ("sha256_ecdsa", "ecdsa", "sha256"),
    g.ID_ECDSA_SHA384: ("sha384_ecdsa", "ecdsa", "sha384"),
    g.ID_ECDSA_SHA512: ("sha512_ecdsa", "ecdsa", "sha512"),
    g.ID_RSA_ENCRYPTION: ("rsassa_pkcs1v15", "rsa-pkcs1", None),
    g.ID_SHA256_RSA: ("sha256_rsa", "rsa-pkcs1", "sha256"),
    g.ID_SHA384_RSA: ("sha384_rsa", "rsa-pkcs1", "sha384"),
    g.ID_SHA512_RSA: ("sha512_rsa", "rsa-pkcs1", "sha512"),
}

# SPEC: RFC 5652 §10.2.2 CertificateChoices: the tagged alternatives to a plain Certificate.
_CERTIFICATE_CHOICES = {b"\xa0": "extended_certificate", b"\xa1": "v1_attr_cert",
                        b"\xa2": "v2_attr_cert", b"\xa3": "other"}

# SPEC: RFC 3161 §2.4.2: "YYYYMMDDhhmmss[.s...]Z": UTC, seconds present, and a fraction, if
# any, without trailing zeros (X.690 §11.7 DER rules for GeneralizedTime).
_GEN_TIME_TEXT = re.compile(rb"([0-9]{14})(?:\.([0-9]*[1-9]))?Z")

# Name attribute values whose string type the codec can check (UTF8String,
# PrintableString, IA5String); other string types are kept as they are.
_NAME_STRING_TYPES: dict[bytes, Any] = {
    b"\x0c": str, b"\x13": asn1.PrintableString, b"\x16": asn1.IA5String}

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
        return _names_equal_normalised(cert_issuer, self.issuer_der)

    def describe(self) -> str:
        """A short human description, for error messages."""
        if self.subject_key_identifier is not None:
            return f"subjectKeyIdentifier {self.subject_key_identifier.hex()}"
        return f"issuer {_name_text(self.issuer_der or b'')!r} serial {self.serial_number}"


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

        Raises :class:`~sealtrail.errors.TimestampInvalidError` on any problem, including
        any encoding that is not DER (BER lengths, unsorted SET OF, trailing bytes).
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
        # The codec raises ValueError on malformed DER; anything else from inside it (or a
        # datetime out of range) equally means "malformed token".
        except Exception as exc:  # noqa: BLE001
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise E(f"timestamp token does not parse: {detail}") from exc


def _unwrap_response(der: bytes) -> tuple[bytes, g.ContentInfo]:
    """Return the token DER and its ContentInfo, unwrapping a TimeStampResp if that is
    what ``der`` holds."""
    outline = asn1.decode_der(g.TokenOrResponse, der)
    if isinstance(outline.first, x509.ObjectIdentifier):
        return der, asn1.decode_der(g.ContentInfo, der)  # a ContentInfo: contentType first
    # SPEC: RFC 3161 §2.4.2: TimeStampResp ::= SEQUENCE { status PKIStatusInfo,
    # timeStampToken TimeStampToken OPTIONAL }.
    status = outline.first.parse(g.PKIStatusInfo).status
    # rfc3161-client (sigstore-python) accepts only "granted", not "granted_with_mods".
    if status != 0:
        raise E("timestamp response status is not granted",
                actual=g.PKI_STATUS_NAMES.get(status, status), expected="granted")
    token = outline.second
    if not isinstance(token, asn1.TLV):
        raise E("timestamp response carries no token")
    # A raw element encodes as its received bytes.
    return asn1.encode_der(token), token.parse(g.ContentInfo)


def _parse(der: bytes) -> TimestampToken:
    token_der, content_info = _unwrap_response(der)
    # SPEC: RFC 3161 §2.4.2: the token is a ContentInfo of type id-signedData.
    if content_info.content_type != g.ID_SIGNED_DATA:
        raise E("timestamp token is not CMS SignedData",
                actual=content_info.content_type.dotted_string, expected="signed_data")
    signed_data = content_info.content.parse(g.SignedData)
    # SPEC: RFC 5652 §5.1: version is 3 when eContentType is not id-data and only X.509
    # certificates are present (the only kind accepted below).
    if signed_data.version != 3:
        raise E("SignedData version is not 3", actual=f"v{signed_data.version}",
                expected="v3")

    # SPEC: RFC 3161 §2.4.2: eContentType is id-ct-TSTInfo and eContent holds the DER TSTInfo.
    encap = signed_data.encap_content_info
    if encap.e_content_type != g.ID_CT_TST_INFO:
        raise E("timestamp token does not encapsulate a TSTInfo",
                actual=encap.e_content_type.dotted_string, expected=TST_INFO_OID)
    econtent = encap.e_content
    if econtent is None:
        raise E("timestamp token has no encapsulated TSTInfo")
    if not isinstance(econtent, bytes):
        raise E("timestamp token TSTInfo is not a primitive OCTET STRING")
    tst_info_der = econtent
    tst = asn1.decode_der(g.TSTInfo, tst_info_der)

    # SPEC: RFC 3161 §2.4.2: version INTEGER { v1(1) }.
    if tst.version != 1:
        raise E("TSTInfo version is not 1", actual=f"v{tst.version}", expected="v1")
    imprint_algorithm = tst.message_imprint.hash_algorithm
    imprint_hash = _digest_name(imprint_algorithm.algorithm)
    if imprint_hash not in _DIGESTS:
        raise E("unsupported message imprint hash algorithm", actual=imprint_hash,
                expected="sha256, sha384 or sha512")
    _check_digest_params(imprint_algorithm.parameters, "message imprint")
    hashed_message = tst.message_imprint.hashed_message
    if len(hashed_message) != _DIGEST_SIZES[imprint_hash]:
        raise E("message imprint has the wrong length for its hash algorithm",
                actual=len(hashed_message), expected=_DIGEST_SIZES[imprint_hash])
    gen_time = _gen_time(tst.gen_time)

    certificates = _parse_certificates(signed_data)

    signer_infos = signed_data.signer_infos.as_list()
    # SPEC: RFC 3161 §2.4.1: the token "MUST NOT include any signatures other than the
    # signature of the TSA".
    if len(signer_infos) != 1:
        raise E("timestamp token must have exactly one SignerInfo", actual=len(signer_infos),
                expected=1)
    signer_info = signer_infos[0]
    signer = _parse_sid(signer_info)

    digest_algorithm = _digest_name(signer_info.digest_algorithm.algorithm)
    if digest_algorithm not in _DIGESTS:
        raise E("unsupported SignerInfo digest algorithm", actual=digest_algorithm,
                expected="sha256, sha384 or sha512")
    _check_digest_params(signer_info.digest_algorithm.parameters, "SignerInfo digest algorithm")
    # SPEC: RFC 5652 §5.1: digestAlgorithms lists the digest algorithms of the signers.
    listed = {_digest_name(alg.algorithm) for alg in signed_data.digest_algorithms.as_list()}
    if digest_algorithm not in listed:
        raise E("SignerInfo digest algorithm is not listed in SignedData digestAlgorithms",
                actual=sorted(listed), expected=digest_algorithm)
    name, family, signature_hash, salt = _parse_signature_algorithm(
        signer_info.signature_algorithm)
    signature = signer_info.signature
    if not signature:
        raise E("SignerInfo signature is empty")

    signed_attrs_der, message_digest, content_type = _parse_signed_attrs(signer_info)

    return TimestampToken(
        gen_time=gen_time,
        hash_algorithm=imprint_hash,
        hashed_message=hashed_message,
        serial_number=tst.serial_number,
        nonce=tst.nonce,
        policy=tst.policy.dotted_string,
        certificates=certificates,
        signer=signer,
        digest_algorithm=digest_algorithm,
        signature_algorithm=name,
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


def _digest_name(oid: x509.ObjectIdentifier) -> str:
    return g.DIGEST_NAMES.get(oid) or oid.dotted_string


def _absent_or_null(parameters: asn1.Null | asn1.TLV | None) -> bool:
    return parameters is None or isinstance(parameters, asn1.Null)


def _check_digest_params(parameters: asn1.Null | asn1.TLV | None, what: str) -> None:
    # SPEC: RFC 5754 §2: SHA-2 AlgorithmIdentifiers have absent (or, tolerated, NULL) params.
    if not _absent_or_null(parameters):
        raise E(f"{what} has unexpected parameters")


def _gen_time(raw: asn1.TLV) -> datetime:
    """genTime as an aware UTC datetime (SPEC: RFC 3161 §2.4.2, X.690 §11.7)."""
    if raw.tag_bytes != b"\x18":
        raise E("TSTInfo genTime is not a GeneralizedTime", actual=raw.tag_bytes.hex())
    try:
        return raw.parse(asn1.GeneralizedTime).as_datetime()
    except ValueError:
        pass  # not DER, not UTC, or finer than the microsecond: tell which below
    text = bytes(raw.data)
    shown = text.decode("ascii", "replace")
    # SPEC: RFC 3161 §2.4.2: genTime is expressed in UTC ("Z"); reject local times.
    if not text.endswith(b"Z"):
        raise E("TSTInfo genTime is not a UTC time", actual=shown)
    match = _GEN_TIME_TEXT.fullmatch(text)
    if match is None or match.group(2) is None or len(match.group(2)) <= 6:
        raise E("TSTInfo genTime is not a valid GeneralizedTime", actual=shown,
                expected="YYYYMMDDhhmmss[.f]Z")
    # RFC 3161 allows any precision (Go TSAs can send nanoseconds) but the codec stops at
    # the microsecond: keep the time truncated to the microsecond, as rfc3161-client does
    # not round either.
    try:
        whole = datetime.strptime(match.group(1).decode(), "%Y%m%d%H%M%S")
    except ValueError as exc:
        raise E("TSTInfo genTime is not a valid GeneralizedTime", actual=shown) from exc
    micros = int(match.group(2)[:6].ljust(6, b"0"))
    return whole.replace(microsecond=micros, tzinfo=timezone.utc)


def _parse_certificates(signed_data: g.SignedData) -> tuple[x509.Certificate, ...]:
    entries = signed_data.certificates
    if entries is None:
        return ()
    if len(entries) > MAX_EMBEDDED_CERTS:
        raise E("timestamp token embeds too many certificates", actual=len(entries),
                expected=f"<= {MAX_EMBEDDED_CERTS}")
    certs = []
    for entry in entries:
        # SPEC: RFC 5652 §10.2.2: a plain Certificate is an untagged SEQUENCE; the other
        # CertificateChoices carry context tags.
        if entry.tag_bytes != b"\x30":
            raise E("timestamp token embeds a non-X.509 certificate",
                    actual=_CERTIFICATE_CHOICES.get(entry.tag_bytes, entry.tag_bytes.hex()))
        der = asn1.encode_der(entry)
        cert = _PARSED_CERTIFICATES.get(der)
        if cert is None:
            cert = _parse_certificate(der)
            _PARSED_CERTIFICATES.put(der, cert)
        certs.append(cert)
    return tuple(certs)


def _parse_certificate(der: bytes) -> x509.Certificate:
    try:
        outline = asn1.decode_der(g.CertificateOutline, der)
    except ValueError as exc:
        raise E("timestamp token embeds a certificate that does not parse") from exc
    # SPEC: RFC 5280 §4.1.2.2: serial numbers are positive (cryptography deprecates others).
    if outline.tbs_certificate.serial_number <= 0:
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
_PARSED_CERTIFICATES: BoundedMemo[bytes, x509.Certificate] = BoundedMemo(_MEMO_LIMIT)
_CHECKED_NAMES: BoundedMemo[bytes, bool] = BoundedMemo(_MEMO_LIMIT)


def _parse_sid(signer_info: g.SignerInfo) -> SignerIdentifier:
    sid = signer_info.sid
    version = signer_info.version
    if isinstance(sid, g.IssuerAndSerialNumber):
        # SPEC: RFC 5652 §5.3: version is 1 with issuerAndSerialNumber, 3 with an SKI.
        if version != 1:
            raise E("SignerInfo version must be 1 with issuerAndSerialNumber",
                    actual=f"v{version}")
        issuer_der = asn1.encode_der(sid.issuer)
        if issuer_der not in _CHECKED_NAMES:
            _name_attributes(sid.issuer)  # decode the name: a malformed one fails here
            _CHECKED_NAMES.put(issuer_der, True)
        return SignerIdentifier(issuer_der=issuer_der, serial_number=sid.serial_number)
    if version != 3:
        raise E("SignerInfo version must be 3 with subjectKeyIdentifier", actual=f"v{version}")
    if not sid:
        raise E("SignerInfo subjectKeyIdentifier is empty")
    return SignerIdentifier(subject_key_identifier=sid)


def _name_attributes(name: asn1.TLV) -> list[list[tuple[x509.ObjectIdentifier, Any]]]:
    """Decode a raw Name (SPEC: RFC 5280 §4.1.2.4) into RDNs of (type, value) pairs.

    Values of the string types in ``_NAME_STRING_TYPES`` are decoded (and so checked) to
    ``str``; others stay raw elements. Raises :class:`TimestampInvalidError`.
    """
    try:
        holder = asn1.encode_der(g.NameHolder(name=name))
        rdns = asn1.decode_der(g.ParsedNameHolder, holder).name
        result = []
        for rdn in rdns:
            pairs: list[tuple[x509.ObjectIdentifier, Any]] = []
            for atv in rdn.as_list():
                kind = _NAME_STRING_TYPES.get(atv.value.tag_bytes)
                if kind is None:
                    pairs.append((atv.type, atv.value))
                    continue
                value = atv.value.parse(kind)
                pairs.append((atv.type, value if isinstance(value, str) else value.as_str()))
            result.append(pairs)
    except ValueError as exc:
        raise E("timestamp token does not parse: SignerInfo issuer is not a valid Name",
                actual=str(exc).splitlines()[0] if str(exc) else None) from exc
    return result


def _name_text(der: bytes) -> str:
    """An RFC 4514 rendering of a DER Name, or "?" if it does not decode."""
    try:
        rdns = _name_attributes(asn1.decode_der(asn1.TLV, der))
    except (ValueError, TimestampInvalidError):
        return "?"
    parts = []
    for rdn in reversed(rdns):  # SPEC: RFC 4514 §2.1: the last RDN comes first
        texts = []
        for oid, value in rdn:
            text = None
            if isinstance(value, str):
                try:
                    text = x509.NameAttribute(oid, value).rfc4514_string()
                except ValueError:
                    text = None
            if text is None:
                # SPEC: RFC 4514 §2.4: a value that is not a known string, in hex.
                raw = value.encode() if isinstance(value, str) else asn1.encode_der(value)
                text = f"{oid.dotted_string}=#{raw.hex()}"
            texts.append(text)
        parts.append("+".join(texts))
    return ",".join(parts)


def _names_equal_normalised(left: bytes, right: bytes) -> bool:
    """Whether two DER Names are equal after RFC 5280 §7.1 normalisation.

    Only reached when serial numbers match but issuer bytes differ, which is rare, so
    asn1crypto (which implements the LDAP StringPrep comparison) is imported only then.
    """
    from asn1crypto import x509 as asn1_x509

    try:
        return bool(asn1_x509.Name.load(left) == asn1_x509.Name.load(right))
    except Exception:  # noqa: BLE001 - asn1crypto raises many types on odd names
        return False


def _parse_signature_algorithm(
        alg: g.AlgorithmIdentifier) -> tuple[str, str, str | None, int | None]:
    known = _SIGNATURE_ALGORITHMS.get(alg.algorithm)
    if known is not None:
        # SPEC: RFC 5758 §3.2 (ECDSA: absent), RFC 4055 §5 (PKCS#1 v1.5: NULL).
        if not _absent_or_null(alg.parameters):
            raise E("SignerInfo signature algorithm has unexpected parameters", actual=known[0])
        return (*known, None)
    if alg.algorithm == g.ID_RSASSA_PSS:
        # SPEC: RFC 4055 §3.1: RSASSA-PSS-params; the defaults (SHA-1) are not acceptable.
        if not isinstance(alg.parameters, asn1.TLV):
            raise E("RSASSA-PSS signature algorithm has no parameters")
        params = alg.parameters.parse(g.RSASSAPSSParams)
        hash_algorithm = params.hash_algorithm
        digest = "sha1" if hash_algorithm is None else _digest_name(hash_algorithm.algorithm)
        mgf = params.mask_gen_algorithm
        mgf_hash: str | None
        if mgf is None:  # the DEFAULT: MGF1 with SHA-1
            mgf_name, mgf_hash = "mgf1", "sha1"
        else:
            mgf_name = "mgf1" if mgf.algorithm == g.ID_MGF1 else mgf.algorithm.dotted_string
            mgf_hash = None if mgf.parameters is None else _digest_name(mgf.parameters.algorithm)
        if mgf_name != "mgf1" or mgf_hash != digest:
            raise E("RSASSA-PSS mask generation must be MGF1 with the signature hash",
                    actual=f"{mgf_name}/{mgf_hash}")
        if digest not in _DIGESTS:
            raise E("unsupported RSASSA-PSS hash algorithm", actual=digest)
        assert hash_algorithm is not None and mgf is not None and mgf.parameters is not None
        _check_digest_params(hash_algorithm.parameters, "RSASSA-PSS hash algorithm")
        _check_digest_params(mgf.parameters.parameters, "RSASSA-PSS MGF1 hash algorithm")
        # SPEC: RFC 4055 §3.1: trailerField 1 (trailerFieldBC) is the only one defined.
        if params.trailer_field != 1:
            raise E("unsupported RSASSA-PSS trailer field", actual=params.trailer_field,
                    expected=1)
        return "rsassa_pss", "rsa-pss", digest, params.salt_length
    raise E("unsupported SignerInfo signature algorithm", actual=alg.algorithm.dotted_string,
            expected="ECDSA with SHA-2, RSA PKCS#1 v1.5 or RSASSA-PSS")


_ATTRIBUTE_NAMES = {g.ID_CONTENT_TYPE: "content_type", g.ID_MESSAGE_DIGEST: "message_digest"}


def _parse_signed_attrs(
        signer_info: g.SignerInfo) -> tuple[bytes | None, bytes | None, str | None]:
    attrs = signer_info.signed_attrs
    if attrs is None:
        return None, None, None
    elements = attrs.as_list()
    message_digest: bytes | None = None
    content_type: str | None = None
    seen: set[x509.ObjectIdentifier] = set()
    for element in elements:
        attr = element.parse(g.Attribute)
        name = _ATTRIBUTE_NAMES.get(attr.type)
        # SPEC: RFC 5652 §5.3: signedAttrs MUST NOT hold two attributes of the same type.
        if attr.type in seen:
            raise E("duplicate signed attribute", actual=name or attr.type.dotted_string)
        seen.add(attr.type)
        if name is None:
            continue
        values = attr.values.as_list()
        # SPEC: RFC 5652 §11.1/§11.2: contentType and messageDigest are single-valued.
        if len(values) != 1:
            raise E(f"signed attribute {name} must have exactly one value", actual=len(values))
        if name == "content_type":
            content_type = values[0].parse(x509.ObjectIdentifier).dotted_string
        else:
            message_digest = values[0].parse(bytes)
    # SPEC: RFC 5652 §5.4: the signature covers the DER of the attributes with the SET OF tag
    # (0x31), not the [0] IMPLICIT tag they carry inside SignerInfo. The codec writes that
    # SET OF header around the attributes, each a raw element that encodes as its received
    # bytes, in the received order (decoding checked it is the DER order): the content
    # octets are exactly the received ones. Were they not, the signature check would fail,
    # closed.
    return asn1.encode_der(attrs), message_digest, content_type
