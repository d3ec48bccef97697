"""The session-wide fixtures of tests/conftest.py do what they say."""

from __future__ import annotations

import gc

from tests.conftest import gc_state_kept


def test_the_gc_state_comes_back_after_a_block_that_changes_it() -> None:
    before = (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count())
    with gc_state_kept():
        gc.disable()
        gc.set_threshold(100_000, 3, 4)
        gc.freeze()
        # The block did change every part of the state the fixture restores.
        assert (gc.isenabled(), gc.get_threshold()) == (False, (100_000, 3, 4))
        assert gc.get_freeze_count() > before[2]
    assert (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()) == before


def test_a_disabled_collector_stays_disabled() -> None:
    gc.disable()  # the autouse fixture turns it back on after this test
    with gc_state_kept():
        gc.enable()
    assert not gc.isenabled()


def test_the_autouse_fixture_restored_the_previous_test() -> None:
    # Runs after the test above (pytest keeps file order): its gc.disable() was undone.
    assert gc.isenabled()
