"""Group sync of tiles and lazily durable state (docs/adr/0004), and what a power loss does.

The write path fsyncs only the sequencing commit: tiles are written without fsync and
synced in groups by a background barrier that then records "tiles durable up to X"; the
integration state is saved with ``sync=False`` and becomes durable with the next commit.
These tests check that no guarantee moved: the memory drivers model the worst a power loss
may do to everything not synced (``power_loss()``: lost states, zero-filled tiles of the
right length, resurrected partials), and after any crash point followed by a power loss,
reopening keeps every acknowledged entry at its index, leaves every stored tile correct,
and publishes a checkpoint consistent with every checkpoint published before.
"""

from __future__ import annotations

import asyncio
import random
import threading
from typing import Any

import pytest

from sealtrail.log import LogEngine, LogStorage
from sealtrail.log import engine as engine_module
from sealtrail.log._integrate import Edge, integrate
from sealtrail.merkle import HASH_SIZE, leaf_hash
from sealtrail.merkle.tiles import (
    decode_entry_bundle,
    encode_entry_bundle,
    entries_path,
    parse_tile_path,
    tile_path,
)
from sealtrail.merkle.tree import compute_root
from tests.unit.log._support import Crash, body, check_all_consistent, config, fake_log, recording

V1 = fake_log("v1")
V2 = fake_log("v2")


def abandon(engine: LogEngine) -> None:
    """The process is gone: stop the syncer and the writer without any final barrier (a
    writer left idling would outlive the test, and later tests that fork refuse to)."""
    if engine._syncer is not None:
        engine._syncer.shutdown(wait=True)
    with engine._cond:
        engine._stopping = True  # the writer leaves at its next wait, writing nothing more
        engine._cond.notify_all()
    if engine._thread is not None:
        engine._thread.join(10)
        assert not engine._thread.is_alive(), "the abandoned writer did not stop"


def expected_objects(bodies: list[bytes]) -> dict[str, bytes]:
    """Every full tile and bundle, and the final partials, of a log holding ``bodies``."""
    result = integrate(Edge.empty(), [leaf_hash(b) for b in bodies], bodies)
    return {(entries_path(w.index, w.width) if w.level is None
             else tile_path(w.level, w.index, w.width)): w.data for w in result.writes}


def check_every_stored_tile(objects: dict[str, bytes], bodies: list[bytes]) -> None:
    """Every object in the store is exactly what the tree of ``bodies`` says it must be."""
    reference = expected_objects(bodies)
    latest = {}  # tile path without width -> the reference data (full or final partial)
    for path, data in reference.items():
        latest[path.split(".p/")[0]] = data
    for path, data in objects.items():
        if path == "checkpoint":
            continue
        ref = parse_tile_path(path)
        base = path.split(".p/")[0]
        assert base in latest, f"{path} is beyond the log"
        full = latest[base]
        # Partials of full tiles are deleted by barriers (durably) and by open().
        assert ref.width is None or base not in reference, f"{path} outlived its full tile"
        if ref.width is None:
            assert data == reference[path], f"full object {path} is wrong"
        elif ref.is_entries:
            want = encode_entry_bundle(decode_entry_bundle(full)[:ref.width])
            assert data == want, f"partial bundle {path} is wrong"
        else:
            assert data == full[:ref.width * HASH_SIZE], f"partial tile {path} is wrong"
    for path in reference:  # and nothing the static tree needs is missing
        assert path in objects, f"{path} is missing"


def full_at(path: str, size: int) -> bool:
    """Whether the full tile or bundle at ``path`` was already full at tree ``size``."""
    ref = parse_tile_path(path)
    span = 256 if ref.is_entries else 256 ** (ref.level + 1)
    return ref.width is None and (ref.index + 1) * span <= size


def open_after_power_loss(fake: Any, memory: LogStorage, caplog: pytest.LogCaptureFixture,
                          **options: Any) -> tuple[LogEngine, LogStorage, Any, Any]:
    """Reopen, checking that the repair stayed beyond the durable size X.

    Tiles full at X were synced before X was recorded, so open() must neither rewrite
    them nor need the full rebuild (which would hide a barrier that claimed too much).
    """
    state = memory.sequencer.load_state()
    durable = state.durable_size if state is not None else 0
    storage, seq, tiles = recording(memory)
    caplog.clear()
    engine = LogEngine.open(config(fake, **options), storage)
    assert "rebuilding every tile" not in caplog.text
    rewritten = [p for call in tiles.writes for p in call if p != "checkpoint"]
    assert not [p for p in rewritten if full_at(p, durable)], "open() rewrote durable tiles"
    return engine, storage, seq, tiles


