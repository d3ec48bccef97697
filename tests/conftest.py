"""Fixtures for every test.

The garbage collector's state is process-wide, and some code under test changes it on
purpose (the CLI's client commands turn it off while they start, then freeze and raise the
youngest generation's threshold: sealtrail/cli/_runtime.py). Tests that run that code in
this process would otherwise leave the rest of the session collecting differently, or not
at all, so every test gets the state back as it found it.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

import pytest


@contextlib.contextmanager
def gc_state_kept() -> Iterator[None]:
    """Whatever the block does to the garbage collector, leave it as it was: on or off,
    the same thresholds, and nothing frozen that was not frozen before."""
    enabled = gc.isenabled()
    thresholds = gc.get_threshold()
    frozen = gc.get_freeze_count()
    try:
        yield
    finally:
        if gc.get_freeze_count() > frozen:
            # Frozen objects go back to the oldest generation. (No test freezes before the
            # session starts, so everything frozen now is the block's.)
            gc.unfreeze()
        gc.set_threshold(*thresholds)
        if enabled:
            gc.enable()
        else:
            gc.disable()


@pytest.fixture(autouse=True)
def _keep_gc_state() -> Iterator[None]:
    with gc_state_kept():
        yield
