"""`sealtrail verify-artifact --vsa-out` on real slsa-github-generator provenance (the sample
of tests/vectors/slsa, verified offline against public-good's root), key-signed: the VSA
verifies with `verify-vsa` and fails when its flags differ; nothing is written on failure."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from sealtrail.cli.main import main

SAMPLE = Path(__file__).resolve().parents[1] / "vectors" / "slsa" / "slsa-sample"
ARTIFACT = SAMPLE / "binary-linux-amd64"
PROVENANCE = SAMPLE / "gha_generic_v2.1.0_push-v14" / "binary-linux-amd64-push-v14.intoto.jsonl"
SOURCE = "github.com/slsa-framework/example-package"


@pytest.fixture
def key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SEALTRAIL_PASSPHRASE", "vsa test")
    assert main(["generate-key-pair", "--output-key-prefix", str(tmp_path / "vsa")]) == 0
    return tmp_path / "vsa"


def test_verify_artifact_writes_a_vsa_that_verify_vsa_accepts(
        tmp_path: Path, key: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "binary.vsa.json"
    digest = hashlib.sha256(ARTIFACT.read_bytes()).hexdigest()
    assert main(["verify-artifact", str(ARTIFACT), "--provenance-path", str(PROVENANCE),
                 "--source-uri", SOURCE, "--source-tag", "v14", "--vsa-out", str(out),
                 "--vsa-key", f"{key}.key"]) == 0
    err = capsys.readouterr().err
    assert "PASSED: SLSA verification passed" in err and f"wrote VSA {out}" in err
    body = json.loads(base64.b64decode(json.loads(out.read_bytes())["payload"]))
    predicate = body["predicate"]
    assert body["subject"] == [{"name": "binary-linux-amd64", "digest": {"sha256": digest}}]
    assert predicate["resourceUri"] == "git+https://github.com/slsa-framework/example-package"
    assert predicate["verifiedLevels"] == ["SLSA_BUILD_LEVEL_3"]
    assert predicate["inputAttestations"] == [{
        "name": PROVENANCE.name,
        "digest": {"sha256": hashlib.sha256(PROVENANCE.read_bytes()).hexdigest()}}]
    assert predicate["policy"]["uri"] == "urn:sealtrail:policy:verify-artifact"
    base = ["verify-vsa", "--attestation-path", str(out), "--subject-digest",
            f"sha256:{digest}", "--verifier-id", "pkg:pypi/sealtrail",
            "--public-key-path", f"{key}.pub"]
    resource = ["--resource-uri", predicate["resourceUri"]]
    assert main([*base, *resource, "--verified-level", "SLSA_BUILD_LEVEL_3"]) == 0
    assert "Verifying VSA: PASSED" in capsys.readouterr().err
    assert main([*base, "--resource-uri", "git+https://github.com/other/repo"]) == 1
    assert "FAILED: ErrorMismatchResourceURI" in capsys.readouterr().err
    assert main([*base, *resource, "--verified-level", "SLSA_BUILD_LEVEL_4"]) == 1
    assert "FAILED: ErrorMismatchVerifiedLevels" in capsys.readouterr().err
    # Other flags checked: another policy digest.
    again = tmp_path / "again.vsa.json"
    assert main(["verify-artifact", str(ARTIFACT), "--provenance-path", str(PROVENANCE),
                 "--source-uri", SOURCE, "--vsa-out", str(again), "--vsa-key",
                 f"{key}.key"]) == 0
    other = json.loads(base64.b64decode(json.loads(again.read_bytes())["payload"]))
    assert other["predicate"]["policy"]["digest"] != predicate["policy"]["digest"]


def test_no_vsa_after_a_failure_and_bad_vsa_flags_stop_early(
        tmp_path: Path, key: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "binary.vsa.json"
    assert main(["verify-artifact", str(ARTIFACT), "--provenance-path", str(PROVENANCE),
                 "--source-uri", "github.com/other/repo", "--vsa-out", str(out),
                 "--vsa-key", f"{key}.key"]) == 1
    assert "ErrorMismatchSource" in capsys.readouterr().err
    assert not out.exists()
    assert main(["verify-artifact", str(ARTIFACT), "--provenance-path", str(PROVENANCE),
                 "--source-uri", SOURCE, "--vsa-key", f"{key}.key"]) == 2
    assert "--vsa-key needs --vsa-out" in capsys.readouterr().err
