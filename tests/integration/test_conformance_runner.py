"""Run the shared sigstore-conformance runner against the installed `sealtrail-conformance`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Where `make conformance` looks: $CONFORMANCE_RUNNER, else the shared folder beside the repo.
RUNNER = Path(os.environ.get("CONFORMANCE_RUNNER")
              or REPO.parent / "shared" / "tools" / "conformance_runner.py")


@pytest.mark.integration
def test_conformance_runner_matches_every_expectation() -> None:
    if not RUNNER.is_file():
        pytest.skip(f"{RUNNER} is not present (it lives in the shared folder beside the repo)")
    entry = shutil.which("sealtrail-conformance", path=str(Path(sys.executable).parent))
    assert entry is not None, "sealtrail-conformance is not installed in this environment"
    done = subprocess.run(
        [sys.executable, str(RUNNER), "--cases", str(REPO / "tests" / "vectors" / "conformance"),
         "cli", "--entrypoint", entry],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 mismatches" in done.stdout
