"""The ASN.1 grammar of RFC 3161 timestamps, for ``cryptography.hazmat.asn1``.

Declarative classes decoded and encoded by cryptography's Rust DER codec (strict DER: an
indefinite or non-minimal length, an unsorted SET OF, an explicitly encoded DEFAULT or
trailing bytes are refused). :mod:`sealtrail.models.rfc3161` parses tokens with them and
:mod:`sealtrail.clients.tsa` builds requests and checks replies with them.

Conventions:

* a field typed ``asn1.TLV`` keeps a raw element (its exact received bytes are
  ``asn1.encode_der(tlv)``) that is decoded later, or never when it is not examined;
* the library has no "optional ANY" (``TLV | None`` is refused), so such a field is the
  CHOICE ``asn1.Null | asn1.TLV | None``: ``Null`` catches an explicit NULL, ``TLV`` any
  other element;
* a SET OF whose contents are not examined, or that real TSAs send unsorted, is a
  ``list[asn1.TLV]`` under its IMPLICIT tag (no DER ordering check on a SEQUENCE OF).
"""

# No ``from __future__ import annotations`` here: every class is registered at import time
# through typing.get_type_hints, and string annotations would cost ~1.5 ms more to evaluate.
from typing import Annotated

from cryptography import x509
from cryptography.hazmat import asn1

OID = x509.ObjectIdentifier

# -- object identifiers --------------------------------------------------------------------

# SPEC: RFC 5652 §5.1 id-signedData.
ID_SIGNED_DATA = OID("1.2.840.113549.1.7.2")
# SPEC: RFC 3161 §2.4.2 id-ct-TSTInfo.
ID_CT_TST_INFO = OID("1.2.840.113549.1.9.16.1.4")
# SPEC: RFC 5652 §11.1 id-contentType, §11.2 id-messageDigest.
ID_CONTENT_TYPE = OID("1.2.840.113549.1.9.3")
ID_MESSAGE_DIGEST = OID("1.2.840.113549.1.9.4")
# SPEC: RFC 5754 §2 (SHA-2) and RFC 3370 §2.1 (SHA-1) digest algorithm identifiers.
ID_SHA1 = OID("1.3.14.3.2.26")
ID_SHA224 = OID("2.16.840.1.101.3.4.2.4")
ID_SHA256 = OID("2.16.840.1.101.3.4.2.1")
ID_SHA384 = OID("2.16.840.1.101.3.4.2.2")
ID_SHA512 = OID("2.16.840.1.101.3.4.2.3")
ID_MD5 = OID("1.2.840.113549.2.5")
# SPEC: RFC 5758 §3.2 ecdsa-with-SHA*.
ID_ECDSA_SHA256 = OID("1.2.840.10045.4.3.2")
ID_ECDSA_SHA384 = OID("1.2.840.10045.4.3.3")
ID_ECDSA_SHA512 = OID("1.2.840.10045.4.3.4")
# SPEC: RFC 8017 appendix C / RFC 4055 §5: rsaEncryption, sha*WithRSAEncryption.
ID_RSA_ENCRYPTION = OID("1.2.840.113549.1.1.1")
ID_SHA256_RSA = OID("1.2.840.113549.1.1.11")
ID_SHA384_RSA = OID("1.2.840.113549.1.1.12")
ID_SHA512_RSA = OID("1.2.840.113549.1.1.13")
# SPEC: RFC 4055 §3.1 id-RSASSA-PSS, §2.2 id-mgf1.
ID_RSASSA_PSS = OID("1.2.840.113549.1.1.10")
ID_MGF1 = OID("1.2.840.113549.1.1.8")

# Names of the digest algorithms, as hashlib (and asn1crypto before) spell them.
DIGEST_NAMES: dict[x509.ObjectIdentifier, str] = {
    ID_SHA256: "sha256", ID_SHA384: "sha384", ID_SHA512: "sha512",
    ID_SHA1: "sha1", ID_SHA224: "sha224", ID_MD5: "md5",
}
DIGEST_OIDS: dict[str, x509.ObjectIdentifier] = {
    name: oid for oid, name in DIGEST_NAMES.items()}

# SPEC: RFC 3161 §2.4.2 PKIStatus values, named as asn1crypto named them.
PKI_STATUS_NAMES = {0: "granted", 1: "granted_with_mods", 2: "rejection", 3: "waiting",
                    4: "revocation_warning", 5: "revocation_notification"}
# SPEC: RFC 3161 §2.4.2 PKIFailureInfo bits.
PKI_FAILURE_NAMES = {0: "bad_alg", 2: "bad_request", 5: "bad_data_format",
                     14: "time_not_available", 15: "unaccepted_policy",
                     16: "unaccepted_extensions", 17: "add_info_not_available",
                     25: "system_failure"}


