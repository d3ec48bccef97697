"""Shared helpers for the log engine tests: keys, wrappers that record or inject faults.

The wrappers implement the real storage protocols and delegate to a real driver, so the
engine runs its ordinary code paths (docs/architecture.md habit 9).
"""

from __future__ import annotations

import concurrent.futures
import math
import threading
from collections.abc import Callable, Sequence
from typing import Any

from sealtrail.log import LogConfig, LogEngine, LogStorage
from sealtrail.log.clock import SYSTEM_CLOCK, Clock
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


# A bound on how long a test waits for the engine's threads to reach a state it needs.
# Never reached when the code works, whatever the load: a safety net, not a schedule.
PATIENCE = 60.0


class ManualClock:
    """A :class:`sealtrail.log.clock.Clock` that moves only when the test calls advance().

    The engine's threads sleep in :meth:`wait_until`; :meth:`advance` wakes them all, and
    :meth:`wait_for_sleepers` waits until they are asleep again, i.e. until the engine
    has done everything the new time made due. Sleepers register under the clock's lock
    and advance() reads them under the same lock, so no wake-up is lost: a sleeper that
    registers after an advance already sees the new time.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._lock = threading.Condition()
        self._time = start
        self._monotonic = 1000.0  # unrelated to the wall time, as on a real machine
        self._advances = 0
        # sleeper -> (its condition, its deadline, the advance count when it fell asleep)
        self._sleepers: dict[object, tuple[threading.Condition, float | None, int]] = {}

    def time(self) -> float:
        with self._lock:
            return self._time

    def monotonic(self) -> float:
        with self._lock:
            return self._monotonic

    def wait_until(self, condition: threading.Condition, deadline: float | None) -> None:
        token = object()
        with self._lock:
            if deadline is not None and self._monotonic >= deadline:
                return
            self._sleepers[token] = (condition, deadline, self._advances)
            self._lock.notify_all()
        try:
            condition.wait()  # the caller holds it: advance() notifies once we are inside
        finally:
            with self._lock:
                del self._sleepers[token]
                self._lock.notify_all()

    def advance(self, seconds: float) -> None:
        """Move both clocks forward and wake every sleeper."""
        with self._lock:
            self._time += seconds
            self._monotonic += seconds
            self._advances += 1
            conditions = {id(c): c for c, _, _ in self._sleepers.values()}
        for condition in conditions.values():
            with condition:
                condition.notify_all()

    def _settled(self) -> list[float | None]:
        """Deadlines of the threads asleep since the last advance()."""
        return [d for _, d, n in self._sleepers.values() if n == self._advances]

    def wait_for_deadline(self, offset: float) -> None:
        """Wait until a thread sleeps with its deadline ``offset`` seconds from now."""
        def found() -> bool:
            return any(d is not None and math.isclose(d - self._monotonic, offset,
                                                      abs_tol=1e-9)
                       for _, d, _ in self._sleepers.values())

        with self._lock:
            assert self._lock.wait_for(found, PATIENCE), \
                f"no thread went to sleep for {offset} s"

    def wait_for_sleepers(self, count: int = 1) -> list[float | None]:
        """Wait until ``count`` threads sleep that fell asleep after the last advance().

        Returns their deadlines as offsets from now (None: no deadline), soonest first.
        """
        with self._lock:
            ok = self._lock.wait_for(lambda: len(self._settled()) >= count, PATIENCE)
            assert ok, f"the engine did not go back to sleep ({len(self._sleepers)} asleep)"
            return sorted((None if d is None else d - self._monotonic
                           for d in self._settled()), key=lambda d: (d is None, d or 0.0))


class Crash(BaseException):
    """Kills the writer thread where it is raised, like a process dying there."""


class CrashWatch:
    """Learns when the simulated crash killed a thread; waits for it, or for progress."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._died = False

    def set(self) -> None:
        with self._cond:
            self._died = True
            self._cond.notify_all()

    def is_set(self) -> bool:
        with self._cond:
            return self._died

    def clear(self) -> None:
        with self._cond:
            self._died = False

    def wait(self, timeout: float = PATIENCE) -> bool:
        """Whether a thread died (waiting at most ``timeout`` for it)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._died, timeout)

    def wait_or(self, future: concurrent.futures.Future[Any]) -> bool:
        """Wait until a thread died (True) or ``future`` is done (False)."""
        def poke(_: object) -> None:
            with self._cond:
                self._cond.notify_all()

        future.add_done_callback(poke)
        with self._cond:
            assert self._cond.wait_for(lambda: self._died or future.done(), PATIENCE), \
                "neither progress nor the simulated crash"
            return self._died


class RecordingSequencer:
    """Delegates to a real sequencer; records every saved state (= published checkpoint).

    ``fault(operation)`` may return an exception to raise before the operation runs.
    """

    def __init__(self, inner: SequencerStorage,
                 fault: Callable[[str], BaseException | None] | None = None) -> None:
        self.inner = inner
        self.fault = fault
        self.states: list[IntegrationState] = []
        self.batches: list[int] = []  # the size of every batch assigned
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
        with self._lock:
            self.batches.append(len(entries))
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

    def search(self, kind: str, value: str, below: int, limit: int, *,
               start: int = 0) -> list[int]:
        return self.inner.search(kind, value, below, limit, start=start)

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


def started(fake: FakeLog, storage: LogStorage | None = None, *,
            clock: Clock = SYSTEM_CLOCK, **options: Any) -> LogEngine:
    """An open, started engine for ``fake`` (memory storage unless given)."""
    engine = LogEngine.open(config(fake, **options), storage or LogStorage.memory(),
                            clock=clock)
    engine.start()
    return engine


def abandon(engine: LogEngine) -> None:
    """The process is gone: stop the writer and the syncer with no final barrier and no
    state record (a writer left idling would outlive the test, and later tests that fork
    refuse to). A writer killed by :class:`Crash` is already gone."""
    writer = engine._writer
    with writer._cond:
        writer._stopping = True  # the writer leaves at its next wait, writing nothing more
        writer._cond.notify_all()
    thread = writer._thread
    if thread is not None:
        thread.join(PATIENCE)
        assert not thread.is_alive(), "the abandoned writer did not stop"
    engine._syncer.stop()


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
    "PATIENCE",
    "Crash",
    "CrashWatch",
    "ManualClock",
    "abandon",
    "FaultyTileStore",
    "RecordingSequencer",
    "V1_URL",
    "V2_URL",
    "body",
    "check_all_consistent",
    "config",
    "fake_log",
    "recording",
    "started",
]
