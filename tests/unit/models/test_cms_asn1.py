"""The DER grammar behind RFC 3161 parsing (models._cms_asn1 with cryptography.hazmat.asn1).

test_rfc3161.py covers the checks of the token parser and verifier; this file covers the
grammar paths and the strictness the Rust codec brings: fractional genTimes, both sid
forms, RSASSA-PSS parameters, optional TSTInfo fields, unsigned attributes, non-DER
encodings and trailing bytes, and the TSA client's request and reply handling. Where a
test refuses an encoding, a control shows that the lenient asn1crypto reading (what the
parser used before) accepts the same bytes, or that the same construction without the
fault passes: the refusal is the codec's strictness, not a broken test fixture.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from asn1crypto import algos, cms, core, parser, tsp
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sealtrail.errors import TimestampInvalidError
from sealtrail.models import rfc3161
from sealtrail.models.rfc3161 import SignerIdentifier, TimestampToken
from sealtrail.clients.tsa import build_request, check_reply
from sealtrail.verify._timestamp import verify_timestamp
from tests.fakes.tsa import DEFAULT_GEN_TIME

SIG = b"the signature bytes of a bundle"
CONFORMANCE = Path(__file__).resolve().parents[2] / "vectors" / "conformance"
UTC = timezone.utc


def _parse_fails(der: bytes, fragment: str) -> TimestampInvalidError:
    with pytest.raises(TimestampInvalidError) as info:
        TimestampToken.from_der(der)
    assert fragment in info.value.message, info.value.message
    assert info.value.code == "TIMESTAMP_INVALID"
    return info.value


def _signer_info(ci: cms.ContentInfo) -> cms.SignerInfo:
    return ci["content"]["signer_infos"][0]


def _real_token(name: str) -> bytes:
    bundle = json.loads((CONFORMANCE / name / "bundle.sigstore.json").read_text())
    timestamps = bundle["verificationMaterial"]["timestampVerificationData"]
    return base64.b64decode(timestamps["rfc3161Timestamps"][0]["signedTimestamp"])


def _with_econtent(der: bytes, econtent_element: bytes) -> bytes:
    """``der`` (a token) with ``econtent_element`` as the element inside eContent [0].

    Assembled from asn1crypto's encodings of the untouched parts (asn1crypto re-encodes,
    and so repairs, the faults these tests need when it serialises a mutated token).
    """
    ci = cms.ContentInfo.load(der)
    signed_data = ci["content"]
    encap = signed_data["encap_content_info"]
    new_encap = core.Sequence(contents=encap["content_type"].dump()
                              + parser.emit(2, 1, 0, econtent_element)).dump()
    parts = [signed_data["version"].dump(), signed_data["digest_algorithms"].dump(), new_encap,
             signed_data["certificates"].dump(), signed_data["crls"].dump(),
             signed_data["signer_infos"].dump()]
    new_signed_data = core.Sequence(contents=b"".join(parts)).dump()
    return core.Sequence(contents=ci["content_type"].dump()
                         + parser.emit(2, 1, 0, new_signed_data)).dump()


def _tst_info_der(der: bytes) -> bytes:
    return bytes(cms.ContentInfo.load(der)["content"]["encap_content_info"]["content"].contents)


def _granted(token: bytes) -> bytes:
    return core.Sequence(contents=tsp.PKIStatusInfo({"status": "granted"}).dump() + token).dump()


def test_with_econtent_rebuilds_the_token_exactly(ec_tsa):
    der = ec_tsa.timestamp(SIG, embed_certs=True)
    assert _with_econtent(der, core.OctetString(_tst_info_der(der)).dump()) == der


# -- genTime --------------------------------------------------------------------------

def _gen_time_text(text: str):
    def mutate(tst: tsp.TSTInfo) -> None:
        raw = core.VisibleString(text, implicit=("universal", 24)).dump()
        tst["gen_time"] = core.GeneralizedTime.load(raw)
    return mutate


@pytest.mark.parametrize("text, expected", [
    ("20250601120000Z", datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)),
    ("20250601120000.5Z", datetime(2025, 6, 1, 12, 0, 0, 500000, tzinfo=UTC)),
    ("20250601120000.123Z", datetime(2025, 6, 1, 12, 0, 0, 123000, tzinfo=UTC)),
    ("20250601120000.123456Z", datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)),
    # Finer than the microsecond (Go TSAs can send nanoseconds): truncated, not rounded.
    ("20250601120000.123456789Z", datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)),
    ("20250601120000.9999999Z", datetime(2025, 6, 1, 12, 0, 0, 999999, tzinfo=UTC)),
])
def test_fractional_gen_time(ec_tsa, text, expected):
    der = ec_tsa.timestamp(SIG, mutate_tst=_gen_time_text(text))
    token = TimestampToken.from_der(der)
    assert token.gen_time == expected and token.gen_time.tzinfo == UTC
    assert verify_timestamp(token, SIG, [ec_tsa.to_authority()]) == expected


@pytest.mark.parametrize("text, fragment", [
    ("20250601120000", "not a UTC time"),  # a local time
    ("20250601120000+0100", "not a UTC time"),  # RFC 3161 §2.4.2: MUST end with "Z"
    ("20250601120000.120Z", "not a valid GeneralizedTime"),  # trailing zero (X.690 §11.7)
    ("20250601120000.Z", "not a valid GeneralizedTime"),
    ("202506011200Z", "not a valid GeneralizedTime"),  # seconds are mandatory
    ("20250231120000Z", "not a valid GeneralizedTime"),  # 31 February
    ("20250231120000.1234567Z", "not a valid GeneralizedTime"),  # ... on the nanosecond path
    ("2025060112000a.1234567Z", "not a valid GeneralizedTime"),
])
def test_gen_time_that_is_not_rfc3161_is_refused(ec_tsa, text, fragment):
    der = ec_tsa.timestamp(SIG, mutate_tst=_gen_time_text(text))
    _parse_fails(der, fragment)


def test_gen_time_with_another_tag_is_refused(ec_tsa):
    def utc_time(tst: tsp.TSTInfo) -> None:
        raw = core.UTCTime(DEFAULT_GEN_TIME).dump()  # tag 23, not GeneralizedTime (24)
        tst["gen_time"] = core.GeneralizedTime.load(b"\x18" + raw[1:])
        # Swap the tag back to UTCTime in the encoding: asn1crypto keeps the header it is
        # given, so the TSTInfo carries a UTCTime where a GeneralizedTime belongs.
        tst["gen_time"]._header = b"\x17" + raw[1:2]
    der = ec_tsa.timestamp(SIG, mutate_tst=utc_time)
    assert core.UTCTime(DEFAULT_GEN_TIME).dump() in der
    _parse_fails(der, "genTime is not a GeneralizedTime")


# -- the optional TSTInfo fields real TSAs send ---------------------------------------

def test_optional_tst_info_fields(ec_tsa):
    def everything(tst: tsp.TSTInfo) -> None:
        tst["accuracy"] = {"seconds": 1, "millis": 500, "micros": 7}
        tst["ordering"] = True
        tst["tsa"] = asn1_x509.GeneralName(
            name="directory_name", value=asn1_x509.Name.build({"common_name": "a tsa"}))
        tst["extensions"] = [{"extn_id": "1.3.6.1.4.1.57264.99", "critical": False,
                              "extn_value": core.OctetString(b"x").dump()}]
    der = ec_tsa.timestamp(SIG, nonce=77, mutate_tst=everything)
    tst = tsp.TSTInfo.load(TimestampToken.from_der(der).tst_info_der)
    assert tst["tsa"].name == "directory_name" and tst["extensions"].native
    assert tst["accuracy"]["micros"].native == 7
    token = TimestampToken.from_der(der)
    assert token.nonce == 77
    assert verify_timestamp(token, SIG, [ec_tsa.to_authority()]) == DEFAULT_GEN_TIME


@pytest.mark.parametrize("general_name", [
    asn1_x509.GeneralName(name="dns_name", value="tsa.example"),
    asn1_x509.GeneralName(name="uniform_resource_identifier", value="https://tsa.example"),
])
def test_tsa_name_of_other_kinds(ec_tsa, general_name):
    def tsa_name(tst: tsp.TSTInfo) -> None:
        tst["tsa"] = general_name
    der = ec_tsa.timestamp(SIG, mutate_tst=tsa_name)
    assert TimestampToken.from_der(der).gen_time == DEFAULT_GEN_TIME


def test_real_tokens_with_tsa_name_and_ordering():
    # freetsa.org: ordering TRUE, a long directoryName, unsorted certificates (OpenSSL).
    token = TimestampToken.from_der(
        _real_token("rekor2-timestamp-untrusted-tsa-with-embedded-cert_fail"))
    assert token.policy == "1.2.3.4.1" and len(token.certificates) == 2
    assert token.signature_algorithm == "rsassa_pkcs1v15"
    # A sigstore TSA token: accuracy, tsa directoryName, nonce.
    token = TimestampToken.from_der(_real_token("rekor2-happy-path"))
    assert token.nonce == 10329554057653176488 and token.signature_algorithm == "sha256_ecdsa"


# -- signed attributes: the exact signed bytes -----------------------------------------

@pytest.mark.parametrize("source", ["fake", "rekor2-happy-path",
                                    "rekor2-timestamp-untrusted-tsa-with-embedded-cert_fail"])
def test_signed_attrs_der_are_the_received_bytes_retagged(ec_tsa, source):
    der = ec_tsa.response(SIG) if source == "fake" else _real_token(source)
    token = TimestampToken.from_der(der)
    signer_info = tsp.TimeStampResp.load(der)["time_stamp_token"]["content"]["signer_infos"][0]
    received = signer_info["signed_attrs"].dump()
    assert received[0] == 0xA0 and received in der
    assert token.signed_attrs_der == b"\x31" + received[1:]


# -- sid --------------------------------------------------------------------------------

def test_subject_key_identifier_sid(ec_tsa):
    token = TimestampToken.from_der(ec_tsa.timestamp(SIG, sid="ski"))
    assert token.signer.issuer_der is None
    assert token.signer.matches(ec_tsa.leaf) and not token.signer.matches(ec_tsa.root)
    assert token.signer.describe().startswith("subjectKeyIdentifier ")


def test_sid_and_version_must_agree(ec_tsa):
    def version(number: str):
        def mutate(ci: cms.ContentInfo) -> None:
            _signer_info(ci)["version"] = number
        return mutate
    _parse_fails(ec_tsa.timestamp(SIG, sid="ski", mutate=version("v1")),
                 "version must be 3 with subjectKeyIdentifier")
    _parse_fails(ec_tsa.timestamp(SIG, mutate=version("v3")),
                 "version must be 1 with issuerAndSerialNumber")
    # Controls: the matching versions parse.
    TimestampToken.from_der(ec_tsa.timestamp(SIG, sid="ski", mutate=version("v3")))
    TimestampToken.from_der(ec_tsa.timestamp(SIG, mutate=version("v1")))


def test_empty_subject_key_identifier(ec_tsa):
    def empty(ci: cms.ContentInfo) -> None:
        _signer_info(ci)["sid"] = cms.SignerIdentifier(name="subject_key_identifier", value=b"")
    _parse_fails(ec_tsa.timestamp(SIG, sid="ski", mutate=empty), "subjectKeyIdentifier is empty")


def test_describe_renders_the_issuer_like_cryptography(ec_tsa):
    token = TimestampToken.from_der(ec_tsa.timestamp(SIG))
    assert token.signer.describe() == (
        f"issuer {ec_tsa.leaf.issuer.rfc4514_string()!r} serial {ec_tsa.leaf.serial_number}")


class _AnyValue(core.Sequence):
    _fields = [("type", core.ObjectIdentifier), ("value", core.Any)]


class _AnyRDN(core.SetOf):
    _child_spec = _AnyValue


class _AnyName(core.SequenceOf):
    _child_spec = _AnyRDN


def test_describe_of_odd_names():
    odd = _AnyName([[{"type": "1.2.3.4", "value": core.Integer(5)}]]).dump()
    assert SignerIdentifier(issuer_der=odd, serial_number=1).describe() == \
        "issuer '1.2.3.4=#020105' serial 1"
    assert SignerIdentifier(issuer_der=b"\x04\x00", serial_number=1).describe() == \
        "issuer '?' serial 1"


def test_matches_compares_normalised_names(ec_tsa):
    # SPEC: RFC 5280 §7.1: the same issuer with another string type and letter case.
    issuer = asn1_x509.Name.build({"organization_name": "SEALTRAIL-TEST",
                                   "common_name": "Fake-TSA-Root"}, use_printable=True)
    assert issuer.dump() != ec_tsa.leaf.issuer.public_bytes()
    serial = ec_tsa.leaf.serial_number
    assert SignerIdentifier(issuer_der=issuer.dump(), serial_number=serial).matches(ec_tsa.leaf)
    other = asn1_x509.Name.build({"organization_name": "sealtrail-test",
                                  "common_name": "another-root"}, use_printable=True)
    assert not SignerIdentifier(issuer_der=other.dump(), serial_number=serial).matches(ec_tsa.leaf)
    assert not SignerIdentifier(issuer_der=issuer.dump(),
                                serial_number=serial + 1).matches(ec_tsa.leaf)


def test_issuer_name_with_a_bad_string_is_refused(ec_tsa):
    # A PrintableString may not hold "@": the name fails when the sid is parsed.
    rfc3161._CHECKED_NAMES.clear()
    bad = asn1_x509.Name.build({"common_name": "fake-tsa-root"}, use_printable=True).dump()
    bad_at = bad.replace(b"fake-tsa-root", b"fake@tsa-root")

    def issuer(name_der: bytes):
        def mutate(ci: cms.ContentInfo) -> None:
            _signer_info(ci)["sid"] = cms.SignerIdentifier(
                name="issuer_and_serial_number",
                value={"issuer": asn1_x509.Name.load(name_der), "serial_number": 1})
        return mutate
    TimestampToken.from_der(ec_tsa.timestamp(SIG, mutate=issuer(bad)))  # control
    _parse_fails(ec_tsa.timestamp(SIG, mutate=issuer(bad_at)), "issuer is not a valid Name")


# -- signature algorithms ----------------------------------------------------------------

def test_pss_salt_length_and_hash(rsa_tsa):
    token = TimestampToken.from_der(rsa_tsa.timestamp(SIG, signature_scheme="pss"))
    assert token.signature_family == "rsa-pss" and token.signature_algorithm == "rsassa_pss"
    assert token.signature_hash == "sha256" and token.pss_salt_length == 32
    token = TimestampToken.from_der(rsa_tsa.timestamp(
        SIG, signature_scheme="pss", digest_name="sha384", hash_name="sha384"))
    assert token.signature_hash == "sha384" and token.pss_salt_length == 48
    assert verify_timestamp(token, SIG, [rsa_tsa.to_authority()]) == DEFAULT_GEN_TIME


def _pss(params: dict | None):
    def mutate(ci: cms.ContentInfo) -> None:
        algorithm = {"algorithm": "rsassa_pss"}
        if params == {}:  # an empty SEQUENCE: every field at its DEFAULT
            algorithm["parameters"] = algos.RSASSAPSSParams.load(b"\x30\x00")
        elif params is not None:
            algorithm["parameters"] = algos.RSASSAPSSParams(params)
        _signer_info(ci)["signature_algorithm"] = algorithm
    return mutate


_SHA256 = {"algorithm": "sha256"}
_MGF1_SHA256 = {"algorithm": "mgf1", "parameters": _SHA256}


@pytest.mark.parametrize("params, fragment", [
    (None, "RSASSA-PSS signature algorithm has no parameters"),
    ({}, "unsupported RSASSA-PSS hash algorithm"),  # all defaults: SHA-1
    ({"hash_algorithm": _SHA256}, "MGF1 with the signature hash"),  # MGF1 default: SHA-1
    ({"hash_algorithm": _SHA256, "mask_gen_algorithm": {"algorithm": "mgf1"}},
     "MGF1 with the signature hash"),  # MGF1 without its hash
    ({"hash_algorithm": _SHA256, "mask_gen_algorithm": _MGF1_SHA256, "trailer_field": 2},
     "unsupported RSASSA-PSS trailer field"),
])
def test_pss_parameters(rsa_tsa, params, fragment):
    _parse_fails(rsa_tsa.timestamp(SIG, signature_scheme="pss", mutate=_pss(params)), fragment)


_SHA256_NULL = algos.DigestAlgorithm({"algorithm": "sha256", "parameters": core.Null()}).dump()
_MGF1_OID = core.ObjectIdentifier("1.2.840.113549.1.1.8").dump()


@pytest.mark.parametrize("where, fragment", [
    ("hash", "RSASSA-PSS hash algorithm has unexpected parameters"),
    ("mgf", "RSASSA-PSS MGF1 hash algorithm has unexpected parameters"),
])
def test_pss_hash_parameters(rsa_tsa, where, fragment):
    der = rsa_tsa.timestamp(SIG, signature_scheme="pss")
    token = TimestampToken.from_der(der)  # the control: NULL parameters are tolerated
    assert token.signature_hash == "sha256"
    # NULL (05 00) -> an empty OCTET STRING (04 00), in the hash or the MGF1 hash only:
    # the hash AlgorithmIdentifier follows [0] (a0 0f), the MGF1 one follows the MGF1 OID.
    prefix = b"\xa0\x0f" if where == "hash" else _MGF1_OID
    assert der.count(prefix + _SHA256_NULL) == 1
    odd = _SHA256_NULL[:-2] + b"\x04\x00"
    _parse_fails(der.replace(prefix + _SHA256_NULL, prefix + odd), fragment)


def test_pss_parameters_control(rsa_tsa):
    params = {"hash_algorithm": _SHA256, "mask_gen_algorithm": _MGF1_SHA256,
              "salt_length": 32}
    der = rsa_tsa.timestamp(SIG, signature_scheme="pss", mutate=_pss(params))
    token = TimestampToken.from_der(der)
    assert verify_timestamp(token, SIG, [rsa_tsa.to_authority()]) == DEFAULT_GEN_TIME


def test_signature_algorithm_parameters(ec_tsa):
    def params(value):
        def mutate(ci: cms.ContentInfo) -> None:
            _signer_info(ci)["signature_algorithm"] = {"algorithm": "sha256_ecdsa",
                                                       "parameters": value}
        return mutate
    _parse_fails(ec_tsa.timestamp(SIG, mutate=params(core.Integer(1))),
                 "signature algorithm has unexpected parameters")
    # NULL is tolerated, like absent parameters.
    token = TimestampToken.from_der(ec_tsa.timestamp(SIG, mutate=params(core.Null())))
    assert verify_timestamp(token, SIG, [ec_tsa.to_authority()]) == DEFAULT_GEN_TIME


# -- SignedData parts that are carried but not examined ----------------------------------

def test_unsigned_attributes_are_accepted(ec_tsa):
    def unsigned(ci: cms.ContentInfo) -> None:
        _signer_info(ci)["unsigned_attrs"] = cms.CMSAttributes([
            {"type": "signing_time", "values": [cms.Time(name="utc_time", value=DEFAULT_GEN_TIME)]},
        ])
    der = ec_tsa.timestamp(SIG, mutate=unsigned)
    assert not isinstance(cms.ContentInfo.load(der)["content"]["signer_infos"][0]
                          ["unsigned_attrs"], core.Void)
    token = TimestampToken.from_der(der)
    assert verify_timestamp(token, SIG, [ec_tsa.to_authority()]) == DEFAULT_GEN_TIME


def test_crls_are_accepted(ec_tsa):
    def crls(ci: cms.ContentInfo) -> None:
        other = {"other_rev_info_format": "1.2.3.4", "other_rev_info": core.Null()}
        ci["content"]["crls"] = cms.RevocationInfoChoices(
            [cms.RevocationInfoChoice(name="other", value=other)])
    der = ec_tsa.timestamp(SIG, mutate=crls)
    assert not isinstance(cms.ContentInfo.load(der)["content"]["crls"], core.Void)
    assert TimestampToken.from_der(der).gen_time == DEFAULT_GEN_TIME


def test_non_x509_certificate_is_refused(ec_tsa):
    def other(ci: cms.ContentInfo) -> None:
        ci["content"]["certificates"] = [cms.CertificateChoices(
            name="other", value={"other_cert_format": "1.2.3.4", "other_cert": core.Null()})]
    err = _parse_fails(ec_tsa.timestamp(SIG, mutate=other), "non-X.509 certificate")
    assert err.actual == "other"


def test_unparsable_embedded_certificate_is_refused(ec_tsa):
    der = ec_tsa.timestamp(SIG, embed_certs=[ec_tsa.root])
    TimestampToken.from_der(der)  # the control
    cert = ec_tsa.root.public_bytes(Encoding.DER)
    assert cert[:2] == b"\x30\x82" and cert[4:6] == b"\x30\x82"
    # The TBSCertificate as a SET: the outline read for the serial number fails.
    not_a_tbs = cert[:4] + b"\x31" + cert[5:]
    _parse_fails(der.replace(cert, not_a_tbs), "certificate that does not parse")
    # The key's algorithm OID as an OCTET STRING: the outline passes, cryptography fails.
    spki = ec_tsa.root.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert spki[4] == 0x06 and spki in cert
    bad_key = cert.replace(spki, spki[:4] + b"\x04" + spki[5:])
    _parse_fails(der.replace(cert, bad_key), "certificate that does not parse")


# -- non-DER encodings and trailing bytes ---------------------------------------------------

def test_non_minimal_length_is_refused(ec_tsa):
    der = ec_tsa.timestamp(SIG)
    assert der[:2] == b"\x30\x82"
    ber = b"\x30\x83\x00" + der[2:]  # the same length in three octets
    assert cms.ContentInfo.load(ber)["content"]["version"].native == "v3"  # asn1crypto: fine
    _parse_fails(ber, "does not parse")


def test_indefinite_length_is_refused(ec_tsa):
    der = ec_tsa.timestamp(SIG)
    ber = b"\x30\x80" + der[4:] + b"\x00\x00"  # BER indefinite length, end-of-contents
    assert cms.ContentInfo.load(ber)["content"]["version"].native == "v3"  # asn1crypto: fine
    _parse_fails(ber, "does not parse")


def test_unsorted_signed_attributes_are_refused(ec_tsa):
    # SPEC: RFC 5652 §5.3: signedAttrs MUST be DER, so its SET OF is sorted.
    der = ec_tsa.timestamp(SIG)
    token = TimestampToken.from_der(der)
    attrs = cms.CMSAttributes.load(token.signed_attrs_der)
    children = [attr.dump() for attr in attrs]
    header = token.signed_attrs_der[:len(token.signed_attrs_der) - len(b"".join(children))]
    received = b"\xa0" + token.signed_attrs_der[1:]
    reordered = b"\xa0" + header[1:] + b"".join(reversed(children))
    assert received in der and reordered != received
    ber = der.replace(received, reordered)
    assert len(cms.ContentInfo.load(ber)["content"]["signer_infos"][0]["signed_attrs"]) == 4
    _parse_fails(ber, "does not parse")


@pytest.mark.parametrize("ordering, refused", [(False, True), (True, False)])
def test_explicitly_encoded_default_is_refused(ec_tsa, ordering, refused):
    # TSTInfo.ordering is BOOLEAN DEFAULT FALSE: DER omits FALSE (X.690 §11.5).
    der = ec_tsa.timestamp(SIG)
    tst = tsp.TSTInfo.load(_tst_info_der(der))
    parts = [tst[name].dump() for name in ("version", "policy", "message_imprint",
                                            "serial_number", "gen_time", "accuracy")]
    parts.append(core.Boolean(ordering).dump())
    parts.extend(tst[name].dump() for name in ("nonce", "tsa", "extensions"))
    tst_der = core.Sequence(contents=b"".join(parts)).dump()
    assert tsp.TSTInfo.load(tst_der).native["ordering"] is ordering  # asn1crypto: fine
    token = _with_econtent(der, core.OctetString(tst_der).dump())
    if refused:
        _parse_fails(token, "does not parse")
    else:  # the control: the same construction with a non-default value parses
        assert TimestampToken.from_der(token).gen_time == DEFAULT_GEN_TIME


def _constructed_octet_string(content: bytes) -> bytes:
    """BER: an OCTET STRING as a constructed string of one primitive segment."""
    return parser.emit(0, 1, 4, core.OctetString(content).dump())


def test_constructed_econtent_is_refused(ec_tsa):
    der = ec_tsa.timestamp(SIG)
    token = _with_econtent(der, _constructed_octet_string(_tst_info_der(der)))
    _parse_fails(token, "TSTInfo is not a primitive OCTET STRING")


def test_trailing_bytes_are_refused(ec_tsa):
    response = ec_tsa.response(SIG)
    TimestampToken.from_der(response)
    _parse_fails(response + b"\x00", "does not parse")
    # ... and inside the eContent, after the TSTInfo.
    der = ec_tsa.timestamp(SIG)
    token = _with_econtent(der, core.OctetString(_tst_info_der(der) + b"\x00").dump())
    assert tsp.TSTInfo.load(_tst_info_der(token)[:-1]).native["version"] == "v1"
    _parse_fails(token, "does not parse")


# -- TimeStampResp unwrapping -----------------------------------------------------------------

def test_granted_response_without_token(ec_tsa):
    status = tsp.PKIStatusInfo({"status": "granted"}).dump()
    _parse_fails(core.Sequence(contents=status).dump(), "carries no token")
    _parse_fails(core.Sequence(contents=status + core.Null().dump()).dump(), "carries no token")


def test_refused_response_is_not_a_token(ec_tsa):
    err = _parse_fails(ec_tsa.response(SIG, status="waiting"), "status is not granted")
    assert err.actual == "waiting"


# -- the TSA client ---------------------------------------------------------------------------

def _asn1crypto_request(data: bytes, nonce: int, hash_name: str) -> bytes:
    """The request as the previous implementation built it (with asn1crypto)."""
    return tsp.TimeStampReq({
        "version": "v1",
        "message_imprint": {"hash_algorithm": {"algorithm": hash_name,
                                               "parameters": core.Null()},
                            "hashed_message": hashlib.new(hash_name, data).digest()},
        "nonce": nonce,
        "cert_req": True,
    }).dump()


@pytest.mark.parametrize("hash_name", ["sha256", "sha384", "sha512"])
@pytest.mark.parametrize("nonce", [1, 424242, 2**63 - 1])
def test_request_bytes_are_unchanged(hash_name, nonce):
    assert build_request(b"sig", nonce, hash_name) == _asn1crypto_request(b"sig", nonce, hash_name)


def _reply(status: dict, extra: bytes = b"") -> bytes:
    return core.Sequence(contents=tsp.PKIStatusInfo(status).dump() + extra).dump()


def test_reply_refusal_with_failure_bits():
    der = _reply({"status": "rejection", "fail_info": {"bad_alg", "system_failure"}})
    with pytest.raises(TimestampInvalidError) as info:
        check_reply(der, b"sig", 1)
    assert info.value.message.endswith("refused to timestamp: rejection; "
                                       "failure: bad_alg, system_failure")
    assert info.value.actual == "rejection"


def test_reply_refusal_with_malformed_status_string():
    # statusString holding an INTEGER instead of UTF8Strings: the status alone is reported.
    status = core.Integer(2).dump() + core.Sequence(contents=core.Integer(7).dump()).dump()
    der = core.Sequence(contents=core.Sequence(contents=status).dump()).dump()
    with pytest.raises(TimestampInvalidError) as info:
        check_reply(der, b"sig", 1)
    assert info.value.message == "the TSA refused to timestamp: rejection"


def test_reply_granted_with_mods_is_accepted(ec_tsa):
    der = ec_tsa.response(b"sig", nonce=3, status="granted_with_mods")
    reply = check_reply(der, b"sig", 3)
    assert reply.nonce == 3 and reply.hash_algorithm == "sha256"


def test_reply_that_is_a_bare_token_is_refused(ec_tsa):
    with pytest.raises(TimestampInvalidError, match="not a valid TimeStampResp"):
        check_reply(ec_tsa.timestamp(b"sig", nonce=3), b"sig", 3)
    assert check_reply(ec_tsa.response(b"sig", nonce=3), b"sig", 3).nonce == 3  # control


def test_reply_with_extra_elements_or_trailing_bytes_is_refused(ec_tsa):
    good = ec_tsa.response(b"sig", nonce=3)
    with pytest.raises(TimestampInvalidError, match="not a valid TimeStampResp"):
        check_reply(good + b"\x00", b"sig", 3)
    resp = tsp.TimeStampResp.load(good)
    three = core.Sequence(contents=resp["status"].dump() + resp["time_stamp_token"].dump()
                          + core.Null().dump()).dump()
    with pytest.raises(TimestampInvalidError, match="not a valid TimeStampResp"):
        check_reply(three, b"sig", 3)


def test_reply_with_constructed_econtent_is_refused(ec_tsa):
    der = ec_tsa.timestamp(b"sig", nonce=3)
    assert check_reply(_granted(der), b"sig", 3).nonce == 3  # the control
    token = _with_econtent(der, _constructed_octet_string(_tst_info_der(der)))
    with pytest.raises(TimestampInvalidError, match="token content is not a TSTInfo"):
        check_reply(_granted(token), b"sig", 3)
