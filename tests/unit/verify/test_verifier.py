"""The whole verifier against a fabricated Sigstore instance: happy paths, then mutations.

Every bundle here comes from :class:`tests.fakes.instance.FakeInstance` (fresh keys, real
Merkle trees, real SETs, checkpoints, SCTs and RFC 3161 tokens). The happy paths cover
every bundle shape; then each mutation case changes exactly one field of a good bundle (or
of the trusted root, the policy, the artifact or the clock) and asserts the ``.code`` that
docs/verification.md promises for the check it targets.

A mutation must *reach* the check it targets: where an upstream signature covers the
mutated field (the SET and the inclusion proof cover the log entry body, an RFC 3161 token
covers the signature bytes) the case re-signs it with ``instance.reseal`` / ``restamp``
and says so in a comment.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from sealtrail import errors
from sealtrail.errors import Error
from sealtrail.models.trusted_root import TrustedRoot, ValidityWindow
from sealtrail.verify.policy import IdentityPolicy, KeyPolicy, Policy
from sealtrail.verify.verifier import Artifact, VerificationResult, Verifier
from tests.fakes.ca import DEFAULT_IDENTITY, DEFAULT_ISSUER, FakeCA
from tests.fakes.instance import (
    DEFAULT_SIGNED_AT,
    MEDIA_TYPE_V03_PARAMETER,
    FakeInstance,
    FakeRekor,
    Signer,
    b64,
    body_of,
    set_body,
    statement_for,
)
from tests.fakes.notes import make_ecdsa_log, make_ed25519_log
from tests.fakes.tsa import FakeTSA

REPO = Path(__file__).resolve().parents[3]
ARTIFACT = b"sealtrail release 1.0.0\n"
OTHER_ARTIFACT = b"sealtrail release 6.6.6\n"
POLICY = IdentityPolicy(identity=DEFAULT_IDENTITY, issuer=DEFAULT_ISSUER)
T0 = DEFAULT_SIGNED_AT
GITHUB_CLAIMS = {
    "source_repository_uri": "https://github.com/sealtrail/sealtrail",
    "source_repository_ref": "refs/tags/v1.0.0",
    "build_trigger": "push",
    "github_workflow_sha": "0123456789abcdef0123456789abcdef01234567",
}


@pytest.fixture(scope="module")
def instance() -> FakeInstance:
    # Key generation is the slow part: one instance for the whole module.
    return FakeInstance()


@pytest.fixture(scope="module")
def root(instance: FakeInstance) -> TrustedRoot:
    return instance.trusted_root()


def verify(instance: FakeInstance, bundle: dict[str, Any], *, artifact: Any = ARTIFACT,
           policy: Policy = POLICY, root: TrustedRoot | None = None,
           now: datetime | None = None) -> VerificationResult:
    """Verify the JSON text of ``bundle`` (so parsing is exercised too)."""
    verifier = Verifier(root or instance.trusted_root(), now=now or instance.now)
    text = json.dumps(bundle)
    if artifact is None:
        return verifier.verify_dsse(text, policy)
    return verifier.verify_artifact(artifact, text, policy)


def entry(bundle: dict[str, Any]) -> dict[str, Any]:
    """The bundle's (only) transparency log entry."""
    return bundle["verificationMaterial"]["tlogEntries"][0]


def flip(value: str, index: int = -1) -> str:
    """Base64 text with one bit of one decoded byte flipped.

    The default last byte of a DER ECDSA signature lies inside the INTEGER s, so the
    signature stays well-formed and only its value is wrong.
    """
    raw = bytearray(base64.b64decode(value))
    raw[index] ^= 0x01
    return b64(bytes(raw))


# -- happy paths ------------------------------------------------------------------------------

MESSAGE_SHAPES = [
    pytest.param(dict(rekor=1, version="0.1"), id="rekor1-v0.1"),
    pytest.param(dict(rekor=1, version="0.2"), id="rekor1-v0.2"),
    pytest.param(dict(rekor=1, version="0.3"), id="rekor1-v0.3"),
    pytest.param(dict(rekor=1, media_type_spelling="version=0.3"), id="rekor1-v0.3-param"),
    pytest.param(dict(rekor=1, timestamp=True), id="rekor1-with-tsa"),
    pytest.param(dict(rekor=1, message_digest=False), id="rekor1-no-message-digest"),
    pytest.param(dict(rekor=1, key_type="ecdsa-p384"), id="rekor1-p384"),
    pytest.param(dict(rekor=1, digest_algorithm="sha384"), id="rekor1-sha384"),
    pytest.param(dict(rekor=2), id="rekor2-v0.3"),
    pytest.param(dict(rekor=2, media_type_spelling="version=0.3"), id="rekor2-v0.3-param"),
    pytest.param(dict(rekor=2, key_type="rsa-2048"), id="rekor2-rsa"),
]


@pytest.mark.parametrize("options", MESSAGE_SHAPES)
def test_message_signature_bundles_verify(instance: FakeInstance, root: TrustedRoot,
                                          options: dict[str, Any]) -> None:
    bundle = instance.sign_artifact(ARTIFACT, **options)
    result = verify(instance, bundle, root=root)
    assert result.identity == DEFAULT_IDENTITY
    assert result.issuer == DEFAULT_ISSUER
    assert result.statement is None


def test_both_v03_media_type_spellings_are_emitted(instance: FakeInstance) -> None:
    # Guard for the two happy cases above: they really differ on the wire.
    assert instance.sign_artifact(ARTIFACT)["mediaType"] == \
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert instance.sign_artifact(ARTIFACT, media_type_spelling="version=0.3")["mediaType"] \
        == MEDIA_TYPE_V03_PARAMETER


DSSE_SHAPES = [
    pytest.param(dict(rekor=1, kind="dsse"), id="rekor1-dsse-0.0.1"),
    pytest.param(dict(rekor=1, kind="intoto"), id="rekor1-intoto-0.0.2"),
    pytest.param(dict(rekor=1, kind="dsse", key_type="ed25519"), id="rekor1-dsse-ed25519"),
    pytest.param(dict(rekor=1, kind="dsse", version="0.2"), id="rekor1-dsse-v0.2"),
    pytest.param(dict(rekor=2, kind="hashedrekord"), id="rekor2-hashedrekord-over-pae"),
    pytest.param(dict(rekor=2, kind="hashedrekord", key_type="ecdsa-p384"),
                 id="rekor2-hashedrekord-over-pae-p384"),
    pytest.param(dict(rekor=2, kind="dsse"), id="rekor2-dsse-0.0.2"),
]


