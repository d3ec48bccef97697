"""Contract tests for the storage drivers: every driver of a role passes the same tests."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealtrail.errors import LogStorageError
from sealtrail.log.storage import (
    Assignment,
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
    assert out == [Assignment(0, False, 100), Assignment(1, False, 100), Assignment(0, True, 100)]
    out = sequencer.assign([new(b"c"), new(b"b", ("sha256", "2")), new(b"c")], 200)
    assert out == [Assignment(2, False, 200), Assignment(1, True, 100), Assignment(2, True, 200)]
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
    # Pages: from ``start`` on (inclusive), still below ``below`` and within ``limit``.
    assert sequencer.search("id", "alice", 10, 3, start=3) == [3, 4, 5]
    assert sequencer.search("id", "alice", 8, 100, start=6) == [6, 7]
    assert sequencer.search("id", "alice", 10, 100, start=10) == []


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


# -- durability: lazily durable states, group-synced tiles (docs/adr/0004) -----------------


def test_unsynced_states_are_visible_at_once(sequencer: SequencerStorage) -> None:
    durable = IntegrationState(3, b"\x03" * 32, "three\n", 1.0, 2)
    sequencer.save_state(durable)
    lazy = IntegrationState(4, b"\x04" * 32, "four\n", 2.0, 3)
    sequencer.save_state(lazy, sync=False)
    assert sequencer.load_state() == lazy
    with pytest.raises(LogStorageError):  # the same rules hold
        sequencer.save_state(durable, sync=False)
    assert sequencer.load_state() == lazy


def test_a_power_loss_forgets_unsynced_states_until_the_next_commit() -> None:
    seq = MemorySequencer()
    first = IntegrationState(0, b"\x00" * 32, "zero\n", 1.0)
    seq.save_state(first)
    seq.save_state(IntegrationState(1, b"\x01" * 32, "one\n", 2.0, 1), sync=False)
    seq.power_loss()
    assert seq.load_state() == first
    lazy = IntegrationState(2, b"\x02" * 32, "two\n", 3.0, 1)
    seq.save_state(lazy, sync=False)
    seq.assign([new(b"a")], 5)  # a commit makes every earlier save durable, as a WAL does
    seq.power_loss()
    assert seq.load_state() == lazy


@pytest.mark.parametrize("durable", [-1, 6, True, "1"])
def test_durable_size_must_be_within_the_state(sequencer: SequencerStorage,
                                               durable: object) -> None:
    state = IntegrationState(5, b"\x05" * 32, "n\n", 1.0, durable)  # type: ignore[arg-type]
    with pytest.raises(LogStorageError):
        sequencer.save_state(state)
    assert sequencer.load_state() is None


def test_sqlite_unsynced_saves_skip_only_their_own_fsync(tmp_path: Path) -> None:
    seq = SqliteSequencer(tmp_path / "s.db")
    try:
        seq.save_state(IntegrationState(0, b"\x00" * 32, "n\n", 1.0), sync=False)
        # Back to FULL for every later commit, after a success and after a failure.
        assert seq._conn.execute("PRAGMA synchronous").fetchone()[0] == 2
        seq.save_state(IntegrationState(2, b"\x02" * 32, "n\n", 1.0, 1), sync=False)
        with pytest.raises(LogStorageError):
            seq.save_state(IntegrationState(1, b"\x01" * 32, "n\n", 1.0), sync=False)
        assert seq._conn.execute("PRAGMA synchronous").fetchone()[0] == 2
        assert seq.load_state() == IntegrationState(2, b"\x02" * 32, "n\n", 1.0, 1)
    finally:
        seq.close()


def test_sqlite_states_written_before_durable_size_existed(tmp_path: Path) -> None:
    # Older databases fsynced every tile before recording the state: durable up to size.
    path = tmp_path / "s.db"
    seq = SqliteSequencer(path)
    seq.save_state(IntegrationState(7, b"\x07" * 32, "n\n", 1.0, 3))
    seq.close()
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM meta WHERE key = 'durable_size'")
    conn.commit()
    conn.close()
    again = SqliteSequencer(path)
    try:
        assert again.load_state().durable_size == 7
    finally:
        again.close()


def _record_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    from sealtrail.log.storage import posix

    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(posix.os, "fsync", fsync)
    return synced


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to name fds")
def test_posix_writes_are_durable_only_once_synced(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    synced = _record_fsyncs(monkeypatch)
    root = tmp_path / "tiles"
    store = PosixTileStore(root)
    store.write_many([("tile/0/x001/002", b"t" * 8192), ("tile/0/x001/003.p/4", b"p" * 128),
                      ("checkpoint", b"cp")])
    assert synced == []  # off the critical path
    store.sync(["tile/0/x001/002"])
    tile0 = root / "tile" / "0"
    # The file, its directory, and every directory created on the way (their names).
    assert synced[0] == str(tile0 / "x001" / "002")
    assert set(synced[1:]) == {str(tile0 / "x001"), str(tile0), str(root / "tile"), str(root)}
    assert len(synced) == len(set(synced))
    synced.clear()
    store.write_many([("tile/0/x001/003", b"f" * 8192)])
    store.delete_partials("tile/0/x001/003")
    store.sync(["tile/0/x001/003", "tile/0/x001/004"])  # a missing object is skipped
    # The full tile, and its directory: its entry and the removal of 003.p/ are durable.
    assert synced == [str(tile0 / "x001" / "003"), str(tile0 / "x001")]
    assert not (tile0 / "x001" / "003.p").exists()
    synced.clear()
    PosixTileStore(tmp_path / "fast", fsync=False).sync(["checkpoint"])
    lazy = PosixTileStore(tmp_path / "lazy", fsync=False)
    lazy.write_many([("tile/0/000", b"x" * 8192)])
    lazy.sync(["tile/0/000"])
    assert synced == []


def test_posix_sync_failures_are_storage_errors(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from sealtrail.log.storage import posix

    store = PosixTileStore(tmp_path / "tiles")
    store.write_many([("tile/0/000", b"x" * 8192)])

    def broken(fd: int) -> None:
        raise OSError(5, "I/O error")

    monkeypatch.setattr(posix.os, "fsync", broken)
    with pytest.raises(LogStorageError):
        store.sync(["tile/0/000"])
    monkeypatch.undo()
    synced = _record_fsyncs(monkeypatch)
    store.sync(["tile/0/000"])  # the directories not synced then are synced now
    assert str(tmp_path / "tiles") in synced


def test_memory_tile_store_power_loss_damages_only_what_was_not_synced() -> None:
    store = MemoryTileStore()
    store.write_many([("tile/0/000", b"a" * 8192), ("tile/0/001.p/1", b"b" * 32),
                      ("tile/0/001.p/2", b"c" * 64), ("checkpoint", b"cp")])
    store.sync(["tile/0/000"])
    store.write_many([("tile/0/001", b"d" * 8192)])
    store.delete_partials("tile/0/001")
    assert store.read("tile/0/001.p/1") is None
    damaged = store.power_loss()
    assert store.read("tile/0/000") == b"a" * 8192
    # Unsynced objects keep their length but lose their bytes; unsynced deletions undo.
    assert store.read("tile/0/001") == bytes(8192)
    assert store.read("tile/0/001.p/2") == bytes(64)
    assert store.read("checkpoint") == bytes(2)
    assert damaged == ["checkpoint", "tile/0/001", "tile/0/001.p/1", "tile/0/001.p/2"]
    store.write_many([("tile/0/001", b"e" * 8192)])
    store.delete_partials("tile/0/001")
    store.sync(["tile/0/001"])
    assert store.power_loss() == []
    assert store.read("tile/0/001.p/1") is None and store.read("tile/0/001") == b"e" * 8192
