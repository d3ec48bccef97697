"""Shared helpers for the log engine tests: keys, wrappers that record or inject faults.

The wrappers implement the real storage protocols and delegate to a real driver, so the
engine runs its ordinary code paths (docs/architecture.md habit 9).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from sealtrail.log import LogConfig, LogEngine, LogStorage
from sealtrail.log.storage import (
    Assignment,
    IntegrationState,
    NewEntry,
    SequencedEntry,
    SequencerStorage,
    TileStore,
)
from sealtrail.merkle import verify_consistency
from sealtrail.verify._checkpoint import verify_checkpoint
from tests.fakes.notes import FakeLog, make_ecdsa_log, make_ed25519_log

V1_URL = "https://rekor.example"
V2_URL = "https://log2026-1.example"


def fake_log(kind: str) -> FakeLog:
    """A v1 (ECDSA P-256, origin "<host> - <tree id>") or v2 (Ed25519, origin = host) log."""
    if kind == "v1":
        return make_ecdsa_log(V1_URL, tree_id=1234)
    return make_ed25519_log(V2_URL)


def config(fake: FakeLog, **options: Any) -> LogConfig:
    """A LogConfig for the fake log's key and names."""
    return LogConfig(origin=fake.origin, key_name=fake.name, private_key=fake.private_key,
                     **options)


def body(i: int, tag: str = "") -> bytes:
    """A distinct entry body."""
    return f'{{"entry":{i},"tag":"{tag}"}}'.encode()


class Crash(BaseException):
    """Kills the writer thread where it is raised, like a process dying there."""


class RecordingSequencer:
    """Delegates to a real sequencer; records every saved state (= published checkpoint).

    ``fault(operation)`` may return an exception to raise before the operation runs.
    """

    def __init__(self, inner: SequencerStorage,
                 fault: Callable[[str], BaseException | None] | None = None) -> None:
        self.inner = inner
        self.fault = fault
        self.states: list[IntegrationState] = []
        self._lock = threading.Lock()

    def _maybe_fail(self, operation: str) -> None:
        if self.fault is not None:
            exc = self.fault(operation)
            if exc is not None:
                raise exc

    def bind(self, origin: str) -> None:
        self.inner.bind(origin)

    def assign(self, entries: Sequence[NewEntry], integrated_time: int) -> list[Assignment]:
        self._maybe_fail("assign")
        result = self.inner.assign(entries, integrated_time)
        self._maybe_fail("assign-after")
        return result

    def sequenced_size(self) -> int:
        return self.inner.sequenced_size()

    def entries(self, start: int, end: int) -> list[SequencedEntry]:
        return self.inner.entries(start, end)

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        return self.inner.leaf_hashes(start, end)

    def find(self, leaf_hash: bytes) -> int | None:
        return self.inner.find(leaf_hash)

    def search(self, kind: str, value: str, below: int, limit: int) -> list[int]:
        return self.inner.search(kind, value, below, limit)

    def load_state(self) -> IntegrationState | None:
        return self.inner.load_state()

    def save_state(self, state: IntegrationState, *, sync: bool = True) -> None:
        self._maybe_fail("save_state")
        self.inner.save_state(state, sync=sync)
        with self._lock:
            self.states.append(state)
        self._maybe_fail("save_state-after")

    def close(self) -> None:
        self.inner.close()


class FaultyTileStore:
    """Delegates to a real tile store; ``fault(operation, paths)`` may inject an error.

    ``operation`` is "write", "delete" or "sync".
    """

    def __init__(self, inner: TileStore,
                 fault: Callable[[str, list[str]], BaseException | None] | None = None) -> None:
        self.inner = inner
        self.fault = fault
        self.writes: list[list[str]] = []

    def _maybe_fail(self, operation: str, paths: list[str]) -> None:
        if self.fault is not None:
            exc = self.fault(operation, paths)
            if exc is not None:
                raise exc

    def read(self, path: str) -> bytes | None:
        return self.inner.read(path)

    def write_many(self, objects: Sequence[tuple[str, bytes]]) -> None:
        paths = [p for p, _ in objects]
        self._maybe_fail("write", paths)
        self.inner.write_many(objects)
        self.writes.append(paths)

    def delete_partials(self, full_path: str) -> None:
        self._maybe_fail("delete", [full_path])
        self.inner.delete_partials(full_path)

    def sync(self, paths: Sequence[str]) -> None:
        self._maybe_fail("sync", list(paths))
        self.inner.sync(paths)

    def close(self) -> None:
        self.inner.close()


def recording(storage: LogStorage, seq_fault: Any = None, tile_fault: Any = None
              ) -> tuple[LogStorage, RecordingSequencer, FaultyTileStore]:
    """Wrap both drivers of ``storage``."""
    seq = RecordingSequencer(storage.sequencer, seq_fault)
    tiles = FaultyTileStore(storage.tiles, tile_fault)
    return LogStorage(seq, tiles), seq, tiles


def check_all_consistent(fake: FakeLog, notes: Sequence[str], engine: LogEngine) -> int:
    """Every note verifies, and the engine proves every pair of them consistent.

    Returns the number of pairs checked.
    """
    checkpoints = sorted({(c.size, c.root_hash) for c in
                          (verify_checkpoint(n, fake.log) for n in notes)})
    sizes = [s for s, _ in checkpoints]
    assert len(sizes) == len(set(sizes)), "two different roots for one tree size"
    pairs = 0
    for i, (old_size, old_root) in enumerate(checkpoints):
        for new_size, new_root in checkpoints[i:]:
            proof = engine.consistency_proof(old_size, new_size)
            verify_consistency(old_size, new_size, proof, old_root, new_root)
            pairs += 1
    return pairs


__all__ = [
    "Crash",
    "FaultyTileStore",
    "RecordingSequencer",
    "V1_URL",
    "V2_URL",
    "body",
    "check_all_consistent",
    "config",
    "fake_log",
    "recording",
]
