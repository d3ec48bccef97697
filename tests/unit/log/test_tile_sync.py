"""Tests for sealtrail.log.tile_sync: the group sync barrier and the durable size X.

docs/adr/0004, decision 7: full tiles and bundles are synced in groups, every
``SYNC_SECONDS`` of the engine's clock or as soon as ``SYNC_OBJECTS`` wait; only then does
X move, and the writer records it with its next state. The power-loss consequences are
checked in test_group_sync.py.
"""

from __future__ import annotations

from sealtrail.log import LogEngine, LogStorage, tile_sync
from sealtrail.log.tile_sync import TileSyncer
from tests.unit.log._support import (
    PATIENCE,
    FaultyTileStore,
    ManualClock,
    body,
    config,
    fake_log,
    recording,
)

V1 = fake_log("v1")


def store_with(paths: list[str]) -> FaultyTileStore:
    tiles = FaultyTileStore(LogStorage.memory().tiles)
    tiles.write_many([(p, b"x" * 32) for p in paths])
    return tiles


def synced(tiles: FaultyTileStore) -> list[str]:
    return [p for call in tiles.inner.synced for p in call]


def test_a_barrier_is_due_after_sync_seconds_of_the_clock() -> None:
    clock = ManualClock()
    tiles = store_with(["tile/0/000", "tile/0/000.p/7", "tile/entries/000"])
    syncer = TileSyncer(tiles, clock, "test")
    syncer.start()
    try:
        syncer.add(["tile/0/000", "tile/entries/000"])
        syncer.tick(256)
        clock.advance(tile_sync.SYNC_SECONDS - 0.001)
        syncer.tick(256)
        assert synced(tiles) == [] and syncer.durable_size == 0  # not due yet
        clock.advance(0.001)
        syncer.tick(256)  # due: handed to the syncer thread
    finally:
        syncer.stop()  # waits for the running barrier
    assert synced(tiles) == ["tile/0/000", "tile/entries/000"]
    assert tiles.read("tile/0/000.p/7") is None  # the superseded partial is gone
    assert syncer.durable_size == 256


def test_a_barrier_is_due_at_once_when_enough_objects_wait() -> None:
    clock = ManualClock()
    paths = [f"tile/0/{i:03d}" for i in range(tile_sync.SYNC_OBJECTS)]
    tiles = store_with(paths)
    syncer = TileSyncer(tiles, clock, "test")
    syncer.start()
    try:
        syncer.add(paths[:-1])
        syncer.tick(100)
        assert syncer.durable_size == 0
        syncer.add(paths[-1:])
        syncer.tick(tile_sync.SYNC_OBJECTS * 256)  # the clock did not move
    finally:
        syncer.stop()
    assert sorted(synced(tiles)) == paths
    assert syncer.durable_size == tile_sync.SYNC_OBJECTS * 256


def test_a_barrier_with_nothing_to_sync_moves_x_for_free() -> None:
    clock = ManualClock()
    tiles = store_with([])
    syncer = TileSyncer(tiles, clock, "test")
    syncer.reset(10)
    syncer.start()
    clock.advance(tile_sync.SYNC_SECONDS)
    syncer.tick(200)
    assert syncer.durable_size == 200 and synced(tiles) == []
    syncer.stop()


def test_a_failed_barrier_keeps_x_and_retries_every_path() -> None:
    failing = {"on": True}
    clock = ManualClock()
    tiles = store_with(["tile/0/000", "tile/0/001"])
    tiles.fault = lambda op, paths: OSError("sync failed") if failing["on"] else None
    syncer = TileSyncer(tiles, clock, "test")
    syncer.start()
    syncer.add(["tile/0/000"])
    clock.advance(tile_sync.SYNC_SECONDS)
    syncer.tick(256)
    syncer.stop()  # the barrier ran, and failed
    assert syncer.durable_size == 0 and synced(tiles) == []
    syncer.add(["tile/0/001"])
    assert not syncer.close(512)  # still failing: close() does not claim X either
    assert syncer.durable_size == 0
    failing["on"] = False
    assert syncer.close(512)  # every path came back to the queue
    assert sorted(synced(tiles)) == ["tile/0/000", "tile/0/001"]
    assert syncer.durable_size == 512


def test_barriers_follow_the_engine_clock() -> None:
    # Through the engine: full tiles wait for the barrier that the clock makes due, and
    # the writer records the X it reached with its next state.
    clock = ManualClock()
    memory = LogStorage.memory()
    engine = LogEngine.open(config(V1, batch_max=50, batch_wait=0, checkpoint_interval=2.0),
                            memory, clock=clock)
    futures = [engine.submit(body(i)) for i in range(600)]
    engine.start()
    try:
        for f in futures:
            f.result(PATIENCE)
        engine.wait_blocking(599, PATIENCE)
        clock.wait_for_deadline(2.0)  # idle
        assert memory.tiles.synced == [] and memory.sequencer.load_state().durable_size == 0
        clock.advance(2.0)  # a re-signing, then the barrier (due after 1 s)
        clock.wait_for_sleepers()
        barrier = engine._syncer._barrier
        assert barrier is not None and barrier.result(PATIENCE)  # X is 600 now ...
        assert memory.sequencer.load_state().durable_size == 0  # ... not recorded yet
        clock.advance(2.0)  # the next state records it
        clock.wait_for_sleepers()
        assert memory.sequencer.load_state().durable_size == 600
        # Only full objects are ever synced: partials and the checkpoint are re-derived;
        # the partials of full objects are gone.
        assert {p for call in memory.tiles.synced for p in call} == {
            "tile/0/000", "tile/0/001", "tile/entries/000", "tile/entries/001"}
        assert not any(p.startswith(("tile/0/000.p/", "tile/entries/001.p/"))
                       for p in memory.tiles.objects)
        engine.add_blocking(b"one more")
    finally:
        engine.close()
    state = memory.sequencer.load_state()
    assert state.size == 601 and state.durable_size == 601  # close() ends with a barrier


def test_the_busy_path_commits_once_per_batch() -> None:
    storage, seq, _ = recording(LogStorage.memory())
    syncs = []
    inner_save = seq.inner.save_state
    seq.inner.save_state = (  # type: ignore[method-assign]
        lambda state, sync=True: (syncs.append(sync), inner_save(state, sync=sync))[1])
    # The clock never moves: no idle re-signing (which saves durably) can slip in.
    engine = LogEngine.open(config(V1, batch_max=10, batch_wait=0), storage,
                            clock=ManualClock())
    futures = [engine.submit(body(i)) for i in range(100)]
    engine.start()
    try:
        for f in futures:
            f.result(PATIENCE)
        engine.wait_blocking(99, PATIENCE)
        assert syncs[0] is True  # the checkpoint published at open
        assert syncs[1:] and not any(syncs[1:])  # the batches: no extra durable write
    finally:
        engine.close()
    assert syncs[-1] is True  # close() records the final state durably
