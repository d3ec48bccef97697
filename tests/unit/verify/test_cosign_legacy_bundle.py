"""Issue 13 B9: cosign's legacy bundle (`cosign sign-blob --bundle`, cosign 1.x/2.x) verifies.

SPEC: cosign pkg/cosign/bundle: {base64Signature, cert: b64(PEM), rekorBundle:
{SignedEntryTimestamp, Payload: {body, integratedTime, logIndex, logID}}}. The bundles here
are the FakeInstance's v0.1 bundles rewritten in that layout, byte for byte what cosign
writes for the same signature, certificate and log entry.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from sealtrail.errors import Error
from sealtrail.models.bundle import Bundle
from sealtrail.models.cosign_bundle import COSIGN_LEGACY_MEDIA_TYPE
from sealtrail.verify.policy import IdentityPolicy, KeyPolicy, Policy
from sealtrail.verify.verifier import VerificationResult, Verifier
from tests.fakes.ca import DEFAULT_IDENTITY, DEFAULT_ISSUER
from tests.fakes.instance import FakeInstance, Signer, b64

ARTIFACT = b"sealtrail release 1.0.0\n"
POLICY = IdentityPolicy(identity=DEFAULT_IDENTITY, issuer=DEFAULT_ISSUER)


@pytest.fixture(scope="module")
def inst() -> FakeInstance:
    return FakeInstance()


def cosign_bundle(inst: FakeInstance, signer: Signer | None = None,
                  *, timestamp: bool = False) -> dict[str, Any]:
    signer = signer or inst.signer()
    bundle = inst.sign_artifact(ARTIFACT, signer=signer, version="0.1", timestamp=timestamp)
    entry = bundle["verificationMaterial"]["tlogEntries"][0]
    legacy: dict[str, Any] = {
        "base64Signature": bundle["messageSignature"]["signature"],
        "cert": b64(signer.verifier_pem),
        "rekorBundle": {
            "SignedEntryTimestamp": entry["inclusionPromise"]["signedEntryTimestamp"],
            "Payload": {
                "body": entry["canonicalizedBody"],
                "integratedTime": int(entry["integratedTime"]),
                "logIndex": int(entry["logIndex"]),
                "logID": base64.b64decode(entry["logId"]["keyId"]).hex(),
            },
        },
    }
    if timestamp:
        legacy["RFC3161Timestamp"] = {"SignedRFC3161Timestamp": bundle["verificationMaterial"][
            "timestampVerificationData"]["rfc3161Timestamps"][0]["signedTimestamp"]}
    return legacy


def verify(inst: FakeInstance, legacy: dict[str, Any], policy: Policy = POLICY,
           artifact: bytes = ARTIFACT) -> VerificationResult:
    return Verifier(inst.trusted_root(), now=inst.now).verify_artifact(
        artifact, json.dumps(legacy), policy)


def test_keyless_cosign_bundle_verifies_at_its_integrated_time(inst: FakeInstance) -> None:
    legacy = cosign_bundle(inst)
    assert Bundle.from_json(json.dumps(legacy)).media_type == COSIGN_LEGACY_MEDIA_TYPE
    result = verify(inst, legacy)
    assert result.identity == DEFAULT_IDENTITY
    assert result.log_index == legacy["rekorBundle"]["Payload"]["logIndex"]
    assert result.verified_time.timestamp() == legacy["rekorBundle"]["Payload"]["integratedTime"]


def test_cosign_bundle_with_a_bare_pem_and_a_timestamp(inst: FakeInstance) -> None:
    signer = inst.signer()
    legacy = cosign_bundle(inst, signer, timestamp=True)
    legacy["cert"] = signer.verifier_pem.decode()
    assert len(verify(inst, legacy).verified_times) == 2


def test_key_signed_cosign_bundle_verifies_with_the_key(inst: FakeInstance) -> None:
    signer = inst.signer(managed=True)
    legacy = cosign_bundle(inst, signer)
    result = verify(inst, legacy, KeyPolicy(signer.public_key_pem))
    assert result.identity is None and result.key_id


@pytest.mark.parametrize("mutate, code", [
    (lambda b: b.__setitem__("base64Signature", b64(b"\x30\x06\x02\x01\x01\x02\x01\x01")),
     "SIGNATURE_INVALID"),
    (lambda b: b["rekorBundle"]["Payload"].__setitem__(
        "integratedTime", b["rekorBundle"]["Payload"]["integratedTime"] + 1), "SET_INVALID"),
    (lambda b: b["rekorBundle"]["Payload"].__setitem__("logID", "00" * 32), "TLOG_KEY_UNKNOWN"),
    (lambda b: b.__setitem__("extra", 1), "BUNDLE_MALFORMED"),
    (lambda b: b["rekorBundle"]["Payload"].__setitem__("logIndex", "\u0661"), "BUNDLE_MALFORMED"),
    (lambda b: b.__setitem__("cert", b64(b"not a pem")), "BUNDLE_MALFORMED"),
    (lambda b: b.pop("rekorBundle"), "BUNDLE_MALFORMED"),
])
def test_broken_cosign_bundles_fail_with_their_code(inst: FakeInstance, mutate: Any,
                                                    code: str) -> None:
    legacy = cosign_bundle(inst)
    mutate(legacy)
    with pytest.raises(Error) as info:
        verify(inst, legacy)
    assert info.value.code == code, info.value.diagnostics()


def test_another_artifact_fails(inst: FakeInstance) -> None:
    with pytest.raises(Error) as info:
        verify(inst, cosign_bundle(inst), artifact=b"another release\n")
    assert info.value.code == "DIGEST_MISMATCH"
