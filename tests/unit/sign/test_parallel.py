"""The signer's worker threads (``_in_parallel``): order, first failure, and no stragglers."""

from __future__ import annotations

import threading
import time

import pytest

from sealtrail.sign.signer import _in_parallel


def test_results_come_back_in_task_order_from_several_threads() -> None:
    seen: set[str] = set()

    def task(n: int) -> int:
        seen.add(threading.current_thread().name)
        time.sleep(0.002 * (n % 3))  # finish out of order
        return n * n

    assert _in_parallel([lambda n=n: task(n) for n in range(30)], 4) == [n * n for n in range(30)]
    assert len(seen) > 1 and all(name.startswith("sealtrail-sign-") for name in seen)


def test_the_lowest_failing_task_is_raised_and_later_tasks_never_start() -> None:
    started: list[int] = []
    release = threading.Event()

    def task(n: int) -> int:
        started.append(n)
        if n == 1:
            release.wait(5)  # fails after task 3 has
            raise ValueError("task 1")
        if n == 3:
            release.set()
            raise ValueError("task 3")
        return n

    with pytest.raises(ValueError, match="task 1"):
        _in_parallel([lambda n=n: task(n) for n in range(100)], 4)
    assert max(started) < 10  # the rest were never claimed


def test_it_returns_only_after_every_running_task_has_ended() -> None:
    finished: list[int] = []
    all_running = threading.Barrier(4, timeout=5)

    def task(n: int) -> int:
        all_running.wait()
        if n == 0:
            raise RuntimeError("early failure")
        time.sleep(0.05)
        finished.append(n)
        return n

    with pytest.raises(RuntimeError, match="early failure"):
        _in_parallel([lambda n=n: task(n) for n in range(4)], 4)
    # The tasks already running when task 0 failed had ended before the error came back.
    assert sorted(finished) == [1, 2, 3]
    assert not any(t.name.startswith("sealtrail-sign-") for t in threading.enumerate())


def test_one_worker_runs_the_tasks_here_in_order_and_stops_at_a_failure() -> None:
    ran: list[tuple[int, str]] = []

    def task(n: int) -> int:
        ran.append((n, threading.current_thread().name))
        if n == 2:
            raise ValueError("task 2")
        return n

    assert _in_parallel([lambda n=n: task(n) for n in range(2)], 1) == [0, 1]
    ran.clear()
    with pytest.raises(ValueError, match="task 2"):
        _in_parallel([lambda n=n: task(n) for n in range(5)], 1)
    assert ran == [(n, threading.current_thread().name) for n in range(3)]
