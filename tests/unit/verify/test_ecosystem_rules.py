"""Issue 13 B: bundles as other Sigstore clients write them, accepted and refused as they are.

Every bundle comes from :class:`tests.fakes.instance.FakeInstance`, shaped the way the named
client or spec writes it. Real bundles from other clients' test suites are checked in
``tests/unit/verify/test_ecosystem_vectors.py``.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sealtrail.errors import Error, UsageError
from sealtrail.models.bundle import Bundle
from sealtrail.models.trusted_root import TrustedRoot
from sealtrail.verify.policy import IdentityPolicy
from sealtrail.verify.verifier import VerificationResult, Verifier
from tests.fakes.ca import DEFAULT_IDENTITY, DEFAULT_ISSUER
from tests.fakes.instance import FakeInstance, FakeRekor, b64, body_of, set_body
from tests.fakes.notes import make_ecdsa_log, make_ed25519_log

ARTIFACT = b"sealtrail release 1.0.0\n"
POLICY = IdentityPolicy(identity=DEFAULT_IDENTITY, issuer=DEFAULT_ISSUER)


@pytest.fixture(scope="module")
def inst() -> FakeInstance:
    return FakeInstance()


def verify(inst: FakeInstance, bundle: dict[str, Any], *, root: TrustedRoot | None = None,
           artifact: bytes | None = ARTIFACT, **options: Any) -> VerificationResult:
    verifier = Verifier(root or inst.trusted_root(), now=inst.now, **options)
    text = json.dumps(bundle)
    if artifact is None:
        return verifier.verify_dsse(text, POLICY)
    return verifier.verify_artifact(artifact, text, POLICY)


def code_of(inst: FakeInstance, bundle: dict[str, Any], **options: Any) -> str:
    with pytest.raises(Error) as info:
        verify(inst, bundle, **options)
    return info.value.code


def entries(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return bundle["verificationMaterial"]["tlogEntries"]  # type: ignore[no-any-return]


# -- B1: protobuf JSON zero values --------------------------------------------------------------

@pytest.mark.parametrize("rekor", [1, 2])
def test_an_entry_at_log_index_0_has_no_log_index_field(rekor: int) -> None:
    # SPEC: protobuf JSON mapping omits zero int64 values: the first entry of a log is
    # written without "logIndex" (and its proof without "logIndex" too).
    inst = FakeInstance()
    if rekor == 1:
        inst.rekor_v1 = FakeRekor(make_ecdsa_log("https://rekor.fake.test"), version=1, filler=0)
    else:
        inst.rekor_v2 = FakeRekor(make_ed25519_log("https://log2099-1.rekor.fake.test"),
                                  version=2, filler=0)
    bundle = inst.sign_artifact(ARTIFACT, rekor=rekor)
    entry = entries(bundle)[0]
    assert entry["logIndex"] == "0" and entry["inclusionProof"]["logIndex"] == "0"
    del entry["logIndex"], entry["inclusionProof"]["logIndex"]
    assert verify(inst, bundle).log_index == 0


def test_trusted_root_keys_without_valid_for_are_valid_at_every_time(inst: FakeInstance) -> None:
    # SPEC: sigstore_common.proto PublicKey: `optional TimeRange valid_for`.
    document = inst.trusted_root_json()
    for group in ("tlogs", "ctlogs"):
        for log in document[group]:
            del log["publicKey"]["validFor"]
    root = TrustedRoot.from_json(json.dumps(document))
    verify(inst, inst.sign_artifact(ARTIFACT, rekor=1), root=root)
    verify(inst, inst.sign_artifact(ARTIFACT, rekor=2), root=root)


def test_open_ended_validity_has_no_end(inst: FakeInstance) -> None:
    document = inst.trusted_root_json()
    assert "end" not in document["certificateAuthorities"][0]["validFor"]
    verify(inst, inst.sign_artifact(ARTIFACT), root=TrustedRoot.from_json(json.dumps(document)))


# -- B2: promise-only Rekor v1 entries ----------------------------------------------------------

@pytest.mark.parametrize("kind", ["dsse", "intoto"])
def test_v01_dsse_bundle_with_only_a_promise_verifies(inst: FakeInstance, kind: str) -> None:
    # intoto entries are at version 0.0.2 on Rekor v1 (sigstore-js and npm, v0.1 bundles).
    bundle = inst.sign_dsse({"_type": "https://in-toto.io/Statement/v1",
                             "subject": [{"name": "a", "digest": {
                                 "sha256": __import__("hashlib").sha256(ARTIFACT).hexdigest()}}],
                             "predicateType": "https://example.test/p", "predicate": {}},
                            kind=kind, version="0.1")
    del entries(bundle)[0]["inclusionProof"]
    result = verify(inst, bundle)
    assert result.log_index == int(entries(bundle)[0]["logIndex"])


def test_v01_message_bundle_with_only_a_promise_verifies(inst: FakeInstance) -> None:
    bundle = inst.sign_artifact(ARTIFACT, version="0.1")
    del entries(bundle)[0]["inclusionProof"]
    verify(inst, bundle)


# -- B4: GitHub's own instance: no log entry, no SCT, a timestamp --------------------------------

def _github_like(inst: FakeInstance) -> tuple[dict[str, Any], TrustedRoot]:
    signer = inst.signer(sct_count=0)
    bundle = inst.sign_artifact(ARTIFACT, signer=signer, rekor=2, timestamp=True)
    bundle["verificationMaterial"]["tlogEntries"] = []
    document = inst.trusted_root_json()
    document["tlogs"] = []
    document["ctlogs"] = []
    return bundle, TrustedRoot.from_json(json.dumps(document))


def test_a_root_without_logs_verifies_a_bundle_without_log_entry_by_its_timestamp(
        inst: FakeInstance) -> None:
    bundle, root = _github_like(inst)
    result = verify(inst, bundle, root=root)
    assert result.log_index is None and result.log_url is None
    assert result.verified_time == inst.signed_at + timedelta(seconds=1)


def test_a_root_without_logs_still_needs_a_timestamp(inst: FakeInstance) -> None:
    bundle, root = _github_like(inst)
    del bundle["verificationMaterial"]["timestampVerificationData"]
    assert code_of(inst, bundle, root=root) == "NO_VERIFIED_TIME"


def test_a_root_with_logs_still_needs_a_log_entry(inst: FakeInstance) -> None:
    bundle, _ = _github_like(inst)
    assert code_of(inst, bundle) == "BUNDLE_MALFORMED"


def test_the_root_is_chosen_by_the_leaf_issuer(inst: FakeInstance) -> None:
    # A second instance (another CA) stands for GitHub's: its bundle verifies with the
    # public root first and the other root beside it, and the public bundle still does.
    other = FakeInstance()
    bundle, other_root = _github_like(other)
    primary = inst.trusted_root()
    verifier = Verifier(primary, now=other.now, other_roots=[other_root])
    assert verifier.verify_artifact(ARTIFACT, json.dumps(bundle), POLICY).log_index is None
    public = inst.sign_artifact(ARTIFACT)
    Verifier(primary, now=inst.now, other_roots=[other_root]).verify_artifact(
        ARTIFACT, json.dumps(public), POLICY)
    with pytest.raises(Error) as info:
        Verifier(primary, now=other.now).verify_artifact(ARTIFACT, json.dumps(bundle), POLICY)
    assert info.value.code == "BUNDLE_MALFORMED"  # the public root wants a log entry


def test_a_leaf_with_an_sct_needs_a_trusted_ct_log(inst: FakeInstance) -> None:
    bundle, root = _github_like(inst)
    signer = inst.signer()  # with an SCT
    with_sct = inst.sign_artifact(ARTIFACT, signer=signer, rekor=2, timestamp=True)
    with_sct["verificationMaterial"]["tlogEntries"] = []
    assert code_of(inst, with_sct, root=root) == "SCT_INVALID"


# -- B5: a threshold of verified times; duplicates; indexes --------------------------------------

def _bad_token(inst: FakeInstance) -> dict[str, str]:
    return {"signedTimestamp": b64(inst.tsa.response(b"another signature",
                                                     gen_time=inst.signed_at))}


def test_an_extra_bad_timestamp_does_not_fail_a_bundle_that_meets_the_threshold(
        inst: FakeInstance) -> None:
    # SPEC: sigstore-go VerifySignedTimestamp collects errors and fails only below the
    # threshold. Here the SET gives the one verified time needed.
    bundle = inst.sign_artifact(ARTIFACT, rekor=1)
    bundle["verificationMaterial"]["timestampVerificationData"] = {
        "rfc3161Timestamps": [_bad_token(inst)]}
    assert len(verify(inst, bundle).verified_times) == 1
    # A good token plus a bad one with a Rekor v2 entry (no SET): still one verified time.
    bundle = inst.sign_artifact(ARTIFACT, rekor=2)
    bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"].append(
        _bad_token(inst))
    assert len(verify(inst, bundle).verified_times) == 1


def test_below_the_threshold_the_timestamp_error_is_reported(inst: FakeInstance) -> None:
    bundle = inst.sign_artifact(ARTIFACT, rekor=1)
    bundle["verificationMaterial"]["timestampVerificationData"] = {
        "rfc3161Timestamps": [_bad_token(inst)]}
    assert code_of(inst, bundle, time_threshold=2) == "TIMESTAMP_INVALID"
    bundle = inst.sign_artifact(ARTIFACT, rekor=2)
    bundle["verificationMaterial"]["timestampVerificationData"] = {
        "rfc3161Timestamps": [_bad_token(inst)]}
    assert code_of(inst, bundle) == "TIMESTAMP_INVALID"


def test_threshold_of_two_counts_timestamps_and_integrated_times(inst: FakeInstance) -> None:
    bundle = inst.sign_artifact(ARTIFACT, rekor=1, timestamp=True)
    assert len(verify(inst, bundle, time_threshold=2).verified_times) == 2
    assert code_of(inst, bundle, time_threshold=3) == "NO_VERIFIED_TIME"


def test_threshold_must_be_a_positive_integer(inst: FakeInstance) -> None:
    for bad in (0, -1, True, "1"):
        with pytest.raises(UsageError):
            Verifier(inst.trusted_root(), time_threshold=bad)  # type: ignore[arg-type]


def test_a_bundle_listing_the_same_entry_twice_is_refused(inst: FakeInstance) -> None:
    bundle = inst.sign_artifact(ARTIFACT, rekor=1)
    entries(bundle).append(dict(entries(bundle)[0]))
    assert code_of(inst, bundle, time_threshold=2) == "BUNDLE_MALFORMED"
    assert code_of(inst, bundle) == "BUNDLE_MALFORMED"


def test_rekor_v2_entry_index_must_equal_its_proof_index(inst: FakeInstance) -> None:
    bundle = inst.sign_artifact(ARTIFACT, rekor=2)
    entries(bundle)[0]["logIndex"] = str(int(entries(bundle)[0]["logIndex"]) + 1)
    assert code_of(inst, bundle) == "TLOG_INCLUSION_INVALID"


def test_rekor_v1_proof_index_may_not_exceed_the_global_index(inst: FakeInstance) -> None:
    # Rekor v1: global index >= shard index (public-good: 79571823 vs 75408392). An entry
    # that claims a global index below its shard index is refused, SET re-signed over it.
    bundle = inst.sign_artifact(ARTIFACT, rekor=1)
    entry = entries(bundle)[0]
    proof_index = int(entry["inclusionProof"]["logIndex"])
    entry["logIndex"] = str(proof_index - 1)
    entry["inclusionPromise"] = {"signedEntryTimestamp": b64(inst.rekor_v1.sign_set(
        base64.b64decode(entry["canonicalizedBody"]), int(entry["integratedTime"]),
        proof_index - 1))}
    assert code_of(inst, bundle) == "TLOG_INCLUSION_INVALID"


# -- B8: Rekor v2 hashedrekord recording the certificate's public key ----------------------------

def _log_key_instead_of_certificate(inst: FakeInstance, key: Any) -> dict[str, Any]:
    bundle = inst.sign_artifact(ARTIFACT, rekor=2)
    body = body_of(bundle)
    signature = body["spec"]["hashedRekordV002"]["signature"]
    spki = key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)
    signature["verifier"] = {"publicKey": {"rawBytes": b64(spki)},
                             "keyDetails": signature["verifier"]["keyDetails"]}
    set_body(bundle, body)
    return inst.reseal(bundle)


def test_rekor_v2_entry_with_the_certificate_key_verifies(inst: FakeInstance) -> None:
    bundle = inst.sign_artifact(ARTIFACT, rekor=2)
    certificate = Bundle.from_json(json.dumps(bundle)).certificate
    assert certificate is not None
    signer_key = certificate.public_key()
    # Re-sign so the bundle's certificate is the one whose key the entry records.
    body = body_of(bundle)
    spki = signer_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    verifier_json = body["spec"]["hashedRekordV002"]["signature"]["verifier"]
    body["spec"]["hashedRekordV002"]["signature"]["verifier"] = {
        "publicKey": {"rawBytes": b64(spki)}, "keyDetails": verifier_json["keyDetails"]}
    set_body(bundle, body)
    verify(inst, inst.reseal(bundle))


def test_rekor_v2_entry_with_another_key_names_both_keys(inst: FakeInstance) -> None:
    bundle = _log_key_instead_of_certificate(inst, ec.generate_private_key(ec.SECP256R1())
                                             .public_key())
    with pytest.raises(Error) as info:
        verify(inst, bundle)
    assert info.value.code == "TLOG_ENTRY_MISMATCH"
    assert "records public key" in info.value.message
    assert "certificate's key is" in info.value.message


# -- B6: DSSE payloads that are not in-toto statements -------------------------------------------

def test_verify_dsse_checks_the_payload_type(inst: FakeInstance) -> None:
    bundle = inst.sign_dsse(b"plain text payload\n", payload_type="text/plain")
    verifier = Verifier(inst.trusted_root(), now=inst.now)
    result = verifier.verify_dsse(json.dumps(bundle), POLICY, payload_type="text/plain")
    assert result.payload == b"plain text payload\n" and result.statement is None
    with pytest.raises(Error) as info:
        verifier.verify_dsse(json.dumps(bundle), POLICY,
                             payload_type="application/vnd.in-toto+json")
    assert info.value.code == "SUBJECT_MISMATCH"
    assert info.value.actual == "text/plain"


# -- D: the library's inputs ---------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["trusted_root.json", b"{}", {"mediaType": "x"}, None])
def test_verifier_refuses_what_is_not_a_trusted_root(bad: Any) -> None:
    with pytest.raises(UsageError, match="TrustedRoot") as info:
        Verifier(bad)
    assert len(info.value.diagnostics()) < 300


def test_verify_artifact_refuses_a_wrong_policy_or_artifact(inst: FakeInstance) -> None:
    verifier = Verifier(inst.trusted_root(), now=inst.now)
    bundle = json.dumps(inst.sign_artifact(ARTIFACT))
    with pytest.raises(UsageError, match="policy"):
        verifier.verify_artifact(ARTIFACT, bundle, "identity")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="artifact"):
        verifier.verify_artifact("a.txt", bundle, POLICY)  # type: ignore[arg-type]


# -- B3: a private Rekor v1 deployment's checkpoint --------------------------------------------

def test_private_rekor_v1_checkpoint_under_its_own_host_name_verifies(inst: FakeInstance) -> None:
    # SPEC: rekor pkg/util/checkpoint.go: origin "<rekor_server.hostname> - <tree id>", the
    # host name defaulting to the machine's (here not the trusted root's baseUrl host), and
    # the note signed under that name with the log's key.
    from sealtrail.models.checkpoint import sign_note
    from tests.fakes.notes import checkpoint_body

    bundle = inst.sign_artifact(ARTIFACT, rekor=1)
    proof = entries(bundle)[0]["inclusionProof"]
    body = checkpoint_body("rekor-6c9f7d8b5-k2x4q - 3904496407287907110",
                           int(proof["treeSize"]), base64.b64decode(proof["rootHash"]))
    proof["checkpoint"]["envelope"] = sign_note(body, "rekor-6c9f7d8b5-k2x4q",
                                                inst.rekor_v1.fake.private_key)
    verify(inst, bundle)
    impostor = make_ecdsa_log("https://rekor.fake.test", tree_id=1)
    proof["checkpoint"]["envelope"] = sign_note(body, "rekor-6c9f7d8b5-k2x4q",
                                                impostor.private_key)
    assert code_of(inst, bundle) == "CHECKPOINT_INVALID"