@pytest.mark.parametrize("seed", range(10))
def test_a_power_loss_at_any_point_loses_nothing(seed: int, crash_hook: threading.Event,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    rng = random.Random(seed)
    # Barriers as often as possible (every cycle) in some runs, rarely in others, so that
    # the durable size X is anywhere from 0 to the integrated size when the power goes.
    monkeypatch.setattr(engine_module, "_SYNC_SECONDS", rng.choice([0.0, 0.0, 60.0]))
    monkeypatch.setattr(engine_module, "_SYNC_OBJECTS", rng.choice([1, 4, 64]))
    fake = rng.choice([V1, V2])
    memory = LogStorage.memory()
    acked: dict[bytes, int] = {}
    published: list[str] = []
    for round_ in range(4):
        ops = {"n": 0, "crash_at": rng.randint(1, 60)}
        armed = threading.Event()
        lock = threading.Lock()

        def fault(*_: Any) -> BaseException | None:
            if not armed.is_set():
                return None
            with lock:
                ops["n"] += 1
                return Crash() if ops["n"] >= ops["crash_at"] else None

        engine, storage, seq, tiles = open_after_power_loss(
            fake, memory, caplog, batch_max=rng.randint(1, 90), batch_wait=0,
            checkpoint_interval=3600)
        seq.fault = fault
        tiles.fault = fault
        assert storage.sequencer.load_state().durable_size == engine.latest_checkpoint().size
        published.append(engine.latest_checkpoint().note)
        engine.start()
        first = [engine.submit(body(i, f"{seed}-{round_}")) for i in range(rng.randint(1, 400))]
        for i, f in enumerate(first):
            acked[body(i, f"{seed}-{round_}")] = f.result(10).index
        published.append(engine.wait_blocking(max(acked.values()), 10).note)
        armed.set()
        later: list[Any] = []
        while not crash_hook.wait(0.01):  # keep writing until the writer dies
            assert len(later) < 5000, "the simulated crash did not happen"
            later += [engine.submit(body(i, f"{seed}-{round_}-later"))
                      for i in range(len(later), len(later) + 20)]
        crash_hook.clear()
        for i, f in enumerate(later):
            if f.done() and f.exception() is None:
                acked[body(i, f"{seed}-{round_}-later")] = f.result().index
        # Checkpoints that reached a waiter (or a reader) count as published, whether or
        # not their state record survives.
        published += [s.checkpoint for s in seq.states]
        abandon(engine)
        memory.sequencer.power_loss()
        memory.tiles.power_loss()

    engine, *_ = open_after_power_loss(fake, memory, caplog)
    try:
        cp = engine.latest_checkpoint()
        bodies = [engine.entry(i).body for i in range(cp.size)]
        for b, index in acked.items():
            assert bodies[index] == b, "an acknowledged entry moved or vanished"
        assert len(set(bodies)) == len(bodies)
        assert cp.root_hash == compute_root([leaf_hash(b) for b in bodies])
        check_all_consistent(fake, published + [cp.note], engine)
        check_every_stored_tile(memory.tiles.objects, bodies)
        assert memory.tiles.objects["checkpoint"] == cp.note.encode()
        assert memory.sequencer.load_state().durable_size == cp.size
    finally:
        engine.close()


def test_a_checkpoint_published_before_its_state_was_durable_stays_consistent() -> None:
    memory = LogStorage.memory()
    engine = LogEngine.open(config(V2, batch_wait=0, checkpoint_interval=3600), memory)
    futures = [engine.submit(body(i)) for i in range(10)]
    engine.start()  # one batch: one commit, then the publication whose record is lost
    assert [f.result(10).index for f in futures] == list(range(10))
    published = engine.wait_blocking(9, 10)  # a client holds this signed checkpoint now
    assert published.size == 10
    assert memory.sequencer.load_state().size == 10  # recorded, but not durably
    abandon(engine)  # the writer idles: no commit makes that record durable
    memory.sequencer.power_loss()
    memory.tiles.power_loss()
    assert memory.sequencer.load_state().size == 0, "the state record was meant to be lost"

    reopened = LogEngine.open(config(V2, batch_wait=0), memory)
    reopened.start()
    try:
        cp = reopened.latest_checkpoint()
        assert (cp.size, cp.root_hash) == (published.size, published.root_hash)
        reopened.add_blocking(b"after the power loss")
        later = reopened.wait_blocking(10, 10)
        check_all_consistent(V2, [published.note, cp.note, later.note], reopened)
        check_every_stored_tile(memory.tiles.objects, [body(i) for i in range(10)] +
                                [b"after the power loss"])
    finally:
        reopened.close()


def test_a_lost_state_record_on_sqlite_is_re_derived(tmp_path, crash_hook: threading.Event
                                                     ) -> None:
    # The same with the real SQLite driver: every sync=False state save is dropped, as a
    # power loss before the next commit would; checkpoints are published all the same.
    armed = threading.Event()
    storage, seq, _ = recording(
        LogStorage.embedded(tmp_path / "log"),
        seq_fault=lambda op: Crash() if armed.is_set() and op == "assign" else None)
    inner_save = seq.inner.save_state
    seq.inner.save_state = (  # type: ignore[method-assign]
        lambda state, sync=True: inner_save(state, sync=sync) if sync else None)
    engine = LogEngine.open(config(V1, batch_max=40, batch_wait=0, checkpoint_interval=3600),
                            storage)
    futures = [engine.submit(body(i)) for i in range(300)]
    engine.start()
    for f in futures:
        f.result(10)
    notes = [engine.wait_blocking(299, 10).note] + [s.checkpoint for s in seq.states]
    armed.set()
    engine.submit(b"the writer dies before committing this")
    assert crash_hook.wait(10)
    abandon(engine)
    assert seq.inner.load_state().size == 0  # only the state saved at open is on disk
    seq.inner.close()

    reopened = LogEngine.open(config(V1), LogStorage.embedded(tmp_path / "log"))
    try:
        cp = reopened.latest_checkpoint()
        assert cp.size == 300
        check_all_consistent(V1, notes + [cp.note], reopened)
    finally:
        reopened.close()


def test_barriers_sync_full_tiles_drop_partials_and_record_the_durable_size(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "_SYNC_SECONDS", 0.0)
    memory = LogStorage.memory()
    engine = LogEngine.open(config(V1, batch_max=50, batch_wait=0), memory)
    futures = [engine.submit(body(i)) for i in range(600)]
    engine.start()
    try:
        for f in futures:
            f.result(10)
        engine.wait_blocking(599, 10)
        for _ in range(200):
            if memory.sequencer.load_state().durable_size >= 512:
                break
            engine.add_blocking(body(len(futures) + _))  # a later cycle records X
            engine.wait_blocking(len(futures) + _, 10)
        state = memory.sequencer.load_state()
        synced = {p for call in list(memory.tiles.synced) for p in call}
        # Only full objects are ever synced: partials and the checkpoint are re-derived.
        assert all(".p/" not in p and p != "checkpoint" for p in synced)
        assert 512 <= state.durable_size <= state.size
        assert {"tile/0/000", "tile/0/001", "tile/entries/000", "tile/entries/001"} <= synced
        assert not any(p.startswith(("tile/0/000.p/", "tile/entries/001.p/"))
                       for p in memory.tiles.objects)
    finally:
        engine.close()
    state = memory.sequencer.load_state()
    assert state.durable_size == state.size  # close() ends with a barrier


def test_the_busy_path_commits_once_per_batch() -> None:
    storage, seq, _ = recording(LogStorage.memory())
    syncs = []
    inner_save = seq.inner.save_state
    seq.inner.save_state = (  # type: ignore[method-assign]
        lambda state, sync=True: (syncs.append(sync), inner_save(state, sync=sync))[1])
    engine = LogEngine.open(config(V1, batch_max=10, batch_wait=0, checkpoint_interval=3600),
                            storage)
    futures = [engine.submit(body(i)) for i in range(100)]
    engine.start()
    try:
        for f in futures:
            f.result(10)
        engine.wait_blocking(99, 10)
        assert syncs[0] is True  # the checkpoint published at open
        assert syncs[1:] and not any(syncs[1:])  # the batches: no extra durable write
    finally:
        engine.close()
    assert syncs[-1] is True  # close() records the final state durably


# -- asyncio waiters ----------------------------------------------------------------------


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
            await engine.wait_for_checkpoint(result.index, 10)
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
            first = await asyncio.wait_for(engine.add(b"first"), 5)
            await engine.wait_for_checkpoint(first.index, 5)
            again = await asyncio.wait_for(engine.add(b"first"), 5)  # publishes nothing
            assert again.duplicate and again.index == first.index
            broken["on"] = True
            stuck = await asyncio.wait_for(engine.add(b"committed, not integrated"), 5)
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
            await engine.wait_for_checkpoint(1, 10)
            assert engine.find(leaf_hash(b"cancelled caller")) == 0
            assert (await engine.wait_for_checkpoint(0, None)).size == 2
        finally:
            engine.close()

    asyncio.run(scenario())

