"""`sealtrail verify-vsa` and the --vsa-out writer (cli/vsa_commands.py), in process.

The VSAs are crafted and signed here (tests/unit/provenance/test_vsa.py has the helpers);
no network: the keyless path is exercised against a local instance in
tests/integration/test_vsa.py.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from sealtrail.cli.main import main
from sealtrail.cli.vsa_commands import add_vsa_out_arguments, check_vsa_arguments, write_vsa
from sealtrail.errors import UsageError
from tests.unit.provenance.test_vsa import (
    DIGEST,
    KEYS,
    RESOURCE,
    VERIFIER,
    envelope,
    predicate,
    statement,
)


def pem(name: str) -> bytes:
    return KEYS[name].public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)


def cli(tmp_path: Path, data: bytes, *extra: str, key: str = "p256") -> list[str]:
    (tmp_path / "vsa.json").write_bytes(data)
    (tmp_path / "key.pub").write_bytes(pem(key))
    return ["verify-vsa", "--attestation-path", str(tmp_path / "vsa.json"),
            "--subject-digest", f"sha256:{DIGEST}", "--verifier-id", VERIFIER,
            "--resource-uri", RESOURCE, "--public-key-path", str(tmp_path / "key.pub"), *extra]


@pytest.mark.parametrize("key", sorted(KEYS))
def test_passed(tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str) -> None:
    assert main(cli(tmp_path, envelope(key=key), "--verified-level", "SLSA_BUILD_LEVEL_2",
                    key=key)) == 0
    out, err = capsys.readouterr()
    assert err.strip() == "Verifying VSA: PASSED" and out == ""


def test_failed_lines_name_the_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (["--resource-uri", "pkg:pypi/other"], "ErrorMismatchResourceURI"),
        (["--verifier-id", "https://other.example"], "ErrorMismatchVerifierID"),
        (["--verified-level", "SLSA_BUILD_LEVEL_4"], "ErrorMismatchVerifiedLevels"),
        (["--subject-digest", "sha256:" + "0" * 64], "ErrorMissingSubjectDigest"),
        (["--public-key-id", "SHA256:other"], "ErrorNoValidSignature"),
    ]
    for extra, name in cases:
        assert main(cli(tmp_path, envelope(), *extra)) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"Verifying VSA: FAILED: {name}: "), err
        assert err.count("\n") == 1 and "Traceback" not in err
    data = envelope(statement(predicate(verificationResult="FAILED")))
    assert main(cli(tmp_path, data)) == 1
    assert "FAILED: ErrorInvalidVerificationResult" in capsys.readouterr().err
    assert main(cli(tmp_path, b'{"payloadType": "x"')) == 1
    assert "FAILED: ErrorInvalidDssePayload" in capsys.readouterr().err
    assert main(cli(tmp_path, envelope(statement(predicate(resourceUri=""))))) == 1
    assert "FAILED: ErrorEmptyRequiredField" in capsys.readouterr().err


def test_json_and_print_attestation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = envelope()
    assert main(cli(tmp_path, data, "--json")) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] is True and result["result"] == "PASSED"
    assert result["verified_levels"] == ["SLSA_BUILD_LEVEL_3", "ACME_REVIEWED"]
    assert result["key_id"].startswith("SHA256:")
    assert main(cli(tmp_path, data, "--json", "--resource-uri", "x")) == 1
    failed = json.loads(capsys.readouterr().out)
    assert failed["ok"] is False and failed["code"] == "ErrorMismatchResourceURI"
    assert main(cli(tmp_path, data, "--print-attestation")) == 0
    printed = capsys.readouterr().out
    assert printed.rstrip("\n").encode() == base64.b64decode(json.loads(data)["payload"])


@pytest.mark.parametrize("change,message", [
    (["--subject-digest", "nodigest"], "ALG:VALUE"),
    (["--verified-level", "SLSA_BUILD_X"], "SLSA_<TRACK>_LEVEL_<n>"),
    (["--verifier-id", ""], "--verifier-id"),
])
def test_bad_flags_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    change: list[str], message: str) -> None:
    assert main(cli(tmp_path, envelope(), *change)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_input_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = cli(tmp_path, envelope())
    (tmp_path / "vsa.json").unlink()
    assert main(argv) == 2
    assert "cannot read attestation" in capsys.readouterr().err
    argv = cli(tmp_path, envelope())
    index = argv.index("--public-key-path")
    assert main(argv[:index] + argv[index + 2:]) == 2
    assert "--public-key-path is required" in capsys.readouterr().err
    (tmp_path / "key.pub").write_bytes(b"not a key")
    assert main(argv) == 2
    assert "KEY_MALFORMED" in capsys.readouterr().err


def test_a_bundle_needs_an_identity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
              "verificationMaterial": {}, "dsseEnvelope": json.loads(envelope())}
    argv = cli(tmp_path, json.dumps(bundle).encode())
    index = argv.index("--public-key-path")
    assert main(argv[:index] + argv[index + 2:]) == 2
    assert "--certificate-identity" in capsys.readouterr().err
    assert main(argv[:index] + argv[index + 2:] + [
        "--certificate-identity", "a@example.com", "--certificate-oidc-issuer",
        "https://issuer.example"]) == 2
    assert "FAILED: ErrorInvalidFormat" in capsys.readouterr().err


# -- --vsa-out -----------------------------------------------------------------------------------


def vsa_args(*argv: str, **extra: Any) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_vsa_out_arguments(parser)
    args = parser.parse_args(list(argv))
    args.command = "verify-artifact"
    for key, value in extra.items():
        setattr(args, key, value)
    return args


def test_without_vsa_out_nothing_is_written_and_vsa_flags_are_refused() -> None:
    assert write_vsa(vsa_args(), [("a", b"\0" * 32)], [], {}, None) is None
    with pytest.raises(UsageError, match="--vsa-resource-uri needs --vsa-out"):
        check_vsa_arguments(vsa_args("--vsa-resource-uri", "x"))


def test_resource_uri_default_is_the_source_repository(tmp_path: Path) -> None:
    out = str(tmp_path / "v.json")
    with pytest.raises(UsageError, match="--vsa-resource-uri"):
        check_vsa_arguments(vsa_args("--vsa-out", out))
    from sealtrail.cli.vsa_commands import _resource_uri

    assert _resource_uri(vsa_args("--vsa-out", out, source_uri="github.com/o/r")) == \
        "git+https://github.com/o/r"
    assert _resource_uri(vsa_args("--vsa-out", out, source_uri="git+https://github.com/o/r/")) \
        == "git+https://github.com/o/r"
    assert _resource_uri(vsa_args("--vsa-out", out, repo="o/r")) == "git+https://github.com/o/r"
    assert _resource_uri(vsa_args("--vsa-out", out, owner="o")) == "https://github.com/o"
    assert _resource_uri(vsa_args("--vsa-out", out, "--vsa-resource-uri", "pkg:x",
                                  repo="o/r")) == "pkg:x"
    with pytest.raises(UsageError, match="does not exist"):
        check_vsa_arguments(vsa_args("--vsa-out", str(tmp_path / "no" / "v.json"),
                                     repo="o/r"))
    with pytest.raises(UsageError, match="excludes"):
        check_vsa_arguments(vsa_args("--vsa-out", out, "--vsa-key", "k", "--vsa-staging",
                                     repo="o/r"))


def test_key_signed_vsa_verifies_with_verify_vsa(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SEALTRAIL_PASSPHRASE", "pw")
    monkeypatch.chdir(tmp_path)
    assert main(["generate-key-pair", "--output-key-prefix", "release"]) == 0
    provenance = tmp_path / "a.intoto.jsonl"
    provenance.write_bytes(b'{"x": 1}\n')
    artifact_digest = hashlib.sha256(b"artifact").digest()
    when = datetime(2026, 12, 7, 12, 0, 0, tzinfo=timezone.utc)
    args = vsa_args("--vsa-out", "a.vsa.json", "--vsa-key", "release.key",
                    source_uri="github.com/o/r")
    written = write_vsa(args, [("a.bin", artifact_digest)], [str(provenance)],
                        {"source_uri": "github.com/o/r"}, "SLSA_BUILD_LEVEL_3",
                        clock=lambda: when)
    assert written == "a.vsa.json"
    assert "wrote VSA a.vsa.json (key SHA256:" in capsys.readouterr().err
    document = json.loads((tmp_path / "a.vsa.json").read_bytes())
    body = json.loads(base64.b64decode(document["payload"]))
    assert body["predicate"]["timeVerified"] == "2026-12-07T12:00:00Z"
    assert body["predicate"]["inputAttestations"] == [
        {"name": "a.intoto.jsonl", "digest": {"sha256": hashlib.sha256(b'{"x": 1}\n').hexdigest()}}]
    assert body["predicate"]["policy"]["uri"] == "urn:sealtrail:policy:verify-artifact"
    base = ["verify-vsa", "--attestation-path", "a.vsa.json", "--subject-digest",
            f"sha256:{artifact_digest.hex()}", "--verifier-id", "pkg:pypi/sealtrail",
            "--public-key-path", "release.pub"]
    assert main([*base, "--resource-uri", "git+https://github.com/o/r",
                 "--verified-level", "SLSA_BUILD_LEVEL_3"]) == 0
    assert main([*base, "--resource-uri", "git+https://github.com/o/other"]) == 1
    assert "ErrorMismatchResourceURI" in capsys.readouterr().err
    # Another key (a fresh pair) does not verify it.
    assert main(["generate-key-pair", "--output-key-prefix", "other"]) == 0
    other = [*base[:-1], "other.pub", "--resource-uri", "git+https://github.com/o/r"]
    assert main(other) == 1
    assert "ErrorNoValidSignature" in capsys.readouterr().err


def test_write_vsa_checks_its_flags_before_signing(tmp_path: Path) -> None:
    # Nothing is signed (no key is read, no service asked) for contradictory flags.
    args = vsa_args("--vsa-out", str(tmp_path / "v.json"), "--vsa-key", "missing.key",
                    "--vsa-staging", repo="o/r")
    with pytest.raises(UsageError, match="excludes"):
        write_vsa(args, [("a", b"\0" * 32)], [], {}, None)
    assert not (tmp_path / "v.json").exists()
