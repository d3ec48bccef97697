"""Tests for sealtrail.log.clock, and for the ManualClock the engine tests drive it with.

The system clock's waits are checked through notifications and deadlines already passed,
never by measuring how long a wait took.
"""

from __future__ import annotations

import threading

import pytest

from sealtrail.log.clock import SYSTEM_CLOCK, Clock, SystemClock
from tests.unit.log._support import PATIENCE, ManualClock


def test_the_system_clock_reads_the_real_clocks() -> None:
    import time

    before_wall, before_mono = time.time(), time.monotonic()
    assert SYSTEM_CLOCK.time() >= before_wall
    assert SYSTEM_CLOCK.monotonic() >= before_mono
    assert isinstance(SYSTEM_CLOCK, SystemClock)


def test_the_system_clock_returns_at_once_for_a_passed_deadline() -> None:
    condition = threading.Condition()
    with condition:  # nobody will notify: only a passed deadline can end this wait
        SYSTEM_CLOCK.wait_until(condition, SYSTEM_CLOCK.monotonic() - 1.0)


@pytest.mark.parametrize("deadline", [None, "far"])
def test_the_system_clock_wakes_on_notify(deadline: str | None) -> None:
    condition = threading.Condition()
    done = threading.Event()
    flag = []

    def sleeper() -> None:
        with condition:
            until = None if deadline is None else SYSTEM_CLOCK.monotonic() + 3600
            while not flag:
                SYSTEM_CLOCK.wait_until(condition, until)
        done.set()

    thread = threading.Thread(target=sleeper)
    thread.start()
    with condition:
        flag.append(1)
        condition.notify_all()
    assert done.wait(PATIENCE)
    thread.join(PATIENCE)


def _sleep_in_thread(clock: Clock, condition: threading.Condition, offset: float,
                     woke: threading.Event) -> threading.Thread:
    def run() -> None:
        with condition:
            deadline = clock.monotonic() + offset
            while clock.monotonic() < deadline:
                clock.wait_until(condition, deadline)
        woke.set()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_the_manual_clock_moves_only_when_advanced() -> None:
    clock = ManualClock(start=100.0)
    assert (clock.time(), clock.monotonic()) == (100.0, 1000.0)
    condition = threading.Condition()
    woke = threading.Event()
    thread = _sleep_in_thread(clock, condition, 5.0, woke)
    assert clock.wait_for_sleepers() == [5.0]
    clock.advance(4.0)
    assert clock.wait_for_sleepers() == [1.0]  # woken, not due: asleep again
    assert not woke.is_set()
    clock.advance(1.0)
    assert woke.wait(PATIENCE)
    thread.join(PATIENCE)
    assert (clock.time(), clock.monotonic()) == (105.0, 1005.0)


def test_the_manual_clock_loses_no_wake_up() -> None:
    # A sleeper that computes its deadline before an advance and registers after it sees
    # the new time and does not sleep; one registered before is woken by the advance.
    clock = ManualClock()
    condition = threading.Condition()
    with condition:
        deadline = clock.monotonic() + 1.0
        clock.advance(1.0)
        clock.wait_until(condition, deadline)  # returns at once: the deadline passed
    for _ in range(20):
        woke = threading.Event()
        thread = _sleep_in_thread(clock, condition, 1.0, woke)
        clock.wait_for_deadline(1.0)
        clock.advance(1.0)
        assert woke.wait(PATIENCE)
        thread.join(PATIENCE)


def test_waiting_for_a_sleeper_that_never_comes_fails() -> None:
    # The safety net is real: a test whose engine never sleeps again fails, not hangs.
    import tests.unit.log._support as support

    clock = ManualClock()
    original = support.PATIENCE
    support.PATIENCE = 0.0
    try:
        with pytest.raises(AssertionError):
            clock.wait_for_sleepers()
        with pytest.raises(AssertionError):
            clock.wait_for_deadline(1.0)
    finally:
        support.PATIENCE = original
