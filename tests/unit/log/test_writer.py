"""Tests for sealtrail.log.writer: the write path, its batching and cadence, and its contract.

Deduplication and index assignment under concurrency, push-back, failures (nothing is
acknowledged before its commit, nothing is exposed before its checkpoint), close. The
batching window, the idle checkpoint cadence and the back-off run on a
:class:`ManualClock`: the tests move time themselves and never sleep.
"""

from __future__ import annotations

import asyncio
import random
import threading

import pytest

from sealtrail.errors import (
    LogEntryInvalidError,
    LogEntryNotFoundError,
    LogError,
    LogFrozenError,
    LogOverloadedError,
    LogStorageError,
    UsageError,
)
from sealtrail.log import AddResult, LogEngine, LogStorage
from sealtrail.log.storage import NewEntry
from sealtrail.merkle import leaf_hash
from sealtrail.merkle.tiles import decode_entry_bundle
from sealtrail.merkle.tree import compute_root
from tests.unit.log._support import (
    PATIENCE,
    ManualClock,
    body,
    check_all_consistent,
    config,
    fake_log,
    recording,
    started,
)

V1 = fake_log("v1")
V2 = fake_log("v2")


# -- the clock: batching window, checkpoint cadence, back-off -------------------------------


def test_a_batch_gathers_for_batch_wait_unless_it_fills_up() -> None:
    clock = ManualClock()
    storage, seq, _ = recording(LogStorage.memory())
    engine = started(V1, storage, clock=clock, batch_max=10, batch_wait=0.005)
    try:
        first = engine.submit(body(0))
        clock.wait_for_deadline(0.005)  # the first entry opened the gathering window
        more = [engine.submit(body(i)) for i in range(1, 4)]
        assert seq.sequenced_size() == 0 and not any(f.done() for f in [first, *more])
        clock.advance(0.005)  # the window closes: one batch of four
        assert [f.result(PATIENCE).index for f in [first, *more]] == [0, 1, 2, 3]
        assert seq.batches == [4]
        # A batch that fills up is taken at once: the clock does not move.
        clock.wait_for_deadline(2.0)  # idle again (checkpoint_interval)
        full = [engine.submit(body(i)) for i in range(4, 14)]
        assert [f.result(PATIENCE).index for f in full] == list(range(4, 14))
        assert seq.batches == [4, 10]
    finally:
        engine.close()


def test_idle_checkpoints_are_re_signed_every_interval() -> None:
    clock = ManualClock()
    storage, seq, _ = recording(LogStorage.memory())
    engine = started(V1, storage, clock=clock, checkpoint_interval=2.0)
    try:
        first = engine.latest_checkpoint()
        assert first.published_at == clock.time()
        clock.wait_for_deadline(2.0)
        clock.advance(1.5)
        assert clock.wait_for_sleepers() == pytest.approx([0.5])  # not due yet: nothing published
        assert engine.latest_checkpoint() == first
        clock.advance(0.5)
        assert clock.wait_for_sleepers() == pytest.approx([2.0])  # re-signed; the next one in 2 s
        later = engine.latest_checkpoint()
        assert later.size == first.size and later.published_at == first.published_at + 2.0
        assert later.note != first.note  # ECDSA signatures are randomised
        assert seq.states[-1].checkpoint == later.note  # and recorded
    finally:
        engine.close()


