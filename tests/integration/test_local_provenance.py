"""A local build's provenance (`attest-provenance --local`) verified under a policy that
trusts the machine and its signer at SLSA Build L1, and refused otherwise (issue 15:
"The local-build provenance verifies only under a policy that accepts Build L1, and says so").

Against a local instance: a temporary git repository (init, commit, a network remote), the
provenance signed with an email token from the instance's built-in issuer, then
`verify-artifact --policy` and `release verify --policy` as subprocesses.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.integration.instance_server import BIN, InstanceServer, run

pytestmark = pytest.mark.integration

SEALTRAIL = str(BIN / "sealtrail")
DEV = "dev@example.com"
SOURCE = "git.example.com/acme/app"
# Outside GitHub Actions: none of its variables, even if the test runs in a job.
NOT_CI = {name: "" for name in ("GITHUB_ACTIONS", "GITHUB_REPOSITORY", "GITHUB_EVENT_PATH",
                                "ACTIONS_ID_TOKEN_REQUEST_URL", "SIGSTORE_ID_TOKEN", "CI",
                                "GITLAB_CI")}


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstanceServer]:
    server = InstanceServer(tmp_path_factory.mktemp("local-provenance") / "sealtrail")
    server.init()
    server.start()
    yield server
    server.stop()


def git(repo: Path, *argv: str) -> str:
    env = {"GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": DEV, "GIT_COMMITTER_NAME": "dev",
           "GIT_COMMITTER_EMAIL": DEV, "GIT_CONFIG_GLOBAL": "/dev/null",
           "GIT_CONFIG_NOSYSTEM": "1"}
    return str(run("git", "-C", str(repo), *argv, env=env).stdout.strip())


class Build:
    """A git repository with a built artifact, and the instance to sign with."""

    def __init__(self, instance: InstanceServer, directory: Path) -> None:
        from sealtrail.server.instance import Instance

        self.instance = instance
        self.repo = directory / "app"
        self.repo.mkdir(parents=True)
        git(self.repo, "init", "-q", "-b", "main")
        (self.repo / ".gitignore").write_text("dist/\n")
        (self.repo / "main.c").write_text("int main(void) { return 0; }\n")
        git(self.repo, "add", ".")
        git(self.repo, "commit", "-q", "-m", "one")
        git(self.repo, "remote", "add", "origin", f"https://{SOURCE}.git")
        self.dist = self.repo / "dist"
        self.dist.mkdir()
        self.artifacts = []
        for name in ("app.bin", "app.tar.gz"):
            (self.dist / name).write_bytes(f"locally built {name}\n".encode())
            self.artifacts.append(str(self.dist / name))
        issuer = Instance(str(instance.directory)).builtin_issuer()
        self.issuer = issuer.issuer_url
        self.token = issuer.mint_email(DEV)

    def attest(self, output: Path, *argv: str) -> Path:
        run("sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", str(self.repo), SEALTRAIL,
            "attest-provenance", "--local", *self.artifacts, "--output", str(output),
            "--instance-dir", str(self.instance.directory), "--identity-token", self.token,
            *argv, env=NOT_CI)
        return output

    def builder_id(self, bundle: Path) -> str:
        import base64

        envelope = json.loads(bundle.read_text())["dsseEnvelope"]
        statement = json.loads(base64.b64decode(envelope["payload"]))
        return str(statement["predicate"]["runDetails"]["builder"]["id"])

    def policy(self, path: Path, *, identity: str = DEV, extra: str = "",
               minimum: str = "") -> Path:
        path.write_text(f"""version = 1
{minimum}
[source]
uri = "{SOURCE}"

