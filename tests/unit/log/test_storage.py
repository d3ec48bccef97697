"""Contract tests for the storage drivers: every driver of a role passes the same tests."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealtrail.errors import LogStorageError
from sealtrail.log.storage import (
    EntryReader,
    IntegrationState,
    IntegrationStateStore,
    LogStorage,
    NewEntry,
    SearchIndex,
    SequencedEntry,
    Sequencer,
    SequencerStorage,
    TileStore,
)
from sealtrail.log.storage.memory import MemorySequencer, MemoryTileStore
from sealtrail.log.storage.posix import PosixTileStore
from sealtrail.log.storage.sqlite import SqliteSequencer
from sealtrail.merkle import leaf_hash


def new(body: bytes, *keys: tuple[str, str]) -> NewEntry:
    return NewEntry(leaf_hash(body), body, tuple(keys))


@pytest.fixture(params=["memory", "sqlite"])
def sequencer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SequencerStorage]:
    seq: SequencerStorage
    seq = MemorySequencer() if request.param == "memory" else SqliteSequencer(tmp_path / "s.db")
    yield seq
    seq.close()


@pytest.fixture(params=["memory", "posix"])
def tiles(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TileStore]:
    store: TileStore = MemoryTileStore() if request.param == "memory" else PosixTileStore(
        tmp_path / "tiles")
    yield store
    store.close()


# -- sequencers -----------------------------------------------------------------------------


def test_sequencers_implement_every_role(sequencer: SequencerStorage) -> None:
    for role in (Sequencer, EntryReader, SearchIndex, IntegrationStateStore, SequencerStorage):
        assert isinstance(sequencer, role)


def test_assign_gives_contiguous_indexes_and_dedups(sequencer: SequencerStorage) -> None:
    assert sequencer.sequenced_size() == 0
    out = sequencer.assign([new(b"a", ("sha256", "1")), new(b"b"), new(b"a")], 100)
    assert [tuple(a) for a in out] == [(0, False, 100), (1, False, 100), (0, True, 100)]
    out = sequencer.assign([new(b"c"), new(b"b", ("sha256", "2")), new(b"c")], 200)
    assert [tuple(a) for a in out] == [(2, False, 200), (1, True, 100), (2, True, 200)]
    assert sequencer.sequenced_size() == 3
    assert sequencer.entries(0, 10) == [
        SequencedEntry(0, leaf_hash(b"a"), b"a", 100),
        SequencedEntry(1, leaf_hash(b"b"), b"b", 100),
        SequencedEntry(2, leaf_hash(b"c"), b"c", 200),
    ]
    assert sequencer.entries(1, 2) == [SequencedEntry(1, leaf_hash(b"b"), b"b", 100)]
    assert sequencer.entries(5, 9) == []
    assert sequencer.leaf_hashes(1, 3) == [leaf_hash(b"b"), leaf_hash(b"c")]
    assert sequencer.find(leaf_hash(b"c")) == 2
    assert sequencer.find(leaf_hash(b"zzz")) is None
    # A duplicate's search keys are not stored again.
    assert sequencer.search("sha256", "2", 10, 10) == []
    assert sequencer.search("sha256", "1", 10, 10) == [0]
    assert sequencer.assign([], 300) == []


def test_search_bounds(sequencer: SequencerStorage) -> None:
    sequencer.assign([new(bytes([i]), ("id", "alice"), ("id", "alice")) for i in range(10)], 1)
    assert sequencer.search("id", "alice", 10, 100) == list(range(10))
    assert sequencer.search("id", "alice", 4, 100) == [0, 1, 2, 3]
    assert sequencer.search("id", "alice", 10, 3) == [0, 1, 2]
    assert sequencer.search("id", "bob", 10, 3) == []
    assert sequencer.search("other", "alice", 10, 3) == []


def test_integration_state(sequencer: SequencerStorage) -> None:
    assert sequencer.load_state() is None
    state = IntegrationState(0, b"\x00" * 32, "note\n", 1.5)
    sequencer.save_state(state)
    assert sequencer.load_state() == state
    later = IntegrationState(5, b"\x01" * 32, "note 2\n", 2.5)
    sequencer.save_state(later)
    sequencer.save_state(later)  # the same size again is fine (idle re-signing)
    assert sequencer.load_state() == later
    with pytest.raises(LogStorageError):
        sequencer.save_state(state)  # backwards
    assert sequencer.load_state() == later


def test_bind_ties_storage_to_one_log(sequencer: SequencerStorage) -> None:
    sequencer.bind("log.example")
    sequencer.bind("log.example")
    with pytest.raises(LogStorageError) as info:
        sequencer.bind("other.example")
    assert info.value.code == "LOG_STORAGE"


def test_sqlite_persists_and_locks(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    seq = SqliteSequencer(path)
    seq.bind("log.example")
    seq.assign([new(b"a"), new(b"b")], 7)
    seq.save_state(IntegrationState(2, b"\x02" * 32, "n\n", 3.0))
    with pytest.raises(LogStorageError):  # one owner at a time
        SqliteSequencer(path)
    seq.close()
    seq.close()  # idempotent
    with pytest.raises(LogStorageError):
        seq.find(leaf_hash(b"a"))
    with pytest.raises(LogStorageError):
        seq.assign([new(b"c")], 8)
    again = SqliteSequencer(path)
    try:
        assert again.sequenced_size() == 2
        assert again.find(leaf_hash(b"b")) == 1
        assert again.load_state() == IntegrationState(2, b"\x02" * 32, "n\n", 3.0)
        with pytest.raises(LogStorageError):
            again.bind("other.example")
        # WAL and FULL sync: every commit is on disk before assign() returns.
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()
    finally:
        again.close()


def test_sqlite_batches_are_atomic(tmp_path: Path) -> None:
    seq = SqliteSequencer(tmp_path / "s.db")
    try:
        seq.assign([new(b"a")], 1)
        bad = NewEntry(leaf_hash(b"b"), object(), ())  # type: ignore[arg-type]
        with pytest.raises(LogStorageError):
            seq.assign([new(b"x"), bad], 2)
        assert seq.sequenced_size() == 1
        assert seq.find(leaf_hash(b"x")) is None
        assert [a.index for a in seq.assign([new(b"y")], 3)] == [1]
    finally:
        seq.close()


def test_sqlite_refuses_foreign_files(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(LogStorageError):
        SqliteSequencer(garbage)
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("INSERT INTO meta VALUES ('schema', '99')")
    conn.commit()
    conn.close()
    with pytest.raises(LogStorageError) as info:
        SqliteSequencer(other)
    assert info.value.expected == "1"
    # The lock was released on failure: a later open is not blocked by it.
    with pytest.raises(LogStorageError) as info:
        SqliteSequencer(other)
    assert "schema" in info.value.message
    with pytest.raises(LogStorageError):
        SqliteSequencer(tmp_path / "missing-dir" / "s.db")


# -- tile stores ----------------------------------------------------------------------------


def test_tile_stores_read_write_and_clean_up(tiles: TileStore) -> None:
    assert isinstance(tiles, TileStore)
    assert tiles.read("tile/0/000") is None
    tiles.write_many([("tile/0/000.p/1", b"a" * 32), ("tile/0/000.p/2", b"b" * 64),
                      ("tile/entries/x001/000", b"\x00\x01z"), ("checkpoint", b"note")])
    assert tiles.read("tile/0/000.p/2") == b"b" * 64
    assert tiles.read("tile/entries/x001/000") == b"\x00\x01z"
    assert tiles.read("checkpoint") == b"note"
    tiles.write_many([("checkpoint", b"newer note")])
    assert tiles.read("checkpoint") == b"newer note"
    tiles.write_many([("tile/0/000", b"c" * 8192)])
    tiles.delete_partials("tile/0/000")
    assert tiles.read("tile/0/000.p/1") is None and tiles.read("tile/0/000.p/2") is None
    assert tiles.read("tile/0/000") == b"c" * 8192
    tiles.delete_partials("tile/5/000")  # nothing to delete is fine


@pytest.mark.parametrize("path", [
    "../escape", "/etc/passwd", "tile/0/0001", "tile/0/../../x", "tiles/0/000", "",
    "checkpoint/../x", "tile/0/000.p/0", "CHECKPOINT", "tile/entries/000.p/999",
])
def test_tile_stores_refuse_paths_outside_the_layout(tiles: TileStore, path: str) -> None:
    with pytest.raises(LogStorageError):
        tiles.write_many([(path, b"x")])
    with pytest.raises(LogStorageError):
        tiles.read(path)


def test_posix_layout_is_the_http_layout(tmp_path: Path) -> None:
    root = tmp_path / "tiles"
    store = PosixTileStore(root)
    store.write_many([("tile/0/x001/x234/067.p/5", b"h" * 160), ("checkpoint", b"cp")])
    assert (root / "tile" / "0" / "x001" / "x234" / "067.p" / "5").read_bytes() == b"h" * 160
    assert (root / "checkpoint").read_bytes() == b"cp"
    # Nothing but the objects in the served tree; temporary files live beside it.
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == ["checkpoint", "tile/0/x001/x234/067.p/5"]
    assert os.listdir(str(root) + ".tmp") == []


def test_posix_store_removes_stale_temporary_files(tmp_path: Path) -> None:
    root = tmp_path / "tiles"
    PosixTileStore(root)
    stale = Path(str(root) + ".tmp") / "leftover"
    stale.write_bytes(b"half a tile")
    PosixTileStore(root, fsync=False)
    assert not stale.exists()


def test_posix_store_reports_io_errors(tmp_path: Path) -> None:
    root = tmp_path / "tiles"
    store = PosixTileStore(root)
    (root / "tile").write_bytes(b"a file where a directory should be")
    with pytest.raises(LogStorageError):
        store.write_many([("tile/0/000", b"x" * 8192)])
    with pytest.raises(LogStorageError):
        store.read("tile/0/000")
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"")
    with pytest.raises(LogStorageError):
        PosixTileStore(blocker / "tiles")


def test_embedded_storage_layout(tmp_path: Path) -> None:
    storage = LogStorage.embedded(tmp_path / "log")
    try:
        assert isinstance(storage.sequencer, SqliteSequencer)
        assert isinstance(storage.tiles, PosixTileStore)
        assert (tmp_path / "log" / "sequencer.sqlite3").exists()
        assert (tmp_path / "log" / "tiles").is_dir()
        with pytest.raises(LogStorageError):  # the directory is in use
            LogStorage.embedded(tmp_path / "log")
    finally:
        storage.close()
    LogStorage.embedded(tmp_path / "log").close()
    memory = LogStorage.memory()
    assert isinstance(memory.sequencer, MemorySequencer)
    assert isinstance(memory.tiles, MemoryTileStore)