# -- RFC 5280 building blocks ------------------------------------------------------------

@asn1.sequence
class AlgorithmIdentifier:
    """SPEC: RFC 5280 §4.1.1.2: ``SEQUENCE { algorithm OID, parameters ANY OPTIONAL }``.

    ``parameters`` is ``None`` (absent), ``asn1.Null()`` or a raw element for the caller
    to refuse or decode (RSASSA-PSS-params).
    """

    algorithm: x509.ObjectIdentifier
    parameters: asn1.Null | asn1.TLV | None


@asn1.sequence
class Extension:
    """SPEC: RFC 5280 §4.1: ``SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue }``."""

    extn_id: x509.ObjectIdentifier
    critical: Annotated[bool, asn1.Default(False)]
    extn_value: bytes


@asn1.sequence
class AttributeTypeAndValue:
    """SPEC: RFC 5280 §4.1.2.4: one name attribute; the value is any string type."""

    type: x509.ObjectIdentifier
    value: asn1.TLV


# SPEC: RFC 5280 §4.1.2.4: Name ::= SEQUENCE OF RelativeDistinguishedName (SET OF ATV).
Name = list[asn1.SetOf[AttributeTypeAndValue]]


@asn1.sequence
class NameHolder:
    """A raw Name wrapped in a SEQUENCE, so that :class:`ParsedNameHolder` can decode it
    (the library decodes SEQUENCE classes, not a bare SEQUENCE OF)."""

    name: asn1.TLV


@asn1.sequence
class ParsedNameHolder:
    """:class:`NameHolder` with the Name decoded down to its attributes."""

    name: Name


@asn1.sequence
class TBSCertificateOutline:
    """SPEC: RFC 5280 §4.1: TBSCertificate, decoded only as far as the serial number."""

    version: Annotated[int, asn1.Explicit(0), asn1.Default(0)]
    serial_number: int
    signature: asn1.TLV
    issuer: asn1.TLV
    validity: asn1.TLV
    subject: asn1.TLV
    subject_public_key_info: asn1.TLV
    issuer_unique_id: Annotated[asn1.BitString | None, asn1.Implicit(1)]
    subject_unique_id: Annotated[asn1.BitString | None, asn1.Implicit(2)]
    extensions: Annotated[list[asn1.TLV] | None, asn1.Explicit(3)]


@asn1.sequence
class CertificateOutline:
    """SPEC: RFC 5280 §4.1: Certificate, to read the serial number before cryptography
    loads the certificate (it warns on, and will refuse, non-positive serials)."""

    tbs_certificate: TBSCertificateOutline
    signature_algorithm: asn1.TLV
    signature_value: asn1.BitString


# -- RFC 4055: RSASSA-PSS ------------------------------------------------------------------

@asn1.sequence
class MaskGenAlgorithm:
    """SPEC: RFC 4055 §2.2: ``{ id-mgf1, HashAlgorithm }`` (HashAlgorithm being an
    AlgorithmIdentifier, RFC 4055 §2.1)."""

    algorithm: x509.ObjectIdentifier
    parameters: AlgorithmIdentifier | None


@asn1.sequence
class RSASSAPSSParams:
    """SPEC: RFC 4055 §3.1 RSASSA-PSS-params (EXPLICIT tags).

    The hash and mask generation defaults are SHA-1, which is refused: absent fields decode
    as ``None`` and mean SHA-1.
    """

    hash_algorithm: Annotated[AlgorithmIdentifier | None, asn1.Explicit(0)]
    mask_gen_algorithm: Annotated[MaskGenAlgorithm | None, asn1.Explicit(1)]
    salt_length: Annotated[int, asn1.Explicit(2), asn1.Default(20)]
    trailer_field: Annotated[int, asn1.Explicit(3), asn1.Default(1)]


# -- RFC 3161: TSTInfo, requests and responses ---------------------------------------------

@asn1.sequence
class MessageImprint:
    """SPEC: RFC 3161 §2.4.1: ``SEQUENCE { hashAlgorithm, hashedMessage OCTET STRING }``."""

    hash_algorithm: AlgorithmIdentifier
    hashed_message: bytes


@asn1.sequence
class Accuracy:
    """SPEC: RFC 3161 §2.4.2: ``seconds INTEGER OPTIONAL, millis [0], micros [1]``."""

    seconds: int | None
    millis: Annotated[int | None, asn1.Implicit(0)]
    micros: Annotated[int | None, asn1.Implicit(1)]


