"""Built entries: bodies the sequencer builds from the index it assigns (NewEntry.build).

The sequencer contract (memory and SQLite here; tests/integration/test_built_entries_postgres.py
runs the same functions on PostgreSQL): a built entry is built for exactly its index inside
the sequencing transaction, returned in ``Assignment.built``, stored, never deduplicated;
a build that raises fails the whole batch with nothing committed. Then the engine's
:meth:`LogEngine.submit_built`: built and plain entries share a batch, each built body
names its own index, a failing build fails every caller of its batch and the log goes on.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sealtrail.errors import LogEntryInvalidError, LogError, LogStorageError
from sealtrail.log import LogStorage
from sealtrail.log.storage import Assignment, NewEntry, SequencedEntry, SequencerStorage
from sealtrail.log.storage.memory import MemorySequencer
from sealtrail.log.storage.sqlite import SqliteSequencer
from sealtrail.merkle import leaf_hash
from tests.unit.log._support import (
    PATIENCE,
    ManualClock,
    body,
    fake_log,
    recording,
    started,
)

V1 = fake_log("v1")


def named(tag: str) -> Callable[[int], bytes]:
    """A body that names its own index (as a CT TileLeaf's leaf_index does)."""
    return lambda index: json.dumps({"tag": tag, "index": index}).encode()


def built(tag: str, *keys: tuple[str, str]) -> NewEntry:
    """A built NewEntry whose body names its index; its leaf hash is the RFC 6962 one."""
    make = named(tag)

    def build(index: int) -> tuple[bytes, bytes]:
        data = make(index)
        return leaf_hash(data), data

    return NewEntry(b"", b"", tuple(keys), build)


def plain(data: bytes, *keys: tuple[str, str]) -> NewEntry:
    return NewEntry(leaf_hash(data), data, tuple(keys))


class BuildFailed(Exception):
    """The exception a failing build raises."""


def failing(index: int) -> tuple[bytes, bytes]:
    raise BuildFailed(f"cannot build for {index}")


@pytest.fixture(params=["memory", "sqlite"])
def sequencer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SequencerStorage]:
    seq: SequencerStorage
    seq = MemorySequencer() if request.param == "memory" else SqliteSequencer(tmp_path / "s.db")
    yield seq
    seq.close()


# -- the sequencer contract -----------------------------------------------------------------


def test_a_built_entry_is_built_for_the_index_it_gets(sequencer: SequencerStorage) -> None:
    sequencer.assign([plain(b"first")], 10)
    out = sequencer.assign([plain(b"a"), built("x", ("sha256", "k")), plain(b"first"),
                            built("y")], 20)
    x, y = named("x")(2), named("y")(3)
    assert out == [Assignment(1, False, 20), Assignment(2, False, 20, (leaf_hash(x), x)),
                   Assignment(0, True, 10), Assignment(3, False, 20, (leaf_hash(y), y))]
    assert sequencer.entries(2, 4) == [SequencedEntry(2, leaf_hash(x), x, 20),
                                       SequencedEntry(3, leaf_hash(y), y, 20)]
    assert sequencer.find(leaf_hash(y)) == 3
    assert sequencer.search("sha256", "k", 10, 10) == [2]
    assert sequencer.sequenced_size() == 4


def test_built_entries_are_never_deduplicated(sequencer: SequencerStorage) -> None:
    # The same builder twice, in one batch and in the next: three entries, three indexes.
    out = sequencer.assign([built("same"), built("same")], 1)
    out += sequencer.assign([built("same")], 2)
    assert [(a.index, a.duplicate) for a in out] == [(0, False), (1, False), (2, False)]
    assert [json.loads(e.body)["index"] for e in sequencer.entries(0, 3)] == [0, 1, 2]
    # A plain entry equal to a stored built body is a duplicate of it, as any entry is.
    again = sequencer.assign([plain(named("same")(1))], 3)
    assert again == [Assignment(1, True, 1)]


def test_a_build_that_raises_fails_the_whole_batch(sequencer: SequencerStorage) -> None:
    sequencer.assign([plain(b"before")], 1)
    batch = [plain(b"a", ("sha256", "lost")), built("b"),
             NewEntry(b"", b"", (("sha256", "lost"),), failing), plain(b"c")]
    with pytest.raises(BuildFailed, match="cannot build for 3"):
        sequencer.assign(batch, 2)
    # Nothing of the batch was committed: not its entries, not its search keys.
    assert sequencer.sequenced_size() == 1
    assert sequencer.find(leaf_hash(b"a")) is None
    assert sequencer.search("sha256", "lost", 100, 10) == []
    # The indexes are free again: the next batch gets them, built for them.
    out = sequencer.assign([plain(b"a"), built("b")], 3)
    assert [a.index for a in out] == [1, 2]
    assert json.loads(sequencer.entries(2, 3)[0].body) == {"tag": "b", "index": 2}


