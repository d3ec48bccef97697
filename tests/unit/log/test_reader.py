"""Tests for sealtrail.log.reader: entries, search, tiles and proofs at the published snapshot.

Proofs are checked against the oracle ``sealtrail.merkle.tree`` (a plain list of leaves,
RFC 6962 recursion) and verified as a client would.
"""

from __future__ import annotations

import random

import pytest

from sealtrail.errors import LogEntryNotFoundError, UsageError
from sealtrail.log import LogEngine, LogStorage, StoredEntry
from sealtrail.merkle import EMPTY_ROOT, leaf_hash, verify_consistency, verify_inclusion
from sealtrail.merkle.tile_proofs import (
    consistency_proof_from_tiles,
    inclusion_proof_from_tiles,
)
from sealtrail.merkle.tiles import decode_entry_bundle, decode_tile, entries_path
from sealtrail.merkle.tree import compute_root
from sealtrail.merkle.tree import inclusion_proof as oracle_inclusion
from sealtrail.verify._checkpoint import verify_checkpoint
from tests.unit.log._support import PATIENCE, body, config, fake_log, started

BODIES = [body(i) for i in range(720)]
LEAVES = [leaf_hash(b) for b in BODIES]
V2 = fake_log("v2")


def test_proofs_after_every_checkpoint_match_the_oracle() -> None:
    # A running log answers proofs at each new checkpoint; each snapshot extends the
    # previous one's expansion of the partial edge tiles (only new nodes are hashed). Steps
    # of 1 to 13 entries cross the 256- and 512-leaf tile boundaries, so the extension
    # also starts over on a fresh tile and works one tile level up.
    engine = started(V2, batch_wait=0)
    rng = random.Random(7)
    try:
        size = 0
        while size < 700:
            step = rng.randint(1, 13)
            futures = [engine.submit(b) for b in BODIES[size:size + step]]
            size += step
            for future in futures:
                future.result(PATIENCE)
            assert engine.wait_blocking(size - 1, PATIENCE).size >= size
            tree_size = engine.latest_checkpoint().size
            root = compute_root(LEAVES[:tree_size])
            for index in {tree_size - 1, tree_size - step, rng.randrange(tree_size), 0}:
                if not 0 <= index < tree_size:
                    continue
                proof = engine.inclusion_proof(index, tree_size)
                assert proof == oracle_inclusion(LEAVES[:tree_size], index)
                verify_inclusion(LEAVES[index], index, tree_size, proof, root)
    finally:
        engine.close()


@pytest.fixture(scope="module")
def engine_300() -> LogEngine:
    engine = LogEngine.open(config(V2, batch_max=100, batch_wait=0), LogStorage.memory())
    futures = [engine.submit(b, [("sha256", f"{i % 7:064x}")]) for i, b in
               enumerate(BODIES[:300])]
    engine.start()
    for f in futures:
        f.result(PATIENCE)
    engine.wait_blocking(299, PATIENCE)
    yield engine
    engine.close()


def test_tiles_and_bundles_are_served_at_every_width(engine_300: LogEngine) -> None:
    e = engine_300
    assert decode_tile(e.read_tile(0, 0, None), 256) == LEAVES[:256]
    assert decode_tile(e.read_tile(0, 1, 44), 44) == LEAVES[256:300]
    assert decode_tile(e.read_tile(0, 1, 10), 10) == LEAVES[256:266]  # prefix of the edge
    assert decode_tile(e.read_tile(0, 0, 3), 3) == LEAVES[:3]  # prefix of a full tile
    assert e.read_tile(1, 0, 1) == compute_root(LEAVES[:256])
    assert decode_entry_bundle(e.read_entry_bundle(0, None), 256) == BODIES[:256]
    assert decode_entry_bundle(e.read_entry_bundle(1, 44), 44) == BODIES[256:300]
    assert decode_entry_bundle(e.read_entry_bundle(0, 5), 5) == BODIES[:5]
    for args in ((0, 1, None), (0, 1, 45), (0, 2, 1), (1, 0, None), (1, 0, 2), (2, 0, 1)):
        with pytest.raises(LogEntryNotFoundError):
            e.read_tile(*args)
    for args in ((1, None), (1, 45), (2, 1)):
        with pytest.raises(LogEntryNotFoundError):
            e.read_entry_bundle(*args)
    for args in ((0, 0, 0), (0, 0, 256), (64, 0, None), (-1, 0, None), (0, -1, None),
                 (0, 0, True), ("0", 0, None)):
        with pytest.raises(UsageError):
            e.read_tile(*args)
    with pytest.raises(UsageError):
        e.read_entry_bundle(0, 256)