@pytest.mark.parametrize("options", DSSE_SHAPES)
def test_dsse_bundles_verify_against_their_subject(instance: FakeInstance, root: TrustedRoot,
                                                   options: dict[str, Any]) -> None:
    bundle = instance.sign_dsse(statement_for(OTHER_ARTIFACT, ARTIFACT), **options)
    result = verify(instance, bundle, root=root)
    assert result.statement is not None
    assert [s.name for s in result.statement.subjects] == ["artifact-0.txt", "artifact-1.txt"]


@pytest.mark.parametrize("options", DSSE_SHAPES)
def test_verify_dsse_returns_the_statement(instance: FakeInstance, root: TrustedRoot,
                                           options: dict[str, Any]) -> None:
    statement = statement_for(ARTIFACT, names=("release.tar.gz",))
    bundle = instance.sign_dsse(statement, **options)
    result = verify(instance, bundle, artifact=None, root=root)
    assert result.payload_type == "application/vnd.in-toto+json"
    assert json.loads(result.payload or b"") == statement
    assert result.statement is not None
    assert result.statement.predicate_type == statement["predicateType"]
    assert result.statement.subjects[0].digest == {"sha256": hashlib.sha256(ARTIFACT).hexdigest()}
    assert result.identity == DEFAULT_IDENTITY


def test_verify_dsse_accepts_a_payload_that_is_not_in_toto(instance: FakeInstance) -> None:
    bundle = instance.sign_dsse(b"plain text", payload_type="text/plain")
    result = verify(instance, bundle, artifact=None)
    assert (result.payload_type, result.payload, result.statement) == \
        ("text/plain", b"plain text", None)


