"""The wheel as users install it: built with `python -m build` from what a clean clone holds,
installed into fresh virtual environments outside the repository.

- without extras (the client): `--version`, an offline `verify` of examples/release against
  the packaged public-good root, and the service commands refusing with the extra to install;
- with `[server]`: `init` and `serve` start an instance, which the client-only install signs
  against (`token`, `sign`) and verifies.

The source is every file git tracks, as the working tree has it: a clean clone of the changes
under test (a file left out of git is left out here too, as it would be from a clone).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tomllib
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.integration.instance_server import free_port
from tests.integration.serving import start_server

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
PUBLIC_IDENTITY = ("https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon"
                   "/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main")
PUBLIC_ISSUER = "https://token.actions.githubusercontent.com"
EXTRA_HINT = "pip install 'sealtrail[server]'"
# Nothing of the repository or of the test environment leaks into the installs' runs, and no
# ambient identity token is picked up by `sign`.
ENV = {key: value for key, value in os.environ.items()
       if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "SIGSTORE_ID_TOKEN",
                      "ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
                      "GITHUB_ACTIONS", "GITLAB_CI", "BUILDKITE", "CIRCLECI")}


@dataclass(frozen=True)
class Install:
    venv: Path
    cwd: Path  # outside the repository

    def run(self, *argv: str, check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(self.venv / "bin" / "sealtrail"), *argv], cwd=self.cwd,
                              env={**ENV, **(env or {})}, capture_output=True, text=True,
                              timeout=120)
        if check and done.returncode != 0:
            raise AssertionError(f"sealtrail {argv[0]} failed ({done.returncode}):\n"
                                 f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done

    def has_module(self, name: str) -> bool:
        code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({name!r}) is None)"
        return subprocess.run([str(self.venv / "bin" / "python"), "-c", code], cwd=self.cwd,
                              env=ENV, timeout=60).returncode == 0


def _checked(argv: list[str], cwd: Path | None = None) -> None:
    done = subprocess.run(argv, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{argv}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and wheel of the tracked files, built as `python -m build` builds them (the
    wheel from the sdist, each in an isolated build environment)."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                            check=True, timeout=60).stdout.decode().split("\0")
    for name in filter(None, listed):
        origin = REPO / name
        if origin.is_file():  # a tracked file deleted in the working tree is not copied
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes(origin.read_bytes())
    _checked([sys.executable, "-m", "build", "--outdir", str(root / "dist"), str(source)])
    return root / "dist"


@pytest.fixture(scope="module")
def installs(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Install]:
    """Two fresh venvs (made by the base interpreter, not this one): the wheel alone, and the
    wheel with the server extra. pip is the test environment's, run for the new venv's
    interpreter (as pipx runs its shared pip)."""
    (wheel,) = dist.glob("sealtrail-*.whl")
    root = tmp_path_factory.mktemp("venvs")
    cwd = tmp_path_factory.mktemp("elsewhere")

    def install(name: str, requirement: str) -> Install:
        venv = root / name
        _checked([sys.executable, "-m", "venv", "--without-pip", str(venv)])
        _checked([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                  "install", "--quiet", "--disable-pip-version-check", requirement], cwd=cwd)
        return Install(venv, cwd)

    with ThreadPoolExecutor(2) as pool:
        client = pool.submit(install, "client", str(wheel))
        server = pool.submit(install, "server", f"{wheel}[server]")
        return {"client": client.result(), "server": server.result()}


def test_wheel_carries_the_license_data_and_the_split_dependencies(dist: Path) -> None:
    (wheel,) = dist.glob(f"sealtrail-{VERSION}-py3-none-any.whl")
    assert len(list(dist.glob(f"sealtrail-{VERSION}.tar.gz"))) == 1
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = f"sealtrail-{VERSION}.dist-info"
        license_text = archive.read(f"{info}/licenses/LICENSE").decode()
        metadata = archive.read(f"{info}/METADATA").decode().splitlines()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "License-Expression: Apache-2.0" in metadata
    assert "sealtrail/data/public-good/production/trusted_root.json" in names
    requires = [line.split(":", 1)[1].strip() for line in metadata
                if line.startswith("Requires-Dist:")]
    core = {r.split(">")[0].split(";")[0].strip().lower() for r in requires if "extra ==" not in r}
    server = {r.split(">")[0].split(";")[0].strip().lower() for r in requires
              if 'extra == "server"' in r}
    assert {"cryptography", "pyjwt", "tuf", "urllib3"} <= core
    assert {"starlette", "uvicorn"} <= server and not {"starlette", "uvicorn"} & core


def test_client_install_verifies_offline_and_names_the_extra_for_services(
        installs: dict[str, Install]) -> None:
    client = installs["client"]
    # The premise: the client install really lacks the service stack, and runs its own copy.
    assert not client.has_module("starlette") and not client.has_module("uvicorn")
    assert installs["server"].has_module("starlette")
    located = subprocess.run([str(client.venv / "bin" / "python"), "-c",
                              "import sealtrail; print(sealtrail.__file__)"], cwd=client.cwd,
                             env=ENV, capture_output=True, text=True, timeout=60, check=True)
    assert Path(located.stdout.strip()).is_relative_to(client.venv)

    assert client.run("--version").stdout == f"sealtrail {VERSION}\n"
    for name in ("hello.txt", "hello.txt.sigstore.json"):
        (client.cwd / name).write_bytes((REPO / "examples" / "release" / name).read_bytes())
    done = client.run("verify", "hello.txt", "--certificate-identity", PUBLIC_IDENTITY,
                      "--certificate-oidc-issuer", PUBLIC_ISSUER)
    assert done.stdout.startswith("OK: hello.txt: signed by identity " + PUBLIC_IDENTITY)
    assert "public-good:" in client.run("trust", "show").stdout
    client.run("generate-key-pair", "--output-key", "release.key",
               env={"SEALTRAIL_PASSPHRASE": "correct horse"})
    assert b"ENCRYPTED PRIVATE KEY" in (client.cwd / "release.key").read_bytes()

    for argv in (("serve", "instance"), ("init", "instance"), ("log", "serve", "logs")):
        done = client.run(*argv, check=False)
        assert done.returncode == 2, (argv, done.stderr)
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.startswith(f"sealtrail: error: USAGE: `sealtrail {' '.join(argv[:-1])}`")
        assert done.stderr.rstrip().endswith(EXTRA_HINT), done.stderr
    assert not (client.cwd / "instance").exists() and not (client.cwd / "logs").exists()


@pytest.fixture()
def served(installs: dict[str, Install], tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """An instance made and served by the `[server]` install."""
    server, directory, port = installs["server"], tmp_path / "instance", free_port()
    server.run("init", str(directory), "--port", str(port), "--builtin-issuer")
    port_file, log_path = tmp_path / "port", tmp_path / "serve.log"
    process, listening = start_server([str(server.venv / "bin" / "sealtrail"), "serve",
                                       str(directory), "--port-file", str(port_file)],
                                      log_path, cwd=server.cwd, env=ENV)
    try:
        assert listening == port == int(port_file.read_text())
        yield directory, port
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(30)
    # A clean stop: uvicorn shuts down, then re-raises the SIGTERM it caught.
    assert process.returncode in (0, -signal.SIGTERM), log_path.read_text()


def test_server_extra_serves_an_instance_the_client_install_signs_against(
        installs: dict[str, Install], served: tuple[Path, int]) -> None:
    client = installs["client"]
    directory, port = served
    artifact = client.cwd / "release-1.0.tar.gz"
    artifact.write_bytes(b"a release built elsewhere\n")
    token = client.run("token", "email", "releaser@example.com", "--instance",
                       str(directory)).stdout.strip()
    done = client.run("sign", str(artifact), "--trust-config",
                      str(directory / "trust" / "trust_config.json"), "--identity-token", token)
    assert "[1/1] signed" in done.stderr, done.stderr
    verify = ("verify", str(artifact), "--trusted-root",
              str(directory / "trust" / "trusted_root.json"), "--certificate-identity",
              "releaser@example.com", "--certificate-oidc-issuer", f"http://127.0.0.1:{port}/oidc")
    done = client.run(*verify)
    assert done.stdout.startswith(f"OK: {artifact}: signed by identity releaser@example.com")

    predicate = client.cwd / "predicate.json"
    predicate.write_text('{"builder": {"id": "https://example.com/ci"}}')
    attested = client.cwd / "release-1.0.intoto.sigstore.json"
    client.run("attest", str(artifact), "--predicate", str(predicate), "--predicate-type",
               "https://slsa.dev/provenance/v1", "--bundle", str(attested), "--trust-config",
               str(directory / "trust" / "trust_config.json"), "--identity-token", token)
    done = client.run(*verify, "--bundle", str(attested))
    assert done.stdout.startswith(f"OK: {artifact}: signed by identity releaser@example.com")
