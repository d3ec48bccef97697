"""`verify-artifact` on a GitLab CI job's provenance (sealtrail's GitLab buildType) at SLSA Build
L2: the simulated GitLab job of test_attest_provenance_gitlab.py (tokens from the local
instance's `/oidc/gitlab` issuer) makes the provenance; verify-artifact passes with the job's
source and tag and the instance's GitLab issuer, and fails with slsa-verifier's error name for
another source, tag, branch, issuer, builder, and for a self-hosted runner unless a policy
allows it. `release verify` of a GitLab release checks its provenance the same way."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.integration.instance_server import InstanceServer, run
from tests.integration.test_attest_provenance_gitlab import PROJECT, SEALTRAIL, SHA, TAG, GitLabJob

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstanceServer]:
    server = InstanceServer(tmp_path_factory.mktemp("gitlab-verify") / "sealtrail")
    server.init()
    server.start()
    yield server
    server.stop()


def self_hosted_token(instance: InstanceServer) -> str:
    from sealtrail.server.instance import Instance

    issuer = Instance(str(instance.directory)).builtin_issuer("gitlab")
    return issuer.mint_gitlab_pipeline(project=PROJECT, ref=f"refs/tags/{TAG}", sha=SHA,
                                       runner_environment="self-hosted")


class Built:
    def __init__(self, instance: InstanceServer, directory: Path, token: str | None = None):
        self.job = GitLabJob(instance, directory)
        self.artifact = self.job.artifact("app.tar.gz")
        if token is not None:  # ids derive from the claims: the variables follow them
            claims = jwt.decode(token, options={"verify_signature": False})
            self.job.token = token
            self.job.env.update({
                "CI_PROJECT_ID": claims["project_id"], "CI_PIPELINE_ID": claims["pipeline_id"],
                "CI_JOB_ID": claims["job_id"],
                "CI_JOB_URL": f"{self.job.server}/{PROJECT}/-/jobs/{claims['job_id']}"})
        self.job.attest("app.tar.gz")
        self.provenance = self.job.directory / "app.tar.gz.intoto.jsonl"
        self.source = self.job.server.split("://", 1)[1] + "/" + PROJECT

    def verify(self, *argv: str, issuer: str | None = None) -> Any:
        done = run(SEALTRAIL, "verify-artifact", str(self.artifact), "--provenance-path",
                   str(self.provenance), "--certificate-oidc-issuer", issuer or self.job.server,
                   "--trusted-root", str(self.job.instance.trusted_root), *argv, check=False)
        assert "Traceback" not in done.stderr
        return done


@pytest.fixture(scope="module")
def built(instance: InstanceServer, tmp_path_factory: pytest.TempPathFactory) -> Built:
    return Built(instance, tmp_path_factory.mktemp("built") / "job")


def test_the_jobs_provenance_passes_at_level_2(built: Built) -> None:
    done = built.verify("--source-uri", built.source, "--source-tag", TAG, "--json")
    assert done.returncode == 0, done.stderr
    assert "PASSED: SLSA verification passed (SLSA Build L2: a GitLab CI job" in done.stderr
    report = json.loads(done.stdout)
    assert report["slsa_build_level"] == 2 and report["commit"] == SHA
    assert report["builder_id"] == f"{built.job.server}/{PROJECT}/-/runners/1"
    assert report["ref"] == f"refs/tags/{TAG}"
    versioned = built.verify("--source-uri", built.source, "--source-versioned-tag", "v2")
    assert versioned.returncode == 0, versioned.stderr


@pytest.mark.parametrize("flags, error", [
    (["--source-uri", "SOURCE/../other", "--source-tag", TAG], "ErrorMismatchSource"),
    (["--source-uri", "SOURCE", "--source-tag", "v2.0.1"], "ErrorMismatchTag"),
    (["--source-uri", "SOURCE", "--source-versioned-tag", "v3"], "ErrorMismatchVersionedTag"),
    (["--source-uri", "SOURCE", "--source-branch", "main"], "ErrorInvalidRef"),
    (["--source-uri", "SOURCE", "--builder-id", "BUILDER2"], "ErrorMismatchBuilderID"),
])
def test_other_expectations_fail_with_their_names(built: Built, flags: list[str],
                                                  error: str) -> None:
    source = built.source
    flags = [f.replace("SOURCE/../other", source.rsplit("/", 1)[0] + "/other")
             .replace("SOURCE", source)
             .replace("BUILDER2", f"{built.job.server}/{PROJECT}/-/runners/2") for f in flags]
    done = built.verify(*flags)
    assert done.returncode == 1, done.stderr
    assert f"FAILED: SLSA verification failed: {error}:" in done.stderr, done.stderr


def test_another_issuer_fails(built: Built) -> None:
    done = built.verify("--source-uri", built.source, issuer="https://gitlab.com")
    assert done.returncode == 1 and "ErrorInvalidOIDCIssuer" in done.stderr, done.stderr


@pytest.mark.parametrize("path, value, error", [
    (("resolvedDependencies", 0, "digest", "gitCommit"), "f" * 40, "ErrorMismatchCertificate"),
    (("externalParameters", "ci_config"), "CONFIG-other", "ErrorMismatchCertificate"),
    (("externalParameters", "source"), "SERVER/acme/tools/other", "ErrorMismatchSource"),
    (("runDetails", "builder", "id"), "https://evil.example.com/acme/tools/app/-/runners/1",
     "ErrorMismatchBuilderID"),
])
def test_a_statement_the_certificate_contradicts_fails(built: Built, tmp_path: Path,
                                                       path: tuple[Any, ...], value: str,
                                                       error: str) -> None:
    """The job's own statement with one field changed, signed with the same pipeline token
    (as a job step that reads its token could): the certificate still names the job's
    commit, config and project, so the lie is caught."""
    envelope = json.loads(built.provenance.read_text().splitlines()[0])["dsseEnvelope"]
    document = json.loads(base64.b64decode(envelope["payload"]))
    predicate = document["predicate"]
    node: Any = predicate["runDetails"] if path[0] == "runDetails" else \
        predicate["buildDefinition"]
    for key in path[1:-1] if path[0] == "runDetails" else path[:-1]:
        node = node[key]
    node[path[-1]] = value.replace("CONFIG-other", built.job.identity.replace(
        ".gitlab-ci.yml", "other.yml")).replace("SERVER", built.job.server)
    statement = tmp_path / "statement.json"
    statement.write_text(json.dumps(document))
    bundle = tmp_path / "lying.intoto.jsonl"
    run(SEALTRAIL, "attest", "--statement", str(statement), "--bundle", str(bundle),
        "--identity-token", built.job.token, "--instance-dir", str(built.job.instance.directory))
    done = run(SEALTRAIL, "verify-artifact", str(built.artifact), "--provenance-path",
               str(bundle), "--source-uri", built.source, "--certificate-oidc-issuer",
               built.job.server, "--trusted-root", str(built.job.instance.trusted_root),
               check=False)
    assert done.returncode == 1, done.stderr
    assert f"FAILED: SLSA verification failed: {error}:" in done.stderr, done.stderr


def test_a_self_hosted_runner_fails_unless_a_policy_allows_it(instance: InstanceServer,
                                                              tmp_path: Path) -> None:
    built = Built(instance, tmp_path / "self-hosted", token=self_hosted_token(instance))
    done = built.verify("--source-uri", built.source, "--source-tag", TAG)
    assert done.returncode == 1, done.stderr
    assert "ErrorUntrustedReusableWorkflow" in done.stderr and "self-hosted" in done.stderr
    policy = tmp_path / "policy.toml"
    policy.write_text(f'version = 1\n[source]\nuri = "{built.source}"\n[[builder]]\n'
                      f'id = "{built.job.server}/{PROJECT}/-/runners/*"\n'
                      "allow-self-hosted = true\n")
    done = built.verify("--policy", str(policy))
    assert done.returncode == 0, done.stderr
    explained = run(SEALTRAIL, "policy", "explain", str(policy), check=False)
    assert "GitLab" in explained.stdout and "self-hosted" in explained.stdout, explained.stdout
    policy.write_text(policy.read_text().replace("allow-self-hosted = true\n", ""))
    done = built.verify("--policy", str(policy))
    assert done.returncode == 1 and "ErrorUntrustedReusableWorkflow" in done.stderr


def test_release_verify_checks_a_gitlab_releases_provenance(instance: InstanceServer,
                                                           tmp_path: Path) -> None:
    job = GitLabJob(instance, tmp_path / "release")
    job.artifact("app.tar.gz")
    job.artifact("app.bin")
    run(SEALTRAIL, "release", "sign", str(job.directory), "--instance-dir",
        str(instance.directory), env={**job.env, "SIGSTORE_ID_TOKEN": job.token})
    source = job.server.split("://", 1)[1] + "/" + PROJECT
    verify = [SEALTRAIL, "release", "verify", str(job.directory), "--certificate-identity",
              job.identity, "--certificate-oidc-issuer", job.server, "--trusted-root",
              str(instance.trusted_root), "--source-uri", source, "--json"]

    def provenance_row(*flags: str) -> Any:
        done = run(*verify, *flags, check=False)
        assert "Traceback" not in done.stderr
        rows = {row["name"]: row for row in json.loads(done.stdout)["results"]}
        return done.returncode, rows["multiple.intoto.jsonl"]

    code, row = provenance_row("--source-tag", TAG)
    assert code == 0 and row["ok"], row
    assert "SLSA Build L2" in row["message"] and "/-/runners/1" in row["message"], row
    code, row = provenance_row("--source-tag", "v9.9.9")
    assert code == 1 and row["code"] == "ErrorMismatchTag", row
    wrong = [*verify]
    wrong[wrong.index(source)] = source + "-other"
    done = run(*wrong, check=False)
    rows = {r["name"]: r for r in json.loads(done.stdout)["results"]}
    assert done.returncode == 1 and rows["multiple.intoto.jsonl"]["code"] == \
        "ErrorMismatchSource", rows
