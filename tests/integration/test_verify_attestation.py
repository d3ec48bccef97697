"""`sealtrail verify-attestation` round trip on a fresh local instance.

Provenance shaped as `actions/attest-build-provenance` writes it (buildType
https://actions.github.io/buildtypes/workflow/v1, fields filled from the workflow token's
claims) is signed by `sealtrail attest` with a GitHub-Actions-like token from the instance's
built-in issuer, then verified with gh's flags and `--custom-trusted-root` holding the
instance's root: it passes under matching flags and fails with gh's message for each
mismatching one; bad input fails (exit 1 or 2), never with a traceback. npm: a package
tarball's provenance (purl subject, sha512) and the registry-style publish attestation
signed with a key (`verify --key`).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.integration.instance_server import BIN, InstanceServer, run

pytestmark = pytest.mark.integration

SEALTRAIL = str(BIN / "sealtrail")
REPO = "org/proj"
WORKFLOW = ".github/workflows/release.yml"
REF = "refs/tags/v1.0"
SHA = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
SLSA = "https://slsa.dev/provenance/v1"
ACTIONS_BUILD_TYPE = "https://actions.github.io/buildtypes/workflow/v1"
RUNNER_BUILD_TYPE = "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1"
NPM_PUBLISH = "https://github.com/npm/attestation/tree/main/specs/publish/v0.1"
REAL = Path(__file__).resolve().parents[1] / "vectors"


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstanceServer]:
    server = InstanceServer(tmp_path_factory.mktemp("attestation") / "sealtrail")
    server.init()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def roots(instance: InstanceServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The instance's trusted root as gh's --custom-trusted-root: compact, one per line."""
    path = tmp_path_factory.mktemp("roots") / "roots.jsonl"
    root = json.loads(instance.trusted_root.read_text())
    path.write_text(json.dumps(root, separators=(",", ":")) + "\n")
    return path


def mint(instance: InstanceServer, **claims: Any) -> str:
    """A workflow token from the instance's built-in issuer (in-process: `sealtrail token
    github` has no flag for the runner environment or a reusable workflow)."""
    from sealtrail.server.instance import Instance

    claims = {"repository": REPO, "workflow_path": WORKFLOW, "ref": REF, "sha": SHA,
              **claims}
    return Instance(instance.directory).builtin_issuer("github").mint_github_workflow(**claims)


def provenance(*, repository: str = REPO, workflow: str = WORKFLOW, ref: str = REF,
               sha: str = SHA, builder: str | None = None,
               runner: str = "github-hosted") -> dict[str, Any]:
    """SPEC: actions/toolkit packages/attest/src/provenance.ts, from the token's claims."""
    server = "https://github.com"
    return {
        "buildDefinition": {
            "buildType": ACTIONS_BUILD_TYPE,
            "externalParameters": {"workflow": {"ref": ref, "repository": f"{server}/{repository}",
                                                "path": workflow}},
            "internalParameters": {"github": {"event_name": "push", "repository_id": "1",
                                              "repository_owner_id": "2",
                                              "runner_environment": runner}},
            "resolvedDependencies": [{"uri": f"git+{server}/{repository}@{ref}",
                                      "digest": {"gitCommit": sha}}],
        },
        "runDetails": {
            "builder": {"id": builder or f"{server}/{repository}/{workflow}@{ref}"},
            "metadata": {"invocationId": f"{server}/{repository}/actions/runs/7/attempts/1"},
        },
    }


def attest(instance: InstanceServer, tmp_path: Path, artifact: Path, predicate: dict[str, Any],
           token: str, name: str, predicate_type: str = SLSA) -> Path:
    path = tmp_path / f"{name}.predicate.json"
    path.write_text(json.dumps(predicate))
    bundle = tmp_path / f"{name}.sigstore.json"
    run(SEALTRAIL, "attest", str(artifact), "--predicate", str(path), "--predicate-type",
        predicate_type, "--instance-dir", str(instance.directory), "--identity-token", token,
        "--bundle", str(bundle))
    return bundle


def verify(artifact: Path, bundle: Path, *flags: str) -> tuple[int, str, str]:
    done = run(SEALTRAIL, "verify-attestation", str(artifact), "--bundle", str(bundle), *flags,
               check=False)
    assert "Traceback" not in done.stderr
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def signed(instance: InstanceServer, tmp_path_factory: pytest.TempPathFactory
           ) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("signed")
    artifact = tmp / "proj-1.0.tar.gz"
    artifact.write_bytes(b"the release tarball\n")
    bundle = attest(instance, tmp, artifact, provenance(), mint(instance), "good")
    return artifact, bundle