def test_a_failed_cycle_backs_off_and_hides_what_it_did_not_publish() -> None:
    broken = {"on": False}

    def fault(operation: str, paths: list[str]):
        return OSError("tile disk unavailable") if broken["on"] else None

    clock = ManualClock()
    storage, _, _ = recording(LogStorage.memory(), tile_fault=fault)
    engine = LogEngine.open(config(V2, batch_wait=0), storage, clock=clock)  # publishes
    broken["on"] = True
    engine.start()
    try:
        r = engine.add_blocking(b"committed", [("sha256", "ab")])
        assert r.index == 0  # durable in the sequencer: acknowledged
        clock.wait_for_deadline(0.05)  # integration failed: the first back-off
        with pytest.raises(LogOverloadedError):
            engine.wait_blocking(0, 0)
        with pytest.raises(LogOverloadedError):
            asyncio.run(engine.wait_for_checkpoint(0, 0))
        # Not covered by a checkpoint yet: no reader sees it.
        assert engine.latest_checkpoint().size == 0
        assert engine.find(leaf_hash(b"committed")) is None
        assert engine.search("sha256", "ab") == []
        with pytest.raises(LogEntryNotFoundError):
            engine.entry(0)
        clock.advance(0.05)
        assert clock.wait_for_sleepers() == pytest.approx([0.1])  # failed again: the back-off doubles
        broken["on"] = False
        clock.advance(0.1)  # the writer retries and catches up
        assert engine.wait_blocking(0, PATIENCE).size == 1
        assert engine.find(leaf_hash(b"committed")) == 0
        assert engine.search("sha256", "ab") == [0]
    finally:
        engine.close()


def test_consistency_between_every_checkpoint_of_a_busy_run() -> None:
    # Concurrent writers and small batches: many checkpoints of many sizes, and re-signed
    # ones of the same size while idle between rounds, all mutually consistent.
    clock = ManualClock()
    storage, seq, _ = recording(LogStorage.memory())
    engine = started(V1, storage, clock=clock, batch_max=7, batch_wait=0,
                     checkpoint_interval=1.0)

    async def writer(tag: str, round_: int) -> None:
        for i in range(round_ * 10, round_ * 10 + 10):
            result = await engine.add(body(i, tag))
            await engine.wait_for_checkpoint(result.index, PATIENCE)

    async def round_of_writes(round_: int) -> None:
        await asyncio.gather(*(writer(f"w{n}", round_) for n in range(5)))

    try:
        for round_ in range(4):
            asyncio.run(round_of_writes(round_))
            clock.wait_for_deadline(1.0)  # idle: the next checkpoint is a re-signing
            clock.advance(1.0)
            clock.wait_for_sleepers()
        notes = [s.checkpoint for s in seq.states]
        assert len(notes) > 200 // 7  # batches of at most 7 entries, each published
        assert len({s.size for s in seq.states}) <= len(notes) - 4  # 4 re-signings
        assert check_all_consistent(V1, notes, engine) > 100
    finally:
        engine.close()


# -- dedup and concurrency ------------------------------------------------------------------


def test_an_identical_entry_returns_the_existing_index() -> None:
    clock = ManualClock(start=1_700_000_000.0)
    engine = started(V2, clock=clock, batch_wait=0)
    try:
        first = engine.add_blocking(b"same", [("sha256", "aa")])
        assert first == AddResult(0, False, 1_700_000_000)
        engine.add_blocking(b"other")
        clock.advance(50)
        again = engine.add_blocking(b"same", [("sha256", "aa")])
        assert again == AddResult(0, True, 1_700_000_000)  # the original time, too
        fresh = engine.add_blocking(b"new")
        assert fresh == AddResult(2, False, 1_700_000_050)  # integrated times: the clock
        engine.wait_blocking(2, PATIENCE)
        assert engine.search("sha256", "aa") == [0]
        assert engine.latest_checkpoint().size == 3
    finally:
        engine.close()


def test_duplicates_inside_one_batch_share_one_index() -> None:
    engine = LogEngine.open(config(V1), LogStorage.memory())
    futures = [engine.submit(b) for b in (b"a", b"b", b"a", b"a", b"c", b"b")]
    engine.start()
    try:
        results = [f.result(PATIENCE) for f in futures]
        assert [(r.index, r.duplicate) for r in results] == [
            (0, False), (1, False), (0, True), (0, True), (2, False), (1, True)]
        assert engine.wait_blocking(2, PATIENCE).size == 3
    finally:
        engine.close()