@pytest.mark.parametrize("rekor", [1, 2])
def test_managed_key_bundle_verifies_with_the_key(instance: FakeInstance, rekor: int) -> None:
    signer = instance.signer(managed=True)
    # The conformance managed-key-happy-path bundle carries a timestamp and a promise.
    bundle = instance.sign_artifact(ARTIFACT, signer=signer, rekor=rekor, timestamp=True)
    assert "publicKey" in bundle["verificationMaterial"]
    result = verify(instance, bundle, policy=KeyPolicy(signer.public_key_pem))
    assert result.identity is None and result.issuer is None
    assert result.key_id == hashlib.sha256(signer.private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest()


@pytest.mark.parametrize("rekor", [1, 2])
def test_managed_key_dsse_bundle_verifies(instance: FakeInstance, rekor: int) -> None:
    signer = instance.signer(managed=True)
    bundle = instance.sign_dsse(statement_for(ARTIFACT), signer=signer, rekor=rekor)
    verify(instance, bundle, policy=KeyPolicy(signer.public_key_pem))


def test_identity_and_issuer_by_regexp(instance: FakeInstance) -> None:
    bundle = instance.sign_artifact(ARTIFACT)
    policy = IdentityPolicy(
        identity_regexp=r"https://github\.com/sigstore-conformance/[^/]+/\.github/.+",
        issuer_regexp=r"https://token\.actions\.githubusercontent\.(com|net)")
    assert verify(instance, bundle, policy=policy).identity == DEFAULT_IDENTITY


@pytest.mark.parametrize("san_kind, identity", [
    ("email", "alice@example.com"),
    ("othername", "alice!example.com"),
])
def test_email_and_othername_identities(instance: FakeInstance, san_kind: str,
                                        identity: str) -> None:
    bundle = instance.sign_artifact(ARTIFACT, identity=identity, san_kind=san_kind,
                                    issuer="https://accounts.example.com")
    policy = IdentityPolicy(identity=identity, issuer="https://accounts.example.com")
    assert verify(instance, bundle, policy=policy).identity == identity


def test_github_extension_policy(instance: FakeInstance) -> None:
    bundle = instance.sign_artifact(ARTIFACT, github=GITHUB_CLAIMS)
    policy = IdentityPolicy(identity=DEFAULT_IDENTITY, issuer=DEFAULT_ISSUER,
                            extensions=dict(GITHUB_CLAIMS))
    result = verify(instance, bundle, policy=policy)
    assert {k: result.extensions[k] for k in GITHUB_CLAIMS} == GITHUB_CLAIMS


def test_artifact_given_as_a_digest(instance: FakeInstance) -> None:
    bundle = instance.sign_artifact(ARTIFACT, rekor=2)
    verify(instance, bundle, artifact=Artifact.from_digest(
        "sha256:" + hashlib.sha256(ARTIFACT).hexdigest()))


@pytest.mark.parametrize("make", [
    pytest.param(lambda inst: inst.sign_artifact(ARTIFACT, rekor=1), id="rekor1"),
    pytest.param(lambda inst: inst.sign_artifact(ARTIFACT, rekor=2), id="rekor2"),
    pytest.param(lambda inst: inst.sign_dsse(statement_for(ARTIFACT), kind="intoto"),
                 id="rekor1-intoto"),
])
def test_reseal_and_restamp_keep_a_good_bundle_good(instance: FakeInstance,
                                                    make: Callable[[FakeInstance], Any]) -> None:
    # The mutation cases below re-sign upstream of their edit with these helpers: on an
    # unedited bundle they must change nothing that matters, so a failure is the edit's.
    bundle = make(instance)
    before = entry(bundle)["logIndex"]
    instance.reseal(bundle)
    instance.restamp(bundle)
    assert entry(bundle)["logIndex"] != before  # really re-logged
    verify(instance, bundle)


# -- verified times and what the result reports ---------------------------------------------------

def test_rekor_v1_verified_time_is_the_integrated_time(instance: FakeInstance) -> None:
    bundle = instance.sign_artifact(ARTIFACT, rekor=1, integrated_time=T0 + timedelta(seconds=7))
    result = verify(instance, bundle)
    assert result.verified_times == (T0 + timedelta(seconds=7),)
    assert result.verified_time == T0 + timedelta(seconds=7)
    assert result.log_index == int(entry(bundle)["logIndex"])
    assert result.log_url == instance.rekor_v1.base_url


def test_rekor_v2_verified_time_is_the_tsa_time(instance: FakeInstance) -> None:
    bundle = instance.sign_artifact(ARTIFACT, rekor=2, timestamp_time=T0 + timedelta(seconds=3))
    result = verify(instance, bundle)
    assert result.verified_times == (T0 + timedelta(seconds=3),)
    assert result.log_url == instance.rekor_v2.base_url


def test_both_times_are_reported_and_the_earliest_is_the_verified_time(
        instance: FakeInstance) -> None:
    bundle = instance.sign_artifact(ARTIFACT, rekor=1, timestamp=True,
                                    timestamp_time=T0 + timedelta(seconds=5),
                                    integrated_time=T0 + timedelta(seconds=9))
    result = verify(instance, bundle)
    assert sorted(result.verified_times) == [T0 + timedelta(seconds=5), T0 + timedelta(seconds=9)]
    assert result.verified_time == T0 + timedelta(seconds=5)
    assert result.to_json()["verified_time"] == "2025-06-01T12:00:05Z"


def test_a_slightly_early_clock_is_tolerated(instance: FakeInstance) -> None:
    # Integrated 2 s after T0; a clock 30 s behind is within the one-minute skew.
    bundle = instance.sign_artifact(ARTIFACT)
    verify(instance, bundle, now=T0 - timedelta(seconds=30))


# -- mutations ----------------------------------------------------------------------------------

@dataclass
class Case:
    """One mutated input; fields left None take the module defaults."""

    bundle: dict[str, Any]
    artifact: Any = ARTIFACT  # None: verify_dsse
    policy: Policy = POLICY
    root: TrustedRoot | None = None
    now: datetime | None = None


CASES: list[Any] = []


def case(code: str) -> Callable[[Callable[[FakeInstance], Case]], Callable[[FakeInstance], Case]]:
    """Register a mutation that must fail with ``code``."""
    def register(make: Callable[[FakeInstance], Case]) -> Callable[[FakeInstance], Case]:
        CASES.append(pytest.param(make, code, id=f"{code}:{make.__name__}"))
        return make
    return register


# BUNDLE_MALFORMED (step 0: parsing)

@case("BUNDLE_MALFORMED")
def unknown_media_type(inst: FakeInstance) -> Case:
    bundle = inst.sign_artifact(ARTIFACT)
    bundle["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.4"
    return Case(bundle)


@case("BUNDLE_MALFORMED")
def v03_with_a_certificate_chain(inst: FakeInstance) -> Case:
    bundle = inst.sign_artifact(ARTIFACT, version="0.2")
    bundle["mediaType"] = "application/vnd.dev.sigstore.bundle.v0.3+json"
    return Case(bundle)


@case("BUNDLE_MALFORMED")
def v01_entry_without_promise(inst: FakeInstance) -> Case:
    bundle = inst.sign_artifact(ARTIFACT, version="0.1")
    del entry(bundle)["inclusionPromise"]
    return Case(bundle)


@case("BUNDLE_MALFORMED")
def v03_entry_without_proof(inst: FakeInstance) -> Case:
    bundle = inst.sign_artifact(ARTIFACT)
    del entry(bundle)["inclusionProof"]
    return Case(bundle)


@case("BUNDLE_MALFORMED")
def no_log_entry(inst: FakeInstance) -> Case:
    bundle = inst.sign_artifact(ARTIFACT)
    bundle["verificationMaterial"]["tlogEntries"] = []
    return Case(bundle)


@case("BUNDLE_MALFORMED")
def unknown_field(inst: FakeInstance) -> Case:
    bundle = inst.sign_artifact(ARTIFACT)
    bundle["messageSignature"]["comment"] = "trust me"
    return Case(bundle)


@case("BUNDLE_MALFORMED")
def dsse_with_two_signatures(inst: FakeInstance) -> Case:
    bundle = inst.sign_dsse(statement_for(ARTIFACT))
    sigs = bundle["dsseEnvelope"]["signatures"]
    sigs.append(dict(sigs[0]))
    return Case(bundle)


@case("BUNDLE_MALFORMED")
def kind_version_not_the_body_kind(inst: FakeInstance) -> Case:
    # The SET covers the body, not kindVersion: only the body parser can notice.
    bundle = inst.sign_artifact(ARTIFACT)
    entry(bundle)["kindVersion"] = {"kind": "dsse", "version": "0.0.1"}
    return Case(bundle)


@case("BUNDLE_MALFORMED")
def verify_dsse_on_a_message_signature(inst: FakeInstance) -> Case:
    return Case(inst.sign_artifact(ARTIFACT), artifact=None)


@case("BUNDLE_MALFORMED")
def intoto_payload_that_is_not_json(inst: FakeInstance) -> Case:
    # Validly signed and logged, but the in-toto payload does not parse.
    return Case(inst.sign_dsse(b"{not json", payload_type="application/vnd.in-toto+json"))


# SIGNATURE_INVALID (step 4)

@case("SIGNATURE_INVALID")
def message_signature_byte_flipped_rekor1(inst: FakeInstance) -> Case:
    # No TSA token covers the signature here; the log body still records the original
    # signature, but step 4 (signature) runs before step 5 (log entry).
    bundle = inst.sign_artifact(ARTIFACT, rekor=1)
    bundle["messageSignature"]["signature"] = flip(bundle["messageSignature"]["signature"])
    return Case(bundle)


@case("SIGNATURE_INVALID")
def message_signature_byte_flipped_rekor2(inst: FakeInstance) -> Case:
    bundle = inst.sign_artifact(ARTIFACT, rekor=2)
    bundle["messageSignature"]["signature"] = flip(bundle["messageSignature"]["signature"])
    # Re-stamped: the RFC 3161 token covers the signature bytes and would fail first.
    return Case(inst.restamp(bundle))


@case("SIGNATURE_INVALID")
def message_signed_by_another_key(inst: FakeInstance) -> Case:
    bundle = inst.sign_artifact(ARTIFACT)
    stranger = inst.signer(managed=True)
    other = stranger.sign_digest(hashlib.sha256(ARTIFACT).digest(), "sha256")
    bundle["messageSignature"]["signature"] = b64(other)
    return Case(bundle)


@case("SIGNATURE_INVALID")
def dsse_payload_changed(inst: FakeInstance) -> Case:
    # The envelope signature covers PAE(type, payload): a new payload breaks it (and the
    # log's payload hash too, but step 4 runs first).
    bundle = inst.sign_dsse(statement_for(ARTIFACT))
    bundle["dsseEnvelope"]["payload"] = b64(json.dumps(statement_for(ARTIFACT, OTHER_ARTIFACT))
                                            .encode())
    return Case(bundle, artifact=None)


@case("SIGNATURE_INVALID")
def dsse_payload_type_changed(inst: FakeInstance) -> Case:
    bundle = inst.sign_dsse(statement_for(ARTIFACT))
    bundle["dsseEnvelope"]["payloadType"] = "application/json"
    return Case(bundle, artifact=None)


@case("SIGNATURE_INVALID")
def dsse_signature_flipped_rekor2(inst: FakeInstance) -> Case:
    bundle = inst.sign_dsse(statement_for(ARTIFACT), rekor=2)
    sig = bundle["dsseEnvelope"]["signatures"][0]
    sig["sig"] = flip(sig["sig"])
    return Case(inst.restamp(bundle))  # re-stamped: the token covers the signature


@case("SIGNATURE_INVALID")
def managed_key_signature_flipped(inst: FakeInstance) -> Case:
    signer = inst.signer(managed=True)
    bundle = inst.sign_artifact(ARTIFACT, signer=signer)
    bundle["messageSignature"]["signature"] = flip(bundle["messageSignature"]["signature"])
    return Case(bundle, policy=KeyPolicy(signer.public_key_pem))


# DIGEST_MISMATCH (step 4, and step 5 for the logged digest)

@case("DIGEST_MISMATCH")
def other_artifact_rekor1(inst: FakeInstance) -> Case:
    return Case(inst.sign_artifact(ARTIFACT, rekor=1), artifact=OTHER_ARTIFACT)


@case("DIGEST_MISMATCH")
def other_artifact_rekor2(inst: FakeInstance) -> Case:
    return Case(inst.sign_artifact(ARTIFACT, rekor=2), artifact=OTHER_ARTIFACT)


@case("DIGEST_MISMATCH")
def other_artifact_digest_given(inst: FakeInstance) -> Case:
    return Case(inst.sign_artifact(ARTIFACT), artifact=Artifact.from_digest(
        "sha256:" + hashlib.sha256(OTHER_ARTIFACT).hexdigest()))


@case("DIGEST_MISMATCH")
def signed_digest_algorithm_unknown_for_the_artifact(inst: FakeInstance) -> Case:
    # The bundle signs a SHA-384 digest; the caller only knows the artifact's SHA-256.
    return Case(inst.sign_artifact(ARTIFACT, digest_algorithm="sha384"),
                artifact=Artifact.from_digest("sha256:" + hashlib.sha256(ARTIFACT).hexdigest()))


@case("DIGEST_MISMATCH")
def logged_digest_differs_without_message_digest(inst: FakeInstance) -> Case:
    # No messageDigest in the bundle: the signature verifies over the artifact, and only
    # the log body's digest can disagree. Resealed (new proof, checkpoint and SET) so the
    # body comparison, not the SET, is what fails.
    bundle = inst.sign_artifact(ARTIFACT, message_digest=False)
    body = body_of(bundle)
    body["spec"]["data"]["hash"]["value"] = hashlib.sha256(OTHER_ARTIFACT).hexdigest()
    set_body(bundle, body)
    return Case(inst.reseal(bundle))


# CERT_CHAIN_INVALID (step 2)

@case("CERT_CHAIN_INVALID")
def ca_valid_for_starts_after_signing(inst: FakeInstance) -> Case:
    return Case(inst.sign_artifact(ARTIFACT),
                root=inst.trusted_root(ca_validity=ValidityWindow(T0 + timedelta(days=1))))


@case("CERT_CHAIN_INVALID")
def ca_valid_for_ends_before_signing(inst: FakeInstance) -> Case:
    window = ValidityWindow(T0 - timedelta(days=400), T0 - timedelta(days=1))
    return Case(inst.sign_artifact(ARTIFACT, rekor=2), root=inst.trusted_root(ca_validity=window))


@case("CERT_CHAIN_INVALID")
def ca_valid_for_ends_between_the_verified_times(inst: FakeInstance) -> Case:
    # The TSA time (T0+1 s) is inside the CA's window, the integrated time (T0+2 s) is not:
    # the CA must cover *each* verified time.
    window = ValidityWindow(T0 - timedelta(days=400), T0 + timedelta(seconds=1))
    return Case(inst.sign_artifact(ARTIFACT, timestamp=True),
                root=inst.trusted_root(ca_validity=window))


@case("CERT_CHAIN_INVALID")
def certificate_expired_at_integrated_time(inst: FakeInstance) -> Case:
    # The leaf lives 10 minutes; the log (validly) integrated the entry 20 minutes later.
    return Case(inst.sign_artifact(ARTIFACT, integrated_time=T0 + timedelta(minutes=20)))


@case("CERT_CHAIN_INVALID")
def certificate_not_yet_valid_at_tsa_time(inst: FakeInstance) -> Case:
    # The integrated time is fine but the TSA time is not: *every* verified time counts.
    return Case(inst.sign_artifact(ARTIFACT, timestamp=True,
                                   timestamp_time=T0 - timedelta(minutes=5)))


@case("CERT_CHAIN_INVALID")
def certificate_from_an_untrusted_ca(inst: FakeInstance) -> Case:
    rogue = FakeCA(name="rogue", intermediate=False)
    key = inst.signer(managed=True).private_key
    signer = Signer(key, "ecdsa-p256", rogue.issue_leaf(key.public_key(), not_before=T0), T0)
    return Case(inst.sign_artifact(ARTIFACT, signer=signer))


# CERT_PROFILE_INVALID (step 2)

@case("CERT_PROFILE_INVALID")
def leaf_without_digital_signature(inst: FakeInstance) -> Case:
    return Case(inst.sign_artifact(ARTIFACT, digital_signature=False))


@case("CERT_PROFILE_INVALID")
def leaf_without_code_signing_eku(inst: FakeInstance) -> Case:
    return Case(inst.sign_artifact(ARTIFACT, eku=[ExtendedKeyUsageOID.CLIENT_AUTH]))


@case("CERT_PROFILE_INVALID")
def leaf_with_two_identities(inst: FakeInstance) -> Case:
    names = [x509.UniformResourceIdentifier(DEFAULT_IDENTITY),
             x509.UniformResourceIdentifier("https://github.com/evil/evil")]
    return Case(inst.sign_artifact(ARTIFACT, san_names=names))


# SCT_INVALID (step 2)

@case("SCT_INVALID")
def leaf_without_sct(inst: FakeInstance) -> Case:
    return Case(inst.sign_artifact(ARTIFACT, sct_count=0))


@case("SCT_INVALID")
def leaf_with_two_scts(inst: FakeInstance) -> Case:
    return Case(inst.sign_artifact(ARTIFACT, sct_count=2))


@case("SCT_INVALID")
def sct_signature_tampered(inst: FakeInstance) -> Case:
    return Case(inst.sign_artifact(ARTIFACT, tamper_sct_signature=True))


@case("SCT_INVALID")
def ct_log_not_in_the_root(inst: FakeInstance) -> Case:
    document = inst.trusted_root_json()
    document["ctlogs"] = []
    return Case(inst.sign_artifact(ARTIFACT), root=inst.trusted_root(document))


@case("SCT_INVALID")
def ct_log_valid_for_starts_after_the_sct(inst: FakeInstance) -> Case:
    window = ValidityWindow(T0 + timedelta(hours=1))
    return Case(inst.sign_artifact(ARTIFACT), root=inst.trusted_root(ctlog_validity=window))


# TLOG_INCLUSION_INVALID (step 5)

@case("TLOG_INCLUSION_INVALID")
def proof_hash_flipped_rekor1(inst: FakeInstance) -> Case:
    # The SET covers the body, not the proof: the proof check is reached.
    bundle = inst.sign_artifact(ARTIFACT, rekor=1)
    hashes = entry(bundle)["inclusionProof"]["hashes"]
    hashes[0] = flip(hashes[0])
    return Case(bundle)


@case("TLOG_INCLUSION_INVALID")
def proof_hash_flipped_rekor2(inst: FakeInstance) -> Case:
    bundle = inst.sign_artifact(ARTIFACT, rekor=2)
    hashes = entry(bundle)["inclusionProof"]["hashes"]
    hashes[-1] = flip(hashes[-1])
    return Case(bundle)


@case("TLOG_INCLUSION_INVALID")
def proof_hash_missing(inst: FakeInstance) -> Case:
    bundle = inst.sign_dsse(statement_for(ARTIFACT))
    entry(bundle)["inclusionProof"]["hashes"].pop()
    return Case(bundle)


@case("TLOG_INCLUSION_INVALID")
def proof_index_changed(inst: FakeInstance) -> Case:
    bundle = inst.sign_artifact(ARTIFACT, rekor=1)
    proof = entry(bundle)["inclusionProof"]
    proof["logIndex"] = str(int(proof["logIndex"]) - 1)
    return Case(bundle)


@case("TLOG_INCLUSION_INVALID")
def rekor2_body_changed_without_relogging(inst: FakeInstance) -> Case:
    # Rekor v2 has no SET: the body's leaf hash no longer leads to the root.
    bundle = inst.sign_artifact(ARTIFACT, rekor=2)
    body = body_of(bundle)
    body["spec"]["hashedRekordV002"]["data"]["digest"] = b64(hashlib.sha256(b"x").digest())
    set_body(bundle, body)
    return Case(bundle)


# CHECKPOINT_INVALID (step 5)

def _checkpoint_case(inst: FakeInstance, rekor: int, **changes: Any) -> Case:
    """A good bundle whose checkpoint the log re-signs with ``changes`` (root/size/origin)."""
    bundle = inst.sign_artifact(ARTIFACT, rekor=rekor)
    proof = entry(bundle)["inclusionProof"]
    log = inst.rekor_v1 if rekor == 1 else inst.rekor_v2
    size = changes.get("size", int(proof["treeSize"]))
    root = changes.get("root", base64.b64decode(proof["rootHash"]))
    proof["checkpoint"]["envelope"] = log.checkpoint(size, root, origin=changes.get("origin"))
    return Case(bundle)


@case("CHECKPOINT_INVALID")
def checkpoint_for_another_root_rekor1(inst: FakeInstance) -> Case:
    # Re-signed by the log: the signature is fine, the committed root is not the proof's.
    return _checkpoint_case(inst, 1, root=hashlib.sha256(b"another tree").digest())


@case("CHECKPOINT_INVALID")
def checkpoint_for_another_root_rekor2(inst: FakeInstance) -> Case:
    return _checkpoint_case(inst, 2, root=hashlib.sha256(b"another tree").digest())


@case("CHECKPOINT_INVALID")
def checkpoint_for_another_size(inst: FakeInstance) -> Case:
    return _checkpoint_case(inst, 2, size=10**6)


@case("CHECKPOINT_INVALID")
def checkpoint_origin_changed_rekor1(inst: FakeInstance) -> Case:
    return _checkpoint_case(inst, 1, origin="rekor.other.test - 1193050959916656506")


@case("CHECKPOINT_INVALID")
def checkpoint_origin_changed_rekor2(inst: FakeInstance) -> Case:
    return _checkpoint_case(inst, 2, origin="log2099-2.rekor.fake.test")


@case("CHECKPOINT_INVALID")
def checkpoint_signed_by_another_key(inst: FakeInstance) -> Case:
    bundle = inst.sign_artifact(ARTIFACT, rekor=2)
    proof = entry(bundle)["inclusionProof"]
    impostor = make_ed25519_log(inst.rekor_v2.base_url)
    proof["checkpoint"]["envelope"] = impostor.checkpoint(
        int(proof["treeSize"]), base64.b64decode(proof["rootHash"]))
    return Case(bundle)


@case("CHECKPOINT_INVALID")
def checkpoint_text_edited_after_signing(inst: FakeInstance) -> Case:
    bundle = inst.sign_artifact(ARTIFACT, rekor=1)
    checkpoint = entry(bundle)["inclusionProof"]["checkpoint"]
    origin, size, rest = checkpoint["envelope"].split("\n", 2)
    checkpoint["envelope"] = f"{origin}\n{int(size) + 1}\n{rest}"
    return Case(bundle)


@case("CHECKPOINT_INVALID")
def checkpoint_missing(inst: FakeInstance) -> Case:
    bundle = inst.sign_artifact(ARTIFACT, rekor=1)
    del entry(bundle)["inclusionProof"]["checkpoint"]
    return Case(bundle)


# SET_INVALID (step 1)

@case("SET_INVALID")
def integrated_time_changed(inst: FakeInstance) -> Case:
    # The SET was signed over another integrated time (still inside the cert's validity).
    bundle = inst.sign_artifact(ARTIFACT)
    entry(bundle)["integratedTime"] = str(int(entry(bundle)["integratedTime"]) + 1)
    return Case(bundle)


@case("SET_INVALID")
def log_index_changed(inst: FakeInstance) -> Case:
    bundle = inst.sign_artifact(ARTIFACT)
    entry(bundle)["logIndex"] = str(int(entry(bundle)["logIndex"]) + 1)
    return Case(bundle)


@case("SET_INVALID")
def set_signed_by_another_key(inst: FakeInstance) -> Case:
    bundle = inst.sign_artifact(ARTIFACT)
    e = entry(bundle)
    impostor = FakeRekor(make_ecdsa_log(inst.rekor_v1.base_url), version=1)
    # Over the genuine payload and log id, with the wrong key.
    e["inclusionPromise"]["signedEntryTimestamp"] = b64(impostor.sign_set(
        base64.b64decode(e["canonicalizedBody"]), int(e["integratedTime"]), int(e["logIndex"]),
        log_id=inst.rekor_v1.log_id))
    return Case(bundle)


@case("SET_INVALID")
def rekor1_body_changed_without_resigning(inst: FakeInstance) -> Case:
    # The SET covers the body, so it is the first thing to notice.
    bundle = inst.sign_artifact(ARTIFACT)
    body = body_of(bundle)
    body["spec"]["data"]["hash"]["value"] = hashlib.sha256(OTHER_ARTIFACT).hexdigest()
    set_body(bundle, body)
    return Case(bundle)


@case("SET_INVALID")
def v01_set_flipped(inst: FakeInstance) -> Case:
    bundle = inst.sign_artifact(ARTIFACT, version="0.1")
    promise = entry(bundle)["inclusionPromise"]
    promise["signedEntryTimestamp"] = flip(promise["signedEntryTimestamp"])
    return Case(bundle)


# TLOG_ENTRY_MISMATCH (step 5). Each body mutation is resealed: the log re-integrates the
# mutated body (new proof, checkpoint and SET), so only the body-vs-bundle check can fail.

def _resealed(inst: FakeInstance, bundle: dict[str, Any], edit: Callable[[dict[str, Any]], None],
              **kwargs: Any) -> Case:
    body = body_of(bundle)
    edit(body["spec"])
    set_body(bundle, body)
    return Case(inst.reseal(bundle), **kwargs)


@case("TLOG_ENTRY_MISMATCH")
def hashedrekord_v1_digest_changed(inst: FakeInstance) -> Case:
    def edit(spec: dict[str, Any]) -> None:
        spec["data"]["hash"]["value"] = hashlib.sha256(OTHER_ARTIFACT).hexdigest()
    return _resealed(inst, inst.sign_artifact(ARTIFACT, rekor=1), edit)


@case("TLOG_ENTRY_MISMATCH")
def hashedrekord_v2_digest_changed(inst: FakeInstance) -> Case:
    def edit(spec: dict[str, Any]) -> None:
        spec["hashedRekordV002"]["data"]["digest"] = b64(hashlib.sha256(OTHER_ARTIFACT).digest())
    return _resealed(inst, inst.sign_artifact(ARTIFACT, rekor=2), edit)


@case("TLOG_ENTRY_MISMATCH")
def hashedrekord_v1_records_another_signature(inst: FakeInstance) -> Case:
    def edit(spec: dict[str, Any]) -> None:
        spec["signature"]["content"] = flip(spec["signature"]["content"])
    return _resealed(inst, inst.sign_artifact(ARTIFACT, rekor=1), edit)


@case("TLOG_ENTRY_MISMATCH")
def hashedrekord_v1_records_another_certificate(inst: FakeInstance) -> Case:
    other = inst.signer().verifier_pem

    def edit(spec: dict[str, Any]) -> None:
        spec["signature"]["publicKey"]["content"] = b64(other)
    return _resealed(inst, inst.sign_artifact(ARTIFACT, rekor=1), edit)


@case("TLOG_ENTRY_MISMATCH")
def hashedrekord_v2_records_another_certificate(inst: FakeInstance) -> Case:
    other = inst.signer().verifier_v2()

    def edit(spec: dict[str, Any]) -> None:
        spec["hashedRekordV002"]["signature"]["verifier"] = other
    return _resealed(inst, inst.sign_artifact(ARTIFACT, rekor=2), edit)


@case("TLOG_ENTRY_MISMATCH")
def managed_key_body_records_another_signature(inst: FakeInstance) -> Case:
    signer = inst.signer(managed=True)

    def edit(spec: dict[str, Any]) -> None:
        spec["signature"]["content"] = flip(spec["signature"]["content"])
    return _resealed(inst, inst.sign_artifact(ARTIFACT, signer=signer), edit,
                     policy=KeyPolicy(signer.public_key_pem))


@case("TLOG_ENTRY_MISMATCH")
def dsse_v1_payload_hash_changed(inst: FakeInstance) -> Case:
    # The envelope (and its signature) is intact; only the log's payload hash differs.
    def edit(spec: dict[str, Any]) -> None:
        spec["payloadHash"]["value"] = hashlib.sha256(b"another payload").hexdigest()
    return _resealed(inst, inst.sign_dsse(statement_for(ARTIFACT), kind="dsse"), edit)


@case("TLOG_ENTRY_MISMATCH")
def dsse_v1_records_two_signatures(inst: FakeInstance) -> Case:
    def edit(spec: dict[str, Any]) -> None:
        spec["signatures"].append(dict(spec["signatures"][0]))
    return _resealed(inst, inst.sign_dsse(statement_for(ARTIFACT), kind="dsse"), edit)


@case("TLOG_ENTRY_MISMATCH")
def intoto_payload_hash_changed(inst: FakeInstance) -> Case:
    def edit(spec: dict[str, Any]) -> None:
        spec["content"]["payloadHash"]["value"] = hashlib.sha256(b"another").hexdigest()
    return _resealed(inst, inst.sign_dsse(statement_for(ARTIFACT), kind="intoto"), edit)


@case("TLOG_ENTRY_MISMATCH")
def intoto_payload_type_changed(inst: FakeInstance) -> Case:
    def edit(spec: dict[str, Any]) -> None:
        spec["content"]["envelope"]["payloadType"] = "application/json"
    return _resealed(inst, inst.sign_dsse(statement_for(ARTIFACT), kind="intoto"), edit)


@case("TLOG_ENTRY_MISMATCH")
def rekor2_pae_digest_changed(inst: FakeInstance) -> Case:
    def edit(spec: dict[str, Any]) -> None:
        spec["hashedRekordV002"]["data"]["digest"] = b64(hashlib.sha256(b"other PAE").digest())
    return _resealed(inst, inst.sign_dsse(statement_for(ARTIFACT), rekor=2), edit)


@case("TLOG_ENTRY_MISMATCH")
def rekor2_dsse_payload_hash_changed(inst: FakeInstance) -> Case:
    def edit(spec: dict[str, Any]) -> None:
        spec["dsseV002"]["payloadHash"]["digest"] = b64(hashlib.sha256(b"other").digest())
    return _resealed(inst, inst.sign_dsse(statement_for(ARTIFACT), rekor=2, kind="dsse"), edit)


@case("TLOG_ENTRY_MISMATCH")
def entry_of_another_bundle(inst: FakeInstance) -> Case:
    # A genuine, fully valid entry, but for another signature by the same signer.
    signer = inst.signer()
    bundle = inst.sign_artifact(ARTIFACT, signer=signer)
    other = inst.sign_artifact(OTHER_ARTIFACT, signer=signer)
    bundle["verificationMaterial"]["tlogEntries"] = other["verificationMaterial"]["tlogEntries"]
    return Case(bundle)


# TLOG_KEY_UNKNOWN (steps 1 and 5)

@case("TLOG_KEY_UNKNOWN")
def log_id_unknown_rekor1(inst: FakeInstance) -> Case:
    bundle = inst.sign_artifact(ARTIFACT, rekor=1)
    entry(bundle)["logId"]["keyId"] = b64(hashlib.sha256(b"no such log").digest())
    return Case(bundle)


@case("TLOG_KEY_UNKNOWN")
def log_id_unknown_rekor2(inst: FakeInstance) -> Case:
    bundle = inst.sign_artifact(ARTIFACT, rekor=2)
    entry(bundle)["logId"]["keyId"] = flip(entry(bundle)["logId"]["keyId"], 0)
    return Case(bundle)


@case("TLOG_KEY_UNKNOWN")
def log_not_in_the_root(inst: FakeInstance) -> Case:
    document = inst.trusted_root_json()
    document["tlogs"] = [document["tlogs"][1]]  # only the v2 log is trusted
    return Case(inst.sign_artifact(ARTIFACT, rekor=1), root=inst.trusted_root(document))


@case("TLOG_KEY_UNKNOWN")
def log_key_valid_for_ends_before_integrated_time(inst: FakeInstance) -> Case:
    window = ValidityWindow(T0 - timedelta(days=400), T0 - timedelta(days=1))
    return Case(inst.sign_artifact(ARTIFACT), root=inst.trusted_root(rekor_v1_validity=window))


@case("TLOG_KEY_UNKNOWN")
def log_key_valid_for_starts_after_integrated_time(inst: FakeInstance) -> Case:
    window = ValidityWindow(T0 + timedelta(minutes=1))
    return Case(inst.sign_artifact(ARTIFACT), root=inst.trusted_root(rekor_v1_validity=window))


# TIMESTAMP_INVALID (step 1)

@case("TIMESTAMP_INVALID")
def tsa_token_over_another_signature(inst: FakeInstance) -> Case:
    bundle = inst.sign_artifact(ARTIFACT, rekor=2)
    bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0] = {
        "signedTimestamp": b64(inst.tsa.response(b"another signature", gen_time=T0))}
    return Case(bundle)


@case("TIMESTAMP_INVALID")
def tsa_not_in_the_root(inst: FakeInstance) -> Case:
    return Case(inst.sign_artifact(ARTIFACT, rekor=2), root=inst.trusted_root(tsa=False))


@case("TIMESTAMP_INVALID")
def tsa_token_from_an_untrusted_tsa(inst: FakeInstance) -> Case:
    bundle = inst.sign_artifact(ARTIFACT, rekor=2)
    signature = base64.b64decode(bundle["messageSignature"]["signature"])
    rogue = FakeTSA(name="rogue-tsa")
    bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0] = {
        "signedTimestamp": b64(rogue.response(signature, gen_time=T0, embed_certs=True))}
    return Case(bundle)


