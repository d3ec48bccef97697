"""Issue 14's round trip: provenance made by `sealtrail attest-provenance` in a simulated GitHub
Actions job, verified by `verify-artifact` and `verify-attestation`.

A local instance with its built-in issuer; the job is simulated by GITHUB_* variables and an
event payload file written here, and by the job's identity token minted from the instance's
issuer with the same claims (in-process: `sealtrail token github` has no flags for the run and
repository ids). `sealtrail attest-provenance` runs as a subprocess in that environment; the
bundle then passes both verifiers under matching flags and fails with slsa-verifier's error name
or gh's message for each mismatching one. A variable contradicting the token is refused before
anything is signed. `--local`: a build from a git repository made here, signed with an email
identity.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.integration.instance_server import BIN, InstanceServer, run

pytestmark = pytest.mark.integration

SEALTRAIL = str(BIN / "sealtrail")
REPO = "acme/app"
WORKFLOW = ".github/workflows/release.yml"
SHA = "0123456789abcdef0123456789abcdef01234567"
TAG = "refs/tags/v1.2.3"
MAIN = "refs/heads/main"
SLSA = "https://slsa.dev/provenance/v1"
REPO_ID, OWNER_ID, RUN_ID = "4242", "77", "9001"


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstanceServer]:
    server = InstanceServer(tmp_path_factory.mktemp("provenance") / "sealtrail")
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


class Job:
    """A simulated GitHub Actions job: its variables, its event file and its token."""

    def __init__(self, instance: InstanceServer, directory: Path, *, event: str, ref: str,
                 payload: dict[str, Any], job_workflow_ref: str | None = None) -> None:
        from sealtrail.server.instance import Instance

        directory.mkdir()
        self.directory = directory
        self.instance = instance
        event_path = directory / "event.json"
        event_path.write_text(json.dumps(payload))
        self.env = {
            "GITHUB_ACTIONS": "true", "CI": "true",
            "GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": REPO,
            "GITHUB_REF": ref, "GITHUB_SHA": SHA,
            "GITHUB_WORKFLOW_REF": f"{REPO}/{WORKFLOW}@{ref}", "GITHUB_EVENT_NAME": event,
            "GITHUB_EVENT_PATH": str(event_path), "GITHUB_RUN_ID": RUN_ID,
            "GITHUB_RUN_ATTEMPT": "2", "GITHUB_REPOSITORY_ID": REPO_ID,
            "GITHUB_REPOSITORY_OWNER_ID": OWNER_ID, "RUNNER_ENVIRONMENT": "github-hosted",
        }
        issuer = Instance(str(instance.directory)).builtin_issuer("github")
        self.token = issuer.mint_github_workflow(
            repository=REPO, workflow_path=WORKFLOW, ref=ref, sha=SHA, event_name=event,
            repository_id=REPO_ID, repository_owner_id=OWNER_ID, run_id=RUN_ID, run_attempt=2,
            job_workflow_ref=job_workflow_ref)

    def artifacts(self, *names: str) -> list[str]:
        paths = []
        for name in names:
            path = self.directory / name
            path.write_bytes(f"the contents of {name}\n".encode())
            paths.append(str(path))
        return paths

    def attest(self, *argv: str, check: bool = True, local: bool = True,
               variables: dict[str, str] | None = None) -> Any:
        """`sealtrail attest-provenance` in the job's directory and environment, signing
        with the local instance (``local``) or the default, public-good."""
        where = ["--instance-dir", str(self.instance.directory)] if local else []
        done = run("sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", str(self.directory),
                   SEALTRAIL, "attest-provenance", *argv, *where, "--identity-token",
                   self.token, env={**self.env, **(variables or {})}, check=check)
        assert "Traceback" not in done.stderr
        return done


def verify_artifact(instance: InstanceServer, artifacts: list[str], bundle: Path,
                    *flags: str) -> tuple[int, str]:
    done = run(SEALTRAIL, "verify-artifact", *artifacts, "--provenance-path", str(bundle),
               "--trusted-root", str(instance.trusted_root), "--certificate-oidc-issuer",
               instance.url + "/oidc/github", *flags, check=False)
    assert "Traceback" not in done.stderr
    return done.returncode, done.stderr


def verify_attestation(instance: InstanceServer, roots: Path, artifact: str, bundle: Path,
                       *flags: str) -> tuple[int, str, str]:
    done = run(SEALTRAIL, "verify-attestation", artifact, "--bundle", str(bundle),
               "--cert-oidc-issuer", instance.url + "/oidc/github", "--custom-trusted-root",
               str(roots), *flags, check=False)
    assert "Traceback" not in done.stderr
    return done.returncode, done.stdout, done.stderr


def passes(instance: InstanceServer, artifacts: list[str], bundle: Path, *flags: str) -> int:
    """Passes verify-artifact; the SLSA Build level it rates the builder."""
    done = run(SEALTRAIL, "verify-artifact", *artifacts, "--provenance-path", str(bundle),
               "--trusted-root", str(instance.trusted_root), "--certificate-oidc-issuer",
               instance.url + "/oidc/github", *flags, "--json", check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr.endswith("PASSED: SLSA verification passed\n"), done.stderr
    level: int = json.loads(done.stdout)["slsa_build_level"]
    return level


def fails(instance: InstanceServer, artifacts: list[str], bundle: Path, error: str,
          *flags: str) -> str:
    code, err = verify_artifact(instance, artifacts, bundle, *flags)
    assert code == 1 and f"FAILED: SLSA verification failed: {error}: " in err, err
    return err


@pytest.fixture(scope="module")
def tag_push(instance: InstanceServer, tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[Job, list[str], Path]:
    """A push of tag v1.2.3, two artifacts: multiple.intoto.jsonl in the working directory."""
    job = Job(instance, tmp_path_factory.mktemp("push") / "job", event="push", ref=TAG,
              payload={"ref": TAG, "after": SHA, "base_ref": None,
                       "repository": {"full_name": REPO, "id": int(REPO_ID)}})
    artifacts = job.artifacts("app-1.2.3.tar.gz", "app-1.2.3-py3-none-any.whl")
    done = job.attest(str(job.directory / "app-1.2.3*"))
    bundle = job.directory / "multiple.intoto.jsonl"
    assert done.stdout == f"wrote {'multiple.intoto.jsonl'}\n"
    return job, artifacts, bundle


def test_the_statement_is_actions_attests(tag_push: tuple[Job, list[str], Path]) -> None:
    """The signed payload, field by field as actions/attest fills it."""
    _, artifacts, bundle = tag_push
    lines = bundle.read_text().splitlines()
    assert len(lines) == 1  # JSON Lines: one bundle
    envelope = json.loads(lines[0])["dsseEnvelope"]
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == SLSA
    assert statement["subject"] == [
        {"name": Path(a).name, "digest": {"sha256": hashlib.sha256(Path(a).read_bytes())
                                          .hexdigest()}} for a in sorted(artifacts)]
    assert statement["predicate"] == {
        "buildDefinition": {
            "buildType": "https://actions.github.io/buildtypes/workflow/v1",
            "externalParameters": {"workflow": {"ref": TAG,
                                                "repository": f"https://github.com/{REPO}",
                                                "path": WORKFLOW}},
            "internalParameters": {"github": {"event_name": "push", "repository_id": REPO_ID,
                                              "repository_owner_id": OWNER_ID,
                                              "runner_environment": "github-hosted"}},
            "resolvedDependencies": [{"uri": f"git+https://github.com/{REPO}@{TAG}",
                                      "digest": {"gitCommit": SHA}}],
        },
        "runDetails": {
            "builder": {"id": f"https://github.com/{REPO}/{WORKFLOW}@{TAG}"},
            "metadata": {"invocationId": f"https://github.com/{REPO}/actions/runs/{RUN_ID}"
                                         "/attempts/2"},
        },
    }


def test_tag_push_under_verify_artifact(instance: InstanceServer,
                                        tag_push: tuple[Job, list[str], Path]) -> None:
    _, artifacts, bundle = tag_push
    source = ["--source-uri", f"github.com/{REPO}"]
    builder = f"https://github.com/{REPO}/{WORKFLOW}"
    # The repository's own workflow signs: a hosted platform, not an isolated builder.
    assert passes(instance, artifacts, bundle, *source, "--builder-id", builder,
                  "--source-tag", "v1.2.3") == 2
    passes(instance, artifacts, bundle, *source, "--builder-id", f"{builder}@{TAG}",
           "--source-versioned-tag", "v1.2")
    # Each mismatching flag, with slsa-verifier's error name.
    fails(instance, artifacts, bundle, "ErrorUntrustedReusableWorkflow", *source,
          "--builder-id", f"https://github.com/{REPO}/.github/workflows/other.yml")
    fails(instance, artifacts, bundle, "ErrorMismatchSource", "--source-uri",
          "github.com/acme/other")
    fails(instance, artifacts, bundle, "ErrorMismatchTag", *source, "--source-tag", "v1.2.4")
    fails(instance, artifacts, bundle, "ErrorMismatchVersionedTag", *source,
          "--source-versioned-tag", "v2")
    fails(instance, artifacts, bundle, "ErrorMismatchVersionedTag", *source,
          "--source-versioned-tag", "v1.3")
    # A tag build's branch is unknown: actions/attest's predicate records no event payload.
    fails(instance, artifacts, bundle, "ErrorInvalidRef", *source, "--source-branch", "main")
    err = fails(instance, artifacts, bundle, "ErrorMismatchWorkflowInputs", *source,
                "--build-workflow-input", "version=1.2.3")
    assert "only for a workflow_dispatch event" in err


def test_tag_push_under_verify_attestation(instance: InstanceServer, roots: Path,
                                           tag_push: tuple[Job, list[str], Path]) -> None:
    _, artifacts, bundle = tag_push
    for flags in (["--owner", "acme"], ["--repo", REPO],
                  ["--repo", REPO, "--signer-workflow", f"{REPO}/{WORKFLOW}", "--source-ref",
                   TAG, "--source-digest", SHA, "--predicate-type", SLSA,
                   "--deny-self-hosted-runners"]):
        for artifact in artifacts:
            code, out, err = verify_attestation(instance, roots, artifact, bundle, *flags)
            assert code == 0, (flags, err)
            assert "✓ Verification succeeded!" in out
    for flags, message in (
            (["--owner", "other", "--cert-identity-regex", "."],
             "expected SourceRepositoryOwnerURI to be https://github.com/other, got "
             "https://github.com/acme"),
            (["--repo", "acme/other", "--signer-repo", REPO],
             "expected SourceRepositoryURI to be https://github.com/acme/other, got "
             f"https://github.com/{REPO}"),
            (["--owner", "acme", "--signer-workflow", f"{REPO}/.github/workflows/other.yml"],
             'verifying with issuer "'),
            (["--owner", "acme", "--source-ref", "refs/tags/v1.2.4"],
             f"expected SourceRepositoryRef to be refs/tags/v1.2.4, got {TAG}"),
            (["--owner", "acme", "--predicate-type", "https://slsa.dev/provenance/v0.2"],
             "no matching predicate found")):
        code, out, err = verify_attestation(instance, roots, artifacts[0], bundle, *flags)
        assert code == 1 and message in err and out == "", (flags, err)


def test_workflow_dispatch_with_inputs(instance: InstanceServer, roots: Path,
                                       tmp_path: Path) -> None:
    inputs = {"version": "1.2.3", "dry-run": False}
    job = Job(instance, tmp_path / "dispatch", event="workflow_dispatch", ref=MAIN,
              payload={"ref": MAIN, "inputs": inputs, "workflow": WORKFLOW,
                       "repository": {"full_name": REPO, "id": int(REPO_ID)}})
    (artifact,) = job.artifacts("app.bin")
    subjects = base64.b64encode(
        f"{hashlib.sha256(Path(artifact).read_bytes()).hexdigest()}  app.bin\n".encode())
    done = job.attest("--base64-subjects", subjects.decode(), "--json")
    result = json.loads(done.stdout)
    bundle = job.directory / "app.bin.intoto.jsonl"
    assert result["bundle"] == "app.bin.intoto.jsonl" and bundle.is_file()
    assert result["builder_id"] == f"https://github.com/{REPO}/{WORKFLOW}@{MAIN}"
    source = ["--source-uri", f"github.com/{REPO}", "--builder-id",
              f"https://github.com/{REPO}/{WORKFLOW}"]
    passes(instance, [artifact], bundle, *source, "--source-branch", "main")
    fails(instance, [artifact], bundle, "ErrorMismatchBranch", *source, "--source-branch",
          "release")
    fails(instance, [artifact], bundle, "ErrorInvalidRef", *source, "--source-tag", "v1.2.3")
    # actions/attest's predicate does not carry the dispatch's inputs, and verify-artifact
    # reads inputs only from an event payload: any expected input fails (see docs).
    err = fails(instance, [artifact], bundle, "ErrorMismatchWorkflowInputs", *source,
                "--build-workflow-input", "version=1.2.3")
    assert "does not record the event's inputs" in err
    code, _, err = verify_attestation(instance, roots, artifact, bundle, "--repo", REPO,
                                      "--source-ref", MAIN)
    assert code == 0, err
    code, _, err = verify_attestation(instance, roots, artifact, bundle, "--repo", REPO,
                                      "--source-ref", TAG)
    assert code == 1 and f"expected SourceRepositoryRef to be {TAG}, got {MAIN}" in err


def test_a_reusable_workflow_is_the_builder(instance: InstanceServer, roots: Path,
                                            tmp_path: Path) -> None:
    """The builder comes from the token's job_workflow_ref, not from GITHUB_WORKFLOW_REF."""
    reusable = "acme/builders/.github/workflows/build.yml@refs/tags/v2.0.0"
    job = Job(instance, tmp_path / "reusable", event="push", ref=TAG,
              payload={"ref": TAG}, job_workflow_ref=reusable)
    (artifact,) = job.artifacts("tool.bin")
    checksums = job.directory / "SHA256SUMS"
    checksums.write_text(f"{hashlib.sha256(Path(artifact).read_bytes()).hexdigest()} *tool.bin\n")
    job.attest("--subjects-file", str(checksums), "--output", "provenance.intoto.jsonl")
    bundle = job.directory / "provenance.intoto.jsonl"
    source = ["--source-uri", f"github.com/{REPO}", "--source-tag", "v1.2.3"]
    # A reusable workflow of another repository on a GitHub-hosted runner: L3.
    assert passes(instance, [artifact], bundle, *source, "--builder-id",
                  "https://github.com/acme/builders/.github/workflows/build.yml@v2.0.0") == 3
    fails(instance, [artifact], bundle, "ErrorUntrustedReusableWorkflow", *source,
          "--builder-id", f"https://github.com/{REPO}/{WORKFLOW}")
    code, out, err = verify_attestation(instance, roots, artifact, bundle, "--repo", REPO,
                                        "--signer-workflow",
                                        "acme/builders/.github/workflows/build.yml")
    assert code == 0, err
    assert "Signer workflow: .github/workflows/build.yml@refs/tags/v2.0.0" in out


