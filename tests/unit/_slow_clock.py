"""A pytest plugin standing in for a slow run: from the end of collection on, ``time.time``
is ten minutes ahead of the time at which the modules were imported.

Tests whose times come from an injected clock are unaffected; a test that computes an
instant at import time and compares it with one it makes at run time fails. Used by
tests/unit/test_slow_suite.py in a child pytest process (never loaded by the suite itself)."""

from __future__ import annotations

import time
from typing import Any

_wall = time.time
LATER = 600.0


def pytest_collection_finish(session: Any) -> None:
    time.time = lambda: _wall() + LATER