@case("TIMESTAMP_INVALID")
def tsa_valid_for_ends_before_gen_time(inst: FakeInstance) -> Case:
    window = ValidityWindow(T0 - timedelta(days=400), T0 - timedelta(days=1))
    return Case(inst.sign_artifact(ARTIFACT, rekor=2), root=inst.trusted_root(tsa_validity=window))


@case("TIMESTAMP_INVALID")
def integrated_time_in_the_future(inst: FakeInstance) -> Case:
    # The verifier's clock says it is an hour before the (validly signed) integrated time.
    return Case(inst.sign_artifact(ARTIFACT, rekor=1), now=T0 - timedelta(hours=1))


@case("TIMESTAMP_INVALID")
def tsa_time_in_the_future(inst: FakeInstance) -> Case:
    return Case(inst.sign_artifact(ARTIFACT, rekor=2), now=T0 - timedelta(minutes=2))


# NO_VERIFIED_TIME (step 1)

@case("NO_VERIFIED_TIME")
def rekor2_without_timestamp(inst: FakeInstance) -> Case:
    return Case(inst.sign_artifact(ARTIFACT, rekor=2, timestamp=False))


@case("NO_VERIFIED_TIME")
def rekor1_v03_without_promise_or_timestamp(inst: FakeInstance) -> Case:
    # v0.3 only requires the proof; without the promise nothing vouches for a time.
    bundle = inst.sign_artifact(ARTIFACT, rekor=1)
    del entry(bundle)["inclusionPromise"]
    return Case(bundle)


