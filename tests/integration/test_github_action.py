"""Issue 15's acceptance: the GitHub Action (action.yml) run in a simulated GitHub Actions job.

What a runner does for a composite action is done here, for the action's `run:` steps as they
are written in action.yml: each step's `env:` expressions are evaluated (the action's inputs,
`github.*`), its `if:` decided, and its script run as GitHub's `shell: bash` runs it
(`bash --noprofile --norc -eo pipefail FILE`) in the job's environment: the GITHUB_* variables,
an event payload file, RUNNER_TEMP, and the two variables `permissions: id-token: write` gives
a job, ACTIONS_ID_TOKEN_REQUEST_URL/TOKEN. Those name a local HTTP endpoint behaving like
GitHub's ID-token service (GET with the bearer request token and `audience=...`, answering
`{"value": JWT}`), the JWT minted by a local instance's built-in issuer with GitHub's claims for
this job. The `uses:` step (actions/setup-python) is the runner's business: `python` on PATH is
this interpreter. `gh` is a stub on PATH recording its arguments and environment, so the upload
step runs as written without reaching GitHub.

The install step really installs sealtrail from the action's path (this checkout) into a fresh
virtual environment, as on a runner (pip reaches PyPI for the dependencies, as
test_packaging.py does).
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

import pytest
import yaml  # type: ignore[import-untyped]

from tests.integration.instance_server import BIN, REPO, InstanceServer, run

pytestmark = pytest.mark.integration

SEALTRAIL = str(BIN / "sealtrail")
OWNER_REPO = "acme/app"
WORKFLOW = ".github/workflows/release.yml"
SHA = "89abcdef0123456789abcdef0123456789abcdef"
TAG = "v1.2.3"
REF = f"refs/tags/{TAG}"
IDENTITY = f"https://github.com/{OWNER_REPO}/{WORKFLOW}@{REF}"
REQUEST_TOKEN = "simulated-request-token"
GITHUB_TOKEN = "ghs_simulated_installation_token"
REPO_ID, OWNER_ID, RUN_ID, RUN_ATTEMPT = "4242", "77", "9001", "1"
ARTIFACTS = ("app-1.2.3.tar.gz", "app-1.2.3-py3-none-any.whl", "app-linux-amd64")


def release_commands_exist() -> bool:
    from sealtrail.cli.main import LAZY_COMMANDS

    return "release" in LAZY_COMMANDS


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstanceServer]:
    server = InstanceServer(tmp_path_factory.mktemp("action") / "sealtrail")
    server.init()
    server.start()
    yield server
    server.stop()


class TokenService:
    """GitHub's ID-token request endpoint, locally: the job's token for any audience asked.

    SPEC: GitHub "Configuring OpenID Connect in cloud providers" / actions/toolkit
    getIDToken: GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=AUD with `Authorization: Bearer
    $ACTIONS_ID_TOKEN_REQUEST_TOKEN`; the answer is JSON `{"value": "<JWT>"}`."""

    def __init__(self, instance: InstanceServer) -> None:
        from sealtrail.server.instance import Instance

        self.issuer = Instance(str(instance.directory)).builtin_issuer("github")
        self.requests: list[dict[str, str]] = []
        # Set to model a job of a reusable workflow (its ref and commit, as GitHub's token says).
        self.job_workflow: tuple[str, str] | None = None
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                # GitHub's URL already holds `?api-version=2.0`; clients append the audience
                # with `&` (actions/toolkit) or another `?` (urllib3's request fields): both
                # are read, as GitHub's service does.
                query = self.path.partition("?")[2]
                fields = dict(p.partition("=")[::2] for p in re.split("[&?]", query) if p)
                audience = fields.get("audience", "")
                service.requests.append({"audience": audience,
                                         "authorization": self.headers.get("Authorization", "")})
                if self.headers.get("Authorization", "").lower() != f"bearer {REQUEST_TOKEN}":
                    self.answer(401, {"message": "bad request token"})
                    return
                job_workflow_ref, job_workflow_sha = service.job_workflow or (None, None)
                token = service.issuer.mint_github_workflow(
                    repository=OWNER_REPO, workflow_path=WORKFLOW, ref=REF, sha=SHA,
                    event_name="push", audience=audience or "https://github.com/acme",
                    repository_id=REPO_ID, repository_owner_id=OWNER_ID, run_id=RUN_ID,
                    run_attempt=RUN_ATTEMPT,
                    job_workflow_ref=job_workflow_ref, job_workflow_sha=job_workflow_sha)
                self.answer(200, {"count": 1, "value": token})

            def answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/_apis/token?api-version=2.0"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def token_service(instance: InstanceServer) -> Iterator[TokenService]:
    service = TokenService(instance)
    yield service
    service.close()


class Job:
    """A simulated GitHub Actions job: its workspace, runner files and variables."""

    def __init__(self, root: Path, token_service: TokenService) -> None:
        self.workspace = root / "workspace"
        self.temp = root / "runner-temp"
        self.tools = root / "tools"
        for path in (self.workspace, self.temp, self.tools):
            path.mkdir(parents=True)
        self.gh_record = root / "gh-calls.jsonl"
        event = root / "event.json"
        event.write_text(json.dumps({"ref": REF, "after": SHA, "base_ref": None,
                                     "repository": {"full_name": OWNER_REPO,
                                                    "id": int(REPO_ID),
                                                    "visibility": "public"}}))
        # `python`: what actions/setup-python puts on PATH; `python3`: the runner image's.
        (self.tools / "python").symlink_to(sys.executable)
        (self.tools / "python3").symlink_to(sys.executable)
        stub = self.tools / "gh"
        stub.write_text(f"#!{sys.executable}\n"
                        "import json, os, sys\n"
                        f"with open({str(self.gh_record)!r}, 'a') as out:\n"
                        "    out.write(json.dumps({'argv': sys.argv[1:], 'cwd': os.getcwd(),\n"
                        "        'GH_TOKEN': os.environ.get('GH_TOKEN'),\n"
                        "        'GH_REPO': os.environ.get('GH_REPO')}) + '\\n')\n")
        stub.chmod(0o755)
        self.files = {name: root / name for name in ("output", "env", "path", "summary")}
        for file in self.files.values():
            file.touch()
        self.env = {
            "PATH": f"{self.tools}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(root), "CI": "true", "GITHUB_ACTIONS": "true",
            "GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": OWNER_REPO,
            "GITHUB_REPOSITORY_OWNER": OWNER_REPO.split("/")[0], "GITHUB_REF": REF,
            "GITHUB_REF_NAME": TAG, "GITHUB_REF_TYPE": "tag", "GITHUB_SHA": SHA,
            "GITHUB_WORKFLOW_REF": f"{OWNER_REPO}/{WORKFLOW}@{REF}",
            "GITHUB_EVENT_NAME": "push", "GITHUB_EVENT_PATH": str(event),
            "GITHUB_WORKSPACE": str(self.workspace), "GITHUB_RUN_ID": RUN_ID,
            "GITHUB_RUN_ATTEMPT": RUN_ATTEMPT, "GITHUB_REPOSITORY_ID": REPO_ID,
            "GITHUB_REPOSITORY_OWNER_ID": OWNER_ID, "RUNNER_TEMP": str(self.temp),
            "RUNNER_ENVIRONMENT": "github-hosted", "RUNNER_OS": "Linux",
            "GITHUB_OUTPUT": str(self.files["output"]), "GITHUB_ENV": str(self.files["env"]),
            "GITHUB_PATH": str(self.files["path"]),
            "GITHUB_STEP_SUMMARY": str(self.files["summary"]),
            # What `permissions: id-token: write` gives the job.
            "ACTIONS_ID_TOKEN_REQUEST_URL": token_service.url,
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN,
        }
        # pip's own settings (an index, a cache) are the machine's, as on a runner image.
        for name, value in os.environ.items():
            if name.startswith("PIP_") or name in ("http_proxy", "https_proxy", "no_proxy"):
                self.env[name] = value
        self.github = {"action_path": str(REPO), "token": GITHUB_TOKEN,
                       "repository": OWNER_REPO, "ref_name": TAG, "ref": REF, "sha": SHA,
                       "workspace": str(self.workspace), "event_name": "push"}

    def artifacts(self, directory: str = "dist") -> Path:
        dist = self.workspace / directory
        dist.mkdir()
        for name in ARTIFACTS:
            (dist / name).write_bytes(f"the contents of {name}\n".encode() * 100)
        return dist

    def gh_calls(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.gh_record.read_text().splitlines()]


_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_TERM = re.compile(r"([\w-]+(?:\.[\w-]+)+)(?:\s*==\s*'([^']*)')?")
Context = dict[str, Any]


def evaluate(expression: str, context: Context) -> str:
    """The expression forms the shipped files use in `env:` and `if:`: a context property
    (`inputs.NAME`, `github.NAME`, `steps.ID.outputs.NAME`, `needs.JOB.outputs.NAME`) and
    `PROPERTY == 'v'` (true/false). Anything else fails the test, so that a new form is added
    here knowingly."""
    found = _TERM.fullmatch(expression.strip())
    assert found, f"expression not simulated: {expression}"
    path, literal = found.groups()
    value: Any = context
    for part in path.split("."):
        assert isinstance(value, dict) and part in value, f"{path} is not defined"
        value = value[part]
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return text if literal is None else str(text == literal).lower()


def substitute(text: str, context: Context) -> str:
    return _EXPRESSION.sub(lambda m: evaluate(m.group(1), context), text)


def inputs_of(declared: dict[str, Any], given: dict[str, Any], context: Context
              ) -> dict[str, Any]:
    """The inputs as a runner sets them: given, else the declared default (itself possibly
    an expression); an undeclared input is refused."""
    assert set(given) <= set(declared), f"undeclared inputs: {set(given) - set(declared)}"
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        if name in given:
            values[name] = given[name]
        else:
            assert not spec.get("required"), f"input {name} is required"
            default = spec.get("default", "")
            values[name] = (substitute(default, context) if isinstance(default, str)
                            else default)
    return values


def run_steps(job: Job, steps: list[dict[str, Any]], context: Context, *,
              only: str | None = None) -> list[tuple[str, subprocess.CompletedProcess[str]]]:
    """Run the `run:` steps (or the one named ``only``) in ``job`` as a runner does; stops at
    the first failing step and returns each step's result. A step with an `id` has its
    GITHUB_OUTPUT lines as `steps.ID.outputs`."""
    context.setdefault("steps", {})
    results = []
    for index, step in enumerate(steps):
        if "uses" in step or (only is not None and step.get("name") != only):
            continue
        # A script must never hold an expression: the runner would paste the value into code.
        assert "${{" not in step["run"], f"step {index} expands an expression in its script"
        assert step.get("shell") == "bash"
        condition = step.get("if")
        if condition is not None and evaluate(condition, context) != "true":
            continue
        output = job.temp / f"output-{index}"
        output.write_text("")
        env = {**job.env, "GITHUB_OUTPUT": str(output),
               **{k: substitute(str(v), context) for k, v in (step.get("env") or {}).items()}}
        script = job.temp / f"step-{index}.sh"
        script.write_text(step["run"])
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                              cwd=job.workspace, env=env, capture_output=True, text=True,
                              timeout=600, check=False)
        assert "Traceback" not in done.stderr, done.stderr
        results.append((step.get("name", str(index)), done))
        if "id" in step:
            context["steps"][step["id"]] = {"outputs": dict(
                line.partition("=")[::2] for line in output.read_text().splitlines() if line)}
        if done.returncode != 0:
            break
    return results


def run_action(job: Job, with_: dict[str, str], *, only: str | None = None
               ) -> list[tuple[str, subprocess.CompletedProcess[str]]]:
    """action.yml's `run:` steps in ``job`` with the inputs ``with_``."""
    action = yaml.safe_load((REPO / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    context: Context = {"github": job.github}
    context["inputs"] = inputs_of(action.get("inputs") or {}, with_, context)
    steps: list[dict[str, Any]] = action["runs"]["steps"]
    return run_steps(job, steps, context, only=only)


def test_the_token_endpoint_gives_sealtrail_the_jobs_identity(
        instance: InstanceServer, token_service: TokenService, tmp_path: Path) -> None:
    """The path the action relies on: no token given, `sealtrail sign` asks the job's
    ID-token endpoint for audience sigstore, and the certificate names the workflow."""
    job = Job(tmp_path, token_service)
    dist = job.artifacts()
    artifact = dist / ARTIFACTS[0]
    asked = len(token_service.requests)
    env = {k: v for k, v in job.env.items() if k != "PATH"}
    env.pop("SIGSTORE_ID_TOKEN", None)
    done = subprocess.run([SEALTRAIL, "sign", str(artifact), "--trust-config",
                           str(instance.trust_config)], env={**os.environ, **env,
                                                             "SIGSTORE_ID_TOKEN": ""},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert token_service.requests[asked:] == [
        {"audience": "sigstore", "authorization": f"bearer {REQUEST_TOKEN}"}]
    verify = [SEALTRAIL, "verify", str(artifact), "--trusted-root", str(instance.trusted_root),
              "--certificate-oidc-issuer", instance.url + "/oidc/github"]
    assert run(*verify, "--certificate-identity", IDENTITY, check=False).returncode == 0
    other = run(*verify, "--certificate-identity",
                f"https://github.com/{OWNER_REPO}/.github/workflows/other.yml@{REF}",
                check=False)
    assert other.returncode == 1, other.stderr


def test_without_id_token_permission_nothing_is_signed(
        instance: InstanceServer, token_service: TokenService, tmp_path: Path) -> None:
    """Without `id-token: write` the runner sets neither request variable: sealtrail says
    which permission is missing instead of signing with something else."""
    job = Job(tmp_path, token_service)
    artifact = job.artifacts() / ARTIFACTS[0]
    env = {k: v for k, v in job.env.items()
           if k not in ("PATH", "ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN")}
    done = subprocess.run([SEALTRAIL, "sign", str(artifact), "--trust-config",
                           str(instance.trust_config)],
                          env={**{k: v for k, v in os.environ.items()
                                  if not k.startswith("ACTIONS_ID_TOKEN")},
                               **env, "SIGSTORE_ID_TOKEN": ""},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    assert "id-token: write" in done.stderr
    assert not (artifact.parent / (artifact.name + ".sigstore.json")).exists()


def test_the_install_step_installs_sealtrail_from_the_action_path(
        token_service: TokenService, tmp_path: Path) -> None:
    job = Job(tmp_path, token_service)
    ((_, done),) = run_action(job, {}, only="Install sealtrail")
    assert done.returncode == 0, done.stderr[-3000:]
    installed = job.temp / "sealtrail" / "bin" / "sealtrail"
    version = subprocess.run([str(installed), "--version"], capture_output=True, text=True,
                             timeout=60, check=False)
    assert version.stdout.startswith("sealtrail "), version.stderr
    # Its own environment: not the interpreter the caller's steps use.
    assert not (BIN / "python").resolve().is_relative_to(job.temp)


@pytest.fixture(scope="module")
def signed_release(instance: InstanceServer, token_service: TokenService,
                   tmp_path_factory: pytest.TempPathFactory
                   ) -> tuple[Job, Path, list[tuple[str, subprocess.CompletedProcess[str]]]]:
    if not release_commands_exist():
        pytest.skip("`sealtrail release sign` is not in this tree yet: the action's sign step "
                    "cannot run (the ambient-token path it relies on is tested above)")
    job = Job(tmp_path_factory.mktemp("release-job"), token_service)
    dist = job.artifacts()
    results = run_action(job, {"directory": "dist",
                               "trust-config": str(instance.trust_config)})
    return job, dist, results


def test_the_provenance_input(
        instance: InstanceServer, token_service: TokenService, tmp_path: Path,
        signed_release: tuple[Job, Path, list[tuple[str, subprocess.CompletedProcess[str]]]]
        ) -> None:
    """provenance: "false" (the reusable workflow makes it) signs without; another value is
    refused in one line before anything is signed."""
    job = Job(tmp_path, token_service)
    job.env["RUNNER_TEMP"] = signed_release[0].env["RUNNER_TEMP"]  # sealtrail installed there
    dist = job.artifacts()
    given = {"trust-config": str(instance.trust_config)}
    ((_, bad),) = run_action(job, {**given, "provenance": "yes"}, only="Sign the release")
    assert bad.returncode == 2
    assert bad.stderr == 'sealtrail: the provenance input is "true" or "false", not "yes"\n'
    assert sorted(p.name for p in dist.iterdir()) == sorted(ARTIFACTS)
    ((_, done),) = run_action(job, {**given, "provenance": "false"}, only="Sign the release")
    assert done.returncode == 0, done.stderr
    outputs = {p.name for p in dist.iterdir()}
    assert "SHA256SUMS.sigstore.json" in outputs and "multiple.intoto.jsonl" not in outputs


def release_verify(instance: InstanceServer, directory: Path, *flags: str,
                   identity: str = IDENTITY) -> subprocess.CompletedProcess[str]:
    done = run(SEALTRAIL, "release", "verify", str(directory), "--certificate-identity",
               identity, "--certificate-oidc-issuer", instance.url + "/oidc/github",
               "--trusted-root", str(instance.trusted_root), *flags, check=False)
    assert "Traceback" not in done.stderr
    return done


def test_the_action_signs_the_release_and_uploads_it(
        signed_release: tuple[Job, Path, list[tuple[str, subprocess.CompletedProcess[str]]]]
        ) -> None:
    job, dist, results = signed_release
    assert [name for name, _ in results] == ["Install sealtrail", "Sign the release",
                                             "Upload to the release"]
    for name, done in results:
        assert done.returncode == 0, f"{name}: {done.stderr[-3000:]}"
    outputs = sorted(p.name for p in dist.iterdir())
    for artifact in ARTIFACTS:
        assert artifact + ".sigstore.json" in outputs
    # In GitHub Actions `release sign` makes provenance by default.
    assert {"SHA256SUMS", "SHA256SUMS.sigstore.json", "multiple.intoto.jsonl",
            "VERIFY.md"} <= set(outputs), outputs
    (call,) = job.gh_calls()
    assert call["argv"] == ["release", "upload", TAG,
                            *(f"dist/{name}" for name in outputs), "--clobber"]
    assert call["GH_TOKEN"] == GITHUB_TOKEN and call["GH_REPO"] == OWNER_REPO


def test_release_verify_passes_on_the_actions_output(
        instance: InstanceServer,
        signed_release: tuple[Job, Path, list[tuple[str, subprocess.CompletedProcess[str]]]]
        ) -> None:
    _, dist, _ = signed_release
    source = ("--source-uri", f"github.com/{OWNER_REPO}", "--source-tag", TAG)
    done = release_verify(instance, dist, *source)
    assert done.returncode == 0, done.stdout + done.stderr
    other = release_verify(instance, dist, *source, identity=IDENTITY.replace("release.yml",
                                                                              "other.yml"))
    assert other.returncode == 1, other.stdout + other.stderr
    assert ARTIFACTS[0] in other.stdout + other.stderr


def mutate(dist: Path, copy: Path, change: str) -> str:
    """A copy of the release with one artifact modified, removed or added: its name."""
    shutil.copytree(dist, copy)
    if change == "modified":
        (copy / ARTIFACTS[1]).write_bytes(b"a backdoored build\n")
        return ARTIFACTS[1]
    if change == "removed":
        (copy / ARTIFACTS[2]).unlink()
        return ARTIFACTS[2]
    (copy / "app-extra.bin").write_bytes(b"not part of the release\n")
    return "app-extra.bin"


@pytest.mark.parametrize("change", ["modified", "removed", "added"])
def test_release_verify_names_the_file_that_changed(
        instance: InstanceServer, tmp_path: Path, change: str,
        signed_release: tuple[Job, Path, list[tuple[str, subprocess.CompletedProcess[str]]]]
        ) -> None:
    _, dist, _ = signed_release
    name = mutate(dist, tmp_path / "dist", change)
    done = release_verify(instance, tmp_path / "dist", "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    failed = {r["name"] for r in json.loads(done.stdout)["results"] if not r["ok"]}
    assert failed == {name}, done.stdout


def test_the_actions_provenance_names_the_callers_workflow(
        instance: InstanceServer,
        signed_release: tuple[Job, Path, list[tuple[str, subprocess.CompletedProcess[str]]]]
        ) -> None:
    """The action runs in the caller's job: its provenance's builder is the caller's
    workflow (SLSA Build L2; the reusable workflow below is what gives L3)."""
    _, dist, _ = signed_release
    artifacts = [str(dist / name) for name in ARTIFACTS]
    verify = [SEALTRAIL, "verify-artifact", *artifacts, "--provenance-path",
              str(dist / "multiple.intoto.jsonl"), "--trusted-root", str(instance.trusted_root),
              "--certificate-oidc-issuer", instance.url + "/oidc/github", "--source-uri",
              f"github.com/{OWNER_REPO}", "--source-tag", TAG]
    done = run(*verify, "--builder-id", f"https://github.com/{OWNER_REPO}/{WORKFLOW}",
               check=False)
    assert done.returncode == 0, done.stderr
    wrong = run(*verify, "--source-tag", "v9.9.9", check=False)
    assert wrong.returncode == 1 and "ErrorMismatchTag" in wrong.stderr, wrong.stderr


BUILDER_REPO = "sealtrail-dev/sealtrail"
BUILDER = f"https://github.com/{BUILDER_REPO}/.github/workflows/provenance.yml"
BUILDER_REF, BUILDER_SHA = "refs/tags/v0.1.0", "fedcba9876543210fedcba9876543210fedcba98"


def test_the_reusable_workflow_signs_provenance_naming_itself(
        instance: InstanceServer, token_service: TokenService, tmp_path: Path) -> None:
    """.github/workflows/provenance.yml's jobs, run as a caller's `uses:` would run them: the
    caller passes only base64 subjects; the job finds its own repository and commit in its
    token, installs that sealtrail, and signs provenance whose builder is this workflow
    (verify-artifact rates it SLSA Build L3); the upload job attaches it to the release."""
    job = Job(tmp_path, token_service)
    dist = job.artifacts()
    # The instance stands in for public-good (a name sealtrail knows): added from its TUF
    # repository, as `sealtrail trust add` does.
    job.env["SEALTRAIL_TRUST_DIR"] = str(tmp_path / "trust-cache")
    run(SEALTRAIL, "trust", "add", "ci-test", instance.url + "/tuf", "--root",
        str(instance.directory / "tuf" / "metadata" / "1.root.json"), env=job.env)
    # What actions/checkout places for the checkout step (a `uses:` step): sealtrail's tree.
    (job.workspace / ".sealtrail-builder").symlink_to(REPO)
    checksums = subprocess.run(["sha256sum", *ARTIFACTS], cwd=dist, capture_output=True,
                               check=True).stdout
    subjects = base64.b64encode(checksums).decode()

    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "provenance.yml").read_text())
    # PyYAML reads the `on:` key as YAML 1.1's boolean true.
    call = (workflow.get("on") or workflow[True])["workflow_call"]
    assert workflow["permissions"] == {}
    jobs = workflow["jobs"]
    assert jobs["provenance"]["permissions"] == {"id-token": "write", "contents": "read"}
    assert jobs["upload"]["permissions"] == {"contents": "write"}
    context: Context = {"github": job.github}
    context["inputs"] = inputs_of(call["inputs"], {
        "base64-subjects": subjects, "instance": "ci-test", "upload-assets": True,
        "upload-tag-name": TAG}, context)

    builder_ref = f"{BUILDER_REPO}/.github/workflows/provenance.yml@{BUILDER_REF}"
    token_service.job_workflow = (builder_ref, BUILDER_SHA)
    try:
        results = run_steps(job, jobs["provenance"]["steps"], context)
    finally:
        token_service.job_workflow = None
    assert [name for name, _ in results] == [
        "Find this workflow's repository and commit", "Install sealtrail",
        "Generate and sign provenance"]
    for name, done in results:
        assert done.returncode == 0, f"{name}: {done.stderr[-3000:]}"
    assert context["steps"]["detect"]["outputs"] == {"repository": BUILDER_REPO,
                                                     "sha": BUILDER_SHA}
    name = context["steps"]["sign"]["outputs"]["provenance-name"]
    assert name == "multiple.intoto.jsonl"
    provenance = job.workspace / name

    verify = [SEALTRAIL, "verify-artifact", *(str(dist / a) for a in ARTIFACTS),
              "--provenance-path", str(provenance), "--trusted-root",
              str(instance.trusted_root), "--certificate-oidc-issuer",
              instance.url + "/oidc/github", "--source-uri", f"github.com/{OWNER_REPO}",
              "--source-tag", TAG]
    done = run(*verify, "--builder-id", f"{BUILDER}@v0.1.0", "--json", check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["slsa_build_level"] == 3
    caller = run(*verify, "--builder-id", f"https://github.com/{OWNER_REPO}/{WORKFLOW}",
                 check=False)
    assert caller.returncode == 1 and "ErrorUntrustedReusableWorkflow" in caller.stderr, \
        caller.stderr

    # And as `gh attestation verify` checks it: the signer workflow is the reusable one.
    roots = tmp_path / "roots.jsonl"
    roots.write_text(json.dumps(json.loads(instance.trusted_root.read_text()),
                                separators=(",", ":")) + "\n")
    attestation = [SEALTRAIL, "verify-attestation", str(dist / ARTIFACTS[0]), "--bundle",
                   str(provenance), "--cert-oidc-issuer", instance.url + "/oidc/github",
                   "--custom-trusted-root", str(roots), "--repo", OWNER_REPO]
    done = run(*attestation, "--signer-workflow",
               f"{BUILDER_REPO}/.github/workflows/provenance.yml", check=False)
    assert done.returncode == 0, done.stderr
    assert f"Signer workflow: .github/workflows/provenance.yml@{BUILDER_REF}" in done.stdout
    caller = run(*attestation, "--signer-workflow", f"{OWNER_REPO}/{WORKFLOW}", check=False)
    assert caller.returncode == 1, caller.stdout + caller.stderr

    # The upload job, given the first job's output (as `needs:` passes it).
    upload = jobs["upload"]
    context["needs"] = {"provenance": {"outputs": {"provenance-name": name}}}
    assert evaluate(upload["if"], context) == "true"
    # A new job on a new runner: its workspace holds what download-artifact fetched.
    job.workspace = job.workspace / "upload-job"
    job.workspace.mkdir()
    shutil.copy(provenance, job.workspace / name)
    (done_upload,) = [done for _, done in run_steps(job, upload["steps"], context)]
    assert done_upload.returncode == 0, done_upload.stderr
    (gh,) = job.gh_calls()
    assert gh["argv"] == ["release", "upload", TAG, name, "--clobber"]
    assert gh["GH_TOKEN"] == GITHUB_TOKEN and gh["GH_REPO"] == OWNER_REPO
