"""The set-up targets of the Makefile, run by make itself in a copy of the repository's build
files: `make demo` needs no npm, and `make conformance` finds the shared runner wherever the
clone is (beside ../shared, or through CONFORMANCE_RUNNER) or says in one line what is missing.

The copy has a stand-in virtual environment (its python is this interpreter and its install
stamps are fresh), so make runs the targets' own commands and installs nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _checkout(root: Path) -> Path:
    """root/repo with the Makefile and what its stamps depend on, installed as far as make knows."""
    repo = root / "repo"
    for name in ("Makefile", "pyproject.toml", "interop/package.json",
                 "interop/package-lock.json"):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, repo / name)
    (repo / ".venv" / "bin").mkdir(parents=True)
    (repo / ".venv" / "bin" / "python").symlink_to(sys.executable)
    (repo / "interop" / "node_modules").mkdir()
    for stamp in (".venv/.installed-stamp", "interop/node_modules/.installed-stamp"):
        (repo / stamp).touch()
    return repo


def _runner(path: Path) -> Path:
    """A stand-in conformance runner that reports how it was called."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("import sys\nprint('RUNNER', *sys.argv[1:])\n")
    return path


def _make(repo: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "CONFORMANCE_RUNNER"}
    return subprocess.run(["make", "--no-print-directory", *argv], cwd=repo, capture_output=True,
                          text=True, timeout=60, env={**environ, **env})


def test_demo_does_not_install_the_npm_clients(tmp_path: Path) -> None:
    repo = _checkout(tmp_path)
    (repo / "interop" / "node_modules" / ".installed-stamp").unlink()  # as in a fresh clone
    demo = _make(repo, "-n", "demo")
    assert demo.returncode == 0, demo.stderr
    assert "npm" not in demo.stdout and "scripts/demo.sh" in demo.stdout
    test = _make(repo, "-n", "test")  # the interop tests still get their npm clients
    assert "npm ci" in test.stdout


def test_conformance_finds_the_runner_beside_the_repository(tmp_path: Path) -> None:
    repo = _checkout(tmp_path)
    _runner(tmp_path / "shared" / "tools" / "conformance_runner.py")
    done = _make(repo, "conformance")
    assert done.returncode == 0, done.stderr
    assert "RUNNER --cases tests/vectors/conformance cli --entrypoint" in done.stdout
    assert "npm" not in done.stdout


def test_conformance_runner_from_the_environment(tmp_path: Path) -> None:
    repo = _checkout(tmp_path / "elsewhere")
    runner = _runner(tmp_path / "tools" / "runner.py")
    done = _make(repo, "conformance", CONFORMANCE_RUNNER=str(runner))
    assert done.returncode == 0, done.stderr
    assert "RUNNER --cases" in done.stdout


def test_conformance_without_a_runner_says_what_is_missing(tmp_path: Path) -> None:
    repo = _checkout(tmp_path)  # a clone with no ../shared beside it
    done = _make(repo, "conformance")
    assert done.returncode != 0
    message = [line for line in done.stderr.splitlines() if "CONFORMANCE_RUNNER" in line]
    assert message and "conformance_runner.py" in message[0], done.stderr
    assert "Traceback" not in done.stderr