@case("NO_VERIFIED_TIME")
def rekor2_dsse_without_timestamp(inst: FakeInstance) -> Case:
    return Case(inst.sign_dsse(statement_for(ARTIFACT), rekor=2, timestamp=False))


# IDENTITY_MISMATCH / ISSUER_MISMATCH / EXTENSION_MISMATCH (step 3)

@case("IDENTITY_MISMATCH")
def public_key_bundle_with_identity_policy(inst: FakeInstance) -> Case:
    # A managed-key bundle names no identity at all; the message points to --key.
    return Case(inst.sign_artifact(ARTIFACT, managed=True))


@case("IDENTITY_MISMATCH")
def other_identity(inst: FakeInstance) -> Case:
    return Case(inst.sign_artifact(ARTIFACT), policy=IdentityPolicy(
        identity="https://github.com/sealtrail/sealtrail/.github/workflows/release.yml"
                 "@refs/heads/main",
        issuer=DEFAULT_ISSUER))


@case("IDENTITY_MISMATCH")
def identity_regexp_matching_nowhere(inst: FakeInstance) -> Case:
    # Patterns match anywhere in the SAN, as cosign's (ADR 0012); this one matches nowhere.
    return Case(inst.sign_artifact(ARTIFACT), policy=IdentityPolicy(
        identity_regexp=r"^https://github\.com/another-org/", issuer=DEFAULT_ISSUER))