@asn1.sequence
class TSTInfo:
    """SPEC: RFC 3161 §2.4.2 TSTInfo.

    ``gen_time`` is kept raw: the library refuses a GeneralizedTime finer than a
    microsecond, which RFC 3161 allows, and a clear error is wanted for a local time.
    ``tsa`` is ``[0] GeneralName`` (explicit, GeneralName being a CHOICE); it only helps
    identify the TSA (§2.4.2), so it is kept raw.
    """

    version: int
    policy: x509.ObjectIdentifier
    message_imprint: MessageImprint
    serial_number: int
    gen_time: asn1.TLV
    accuracy: Accuracy | None
    ordering: Annotated[bool, asn1.Default(False)]
    nonce: int | None
    tsa: Annotated[asn1.Null | asn1.TLV | None, asn1.Explicit(0)]
    extensions: Annotated[list[Extension] | None, asn1.Implicit(1)]


@asn1.sequence
class TimeStampReq:
    """SPEC: RFC 3161 §2.4.1 TimeStampReq."""

    version: int
    message_imprint: MessageImprint
    req_policy: x509.ObjectIdentifier | None
    nonce: int | None
    cert_req: Annotated[bool, asn1.Default(False)]
    extensions: Annotated[list[Extension] | None, asn1.Implicit(0)]


@asn1.sequence
class ReceivedTimeStampReq:
    """:class:`TimeStampReq` as a TSA reads it: certReq as OPTIONAL rather than DEFAULT
    FALSE, so a client that spells out FALSE (BER, not DER) is still understood; the
    extensions stay raw (the TSA refuses any)."""

    version: int
    message_imprint: MessageImprint
    req_policy: x509.ObjectIdentifier | None
    nonce: int | None
    cert_req: bool | None
    extensions: Annotated[list[asn1.TLV] | None, asn1.Implicit(0)]


@asn1.sequence
class PKIStatusInfo:
    """SPEC: RFC 3161 §2.4.2 / RFC 4210 §5.2.3: status, statusString PKIFreeText (SEQUENCE
    OF UTF8String), failInfo BIT STRING."""

    status: int
    status_string: list[str] | None
    fail_info: asn1.BitString | None


@asn1.sequence
class PKIStatusHead:
    """:class:`PKIStatusInfo` with the optional parts kept raw: the status of a reply whose
    statusString or failInfo does not decode can still be reported."""

    status: int
    status_string: asn1.Null | asn1.TLV | None
    fail_info: asn1.Null | asn1.TLV | None


# -- RFC 5652: CMS -------------------------------------------------------------------------

@asn1.sequence
class ContentInfo:
    """SPEC: RFC 5652 §3: ``SEQUENCE { contentType, content [0] EXPLICIT ANY }``.

    The content stays raw until its type is checked.
    """

    content_type: x509.ObjectIdentifier
    content: Annotated[asn1.TLV, asn1.Explicit(0)]


@asn1.sequence
class TokenOrResponse:
    """What a bundle's ``signedTimestamp`` holds: a TimeStampToken (a ContentInfo, whose
    first element is an OID) or a whole TimeStampResp (whose first element is the
    PKIStatusInfo SEQUENCE). Both are SEQUENCEs of one or two elements.

    SPEC: RFC 3161 §2.4.2: TimeStampResp ::= SEQUENCE { status PKIStatusInfo,
    timeStampToken TimeStampToken OPTIONAL }; the status is then decoded with
    :class:`PKIStatusInfo` and the token with :class:`ContentInfo`, from the raw elements
    (the token's exact bytes are kept).
    """

    first: x509.ObjectIdentifier | asn1.TLV
    second: asn1.Null | asn1.TLV | None


@asn1.sequence
class EncapsulatedContentInfo:
    """SPEC: RFC 5652 §5.2: ``eContentType, eContent [0] EXPLICIT OCTET STRING OPTIONAL``.

    ``e_content`` is ``bytes`` for a primitive OCTET STRING and a raw element for anything
    else (a BER constructed string), which the parser refuses by name.
    """

    e_content_type: x509.ObjectIdentifier
    e_content: Annotated[bytes | asn1.TLV | None, asn1.Explicit(0)]


@asn1.sequence
class IssuerAndSerialNumber:
    """SPEC: RFC 5652 §10.2.4: ``SEQUENCE { issuer Name, serialNumber INTEGER }``."""

    issuer: asn1.TLV
    serial_number: int


@asn1.sequence
class Attribute:
    """SPEC: RFC 5652 §5.3: ``SEQUENCE { attrType OID, attrValues SET OF ANY }``."""

    type: x509.ObjectIdentifier
    values: asn1.SetOf[asn1.TLV]


