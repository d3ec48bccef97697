"""CTLogService.append, the CA's sequencing step, on in-memory storage.

The index built into an entry is the index it gets, also when many threads append at once
(their entries share a commit); an append whose commit did not come in time answers 503 and
the log goes on; a failed commit frees the index again; an entry the log cannot hold fails
its caller alone, before it reaches the log; a closed log is a 503.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from sealtrail.ca.ctlog import (
    leaf_index_extension,
    merkle_leaf_hash,
    read_tile_leaf,
    tile_leaf,
    timestamped_entry,
)
from sealtrail.ca.keys import create_ca, create_ct_key
from sealtrail.errors import LogStorageError, ServiceUnavailableError
from sealtrail.log.storage import Assignment, LogStorage, NewEntry
from sealtrail.server.ct_log import CTLogService, ct_log_origin

PATIENCE = 60.0


def builder(tag: bytes) -> Callable[[int], bytes]:
    def build(index: int) -> bytes:
        entry = timestamped_entry(1, b"k" * 32, tag, leaf_index_extension(index))
        return tile_leaf(entry, b"precert-" + tag, [])
    return build


class GatedSequencer:
    """The memory sequencer; assign() waits for ``gate`` and fails while ``failing``."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.failing = False
        self.batches: list[int] = []  # the size of every batch committed

    def assign(self, entries: Sequence[NewEntry], integrated_time: int) -> list[Assignment]:
        self.entered.set()
        if not self.gate.wait(PATIENCE):
            raise LogStorageError("the test never opened the gate")
        if self.failing:
            raise LogStorageError("simulated failure")
        result: list[Assignment] = self._inner.assign(entries, integrated_time)
        self.batches.append(len(entries))
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.fixture
def service() -> Iterator[tuple[CTLogService, GatedSequencer]]:
    storage = LogStorage.memory()
    sequencer = GatedSequencer(storage.sequencer)
    material = create_ca("sealtrail.test", "CT service test CA")
    opened = CTLogService.open(LogStorage(sequencer, storage.tiles), create_ct_key(),
                               "ct.test/ct", material.chain, timeout=PATIENCE)
    yield opened, sequencer
    sequencer.gate.set()
    opened.close()


def test_origin_is_the_prefix_without_scheme() -> None:
    assert ct_log_origin("https://sealtrail.example") == "sealtrail.example/ct"
    assert ct_log_origin("http://127.0.0.1:8080/") == "127.0.0.1:8080/ct"
    assert ct_log_origin("https://example.com/sigstore") == "example.com/sigstore/ct"


def test_each_entry_gets_the_index_built_into_it(
        service: tuple[CTLogService, GatedSequencer]) -> None:
    log, _ = service
    assert [log.append(builder(bytes([i]))) for i in range(5)] == [0, 1, 2, 3, 4]
    checkpoint = log.engine.wait_blocking(4, PATIENCE)
    for index in range(5):
        stored = log.engine.entry(index)
        leaf, _ = read_tile_leaf(stored.body)
        assert leaf.leaf_index == index
        assert log.engine.find(merkle_leaf_hash(stored.body)) == index
    assert checkpoint.size == 5


def test_concurrent_appends_share_a_commit_and_each_names_its_index(
        service: tuple[CTLogService, GatedSequencer]) -> None:
    log, sequencer = service
    sequencer.gate.clear()
    appended: dict[bytes, int] = {}
    errors: list[BaseException] = []

    def append(tag: bytes) -> None:
        try:
            appended[tag] = log.append(builder(tag))
        except BaseException as exc:  # reported below
            errors.append(exc)

    # One append holds the sequencer; the others queue behind it and form the next batch.
    threads = [threading.Thread(target=append, args=(b"first",))]
    threads[0].start()
    assert sequencer.entered.wait(PATIENCE)
    # Told by the writer's queue itself when each append is in it.
    queued = threading.Condition()
    enqueue = log.engine._writer.enqueue

    def enqueue_and_tell(*args: Any) -> None:
        enqueue(*args)
        with queued:
            queued.notify_all()

    setattr(log.engine._writer, "enqueue", enqueue_and_tell)  # an instance attribute
    threads += [threading.Thread(target=append, args=(bytes([65 + i]),)) for i in range(8)]
    for thread in threads[1:]:
        thread.start()
    with queued:
        assert queued.wait_for(lambda: len(log.engine._writer._pending) == 8, PATIENCE), \
            "the appends did not queue"
    sequencer.gate.set()
    for thread in threads:
        thread.join(PATIENCE)
    assert not errors
    assert sorted(appended.values()) == list(range(9))
    assert sequencer.batches == [1, 8]
    log.engine.wait_blocking(8, PATIENCE)
    for tag, index in appended.items():
        leaf, _ = read_tile_leaf(log.engine.entry(index).body)
        assert leaf.leaf_index == index and leaf.tbs == tag


def test_a_commit_not_done_in_time_is_a_503_and_the_log_goes_on(
        service: tuple[CTLogService, GatedSequencer]) -> None:
    log, sequencer = service
    assert log.append(builder(b"a")) == 0
    sequencer.gate.clear()
    sequencer.entered.clear()
    log.timeout = 0.2  # the gate is closed: this cannot finish, however fast the machine
    with pytest.raises(ServiceUnavailableError, match="in time"):
        log.append(builder(b"slow"))
    assert sequencer.entered.is_set()  # the entry reached the sequencer and waits there
    log.timeout = PATIENCE
    sequencer.gate.set()
    # The slow entry is committed at 1, unpromised but named for its index; no guess is
    # involved, so the next append simply gets 2.
    assert log.append(builder(b"c")) == 2
    log.engine.wait_blocking(2, PATIENCE)
    leaf, _ = read_tile_leaf(log.engine.entry(1).body)
    assert leaf.leaf_index == 1 and leaf.tbs == b"slow"


def test_a_failed_commit_is_a_503_and_frees_the_index(
        service: tuple[CTLogService, GatedSequencer]) -> None:
    log, sequencer = service
    assert log.append(builder(b"a")) == 0
    sequencer.failing = True
    with pytest.raises(ServiceUnavailableError, match="cannot sequence") as info:
        log.append(builder(b"lost"))
    assert "simulated failure" in str(info.value.actual)
    sequencer.failing = False
    assert log.append(builder(b"b")) == 1


def test_an_entry_the_log_cannot_hold_fails_its_caller_alone(
        service: tuple[CTLogService, GatedSequencer]) -> None:
    log, sequencer = service
    with pytest.raises(ValueError, match="bytes"):
        log.append(lambda index: b"x" * 70_000)
    with pytest.raises(ValueError, match="leaf index"):
        log.append(lambda index: leaf_index_extension(-1))
    assert sequencer.batches == []
    assert log.append(builder(b"fine")) == 0


def test_a_closed_log_is_a_503(service: tuple[CTLogService, GatedSequencer]) -> None:
    log, _ = service
    log.close()
    with pytest.raises(ServiceUnavailableError, match="cannot sequence"):
        log.append(builder(b"late"))
