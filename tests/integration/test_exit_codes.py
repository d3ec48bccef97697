"""Each exit status of `sealtrail`, shown by running the command (README "Exit status"):

0 ok, 1 verification failed, 2 usage or input error, 3 a service could not be reached or
failed (retry later); with --json, the error's object carries ``exit_code`` beside ``code``.

The service failures use an instance created with `sealtrail init` whose port is bound but
never listened on: connecting is refused, and no other process can take the port.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.samples import BEACON_IDENTITY as IDENTITY, BEACON_ISSUER as ISSUER, RELEASE

SEALTRAIL = str(Path(sys.executable).parent / "sealtrail")
ARTIFACT = RELEASE / "hello.txt"
BUNDLE = RELEASE / "hello.txt.sigstore.json"
POLICY = ["--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER]
# Token sources sealtrail or `id` would find in the environment: none of them here.
CI_VARIABLES = ("CI", "GITHUB_ACTIONS", "ACTIONS_ID_TOKEN_REQUEST_URL",
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "GITLAB_CI", "SIGSTORE_ID_TOKEN",
                "BUILDKITE", "CIRCLECI", "GOOGLE_SERVICE_ACCOUNT_NAME")


def sealtrail(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in CI_VARIABLES}
    return subprocess.run([SEALTRAIL, *argv], capture_output=True, text=True, timeout=120,
                          env={**base, **(env or {})})


def one_error_line(done: subprocess.CompletedProcess[str], code: str) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith(f"sealtrail: error: {code}: "), done.stderr
    return lines[-1]


@pytest.fixture(scope="module")
def unreachable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An instance directory whose services (all at one refused port) cannot be reached."""
    with socket.socket() as refused:
        refused.bind(("127.0.0.1", 0))
        directory = tmp_path_factory.mktemp("exit") / "instance"
        done = sealtrail("init", str(directory), "--port", str(refused.getsockname()[1]),
                         "--builtin-issuer")
        assert done.returncode == 0, done.stderr
        yield directory


def test_0_verified_and_1_verification_failed(tmp_path: Path) -> None:
    done = sealtrail("verify", str(ARTIFACT), *POLICY, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True and json.loads(done.stdout)["exit_code"] == 0
    other = tmp_path / "hello.txt"
    other.write_text("not what was signed\n")
    done = sealtrail("verify", str(other), "--bundle", str(BUNDLE), *POLICY, "--json")
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert result["code"] == "DIGEST_MISMATCH" and result["exit_code"] == 1


def test_2_usage_and_input_errors(tmp_path: Path) -> None:
    done = sealtrail("verify", str(ARTIFACT))  # no policy
    assert done.returncode == 2
    one_error_line(done, "USAGE")
    done = sealtrail("verify", "--no-such-flag", str(ARTIFACT))  # argparse
    assert done.returncode == 2 and "Traceback" not in done.stderr
    broken = tmp_path / "broken.sigstore.json"
    broken.write_text("{")
    done = sealtrail("verify", str(ARTIFACT), "--bundle", str(broken), *POLICY, "--json")
    assert done.returncode == 2
    result = json.loads(done.stdout)
    assert result["code"] == "BUNDLE_MALFORMED" and result["exit_code"] == 2


def test_2_with_json_for_an_error_before_any_artifact(tmp_path: Path) -> None:
    root = tmp_path / "trusted_root.json"
    root.write_text('{"mediaType": "nonsense"}')
    done = sealtrail("verify", str(ARTIFACT), "--trusted-root", str(root), *POLICY, "--json")
    assert done.returncode == 2
    error = json.loads(done.stdout)
    assert error["ok"] is False and error["exit_code"] == 2
    assert error["code"] == "TRUST_ROOT_MALFORMED"


def test_3_sign_when_the_ca_cannot_be_reached(unreachable: Path, tmp_path: Path) -> None:
    artifact = tmp_path / "release.tar.gz"
    artifact.write_bytes(b"release\n")
    token = sealtrail("token", "email", "dev@example.com", "--instance", str(unreachable))
    assert token.returncode == 0, token.stderr
    done = sealtrail("sign", str(artifact), "--instance-dir", str(unreachable),
                     "--identity-token", token.stdout.strip())
    assert done.returncode == 3, done.stderr
    line = one_error_line(done, "SERVICE_UNAVAILABLE")
    assert "127.0.0.1" in line
    assert not (tmp_path / "release.tar.gz.sigstore.json").exists()


def test_3_in_json_when_the_log_cannot_be_reached(unreachable: Path, tmp_path: Path) -> None:
    # A detached signature is looked up online in the instance's Rekor v1 log: refused.
    bundle = json.loads(BUNDLE.read_text())
    signature = tmp_path / "hello.txt.sig"
    signature.write_text(bundle["messageSignature"]["signature"])
    der = base64.b64decode(bundle["verificationMaterial"]["certificate"]["rawBytes"])
    certificate = tmp_path / "hello.txt.pem"
    certificate.write_bytes(x509.load_der_x509_certificate(der).public_bytes(
        serialization.Encoding.PEM))
    done = sealtrail("verify", str(ARTIFACT), "--signature", str(signature), "--certificate",
                     str(certificate), "--instance-dir", str(unreachable), *POLICY, "--json")
    assert done.returncode == 3, done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] is False and result["code"] == "LOG_ERROR" and result["exit_code"] == 3


