"""Unit tests that check times keep passing when the suite runs slowly.

Tests that mint tokens and check their expiry take their times from one injected clock; this
runs them in a child pytest in which the wall clock jumps ten minutes between import and run
(tests/unit/_slow_clock.py): an expiry computed at import time and a token made at run time
disagree there, as they did when the suite ran slowly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# The modules whose tests compare token times (identity tokens and their expiry).
MODULES = ["tests/unit/identity/test_tokens.py"]


def test_token_expiry_tests_do_not_depend_on_the_wall_clock() -> None:
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "tests.unit._slow_clock", *MODULES],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
