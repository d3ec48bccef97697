"""RFC 3161 timestamp tokens: parsing (models.rfc3161) and verification (verify._timestamp)."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import rfc3161_client
from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail.errors import TimestampInvalidError
from sealtrail.models.rfc3161 import MAX_TOKEN_BYTES, TST_INFO_OID, TimestampToken
from sealtrail.models.trusted_root import TrustedRoot, ValidityWindow
from sealtrail.verify._timestamp import MAX_TIMESTAMPS, verify_timestamp, verify_timestamps
from tests.fakes.tsa import DEFAULT_GEN_TIME, SIGSTORE_TSA_POLICY, FakeTSA

SIG = b"the signature bytes of a bundle"
CONFORMANCE = Path(__file__).resolve().parents[2] / "vectors" / "conformance"
UTC = timezone.utc


# -- fixtures ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ec_response(ec_tsa: FakeTSA) -> bytes:
    return ec_tsa.response(SIG, embed_certs=True, nonce=5)


@pytest.fixture(scope="module")
def other_tsa() -> FakeTSA:
    return FakeTSA(name="other-tsa", root_name="other-root")


def _verify(tsa: FakeTSA, der: bytes, signature: bytes = SIG, authorities=None) -> datetime:
    token = TimestampToken.from_der(der)
    return verify_timestamp(token, signature, authorities or [tsa.to_authority()])


def _fails(tsa: FakeTSA, der: bytes, fragment: str, *, signature: bytes = SIG,
           authorities=None) -> TimestampInvalidError:
    with pytest.raises(TimestampInvalidError) as info:
        _verify(tsa, der, signature, authorities)
    assert fragment in info.value.message
    assert info.value.code == "TIMESTAMP_INVALID"
    return info.value


def _parse_fails(der: bytes, fragment: str) -> None:
    with pytest.raises(TimestampInvalidError) as info:
        TimestampToken.from_der(der)
    assert fragment in info.value.message
    assert "\n" not in info.value.message


def _signer_info(ci: cms.ContentInfo) -> cms.SignerInfo:
    return ci["content"]["signer_infos"][0]


# -- happy paths ------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["ec_tsa", "rsa_tsa"])
@pytest.mark.parametrize("embed", [False, True])
@pytest.mark.parametrize("as_response", [False, True])
def test_happy_path(request, which, embed, as_response):
    tsa: FakeTSA = request.getfixturevalue(which)
    issue = tsa.response if as_response else tsa.timestamp
    der = issue(SIG, embed_certs=embed, nonce=1234)
    token = TimestampToken.from_der(der)
    assert token.gen_time == DEFAULT_GEN_TIME and token.gen_time.tzinfo is not None
    assert token.hash_algorithm == "sha256"
    assert token.policy == SIGSTORE_TSA_POLICY
    assert token.nonce == 1234
    assert token.serial_number == 0x5EA17A11
    assert token.content_type == TST_INFO_OID
    assert token.digest_algorithm == "sha256"
    assert token.signer.matches(tsa.leaf) and not token.signer.matches(tsa.root)
    assert len(token.certificates) == (2 if embed else 0)
    assert token.signed_attrs_der is not None and token.signed_attrs_der[0] == 0x31  # SET OF
    assert verify_timestamp(token, SIG, [tsa.to_authority()]) == DEFAULT_GEN_TIME


@pytest.mark.parametrize("kwargs", [
    {"signature_scheme": "pss"},
    {"signature_scheme": "sha_rsa", "digest_name": "sha384"},
    {"signature_scheme": "pkcs1", "digest_name": "sha512", "hash_name": "sha512"},
])
def test_rsa_variants(rsa_tsa, kwargs):
    assert _verify(rsa_tsa, rsa_tsa.timestamp(SIG, **kwargs)) == DEFAULT_GEN_TIME


@pytest.mark.parametrize("hash_name", ["sha384", "sha512"])
def test_other_imprint_hashes(ec_tsa, hash_name):
    token = TimestampToken.from_der(ec_tsa.timestamp(SIG, hash_name=hash_name))
    assert token.hash_algorithm == hash_name
    assert verify_timestamp(token, SIG, [ec_tsa.to_authority()]) == DEFAULT_GEN_TIME


def test_subject_key_identifier_sid(ec_tsa, other_tsa):
    der = ec_tsa.timestamp(SIG, sid="ski")
    token = TimestampToken.from_der(der)
    assert token.signer.subject_key_identifier is not None
    assert _verify(ec_tsa, der) == DEFAULT_GEN_TIME
    _fails(ec_tsa, other_tsa.timestamp(SIG, sid="ski"), "not issued by a trusted TSA")


def test_chain_with_intermediate():
    tsa = FakeTSA(intermediate=True)
    assert len(tsa.chain) == 3
    assert _verify(tsa, tsa.timestamp(SIG, embed_certs=True)) == DEFAULT_GEN_TIME


def test_tries_every_authority(ec_tsa, other_tsa):
    authorities = [other_tsa.to_authority(), ec_tsa.to_authority()]
    assert _verify(ec_tsa, ec_tsa.timestamp(SIG), authorities=authorities) == DEFAULT_GEN_TIME


def test_trusted_root_json_entry_round_trips(ec_tsa):
    root = TrustedRoot.from_dict({
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "timestampAuthorities": [ec_tsa.trusted_root_json_entry()],
    })
    (authority,) = root.timestamp_authorities
    assert authority.chain == ec_tsa.chain
    token = TimestampToken.from_der(ec_tsa.response(SIG))
    assert verify_timestamp(token, SIG, root.timestamp_authorities) == DEFAULT_GEN_TIME


@pytest.mark.parametrize("kwargs", [
    {"key_type": "ec"},
    {"key_type": "rsa"},
    {"key_type": "ec", "intermediate": True},
])
def test_interop_with_rfc3161_client(kwargs):
    """The independent oracle (sigstore-python's verifier) accepts our FakeTSA tokens."""
    tsa = FakeTSA(**kwargs)
    for embed in (False, True):
        der = tsa.response(SIG, embed_certs=embed, nonce=99)
        response = rfc3161_client.decode_timestamp_response(der)
        builder = rfc3161_client.VerifierBuilder(
            tsa_certificate=tsa.leaf, roots=[tsa.root],
            intermediates=[tsa.intermediate] if tsa.intermediate else None)
        assert builder.build().verify_message(response, SIG)
        assert response.tst_info.gen_time == DEFAULT_GEN_TIME
        assert _verify(tsa, der) == DEFAULT_GEN_TIME
        # ... and both reject a timestamp over other bytes.
        with pytest.raises(rfc3161_client.VerificationError):
            builder.build().verify_message(response, SIG + b"x")


# -- check 1: message imprint -----------------------------------------------------------

def test_imprint_mismatch(ec_tsa):
    _fails(ec_tsa, ec_tsa.timestamp(SIG, wrong_imprint=True), "message imprint")
    _fails(ec_tsa, ec_tsa.timestamp(SIG), "message imprint", signature=SIG + b"!")


# -- check 2: signer is a trusted TSA leaf ----------------------------------------------

def test_untrusted_tsa(ec_tsa, other_tsa):
    err = _fails(ec_tsa, other_tsa.timestamp(SIG, embed_certs=True), "not issued by a trusted TSA")
    assert "other-root" in str(err.actual)
    # Embedded certificates are not trust anchors: the full embedded chain does not help.
    _fails(ec_tsa, other_tsa.response(SIG, embed_certs=True), "not issued by a trusted TSA")


def test_no_authorities(ec_tsa):
    token = TimestampToken.from_der(ec_tsa.timestamp(SIG))
    with pytest.raises(TimestampInvalidError, match="not issued by a trusted TSA"):
        verify_timestamp(token, SIG, [])


def test_embedded_signer_cert_must_be_the_trusted_one(ec_tsa):
    # A twin leaf: same issuer name and serial as the trusted leaf, another key.
    twin = FakeTSA(name=ec_tsa.name, root_name="fake-tsa-root",
                   leaf_serial=ec_tsa.leaf.serial_number)
    assert twin.leaf.issuer == ec_tsa.leaf.issuer and twin.leaf != ec_tsa.leaf
    der = ec_tsa.timestamp(SIG, embed_certs=[twin.leaf])
    _fails(ec_tsa, der, "embedded signer certificate differs")
    # Embedding the real leaf is fine.
    assert _verify(ec_tsa, ec_tsa.timestamp(SIG, embed_certs=[ec_tsa.leaf])) == DEFAULT_GEN_TIME


def test_sid_match_alone_is_not_enough(ec_tsa):
    # The twin signs but names the trusted leaf in sid: the CMS signature check catches it.
    twin = FakeTSA(name=ec_tsa.name, leaf_serial=ec_tsa.leaf.serial_number)
    der = ec_tsa.timestamp(SIG, signer_key=twin.key)
    _fails(ec_tsa, der, "signature does not verify")


# -- check 3: the trusted chain ---------------------------------------------------------

def test_chain_incomplete(ec_tsa):
    authority = ec_tsa.to_authority(chain=[ec_tsa.leaf])
    _fails(ec_tsa, ec_tsa.timestamp(SIG), "chain in the trusted root is incomplete",
           authorities=[authority])


def test_chain_signature_broken(ec_tsa):
    twin_root = FakeTSA(root_name="fake-tsa-root").root  # same name, other key
    authority = ec_tsa.to_authority(chain=[ec_tsa.leaf, twin_root])
    _fails(ec_tsa, ec_tsa.timestamp(SIG), "[0] is not signed by certificate [1]",
           authorities=[authority])


def test_chain_issuer_not_ca():
    tsa = FakeTSA(root_is_ca=False)
    _fails(tsa, tsa.timestamp(SIG), "[1] is not a CA")


def test_chain_issuer_without_key_cert_sign():
    tsa = FakeTSA(root_key_cert_sign=False)
    _fails(tsa, tsa.timestamp(SIG), "[1] key usage does not allow certificate signing")


def test_chain_intermediate_eku_excludes_timestamping():
    tsa = FakeTSA(intermediate=True, intermediate_eku=[ExtendedKeyUsageOID.CODE_SIGNING])
    _fails(tsa, tsa.timestamp(SIG), "[1] extended key usage excludes timeStamping")
    tsa = FakeTSA(intermediate=True, intermediate_eku=[ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE])
    assert _verify(tsa, tsa.timestamp(SIG)) == DEFAULT_GEN_TIME


def test_chain_empty(ec_tsa):
    authority = ec_tsa.to_authority(chain=[])
    _fails(ec_tsa, ec_tsa.timestamp(SIG), "chain in the trusted root is empty",
           authorities=[authority])


def test_gen_time_outside_leaf_validity():
    tsa = FakeTSA(leaf_not_after=datetime(2025, 1, 1, tzinfo=UTC))
    _fails(tsa, tsa.timestamp(SIG), "certificate [0] is not valid at genTime")
    tsa = FakeTSA(leaf_not_before=datetime(2025, 7, 1, tzinfo=UTC))
    _fails(tsa, tsa.timestamp(SIG), "certificate [0] is not valid at genTime")


def test_gen_time_outside_root_validity():
    tsa = FakeTSA(root_not_after=datetime(2025, 3, 1, tzinfo=UTC))
    _fails(tsa, tsa.timestamp(SIG), "certificate [1] is not valid at genTime")


def test_chosen_gen_time(ec_tsa):
    when = datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert _verify(ec_tsa, ec_tsa.timestamp(SIG, gen_time=when)) == when
    _fails(ec_tsa, ec_tsa.timestamp(SIG, gen_time=datetime(2031, 1, 1, tzinfo=UTC)),
           "is not valid at genTime")


# -- check 4: leaf profile --------------------------------------------------------------

def test_eku_not_critical():
    tsa = FakeTSA(eku_critical=False)
    _fails(tsa, tsa.timestamp(SIG), "extended key usage is not critical")


def test_eku_not_exactly_timestamping():
    tsa = FakeTSA(eku=[ExtendedKeyUsageOID.TIME_STAMPING, ExtendedKeyUsageOID.CODE_SIGNING])
    _fails(tsa, tsa.timestamp(SIG), "not exactly timeStamping")
    tsa = FakeTSA(eku=[ExtendedKeyUsageOID.CODE_SIGNING])
    _fails(tsa, tsa.timestamp(SIG), "not exactly timeStamping")


def test_eku_missing():
    tsa = FakeTSA(eku=None)
    _fails(tsa, tsa.timestamp(SIG), "has no extended key usage")


def test_key_usage_without_digital_signature():
    tsa = FakeTSA(key_usage_digital_signature=False)
    _fails(tsa, tsa.timestamp(SIG), "lacks digitalSignature")
    tsa = FakeTSA(key_usage_digital_signature=None)  # absent key usage is allowed
    assert _verify(tsa, tsa.timestamp(SIG)) == DEFAULT_GEN_TIME


# -- check 5: trusted-root validity window ----------------------------------------------

def test_authority_validity_window(ec_tsa):
    der = ec_tsa.timestamp(SIG)
    later = ValidityWindow(DEFAULT_GEN_TIME + timedelta(seconds=1))
    _fails(ec_tsa, der, "outside the TSA's validity", authorities=[ec_tsa.to_authority(later)])
    ended = ValidityWindow(DEFAULT_GEN_TIME - timedelta(days=1),
                           DEFAULT_GEN_TIME - timedelta(seconds=1))
    _fails(ec_tsa, der, "outside the TSA's validity", authorities=[ec_tsa.to_authority(ended)])
    # The end is inclusive.
    edge = ValidityWindow(DEFAULT_GEN_TIME - timedelta(days=1), DEFAULT_GEN_TIME)
    assert _verify(ec_tsa, der, authorities=[ec_tsa.to_authority(edge)]) == DEFAULT_GEN_TIME


# -- check 6: CMS -----------------------------------------------------------------------

def test_no_signed_attributes(ec_tsa):
    _fails(ec_tsa, ec_tsa.timestamp(SIG, signed_attrs=False), "no signed attributes")


def test_content_type_attribute(ec_tsa):
    _fails(ec_tsa, ec_tsa.timestamp(SIG, content_type_attr="data"),
           "contentType attribute is not id-ct-TSTInfo")


def test_message_digest_attribute(ec_tsa):
    _fails(ec_tsa, ec_tsa.timestamp(SIG, wrong_message_digest=True), "messageDigest attribute")


def test_message_digest_attribute_missing(ec_tsa):
    def drop(ci):
        attrs = _signer_info(ci)["signed_attrs"]
        _signer_info(ci)["signed_attrs"] = cms.CMSAttributes(
            [a for a in attrs if a["type"].native != "message_digest"])
    _fails(ec_tsa, ec_tsa.timestamp(SIG, mutate=drop), "no messageDigest attribute")


def test_tampered_tst_info_breaks_message_digest(ec_tsa):
    # Another serial number in the TSTInfo, signed attributes left as they were.
    original = TimestampToken.from_der(ec_tsa.timestamp(SIG))
    der = ec_tsa.timestamp(SIG, serial_number=7, mutate=lambda ci: _signer_info(ci).__setitem__(
        "signed_attrs", cms.CMSAttributes.load(original.signed_attrs_der).retag({"implicit": 0})))
    _fails(ec_tsa, der, "messageDigest attribute does not match")


@pytest.mark.parametrize("which", ["ec_tsa", "rsa_tsa"])
def test_bad_signature(request, which):
    tsa = request.getfixturevalue(which)
    _fails(tsa, tsa.timestamp(SIG, bad_signature=True), "signature does not verify")


def test_bad_pss_signature(rsa_tsa):
    _fails(rsa_tsa, rsa_tsa.timestamp(SIG, signature_scheme="pss", bad_signature=True),
           "signature does not verify")


def test_signature_hash_differs_from_digest_algorithm(ec_tsa):
    def sha384(ci):
        _signer_info(ci)["signature_algorithm"] = {"algorithm": "sha384_ecdsa"}
    _fails(ec_tsa, ec_tsa.timestamp(SIG, mutate=sha384), "differs from the SignerInfo digest")


def test_signature_algorithm_does_not_match_key(ec_tsa):
    def rsa(ci):
        _signer_info(ci)["signature_algorithm"] = {"algorithm": "sha256_rsa"}
    _fails(ec_tsa, ec_tsa.timestamp(SIG, mutate=rsa), "does not match the TSA key")


def test_most_specific_error_wins(ec_tsa, other_tsa):
    authorities = [other_tsa.to_authority(), ec_tsa.to_authority()]
    _fails(ec_tsa, ec_tsa.timestamp(SIG, bad_signature=True), "signature does not verify",
           authorities=authorities)


# -- verify_timestamps ------------------------------------------------------------------

def test_verify_timestamps(ec_tsa, other_tsa):
    t1 = datetime(2025, 6, 1, tzinfo=UTC)
    t2 = datetime(2025, 6, 2, tzinfo=UTC)
    ders = [ec_tsa.response(SIG, gen_time=t1), ec_tsa.timestamp(SIG, gen_time=t2)]
    assert verify_timestamps(ders, SIG, [ec_tsa.to_authority()]) == [t1, t2]
    assert verify_timestamps([], SIG, [ec_tsa.to_authority()]) == []
    # A bad timestamp is a failure, not ignored.
    with pytest.raises(TimestampInvalidError, match=r"\[1\]: timestamp was not issued"):
        verify_timestamps([ders[0], other_tsa.timestamp(SIG)], SIG, [ec_tsa.to_authority()])
    with pytest.raises(TimestampInvalidError, match=r"\[0\]: timestamp token does not parse"):
        verify_timestamps([b"\x30\x03\x02\x01"], SIG, [ec_tsa.to_authority()])


def test_verify_timestamps_bounds(ec_tsa):
    der = ec_tsa.timestamp(SIG)
    with pytest.raises(TimestampInvalidError, match="duplicate"):
        verify_timestamps([der, der], SIG, [ec_tsa.to_authority()])
    many = [ec_tsa.timestamp(SIG, serial_number=i) for i in range(MAX_TIMESTAMPS + 1)]
    with pytest.raises(TimestampInvalidError, match="too many"):
        verify_timestamps(many, SIG, [ec_tsa.to_authority()])
    assert len(verify_timestamps(many[:MAX_TIMESTAMPS], SIG, [ec_tsa.to_authority()])) == 32


# -- parsing ----------------------------------------------------------------------------

@pytest.mark.parametrize("der", [b"", b"\x00", b"garbage", b"\x30\x00", b"\x30\x80\x00\x00",
                                 b"\x04\x03abc", bytes(100)])
def test_garbage(der):
    with pytest.raises(TimestampInvalidError):
        TimestampToken.from_der(der)


def test_not_bytes():
    _parse_fails("MIIB", "must be bytes")  # type: ignore[arg-type]


def test_truncated_and_trailing(ec_tsa):
    der = ec_tsa.timestamp(SIG, embed_certs=True)
    for cut in (1, 10, len(der) // 2, len(der) - 1):
        _parse_fails(der[:cut], "does not parse")
    _parse_fails(der + b"\x00", "does not parse")


def test_oversized():
    _parse_fails(bytes(MAX_TOKEN_BYTES + 1), "too large")


def test_not_signed_data():
    der = cms.ContentInfo({"content_type": "data", "content": b"hello"}).dump()
    _parse_fails(der, "not CMS SignedData")


def test_not_tst_info(ec_tsa):
    _parse_fails(ec_tsa.timestamp(SIG, e_content_type="data"), "does not encapsulate a TSTInfo")


def test_two_signer_infos(ec_tsa):
    _parse_fails(ec_tsa.timestamp(SIG, extra_signer_info=True), "exactly one SignerInfo")


def test_tst_info_version(ec_tsa):
    _parse_fails(ec_tsa.timestamp(SIG, tst_version=2), "version is not 1")


def test_sha1_imprint_rejected(ec_tsa):
    _parse_fails(ec_tsa.timestamp(SIG, hash_name="sha1"), "unsupported message imprint hash")


def test_sha1_digest_algorithm_rejected(ec_tsa):
    def sha1(ci):
        _signer_info(ci)["digest_algorithm"] = {"algorithm": "sha1"}
    _parse_fails(ec_tsa.timestamp(SIG, mutate=sha1), "unsupported SignerInfo digest algorithm")


def test_unsupported_signature_algorithm(ec_tsa):
    def ed25519(ci):
        _signer_info(ci)["signature_algorithm"] = {"algorithm": "ed25519"}
    _parse_fails(ec_tsa.timestamp(SIG, mutate=ed25519), "unsupported SignerInfo signature")


def test_pss_with_mismatched_mgf(rsa_tsa):
    def mgf(ci):
        alg = _signer_info(ci)["signature_algorithm"]
        alg["parameters"]["mask_gen_algorithm"] = {"algorithm": "mgf1",
                                                   "parameters": {"algorithm": "sha512"}}
    _parse_fails(rsa_tsa.timestamp(SIG, signature_scheme="pss", mutate=mgf), "MGF1")


def test_local_gen_time_rejected(ec_tsa):
    def local(tst):
        # A GeneralizedTime without "Z" (a local time), which RFC 3161 forbids.
        raw = core.VisibleString("20250601120000", implicit=("universal", 24)).dump()
        tst["gen_time"] = core.GeneralizedTime.load(raw)
    _parse_fails(ec_tsa.timestamp(SIG, mutate_tst=local), "not a UTC time")


def test_duplicate_signed_attribute(ec_tsa):
    def dup(ci):
        attrs = list(_signer_info(ci)["signed_attrs"])
        attrs.append(cms.CMSAttribute({"type": "content_type", "values": ["data"]}))
        _signer_info(ci)["signed_attrs"] = cms.CMSAttributes(attrs)
    _parse_fails(ec_tsa.timestamp(SIG, mutate=dup), "duplicate signed attribute")


def test_multi_valued_message_digest(ec_tsa):
    def two(ci):
        for attr in _signer_info(ci)["signed_attrs"]:
            if attr["type"].native == "message_digest":
                attr["values"] = [b"\x00" * 32, b"\x01" * 32]
    _parse_fails(ec_tsa.timestamp(SIG, mutate=two), "exactly one value")


def test_signed_data_version(ec_tsa):
    def v1(ci):
        ci["content"]["version"] = "v1"
    _parse_fails(ec_tsa.timestamp(SIG, mutate=v1), "SignedData version is not 3")


def test_digest_algorithm_not_listed(ec_tsa):
    def other(ci):
        ci["content"]["digest_algorithms"] = [{"algorithm": "sha512"}]
    _parse_fails(ec_tsa.timestamp(SIG, mutate=other), "not listed in SignedData digestAlgorithms")


class _LooseAlgorithm(core.Sequence):
    """An AlgorithmIdentifier whose parameters are an OCTET STRING (not NULL)."""

    _fields = [("algorithm", core.ObjectIdentifier), ("parameters", core.OctetString)]


def test_digest_algorithm_parameters(ec_tsa):
    # SHA-2 AlgorithmIdentifiers carry NULL or no parameters; swap in an OCTET STRING.
    good = algos.DigestAlgorithm({"algorithm": "sha256", "parameters": core.Null()}).dump()
    bad = _LooseAlgorithm({"algorithm": "2.16.840.1.101.3.4.2.1", "parameters": b""}).dump()
    der = ec_tsa.timestamp(SIG)
    assert good in der and len(good) == len(bad)
    with pytest.raises(TimestampInvalidError):
        TimestampToken.from_der(der.replace(good, bad))


def test_embedded_cert_with_non_positive_serial(ec_tsa):
    def negative(ci):
        cert = asn1_x509.Certificate.load(ec_tsa.root.public_bytes(Encoding.DER))
        cert["tbs_certificate"]["serial_number"] = -5
        ci["content"]["certificates"] = [cert]
    _parse_fails(ec_tsa.timestamp(SIG, mutate=negative), "non-positive serial")


def test_too_many_embedded_certs(ec_tsa):
    _parse_fails(ec_tsa.timestamp(SIG, embed_certs=[ec_tsa.root] * 17), "too many certificates")


def test_response_status_not_granted(ec_tsa):
    _parse_fails(ec_tsa.response(SIG, status="rejection"), "status is not granted")
    _parse_fails(ec_tsa.response(SIG, status="granted_with_mods"), "status is not granted")


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_mutations_never_escape(ec_tsa, ec_response, data):
    """Random byte edits of a valid token parse and verify or raise TimestampInvalidError."""
    der = bytearray(ec_response)
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(der) - 1))
        der[pos] = data.draw(st.integers(0, 255))
    try:
        token = TimestampToken.from_der(bytes(der))
        verify_timestamp(token, SIG, [ec_tsa.to_authority()])
    except TimestampInvalidError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_escape(der):
    try:
        TimestampToken.from_der(der)
    except TimestampInvalidError:
        pass


