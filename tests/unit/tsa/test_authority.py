"""sealtrail.tsa.authority: request rules, and tokens that real verifiers accept.

Oracles: rfc3161-client (what sigstore-python verifies with), our own verifier
(sealtrail.verify._timestamp) and, when installed, ``openssl ts -verify``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms, core, tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rfc3161_client import (
    HashAlgorithm,
    TimestampRequestBuilder,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

from sealtrail.errors import (
    ConfigInvalidError,
    KeyMalformedError,
    TimestampInvalidError,
    TimestampRequestInvalidError,
)
from sealtrail.models.rfc3161 import TimestampToken
from sealtrail.models.trusted_root import CertificateAuthority, ValidityWindow
from sealtrail.tsa.authority import (
    MAX_REQUEST_BYTES,
    SIGSTORE_TSA_POLICY,
    TimestampAuthority,
    TimestampRequest,
)
from sealtrail.tsa.keys import TSAMaterial, create_tsa
from sealtrail.verify._timestamp import verify_timestamp

E = TimestampRequestInvalidError
CREATED = datetime(2026, 1, 1, tzinfo=timezone.utc)
NOW = datetime(2026, 6, 1, 12, 30, 15, tzinfo=timezone.utc)
SIGNATURE = b"the signature bytes that a Sigstore client timestamps"


@pytest.fixture(scope="module")
def material() -> TSAMaterial:
    return create_tsa("sealtrail-test", "test TSA", now=CREATED)


@pytest.fixture(scope="module")
def material384() -> TSAMaterial:
    return create_tsa("sealtrail-test", "test TSA 384", leaf_curve="P-384", now=CREATED)


def _authority(material: TSAMaterial, when: datetime = NOW, **kwargs: Any) -> TimestampAuthority:
    # A fractional clock: genTime must come out floored to whole seconds.
    return TimestampAuthority(material.leaf_key, material.chain,
                              clock=lambda: when.timestamp() + 0.75, **kwargs)


@pytest.fixture(scope="module")
def tsa(material: TSAMaterial) -> TimestampAuthority:
    return _authority(material)


def _trusted(material: TSAMaterial) -> list[CertificateAuthority]:
    return [CertificateAuthority("https://tsa.test/api/v1/timestamp", material.chain,
                                 ValidityWindow(CREATED - timedelta(days=1)))]


def _oracle_request(data: bytes = SIGNATURE, *, algorithm: HashAlgorithm = HashAlgorithm.SHA256,
                    nonce: bool = True, cert_req: bool = True) -> Any:
    return (TimestampRequestBuilder().data(data).hash_algorithm(algorithm)
            .nonce(nonce=nonce).cert_request(cert_request=cert_req).build())


def _der_request(*, hash_name: str = "sha256", digest: bytes | None = None,
                 version: int = 1, params: Any = None, **fields: Any) -> bytes:
    """A TimeStampReq built with asn1crypto, for shapes the oracle cannot produce."""
    if digest is None:
        digest = hashlib.new(hash_name if hash_name in hashlib.algorithms_available
                             else "sha256", SIGNATURE).digest()
    alg: dict[str, Any] = {"algorithm": hash_name}
    if params is not None:
        alg["parameters"] = params
    value: dict[str, Any] = {"version": version,
                             "message_imprint": {"hash_algorithm": alg,
                                                 "hashed_message": digest}}
    value.update(fields)
    return tsp.TimeStampReq(value).dump()


def _json_request(**overrides: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "artifactHash": base64.b64encode(hashlib.sha256(SIGNATURE).digest()).decode(),
        "hashAlgorithm": "sha256",
    }
    request.update(overrides)
    return {k: v for k, v in request.items() if v is not _DROP}


_DROP = object()


def _rfc3161_verify(material: TSAMaterial, reply: bytes, *, nonce: int | None = None,
                    policy: str | None = None) -> bool:
    builder = VerifierBuilder().tsa_certificate(material.leaf_cert) \
        .add_root_certificate(material.root_cert)
    if nonce is not None:
        builder = builder.nonce(nonce)
    if policy is not None:
        builder = builder.policy_id(x509.ObjectIdentifier(policy))
    return builder.build().verify_message(decode_timestamp_response(reply), SIGNATURE)


def _signed_data(reply: bytes) -> cms.SignedData:
    resp = tsp.TimeStampResp.load(reply)
    assert resp["status"]["status"].native == "granted"
    content_info = resp["time_stamp_token"]
    assert content_info["content_type"].native == "signed_data"
    return content_info["content"]


# == DER requests ==========================================================================

@pytest.mark.parametrize("nonce", [True, False])
@pytest.mark.parametrize("cert_req", [True, False])
def test_parses_what_rfc3161_client_sends(tsa: TimestampAuthority, nonce: bool,
                                          cert_req: bool) -> None:
    oracle = _oracle_request(nonce=nonce, cert_req=cert_req)
    request = tsa.parse_der_request(oracle.as_bytes())
    assert request.hash_algorithm == "sha256"
    assert request.hashed_message == hashlib.sha256(SIGNATURE).digest()
    assert request.nonce == (oracle.nonce if nonce else None)
    assert request.cert_req is cert_req
    assert request.policy is None


def test_parses_sha384_and_sha512_and_null_parameters(tsa: TimestampAuthority) -> None:
    for name in ("sha384", "sha512"):
        assert tsa.parse_der_request(_der_request(hash_name=name)).hash_algorithm == name
    request = tsa.parse_der_request(_der_request(params=core.Null()))
    assert request.hash_algorithm == "sha256"


def test_accepts_our_policy(tsa: TimestampAuthority) -> None:
    request = tsa.parse_der_request(_der_request(req_policy=SIGSTORE_TSA_POLICY))
    assert request.policy == SIGSTORE_TSA_POLICY


def test_refuses_sha1(tsa: TimestampAuthority) -> None:
    with pytest.raises(E, match="SHA-1") as info:
        tsa.parse_der_request(_der_request(hash_name="sha1"))
    assert info.value.code == "TIMESTAMP_REQUEST_INVALID"


@pytest.mark.parametrize("hash_name", ["md5", "sha224", "sha3_256", "1.2.3.4.5"])
def test_refuses_other_hashes(tsa: TimestampAuthority, hash_name: str) -> None:
    with pytest.raises(E, match="unsupported message imprint hash"):
        tsa.parse_der_request(_der_request(hash_name=hash_name, digest=b"\x00" * 32))


@pytest.mark.parametrize("hash_name,length", [("sha256", 31), ("sha256", 33), ("sha256", 48),
                                              ("sha384", 32), ("sha512", 48), ("sha256", 0)])
def test_refuses_wrong_digest_length(tsa: TimestampAuthority, hash_name: str,
                                     length: int) -> None:
    with pytest.raises(E, match="wrong length") as info:
        tsa.parse_der_request(_der_request(hash_name=hash_name, digest=b"\x01" * length))
    assert info.value.actual == length


class _LooseAlgorithm(core.Sequence):
    # asn1crypto's DigestAlgorithm insists on NULL parameters for SHA-2; this schema does not.
    _fields = [("algorithm", core.ObjectIdentifier), ("parameters", core.Any, {"optional": True})]


class _LooseImprint(core.Sequence):
    _fields = [("hash_algorithm", _LooseAlgorithm), ("hashed_message", core.OctetString)]


class _LooseRequest(core.Sequence):
    _fields = [("version", core.Integer), ("message_imprint", _LooseImprint)]


def test_refuses_hash_parameters(tsa: TimestampAuthority) -> None:
    der = _LooseRequest({"version": 1, "message_imprint": {
        "hash_algorithm": {"algorithm": "2.16.840.1.101.3.4.2.1",
                           "parameters": core.OctetString(b"x")},
        "hashed_message": hashlib.sha256(SIGNATURE).digest()}}).dump()
    with pytest.raises(E, match="unexpected parameters"):
        tsa.parse_der_request(der)
    without = _LooseRequest({"version": 1, "message_imprint": {
        "hash_algorithm": {"algorithm": "2.16.840.1.101.3.4.2.1"},
        "hashed_message": hashlib.sha256(SIGNATURE).digest()}}).dump()
    assert tsa.parse_der_request(without).hash_algorithm == "sha256"


def test_refuses_other_versions(tsa: TimestampAuthority) -> None:
    with pytest.raises(E, match="version is not 1"):
        tsa.parse_der_request(_der_request(version=2))


def test_refuses_extensions(tsa: TimestampAuthority) -> None:
    der = _der_request(extensions=[{"extn_id": "1.2.3.4", "critical": False,
                                    "extn_value": core.OctetString(b"x").dump()}])
    with pytest.raises(E, match="extensions are not supported"):
        tsa.parse_der_request(der)


def test_refuses_another_policy(tsa: TimestampAuthority) -> None:
    with pytest.raises(E, match="policy is not supported") as info:
        tsa.parse_der_request(_der_request(req_policy="1.2.3.4"))
    assert info.value.actual == "1.2.3.4"
    assert info.value.expected == SIGSTORE_TSA_POLICY


@pytest.mark.parametrize("nonce,match", [(-1, "negative"), (1 << 300, "too large")])
def test_refuses_bad_nonces(tsa: TimestampAuthority, nonce: int, match: str) -> None:
    with pytest.raises(E, match=match):
        tsa.parse_der_request(_der_request(nonce=nonce))


@pytest.mark.parametrize("der,match", [
    (b"", "empty"),
    (b"\x00" * (MAX_REQUEST_BYTES + 1), "too large"),
    (b"not DER at all", "not a DER TimeStampReq"),
    (core.Integer(5).dump(), "not a DER TimeStampReq"),
    (core.SequenceOf(spec=core.Integer, value=[]).dump(), "not a DER TimeStampReq"),
])
def test_refuses_bad_der(tsa: TimestampAuthority, der: bytes, match: str) -> None:
    with pytest.raises(E, match=match):
        tsa.parse_der_request(der)


def test_refuses_truncated_and_trailing_der(tsa: TimestampAuthority) -> None:
    good = _oracle_request().as_bytes()
    with pytest.raises(E, match="not a DER TimeStampReq"):
        tsa.parse_der_request(good[:-1])
    with pytest.raises(E, match="not a DER TimeStampReq"):
        tsa.parse_der_request(good + b"\x00")


def test_refuses_non_bytes(tsa: TimestampAuthority) -> None:
    with pytest.raises(E, match="must be bytes"):
        tsa.parse_der_request("30 00")  # type: ignore[arg-type]


def test_error_messages_are_one_line(tsa: TimestampAuthority) -> None:
    for der in (b"\x30\x03\x02\x01", _der_request(hash_name="sha1"), b"\xff" * 40):
        with pytest.raises(E) as info:
            tsa.parse_der_request(der)
        assert "\n" not in info.value.diagnostics()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=200))
def test_random_bytes_only_ever_raise_the_request_error(data: bytes) -> None:
    tsa = TimestampAuthority(_FUZZ.leaf_key, _FUZZ.chain)
    try:
        tsa.parse_der_request(data)
    except E:
        pass


@settings(max_examples=150, deadline=None)
@given(index=st.integers(min_value=0), value=st.integers(min_value=0, max_value=255))
def test_mutated_requests_only_ever_raise_the_request_error(index: int, value: int) -> None:
    tsa = TimestampAuthority(_FUZZ.leaf_key, _FUZZ.chain)
    good = bytearray(_FUZZ_REQUEST)
    good[index % len(good)] = value
    try:
        tsa.parse_der_request(bytes(good))
    except E:
        pass


_FUZZ = create_tsa("fuzz", "fuzz")
_FUZZ_REQUEST = _der_request(nonce=12345, cert_req=True, req_policy=SIGSTORE_TSA_POLICY)


# == JSON requests =========================================================================

def test_json_minimal_form(tsa: TimestampAuthority) -> None:
    request = tsa.parse_json_request(_json_request())
    assert request == TimestampRequest("sha256", hashlib.sha256(SIGNATURE).digest())


def test_json_full_form(tsa: TimestampAuthority) -> None:
    digest = hashlib.sha512(SIGNATURE).digest()
    request = tsa.parse_json_request(_json_request(
        artifactHash=base64.b64encode(digest).decode(), hashAlgorithm="SHA512",
        certificates=True, nonce=2**70, tsaPolicyOID=SIGSTORE_TSA_POLICY))
    assert request == TimestampRequest("sha512", digest, nonce=2**70, cert_req=True,
                                       policy=SIGSTORE_TSA_POLICY)


def test_json_zero_values_count_as_absent(tsa: TimestampAuthority) -> None:
    # What a Go client marshalling a zero-valued JSONRequest struct sends.
    request = tsa.parse_json_request(_json_request(certificates=None, nonce=None,
                                                   tsaPolicyOID=""))
    assert request.nonce is None and request.policy is None and request.cert_req is False


@pytest.mark.parametrize("body,match", [
    ([], "must be an object"),
    ("sha256", "must be an object"),
    (_json_request(extra=1), "unknown field"),
    (_json_request(certificate=True), "unknown field"),
    (_json_request(hashAlgorithm=_DROP), "needs hashAlgorithm"),
    (_json_request(hashAlgorithm=256), "needs hashAlgorithm"),
    (_json_request(hashAlgorithm="sha1",
                   artifactHash=base64.b64encode(b"\x00" * 20).decode()), "SHA-1"),
    (_json_request(hashAlgorithm="md5"), "unsupported message imprint hash"),
    (_json_request(hashAlgorithm="sha-256"), "unsupported message imprint hash"),
    (_json_request(artifactHash=_DROP), "needs artifactHash"),
    (_json_request(artifactHash="not base64!"), "artifactHash is not valid base64"),
    (_json_request(artifactHash=12), "artifactHash must be a base64 string"),
    (_json_request(artifactHash=base64.b64encode(b"\x00" * 31).decode()), "wrong length"),
    (_json_request(hashAlgorithm="sha384"), "wrong length"),
    (_json_request(certificates="true"), "certificates must be a boolean"),
    (_json_request(certificates=1), "certificates must be a boolean"),
    (_json_request(nonce=1.5), "nonce must be an integer"),
    (_json_request(nonce=True), "nonce must be an integer"),
    (_json_request(nonce="12"), "nonce must be an integer"),
    (_json_request(nonce=-3), "nonce must not be negative"),
    (_json_request(nonce=1 << 257), "nonce is too large"),
    (_json_request(tsaPolicyOID="1.2.3"), "policy is not supported"),
    (_json_request(tsaPolicyOID="policy"), "not an OID"),
    (_json_request(tsaPolicyOID=1.2), "tsaPolicyOID must be a string"),
])
def test_json_form_errors(tsa: TimestampAuthority, body: Any, match: str) -> None:
    with pytest.raises(E, match=match) as info:
        tsa.parse_json_request(body)
    assert info.value.code == "TIMESTAMP_REQUEST_INVALID"


# == TimestampRequest itself ===============================================================

@pytest.mark.parametrize("kwargs,match", [
    ({"hashed_message": "00" * 32}, "must be bytes"),
    ({"cert_req": 1}, "certReq must be a boolean"),
    ({"nonce": "1"}, "nonce must be an integer"),
    ({"policy": "1..2"}, "not an OID"),
    ({"hash_algorithm": "sha1"}, "SHA-1"),
])
def test_request_object_checks_its_fields(kwargs: dict, match: str) -> None:
    fields: dict[str, Any] = {"hash_algorithm": "sha256",
                              "hashed_message": hashlib.sha256(b"x").digest()}
    fields.update(kwargs)
    with pytest.raises(E, match=match):
        TimestampRequest(**fields)


# == responses =============================================================================

@pytest.mark.parametrize("cert_req", [True, False])
def test_reply_verifies_with_rfc3161_client(material: TSAMaterial, tsa: TimestampAuthority,
                                            cert_req: bool) -> None:
    oracle = _oracle_request(cert_req=cert_req)
    reply = tsa.issue(tsa.parse_der_request(oracle.as_bytes()))
    assert _rfc3161_verify(material, reply, nonce=oracle.nonce, policy=SIGSTORE_TSA_POLICY)
    parsed = decode_timestamp_response(reply)
    assert parsed.tst_info.nonce == oracle.nonce
    assert parsed.tst_info.gen_time == NOW
    embedded = {x509.load_der_x509_certificate(c) for c in parsed.signed_data.certificates}
    assert embedded == ({material.leaf_cert} if cert_req else set())


def test_rfc3161_client_rejects_a_token_for_other_data(material: TSAMaterial,
                                                       tsa: TimestampAuthority) -> None:
    # The oracle really checks what we sign: another message must fail.
    reply = tsa.issue(tsa.parse_der_request(_oracle_request().as_bytes()))
    verifier = VerifierBuilder().tsa_certificate(material.leaf_cert) \
        .add_root_certificate(material.root_cert).build()
    with pytest.raises(VerificationError):
        verifier.verify_message(decode_timestamp_response(reply), SIGNATURE + b"!")
    other = create_tsa("o", "other", now=CREATED)
    verifier = VerifierBuilder().tsa_certificate(other.leaf_cert) \
        .add_root_certificate(other.root_cert).build()
    with pytest.raises(VerificationError):
        verifier.verify_message(decode_timestamp_response(reply), SIGNATURE)


@pytest.mark.parametrize("algorithm", [HashAlgorithm.SHA256, HashAlgorithm.SHA512])
def test_reply_verifies_with_our_verifier(material: TSAMaterial, tsa: TimestampAuthority,
                                          algorithm: HashAlgorithm) -> None:
    oracle = _oracle_request(algorithm=algorithm)
    reply = tsa.issue(tsa.parse_der_request(oracle.as_bytes()))
    token = TimestampToken.from_der(reply)  # a whole TimeStampResp
    assert verify_timestamp(token, SIGNATURE, _trusted(material)) == NOW
    assert token.nonce == oracle.nonce
    assert token.policy == SIGSTORE_TSA_POLICY
    assert token.digest_algorithm == "sha256"
    assert token.signature_algorithm == "sha256_ecdsa"
    assert token.signer.matches(material.leaf_cert)
    assert token.serial_number > 0
    with pytest.raises(TimestampInvalidError, match="imprint"):
        verify_timestamp(token, SIGNATURE + b"!", _trusted(material))


def test_json_request_reply_verifies(material: TSAMaterial, tsa: TimestampAuthority) -> None:
    reply = tsa.issue(tsa.parse_json_request(_json_request(certificates=True, nonce=7)))
    token = TimestampToken.from_der(reply)
    assert token.nonce == 7
    assert token.certificates == (material.leaf_cert,)
    assert verify_timestamp(token, SIGNATURE, _trusted(material)) == NOW
    assert _rfc3161_verify(material, reply, nonce=7)


def test_p384_leaf_signs_with_sha384(material384: TSAMaterial) -> None:
    tsa = _authority(material384)
    assert tsa.digest_algorithm == "sha384"
    reply = tsa.issue(tsa.parse_der_request(_oracle_request().as_bytes()))
    token = TimestampToken.from_der(reply)
    assert (token.digest_algorithm, token.signature_algorithm) == ("sha384", "sha384_ecdsa")
    assert verify_timestamp(token, SIGNATURE, _trusted(material384)) == NOW
    assert _rfc3161_verify(material384, reply)


def test_reply_structure(material: TSAMaterial, tsa: TimestampAuthority) -> None:
    reply = tsa.issue(TimestampRequest("sha384", hashlib.sha384(SIGNATURE).digest(), nonce=99))
    signed_data = _signed_data(reply)
    assert signed_data["version"].native == "v3"
    assert [a["algorithm"].native for a in signed_data["digest_algorithms"]] == ["sha256"]
    encap = signed_data["encap_content_info"]
    assert encap["content_type"].native == "tst_info"
    assert isinstance(signed_data["certificates"], core.Void)  # no certReq, no certificates
    tst = tsp.TSTInfo.load(encap["content"].contents)
    assert tst["version"].native == "v1"
    assert tst["policy"].dotted == SIGSTORE_TSA_POLICY
    assert tst["message_imprint"]["hash_algorithm"]["algorithm"].native == "sha384"
    assert tst["message_imprint"]["hashed_message"].native == hashlib.sha384(SIGNATURE).digest()
    assert tst["gen_time"].native == NOW
    assert tst["gen_time"].dump()[2:] == b"20260601123015Z"  # UTC, whole seconds
    assert tst["accuracy"].native == {"seconds": 1, "millis": None, "micros": None}
    assert tst["nonce"].native == 99
    assert 0 < tst["serial_number"].native < 2**160

    (signer,) = signed_data["signer_infos"]
    assert signer["version"].native == "v1"
    assert signer["sid"].name == "issuer_and_serial_number"
    assert signer["sid"].chosen["serial_number"].native == material.leaf_cert.serial_number
    assert signer["digest_algorithm"]["algorithm"].native == "sha256"
    assert signer["signature_algorithm"]["algorithm"].native == "sha256_ecdsa"
    assert isinstance(signer["signature_algorithm"]["parameters"], core.Void)
    attrs = {a["type"].native: a["values"][0] for a in signer["signed_attrs"]}
    assert sorted(attrs) == ["content_type", "message_digest", "signing_certificate_v2",
                             "signing_time"]
    assert attrs["content_type"].native == "tst_info"
    assert attrs["message_digest"].native == hashlib.sha256(encap["content"].contents).digest()
    assert attrs["signing_time"].name == "utc_time"
    assert attrs["signing_time"].native == NOW
    (ess,) = attrs["signing_certificate_v2"]["certs"]
    leaf_der = material.leaf_cert.public_bytes(serialization.Encoding.DER)
    assert ess["cert_hash"].native == hashlib.sha256(leaf_der).digest()
    assert ess["issuer_serial"]["serial_number"].native == material.leaf_cert.serial_number
    # The signature covers the DER SET OF the signed attributes, with the leaf key.
    material.leaf_cert.public_key().verify(
        signer["signature"].native, signer["signed_attrs"].untag().dump(),
        ec.ECDSA(hashes.SHA256()))


def test_replies_verify_and_are_canonical_der_whatever_their_lengths() -> None:
    # issue() hands pre-encoded parts to asn1crypto to dodge its slow re-encoding of values
    # whose length ends in 0x80; the result must still be exactly what a full re-encode
    # gives. Names and nonces of many lengths make the levels cross such lengths.
    variants = ((None, False), (2**63, True), (2**250, False))
    for size in range(1, 60, 3):
        material = create_tsa("o" * size, "n" * size, now=CREATED)
        tsa = _authority(material)
        for index, (nonce, cert_req) in enumerate(variants):
            reply = tsa.issue(TimestampRequest("sha512", hashlib.sha512(SIGNATURE).digest(),
                                               nonce=nonce, cert_req=cert_req))
            token = TimestampToken.from_der(reply)
            assert token.nonce == nonce
            assert verify_timestamp(token, SIGNATURE, _trusted(material)) == NOW
            if size % 20 == 1 + index * 6:  # a forced re-encode takes ~0.3 s: sample it
                assert tsp.TimeStampResp.load(reply).dump(force=True) == reply


def test_serials_are_random_and_positive(tsa: TimestampAuthority) -> None:
    request = TimestampRequest("sha256", hashlib.sha256(SIGNATURE).digest())
    serials = {TimestampToken.from_der(tsa.issue(request)).serial_number for _ in range(20)}
    assert len(serials) == 20
    assert all(s > 0 for s in serials)


def test_custom_policy(material: TSAMaterial) -> None:
    tsa = _authority(material, policy="1.2.3.4.5")
    assert tsa.policy == "1.2.3.4.5"
    reply = tsa.issue(tsa.parse_json_request(_json_request(tsaPolicyOID="1.2.3.4.5")))
    assert TimestampToken.from_der(reply).policy == "1.2.3.4.5"
    assert _rfc3161_verify(material, reply, policy="1.2.3.4.5")
    with pytest.raises(E, match="policy is not supported"):
        tsa.parse_der_request(_der_request(req_policy=SIGSTORE_TSA_POLICY))


def test_signing_time_after_2049_is_generalized_time() -> None:
    when = datetime(2050, 6, 1, tzinfo=timezone.utc)
    material = create_tsa("o", "late", now=when - timedelta(days=1))
    reply = _authority(material, when).issue(
        TimestampRequest("sha256", hashlib.sha256(SIGNATURE).digest()))
    (signer,) = _signed_data(reply)["signer_infos"]
    signing_time = next(a["values"][0] for a in signer["signed_attrs"]
                        if a["type"].native == "signing_time")
    assert signing_time.name == "generalized_time"
    assert verify_timestamp(TimestampToken.from_der(reply), SIGNATURE, [
        CertificateAuthority("u", material.chain, ValidityWindow(when - timedelta(days=2)))]) \
        == when


def test_certchain_pem(material: TSAMaterial, tsa: TimestampAuthority) -> None:
    assert tuple(x509.load_pem_x509_certificates(tsa.certchain_pem())) == material.chain
    assert tsa.chain == material.chain


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_openssl_ts_verify_accepts_the_reply(tmp_path: Path, material384: TSAMaterial) -> None:
    # OpenSSL re-encodes signed attributes and checks the ESS certificate ID: a third oracle.
    tsa = _authority(material384, datetime.now(timezone.utc))
    (tmp_path / "data").write_bytes(SIGNATURE)
    (tmp_path / "root.pem").write_bytes(
        material384.root_cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "reply.tsr").write_bytes(
        tsa.issue(tsa.parse_der_request(_oracle_request(cert_req=True).as_bytes())))
    result = subprocess.run(
        ["openssl", "ts", "-verify", "-data", str(tmp_path / "data"), "-in",
         str(tmp_path / "reply.tsr"), "-CAfile", str(tmp_path / "root.pem")],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Verification: OK" in result.stdout


_INTEROP = Path(__file__).resolve().parents[3] / "interop" / "node_modules"
_SIGSTORE_JS_CHECK = """
const modules = process.argv[2];
const core = require(modules + '/@sigstore/core');
const { verifyRFC3161Timestamp } = require(modules + '/@sigstore/verify/dist/timestamp/tsa.js');
const input = JSON.parse(require('fs').readFileSync(process.argv[3], 'utf8'));
const ts = core.RFC3161Timestamp.parse(Buffer.from(input.reply, 'base64'));
const chain = input.chain.map((c) => core.X509Certificate.parse(Buffer.from(c, 'base64')));
const tas = [{certChain: chain, validFor: {start: new Date(0), end: new Date(8.64e15)}}];
verifyRFC3161Timestamp(ts, Buffer.from(input.signature, 'base64'), tas);
let other = 'accepted';
try { verifyRFC3161Timestamp(ts, Buffer.from('other'), tas); } catch (e) { other = 'rejected'; }
console.log(JSON.stringify({genTime: ts.signingTime.toISOString(), other}));
"""


@pytest.mark.skipif(shutil.which("node") is None or not (_INTEROP / "@sigstore" / "verify").is_dir(),
                    reason="node or interop/node_modules (make test installs it) missing")
def test_sigstore_js_verifies_a_json_form_reply(tmp_path: Path, material: TSAMaterial,
                                                tsa: TimestampAuthority) -> None:
    # sigstore-js sends exactly {artifactHash, hashAlgorithm} and verifies with @sigstore/verify.
    reply = tsa.issue(tsa.parse_json_request(_json_request()))
    (tmp_path / "check.js").write_text(_SIGSTORE_JS_CHECK)
    (tmp_path / "in.json").write_text(json.dumps({
        "reply": base64.b64encode(reply).decode(),
        "signature": base64.b64encode(SIGNATURE).decode(),
        "chain": [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
                  for c in material.chain]}))
    result = subprocess.run(["node", str(tmp_path / "check.js"), str(_INTEROP),
                             str(tmp_path / "in.json")], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"genTime": "2026-06-01T12:30:15.000Z",
                                         "other": "rejected"}


# == issuing refusals and configuration =====================================================

def test_issue_refuses_another_policy_and_non_requests(tsa: TimestampAuthority) -> None:
    with pytest.raises(E, match="policy is not supported"):
        tsa.issue(TimestampRequest("sha256", b"\x00" * 32, policy="1.2.3"))
    with pytest.raises(E, match="takes a TimestampRequest"):
        tsa.issue({"hashAlgorithm": "sha256"})  # type: ignore[arg-type]


@pytest.mark.parametrize("when", [CREATED - timedelta(days=1),
                                  CREATED + timedelta(days=3651)])
def test_issue_refuses_outside_certificate_validity(material: TSAMaterial,
                                                    when: datetime) -> None:
    with pytest.raises(ConfigInvalidError, match="not valid now"):
        _authority(material, when).issue(TimestampRequest("sha256", b"\x00" * 32))


def test_issue_refuses_a_broken_clock(material: TSAMaterial) -> None:
    tsa = TimestampAuthority(material.leaf_key, material.chain, clock=lambda: float("nan"))
    with pytest.raises(ConfigInvalidError, match="clock"):
        tsa.issue(TimestampRequest("sha256", b"\x00" * 32))


def _leaf(root: TSAMaterial, key: ec.EllipticCurvePrivateKey, eku: list | None,
          critical: bool = True) -> x509.Certificate:
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bad leaf")]))
               .issuer_name(root.root_cert.subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(CREATED)
               .not_valid_after(CREATED + timedelta(days=30)))
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=critical)
    assert root.root_key is not None
    return builder.sign(root.root_key, hashes.SHA384())


@pytest.mark.parametrize("eku,critical", [
    (None, True),
    ([ExtendedKeyUsageOID.TIME_STAMPING], False),
    ([ExtendedKeyUsageOID.TIME_STAMPING, ExtendedKeyUsageOID.CODE_SIGNING], True),
    ([ExtendedKeyUsageOID.CODE_SIGNING], True),
])
def test_constructor_refuses_a_leaf_without_the_profile(material: TSAMaterial, eku: list | None,
                                                        critical: bool) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = _leaf(material, key, eku, critical)
    with pytest.raises(ConfigInvalidError, match="extended key usage"):
        TimestampAuthority(key, (leaf, material.root_cert))


def test_p521_leaf_signs_with_sha512(material: TSAMaterial) -> None:
    key = ec.generate_private_key(ec.SECP521R1())
    chain = (_leaf(material, key, [ExtendedKeyUsageOID.TIME_STAMPING]), material.root_cert)
    when = CREATED + timedelta(days=1)  # inside the 30-day leaf
    tsa = TimestampAuthority(key, chain, clock=lambda: when.timestamp())
    token = TimestampToken.from_der(tsa.issue(
        TimestampRequest("sha256", hashlib.sha256(SIGNATURE).digest())))
    assert (token.digest_algorithm, token.signature_algorithm) == ("sha512", "sha512_ecdsa")
    assert verify_timestamp(token, SIGNATURE, [
        CertificateAuthority("u", chain, ValidityWindow(CREATED))]) == when


def test_constructor_refuses_bad_configuration(material: TSAMaterial) -> None:
    with pytest.raises(KeyMalformedError, match="ECDSA"):
        TimestampAuthority(ed25519.Ed25519PrivateKey.generate(), material.chain)  # type: ignore
    with pytest.raises(KeyMalformedError, match="ECDSA"):
        TimestampAuthority(ec.generate_private_key(ec.SECP256K1()), material.chain)
    with pytest.raises(ConfigInvalidError, match="leaf and its root"):
        TimestampAuthority(material.leaf_key, material.chain[:1])
    with pytest.raises(ConfigInvalidError, match="leaf and its root"):
        TimestampAuthority(material.leaf_key, (material.leaf_cert, "root"))  # type: ignore
    with pytest.raises(ConfigInvalidError, match="does not match the leaf"):
        TimestampAuthority(ec.generate_private_key(ec.SECP256R1()), material.chain)
    with pytest.raises(ConfigInvalidError, match="policy is not an OID"):
        TimestampAuthority(material.leaf_key, material.chain, policy="sigstore")


def test_tokens_issued_from_many_threads_all_verify(material: TSAMaterial,
                                                    tsa: TimestampAuthority) -> None:
    # issue() reuses pre-encoded constant parts; each call must still build its own values
    # (a shared, mutated asn1crypto object would mix tokens up under concurrency).
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int) -> tuple[bytes, bytes]:
        data = SIGNATURE + str(i).encode()
        return data, tsa.issue(tsa.parse_der_request(_oracle_request(data).as_bytes()))

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(64)))
    for data, reply in results:
        assert verify_timestamp(TimestampToken.from_der(reply), data, _trusted(material)) == NOW
    assert len({TimestampToken.from_der(r).serial_number for _, r in results}) == 64


def test_request_decoding_is_strict_der(tsa: TimestampAuthority) -> None:
    # BER forms a lenient parser would take: an indefinite length, a non-minimal length,
    # and certReq spelt out as FALSE (allowed: read as OPTIONAL; see _asn1.TimeStampReq).
    good = _der_request(nonce=7)
    assert good[0] == 0x30 and good[1] < 0x80
    indefinite = b"\x30\x80" + good[2:] + b"\x00\x00"
    long_form = b"\x30\x81" + good[1:]
    for der in (indefinite, long_form):
        with pytest.raises(E, match="not a DER TimeStampReq"):
            tsa.parse_der_request(der)
    explicit_false = _LooseCertReq({"version": 1, "message_imprint": {
        "hash_algorithm": {"algorithm": "2.16.840.1.101.3.4.2.1"},
        "hashed_message": hashlib.sha256(SIGNATURE).digest()}, "cert_req": False}).dump()
    assert explicit_false.endswith(b"\x01\x01\x00")
    assert tsa.parse_der_request(explicit_false).cert_req is False


class _LooseCertReq(core.Sequence):
    _fields = [("version", core.Integer), ("message_imprint", _LooseImprint),
               ("cert_req", core.Boolean)]