def test_concurrent_adds_from_tasks_and_threads_never_share_an_index() -> None:
    engine = started(V2, batch_max=16, batch_wait=0.001)
    distinct = [body(i, "shared") for i in range(60)]
    results: list[tuple[bytes, AddResult]] = []
    lock = threading.Lock()

    def thread_writer(seed: int) -> None:
        rng = random.Random(seed)
        for i in range(80):
            b = rng.choice(distinct) if i % 2 else body(i, f"thread{seed}")
            r = engine.add_blocking(b)
            with lock:
                results.append((b, r))

    async def task_writer(seed: int) -> None:
        rng = random.Random(seed)
        for i in range(30):
            b = rng.choice(distinct) if i % 3 else body(i, f"task{seed}")
            r = await engine.add(b)
            with lock:
                results.append((b, r))

    async def tasks() -> None:
        await asyncio.gather(*(task_writer(100 + s) for s in range(10)))

    threads = [threading.Thread(target=thread_writer, args=(s,)) for s in range(4)]
    try:
        for t in threads:
            t.start()
        asyncio.run(tasks())
        for t in threads:
            t.join()
        by_body: dict[bytes, int] = {}
        for b, r in results:
            assert by_body.setdefault(b, r.index) == r.index  # one body, one index
        indexes = sorted(by_body.values())
        assert indexes == list(range(len(indexes)))  # one index, one body; no gaps
        fresh = [r for _, r in results if not r.duplicate]
        assert len(fresh) == len(by_body)
        engine.wait_blocking(len(indexes) - 1, PATIENCE)
        for b, index in by_body.items():
            assert engine.entry(index).body == b
            assert engine.find(leaf_hash(b)) == index
    finally:
        engine.close()


# -- limits and failure modes ---------------------------------------------------------------


def test_pushback_when_too_many_entries_wait() -> None:
    engine = LogEngine.open(config(V1, max_pending=3), LogStorage.memory())
    for i in range(3):
        engine.submit(body(i))
    with pytest.raises(LogOverloadedError) as info:
        engine.submit(body(3))
    assert info.value.code == "LOG_OVERLOADED"
    engine.start()
    engine.close()


@pytest.mark.parametrize("bad, keys", [
    (b"", ()),
    (b"x" * 65536, ()),
    ("text", ()),
    (None, ()),
    (b"ok", [("sha256", "v")] * 33),
    (b"ok", [("SHA256", "v")]),
    (b"ok", [("", "v")]),
    (b"ok", [("k" * 65, "v")]),
    (b"ok", [("sha256", "")]),
    (b"ok", [("sha256", "v" * 2049)]),
    (b"ok", [("sha256", 5)]),
    (b"ok", [("sha256",)]),
    (b"ok", "sha256"),
])
def test_invalid_entries_are_refused(bad: object, keys: object) -> None:
    engine = LogEngine.open(config(V1), LogStorage.memory())
    with pytest.raises(LogEntryInvalidError) as info:
        engine.submit(bad, keys)  # type: ignore[arg-type]
    assert info.value.code == "LOG_ENTRY_INVALID"
    engine.close()


def test_the_largest_entry_fits_an_entry_bundle() -> None:
    engine = started(V2)
    try:
        big = b"x" * 65535
        r = engine.add_blocking(big)
        engine.wait_blocking(r.index, PATIENCE)
        assert decode_entry_bundle(engine.read_entry_bundle(0, 1)) == [big]
    finally:
        engine.close()