@pytest.mark.parametrize("variable, value, message", [
    ("GITHUB_REPOSITORY", "acme/other",
     "GITHUB_REPOSITORY contradicts the identity token's repository claim"),
    ("GITHUB_SHA", "f" * 40, "GITHUB_SHA contradicts the identity token's sha claim"),
    ("GITHUB_REF", "refs/tags/v9.9.9", "GITHUB_REF contradicts the identity token's ref claim"),
    ("GITHUB_REPOSITORY_ID", "1", "GITHUB_REPOSITORY_ID contradicts the identity token's "
                                  "repository_id claim"),
    ("RUNNER_ENVIRONMENT", "self-hosted",
     "RUNNER_ENVIRONMENT contradicts the identity token's runner_environment claim"),
])
def test_a_variable_contradicting_the_token_is_refused(
        instance: InstanceServer, tmp_path: Path, variable: str, value: str,
        message: str) -> None:
    job = Job(instance, tmp_path / "lying", event="push", ref=TAG, payload={})
    job.artifacts("app.bin")
    env = {variable: value}
    if variable in ("GITHUB_REPOSITORY", "GITHUB_REF"):  # keep the workflow ref consistent
        env["GITHUB_WORKFLOW_REF"] = (f"{env.get('GITHUB_REPOSITORY', REPO)}/{WORKFLOW}@"
                                      f"{env.get('GITHUB_REF', TAG)}")
    done = job.attest("app.bin", check=False, variables=env)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert done.stderr.count("\n") <= 2  # the token line and the error: one clear line
    assert not (job.directory / "app.bin.intoto.jsonl").exists()
    assert job.attest("app.bin").returncode == 0  # the same job, told the truth, is signed


