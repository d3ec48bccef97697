"""The sigstore-conformance sample (tests/vectors/conformance), verified in-process.

Each case must pass or fail as its directory name says; failing cases must fail with the
error code that names the broken property, so a case cannot "pass" by failing for an
unrelated reason.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sealtrail.errors import Error
from sealtrail.models.bundle import Bundle
from sealtrail.trustroot import load_trusted_root
from sealtrail.verify.policy import IdentityPolicy, KeyPolicy
from sealtrail.verify.verifier import Artifact, Verifier
from tests.samples import (
    BEACON_IDENTITY as DEFAULT_IDENTITY,
    BEACON_ISSUER as DEFAULT_ISSUER,
    CASES,
)


# Why each negative case must fail (the code of the first failing check).
EXPECTED_CODES = {
    "bundle-malformed-json_fail": "BUNDLE_MALFORMED",
    "bundle-unknown-version_fail": "BUNDLE_MALFORMED",
    "checkpoint-wrong-roothash_fail": "CHECKPOINT_INVALID",
    "dsse-invalid-sig_fail": "SIGNATURE_INVALID",
    "integrated-time-in-future_fail": "CERT_CHAIN_INVALID",
    "intoto-expired-certificate_fail": "CERT_CHAIN_INVALID",
    "invalid-ct-key_fail": "SCT_INVALID",
    "invalid-inclusion-proof_fail": "TLOG_INCLUSION_INVALID",
    "managed-key-wrong-key_fail": "KEY_MALFORMED",
    "rekor2-checkpoint-missing-origin_fail": "CHECKPOINT_INVALID",
    "rekor2-no-timestamp_fail": "NO_VERIFIED_TIME",
    "rekor2-timestamp-untrusted-tsa-with-embedded-cert_fail": "TIMESTAMP_INVALID",
    "set-invalid-signature_fail": "SET_INVALID",
    "signature-mismatch_fail": "SIGNATURE_INVALID",
    "wrong-hashedrekord-entry_fail": "TLOG_ENTRY_MISMATCH",
}


def _cases() -> list[Path]:
    return sorted(p for p in CASES.iterdir() if p.is_dir())


def _run(case: Path, by_digest: bool) -> None:
    def opt(name: str) -> Path | None:
        path = case / name
        return path if path.is_file() else None

    root = load_trusted_root(opt("trusted_root.json"))
    artifact_bytes = (opt("artifact") or CASES / "a.txt").read_bytes()
    if opt("key.pub"):
        policy: IdentityPolicy | KeyPolicy = KeyPolicy((case / "key.pub").read_bytes())
    else:
        identity = opt("identity")
        issuer = opt("issuer")
        policy = IdentityPolicy(
            identity=identity.read_text().strip() if identity else DEFAULT_IDENTITY,
            issuer=issuer.read_text().strip() if issuer else DEFAULT_ISSUER)
    bundle = Bundle.from_json((case / "bundle.sigstore.json").read_bytes())
    artifact = (Artifact.from_digest("sha256:" + hashlib.sha256(artifact_bytes).hexdigest())
                if by_digest else Artifact.from_bytes(artifact_bytes))
    Verifier(root).verify_artifact(artifact, bundle, policy)


@pytest.mark.parametrize("by_digest", [False, True], ids=["path", "digest"])
@pytest.mark.parametrize("case", _cases(), ids=lambda p: p.name)
def test_conformance_case(case: Path, by_digest: bool) -> None:
    if case.name.endswith("_fail"):
        with pytest.raises(Error) as info:
            _run(case, by_digest)
        assert info.value.code == EXPECTED_CODES[case.name], info.value.diagnostics()
    else:
        _run(case, by_digest)


def test_every_negative_case_has_an_expected_code() -> None:
    negatives = {p.name for p in _cases() if p.name.endswith("_fail")}
    assert negatives == set(EXPECTED_CODES)
