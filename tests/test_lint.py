"""Static checks that catch real mistakes: undefined names, unused imports, shadowed symbols."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_pyflakes_rules_pass() -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff is not None, "ruff is a test dependency (pyproject [test])"
    done = subprocess.run([ruff, "check", "--select", "F", "--no-cache", "src", "tests",
                           "benchmarks"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:]
