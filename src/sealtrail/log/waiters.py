"""Callers waiting on the log, and how the writer resolves them.

Two kinds of callers wait: threads (a :class:`concurrent.futures.Future`, resolved at once)
and coroutines (an asyncio future, which must be resolved in its own event loop's thread).
The writer resolves coroutine futures in bulk, with ONE ``loop.call_soon_threadsafe`` per
event loop and batch (:class:`Dispatch`; docs/adr/0004, decision 8). Callers waiting for a
checkpoint wait in :class:`CheckpointWaiters`, ordered by the index they need covered.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import heapq
import itertools
from typing import Any

__all__ = ["CheckpointWaiters", "Dispatch", "LoopFuture", "Target", "expire", "resolve"]


class LoopFuture:
    """An asyncio future to resolve from the writer thread, with the loop it belongs to."""

    __slots__ = ("loop", "future")

    def __init__(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]) -> None:
        self.loop = loop
        self.future = future


#: What the writer resolves: a concurrent future (threads) or an asyncio one (coroutines).
Target = concurrent.futures.Future[Any] | LoopFuture


def expire(future: asyncio.Future[Any]) -> None:
    """Fail an asyncio future with :class:`TimeoutError` unless it is done (a loop timer)."""
    if not future.done():
        future.set_exception(TimeoutError())


def resolve(future: concurrent.futures.Future[Any], value: Any = None,
            error: BaseException | None = None) -> None:
    """Resolve a thread's future; one that timed out or was cancelled is skipped quietly."""
    if future.done():
        return
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)
    except concurrent.futures.InvalidStateError:  # cancelled meanwhile
        pass


def _deliver(items: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    """Resolve asyncio futures, in their loop's thread (a cancelled caller is skipped)."""
    for future, value, error in items:
        if not future.done():
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)


class Dispatch:
    """Resolves many targets at once: ONE ``call_soon_threadsafe`` per event loop.

    Resolving each asyncio future on its own (``asyncio.wrap_future``) costs a wake-up
    write to the loop's self-pipe per future, and a loop callback each; with 32 waiting
    clients that was most of the writer thread's time, twice per batch. Thread futures
    are resolved at once; asyncio ones when :meth:`flush` is called.
    """

    __slots__ = ("_loops",)

    def __init__(self) -> None:
        self._loops: dict[asyncio.AbstractEventLoop,
                          list[tuple[asyncio.Future[Any], Any, BaseException | None]]] = {}

    def resolve(self, target: Target, value: Any = None,
                error: BaseException | None = None) -> None:
        """Resolve ``target`` with ``value`` or ``error`` (coroutines: at the next flush)."""
        if isinstance(target, LoopFuture):
            self._loops.setdefault(target.loop, []).append((target.future, value, error))
        else:
            resolve(target, value, error)

    def flush(self) -> None:
        """Hand every collected asyncio result to its loop: one wake-up per loop."""
        loops, self._loops = self._loops, {}
        for loop, items in loops.items():
            try:
                loop.call_soon_threadsafe(_deliver, items)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass


class CheckpointWaiters:
    """Targets waiting for a checkpoint that covers an index, lowest index first.

    Not locked: the engine's condition guards it, so that registering a waiter and
    publishing a checkpoint never miss each other.
    """

    __slots__ = ("_heap", "_ids")

    def __init__(self) -> None:
        # (index, tie-breaker, target): targets are not comparable.
        self._heap: list[tuple[int, int, Target]] = []
        self._ids = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, index: int, target: Target) -> None:
        """Wait for a checkpoint of size > ``index``."""
        heapq.heappush(self._heap, (index, next(self._ids), target))

    def covered(self, size: int) -> list[Target]:
        """Remove and return the targets that a checkpoint of ``size`` covers."""
        woken = []
        while self._heap and self._heap[0][0] < size:
            woken.append(heapq.heappop(self._heap)[2])
        return woken

    def drain(self) -> list[Target]:
        """Remove and return every target (the log is closing)."""
        heap, self._heap = self._heap, []
        return [target for _, _, target in heap]