def test_3_when_a_trust_root_cannot_be_refreshed(unreachable: Path, tmp_path: Path) -> None:
    root = unreachable / "tuf" / "metadata" / "1.root.json"
    with socket.socket() as refused:
        refused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{refused.getsockname()[1]}/tuf"
        done = sealtrail("trust", "add", "local", url, "--root", str(root),
                         env={"SEALTRAIL_TRUST_DIR": str(tmp_path / "trust")})
    assert done.returncode == 3, done.stderr
    one_error_line(done, "TRUST_UPDATE_FAILED")


def test_2_for_an_os_error_no_command_caught(tmp_path: Path) -> None:
    # Not a traceback and exit 1 (which would read as "verification failed").
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    done = sealtrail("init", str(blocker / "instance"))
    assert done.returncode == 2
    line = one_error_line(done, "INPUT_INVALID")
    assert str(blocker) in line and len(done.stderr.strip().splitlines()) == 1


def test_the_conformance_cli_uses_the_same_statuses(unreachable: Path, tmp_path: Path) -> None:
    conformance = str(Path(SEALTRAIL).parent / "sealtrail-conformance")

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([conformance, *argv], capture_output=True, text=True, timeout=120)

    verify = ["verify-bundle", "--certificate-identity", IDENTITY,
              "--certificate-oidc-issuer", ISSUER]
    assert run(*verify, "--bundle", str(BUNDLE), str(ARTIFACT)).returncode == 0
    other = tmp_path / "other.txt"
    other.write_text("not what was signed\n")
    assert run(*verify, "--bundle", str(BUNDLE), str(other)).returncode == 1
    missing = run(*verify, "--bundle", str(tmp_path / "missing.json"), str(ARTIFACT))
    assert missing.returncode == 2 and missing.stderr.startswith("INPUT_INVALID: ")
    token = sealtrail("token", "email", "dev@example.com", "--instance", str(unreachable))
    signed = run("sign-bundle", "--identity-token", token.stdout.strip(),
                 "--bundle", str(tmp_path / "out.sigstore.json"),
                 "--trusted-root", str(unreachable / "trust" / "trusted_root.json"),
                 "--signing-config", str(unreachable / "trust" / "signing_config.v0.2.json"),
                 str(ARTIFACT))
    assert signed.returncode == 3, signed.stderr
    assert signed.stderr.startswith("SERVICE_UNAVAILABLE: ")