def test_bad_input_is_one_line(instance: InstanceServer, tmp_path: Path) -> None:
    job = Job(instance, tmp_path / "bad", event="push", ref=TAG, payload={"ref": TAG})
    job.artifacts("app.bin")
    done = job.attest("app.bin", check=False,
                      variables={"GITHUB_RUN_ID": "", "RUNNER_ENVIRONMENT": ""})
    assert done.returncode == 2
    assert ("not in a GitHub Actions job: GITHUB_RUN_ID, RUNNER_ENVIRONMENT are not set"
            in done.stderr)
    for argv, message in ((["missing.bin"], "missing.bin is not a file"),
                          (["*.tar.gz"], "*.tar.gz matches no file"),
                          (["app.bin", "--base64-subjects", "!!"], "is not base64"),
                          (["--subjects-file", "app.bin"], "the hash is not a SHA-256")):
        done = job.attest(*argv, check=False)
        assert done.returncode == 2 and message in done.stderr, done.stderr
    (job.directory / "event.json").write_text(json.dumps({"ref": "refs/tags/v0.0.1"}))
    done = job.attest("app.bin", check=False)
    assert done.returncode == 2 and "contradicts the variables: its ref" in done.stderr
    (job.directory / "event.json").write_text(json.dumps({"ref": TAG}))
    from sealtrail.server.instance import Instance

    job.token = Instance(str(instance.directory)).builtin_issuer().mint_email("dev@example.com")
    done = job.attest("app.bin", check=False)
    assert done.returncode == 2 and "not a GitHub Actions workflow token" in done.stderr
    assert not list(job.directory.glob("*.intoto.jsonl"))