def test_entries_find_and_search(engine_300: LogEngine) -> None:
    e = engine_300
    assert e.entry(299) == StoredEntry(299, BODIES[299], e.entry(299).integrated_time)
    assert e.entry(7).leaf_hash == LEAVES[7]
    for bad in (300, -1, True, "1"):
        with pytest.raises(LogEntryNotFoundError):
            e.entry(bad)  # type: ignore[arg-type]
    assert e.find(LEAVES[42]) == 42
    assert e.find(leaf_hash(b"absent")) is None
    with pytest.raises(UsageError):
        e.find(b"short")
    assert e.search("sha256", f"{3:064x}") == list(range(3, 300, 7))
    assert e.search("sha256", f"{3:064x}", limit=2) == [3, 10]
    assert e.search("sha256", "none") == []
    # The next page starts after the last index of the one before.
    assert e.search("sha256", f"{3:064x}", limit=2, start=11) == [17, 24]
    assert e.search("sha256", f"{3:064x}", start=297) == [297]
    assert e.search("sha256", f"{3:064x}", start=298) == []
    for start in (-1, True, "3"):
        with pytest.raises(UsageError):
            e.search("sha256", f"{3:064x}", start=start)  # type: ignore[arg-type]
    for kind, value, limit in (("BAD", "x", 1), ("sha256", "", 1), ("sha256", "x", 0),
                               ("sha256", "x", 1001)):
        with pytest.raises(UsageError):
            e.search(kind, value, limit)


def test_proof_arguments_are_checked(engine_300: LogEngine) -> None:
    e = engine_300
    with pytest.raises(LogEntryNotFoundError):
        e.inclusion_proof(0, 301)
    with pytest.raises(UsageError):
        e.inclusion_proof(300, 300)
    with pytest.raises(UsageError):
        e.inclusion_proof(0, 0)
    with pytest.raises(UsageError):
        e.inclusion_proof(-1, 10)
    with pytest.raises(LogEntryNotFoundError):
        e.consistency_proof(1, 301)
    with pytest.raises(UsageError):
        e.consistency_proof(20, 10)
    with pytest.raises(UsageError):
        e.consistency_proof(-1, 10)
    assert e.consistency_proof(0, 300) == [] and e.consistency_proof(300, 300) == []
    assert e.root_at(0) == EMPTY_ROOT


def test_the_tile_directory_alone_serves_the_read_api(tmp_path) -> None:
    # What a static file server or CDN would serve: the checkpoint, tiles and bundles,
    # enough for a client to prove inclusion and consistency without the engine.
    engine = LogEngine.open(config(V2, batch_max=64, batch_wait=0),
                            LogStorage.embedded(tmp_path / "log"))
    first = engine.latest_checkpoint()
    futures = [engine.submit(b) for b in BODIES[:700]]
    engine.start()
    for f in futures:
        f.result(PATIENCE)
    engine.wait_blocking(699, PATIENCE)
    engine.close()
    root = tmp_path / "log" / "tiles"

    def fetch(path: str) -> bytes:
        return (root / path).read_bytes()

    cp = verify_checkpoint(fetch("checkpoint").decode(), V2.log)
    assert cp.size == 700
    for index in (0, 255, 256, 511, 699):
        proof = inclusion_proof_from_tiles(fetch, index, cp.size)
        verify_inclusion(LEAVES[index], index, cp.size, proof, cp.root_hash)
    proof = consistency_proof_from_tiles(fetch, 300, cp.size)
    verify_consistency(300, cp.size, proof, compute_root(LEAVES[:300]), cp.root_hash)
    verify_consistency(0, cp.size, consistency_proof_from_tiles(fetch, 0, cp.size),
                       first.root_hash, cp.root_hash)
    bodies = []
    for n in range(2):
        bodies += decode_entry_bundle(fetch(entries_path(n)), 256)
    bodies += decode_entry_bundle(fetch(entries_path(2, 188)), 188)
    assert bodies == BODIES[:700]
    # Partial tiles of tiles that have filled up were cleaned away; the edge's remain.
    assert not (root / "tile" / "0" / "000.p").exists()
    assert not (root / "tile" / "entries" / "001.p").exists()
    assert (root / "tile" / "0" / "002.p" / "188").exists()
    assert (root / "tile" / "1" / "000.p" / "2").exists()
