"""The ASN.1 the TSA writes, declared for ``cryptography.hazmat.asn1`` (Rust DER encoder).

Only what a sealtrail token contains is declared: optional fields the TSA never emits are
left out, which changes nothing in the encoding (DER omits absent OPTIONAL fields). The
encoder writes DER, including the sorted SET OF that signed attributes need (RFC 5652 §5.3:
OpenSSL re-encodes the set before checking the signature).

SPEC: RFC 3161 §2.4.2 (TimeStampResp, TSTInfo, Accuracy), RFC 5652 §5 (ContentInfo,
SignedData, EncapsulatedContentInfo, SignerInfo, Attribute), RFC 5280 §4.1.1.2
(AlgorithmIdentifier).
"""

from __future__ import annotations

from typing import Annotated

from cryptography import x509
from cryptography.hazmat import asn1

OID = x509.ObjectIdentifier

# SPEC: RFC 5652 §5.1 id-signedData; RFC 3161 §2.4.2 id-ct-TSTInfo; RFC 5652 §11.1-11.3
# contentType, messageDigest and signingTime attributes.
SIGNED_DATA = OID("1.2.840.113549.1.7.2")
TST_INFO = OID("1.2.840.113549.1.9.16.1.4")
CONTENT_TYPE_ATTR = OID("1.2.840.113549.1.9.3")
MESSAGE_DIGEST_ATTR = OID("1.2.840.113549.1.9.4")
SIGNING_TIME_ATTR = OID("1.2.840.113549.1.9.5")
# SPEC: RFC 5754 §2 (SHA-2 digests), RFC 5758 §3.2 (ecdsa-with-SHA2).
DIGEST_OIDS = {"sha256": OID("2.16.840.1.101.3.4.2.1"), "sha384": OID("2.16.840.1.101.3.4.2.2"),
               "sha512": OID("2.16.840.1.101.3.4.2.3")}
ECDSA_OIDS = {"sha256": OID("1.2.840.10045.4.3.2"), "sha384": OID("1.2.840.10045.4.3.3"),
              "sha512": OID("1.2.840.10045.4.3.4")}


@asn1.sequence
class DigestAlgorithm:
    """AlgorithmIdentifier of a SHA-2 digest; NULL parameters, as asn1crypto and OpenSSL
    write them (RFC 5754 §2 lets verifiers accept both NULL and absent)."""

    algorithm: OID
    parameters: asn1.Null | None


@asn1.sequence
class SignatureAlgorithm:
    """AlgorithmIdentifier of ecdsa-with-SHA2: parameters absent (RFC 5758 §3.2)."""

    algorithm: OID


@asn1.sequence
class PKIStatusInfo:
    status: int


@asn1.sequence
class MessageImprint:
    hash_algorithm: DigestAlgorithm
    hashed_message: bytes


@asn1.sequence
class Accuracy:
    seconds: int | None


@asn1.sequence
class TSTInfo:
    version: int
    policy: OID
    message_imprint: MessageImprint
    serial_number: int
    gen_time: asn1.GeneralizedTime
    accuracy: Accuracy | None
    nonce: int | None


@asn1.sequence
class OidAttribute:
    type: OID
    values: asn1.SetOf[OID]


@asn1.sequence
class OctetStringAttribute:
    type: OID
    values: asn1.SetOf[bytes]


@asn1.sequence
class UTCTimeAttribute:
    type: OID
    values: asn1.SetOf[asn1.UTCTime]


@asn1.sequence
class GeneralizedTimeAttribute:
    type: OID
    values: asn1.SetOf[asn1.GeneralizedTime]


@asn1.sequence
class IssuerAndSerialNumber:
    issuer: asn1.TLV  # the leaf's issuer Name, exactly as the certificate encodes it
    serial_number: int


@asn1.sequence
class SignerInfo:
    version: int
    sid: IssuerAndSerialNumber
    digest_algorithm: DigestAlgorithm
    signed_attrs: Annotated[asn1.SetOf[asn1.TLV] | None, asn1.Implicit(0)]
    signature_algorithm: SignatureAlgorithm
    signature: bytes


@asn1.sequence
class EncapsulatedContentInfo:
    e_content_type: OID
    e_content: Annotated[bytes | None, asn1.Explicit(0)]


@asn1.sequence
class SignedData:
    version: int
    digest_algorithms: asn1.SetOf[DigestAlgorithm]
    encap_content_info: EncapsulatedContentInfo
    certificates: Annotated[asn1.SetOf[x509.Certificate] | None, asn1.Implicit(0)]
    signer_infos: asn1.SetOf[SignerInfo]


@asn1.sequence
class ContentInfo:
    content_type: OID
    content: Annotated[SignedData, asn1.Explicit(0)]


@asn1.sequence
class TimeStampResp:
    status: PKIStatusInfo
    time_stamp_token: ContentInfo | None


def element(der: bytes) -> asn1.TLV:
    """An already-encoded element (one TLV, checked to be DER) to embed as it is."""
    return asn1.decode_der(asn1.TLV, der)


# SPEC: RFC 5035 §5.4.1 / RFC 5816 §2.2.1: ESS signingCertificateV2. hashAlgorithm is left
# out: SHA-256 is its DEFAULT, which DER omits. GeneralName's directoryName is [4] EXPLICIT
# (Name is a CHOICE, which cannot be tagged implicitly).
SIGNING_CERTIFICATE_V2_ATTR = OID("1.2.840.113549.1.9.16.2.47")


@asn1.sequence
class IssuerSerial:
    issuer: list[Annotated[asn1.TLV, asn1.Explicit(4)]]
    serial_number: int


@asn1.sequence
class ESSCertIDv2:
    cert_hash: bytes
    issuer_serial: IssuerSerial | None


@asn1.sequence
class SigningCertificateV2:
    certs: list[ESSCertIDv2]


@asn1.sequence
class SigningCertificateV2Attribute:
    type: OID
    values: asn1.SetOf[SigningCertificateV2]


# -- what clients send ----------------------------------------------------------------------
@asn1.sequence
class RequestDigestAlgorithm:
    """A request's hash AlgorithmIdentifier: parameters absent or NULL, nothing else
    (RFC 5754 §2); other parameters do not decode."""

    algorithm: OID
    parameters: asn1.Null | None


@asn1.sequence
class RequestImprint:
    hash_algorithm: RequestDigestAlgorithm
    hashed_message: bytes


@asn1.sequence
class TimeStampReq:
    """SPEC: RFC 3161 §2.4.1. certReq is read as OPTIONAL rather than DEFAULT FALSE, so a
    client that spells out FALSE (not canonical DER) is still understood."""

    version: int
    message_imprint: RequestImprint
    req_policy: OID | None
    nonce: int | None
    cert_req: bool | None
    extensions: Annotated[list[asn1.TLV] | None, asn1.Implicit(0)]


# Hash names by OID: the ones a TSA accepts, and SHA-1, named so that refusing it can say so.
HASH_NAMES = {oid.dotted_string: name for name, oid in DIGEST_OIDS.items()}
HASH_NAMES["1.3.14.3.2.26"] = "sha1"
