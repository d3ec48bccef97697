"""Signing in several processes (``sealtrail.sign.processes``), with stand-in work: shares,
results, failures from either side, helpers that die, and no helper left behind."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from sealtrail.errors import LogError, SigningProcessError, UsageError
from sealtrail.sign import processes
from sealtrail.sign.processes import (_shares, auto_processes, can_fork, effective_processes,
                                     run_in_processes)

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


def no_helper_left() -> bool:
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def run(count: int, procs: int, work: Callable[[int], Any],
        deliver: Callable[[int, Any], None] | None = None) -> dict[int, Any]:
    """run_in_processes over ``work(index)`` (a JSON-ready result); returns what was
    delivered in this process, by index."""
    delivered: dict[int, Any] = {}
    lock = threading.Lock()
    halted: list[int] = []

    def sign_share(indexes: Sequence[int], report: Callable[[int, Any], None],
                   halt: threading.Event) -> None:
        for index in indexes:
            if halt.is_set():
                halted.append(index)
                return
            error = None
            try:
                result = work(index)
            except Exception as exc:
                exc.sealtrail_index = index  # type: ignore[attr-defined]
                error = exc
            if error is not None:
                raise error
            report(index, result)

    def record(index: int, result: Any) -> None:
        if deliver is not None:
            deliver(index, result)
        with lock:
            assert index not in delivered
            delivered[index] = result

    try:
        run_in_processes(count, procs, sign_share, lambda result: {"value": result},
                         lambda index, message: message["value"], record, lambda: None)
    finally:
        HALTED[:] = halted
    return delivered


HALTED: list[int] = []  # where the parent's share stopped after a helper failed


def test_every_result_comes_back_once_and_some_were_made_elsewhere() -> None:
    parent = os.getpid()
    delivered = run(20, 3, lambda i: {"square": i * i, "pid": os.getpid()})
    assert sorted(delivered) == list(range(20))
    assert all(r["square"] == i * i for i, r in delivered.items())
    pids = {r["pid"] for r in delivered.values()}
    assert parent in pids and len(pids) == 3
    assert no_helper_left()


def test_results_are_delivered_in_this_process() -> None:
    parent = os.getpid()
    seen: list[int] = []
    run(10, 2, lambda i: i, deliver=lambda i, r: seen.append(os.getpid()))
    assert seen == [parent] * 10


def test_a_helper_failure_keeps_its_class_and_evidence() -> None:
    def work(i: int) -> int:
        if i == 2:  # in a helper's share (see test_shares)
            raise LogError("the log refused it", expected="201", actual="HTTP 400")
        return i

    assert 2 not in _shares(12, 2)[0]
    with pytest.raises(LogError) as info:
        run(12, 2, work)
    assert info.value.message == "the log refused it"
    assert (info.value.expected, info.value.actual) == ("201", "HTTP 400")
    assert no_helper_left()


@pytest.mark.parametrize("parent_first", [True, False])
def test_the_failure_of_the_lowest_index_wins(parent_first: bool) -> None:
    parent_share, helper_share = _shares(12, 2)
    early, late = ((parent_share[1], helper_share[3]) if parent_first
                   else (helper_share[1], parent_share[3]))

    def work(i: int) -> int:
        if i in (early, late):
            if i == late:
                time.sleep(0.05)  # fails after the other
            raise UsageError(f"item {i}")
        return i

    with pytest.raises(UsageError, match=f"item {early}$"):
        run(12, 2, work)
    assert no_helper_left()


def test_other_exceptions_in_a_helper_become_signing_process_errors() -> None:
    def work(i: int) -> int:
        if os.getpid() != parent:
            raise ZeroDivisionError("division by zero")
        return i

    parent = os.getpid()
    with pytest.raises(SigningProcessError, match="ZeroDivisionError: division by zero"):
        run(6, 2, work)


@pytest.mark.parametrize("how,message", [
    ("exit", "exited with status 3 before signing its share"),
    ("kill", "was killed by signal 9 before signing its share"),
])
def test_a_helper_that_dies_is_an_error_not_a_short_result(how: str, message: str) -> None:
    parent = os.getpid()

    def work(i: int) -> int:
        if os.getpid() != parent:
            if how == "exit":
                os._exit(3)
            os.kill(os.getpid(), signal.SIGKILL)
        return i

    with pytest.raises(SigningProcessError, match=message) as info:
        run(6, 2, work)
    assert info.value.code == "SIGNING_PROCESS_FAILED"
    assert info.value.actual == "0 of 3 signed"
    assert no_helper_left()


def test_a_failing_delivery_stops_the_helpers() -> None:
    parent = os.getpid()

    def work(i: int) -> int:
        if os.getpid() != parent:
            time.sleep(0.01)  # a slow helper, so that it is stopped, not done
        return i

    def deliver(index: int, result: int) -> None:
        if index == 1:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        run(40, 2, work, deliver=deliver)
    assert no_helper_left()


def test_a_helper_failure_stops_the_parents_share() -> None:
    parent = os.getpid()

    def work(i: int) -> int:
        if os.getpid() != parent:
            raise LogError("the helper's first item failed")
        time.sleep(0.02)  # the parent's share would take a while
        return i

    with pytest.raises(LogError):
        run(200, 2, work)
    assert HALTED  # the parent took no new item once the helper had failed
    assert no_helper_left()


def test_a_parent_failure_stops_the_helpers_at_once() -> None:
    parent = os.getpid()
    started = time.monotonic()

    def work(i: int) -> int:
        if os.getpid() == parent:
            raise UsageError("the parent's share failed")
        time.sleep(0.5)  # helpers would take seconds to finish
        return i

    with pytest.raises(UsageError, match="the parent's share failed"):
        run(20, 2, work)
    assert time.monotonic() - started < 2.0
    assert no_helper_left()


def test_a_malformed_message_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # A helper whose message is cut: the length says more than follows.
    real = processes._LENGTH

    class Lying:
        size = real.size

        @staticmethod
        def pack(length: int) -> bytes:
            return real.pack(length + 10)

        unpack = real.unpack

    parent = os.getpid()

    def work(i: int) -> int:
        if os.getpid() != parent:
            monkeypatch.setattr(processes, "_LENGTH", Lying)
        return i

    with pytest.raises(SigningProcessError, match="sent a (cut|malformed) message"):
        run(4, 2, work)
    assert no_helper_left()


def test_shares_cover_every_index_once_and_lighten_the_parent() -> None:
    for count in (1, 2, 7, 100, 1000):
        for procs in (1, 2, 3, 8):
            shares = _shares(count, procs)
            assert sorted(i for share in shares for i in share) == list(range(count))
            assert all(share == sorted(share) for share in shares)
    sizes = [len(share) for share in _shares(1000, 2)]
    assert sizes[0] < sizes[1] and sum(sizes) == 1000
    assert abs(sizes[0] / sizes[1] - processes.PARENT_SHARE) < 0.01


def test_automatic_process_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert auto_processes(1) == 1
    assert auto_processes(processes.MIN_ITEMS_PER_PROCESS * 2 - 1) == 1
    assert auto_processes(processes.MIN_ITEMS_PER_PROCESS * 2) == 2
    assert auto_processes(10_000) == 4
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    assert auto_processes(10_000) == processes.MAX_PROCESSES


def test_no_fork_while_another_thread_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    thread = threading.Thread(target=release.wait)
    thread.start()
    try:
        assert not can_fork()
    finally:
        release.set()
        thread.join()
    # Alone (other tests of this process may have left threads behind: pretend they did not).
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    assert can_fork() == (os.uname().sysname == "Linux")
    monkeypatch.setattr(processes.sys, "platform", "darwin")
    assert not can_fork()


def test_effective_processes_never_exceed_the_artifacts_and_need_a_safe_fork(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processes, "can_fork", lambda: True)
    assert [effective_processes(4, n) for n in (1, 2, 3, 10)] == [1, 2, 3, 4]
    assert effective_processes(1, 10) == 1
    monkeypatch.setattr(processes, "can_fork", lambda: False)
    assert effective_processes(4, 10) == 1