@case("IDENTITY_MISMATCH")
def dsse_other_identity(inst: FakeInstance) -> Case:
    return Case(inst.sign_dsse(statement_for(ARTIFACT), rekor=2), artifact=None,
                policy=IdentityPolicy(identity="mallory@example.com", issuer=DEFAULT_ISSUER))


@case("ISSUER_MISMATCH")
def other_issuer(inst: FakeInstance) -> Case:
    return Case(inst.sign_artifact(ARTIFACT), policy=IdentityPolicy(
        identity=DEFAULT_IDENTITY, issuer="https://accounts.google.com"))


@case("ISSUER_MISMATCH")
def certificate_without_issuer(inst: FakeInstance) -> Case:
    return Case(inst.sign_artifact(ARTIFACT, issuer=None))


@case("ISSUER_MISMATCH")
def issuer_regexp_not_matching(inst: FakeInstance) -> Case:
    return Case(inst.sign_artifact(ARTIFACT), policy=IdentityPolicy(
        identity=DEFAULT_IDENTITY, issuer_regexp=r"^https://gitlab\.com$"))


@case("EXTENSION_MISMATCH")
def github_claim_differs(inst: FakeInstance) -> Case:
    return Case(inst.sign_artifact(ARTIFACT, github=GITHUB_CLAIMS), policy=IdentityPolicy(
        identity=DEFAULT_IDENTITY, issuer=DEFAULT_ISSUER,
        extensions={"source_repository_ref": "refs/heads/evil"}))


