"""Every command in the README runs: the Python example, the shell examples and `make demo`."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
BIN = Path(sys.executable).parent


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


def test_python_example_runs(tmp_path: Path) -> None:
    (code,) = _blocks("python")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "https://github.com/sigstore-conformance/" in done.stdout


def test_console_examples_that_name_sealtrail_run() -> None:
    commands = []
    for block in _blocks("console"):
        text = block.replace("\\\n", " ")
        commands += [line for line in text.splitlines()
                     if line.startswith(("sealtrail verify examples",
                                         "sealtrail verify-artifact tests/vectors"))]
    assert len(commands) >= 2, "the README should show runnable verify and verify-artifact commands"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    for command in commands:
        done = subprocess.run(shlex.split(command), cwd=REPO, capture_output=True, text=True,
                              env=env, timeout=120)
        assert done.returncode == 0, (command, done.stderr)


@pytest.mark.integration
def test_make_demo_script_runs() -> None:
    # `make demo` = install + scripts/demo.sh; the install is what `make test` just did.
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(REPO / "scripts" / "demo.sh")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "demo: all steps behaved as expected" in done.stdout
    assert "DIGEST_MISMATCH" in done.stderr and "IDENTITY_MISMATCH" in done.stderr