def test_a_private_repository_is_not_published_in_public_good(instance: InstanceServer,
                                                              tmp_path: Path) -> None:
    """actions/attest signs a private repository's provenance with GitHub's instance, never
    public-good's log; sealtrail refuses rather than publish (checked before any request)."""
    job = Job(instance, tmp_path / "private", event="push", ref=TAG,
              payload={"ref": TAG, "repository": {"full_name": REPO, "visibility": "private"}})
    job.artifacts("app.bin")
    done = job.attest("app.bin", local=False, check=False)
    assert done.returncode == 2, done.stderr
    assert "the repository is private: signing with public-good would publish" in done.stderr
    assert not (job.directory / "app.bin.intoto.jsonl").exists()
    job.attest("app.bin")  # the same job with its own instance
    assert (job.directory / "app.bin.intoto.jsonl").is_file()


# -- a local build (--local) --------------------------------------------------------------------

LOCAL_BUILD_TYPE = "urn:sealtrail:buildtype:local:v1"
SECRET = "ghp_s3cretT0ken"


def git(repo: Path, *argv: str) -> str:
    env = {"GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
           "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "dev@example.com",
           "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    return str(run("git", "-C", str(repo), *argv, env=env).stdout.strip())


def statement_of(bundle: Path) -> dict[str, Any]:
    envelope = json.loads(bundle.read_text())["dsseEnvelope"]
    data: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
    return data


def test_local_build(instance: InstanceServer, tmp_path: Path) -> None:
    from sealtrail.server.instance import Instance

    repo = tmp_path / "app"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / ".gitignore").write_text("dist/\n")
    (repo / "main.c").write_text("int main(void) { return 0; }\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "one")
    git(repo, "tag", "v1.0.0")
    commit = git(repo, "rev-parse", "HEAD")
    git(repo, "remote", "add", "origin", f"https://dev:{SECRET}@git.example.com/acme/app.git")
    (repo / "dist").mkdir()
    artifact = repo / "dist" / "app.bin"
    artifact.write_bytes(b"a locally built binary\n")
    token = Instance(str(instance.directory)).builtin_issuer().mint_email("dev@example.com")
    # Outside GitHub Actions: none of its variables, even if the test runs in a job.
    env = {name: "" for name in ("GITHUB_ACTIONS", "GITHUB_REPOSITORY", "GITHUB_EVENT_PATH",
                                 "ACTIONS_ID_TOKEN_REQUEST_URL", "SIGSTORE_ID_TOKEN")}

    def attest(*argv: str, check: bool = True) -> Any:
        return run("sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", str(repo), SEALTRAIL,
                   "attest-provenance", "--local", *argv, "--instance-dir",
                   str(instance.directory), "--identity-token", token, env=env, check=check)

    done = attest("dist/app.bin", "--json")
    assert "SLSA Build L1, not built on an isolated platform" in done.stderr
    bundle = repo / "app.bin.intoto.jsonl"
    assert json.loads(done.stdout)["build_type"] == LOCAL_BUILD_TYPE
    assert SECRET not in bundle.read_text() and "dev:" not in bundle.read_text()
    statement = statement_of(bundle)
    assert statement["subject"] == [{"name": "app.bin", "digest": {
        "sha256": hashlib.sha256(artifact.read_bytes()).hexdigest()}}]
    predicate = statement["predicate"]
    source = "https://git.example.com/acme/app.git"
    assert predicate["buildDefinition"] == {
        "buildType": LOCAL_BUILD_TYPE,
        "externalParameters": {"source": {"repository": source, "ref": "refs/heads/main",
                                          "dirty": False}},
        "internalParameters": {"platform": "local", "isolated": False, "slsaBuildLevel": 1},
        "resolvedDependencies": [{"uri": f"git+{source}@refs/heads/main",
                                  "digest": {"gitCommit": commit}}],
    }
    assert predicate["runDetails"]["builder"]["id"].startswith("urn:sealtrail:builder:local:")

    # A changed tracked file makes the tree dirty; detached at a tag, the tag is the ref.
    (repo / "main.c").write_text("int main(void) { return 1; }\n")
    git(repo, "checkout", "-q", "--detach", "v1.0.0")
    attest("dist/app.bin", "--output", "dirty.intoto.jsonl")
    source_of = statement_of(repo / "dirty.intoto.jsonl")["predicate"]["buildDefinition"]
    assert source_of["externalParameters"]["source"] == {
        "repository": source, "ref": "refs/tags/v1.0.0", "dirty": True}

    # Verified as a signed attestation by the identity that signed it ...
    done = run(SEALTRAIL, "verify", str(artifact), "--bundle", str(bundle), "--trusted-root",
               str(instance.trusted_root), "--certificate-identity", "dev@example.com",
               "--certificate-oidc-issuer", Instance(str(instance.directory))
               .builtin_issuer().issuer_url, check=False)
    assert done.returncode == 0, done.stderr
    # ... and refused as provenance without a policy trusting the machine, which it names.
    code, err = verify_artifact(instance, [str(artifact)], bundle, "--source-uri",
                                "git.example.com/acme/app")
    assert code == 1 and \
        "FAILED: SLSA verification failed: ErrorUntrustedReusableWorkflow" in err, err
    assert "urn:sealtrail:builder:local:" in err and "--policy" in err


def test_local_build_refusals(instance: InstanceServer, tmp_path: Path) -> None:
    repo = tmp_path / "norepo"
    repo.mkdir()
    (repo / "a.bin").write_bytes(b"x")
    common = ["--local", "a.bin", "--instance-dir", str(instance.directory),
              "--identity-token", "unused"]

    def attest(*argv: str) -> Any:
        return run("sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", str(repo), SEALTRAIL,
                   "attest-provenance", *argv, check=False)

    done = attest(*common)
    assert done.returncode == 2 and "is not a git working tree with a commit" in done.stderr
    git(repo, "init", "-q")
    git(repo, "commit", "-q", "--allow-empty", "-m", "one")
    done = attest(*common)
    assert done.returncode == 2 and "no git remote names the source" in done.stderr
    git(repo, "remote", "add", "origin", "/srv/git/app.git")
    done = attest(*common)
    assert done.returncode == 2 and "the git remote is not a network URL" in done.stderr
    done = attest("a.bin", "--git-remote", "origin")
    assert done.returncode == 2 and "--source-dir and --git-remote go with --local" in done.stderr
    assert not list(repo.glob("*.intoto.jsonl"))
