"""`sealtrail attest-provenance` in a simulated GitLab CI job: GitLab's predefined variables and
the job's id_tokens token (in SIGSTORE_ID_TOKEN, as `id_tokens: SIGSTORE_ID_TOKEN` puts it),
minted by the local instance's built-in GitLab issuer, which also plays the GitLab server
(CI_SERVER_URL is its URL). The bundle verifies against the artifact with the pipeline's
identity; a variable contradicting the token, or a token that is not GitLab's, is refused
before anything is signed; `release sign` refuses GitLab provenance without the variables.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.integration.instance_server import BIN, InstanceServer, run

pytestmark = pytest.mark.integration

SEALTRAIL = str(BIN / "sealtrail")
SHA = "0123456789abcdef0123456789abcdef01234567"
PROJECT = "acme/tools/app"
TAG = "v2.0.0"


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstanceServer]:
    server = InstanceServer(tmp_path_factory.mktemp("gitlab-attest") / "sealtrail")
    server.init()
    server.start()
    yield server
    server.stop()


class GitLabJob:
    def __init__(self, instance: InstanceServer, directory: Path) -> None:
        directory.mkdir()
        self.directory = directory
        self.instance = instance
        self.server = instance.url + "/oidc/gitlab"
        self.token = run(SEALTRAIL, "token", "gitlab", "--instance", str(instance.directory),
                         "--project", PROJECT, "--ref", f"refs/tags/{TAG}",
                         "--sha", SHA).stdout.strip()
        claims = jwt.decode(self.token, options={"verify_signature": False})
        self.claims = claims
        self.env = {
            "GITHUB_ACTIONS": "", "CI": "true", "GITLAB_CI": "true",
            "CI_SERVER_URL": self.server, "CI_PROJECT_PATH": PROJECT,
            "CI_PROJECT_ID": claims["project_id"], "CI_PROJECT_NAMESPACE": "acme/tools",
            "CI_PROJECT_VISIBILITY": "public", "CI_COMMIT_SHA": SHA,
            "CI_COMMIT_REF_NAME": TAG, "CI_COMMIT_TAG": TAG, "CI_PIPELINE_SOURCE": "push",
            "CI_PIPELINE_ID": claims["pipeline_id"], "CI_JOB_ID": claims["job_id"],
            "CI_JOB_URL": f"{self.server}/{PROJECT}/-/jobs/{claims['job_id']}",
            "CI_CONFIG_PATH": ".gitlab-ci.yml", "CI_RUNNER_ID": "1",
        }
        self.identity = (f"https://{self.server.split('://', 1)[1]}/{PROJECT}"
                         f"//.gitlab-ci.yml@refs/tags/{TAG}")

    def artifact(self, name: str) -> Path:
        path = self.directory / name
        path.write_bytes(f"the contents of {name}\n".encode())
        return path

    def attest(self, *argv: str, check: bool = True, token: str | None = None,
               variables: dict[str, str] | None = None) -> Any:
        done = run("sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", str(self.directory),
                   SEALTRAIL, "attest-provenance", *argv, "--instance-dir",
                   str(self.instance.directory),
                   env={**self.env, "SIGSTORE_ID_TOKEN": token or self.token,
                        **(variables or {})}, check=check)
        assert "Traceback" not in done.stderr
        return done

    def verify(self, artifact: Path, bundle: Path, identity: str) -> Any:
        return run(SEALTRAIL, "verify", str(artifact), "--bundle", str(bundle),
                   "--certificate-identity", identity, "--certificate-oidc-issuer", self.server,
                   "--trusted-root", str(self.instance.trusted_root), check=False)


def test_gitlab_job_provenance_verifies(instance: InstanceServer, tmp_path: Path) -> None:
    job = GitLabJob(instance, tmp_path / "job")
    artifact = job.artifact("app.tar.gz")
    done = job.attest("app.tar.gz", "--json")
    assert "identity token from" in done.stderr and "SIGSTORE_ID_TOKEN" in done.stderr
    report = json.loads(done.stdout)
    assert report["build_type"] == "https://sealtrail.dev/buildtypes/gitlab-ci/v1"
    assert report["builder_id"] == f"{job.server}/{PROJECT}/-/runners/1"
    bundle = job.directory / "app.tar.gz.intoto.jsonl"
    ok = job.verify(artifact, bundle, job.identity)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    other = job.verify(artifact, bundle, job.identity.replace("refs/tags/", "refs/heads/"))
    assert other.returncode == 1, other.stdout + other.stderr
    envelope = json.loads(bundle.read_text().splitlines()[0])["dsseEnvelope"]
    predicate = json.loads(base64.b64decode(envelope["payload"]))["predicate"]
    assert predicate["buildDefinition"]["externalParameters"] == {
        "source": f"{job.server}/{PROJECT}", "ci_config": job.identity,
        "ref": f"refs/tags/{TAG}"}
    assert predicate["runDetails"]["metadata"]["invocationId"] == job.env["CI_JOB_URL"]


@pytest.mark.parametrize("variable, value", [
    ("CI_COMMIT_SHA", "f" * 40),
    ("CI_PROJECT_ID", "1"),
    ("CI_PIPELINE_SOURCE", "web"),
    ("CI_CONFIG_PATH", "ci/other.yml"),
])
def test_a_variable_contradicting_the_token_is_refused(instance: InstanceServer, tmp_path: Path,
                                                       variable: str, value: str) -> None:
    job = GitLabJob(instance, tmp_path / "lying")
    job.artifact("app.bin")
    done = job.attest("app.bin", check=False, variables={variable: value})
    assert done.returncode == 2, done.stderr
    assert f"{variable} contradicts the identity token's" in done.stderr
    assert not (job.directory / "app.bin.intoto.jsonl").exists()


def test_not_a_gitlab_token_or_job(instance: InstanceServer, tmp_path: Path) -> None:
    job = GitLabJob(instance, tmp_path / "email")
    job.artifact("app.bin")
    done = job.attest("app.bin", check=False, token=instance.token("dev@example.com"))
    assert done.returncode == 2 and "not a GitLab CI token" in done.stderr, done.stderr
    done = job.attest("app.bin", check=False, variables={"CI_RUNNER_ID": ""})
    assert done.returncode == 2 and "not in a GitLab CI job: CI_RUNNER_ID is not set" \
        in done.stderr, done.stderr
    # release sign in the same job without the variables: refused, not silently unattested.
    done = run(SEALTRAIL, "release", "sign", str(job.directory), "--instance-dir",
               str(instance.directory),
               env={**job.env, "CI_JOB_URL": "", "SIGSTORE_ID_TOKEN": job.token}, check=False)
    assert done.returncode == 2 and "CI_JOB_URL is not set" in done.stderr, done.stderr
    assert not list(job.directory.glob("*.intoto.jsonl"))