def issuer_flags(instance: InstanceServer, roots: Path) -> list[str]:
    return ["--cert-oidc-issuer", instance.url + "/oidc/github",
            "--custom-trusted-root", str(roots)]


def test_round_trip_passes_under_matching_flags(instance: InstanceServer, roots: Path,
                                                signed: tuple[Path, Path]) -> None:
    artifact, bundle = signed
    common = issuer_flags(instance, roots)
    for flags in (["--owner", "org"], ["--owner", "ORG"], ["--repo", REPO],
                  ["--repo", REPO, "--signer-workflow", f"{REPO}/{WORKFLOW}",
                   "--source-ref", REF, "--source-digest", SHA, "--signer-digest", SHA,
                   "--deny-self-hosted-runners", "--predicate-type", SLSA],
                  ["--owner", "org", "--signer-repo", REPO],
                  ["--owner", "org", "--cert-identity", f"https://github.com/{REPO}/{WORKFLOW}@{REF}"]):
        code, out, err = verify(artifact, bundle, *common, *flags)
        assert code == 0, (flags, err)
        assert "✓ Verification succeeded!" in out
        assert f"Build workflow:. {WORKFLOW}@{REF}" in out


@pytest.mark.parametrize("flags, message", [
    (["--owner", "other", "--cert-identity-regex", "."],
     "expected SourceRepositoryOwnerURI to be https://github.com/other, got https://github.com/org"),
    (["--owner", "other"], 'verifying with issuer "'),  # the SAN pattern names the owner
    (["--repo", "org/other", "--signer-repo", REPO],
     "expected SourceRepositoryURI to be https://github.com/org/other, got https://github.com/org/proj"),
    (["--repo", "org/other"], 'verifying with issuer "'),
    (["--owner", "org", "--signer-workflow", f"{REPO}/.github/workflows/other.yml"],
     'verifying with issuer "'),
    (["--owner", "org", "--source-ref", "refs/heads/main"],
     f"expected SourceRepositoryRef to be refs/heads/main, got {REF}"),
    (["--owner", "org", "--predicate-type", "https://in-toto.io/attestation/release/v0.2"],
     "no matching predicate found"),
    (["--owner", "org", "--signer-digest", "f" * 40],
     f"expected BuildSignerDigest to be {'f' * 40}, got {SHA}"),
    (["--owner", "org", "--source-digest", "e" * 40],
     f"expected SourceRepositoryDigest to be {'e' * 40}, got {SHA}"),
])
def test_each_mismatching_flag_fails_with_ghs_message(
        instance: InstanceServer, roots: Path, signed: tuple[Path, Path], flags: list[str],
        message: str) -> None:
    artifact, bundle = signed
    code, out, err = verify(artifact, bundle, *issuer_flags(instance, roots), *flags)
    assert code == 1 and message in err and out == ""
    assert err.count("\nFAILED: ") + err.startswith("FAILED: ") == 1


def test_policy_file_stands_for_the_flags(instance: InstanceServer, roots: Path,
                                          signed: tuple[Path, Path], tmp_path: Path) -> None:
    artifact, bundle = signed
    policy = tmp_path / "policy.toml"
    trusted = ["--custom-trusted-root", str(roots)]

    def write(identity: str, types: str = "") -> str:
        policy.write_text(f"version = 1\n{types}[identity]\n{identity}"
                          f'issuer = "{instance.url}/oidc/github"\n')
        return str(policy)

    code, _, err = verify(artifact, bundle, *trusted, "--policy",
                          write(f'repo = "{REPO}"\ndeny-self-hosted-runners = true\n'))
    assert code == 0, err
    code, _, err = verify(artifact, bundle, *trusted, "--policy",
                          write('owner = "org"\n', 'predicate-types = ["https://example.com/p"]\n'))
    assert code == 1 and "no matching predicate found" in err
    code, _, err = verify(artifact, bundle, *trusted, "--policy",
                          write('owner = "org"\nsigner-workflow = "org/proj/.github/workflows/'
                                'other.yml"\n'))
    assert code == 1 and 'verifying with issuer "' in err
    # A flag may not repeat what the policy says.
    code, _, err = verify(artifact, bundle, *trusted, "--owner", "org", "--policy",
                          write('owner = "org"\n'))
    assert code == 2 and "--owner repeats the policy's owner" in err