@asn1.sequence
class SignerInfo:
    """SPEC: RFC 5652 §5.3 SignerInfo.

    ``sid`` is the CHOICE issuerAndSerialNumber | ``[0] SubjectKeyIdentifier``.
    ``signed_attrs`` is a strict SET OF (RFC 5652 §5.3: signedAttrs MUST be DER, as the
    signature covers their DER); each attribute stays raw so that the signed bytes are
    the received ones. ``unsigned_attrs`` are not examined.
    """

    version: int
    sid: IssuerAndSerialNumber | Annotated[bytes, asn1.Implicit(0)]
    digest_algorithm: AlgorithmIdentifier
    signed_attrs: Annotated[asn1.SetOf[asn1.TLV] | None, asn1.Implicit(0)]
    signature_algorithm: AlgorithmIdentifier
    signature: bytes
    unsigned_attrs: Annotated[list[asn1.TLV] | None, asn1.Implicit(1)]


@asn1.sequence
class SignedData:
    """SPEC: RFC 5652 §5.1 SignedData.

    ``certificates`` (``[0] IMPLICIT CertificateSet``) is read without the DER SET OF
    ordering check: OpenSSL-based TSAs (freetsa.org, in the conformance suite) list the
    chain leaf first, unsorted, and every verifier accepts that. Each entry stays raw:
    the parser accepts only plain X.509 certificates (a SEQUENCE, not a tagged
    alternative). ``crls`` (``[1] IMPLICIT``) are not examined.
    """

    version: int
    digest_algorithms: asn1.SetOf[AlgorithmIdentifier]
    encap_content_info: EncapsulatedContentInfo
    certificates: Annotated[list[asn1.TLV] | None, asn1.Implicit(0)]
    crls: Annotated[list[asn1.TLV] | None, asn1.Implicit(1)]
    signer_infos: asn1.SetOf[SignerInfo]


# -- what sealtrail writes (sealtrail.clients.tsa and sealtrail.tsa) --------------------

# SHA-2 AlgorithmIdentifiers as sealtrail writes them: NULL parameters, as asn1crypto and
# OpenSSL write them (SPEC: RFC 5754 §2 lets readers accept both NULL and absent). Shared,
# immutable values.
SHA2_ALGORITHMS: dict[str, "AlgorithmIdentifier"] = {
    name: AlgorithmIdentifier(algorithm=DIGEST_OIDS[name], parameters=asn1.Null())
    for name in ("sha256", "sha384", "sha512")}
# SPEC: RFC 5758 §3.2: ecdsa-with-SHA256/384/512, parameters absent.
ECDSA_ALGORITHMS: dict[str, "AlgorithmIdentifier"] = {
    name: AlgorithmIdentifier(algorithm=oid, parameters=None)
    for name, oid in (("sha256", ID_ECDSA_SHA256), ("sha384", ID_ECDSA_SHA384),
                      ("sha512", ID_ECDSA_SHA512))}

# -- what a TSA writes (sealtrail.tsa) ----------------------------------------------------

# SPEC: RFC 5652 §11.3 id-signingTime; RFC 5035 §5.4.1 id-aa-signingCertificateV2.
ID_SIGNING_TIME = OID("1.2.840.113549.1.9.5")
ID_SIGNING_CERTIFICATE_V2 = OID("1.2.840.113549.1.9.16.2.47")


@asn1.sequence
class TimeStampResp:
    """SPEC: RFC 3161 §2.4.2: ``SEQUENCE { status PKIStatusInfo, timeStampToken
    TimeStampToken OPTIONAL }``, the token as its encoded ContentInfo."""

    status: PKIStatusInfo
    time_stamp_token: asn1.Null | asn1.TLV | None


@asn1.sequence
class IssuerSerial:
    """SPEC: RFC 5035 §5.4.1: ``SEQUENCE { issuer GeneralNames, serialNumber }``; each
    GeneralName here is a directoryName, ``[4]`` EXPLICIT (Name is a CHOICE)."""

    issuer: list[Annotated[asn1.TLV, asn1.Explicit(4)]]
    serial_number: int


@asn1.sequence
class ESSCertIDv2:
    """SPEC: RFC 5035 §5.4.1: hashAlgorithm DEFAULT sha256 is left out (DER omits a
    DEFAULT), so only SHA-256 certificate hashes are written."""

    cert_hash: bytes
    issuer_serial: IssuerSerial | None


@asn1.sequence
class SigningCertificateV2:
    """SPEC: RFC 5035 §5.4.1 (policies are never written)."""

    certs: list[ESSCertIDv2]


def element(der: bytes) -> asn1.TLV:
    """An encoded element (checked to be one DER TLV) to embed as it is."""
    return asn1.decode_der(asn1.TLV, der)


def attribute(attr_type: x509.ObjectIdentifier, value: object) -> asn1.TLV:
    """A CMS Attribute with one value, encoded (RFC 5652 §5.3)."""
    return element(asn1.encode_der(Attribute(type=attr_type,
                                             values=asn1.SetOf([element(asn1.encode_der(value))]))))
