"""The `sealtrail verify` command line: outputs, exit codes and the user-facing failures."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from sealtrail.cli.main import main
from tests.samples import (
    BEACON_IDENTITY as IDENTITY,
    BEACON_ISSUER as ISSUER,
    CASES,
    RELEASE,
)

POLICY = ["--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_verifies_and_names_the_identity(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "verify", str(RELEASE / "hello.txt"), *POLICY)
    assert code == 0
    assert f"identity {IDENTITY}" in out and f"issuer {ISSUER}" in out
    assert "logged at index 79571823" in out


def test_json_output_has_the_documented_fields(capsys: pytest.CaptureFixture[str]) -> None:
    digest = hashlib.sha256((RELEASE / "hello.txt").read_bytes()).hexdigest()
    code, out, _ = run(capsys, "verify", f"sha256:{digest}", "--bundle",
                       str(RELEASE / "hello.txt.sigstore.json"), *POLICY, "--json")
    assert code == 0
    record = json.loads(out)
    assert record["ok"] is True and record["code"] is None
    assert record["identity"] == IDENTITY and record["issuer"] == ISSUER
    assert record["log_index"] == 79571823
    assert record["verified_time"] == "2024-03-19T17:26:26Z"
    assert {"ok", "code", "message", "identity", "issuer", "log_index",
            "verified_time"} <= set(record)


def test_another_artifact_fails_naming_the_digests(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "hello.txt"
    other.write_text("not the release\n")
    shutil.copy(RELEASE / "hello.txt.sigstore.json", tmp_path / "hello.txt.sigstore.json")
    code, _, err = run(capsys, "verify", str(other), *POLICY)
    assert code == 1
    assert "DIGEST_MISMATCH" in err
    assert hashlib.sha256(other.read_bytes()).hexdigest() in err
    assert hashlib.sha256((RELEASE / "hello.txt").read_bytes()).hexdigest() in err


def test_another_identity_fails_naming_what_was_found(capsys: pytest.CaptureFixture[str]) -> None:
    wanted = "https://github.com/example/project/.github/workflows/release.yml@refs/tags/v1"
    code, _, err = run(capsys, "verify", str(RELEASE / "hello.txt"),
                       "--certificate-identity", wanted, "--certificate-oidc-issuer", ISSUER)
    assert code == 1
    assert "IDENTITY_MISMATCH" in err and IDENTITY in err and ISSUER in err and wanted in err


def test_another_issuer_fails_naming_what_was_found(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "verify", str(RELEASE / "hello.txt"), "--certificate-identity",
                       IDENTITY, "--certificate-oidc-issuer", "https://accounts.google.com")
    assert code == 1
    assert "ISSUER_MISMATCH" in err and ISSUER in err


def test_regular_expressions_match_as_cosigns(capsys: pytest.CaptureFixture[str]) -> None:
    """ADR 0012 (superseding 0003): a match anywhere in the value, as Go's MatchString."""
    code, _, err = run(capsys, "verify", str(RELEASE / "hello.txt"),
                       "--certificate-identity-regexp", r"^https://github\.com/sigstore-conformance/",
                       "--certificate-oidc-issuer-regexp", r"^https://token\.actions\.")
    assert code == 0 and "warning" not in err
    # An unanchored pattern matches too, with a warning naming the risk.
    code, _, err = run(capsys, "verify", str(RELEASE / "hello.txt"),
                       "--certificate-identity-regexp", "sigstore-conformance",
                       "--certificate-oidc-issuer", ISSUER)
    assert code == 0
    assert "warning: --certificate-identity-regexp 'sigstore-conformance' is not anchored" in err
    # An anchored pattern that does not match says how patterns match.
    code, _, err = run(capsys, "verify", str(RELEASE / "hello.txt"),
                       "--certificate-identity-regexp", r"^https://github\.com/evil/",
                       "--certificate-oidc-issuer", ISSUER)
    assert code == 1 and "IDENTITY_MISMATCH" in err and "matches anywhere in the value" in err
    assert err.count(IDENTITY) == 1