def test_issuer_defaults_to_github_actions(instance: InstanceServer, roots: Path,
                                           signed: tuple[Path, Path]) -> None:
    artifact, bundle = signed
    code, _, err = verify(artifact, bundle, "--owner", "org", "--custom-trusted-root", str(roots))
    assert code == 1
    assert ("expected Issuer to be https://token.actions.githubusercontent.com, got "
            f"{instance.url}/oidc/github") in err


def test_deny_self_hosted_runners(instance: InstanceServer, roots: Path, tmp_path: Path) -> None:
    artifact = tmp_path / "built-on-our-runner.bin"
    artifact.write_bytes(b"built on a self-hosted runner\n")
    token = mint(instance, runner_environment="self-hosted")
    bundle = attest(instance, tmp_path, artifact, provenance(runner="self-hosted"), token, "sh")
    common = [*issuer_flags(instance, roots), "--owner", "org"]
    assert verify(artifact, bundle, *common)[0] == 0
    code, _, err = verify(artifact, bundle, *common, "--deny-self-hosted-runners")
    assert code == 1 and 'verifying with issuer "' in err and "EXTENSION_MISMATCH" in err


def test_reusable_signer_workflow(instance: InstanceServer, roots: Path, tmp_path: Path) -> None:
    """A reusable workflow signs: the SAN and builder id name it, the build config the caller."""
    signer = "org/builders/.github/workflows/build.yml@refs/tags/v2"
    artifact = tmp_path / "via-reusable.bin"
    artifact.write_bytes(b"built by a reusable workflow\n")
    token = mint(instance, job_workflow_ref=signer)
    bundle = attest(instance, tmp_path, artifact,
                    provenance(builder=f"https://github.com/{signer}"), token, "reusable")
    common = [*issuer_flags(instance, roots), "--repo", REPO]
    code, out, err = verify(artifact, bundle, *common, "--signer-repo", "org/builders")
    assert code == 0, err
    assert "Signer workflow: .github/workflows/build.yml@refs/tags/v2" in out
    code, _, err = verify(artifact, bundle, *common, "--signer-workflow",
                          "org/builders/.github/workflows/build.yml")
    assert code == 0, err
    code, _, err = verify(artifact, bundle, *common)  # the default pattern names the repo
    assert code == 1 and 'verifying with issuer "' in err
    # Signed by a reusable workflow of another repository, GitHub-hosted: the VSA says L3.
    env = {"SEALTRAIL_PASSPHRASE": "vsa passphrase"}
    run(SEALTRAIL, "generate-key-pair", "--output-key", str(tmp_path / "vsa.key"), env=env)
    vsa = tmp_path / "vsa.json"
    run(SEALTRAIL, "verify-attestation", str(artifact), "--bundle", str(bundle), *common,
        "--signer-repo", "org/builders", "--vsa-out", str(vsa), "--vsa-key",
        str(tmp_path / "vsa.key"), env=env)
    statement = json.loads(base64.b64decode(json.loads(vsa.read_text())["payload"]))
    assert statement["predicate"]["verifiedLevels"] == ["SLSA_BUILD_LEVEL_3"]


def test_predicate_contradicting_its_certificate(instance: InstanceServer, roots: Path,
                                                 tmp_path: Path) -> None:
    artifact = tmp_path / "claims.bin"
    artifact.write_bytes(b"provenance that lies\n")
    common = [*issuer_flags(instance, roots), "--owner", "org"]
    for name, predicate, code_name in (
            ("builder", provenance(builder="https://github.com/org/proj/.github/workflows/"
                                           "trusted.yml@refs/tags/v1.0"), "ErrorMismatchBuilderID"),
            ("commit", provenance(sha="b" * 40), "ErrorMismatchSource"),
            ("workflow", provenance(workflow=".github/workflows/other.yml",
                                    builder=f"https://github.com/{REPO}/{WORKFLOW}@{REF}"),
             "ErrorMismatchSource"),
            ("buildtype", {**provenance(), "buildDefinition": {
                **provenance()["buildDefinition"], "buildType": "https://example.com/ci"}},
             "ErrorInvalidBuildType")):
        bundle = attest(instance, tmp_path, artifact, predicate, mint(instance), name)
        code, _, err = verify(artifact, bundle, *common)
        assert code == 1 and code_name in err, (name, err)
        # gh checks the certificate only: exact parity passes.
        code, _, err = verify(artifact, bundle, *common, "--no-predicate-checks")
        assert code == 0, (name, err)