# -- real data --------------------------------------------------------------------------

def _real_case(name: str):
    base = CONFORMANCE / name
    bundle = json.loads((base / "bundle.sigstore.json").read_text())
    root = TrustedRoot.from_json((base / "trusted_root.json").read_text())
    tokens = [base64.b64decode(t["signedTimestamp"]) for t in
              bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]]
    if "messageSignature" in bundle:
        signature = base64.b64decode(bundle["messageSignature"]["signature"])
    else:
        signature = base64.b64decode(bundle["dsseEnvelope"]["signatures"][0]["sig"])
    return tokens, signature, root


@pytest.mark.parametrize("name, gen_time, n_certs", [
    ("rekor2-happy-path", datetime(2025, 6, 12, 12, 2, 20, tzinfo=UTC), 1),
    ("rekor2-timestamp-with-embedded-cert", datetime(2025, 8, 6, 18, 51, 36, tzinfo=UTC), 1),
    ("rekor2-dsse-happy-path", datetime(2026, 5, 13, 19, 23, 33, tzinfo=UTC), 0),
])
def test_real_tokens_verify(name, gen_time, n_certs):
    tokens, signature, root = _real_case(name)
    token = TimestampToken.from_der(tokens[0])
    assert token.gen_time == gen_time
    assert token.policy == SIGSTORE_TSA_POLICY
    assert len(token.certificates) == n_certs
    assert verify_timestamp(token, signature, root.timestamp_authorities) == gen_time
    assert verify_timestamps(tokens, signature, root.timestamp_authorities) == [gen_time]
    # The same token over other signature bytes must fail.
    with pytest.raises(TimestampInvalidError, match="message imprint"):
        verify_timestamp(token, signature + b"\x00", root.timestamp_authorities)


