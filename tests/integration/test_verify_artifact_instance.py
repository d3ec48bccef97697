"""Round trip on a local instance: provenance signed by `sealtrail attest` with a
GitHub-Actions-shaped token from the instance's built-in issuer (the builder workflow's
identity), checked by `sealtrail verify-artifact` with matching flags, and refused with
slsa-verifier's error name for each mismatching flag and each kind of bad input.

The instance's trust root and its workflow issuer (``<url>/oidc/github``) are passed as
``--trusted-root`` and ``--certificate-oidc-issuer``: the certificate names the instance's
issuer, not GitHub's, and that is the only difference from public-good provenance (the SAN is
``https://github.com/<job_workflow_ref>`` on both).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from sealtrail.cli.main import main
from tests.integration.instance_server import BIN, InstanceServer, run
from sealtrail.provenance.intoto_predicates import BUILD_TYPE_DELEGATOR
from tests.unit.provenance.test_slsa import (
    attestation_v1,
    event_payload,
    generic_v02,
    github_v1,
)

pytestmark = pytest.mark.integration

SEALTRAIL = str(BIN / "sealtrail")
REPO = "acme/app"
SHA = "0123456789abcdef0123456789abcdef01234567"
BUILDER_SHA = "89abcdef0123456789abcdef0123456789abcdef"
TAG = "refs/tags/v1.2.3"
GENERATOR = "slsa-framework/slsa-github-generator/.github/workflows/"
GENERIC_JOB = GENERATOR + "generator_generic_slsa3.yml@refs/tags/v2.1.0"
DELEGATOR_JOB = GENERATOR + "delegator_generic_slsa3.yml@refs/tags/v2.1.0"
OWN_JOB = f"{REPO}/.github/workflows/release.yml@{TAG}"
TRW = "https://github.com/acme/tools/.github/workflows/builder.yml"


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstanceServer]:
    server = InstanceServer(tmp_path_factory.mktemp("slsa") / "sealtrail")
    server.init()
    server.start()
    yield server
    server.stop()


def workflow_token(instance: InstanceServer, job_workflow_ref: str, *, ref: str = TAG,
                   event: str = "push") -> str:
    """A token as GitHub mints it inside a reusable workflow: the caller's repository, ref,
    commit and event; the reusable (builder) workflow as job_workflow_ref."""
    from sealtrail.server.instance import Instance

    issuer = Instance(str(instance.directory)).builtin_issuer("github")
    return issuer.mint_github_workflow(
        repository=REPO, workflow_path=".github/workflows/release.yml", ref=ref, sha=SHA,
        event_name=event, job_workflow_ref=job_workflow_ref,
        job_workflow_sha=SHA if job_workflow_ref.startswith(REPO + "/") else BUILDER_SHA)


class Released:
    """Two artifacts and the provenance of their build, signed through the instance."""

    def __init__(self, instance: InstanceServer, directory: Path, payload_of: Any,
                 job: str, *, ref: str = TAG, event: str = "push",
                 rekor_version: str = "1") -> None:
        directory.mkdir()
        self.instance = instance
        self.artifacts = []
        subjects = []
        for name in ("app-1.2.3.tar.gz", "app-1.2.3-py3-none-any.whl"):
            path = directory / name
            path.write_bytes(f"the contents of {name}\n".encode())
            self.artifacts.append(str(path))
            subjects.append((name, hashlib.sha256(path.read_bytes()).hexdigest()))
        statement = directory / "provenance.json"
        statement.write_bytes(payload_of(subjects))
        self.provenance = directory / "multiple.intoto.jsonl"
        run(SEALTRAIL, "attest", *self.artifacts, "--statement", str(statement), "--bundle",
            str(self.provenance), "--instance-dir", str(instance.directory),
            "--identity-token", workflow_token(instance, job, ref=ref, event=event),
            "--rekor-version", rekor_version)

    def verify(self, *flags: str, artifacts: list[str] | None = None,
               provenance: Path | None = None, local: bool = True
               ) -> tuple[int, str, str]:
        trust = ["--trusted-root", str(self.instance.trusted_root),
                 "--certificate-oidc-issuer", self.instance.url + "/oidc/github"] if local else []
        argv = ["verify-artifact", *(artifacts or self.artifacts), "--provenance-path",
                str(provenance or self.provenance), *trust, *flags]
        return _run_main(argv)


_CAPSYS: list[pytest.CaptureFixture[str]] = []


def _run_main(argv: list[str]) -> tuple[int, str, str]:
    capsys = _CAPSYS[-1]
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.fixture(autouse=True)
def _capsys(capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    _CAPSYS.append(capsys)
    yield
    _CAPSYS.pop()


def passes(release: Released, *flags: str) -> dict[str, Any]:
    code, out, err = release.verify(*flags, "--json")
    assert code == 0, err
    assert err.endswith("PASSED: SLSA verification passed\n")
    return json.loads(out)  # type: ignore[no-any-return]


def fails(release: Released, error: str, *flags: str, **kwargs: Any) -> str:
    code, _, err = release.verify(*flags, **kwargs)
    assert code == (2 if error == "ErrorInvalidFormat" else 1), err
    assert f"FAILED: SLSA verification failed: {error}: " in err, err
    return err


@pytest.mark.parametrize("rekor_version", ["1", "2"])
def test_generic_generator_round_trip(instance: InstanceServer, tmp_path: Path,
                                      rekor_version: str) -> None:
    builder = "https://github.com/" + GENERIC_JOB
    release = Released(instance, tmp_path / "generic",
                       lambda subjects: generic_v02(subjects, builder_id=builder, repository=REPO,
                                                    sha=SHA), GENERIC_JOB,
                       rekor_version=rekor_version)
    result = passes(release, "--source-uri", "github.com/acme/app", "--source-tag", "v1.2.3",
                    "--source-branch", "main", "--builder-id",
                    builder.replace("@refs/tags/", "@"))
    assert result["builder_id"] == builder and result["slsa_build_level"] == 3
    assert (result["commit"], result["ref"], result["trigger"]) == (SHA, TAG, "push")
    assert len(result["artifacts"]) == 2
    passes(release, "--source-uri", "git+https://github.com/acme/app",
           "--source-versioned-tag", "v1.2")
    source = ["--source-uri", "github.com/acme/app"]
    # Each mismatching flag, with slsa-verifier's error name.
    fails(release, "ErrorUntrustedReusableWorkflow", *source, "--builder-id",
          builder.replace("v2.1.0", "v2.0.0"))
    fails(release, "ErrorMismatchSource", "--source-uri", "github.com/acme/other")
    fails(release, "ErrorMismatchTag", *source, "--source-tag", "v1.2")
    fails(release, "ErrorMismatchVersionedTag", *source, "--source-versioned-tag", "v1.3")
    fails(release, "ErrorMismatchBranch", *source, "--source-branch", "release")
    fails(release, "ErrorMismatchWorkflowInputs", *source, "--build-workflow-input", "a=b")
    # The instance's issuer is not GitHub's: without the override, the issuer check says so.
    err = fails(release, "ErrorInvalidOIDCIssuer", *source, "--trusted-root",
                str(instance.trusted_root), local=False)
    assert instance.url + "/oidc/github" in err and "--certificate-oidc-issuer" in err


def test_delegator_round_trip_with_workflow_inputs(instance: InstanceServer,
                                                   tmp_path: Path) -> None:
    ref = "refs/heads/main"
    payload = event_payload("workflow_dispatch", ref, inputs={"version": "1.2.3", "dry": False})
    release = Released(
        instance, tmp_path / "byob",
        lambda subjects: github_v1(subjects, builder_id=TRW + "@refs/tags/v1.0.0",
                                   build_type=BUILD_TYPE_DELEGATOR, repository=REPO, ref=ref,
                                   sha=SHA, event="workflow_dispatch", payload=payload),
        DELEGATOR_JOB, ref=ref, event="workflow_dispatch")
    flags = ["--source-uri", "github.com/acme/app", "--builder-id", TRW + "@v1.0.0"]
    result = passes(release, *flags, "--build-workflow-input", "version=1.2.3",
                    "--build-workflow-input", "dry=false", "--source-branch", "main")
    assert result["builder_id"] == TRW + "@refs/tags/v1.0.0" and result["slsa_build_level"] == 3
    fails(release, "ErrorMismatchWorkflowInputs", *flags, "--build-workflow-input",
          "version=1.2.4")
    fails(release, "ErrorMismatchBuilderID", "--source-uri", "github.com/acme/app",
          "--builder-id", "https://github.com/acme/tools/.github/workflows/other.yml")
    fails(release, "ErrorInvalidBuilderID", "--source-uri", "github.com/acme/app")
    fails(release, "ErrorInvalidRef", *flags, "--source-tag", "v1.2.3")
    fails(release, "ErrorInvalidRef", *flags, "--source-versioned-tag", "v1")


def test_github_attestation_round_trip(instance: InstanceServer, tmp_path: Path) -> None:
    release = Released(instance, tmp_path / "gh",
                       lambda subjects: attestation_v1(subjects,
                                                       builder_id="https://github.com/" + OWN_JOB,
                                                       repository=REPO, sha=SHA), OWN_JOB)
    result = passes(release, "--source-uri", "github.com/acme/app", "--source-tag", "v1.2.3",
                    "--builder-id",
                    "https://github.com/acme/app/.github/workflows/release.yml")
    assert result["slsa_build_level"] == 2
    assert result["build_type"] == "https://actions.github.io/buildtypes/workflow/v1"
    source = ["--source-uri", "github.com/acme/app"]
    fails(release, "ErrorUntrustedReusableWorkflow", *source, "--builder-id",
          "https://github.com/acme/app/.github/workflows/other.yml")
    fails(release, "ErrorMismatchSource", "--source-uri", "github.com/acme/apps")
    fails(release, "ErrorMismatchTag", *source, "--source-tag", "v1.2.4")
    fails(release, "ErrorMismatchVersionedTag", *source, "--source-versioned-tag", "v2")
    fails(release, "ErrorInvalidRef", *source, "--source-branch", "main")
    fails(release, "ErrorMismatchWorkflowInputs", *source, "--build-workflow-input", "k=v")
    # A predicate naming another workflow than the certificate's.
    digest = hashlib.sha256(Path(release.artifacts[0]).read_bytes()).hexdigest()
    lying = tmp_path / "lying.intoto.jsonl"
    lying.write_bytes(_signed(instance, attestation_v1(
        [("app", digest)], builder_id=f"https://github.com/{REPO}/.github/workflows/ci.yml@{TAG}",
        repository=REPO, sha=SHA), OWN_JOB))
    fails(release, "ErrorMismatchBuilderID", *source, provenance=lying,
          artifacts=release.artifacts[:1])


def test_a_builder_trusted_only_by_builder_id(instance: InstanceServer, tmp_path: Path) -> None:
    job = "acme/builders/.github/workflows/build.yml@refs/tags/v3.0.0"
    release = Released(instance, tmp_path / "custom",
                       lambda subjects: generic_v02(subjects, builder_id="https://github.com/" + job,
                                                    repository=REPO, sha=SHA), job)
    fails(release, "ErrorUntrustedReusableWorkflow", "--source-uri", "github.com/acme/app")
    result = passes(release, "--source-uri", "github.com/acme/app", "--builder-id",
                    "https://github.com/acme/builders/.github/workflows/build.yml@v3.0.0")
    assert result["slsa_build_level"] == 2


def _signed(instance: InstanceServer, payload: bytes, job: str,
            payload_type: str = "application/vnd.in-toto+json") -> bytes:
    """Signed through the library: `sealtrail attest` refuses statements without subjects
    and other payload types, which a producer elsewhere may still sign."""
    from sealtrail.sign import Signer, SigningContext

    context = SigningContext.from_trust_config(instance.trust_config.read_bytes(), 1)
    with Signer(context, identity_token=workflow_token(instance, job)) as signer:
        return signer.sign_statement(payload, "provenance", payload_type).bundle_json()


def test_bad_input(instance: InstanceServer, tmp_path: Path) -> None:
    builder = "https://github.com/" + GENERIC_JOB
    release = Released(instance, tmp_path / "bad",
                       lambda subjects: generic_v02(subjects, builder_id=builder,
                                                    repository=REPO, sha=SHA), GENERIC_JOB)
    source = ["--source-uri", "github.com/acme/app"]
    data = release.provenance.read_bytes()
    truncated = tmp_path / "truncated.intoto.jsonl"
    truncated.write_bytes(data[: len(data) // 2])
    fails(release, "ErrorInvalidFormat", *source, provenance=truncated)
    other = tmp_path / "other.bin"
    other.write_bytes(b"another artifact\n")
    fails(release, "ErrorMismatchHash", *source, artifacts=[str(other)])
    # A bundle of this instance checked against the public-good root: its log is unknown.
    err = fails(release, "ErrorInvalidRekorEntry", *source, "--certificate-oidc-issuer",
                instance.url + "/oidc/github", local=False)
    assert "not in the trusted root" in err

    artifact_digest = hashlib.sha256(Path(release.artifacts[0]).read_bytes()).hexdigest()
    subjects = [("app-1.2.3.tar.gz", artifact_digest)]
    cases = {
        "no-subjects": (generic_v02([], builder_id=builder, repository=REPO, sha=SHA),
                        "application/vnd.in-toto+json", "ErrorInvalidDssePayload"),
        "payload-type": (generic_v02(subjects, builder_id=builder, repository=REPO, sha=SHA),
                         "application/json", "ErrorInvalidDssePayload"),
        # A predicate contradicting its certificate: another builder, another commit.
        "other-builder": (generic_v02(subjects, builder_id=builder.replace("v2.1.0", "v2.2.0"),
                                      repository=REPO, sha=SHA),
                          "application/vnd.in-toto+json", "ErrorMismatchBuilderID"),
        "other-commit": (generic_v02(subjects, builder_id=builder, repository=REPO,
                                     sha="f" * 40),
                         "application/vnd.in-toto+json", "ErrorMismatchSource"),
    }
    for name, (payload, payload_type, error) in cases.items():
        path = tmp_path / f"{name}.intoto.jsonl"
        path.write_bytes(_signed(instance, payload, GENERIC_JOB, payload_type))
        fails(release, error, *source, provenance=path, artifacts=release.artifacts[:1])


def test_the_installed_command(instance: InstanceServer, tmp_path: Path) -> None:
    builder = "https://github.com/" + GENERIC_JOB
    release = Released(instance, tmp_path / "cmd",
                       lambda subjects: generic_v02(subjects, builder_id=builder,
                                                    repository=REPO, sha=SHA), GENERIC_JOB)
    done = run(SEALTRAIL, "verify-artifact", *release.artifacts, "--provenance-path",
               str(release.provenance), "--source-uri", "github.com/acme/app",
               "--trusted-root", str(instance.trusted_root), "--certificate-oidc-issuer",
               instance.url + "/oidc/github", "--print-provenance")
    assert done.stderr.count(f'Verified build using builder "{builder}" at commit {SHA}') == 2
    assert done.stderr.endswith("PASSED: SLSA verification passed\n")
    assert json.loads(done.stdout.splitlines()[0])["predicate"]["builder"]["id"] == builder
    done = run(SEALTRAIL, "verify-artifact", *release.artifacts, "--provenance-path",
               str(release.provenance), "--source-uri", "github.com/acme/app",
               "--source-tag", "v1", "--source-versioned-tag", "v1", check=False)
    assert done.returncode == 2 and "not allowed with argument" in done.stderr