def test_bad_input(instance: InstanceServer, roots: Path, signed: tuple[Path, Path],
                   tmp_path: Path) -> None:
    artifact, bundle = signed
    common = [*issuer_flags(instance, roots), "--owner", "org"]
    data = bundle.read_bytes()
    truncated = tmp_path / "truncated.json"
    truncated.write_bytes(data[: len(data) // 2])
    code, _, err = verify(artifact, truncated, *common)
    assert code == 2 and "BUNDLE_MALFORMED" in err
    other = tmp_path / "other.tar.gz"
    other.write_bytes(b"another artifact\n")
    code, _, err = verify(other, bundle, *common)
    assert code == 1 and 'verifying with issuer "' in err and "SUBJECT_MISMATCH" in err
    wrong_type = tmp_path / "wrong-type.json"
    document = json.loads(data)
    document["dsseEnvelope"]["payloadType"] = "application/json"
    wrong_type.write_text(json.dumps(document))
    code, _, err = verify(artifact, wrong_type, *common)
    assert code == 1 and "no matching predicate found" in err
    # A bundle for another instance: the local leaf without the local root, a public-good
    # bundle with only the local root.
    code, _, err = verify(artifact, bundle, "--owner", "org")
    assert code == 1 and "leaf certificate issuer is not recognized" in err
    code, _, err = verify(REAL / "ecosystem" / "pypi-attestations" / "pypi_attestations-0.0.19.tar.gz",
                          REAL / "github" / "pypi_attestations-0.0.19.tar.gz.slsa.sigstore.json",
                          "--owner", "trailofbits", "--custom-trusted-root", str(roots))
    assert code == 1 and "unable to use provided trusted roots" in err
    # A root file whose last line has no newline holds no root gh would read.
    unterminated = tmp_path / "unterminated.jsonl"
    unterminated.write_bytes(roots.read_bytes().rstrip(b"\n"))
    code, _, err = verify(artifact, bundle, *issuer_flags(instance, unterminated), "--owner", "org")
    assert code == 1 and "unable to use provided trusted roots" in err
    # Flags gh refuses, and a missing file: exit 2.
    assert verify(artifact, bundle, *common, "--repo", REPO)[0] == 2
    assert verify(artifact, tmp_path / "missing.json", *common)[0] == 2
    code, _, err = verify(tmp_path / "missing.bin", bundle, *common)
    assert code == 2 and "INPUT_INVALID" in err


def test_no_subjects(instance: InstanceServer, roots: Path, tmp_path: Path) -> None:
    """A validly signed statement without subjects (signed in-process: `attest` refuses to
    make one) names no artifact."""
    from sealtrail.sign import Signer, SigningContext

    artifact = tmp_path / "x.bin"
    artifact.write_bytes(b"x\n")
    payload = json.dumps({"_type": "https://in-toto.io/Statement/v1", "subject": [],
                          "predicateType": SLSA, "predicate": provenance()}).encode()
    context = SigningContext.from_trust_config(instance.trust_config.read_bytes(), 1)
    with Signer(context, identity_token=mint(instance)) as signer:
        signed = signer.sign_statement(payload)
    bundle = tmp_path / "empty.sigstore.json"
    bundle.write_bytes(signed.bundle_json())
    code, _, err = verify(artifact, bundle, *issuer_flags(instance, roots), "--owner", "org")
    assert code == 1 and 'verifying with issuer "' in err and "SUBJECT_MISMATCH" in err


def test_json_lines_and_json_output(instance: InstanceServer, roots: Path,
                                    signed: tuple[Path, Path], tmp_path: Path) -> None:
    artifact, bundle = signed
    good = json.loads(bundle.read_text())
    bad = json.loads(bundle.read_text())
    sig = bytearray(base64.b64decode(bad["dsseEnvelope"]["signatures"][0]["sig"]))
    sig[-1] ^= 1
    bad["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    lines = tmp_path / "bundles.jsonl"
    lines.write_text(json.dumps(bad) + "\n" + json.dumps(good) + "\n")
    code, out, err = verify(artifact, lines, *issuer_flags(instance, roots), "--owner", "org",
                            "--json")
    assert code == 0, err
    (result,) = json.loads(out)
    assert result["attestation"]["bundle"] == good
    verification = result["verificationResult"]
    assert verification["statement"]["predicate"]["buildDefinition"]["buildType"] == \
        ACTIONS_BUILD_TYPE
    assert verification["signature"]["certificate"]["sourceRepositoryOwnerURI"] == \
        "https://github.com/org"
    assert {t["type"] for t in verification["verifiedTimestamps"]} <= {"Tlog",
                                                                      "TimestampAuthority"}
    assert verification["verifiedTimestamps"]
    # Only the bad one: the last error, in JSON.
    lines.write_text(json.dumps(bad) + "\n")
    code, out, _ = verify(artifact, lines, *issuer_flags(instance, roots), "--owner", "org",
                          "--json")
    failure = json.loads(out)
    assert code == 1 and failure["ok"] is False
    assert failure["message"].startswith('verifying with issuer "')
    assert failure["cause"]["code"] == failure["code"]


# -- npm -------------------------------------------------------------------------------------

def npm_tarball(path: Path, name: str, version: str) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for member, data in (("package/package.json",
                              json.dumps({"name": name, "version": version}).encode()),
                             ("package/index.js", b"module.exports = 1;\n")):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def npm_statement(path: Path, subject: str, tarball: Path, predicate_type: str,
                  predicate: dict[str, Any]) -> Path:
    digest = hashlib.sha512(tarball.read_bytes()).hexdigest()
    path.write_text(json.dumps({"_type": "https://in-toto.io/Statement/v1",
                                "subject": [{"name": subject, "digest": {"sha512": digest}}],
                                "predicateType": predicate_type, "predicate": predicate}))
    return path


def test_npm_provenance(instance: InstanceServer, roots: Path, tmp_path: Path) -> None:
    """npm publish --provenance: subject pkg:npm/<name>@<version> with the tarball's sha512,
    the older runner buildType (SPEC: npm/cli libnpmpublish/lib/provenance.js)."""
    tarball = npm_tarball(tmp_path / "org-pkg-1.0.0.tgz", "@org/pkg", "1.0.0")
    predicate = provenance(builder="https://github.com/actions/runner/github-hosted")
    predicate["buildDefinition"]["buildType"] = RUNNER_BUILD_TYPE
    common = [*issuer_flags(instance, roots), "--owner", "org"]
    for subject, expected in (("pkg:npm/%40org/pkg@1.0.0", 0), ("pkg:npm/%40org/other@1.0.0", 1)):
        statement = npm_statement(tmp_path / "statement.json", subject, tarball, SLSA, predicate)
        bundle = tmp_path / f"{expected}.sigstore.json"
        run(SEALTRAIL, "attest", "--statement", str(statement), "--instance-dir",
            str(instance.directory), "--identity-token", mint(instance), "--bundle", str(bundle))
        code, out, err = verify(tarball, bundle, *common, "--digest-alg", "sha512")
        assert code == expected, err
        if expected == 0:
            assert "npm package pkg:npm/%40org/pkg@1.0.0" in out
            # The registry's answer shape ({"attestations": [{predicateType, bundle}]}) too.
            answer = tmp_path / "attestations.json"
            answer.write_text(json.dumps({"attestations": [
                {"predicateType": SLSA, "bundle": json.loads(bundle.read_text())}]}))
            assert verify(tarball, answer, *common, "--digest-alg", "sha512")[0] == 0
            # sha256 finds no subject: the provenance names the tarball by sha512 only.
            code, _, err = verify(tarball, bundle, *common)
            assert code == 1 and "SUBJECT_MISMATCH" in err
        else:
            assert "pkg:npm/%40org/pkg@1.0.0" in err and "SUBJECT_MISMATCH" in err


def test_npm_publish_attestation_verifies_with_the_registry_key(
        instance: InstanceServer, tmp_path: Path) -> None:
    """The registry's publish attestation: signed with a key, `publicKey.hint` a key id
    (SPEC: npm/attestation specs/publish/v0.1; sigstore-go examples/bundle-publish.json)."""
    env = {"SEALTRAIL_PASSPHRASE": "registry passphrase"}
    key = tmp_path / "registry.key"
    run(SEALTRAIL, "generate-key-pair", "--output-key", str(key), env=env)
    tarball = npm_tarball(tmp_path / "pkg-2.0.0.tgz", "pkg", "2.0.0")
    statement = npm_statement(tmp_path / "publish.json", "pkg:npm/pkg@2.0.0", tarball,
                              NPM_PUBLISH, {"name": "pkg", "version": "2.0.0",
                                            "registry": "https://registry.npmjs.org"})
    bundle = tmp_path / "publish.sigstore.json"
    run(SEALTRAIL, "attest", "--statement", str(statement), "--key", str(key), "--trust-config",
        str(instance.trust_config), "--bundle", str(bundle), env=env)
    # The registry names its key by an opaque key id (as npm's keys.json does).
    document = json.loads(bundle.read_text())
    document["verificationMaterial"]["publicKey"] = {
        "hint": "SHA256:jl3bwswu80PjjokCgh0o2w5c2U4LhQAE57gj9cz1kzA"}
    document["dsseEnvelope"]["signatures"][0]["keyid"] = \
        "SHA256:jl3bwswu80PjjokCgh0o2w5c2U4LhQAE57gj9cz1kzA"
    bundle.write_text(json.dumps(document))
    public = tmp_path / "registry.pub"
    done = run(SEALTRAIL, "verify", str(tarball), "--bundle", str(bundle), "--key", str(public),
               "--trusted-root", str(instance.trusted_root), check=False)
    assert done.returncode == 0, done.stderr
    assert "signed by key" in done.stdout
    other = npm_tarball(tmp_path / "pkg-2.0.1.tgz", "pkg", "2.0.1")
    done = run(SEALTRAIL, "verify", str(other), "--bundle", str(bundle), "--key", str(public),
               "--trusted-root", str(instance.trusted_root), check=False)
    assert done.returncode == 1 and "SUBJECT_MISMATCH" in done.stderr


def test_vsa_out(instance: InstanceServer, roots: Path, signed: tuple[Path, Path],
                 tmp_path: Path) -> None:
    """--vsa-out writes a VSA of a passed check, which verify-vsa accepts; nothing on failure."""
    artifact, bundle = signed
    env = {"SEALTRAIL_PASSPHRASE": "vsa passphrase"}
    key = tmp_path / "vsa.key"
    run(SEALTRAIL, "generate-key-pair", "--output-key", str(key), env=env)
    vsa = tmp_path / "vsa.json"
    common = [*issuer_flags(instance, roots), "--repo", REPO, "--vsa-key", str(key)]
    done = run(SEALTRAIL, "verify-attestation", str(artifact), "--bundle", str(bundle), *common,
               "--source-ref", "refs/heads/main", "--vsa-out", str(vsa), env=env, check=False)
    assert done.returncode == 1 and not vsa.exists()
    run(SEALTRAIL, "verify-attestation", str(artifact), "--bundle", str(bundle), *common,
        "--vsa-out", str(vsa), env=env)
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    check = [SEALTRAIL, "verify-vsa", "--attestation-path", str(vsa), "--subject-digest",
             f"sha256:{digest}", "--verifier-id", "pkg:pypi/sealtrail", "--resource-uri",
             f"git+https://github.com/{REPO}", "--public-key-path", str(tmp_path / "vsa.pub")]
    # Signed by a workflow of the source repository on a GitHub-hosted runner: Build L2.
    done = run(*check, "--verified-level", "SLSA_BUILD_LEVEL_2")
    assert "PASSED" in done.stderr
    done = run(*check, "--verified-level", "SLSA_BUILD_LEVEL_3", check=False)
    assert done.returncode == 1 and "ErrorMismatchVerifiedLevels" in done.stderr
    statement = json.loads(base64.b64decode(json.loads(vsa.read_text())["payload"]))
    assert statement["predicate"]["inputAttestations"][0]["name"] == bundle.name
    assert statement["predicate"]["policy"]["uri"] == "urn:sealtrail:policy:verify-attestation"
    # A --vsa-* flag without --vsa-out is refused before any check.
    assert verify(artifact, bundle, *common)[0] == 2


def test_patterns_match_anywhere_and_unanchored_ones_are_warned_about() -> None:
    """gh's regexp flags match anywhere in the value (Go's MatchString); as `verify` does,
    an unanchored one gets a warning. Real actions/attest provenance, public-good root."""
    artifact = REAL / "ecosystem" / "pypi-attestations" / "pypi_attestations-0.0.19.tar.gz"
    bundle = REAL / "github" / "pypi_attestations-0.0.19.tar.gz.slsa.sigstore.json"
    code, _, err = verify(artifact, bundle, "--owner", "trailofbits", "-i",
                          "workflows/release.yml@refs/tags/")
    assert code == 0 and "is not anchored" in err
    code, _, err = verify(artifact, bundle, "--owner", "trailofbits", "-i",
                          "^https://github.com/trailofbits/pypi-attestations/")
    assert code == 0 and "is not anchored" not in err
    code, _, err = verify(artifact, bundle, "--owner", "trailofbits", "-i", "^workflows/")
    assert code == 1 and 'verifying with issuer "sigstore.dev"' in err
