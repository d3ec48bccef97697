"""`sealtrail verify-pypi`, the installed command, on real PEP 740 attestations and PyPI
provenance files (pypi-attestations' test assets: tests/vectors/ecosystem/pypi-attestations and
tests/vectors/pypi, outcomes from its tests), and on an attestation signed by a local
sealtrail instance (`sealtrail serve`, 127.0.0.1, ephemeral port).

Exit statuses: 0 all verified, 1 a check failed, 2 usage or unreadable input (one line, no
traceback).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.instance_server import InstanceServer, run

pytestmark = pytest.mark.integration

SEALTRAIL = str(Path(sys.executable).parent / "sealtrail")
VECTORS = Path(__file__).resolve().parents[1] / "vectors"
ECO = VECTORS / "ecosystem" / "pypi-attestations"
OWN = VECTORS / "pypi"
SDIST = "pypi_attestations-0.0.19.tar.gz"
GITHUB = ["--repository", "https://github.com/trailofbits/pypi-attestations"]
GITLAB = ["--repository", "https://gitlab.com/facutuesca/gitlab-oidc-project"]


def sealtrail(*argv: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([SEALTRAIL, "verify-pypi", *argv], capture_output=True, text=True,
                          timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    return done


@pytest.fixture
def dists(tmp_path: Path) -> Path:
    """The real distributions and their attestations, copied where a test may change them."""
    for path in ECO.iterdir():
        shutil.copy(path, tmp_path / path.name)
    for path in OWN.glob("*.provenance"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def test_default_attestations_beside_the_distribution(dists: Path) -> None:
    # DIST.publish.attestation and DIST.slsa.attestation, as pypi-attestations' CLI looks.
    done = sealtrail(str(dists / SDIST), *GITHUB, "--workflow", "release.yml")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith(f"OK: {dists / SDIST} (") for line in lines)
    assert ".publish.attestation: https://docs.pypi.org/attestations/publish/v1" in lines[0]
    assert ".slsa.attestation: https://slsa.dev/provenance/v1" in lines[1]
    # Both must pass: the SLSA one, tampered, fails the run.
    slsa = dists / (SDIST + ".slsa.attestation")
    data = json.loads(slsa.read_text())
    data["envelope"]["signature"] = json.loads(
        (dists / (SDIST + ".publish.attestation")).read_text())["envelope"]["signature"]
    slsa.write_text(json.dumps(data))
    done = sealtrail(str(dists / SDIST), *GITHUB, "--workflow", "release.yml")
    assert done.returncode == 1
    assert done.stdout.count("OK: ") == 1
    assert f"Verification failed for {dists / SDIST} ({slsa}): SIGNATURE_INVALID" in done.stderr


def test_no_attestation_found_is_an_input_error(dists: Path) -> None:
    done = sealtrail(str(dists / "gcb_attestation_test-0.0.0.tar.gz"), *GITHUB)
    assert done.returncode == 2
    assert "INPUT_INVALID: Couldn't find attestations for file" in done.stderr
    assert "gcb_attestation_test-0.0.0.tar.gz.publish.attestation" in done.stderr


def test_many_distributions_in_one_call(dists: Path) -> None:
    gitlab = dists / "gitlab_oidc_project-0.0.3.tar.gz"
    models = dists / "pypi_attestation_models-0.0.4a2.tar.gz"
    done = sealtrail(str(dists / SDIST), str(gitlab), *GITHUB, "--json")
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 1
    assert [(r["dist"], r["ok"]) for r in results] == [
        (str(dists / SDIST), True), (str(dists / SDIST), True), (str(gitlab), False)]
    # The GitLab attestation is not GitHub's: its issuer says so.
    assert results[2]["code"] == "ISSUER_MISMATCH" and results[2]["exit_code"] == 1
    assert results[0]["sha256"] == hashlib.sha256((dists / SDIST).read_bytes()).hexdigest()
    assert results[0]["identity"].endswith("release.yml@refs/tags/v0.0.19")
    # The highest status wins, whatever the order: a failure then a success is 1, an
    # unreadable DIST beside a failing one is 2.
    assert sealtrail(str(gitlab), str(dists / SDIST), *GITHUB).returncode == 1
    assert sealtrail(str(dists / "absent-1.0.tar.gz"), str(gitlab), *GITHUB).returncode == 2
    # Explicit attestations, one per DIST in order.
    done = sealtrail(str(dists / SDIST), str(models), "--attestation",
                     str(dists / (SDIST + ".publish.attestation")), "--attestation",
                     str(dists / (models.name + ".attestation")), "--repository",
                     "https://github.com/trailofbits/pypi-attestations")
    assert done.returncode == 1
    assert done.stdout.count("OK: ") == 1
    assert "IDENTITY_MISMATCH: Verification failed: Certificate's OIDCSourceRepositoryURI" \
        in done.stderr


def test_gitlab_publisher(dists: Path) -> None:
    dist = str(dists / "gitlab_oidc_project-0.0.3.tar.gz")
    assert sealtrail(dist, *GITLAB, "--workflow", ".gitlab-ci.yml").returncode == 0
    done = sealtrail(dist, *GITLAB, "--workflow", "wrong.yml")
    assert done.returncode == 1
    assert ("IDENTITY_MISMATCH: Verification failed: Certificate's Build Config URI "
            "(https://gitlab.com/facutuesca/gitlab-oidc-project//.gitlab-ci.yml@refs/heads/main) "
            "does not match expected Trusted Publisher (wrong.yml @ "
            "facutuesca/gitlab-oidc-project)") in done.stderr


def test_provenance_file_and_the_repository_flag(dists: Path) -> None:
    provenance = str(dists / (SDIST + ".provenance"))
    dist = str(dists / SDIST)
    done = sealtrail(dist, "--provenance", provenance, *GITHUB)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"OK: {dist} ({provenance}: ")
    # pypi-attestations' spelling of the flag works too.
    assert sealtrail(dist, "--provenance-file", provenance, *GITHUB, "--offline").returncode == 0
    for url, message in [
        ("https://gitlab.com/trailofbits/pypi-attestations",
         "Verification failed: provenance was signed by a github.com repository, but expected a "
         "gitlab.com repository"),
        ("https://github.com/other/repo",
         'Verification failed: provenance was signed by repository '
         '"trailofbits/pypi-attestations", expected "other/repo"'),
    ]:
        done = sealtrail(dist, "--provenance", provenance, "--repository", url)
        assert done.returncode == 1 and f"IDENTITY_MISMATCH: {message}" in done.stderr
    done = sealtrail(dist, "--provenance", provenance, *GITHUB, "--workflow", "other.yml")
    assert done.returncode == 1 and 'signed by workflow "release.yml"' in done.stderr


def test_google_provenance_with_identity_flags(dists: Path) -> None:
    dist = str(dists / "gcb_attestation_test-0.0.0.tar.gz")
    provenance = dist + ".provenance"
    email = "919436158236-compute@developer.gserviceaccount.com"
    done = sealtrail(dist, "--provenance", provenance, "--cert-identity", email,
                     "--cert-oidc-issuer", "https://accounts.google.com")
    assert done.returncode == 0, done.stderr
    done = sealtrail(dist, "--provenance", provenance, "--cert-identity", "x@example.com",
                     "--cert-oidc-issuer", "https://accounts.google.com")
    assert done.returncode == 1
    assert f'provenance was signed by service account "{email}"' in done.stderr
    done = sealtrail(dist, "--provenance", provenance, *GITHUB)
    assert done.returncode == 1 and "signed by a Google publisher" in done.stderr


def test_circleci_provenance(dists: Path) -> None:
    name = "circleci_sign_publish_example-0.0.1.dev137-py3-none-any.whl"
    identity = ("https://circleci.com/api/v2/projects/fdd9283f-e619-46af-8f9c-851f7d3e8b2b/"
                "pipeline-definitions/8e4f8ab2-8d7c-4827-9f15-de076d6d647f")
    done = sealtrail(str(dists / name), "--provenance", str(dists / (name + ".provenance")),
                     "--cert-identity", identity, "--cert-oidc-issuer", "https://oidc.circleci.com")
    assert done.returncode == 0, done.stderr
    # The flags are checked as well as the file's publisher.
    done = sealtrail(str(dists / name), "--provenance", str(dists / (name + ".provenance")),
                     "--cert-identity", identity + "x", "--cert-oidc-issuer",
                     "https://oidc.circleci.com")
    assert done.returncode == 1 and "IDENTITY_MISMATCH" in done.stderr


def test_staging_attestation(dists: Path) -> None:
    dist = str(dists / "rfc8785-0.1.2-py3-none-any.whl")
    policy = ["--cert-identity", "william@yossarian.net",
              "--cert-oidc-issuer", "https://github.com/login/oauth"]
    assert sealtrail(dist, *policy, "--staging").returncode == 0
    done = sealtrail(dist, *policy)
    assert done.returncode == 1 and "TLOG_KEY_UNKNOWN" in done.stderr
    assert "sealtrail: hint:" in done.stderr  # the root used, and --staging among the ways out


def test_modified_and_renamed_distributions(dists: Path) -> None:
    dist = dists / SDIST
    renamed = dists / "pypi_attestations-0.0.20.tar.gz"
    shutil.copy(dist, renamed)
    done = sealtrail(str(renamed), "--attestation", str(dist) + ".publish.attestation", *GITHUB)
    assert done.returncode == 1
    assert ("SUBJECT_MISMATCH: Verification failed: subject does not match distribution name: "
            f"{SDIST} != {renamed.name}") in done.stderr
    dist.write_bytes(b"nothing")
    done = sealtrail(str(dist), *GITHUB)
    assert done.returncode == 1
    assert "SUBJECT_MISMATCH: Verification failed: subject does not match distribution digest" \
        in done.stderr


@pytest.mark.parametrize("argv, words", [
    ([SDIST], "say who must have signed"),
    ([SDIST, *GITHUB, "--cert-identity", "a", "--cert-oidc-issuer", "b"], "not both"),
    ([SDIST, "--workflow", "x.yml", "--cert-identity", "a", "--cert-oidc-issuer", "b"],
     "--workflow needs --repository"),
    ([SDIST, SDIST, "--attestation", "a", *GITHUB], "one per DIST"),
    ([SDIST, "--repository", "https://example.com/a/b"], "Unsupported/invalid URL"),
    ([SDIST, "--repository", "http://github.com/a/b"], "Unsupported/invalid URL"),
])
def test_usage_errors(dists: Path, argv: list[str], words: str) -> None:
    done = subprocess.run([SEALTRAIL, "verify-pypi", *argv], capture_output=True, text=True,
                          timeout=120, cwd=dists)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and words in done.stderr, done.stderr


@pytest.mark.parametrize("content", [b"", b"{", b"[]", b'{"version": 1}', b"\xff\xfe"])
def test_unreadable_attestations(dists: Path, content: bytes) -> None:
    bad = dists / "bad.attestation"
    bad.write_bytes(content)
    done = sealtrail(str(dists / SDIST), "--attestation", str(bad), *GITHUB, "--json")
    assert done.returncode == 2
    [result] = [json.loads(line) for line in done.stdout.splitlines()]
    assert result["code"] == "BUNDLE_MALFORMED" and result["exit_code"] == 2
    done = sealtrail(str(dists / SDIST), "--provenance", str(bad), *GITHUB)
    assert done.returncode == 2 and "BUNDLE_MALFORMED" in done.stderr


def test_missing_files(dists: Path) -> None:
    done = sealtrail(str(dists / "absent-1.0.tar.gz"), "--attestation",
                     str(dists / (SDIST + ".publish.attestation")), *GITHUB)
    assert done.returncode == 2 and "INPUT_INVALID: cannot read distribution" in done.stderr
    done = sealtrail(str(dists / SDIST), "--provenance", str(dists / "absent.provenance"), *GITHUB)
    assert done.returncode == 2 and "INPUT_INVALID: cannot read provenance" in done.stderr


# -- an attestation made by a local instance ----------------------------------------------------

@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstanceServer]:
    server = InstanceServer(tmp_path_factory.mktemp("pypi") / "instance")
    server.init()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_round_trip_on_a_local_instance(instance: InstanceServer, tmp_path: Path) -> None:
    dist = tmp_path / "example_pkg-1.0-py3-none-any.whl"
    dist.write_bytes(b"a wheel's bytes\n")
    statement = tmp_path / "statement.json"
    statement.write_text(json.dumps({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": dist.name,
                     "digest": {"sha256": hashlib.sha256(dist.read_bytes()).hexdigest()}}],
        "predicateType": "https://docs.pypi.org/attestations/publish/v1", "predicate": None}))
    token = run(SEALTRAIL, "token", "github", "--repository", "org/pkg", "--workflow",
                ".github/workflows/release.yml", "--ref", "refs/tags/v1.0", "--instance",
                str(instance.directory)).stdout.strip()
    bundle = tmp_path / "bundle.json"
    run(SEALTRAIL, "attest", "--statement", str(statement), "--bundle", str(bundle),
        "--instance-dir", str(instance.directory), "--identity-token", token,
        "--rekor-version", "1")
    data = json.loads(bundle.read_text())
    # pypi-attestations' `convert`: the bundle's material under PEP 740's field names.
    Path(str(dist) + ".publish.attestation").write_text(json.dumps({
        "version": 1,
        "verification_material": {
            "certificate": data["verificationMaterial"]["certificate"]["rawBytes"],
            "transparency_entries": data["verificationMaterial"]["tlogEntries"]},
        "envelope": {"statement": data["dsseEnvelope"]["payload"],
                     "signature": data["dsseEnvelope"]["signatures"][0]["sig"]}}))
    identity = "https://github.com/org/pkg/.github/workflows/release.yml@refs/tags/v1.0"
    issuer = instance.url + "/oidc/github"
    root = ["--trusted-root", str(instance.trusted_root)]
    done = sealtrail(str(dist), *root, "--cert-identity", identity, "--cert-oidc-issuer", issuer)
    assert done.returncode == 0, done.stderr
    assert f"signed by {identity}" in done.stdout
    # A trusted publisher is GitHub Actions' own issuer: this instance's is not it.
    done = sealtrail(str(dist), *root, "--repository", "https://github.com/org/pkg")
    assert done.returncode == 1
    assert f"ISSUER_MISMATCH: Verification failed: Certificate's OIDCIssuerV2 does not match " \
           f"(got {issuer}, expected https://token.actions.githubusercontent.com)" in done.stderr
    # The public-good root does not trust this instance's CA or log.
    done = sealtrail(str(dist), "--cert-identity", identity, "--cert-oidc-issuer", issuer)
    assert done.returncode == 1
    # Another identity.
    done = sealtrail(str(dist), *root, "--cert-identity", identity.replace("v1.0", "v2.0"),
                     "--cert-oidc-issuer", issuer)
    assert done.returncode == 1 and "IDENTITY_MISMATCH" in done.stderr
    assert os.path.exists(str(dist) + ".publish.attestation")


@pytest.mark.parametrize("jobs", ["0", "1", "2"])
def test_many_distributions_in_worker_processes(dists: Path, jobs: str) -> None:
    # Ten copies of the sdist beside its attestations (enough for forked workers), the sixth
    # modified: results keep the DISTs' order, and the one failure fails the run.
    paths = []
    for i in range(10):
        folder = dists / f"copy-{i}"
        folder.mkdir()
        for suffix in ("", ".publish.attestation"):
            shutil.copy(dists / (SDIST + suffix), folder / (SDIST + suffix))
        paths.append(folder / SDIST)
    paths[5].write_bytes(b"nothing")
    done = sealtrail(*map(str, paths), *GITHUB, "--workflow", "release.yml", "--json",
                     "--jobs", jobs)
    assert done.returncode == 1
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["dist"] for r in results] == [str(p) for p in paths]
    assert [r["ok"] for r in results] == [i != 5 for i in range(10)]
    assert results[5]["code"] == "SUBJECT_MISMATCH"
    assert results[0]["trusted_root"]["instance"] == "public-good"


def test_many_distributions_use_every_core_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    # Which process verified each DIST: forked workers (one per core by default) for many
    # DISTs, this process for a few or with --jobs 1.
    from argparse import Namespace

    from sealtrail.cli import pypi_commands

    monkeypatch.setattr(pypi_commands, "_verify_dist",
                        lambda args, policy, verifier, index: [{"pid": os.getpid()}])
    monkeypatch.setattr(os, "cpu_count", lambda: 3)

    def pids(count: int, jobs: int) -> set[int]:
        args = Namespace(dists=[f"d{i}" for i in range(count)], jobs=jobs)
        results = pypi_commands._verify_all(args, None, None)
        assert len(results) == count
        return {outcome["pid"] for outcomes in results for outcome in outcomes}

    assert os.getpid() not in pids(60, 0) and 1 <= len(pids(60, 0)) <= 3
    assert pids(60, 1) == {os.getpid()}
    assert pids(pypi_commands.MIN_DISTS_FOR_PROCESSES - 1, 0) == {os.getpid()}