def test_github_claim_flags(capsys: pytest.CaptureFixture[str]) -> None:
    repo = "sigstore-conformance/extremely-dangerous-public-oidc-beacon"
    code, _, _ = run(capsys, "verify", str(RELEASE / "hello.txt"), *POLICY,
                     "--cert-github-workflow-repository", repo,
                     "--cert-github-workflow-trigger", "workflow_dispatch")
    assert code == 0
    code, _, err = run(capsys, "verify", str(RELEASE / "hello.txt"), *POLICY,
                       "--cert-github-workflow-repository", "evil/fork")
    assert code == 1 and "EXTENSION_MISMATCH" in err and repo in err


def test_many_artifacts_report_each(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.txt"
    bad = tmp_path / "bad.txt"
    shutil.copy(RELEASE / "hello.txt", good)
    bad.write_text("tampered\n")
    for path in (good, bad):
        shutil.copy(RELEASE / "hello.txt.sigstore.json", str(path) + ".sigstore.json")
    code, out, err = run(capsys, "verify", str(good), str(bad), *POLICY, "--json")
    assert code == 1
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["ok"] for r in records] == [True, False]
    assert records[1]["code"] == "DIGEST_MISMATCH"


def test_staging_root_rejects_a_production_bundle(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "verify", str(RELEASE / "hello.txt"), *POLICY, "--staging")
    assert code == 1 and "TLOG_KEY_UNKNOWN" in err


def test_managed_key(capsys: pytest.CaptureFixture[str]) -> None:
    case = CASES / "managed-key-happy-path"
    code, out, _ = run(capsys, "verify", str(CASES / "a.txt"), "--bundle",
                       str(case / "bundle.sigstore.json"), "--key", str(case / "key.pub"))
    assert code == 0 and "key " in out
    # The key of another bundle is reported as another key.
    code, _, err = run(capsys, "verify", str(RELEASE / "hello.txt"), "--key", str(case / "key.pub"))
    assert code == 1 and "KEY_MISMATCH" in err


@pytest.mark.parametrize("argv, fragment", [
    (["verify", "x"], "give --certificate-identity"),
    # One --bundle may serve several artifacts (an attestation); a detached pair may not.
    (["verify", "a", "b", "--signature", "s", "--certificate", "c", *POLICY], "single ARTIFACT"),
    (["verify", "sha256:" + "0" * 64, *POLICY], "needs --bundle"),
    (["verify", "x", "--certificate-identity-regexp", "(", "--certificate-oidc-issuer", ISSUER],
     "regular expression"),
    (["verify", "x", "--key", "/nonexistent/key.pem"], "cannot read key"),
    (["verify", "sha256:zz", "--bundle", "b", *POLICY], "not hex"),
    (["verify", "x", "--trusted-root", "/nonexistent/root.json", *POLICY], "cannot read trusted root"),
])
def test_usage_errors_exit_2_with_one_line(argv: list[str], fragment: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert fragment in err
    assert len(err.strip().splitlines()) == 1


def test_missing_bundle_is_an_input_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    artifact = tmp_path / "lonely.txt"
    artifact.write_text("no bundle\n")
    code, _, err = run(capsys, "verify", str(artifact), *POLICY)
    assert code == 2 and "INPUT_INVALID" in err and "lonely.txt.sigstore.json" in err


def test_no_command_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--version")[0] == 0
    assert run(capsys)[0] == 2


@pytest.mark.parametrize("argv, private, public", [
    ([], "sealtrail.key", "sealtrail.pub"),
    (["--output-key", "release.key"], "release.key", "release.pub"),
    (["--output-key", "release"], "release", "release.pub"),
    (["--output-key-prefix", "release"], "release.key", "release.pub"),
])
def test_generate_key_pair_writes_the_names_its_help_gives(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        argv: list[str], private: str, public: str) -> None:
    """cosign's names: PREFIX.key and PREFIX.pub; an explicit key path KEY gets the sibling
    with its .key suffix replaced by .pub. The help and docs/signing.md say so."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEALTRAIL_PASSPHRASE", "correct horse")
    code, out, _ = run(capsys, "generate-key-pair", *argv)
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([private, public])
    assert f"wrote {private} " in out and f" {public} " in out
    with pytest.raises(SystemExit):
        main(["generate-key-pair", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for text in ("PREFIX.key and PREFIX.pub", "release.key -> release.pub"):
        assert text in help_text
    docs = " ".join((Path(__file__).parents[2] / "docs" / "signing.md").read_text().split())
    assert "`KEY.pub`" not in docs and "release.key -> release.pub" in docs
