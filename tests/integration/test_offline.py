"""Verification never opens a network connection.

Two proofs: the CLI runs in-process with every socket operation made to fail, and the
installed `sealtrail` command runs in a network namespace that has no network at all.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sealtrail.cli.main import main
from tests.fakes.network import NetworkUsedError, forbid_network
from tests.samples import (
    BEACON_IDENTITY as IDENTITY,
    BEACON_ISSUER as ISSUER,
    CASES,
    RELEASE,
)



@pytest.fixture
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return forbid_network(monkeypatch)


def test_the_guard_detects_network_use(no_sockets: list[str]) -> None:
    # Mutation check for the fixture itself: any attempt is recorded and refused.
    with pytest.raises(NetworkUsedError):
        socket.create_connection(("127.0.0.1", 9))
    assert no_sockets == ["socket.create_connection"]


def test_verify_runs_with_sockets_forbidden(no_sockets: list[str], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    # Many artifacts so that the batch path (worker processes, forked with the guard) runs too.
    artifacts = []
    for i in range(10):
        artifact = tmp_path / f"hello-{i}.txt"
        shutil.copy(RELEASE / "hello.txt", artifact)
        shutil.copy(RELEASE / "hello.txt.sigstore.json", str(artifact) + ".sigstore.json")
        artifacts.append(str(artifact))
    code = main(["verify", *artifacts, "--certificate-identity", IDENTITY,
                 "--certificate-oidc-issuer", ISSUER, "--jobs", "2"])
    assert code == 0, capsys.readouterr()
    assert capsys.readouterr().out.count("OK: ") == 10
    # The staging root and a custom root are offline too.
    code = main(["verify", str(CASES / "a.txt"), "--bundle",
                 str(CASES / "rekor2-happy-path" / "bundle.sigstore.json"),
                 "--trusted-root", str(CASES / "rekor2-happy-path" / "trusted_root.json"),
                 "--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER])
    assert code == 0
    assert no_sockets == []


def test_release_verify_runs_with_sockets_forbidden(no_sockets: list[str], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """`release verify` over ten signed files (worker processes, forked with the guard). The
    sample release has no signed SHA256SUMS, so that row fails, offline, and only it."""
    import hashlib
    import json

    lines = []
    for i in range(10):
        artifact = tmp_path / f"hello-{i}.txt"
        shutil.copy(RELEASE / "hello.txt", artifact)
        shutil.copy(RELEASE / "hello.txt.sigstore.json", str(artifact) + ".sigstore.json")
        lines.append(f"{hashlib.sha256(artifact.read_bytes()).hexdigest()}  {artifact.name}\n")
    (tmp_path / "SHA256SUMS").write_text("".join(lines))
    code = main(["release", "verify", str(tmp_path), "--certificate-identity", IDENTITY,
                 "--certificate-oidc-issuer", ISSUER, "--jobs", "2", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 1 and result["failed"] == ["SHA256SUMS"], result
    assert [row["code"] for row in result["results"]][:2] == ["CHECKSUMS_MISSING", None]
    assert sum(row["ok"] for row in result["results"]) == 11  # ten files, the provenance row
    assert no_sockets == []


def _unshare_works() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    return subprocess.run([unshare, "-rn", "true"], capture_output=True).returncode == 0


@pytest.mark.integration
def test_installed_command_verifies_in_a_namespace_without_network() -> None:
    if not _unshare_works():
        pytest.skip("unshare -rn (user + network namespace) is not available here")
    command = str(Path(sys.executable).parent / "sealtrail")
    done = subprocess.run(
        ["unshare", "-rn", command, "verify", str(RELEASE / "hello.txt"),
         "--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "OK: " in done.stdout
    # And the namespace really has no network: a connection attempt fails there.
    probe = subprocess.run(
        ["unshare", "-rn", sys.executable, "-c",
         "import socket; socket.create_connection(('1.1.1.1', 443), timeout=2)"],
        capture_output=True, text=True, timeout=60)
    assert probe.returncode != 0


def test_verify_vsa_runs_with_sockets_forbidden(no_sockets: list[str], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from tests.unit.provenance.test_vsa import DIGEST, RESOURCE, VERIFIER, envelope, pem_of

    (tmp_path / "vsa.json").write_bytes(envelope())
    (tmp_path / "key.pub").write_bytes(pem_of("p256"))
    expected = ["--subject-digest", f"sha256:{DIGEST}", "--verifier-id", VERIFIER,
                "--resource-uri", RESOURCE]
    assert main(["verify-vsa", "--attestation-path", str(tmp_path / "vsa.json"), *expected,
                 "--public-key-path", str(tmp_path / "key.pub")]) == 0
    assert "Verifying VSA: PASSED" in capsys.readouterr().err
    # A Sigstore bundle is verified keyless against public-good's root, offline: this one
    # verifies, and then is refused for what it holds (provenance, not a VSA).
    bundle = CASES / "happy-path-intoto-in-dsse-v3" / "bundle.sigstore.json"
    assert main(["verify-vsa", "--attestation-path", str(bundle), *expected,
                 "--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER]) == 1
    assert "FAILED: ErrorInvalidDssePayload: the statement is not a VSA" in \
        capsys.readouterr().err
    assert no_sockets == []


def test_verify_attestation_runs_with_sockets_forbidden(no_sockets: list[str],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    # Real actions/attest provenance, public-good and GitHub's roots chosen offline.
    vectors = Path(__file__).resolve().parents[1] / "vectors"
    artifact = vectors / "ecosystem" / "pypi-attestations" / "pypi_attestations-0.0.19.tar.gz"
    bundle = vectors / "github" / "pypi_attestations-0.0.19.tar.gz.slsa.sigstore.json"
    assert main(["verify-attestation", str(artifact), "--bundle", str(bundle),
                 "--owner", "trailofbits"]) == 0
    assert "✓ Verification succeeded!" in capsys.readouterr().out
    assert main(["verify-attestation", str(artifact), "--bundle", str(bundle),
                 "--owner", "sigstore"]) == 1
    assert no_sockets == []


def test_verify_pypi_runs_with_sockets_forbidden(no_sockets: list[str],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # Real PEP 740 material (pypi-attestations' test assets): attestations beside the
    # distribution, and a provenance file, verified without a connection.
    pypi = Path(__file__).resolve().parents[1] / "vectors" / "ecosystem" / "pypi-attestations"
    sdist = str(pypi / "pypi_attestations-0.0.19.tar.gz")
    repository = ["--repository", "https://github.com/trailofbits/pypi-attestations"]
    assert main(["verify-pypi", sdist, *repository, "--workflow", "release.yml"]) == 0
    assert capsys.readouterr().out.count("OK: ") == 2
    provenance = Path(__file__).resolve().parents[1] / "vectors" / "pypi" / \
        "pypi_attestations-0.0.19.tar.gz.provenance"
    assert main(["verify-pypi", sdist, "--provenance", str(provenance), *repository]) == 0
    assert no_sockets == []


def test_verify_artifact_runs_with_sockets_forbidden(no_sockets: list[str],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    # Real slsa-github-generator provenance (a Sigstore bundle), public-good's root offline;
    # a failing check and a refused bare envelope stay offline too.
    sample = Path(__file__).resolve().parents[1] / "vectors" / "slsa" / "slsa-sample"
    binary = str(sample / "binary-linux-amd64")
    provenance = sample / "gha_generic_v2.1.0_push-v14" / "binary-linux-amd64-push-v14.intoto.jsonl"
    flags = ["--provenance-path", str(provenance), "--source-uri",
             "github.com/slsa-framework/example-package"]
    assert main(["verify-artifact", binary, *flags, "--source-tag", "v14"]) == 0
    assert "PASSED: SLSA verification passed" in capsys.readouterr().err
    assert main(["verify-artifact", binary, *flags, "--source-tag", "v15"]) == 1
    assert "ErrorMismatchTag" in capsys.readouterr().err
    assert no_sockets == []
