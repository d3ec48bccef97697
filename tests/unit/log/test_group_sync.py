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

import random
import threading
from typing import Any

import pytest

from sealtrail.log import LogEngine, LogStorage, tile_sync
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
from tests.unit.log._support import (
    PATIENCE,
    Crash,
    CrashWatch,
    ManualClock,
    abandon,
    body,
    check_all_consistent,
    config,
    fake_log,
    recording,
)

V1 = fake_log("v1")
V2 = fake_log("v2")


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
                          clock: ManualClock,
                          **options: Any) -> tuple[LogEngine, LogStorage, Any, Any]:
    """Reopen, checking that the repair stayed beyond the durable size X.

    Tiles full at X were synced before X was recorded, so open() must neither rewrite
    them nor need the full rebuild (which would hide a barrier that claimed too much).
    """
    state = memory.sequencer.load_state()
    durable = state.durable_size if state is not None else 0
    storage, seq, tiles = recording(memory)
    caplog.clear()
    engine = LogEngine.open(config(fake, **options), storage, clock=clock)
    assert "rebuilding every tile" not in caplog.text
    rewritten = [p for call in tiles.writes for p in call if p != "checkpoint"]
    assert not [p for p in rewritten if full_at(p, durable)], "open() rewrote durable tiles"
    return engine, storage, seq, tiles


@pytest.mark.parametrize("seed", range(10))
def test_a_power_loss_at_any_point_loses_nothing(seed: int, crash_hook: CrashWatch,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    rng = random.Random(seed)
    # Barriers as often as possible (every cycle) in some runs, only when enough full
    # objects wait in others (the clock never moves), so that the durable size X is
    # anywhere from 0 to the integrated size when the power goes.
    clock = ManualClock()
    monkeypatch.setattr(tile_sync, "SYNC_SECONDS", rng.choice([0.0, 0.0, 60.0]))
    monkeypatch.setattr(tile_sync, "SYNC_OBJECTS", rng.choice([1, 4, 64]))
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
            fake, memory, caplog, clock, batch_max=rng.randint(1, 90), batch_wait=0,
            checkpoint_interval=3600)
        seq.fault = fault
        tiles.fault = fault
        assert storage.sequencer.load_state().durable_size == engine.latest_checkpoint().size
        published.append(engine.latest_checkpoint().note)
        engine.start()
        first = [engine.submit(body(i, f"{seed}-{round_}")) for i in range(rng.randint(1, 400))]
        for i, f in enumerate(first):
            acked[body(i, f"{seed}-{round_}")] = f.result(PATIENCE).index
        published.append(engine.wait_blocking(max(acked.values()), PATIENCE).note)
        armed.set()
        later: list[Any] = []
        while True:  # keep writing until the writer dies
            assert len(later) < 5000, "the simulated crash did not happen"
            batch = [engine.submit(body(i, f"{seed}-{round_}-later"))
                     for i in range(len(later), len(later) + 20)]
            later += batch
            if crash_hook.wait_or(batch[-1]):
                break
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

    engine, *_ = open_after_power_loss(fake, memory, caplog, clock)
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
    # The clock never moves: no idle re-signing (which saves durably) can slip in.
    engine = LogEngine.open(config(V2, batch_wait=0), memory, clock=ManualClock())
    futures = [engine.submit(body(i)) for i in range(10)]
    engine.start()  # one batch: one commit, then the publication whose record is lost
    assert [f.result(PATIENCE).index for f in futures] == list(range(10))
    published = engine.wait_blocking(9, PATIENCE)  # a client holds this signed checkpoint now
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
        later = reopened.wait_blocking(10, PATIENCE)
        check_all_consistent(V2, [published.note, cp.note, later.note], reopened)
        check_every_stored_tile(memory.tiles.objects, [body(i) for i in range(10)] +
                                [b"after the power loss"])
    finally:
        reopened.close()


def test_a_lost_state_record_on_sqlite_is_re_derived(tmp_path, crash_hook: CrashWatch
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
    engine = LogEngine.open(config(V1, batch_max=40, batch_wait=0), storage,
                            clock=ManualClock())
    futures = [engine.submit(body(i)) for i in range(300)]
    engine.start()
    for f in futures:
        f.result(PATIENCE)
    notes = [engine.wait_blocking(299, PATIENCE).note] + [s.checkpoint for s in seq.states]
    armed.set()
    engine.submit(b"the writer dies before committing this")
    assert crash_hook.wait(PATIENCE)
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
