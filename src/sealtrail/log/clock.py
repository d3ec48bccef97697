"""The log engine's clock: wall time for what it records, monotonic time for when it acts.

Everything the engine times goes through one :class:`Clock`: the batching window, the
idle checkpoint cadence, the tile sync barrier cadence and the back-off after a failed
cycle (``monotonic`` and ``wait_until``), and the times it records, an entry's integrated
time and a checkpoint's publication time (``time``). Tests pass a clock they advance by
hand, so they neither sleep nor depend on how fast the machine is.

Not on this clock: the timeouts a caller passes to ``add_blocking``, ``wait_blocking``
and ``wait_for_checkpoint``. They bound how long the *caller* is willing to block and
run on the caller's own clock (real time, or its event loop's), not the log's.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


class Clock(Protocol):
    """Time as the log engine sees it."""

    def time(self) -> float:
        """Unix seconds: recorded as integrated times and checkpoint publication times."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back: deadlines are expressed on it."""
        ...

    def wait_until(self, condition: threading.Condition, deadline: float | None) -> None:
        """Wait on ``condition`` (which the caller holds) until notified or ``deadline``.

        ``deadline`` is a :meth:`monotonic` value (``None``: no deadline). Like
        :meth:`threading.Condition.wait` it may return early: callers re-check both
        their condition and the time.
        """
        ...


class SystemClock:
    """The real clock: :func:`time.time`, :func:`time.monotonic`, a timed condition wait."""

    __slots__ = ()

    def time(self) -> float:
        """Unix seconds."""
        return time.time()

    def monotonic(self) -> float:
        """:func:`time.monotonic`."""
        return time.monotonic()

    def wait_until(self, condition: threading.Condition, deadline: float | None) -> None:
        """Wait on ``condition`` until notified or the deadline passes."""
        if deadline is None:
            condition.wait()
            return
        remaining = deadline - time.monotonic()
        if remaining > 0:
            condition.wait(remaining)


#: The clock every engine uses unless told otherwise.
SYSTEM_CLOCK: Clock = SystemClock()
