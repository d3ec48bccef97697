"""Tests for sealtrail.log.tile_io: reads that repair, writes that never rewrite a full tile.

docs/adr/0004, decisions 1 and 5: tiles are derived data, rebuilt from the sequenced
entries when missing or damaged; a full tile already present is never replaced by
different content (that would be another history). Damage on disk, through the engine,
is covered in test_recovery.py.
"""

from __future__ import annotations

import pytest

from sealtrail.errors import LogStorageError
from sealtrail.log import LogEngine, LogStorage
from sealtrail.log._integrate import Edge, integrate
from sealtrail.log.storage import NewEntry
from sealtrail.log.tile_io import TileIO
from sealtrail.merkle import leaf_hash
from sealtrail.merkle import tile_proofs as _proofs
from sealtrail.merkle.tiles import decode_entry_bundle, encode_entry_bundle
from tests.unit.log._support import PATIENCE, ManualClock, body, config, fake_log

V1 = fake_log("v1")
BODIES = [body(i) for i in range(600)]
LEAVES = [leaf_hash(b) for b in BODIES]


def sequenced(count: int) -> tuple[LogStorage, TileIO]:
    storage = LogStorage.memory()
    storage.sequencer.bind(V1.origin)
    storage.sequencer.assign([NewEntry(leaf_hash(b), b) for b in BODIES[:count]], 1)
    return storage, TileIO(storage.sequencer, storage.tiles, _proofs.TileCache(8))


def test_missing_or_damaged_full_objects_are_rebuilt_and_synced() -> None:
    storage, io = sequenced(600)
    assert io.full_tile(0, 1) == b"".join(LEAVES[256:512])  # missing: derived
    storage.tiles.write_many([("tile/entries/000", encode_entry_bundle(BODIES[:255]))])
    assert decode_entry_bundle(io.full_bundle(0), 256) == BODIES[:256]  # damaged
    assert storage.tiles.read("tile/0/001") == b"".join(LEAVES[256:512])
    # A repair may lie below the durable size, which no barrier covers: synced at once.
    assert ["tile/0/001"] in storage.tiles.synced
    assert ["tile/entries/000"] in storage.tiles.synced


def test_the_sequencer_must_hold_what_a_tile_needs() -> None:
    _, io = sequenced(300)
    with pytest.raises(LogStorageError):
        io.full_tile(0, 1)  # 256..511 is not sequenced yet
    with pytest.raises(LogStorageError):
        io.full_bundle(1)


def test_the_edge_is_derived_from_the_sequencer_not_from_partial_files() -> None:
    storage, io = sequenced(600)
    expected = integrate(Edge.empty(), LEAVES[:600], BODIES[:600]).edge
    storage.tiles.write_many([("tile/0/002.p/88", bytes(88 * 32))])  # never trusted
    edge = io.load_edge(600)
    assert edge == expected
    assert edge.root() == expected.root()


def test_writes_keep_equal_full_tiles_and_refuse_different_ones() -> None:
    storage, io = sequenced(0)
    writes = integrate(Edge.empty(), LEAVES[:300], BODIES[:300]).writes
    full = io.write(writes)
    assert full == ["tile/0/000", "tile/entries/000"]
    again = integrate(Edge.empty(), LEAVES[:256], BODIES[:256]).writes
    assert io.write(again) == full  # equal: not rewritten, but still reported (unsynced)
    storage.tiles.write_many([("tile/0/000", bytes(8192))])  # another history
    with pytest.raises(LogStorageError):
        io.write(again)
    assert io.write(again, repair=True) == full  # open() beyond X rewrites regardless
    assert storage.tiles.read("tile/0/000") == b"".join(LEAVES[:256])
    storage.tiles.write_many([("tile/0/000", b"short")])  # damaged, not another history
    io.write(again)
    assert storage.tiles.read("tile/0/000") == b"".join(LEAVES[:256])


def test_a_full_tile_is_never_overwritten_with_other_content() -> None:
    storage = LogStorage.memory()
    foreign = bytes(range(256)) * 32  # a valid-looking full tile of another log
    storage.tiles.write_many([("tile/0/000", foreign)])
    clock = ManualClock()
    engine = LogEngine.open(config(V1, batch_wait=0), storage, clock=clock)
    futures = [engine.submit(b) for b in BODIES[:256]]
    engine.start()
    try:
        assert [f.result(PATIENCE).index for f in futures] == list(range(256))
        clock.wait_for_deadline(0.05)  # integration refused to go on: backing off
        assert storage.tiles.read("tile/0/000") == foreign
        assert engine.latest_checkpoint().size == 0
    finally:
        engine.close()