def test_real_untrusted_tsa_fails():
    tokens, signature, root = _real_case("rekor2-timestamp-untrusted-tsa-with-embedded-cert_fail")
    token = TimestampToken.from_der(tokens[0])
    assert len(token.certificates) == 2 and token.signature_family == "rsa-pkcs1"
    assert token.digest_algorithm == "sha512"
    with pytest.raises(TimestampInvalidError, match="not issued by a trusted TSA"):
        verify_timestamp(token, signature, root.timestamp_authorities)
    with pytest.raises(TimestampInvalidError):
        verify_timestamps(tokens, signature, root.timestamp_authorities)


def test_memoised_certificates_and_names_are_per_exact_bytes(ec_tsa, ec_response):
    # The parse memo (one TSA, many tokens) is keyed by the exact DER: a good token parsed
    # first does not let a later token with a broken certificate or name through.
    from sealtrail.models import rfc3161

    first = TimestampToken.from_der(ec_response)
    again = TimestampToken.from_der(ec_response)
    assert first.certificates == again.certificates and first.certificates
    assert again.certificates[0] is first.certificates[0]  # served from the memo
    assert first.signer.issuer_der in rfc3161._CHECKED_NAMES

    def negative(ci):
        cert = asn1_x509.Certificate.load(ec_tsa.leaf.public_bytes(Encoding.DER))
        cert["tbs_certificate"]["serial_number"] = -5
        ci["content"]["certificates"] = [cert]
    _parse_fails(ec_tsa.timestamp(SIG, mutate=negative), "non-positive serial")

    # The same issuer name with its first RDN's SET tag turned into an OCTET STRING: the
    # same length, never seen (so never remembered) -- forcing it must fail.
    der = ec_tsa.timestamp(SIG)
    issuer_der = first.signer.issuer_der
    assert issuer_der[0] == 0x30 and issuer_der[1] < 0x80 and issuer_der[2] == 0x31
    broken = issuer_der[:2] + b"\x04" + issuer_der[3:]
    assert issuer_der in der
    with pytest.raises(TimestampInvalidError):
        TimestampToken.from_der(der.replace(issuer_der, broken))


def test_parse_memo_is_bounded():
    from sealtrail.models import rfc3161

    for i in range(rfc3161._MEMO_LIMIT + 3):
        rfc3161._CHECKED_NAMES.put(b"name%d" % i, True)
    assert len(rfc3161._CHECKED_NAMES) <= rfc3161._MEMO_LIMIT
    rfc3161._CHECKED_NAMES.clear()