@case("EXTENSION_MISMATCH")
def github_claim_absent(inst: FakeInstance) -> Case:
    return Case(inst.sign_artifact(ARTIFACT), policy=IdentityPolicy(
        identity=DEFAULT_IDENTITY, issuer=DEFAULT_ISSUER,
        extensions={"build_trigger": "push"}))


# KEY_MISMATCH (step 2)

@case("KEY_MISMATCH")
def certificate_bundle_with_key_policy(inst: FakeInstance) -> Case:
    signer = inst.signer()
    return Case(inst.sign_artifact(ARTIFACT, signer=signer),
                policy=KeyPolicy(signer.public_key_pem))


@case("KEY_MISMATCH")
def managed_bundle_with_another_key(inst: FakeInstance) -> Case:
    bundle = inst.sign_artifact(ARTIFACT, managed=True)
    return Case(bundle, policy=KeyPolicy(inst.signer(managed=True).public_key_pem))


@case("KEY_MISMATCH")
def managed_rekor2_dsse_with_another_key(inst: FakeInstance) -> Case:
    bundle = inst.sign_dsse(statement_for(ARTIFACT), rekor=2, managed=True)
    return Case(bundle, policy=KeyPolicy(inst.signer(managed=True).public_key_pem))


# SUBJECT_MISMATCH (step 4)

