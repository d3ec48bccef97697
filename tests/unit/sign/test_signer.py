"""The signer against in-memory services: every bundle it returns verifies, and every check
it makes before or after signing refuses the answer that breaks it."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from typing import Any, Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from sealtrail.errors import (
    CertChainInvalidError,
    DigestMismatchError,
    Error,
    InputError,
    KeyMismatchError,
    SCTInvalidError,
    SETInvalidError,
    TlogEntryMismatchError,
    TimestampInvalidError,
    TlogInclusionInvalidError,
    TokenInvalidError,
    UsageError,
)
from sealtrail.models.trusted_root import TrustedRoot
from sealtrail.sign import Signer, SigningContext
from sealtrail.sign.statement import build_statement
from sealtrail.verify.policy import IdentityPolicy, KeyPolicy
from sealtrail.verify.verifier import Verifier
from tests.fakes.ca import FakeCA
from tests.unit.sign._services import IDENTITY, ISSUER, FakeServices, make_token


def context(services: FakeServices, version: int | None = None, **knobs: Any) -> SigningContext:
    return SigningContext.from_trust_config(services.trust_config(**knobs), version)


@pytest.fixture
def signer_for(services: FakeServices) -> Iterator[Any]:
    made: list[Signer] = []

    def make(version: int | None = None, **kwargs: Any) -> Signer:
        if "private_key" not in kwargs:
            kwargs.setdefault("identity_token", make_token())
        signer = Signer(context(services, version), http=services.client(), **kwargs)
        made.append(signer)
        return signer

    yield make
    for signer in made:
        signer.close()


def independent_verifier(services: FakeServices) -> Verifier:
    return Verifier(TrustedRoot.from_json(json.dumps(services.instance.trusted_root_json())))


POLICY = IdentityPolicy(identity=IDENTITY, issuer=ISSUER)


@pytest.mark.parametrize("version", [1, 2])
def test_keyless_bundles_verify_and_have_the_v03_shape(services: FakeServices, signer_for: Any,
                                                       version: int) -> None:
    signer = signer_for(version)
    data = [b"release %d" % i for i in range(5)]
    results = signer.sign_many([(f"file{i}", hashlib.sha256(d).digest())
                                for i, d in enumerate(data)])
    assert [r.name for r in results] == [f"file{i}" for i in range(5)]
    assert services.sent("ca") == 1  # one certificate for every file
    assert services.sent("tsa") == 5 and services.sent(f"rekor{version}") == 5
    verifier = independent_verifier(services)
    for result, artifact in zip(results, data):
        bundle = result.bundle
        assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
        material = bundle["verificationMaterial"]
        assert set(material) == {"certificate", "tlogEntries", "timestampVerificationData"}
        entry = material["tlogEntries"][0]
        assert entry["kindVersion"] == {"kind": "hashedrekord", "version": f"0.0.{version}"}
        assert ("inclusionPromise" in entry) == (version == 1)
        assert bundle["messageSignature"]["messageDigest"]["digest"] == \
            base64.b64encode(hashlib.sha256(artifact).digest()).decode()
        verified = verifier.verify_artifact(artifact, bundle, POLICY)
        assert verified.identity == IDENTITY and result.log_index == verified.log_index
    # Another artifact does not verify with the bundle.
    with pytest.raises(DigestMismatchError):
        verifier.verify_artifact(b"something else", results[0].bundle, POLICY)


@pytest.mark.parametrize("version", [1, 2])
def test_statement_is_signed_as_dsse(services: FakeServices, signer_for: Any, version: int) -> None:
    artifact = b"the built binary"
    payload = build_statement([("tool.bin", hashlib.sha256(artifact).digest())],
                              "https://slsa.dev/provenance/v1", {"builder": "ci"})
    result = signer_for(version).sign_statement(payload)
    bundle = result.bundle
    assert bundle["dsseEnvelope"]["payloadType"] == "application/vnd.in-toto+json"
    assert base64.b64decode(bundle["dsseEnvelope"]["payload"]) == payload
    # Rekor v1 logs DSSE as dsse 0.0.1; Rekor v2 as hashedrekord over SHA-256(PAE).
    expected_kind = {1: ("dsse", "0.0.1"), 2: ("hashedrekord", "0.0.2")}[version]
    kind = bundle["verificationMaterial"]["tlogEntries"][0]["kindVersion"]
    assert (kind["kind"], kind["version"]) == expected_kind
    verified = independent_verifier(services).verify_artifact(artifact, bundle, POLICY)
    assert verified.statement is not None and verified.statement.predicate_type.endswith("/v1")


@pytest.mark.parametrize("version", [1, 2])
def test_managed_key_bundle_names_the_key_and_is_logged(services: FakeServices, signer_for: Any,
                                                        version: int) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    signer = signer_for(version, private_key=key)
    assert signer.certificate() is None
    result = signer.sign_digest(hashlib.sha256(b"keyed").digest(), "keyed")
    material = result.bundle["verificationMaterial"]
    assert "certificate" not in material and material["publicKey"]["hint"]
    assert services.sent("ca") == 0 and services.sent(f"rekor{version}") == 1
    independent_verifier(services).verify_artifact(b"keyed", result.bundle,
                                                   KeyPolicy(signer.public_key_pem))


def test_certificate_for_another_key_is_refused_before_signing(services: FakeServices,
                                                                signer_for: Any) -> None:
    services.ca_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(KeyMismatchError, match="certified another key"):
        signer_for(2).sign_digest(hashlib.sha256(b"x").digest())
    assert services.sent("tsa") == 0 and services.sent("rekor2") == 0


def test_certificate_with_a_bad_sct_is_refused_before_signing(services: FakeServices,
                                                               signer_for: Any) -> None:
    services.ca_knobs = {"tamper_sct_signature": True}
    with pytest.raises(SCTInvalidError) as info:
        signer_for(1).sign_many([("a", hashlib.sha256(b"a").digest())])
    assert info.value.code == "SCT_INVALID"
    assert services.sent("tsa") == 0 and services.sent("rekor1") == 0


def test_certificate_from_an_untrusted_ca_is_refused(services: FakeServices, signer_for: Any) -> None:
    signer = signer_for(1)  # trusts the instance's CA
    original = services.instance.ca
    services.instance.ca = FakeCA()  # the CA service now issues from another, unknown CA
    try:
        with pytest.raises(CertChainInvalidError):
            signer.certificate()
    finally:
        services.instance.ca = original
    assert services.sent("rekor1") == 0


def test_expired_token_names_its_expiry_and_asks_nothing(services: FakeServices,
                                                         signer_for: Any) -> None:
    token = make_token(lifetime=-30)
    with pytest.raises(TokenInvalidError, match="expired at 20"):
        signer_for(1, identity_token=token).certificate()
    assert services.requests == []


def test_refused_token_is_a_token_error(services: FakeServices, signer_for: Any) -> None:
    services.fail["ca"] = 401
    with pytest.raises(TokenInvalidError, match="refused the identity token"):
        signer_for(1).certificate()


def test_timestamp_over_something_else_is_refused(services: FakeServices, signer_for: Any) -> None:
    services.tsa_knobs = {"imprint": b"\x00" * 32}
    with pytest.raises(TimestampInvalidError, match="something else"):
        signer_for(2).sign_digest(hashlib.sha256(b"x").digest())
    # The log request was in flight beside the timestamp request (neither needs the other's
    # answer): its entry stays in the log without a bundle, as a failed run's entries do.
    assert (services.sent("tsa"), services.sent("rekor2")) == (1, 1)


def test_timestamp_with_another_nonce_is_refused(services: FakeServices, signer_for: Any) -> None:
    services.tsa_knobs = {"nonce": 12345}
    with pytest.raises(TimestampInvalidError, match="nonce"):
        signer_for(1).sign_digest(hashlib.sha256(b"x").digest())


def test_timestamp_with_a_bad_signature_fails_the_final_verification(services: FakeServices,
                                                                     signer_for: Any) -> None:
    services.tsa_knobs = {"bad_signature": True}
    with pytest.raises(TimestampInvalidError, match="new bundle does not verify"):
        signer_for(2).sign_digest(hashlib.sha256(b"x").digest())


@pytest.mark.parametrize("version,error", [(1, SETInvalidError), (2, TlogInclusionInvalidError)])
def test_log_entry_for_another_body_fails_the_final_verification(
        services: FakeServices, signer_for: Any, version: int, error: type[Error]) -> None:
    other = services.instance.sign_artifact(b"someone else's", rekor=version)
    other_body = other["verificationMaterial"]["tlogEntries"][0]["canonicalizedBody"]

    def swap_body(entry: dict[str, Any]) -> dict[str, Any]:
        # The log answers with another entry's body (a buggy or lying log): the proof then
        # no longer leads to the checkpoint, or the body names another signature.
        return {**entry, "canonicalizedBody": other_body}

    services.tamper_entry = swap_body
    # v1: the SET covers the body; v2: the inclusion proof no longer reaches the checkpoint.
    with pytest.raises(error, match="new bundle does not verify"):
        signer_for(version).sign_digest(hashlib.sha256(b"x").digest())


@pytest.mark.parametrize("version", [1, 2])
def test_log_that_records_another_entry_is_caught(services: FakeServices, signer_for: Any,
                                                  version: int) -> None:
    other = services.instance.sign_artifact(b"someone else's", rekor=version)
    other_entry = other["verificationMaterial"]["tlogEntries"][0]
    rekor = services.instance.rekor_v1 if version == 1 else services.instance.rekor_v2

    def log_other(entry: dict[str, Any]) -> dict[str, Any]:
        # A consistent but wrong answer: a genuinely logged entry (valid proof, checkpoint
        # and SET) that records another signature than the one submitted.
        return rekor.entry_json(base64.b64decode(other_entry["canonicalizedBody"]),
                                "hashedrekord", f"0.0.{version}", int(time.time()))

    services.tamper_entry = log_other
    with pytest.raises(TlogEntryMismatchError) as info:
        signer_for(version).sign_digest(hashlib.sha256(b"x").digest())
    assert info.value.code == "TLOG_ENTRY_MISMATCH"


@pytest.mark.parametrize("version", [1, 2])
def test_sign_many_verifies_in_one_thread_and_reports_only_what_verified(
        services: FakeServices, signer_for: Any, version: int) -> None:
    other = services.instance.sign_artifact(b"someone else's", rekor=version)
    other_body = base64.b64decode(
        other["verificationMaterial"]["tlogEntries"][0]["canonicalizedBody"])
    rekor = services.instance.rekor_v1 if version == 1 else services.instance.rekor_v2
    answers = [0]

    def wrong_sixth(entry: dict[str, Any]) -> dict[str, Any]:
        answers[0] += 1
        if answers[0] != 6:
            return entry
        return rekor.entry_json(other_body, "hashedrekord", f"0.0.{version}", int(time.time()))

    signer = signer_for(version, max_workers=1)  # one worker: the sixth answer is item 5
    signer.certificate()
    services.tamper_entry = wrong_sixth
    reported: list[tuple[str, str]] = []
    items = [(f"file{i}", hashlib.sha256(b"%d" % i).digest()) for i in range(12)]
    with pytest.raises(TlogEntryMismatchError, match="^file5: the new bundle does not verify"):
        signer.sign_many(items, on_done=lambda r: reported.append(
            (r.name, threading.current_thread().name)))
    # Every report came from the one verifying thread, in order, after its bundle
    # verified; neither the wrong entry nor anything after it was reported.
    assert [name for name, _ in reported] == [f"file{i}" for i in range(5)]
    assert {thread for _, thread in reported} == {"sealtrail-verify_0"}


def test_a_failing_on_done_fails_the_run_naming_the_item(services: FakeServices,
                                                         signer_for: Any) -> None:
    reported: list[str] = []

    def done(result: Any) -> None:
        if result.name == "file3":
            raise InputError("cannot write file3.sigstore.json: No space left on device")
        reported.append(result.name)

    items = [(f"file{i}", hashlib.sha256(b"%d" % i).digest()) for i in range(6)]
    with pytest.raises(InputError, match="^file3: cannot write") as info:
        signer_for(1, max_workers=1).sign_many(items, on_done=done)
    assert info.value.code == "INPUT_INVALID"
    assert isinstance(info.value.__cause__, InputError)  # the original, without the name
    assert reported == ["file0", "file1", "file2"]  # nothing reported after the failure


def test_sign_many_stops_at_the_first_failure_and_names_the_item(services: FakeServices,
                                                                 signer_for: Any) -> None:
    signer = signer_for(1, max_workers=4)
    signer.certificate()
    services.fail["rekor1"] = 400
    items = [(f"file{i}", hashlib.sha256(b"%d" % i).digest()) for i in range(20)]
    with pytest.raises(Error) as info:
        signer.sign_many(items)
    assert info.value.message.startswith("file")
    assert "refused" in info.value.message
    # Work not yet started was cancelled rather than sent.
    assert services.sent("rekor1") < 20


def test_sign_many_hashes_files(services: FakeServices, signer_for: Any, tmp_path: Any) -> None:
    paths = []
    for i in range(3):
        path = tmp_path / f"f{i}.txt"
        path.write_bytes(b"file %d" % i)
        paths.append(str(path))
    results = signer_for(1).sign_many([(p, None) for p in paths])
    assert [r.digest for r in results] == [hashlib.sha256(b"file %d" % i).digest()
                                           for i in range(3)]
    with pytest.raises(InputError, match="cannot read"):
        signer_for(1).sign_many([(str(tmp_path / "missing"), None)])


def test_signer_needs_exactly_one_way_to_sign(services: FakeServices) -> None:
    with pytest.raises(UsageError):
        Signer(context(services, 1))
    with pytest.raises(UsageError):
        Signer(context(services, 1), identity_token=make_token(),
               private_key=ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(UsageError):
        Signer(context(services, 1), identity_token=make_token(), max_workers=0)


def test_unreachable_ca_is_a_clear_error_after_retries(services: FakeServices,
                                                       signer_for: Any) -> None:
    services.fail["ca"] = 503
    with pytest.raises(Error, match="the CA at https://ca.fake.test failed") as info:
        signer_for(1).certificate()
    assert info.value.actual == "HTTP 503"
    assert services.sent("ca") == 4  # RetryPolicy.attempts


@pytest.mark.parametrize("version", [1, 2])
def test_log_request_shapes(services: FakeServices, signer_for: Any, version: int) -> None:
    signer = signer_for(version)
    digest = hashlib.sha256(b"shape").digest()
    result = signer.sign_digest(digest)
    ((_, request),) = [(n, r) for n, r in services.requests if n == f"rekor{version}"]
    body = json.loads(request.body)
    signature = base64.b64encode(result.signature).decode()
    if version == 1:
        # SPEC: sigstore-wire.md §3 hashedrekord 0.0.1.
        assert body["kind"] == "hashedrekord" and body["apiVersion"] == "0.0.1"
        spec = body["spec"]
        assert spec["data"]["hash"] == {"algorithm": "sha256", "value": digest.hex()}
        assert spec["signature"]["content"] == signature
        assert base64.b64decode(spec["signature"]["publicKey"]["content"]).startswith(
            b"-----BEGIN CERTIFICATE-----")
    else:
        # SPEC: sigstore-wire.md §4 hashedRekordRequestV002, keyDetails inside the verifier.
        request_body = body["hashedRekordRequestV002"]
        assert request_body["digest"] == base64.b64encode(digest).decode()
        assert request_body["signature"]["content"] == signature
        verifier = request_body["signature"]["verifier"]
        assert verifier["keyDetails"] == "PKIX_ECDSA_P256_SHA_256"
        assert set(verifier) == {"x509Certificate", "keyDetails"}
