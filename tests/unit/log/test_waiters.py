"""Tests for sealtrail.log.waiters: callers resolved in bulk, and checkpoint waiters in order.

Coroutine callers are woken with ONE ``call_soon_threadsafe`` per event loop and batch
(docs/adr/0004, decision 8); thread callers at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

import pytest

from sealtrail.log import LogEngine, LogStorage
from sealtrail.log.waiters import (
    CheckpointWaiters,
    Dispatch,
    LoopFuture,
    expire,
    resolve,
)
from sealtrail.merkle import leaf_hash
from tests.unit.log._support import PATIENCE, body, config, fake_log, recording

V1 = fake_log("v1")


def test_dispatch_wakes_each_loop_once_and_threads_at_once() -> None:
    loop = asyncio.new_event_loop()
    try:
        calls = []
        original = loop.call_soon_threadsafe

        def counting(*args: Any) -> Any:
            calls.append(args)
            return original(*args)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        futures = [loop.create_future() for _ in range(5)]
        failing = loop.create_future()
        cancelled = loop.create_future()
        thread_future: concurrent.futures.Future[str] = concurrent.futures.Future()
        dispatch = Dispatch()
        for i, future in enumerate(futures):
            dispatch.resolve(LoopFuture(loop, future), i)
        dispatch.resolve(LoopFuture(loop, failing), error=ValueError("no"))
        dispatch.resolve(LoopFuture(loop, cancelled), "late")
        dispatch.resolve(thread_future, "now")
        assert thread_future.result(0) == "now"  # threads: at once
        assert not any(f.done() for f in futures)  # coroutines: at the flush
        cancelled.cancel()  # the caller gave up meanwhile: skipped, not an error
        dispatch.flush()
        assert len(calls) == 1
        assert loop.run_until_complete(asyncio.gather(*futures)) == [0, 1, 2, 3, 4]
        with pytest.raises(ValueError):
            loop.run_until_complete(failing)
        dispatch.flush()  # nothing left: no wake-up
        assert len(calls) == 1
    finally:
        loop.close()
    dispatch.resolve(LoopFuture(loop, futures[0]), 9)
    dispatch.flush()  # a closed loop has nobody waiting: ignored


def test_resolve_skips_finished_and_cancelled_futures() -> None:
    done: concurrent.futures.Future[int] = concurrent.futures.Future()
    done.set_result(1)
    resolve(done, 2)
    assert done.result(0) == 1
    cancelled: concurrent.futures.Future[int] = concurrent.futures.Future()
    cancelled.cancel()
    resolve(cancelled, error=ValueError())
    assert cancelled.cancelled()
    fresh: concurrent.futures.Future[int] = concurrent.futures.Future()
    resolve(fresh, error=KeyError("k"))
    with pytest.raises(KeyError):
        fresh.result(0)


def test_expire_fails_only_a_pending_future() -> None:
    loop = asyncio.new_event_loop()
    try:
        pending, finished = loop.create_future(), loop.create_future()
        finished.set_result("kept")
        expire(pending)
        expire(finished)
        with pytest.raises(TimeoutError):
            pending.result()
        assert finished.result() == "kept"
    finally:
        loop.close()


def test_checkpoint_waiters_wake_in_index_order() -> None:
    waiters = CheckpointWaiters()
    targets = [concurrent.futures.Future() for _ in range(4)]
    for index, target in zip((5, 1, 3, 1), targets):
        waiters.add(index, target)
    assert len(waiters) == 4
    assert waiters.covered(1) == []  # a checkpoint of size 1 covers index 0 only
    assert waiters.covered(2) == [targets[1], targets[3]]  # both index 1, in order
    assert waiters.covered(5) == [targets[2]]
    assert waiters.drain() == [targets[0]]
    assert len(waiters) == 0


# -- through the engine ---------------------------------------------------------------------


def test_async_callers_are_woken_once_per_batch_not_once_per_future() -> None:
    async def scenario() -> tuple[int, list[Any]]:
        loop = asyncio.get_running_loop()
        engine = LogEngine.open(config(V1, batch_max=64, batch_wait=0), LogStorage.memory())
        calls = {"n": 0}
        original = loop.call_soon_threadsafe

        def counting(*args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            return original(*args, **kwargs)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]

        async def client(i: int) -> Any:
            result = await engine.add(body(i))
            await engine.wait_for_checkpoint(result.index, PATIENCE)
            return result

        tasks = [asyncio.create_task(client(i)) for i in range(32)]
        await asyncio.sleep(0)  # every add is queued before the writer starts
        engine.start()
        try:
            results = await asyncio.gather(*tasks)
        finally:
            engine.close()
        return calls["n"], results

    wakeups, results = asyncio.run(scenario())
    assert sorted(r.index for r in results) == list(range(32))
    # One wake-up carries the acknowledgements and the checkpoint (was one per future,
    # twice: 64); at most one more if a waiter registered before the publication.
    assert wakeups <= 2


def test_async_acknowledgements_never_wait_for_a_checkpoint_that_cannot_come() -> None:
    # Coroutine callers get their acknowledgement together with the cycle's checkpoint;
    # a cycle that publishes nothing (all duplicates) or fails (tiles down) must still
    # deliver the acknowledgements of what it committed.
    broken = {"on": False}

    def fault(operation: str, paths: list[str]) -> BaseException | None:
        return OSError("tiles down") if broken["on"] and "checkpoint" not in paths else None

    async def scenario() -> None:
        storage, _, _ = recording(LogStorage.memory(), tile_fault=fault)
        engine = LogEngine.open(config(V1, batch_wait=0, checkpoint_interval=3600), storage)
        engine.start()
        try:
            first = await asyncio.wait_for(engine.add(b"first"), PATIENCE)
            await engine.wait_for_checkpoint(first.index, PATIENCE)
            again = await asyncio.wait_for(engine.add(b"first"), PATIENCE)  # publishes nothing
            assert again.duplicate and again.index == first.index
            broken["on"] = True
            stuck = await asyncio.wait_for(engine.add(b"committed, not integrated"), PATIENCE)
            assert stuck.index == 1 and engine.latest_checkpoint().size == 1
        finally:
            broken["on"] = False
            engine.close()

    asyncio.run(scenario())


def test_a_cancelled_add_is_still_sequenced() -> None:
    async def scenario() -> None:
        engine = LogEngine.open(config(V1, batch_wait=0), LogStorage.memory())
        try:
            task = asyncio.create_task(engine.add(b"cancelled caller"))
            await asyncio.sleep(0)  # queued
            task.cancel()
            engine.start()
            assert (await engine.add(b"next")).index == 1
            await engine.wait_for_checkpoint(1, PATIENCE)
            assert engine.find(leaf_hash(b"cancelled caller")) == 0
            assert (await engine.wait_for_checkpoint(0, None)).size == 2
        finally:
            engine.close()

    asyncio.run(scenario())
