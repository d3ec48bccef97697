"""CTLogService.append, the CA's sequencing step, on in-memory storage.

The index built into an entry is the index it gets; an append whose commit did not come in
time answers 503, and the next append waits for that entry's fate before choosing its index;
a failed commit frees the index again; a closed log is a 503.
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

    def assign(self, entries: Sequence[NewEntry], integrated_time: int) -> list[Assignment]:
        self.entered.set()
        if not self.gate.wait(PATIENCE):
            raise LogStorageError("the test never opened the gate")
        if self.failing:
            raise LogStorageError("simulated failure")
        result: list[Assignment] = self._inner.assign(entries, integrated_time)
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


def test_a_commit_not_done_in_time_is_a_503_and_its_index_is_not_reused(
        service: tuple[CTLogService, GatedSequencer]) -> None:
    log, sequencer = service
    assert log.append(builder(b"a")) == 0
    sequencer.gate.clear()
    sequencer.entered.clear()
    log.timeout = 0.2  # the gate is closed: these two cannot finish, however fast the machine
    with pytest.raises(ServiceUnavailableError, match="in time"):
        log.append(builder(b"slow"))
    assert sequencer.entered.is_set()  # the entry reached the sequencer and waits there
    # Still undecided: the next append cannot choose an index either.
    with pytest.raises(ServiceUnavailableError, match="earlier entry"):
        log.append(builder(b"b"))
    log.timeout = PATIENCE
    sequencer.gate.set()
    # The slow entry was committed at 1 (the index built into it): the next one is 2.
    assert log.append(builder(b"c")) == 2
    log.engine.wait_blocking(2, PATIENCE)
    leaf, _ = read_tile_leaf(log.engine.entry(1).body)
    assert leaf.leaf_index == 1 and leaf.tbs == b"slow"


def test_a_failed_commit_frees_the_index(service: tuple[CTLogService, GatedSequencer]) -> None:
    log, sequencer = service
    assert log.append(builder(b"a")) == 0
    sequencer.failing = True
    with pytest.raises(ServiceUnavailableError, match="cannot sequence") as info:
        log.append(builder(b"lost"))
    assert "simulated failure" in str(info.value.actual)
    sequencer.failing = False
    assert log.append(builder(b"b")) == 1


def test_a_closed_log_is_a_503(service: tuple[CTLogService, GatedSequencer]) -> None:
    log, _ = service
    log.close()
    with pytest.raises(ServiceUnavailableError, match="cannot sequence"):
        log.append(builder(b"late"))