@case("SUBJECT_MISMATCH")
def intoto_subject_is_not_the_artifact(inst: FakeInstance) -> Case:
    return Case(inst.sign_dsse(statement_for(OTHER_ARTIFACT)))


@case("SUBJECT_MISMATCH")
def intoto_subject_digest_is_not_the_artifact_rekor2(inst: FakeInstance) -> Case:
    statement = statement_for(ARTIFACT)
    statement["subject"][0]["digest"] = {"sha256": hashlib.sha256(OTHER_ARTIFACT).hexdigest()}
    return Case(inst.sign_dsse(statement, rekor=2))


@case("SUBJECT_MISMATCH")
def payload_that_is_not_in_toto_with_an_artifact(inst: FakeInstance) -> Case:
    return Case(inst.sign_dsse(ARTIFACT, payload_type="text/plain"))


@pytest.mark.parametrize("make, code", CASES)
def test_mutation_fails_with_its_code(instance: FakeInstance, root: TrustedRoot,
                                      make: Callable[[FakeInstance], Case], code: str) -> None:
    mutated = make(instance)
    with pytest.raises(Error) as info:
        verify(instance, mutated.bundle, artifact=mutated.artifact, policy=mutated.policy,
               root=mutated.root or root, now=mutated.now)
    assert info.value.code == code, info.value.diagnostics()
    # Exit codes follow the class: 2 for unusable input, 1 for failed verification.
    assert info.value.exit_code == (2 if code == "BUNDLE_MALFORMED" else 1)


def _documented_verifier_codes() -> set[str]:
    text = (REPO / "docs" / "verification.md").read_text()
    # The sections on parsing and on the checks (0 and 1-5); later sections (detached
    # look-up, trust roots, the table of every code) are about other steps.
    start = text.index("## 0. Parsing")
    text = text[start:text.index("\n## ", text.index("## 1", start))]
    known = {getattr(errors, name).code for name in errors.__all__}
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", text)) & known
    # Raised while reading other inputs (trust root, --key, files, flags), by the online
    # look-up of a detached signature's log entry, or by the trust-root lifecycle (a cached
    # root that must be updated), not by checking a bundle.
    return documented - {"TRUST_ROOT_MALFORMED", "KEY_MALFORMED", "INPUT_INVALID", "USAGE",
                         "LOG_ERROR", "LOG_ENTRY_NOT_FOUND", "SERVICE_UNAVAILABLE",
                         "TRUST_UPDATE_FAILED"}


def test_every_documented_code_has_a_mutation() -> None:
    covered = {param.values[1] for param in CASES}
    documented = _documented_verifier_codes()
    assert documented, "no codes found in docs/verification.md"
    assert documented <= covered, f"no mutation case for {sorted(documented - covered)}"
    assert covered <= documented, f"cases for undocumented codes {sorted(covered - documented)}"


# -- messages name what was found ---------------------------------------------------------------

def test_identity_mismatch_names_the_identity_and_issuer_found(instance: FakeInstance) -> None:
    bundle = instance.sign_artifact(ARTIFACT)
    policy = IdentityPolicy(identity="someone@example.com", issuer=DEFAULT_ISSUER)
    with pytest.raises(errors.IdentityMismatchError) as info:
        verify(instance, bundle, policy=policy)
    text = info.value.diagnostics()
    assert DEFAULT_IDENTITY in text and DEFAULT_ISSUER in text and "someone@example.com" in text


def test_issuer_mismatch_names_the_issuer_and_identity_found(instance: FakeInstance) -> None:
    bundle = instance.sign_artifact(ARTIFACT)
    policy = IdentityPolicy(identity=DEFAULT_IDENTITY, issuer="https://accounts.google.com")
    with pytest.raises(errors.IssuerMismatchError) as info:
        verify(instance, bundle, policy=policy)
    assert DEFAULT_ISSUER in info.value.diagnostics()
    assert DEFAULT_IDENTITY in info.value.diagnostics()


def test_digest_mismatch_names_both_digests(instance: FakeInstance) -> None:
    with pytest.raises(errors.DigestMismatchError) as info:
        verify(instance, instance.sign_artifact(ARTIFACT), artifact=OTHER_ARTIFACT)
    text = info.value.diagnostics()
    assert hashlib.sha256(ARTIFACT).hexdigest() in text
    assert hashlib.sha256(OTHER_ARTIFACT).hexdigest() in text


# -- log key validity for Rekor v2 entries ------------------------------------------------------

def test_rekor2_log_key_expired_before_the_timestamp(instance: FakeInstance) -> None:
    window = ValidityWindow(T0 - timedelta(days=400), T0 - timedelta(days=1))
    bundle = instance.sign_artifact(ARTIFACT, rekor=2)
    with pytest.raises(errors.TlogKeyUnknownError):
        verify(instance, bundle, root=instance.trusted_root(rekor_v2_validity=window))