def test_a_built_leaf_hash_already_in_the_log_fails_the_batch(
        sequencer: SequencerStorage) -> None:
    sequencer.assign([plain(b"taken")], 1)

    def collides(index: int) -> tuple[bytes, bytes]:
        return leaf_hash(b"taken"), b"taken"

    with pytest.raises(LogStorageError):
        sequencer.assign([plain(b"a"), NewEntry(b"", b"", (), collides)], 2)
    assert sequencer.sequenced_size() == 1 and sequencer.find(leaf_hash(b"a")) is None


def test_a_build_must_return_a_leaf_hash_and_a_body(sequencer: SequencerStorage) -> None:
    results: list[object] = [b"only a body", (b"short", b"body"), (leaf_hash(b"x"), b"")]
    for result in results:
        def wrong(index: int, result: object = result) -> tuple[bytes, bytes]:
            return result  # type: ignore[return-value]  # the point of the test

        with pytest.raises(LogStorageError, match="build"):
            sequencer.assign([plain(b"a"), NewEntry(b"", b"", (), wrong)], 1)
    assert sequencer.sequenced_size() == 0


# -- the engine: submit_built ---------------------------------------------------------------


def test_built_and_plain_entries_share_a_batch_and_name_their_index() -> None:
    clock = ManualClock()
    storage, seq, _ = recording(LogStorage.memory())
    engine = started(V1, storage, clock=clock, batch_max=16, batch_wait=0.005)
    try:
        first = engine.submit(body(0))
        clock.wait_for_deadline(0.005)  # the first entry opened the gathering window
        rest = [engine.submit_built(named(f"t{i}"), [("tag", "ct")]) if i % 2
                else engine.submit(body(i)) for i in range(1, 8)]
        clock.advance(0.005)
        results = [f.result(PATIENCE) for f in [first, *rest]]
        assert seq.batches == [8]  # one commit for all of them
        assert [r.index for r in results] == list(range(8))
        assert not any(r.duplicate for r in results)
        checkpoint = engine.wait_blocking(7, PATIENCE)
        assert checkpoint.size == 8
        for i in range(0, 8, 2):
            assert engine.entry(i).body == body(i)
        for i in range(1, 8, 2):
            stored = engine.entry(i).body
            assert json.loads(stored) == {"tag": f"t{i}", "index": i}
            assert engine.find(leaf_hash(stored)) == i
        assert engine.search("tag", "ct") == [1, 3, 5, 7]
    finally:
        engine.close()


def test_a_failing_build_fails_its_batch_and_the_log_goes_on() -> None:
    clock = ManualClock()
    engine = started(V1, LogStorage.memory(), clock=clock, batch_max=16, batch_wait=0.005)
    try:
        first = engine.submit(body(0))
        clock.wait_for_deadline(0.005)
        doomed = [engine.submit_built(named("a")),
                  engine.submit_built(lambda index: failing(index)[1]),
                  engine.submit(body(1))]
        clock.advance(0.005)
        for future in [first, *doomed]:
            error = future.exception(PATIENCE)
            assert isinstance(error, LogStorageError)
            assert "BuildFailed" in str(error.actual)
        # The writer backs off; the next entry ends that and gets the same index.
        clock.wait_for_deadline(0.05)
        later = engine.submit_built(named("b"))
        clock.wait_for_deadline(0.005)
        clock.advance(0.005)
        assert later.result(PATIENCE).index == 0
        engine.wait_blocking(0, PATIENCE)
        assert json.loads(engine.entry(0).body) == {"tag": "b", "index": 0}
    finally:
        engine.close()


def test_a_built_body_the_log_cannot_hold_fails_its_batch() -> None:
    engine = started(V1, LogStorage.memory())
    try:
        for wrong in (b"", b"x" * 65536):
            def build(index: int, data: bytes = wrong) -> bytes:
                return data

            future = engine.submit_built(build)
            assert isinstance(future.exception(PATIENCE), LogEntryInvalidError)
        assert engine.submit_built(named("fine")).result(PATIENCE).index == 0
    finally:
        engine.close()


def test_submit_built_refuses_at_once_when_the_log_cannot_take_it() -> None:
    engine = started(V1, LogStorage.memory())
    engine.close()
    with pytest.raises(LogError, match="closed"):
        engine.submit_built(named("late"))