def test_a_frozen_log_refuses_adds_and_serves_reads() -> None:
    storage = LogStorage.memory()
    engine = started(V1, storage)
    engine.add_blocking(b"before the freeze")
    engine.wait_blocking(0, PATIENCE)
    engine.close()
    frozen = LogEngine.open(config(V1, frozen=True), storage)
    frozen.start()  # a no-op: nothing to write
    try:
        with pytest.raises(LogFrozenError) as info:
            frozen.submit(b"after")
        assert info.value.code == "LOG_FROZEN"
        with pytest.raises(LogFrozenError):
            asyncio.run(frozen.add(b"after"))
        assert frozen.frozen
        assert frozen.entry(0).body == b"before the freeze"
        assert frozen.latest_checkpoint().size == 1
        assert frozen.inclusion_proof(0, 1) == []
        assert asyncio.run(frozen.wait_for_checkpoint(0, 1)).size == 1
    finally:
        frozen.close()


def test_a_failing_commit_acknowledges_nothing() -> None:
    calls = {"n": 0}

    def fault(operation: str):
        if operation == "assign":
            calls["n"] += 1
            if calls["n"] == 2:
                return OSError("disk full")
        return None

    storage, seq, _ = recording(LogStorage.memory(), seq_fault=fault)
    engine = started(V1, storage)
    try:
        assert engine.add_blocking(b"first").index == 0
        with pytest.raises(LogStorageError) as info:
            engine.add_blocking(b"second")
        assert info.value.code == "LOG_STORAGE"
        assert seq.sequenced_size() == 1
        # The writer recovers; the next entry takes the next free index.
        assert engine.add_blocking(b"third").index == 1
    finally:
        engine.close()


def test_waiting_for_an_unknown_index_fails_fast() -> None:
    engine = started(V1)
    try:
        with pytest.raises(LogEntryNotFoundError):
            engine.wait_blocking(0, PATIENCE)
        with pytest.raises(LogEntryNotFoundError):
            asyncio.run(engine.wait_for_checkpoint(5, 10))
        with pytest.raises(UsageError):
            engine.wait_blocking(-1, 1)
    finally:
        engine.close()


def test_close_drains_the_queue_and_fails_what_comes_after() -> None:
    engine = LogEngine.open(config(V1, batch_max=2), LogStorage.memory())
    futures = [engine.submit(body(i)) for i in range(7)]
    engine.start()
    engine.close()
    assert [f.result(0).index for f in futures] == list(range(7))
    with pytest.raises(LogError):
        engine.submit(b"late")
    engine.close()  # idempotent


def test_close_fails_checkpoint_waiters_and_unstarted_adds() -> None:
    def fault(operation: str, paths: list[str]):
        return OSError("tiles down") if "checkpoint" not in paths else None

    storage, _, _ = recording(LogStorage.memory(), tile_fault=fault)
    engine = started(V1, storage, batch_wait=0)
    engine.add_blocking(b"x")
    waiter = engine._checkpoint_future(0)
    engine.close()
    with pytest.raises(LogError):
        waiter.result(1)
    unstarted = LogEngine.open(config(V1), LogStorage.memory())
    future = unstarted.submit(b"never sequenced")
    unstarted.close()
    with pytest.raises(LogError):
        future.result(1)


# -- another sequencer client (the PostgreSQL plan) ------------------------------------------


def test_entries_appended_by_another_sequencer_client_are_integrated() -> None:
    # With a shared database (the PostgreSQL plan) another replica may sequence entries
    # between two of this engine's batches; the integrator must take them from the
    # sequencer rather than assume it saw every index.
    storage = LogStorage.memory()
    engine = started(V1, storage, batch_wait=0)
    try:
        assert engine.add_blocking(b"mine 0").index == 0
        engine.wait_blocking(0, PATIENCE)
        other = storage.sequencer.assign([NewEntry(leaf_hash(b"theirs"), b"theirs")], 5)
        assert other[0].index == 1
        assert engine.add_blocking(b"mine 1").index == 2
        cp = engine.wait_blocking(2, PATIENCE)
        assert cp.size == 3
        leaves = [leaf_hash(b) for b in (b"mine 0", b"theirs", b"mine 1")]
        assert cp.root_hash == compute_root(leaves)
        assert engine.entry(1).body == b"theirs"
    finally:
        engine.close()