[[builder]]
id = "urn:sealtrail:builder:local:*"
level = 1
signers = [{{identity = "{identity}", issuer = "{self.issuer}"}}]
{extra}
[[builder]]
id = "https://github.com/acme/builders/.github/workflows/build.yml"
refs = ["refs/tags/v*"]
level = 3
""")
        return path

    def verify(self, bundle: Path, *flags: str) -> tuple[int, str]:
        done = run(SEALTRAIL, "verify-artifact", *self.artifacts, "--provenance-path",
                   str(bundle), "--trusted-root", str(self.instance.trusted_root), *flags,
                   check=False)
        assert "Traceback" not in done.stderr, done.stderr
        return done.returncode, done.stderr


@pytest.fixture(scope="module")
def build(instance: InstanceServer, tmp_path_factory: pytest.TempPathFactory) -> Build:
    return Build(instance, tmp_path_factory.mktemp("build"))


@pytest.fixture(scope="module")
def clean(build: Build, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build.attest(tmp_path_factory.mktemp("out") / "clean.intoto.jsonl")


def test_passes_under_a_policy_trusting_the_machine_and_signer_at_l1(
        build: Build, clean: Path, tmp_path: Path) -> None:
    policy = build.policy(tmp_path / "policy.toml")
    code, err = build.verify(clean, "--policy", str(policy))
    assert code == 0, err
    builder = build.builder_id(clean)
    assert (f"PASSED: SLSA verification passed (SLSA Build L1: built on {builder}, not an "
            "isolated platform)") in err
    done = run(SEALTRAIL, "verify-artifact", *build.artifacts, "--provenance-path", str(clean),
               "--trusted-root", str(build.instance.trusted_root), "--policy", str(policy),
               "--json", "--source-branch", "main")
    data = json.loads(done.stdout)
    assert data["ok"] and data["slsa_build_level"] == 1 and data["identity"] == DEV
    assert data["builder_id"] == builder and data["source_uri"] == f"git+https://{SOURCE}.git"
    # An exact builder id works as the pattern does; another machine's does not.
    exact = build.policy(tmp_path / "exact.toml")
    exact.write_text(exact.read_text().replace("urn:sealtrail:builder:local:*", builder))
    assert build.verify(clean, "--policy", str(exact))[0] == 0
    other = build.policy(tmp_path / "other.toml")
    other.write_text(other.read_text().replace("urn:sealtrail:builder:local:*",
                                               "urn:sealtrail:builder:local:elsewhere"))
    code, err = build.verify(clean, "--policy", str(other))
    assert code == 1 and "ErrorUntrustedReusableWorkflow" in err, err
    assert f'[[builder]] with id = "{builder}", level = 1 and signers' in err


def test_refused_without_such_a_policy(build: Build, clean: Path, tmp_path: Path) -> None:
    # No policy: refused, naming what a policy must say to accept it.
    code, err = build.verify(clean, "--source-uri", SOURCE)
    assert code == 1, err
    assert "FAILED: SLSA verification failed: ErrorUntrustedReusableWorkflow" in err, err
    assert "--policy FILE with a [[builder]] whose id is urn:sealtrail:builder:local:" in err
    # A policy trusting only GitHub builders: the error names the key that would accept it.
    policy = tmp_path / "github.toml"
    policy.write_text(f'version = 1\n[source]\nuri = "{SOURCE}"\n')
    code, err = build.verify(clean, "--policy", str(policy))
    assert code == 1, err
    assert "FAILED: SLSA verification failed: ErrorUntrustedReusableWorkflow" in err
    assert "level = 1 and signers = [{identity" in err


def test_refused_with_another_signer(build: Build, clean: Path, tmp_path: Path) -> None:
    policy = build.policy(tmp_path / "policy.toml", identity="ops@example.com")
    code, err = build.verify(clean, "--policy", str(policy))
    assert code == 1 and "ErrorUntrustedReusableWorkflow" in err and DEV in err, err


def test_refused_with_minimum_level_2(build: Build, clean: Path, tmp_path: Path) -> None:
    policy = build.policy(tmp_path / "policy.toml", minimum="minimum-level = 2")
    code, err = build.verify(clean, "--policy", str(policy))
    assert code == 1 and "ErrorUntrustedReusableWorkflow" in err, err
    assert "SLSA Build L1 < L2" in err


def test_another_source_is_refused(build: Build, clean: Path, tmp_path: Path) -> None:
    policy = build.policy(tmp_path / "policy.toml")
    policy.write_text(policy.read_text().replace(f'uri = "{SOURCE}"',
                                                 'uri = "git.example.com/acme/other"'))
    code, err = build.verify(clean, "--policy", str(policy))
    assert code == 1 and "ErrorMismatchSource" in err, err


def test_a_dirty_tree_only_when_allowed(build: Build, tmp_path: Path) -> None:
    (build.repo / "main.c").write_text("int main(void) { return 1; }\n")
    try:
        dirty = build.attest(tmp_path / "dirty.intoto.jsonl")
    finally:
        git(build.repo, "checkout", "-q", "--", "main.c")
    code, err = build.verify(dirty, "--policy", str(build.policy(tmp_path / "p.toml")))
    assert code == 1 and "ErrorMismatchSource" in err and "allow-dirty = true" in err, err
    allowed = build.policy(tmp_path / "allowed.toml", extra="allow-dirty = true")
    code, err = build.verify(dirty, "--policy", str(allowed))
    assert code == 0 and "SLSA Build L1" in err, err


def test_release_verify_with_the_policy(build: Build, tmp_path: Path) -> None:
    release = tmp_path / "release"
    release.mkdir()
    for path in build.artifacts:
        (release / Path(path).name).write_bytes(Path(path).read_bytes())
    env = {**NOT_CI}
    done = subprocess.run([SEALTRAIL, "release", "sign", str(release), "--no-provenance",
                           "--instance-dir", str(build.instance.directory), "--identity-token",
                           build.token], capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, **env})
    assert done.returncode == 0, done.stderr
    build.attest(release / "multiple.intoto.jsonl")

    def verify(*flags: str) -> tuple[int, dict[str, Any]]:
        done = run(SEALTRAIL, "release", "verify", str(release), "--certificate-identity", DEV,
                   "--certificate-oidc-issuer", build.issuer, "--trusted-root",
                   str(build.instance.trusted_root), "--json", *flags, check=False)
        assert "Traceback" not in done.stderr, done.stderr
        return done.returncode, json.loads(done.stdout)

    code, data = verify("--policy", str(build.policy(tmp_path / "p.toml")))
    assert code == 0, data
    row = next(r for r in data["results"] if r["kind"] == "provenance")
    assert row["ok"] and "(SLSA Build L1)" in row["message"], row
    code, data = verify("--policy", str(build.policy(tmp_path / "min.toml",
                                                     minimum="minimum-level = 2")))
    row = next(r for r in data["results"] if r["kind"] == "provenance")
    assert code == 1 and row["code"] == "ErrorUntrustedReusableWorkflow", row
    code, data = verify("--policy", str(build.policy(tmp_path / "ops.toml",
                                                     identity="ops@example.com")))
    row = next(r for r in data["results"] if r["kind"] == "provenance")
    assert code == 1 and row["code"] == "ErrorUntrustedReusableWorkflow", row
