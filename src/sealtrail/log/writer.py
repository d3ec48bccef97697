"""The write path: one writer thread per log sequences, integrates and publishes.

The loop (docs/adr/0004, decision 3)::

    gather a batch -> sequence it (ONE durable transaction) -> acknowledge the adds
                   -> integrate the new leaves into tiles (atomic writes, not fsynced)
                   -> sign the checkpoint -> record it (not fsynced) -> wake waiters

and, while idle, re-signs (and durably records) the checkpoint every
``checkpoint_interval``. The only fsync on that path is the sequencing commit; it also
makes the previous cycle's state record durable. After each cycle the writer lets the
:class:`~sealtrail.log.tile_sync.TileSyncer` cut a barrier if one is due. Nothing is
acknowledged before the sequencer committed it, so a crash at any point is repaired by
recovery at the next open. Every wait (batching window, checkpoint cadence, back-off) is
on the engine's :class:`~sealtrail.log.clock.Clock`.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import NamedTuple

from sealtrail.errors import (
    Error,
    LogEntryNotFoundError,
    LogError,
    LogOverloadedError,
    LogStorageError,
    UsageError,
)
from sealtrail.log._integrate import Edge, integrate
from sealtrail.log.clock import Clock
from sealtrail.log.config import LogConfig, is_int
from sealtrail.log.reader import LogReader, PublishedCheckpoint, Snapshot
from sealtrail.log.storage.protocols import (
    Assignment,
    IntegrationState,
    NewEntry,
    SequencerStorage,
    TileStore,
)
from sealtrail.log.tile_io import TileIO
from sealtrail.log.tile_sync import TileSyncer
from sealtrail.log.waiters import CheckpointWaiters, Dispatch, Target
from sealtrail.models.checkpoint import Checkpoint

__all__ = ["AddResult", "Writer", "add_result", "storage_error"]

_log = logging.getLogger("sealtrail.log")

# Back-off after a failed writer cycle (storage down): doubles up to the cap.
_BACKOFF_FIRST = 0.05
_BACKOFF_CAP = 1.0
_MAX_INT64 = 2**63 - 1


class AddResult(NamedTuple):
    """Where an entry landed. ``integrated_time``: unix seconds when first sequenced."""

    index: int  # type: ignore[assignment]  # a field named like tuple.index
    duplicate: bool
    integrated_time: int


def add_result(assignment: Assignment) -> AddResult:
    """What a caller learns of its entry's assignment."""
    return AddResult(assignment.index, assignment.duplicate, assignment.integrated_time)


class _Pending:
    __slots__ = ("entry", "future")

    def __init__(self, entry: NewEntry, future: Target) -> None:
        self.entry = entry
        self.future = future


def storage_error(exc: BaseException, what: str) -> LogError:
    """``exc`` as a log error: a storage driver's own exception becomes LogStorageError."""
    if isinstance(exc, LogError):
        return exc
    return LogStorageError(f"{what} failed", actual=f"{type(exc).__name__}: {exc}")


class Writer:
    """The queue of entries to sequence, the writer thread, and what it publishes.

    One condition guards the queue, the checkpoint waiters, the lifecycle flags and the
    counts callers look at (sequenced size, backlog), so that a caller registering and
    the writer publishing never miss each other. The edge and the unintegrated entries
    are changed by the writer thread only (or by open() before it starts).
    """

    def __init__(self, config: LogConfig, seq: SequencerStorage, tiles: TileStore,
                 io: TileIO, reader: LogReader, syncer: TileSyncer, clock: Clock) -> None:
        self._config = config
        self._seq = seq
        self._tiles = tiles
        self._io = io
        self._reader = reader
        self._syncer = syncer
        self._clock = clock
        self._cond = threading.Condition()
        self._pending: deque[_Pending] = deque()
        self._waiters = CheckpointWaiters()
        self._thread: threading.Thread | None = None
        self._accepting = not config.frozen
        self._stopping = False
        self._closed = False
        # The edge of the integrated tree, entries sequenced but not integrated yet
        # (leaf, body), and the number of sequenced entries.
        self._edge = Edge.empty()
        self._unintegrated: list[tuple[bytes, bytes]] = []
        self._sequenced = 0
        # Results for coroutine callers, delivered in bulk: one Dispatch per thread that
        # resolves callers (the writer; a replica's coordinator; open()).
        self._dispatches = threading.local()
        # Set by wake(): the writer ends its wait at once, even with no entry queued.
        self._woken = False

    @property
    def _dispatch(self) -> Dispatch:
        """This thread's :class:`Dispatch` (each thread flushes its own)."""
        dispatch: Dispatch | None = getattr(self._dispatches, "dispatch", None)
        if dispatch is None:
            dispatch = self._dispatches.dispatch = Dispatch()
        return dispatch

    # -- lifecycle ----------------------------------------------------------------------

    def resume(self, edge: Edge, sequenced: int) -> PublishedCheckpoint:
        """At open, before the thread starts: continue from a recovered edge, and publish."""
        self._edge = edge
        self._sequenced = sequenced
        return self.publish(edge, sync=True)

    def start(self) -> None:
        """Start the syncer and the writer thread (a no-op for a frozen log)."""
        with self._cond:
            if self._closed:
                raise LogError("the log is closed")
            if self._thread is not None or self._config.frozen:
                return
            self._syncer.start()
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"sealtrail-log[{self._config.origin}]")
            self._thread.start()

    def stop(self) -> bool:
        """Refuse new entries, let the thread drain the queue, then record the state.

        Returns False if the writer was already stopped (close() is idempotent).
        """
        with self._cond:
            if self._closed:
                return False
            self._closed = True
            self._accepting = False
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()
            self._final_barrier()
        return True

    def _final_barrier(self) -> None:
        """Once the thread stopped: sync the rest, record the state durably."""
        cp = self._reader.current().checkpoint
        if not self._syncer.close(cp.size):
            return
        try:
            self._seq.save_state(IntegrationState(cp.size, cp.root_hash, cp.note,
                                                  cp.published_at,
                                                  min(self._syncer.durable_size, cp.size)))
        except Exception as exc:  # the state is re-derivable; only a slower next open
            _log.error("could not record the final log state: %s", exc)

    def fail_waiting(self, error: LogError) -> None:
        """Fail every queued entry and checkpoint waiter left (the log is closed)."""
        with self._cond:
            pending, self._pending = list(self._pending), deque()
            waiters = self._waiters.drain()
        dispatch = Dispatch()
        for item in pending:
            dispatch.resolve(item.future, error=error)
        for target in waiters:
            dispatch.resolve(target, error=error)
        dispatch.flush()

    # -- callers ------------------------------------------------------------------------

    def enqueue(self, entry: NewEntry, future: Target) -> None:
        """Queue a checked entry for the writer; raises if closed or overloaded."""
        with self._cond:
            if not self._accepting:
                raise LogError("the log is closed")
            backlog = len(self._pending) + self._unintegrated_count()
            if backlog >= self._config.max_pending:
                raise LogOverloadedError("too many entries are waiting; retry later",
                                         actual=backlog,
                                         expected=f"< {self._config.max_pending}")
            self._pending.append(_Pending(entry, future))
            # Wake the writer only when it has something new to do: a first entry, or a
            # full batch; otherwise it is sleeping out its gathering window anyway.
            if len(self._pending) in (1, self._config.batch_max):
                self._cond.notify_all()

    def backlog(self) -> int:
        """Entries queued or sequenced but not yet covered by a published checkpoint."""
        with self._cond:
            return len(self._pending) + self._unintegrated_count()

    def _unintegrated_count(self) -> int:
        """Entries sequenced but not yet in a published checkpoint (under the condition)."""
        return len(self._unintegrated)

    def register_waiter(self, index: int, target: Target) -> PublishedCheckpoint | None:
        """The covering checkpoint if there is one already, else queue ``target`` for it."""
        if not is_int(index) or not 0 <= index <= _MAX_INT64:
            raise UsageError("index must be a non-negative integer", actual=index)
        with self._cond:
            snap = self._reader.current()
            if index < snap.checkpoint.size:
                return snap.checkpoint
            if index >= self._sequenced:
                raise LogEntryNotFoundError("no entry has this index", actual=index,
                                            expected=f"< {self._sequenced}")
            if self._closed:
                raise LogError("the log is closed")
            self._waiters.add(index, target)
        return None

    # -- the thread ---------------------------------------------------------------------

    def _run(self) -> None:
        clock = self._clock
        interval = self._config.checkpoint_interval
        next_checkpoint = clock.monotonic() + interval
        failures = 0
        while True:
            # Entries left unintegrated by a failed cycle are retried at once (the failure
            # already slept its back-off), not at the next checkpoint tick.
            batch = self._gather(self._wake_at(next_checkpoint))
            if batch is None:
                break
            try:
                if batch:
                    self._sequence(batch)
                next_checkpoint = self._integrate_or_resign(next_checkpoint, interval)
                failures = 0
                self._dispatch.flush()  # e.g. a batch of duplicates publishes nothing
                self._syncer.tick(self._edge.size)
            except Exception as exc:  # keep the writer alive whatever happens
                self._dispatch.flush()  # acknowledgements of a batch committed before
                failures += 1
                delay = min(_BACKOFF_CAP, _BACKOFF_FIRST * 2 ** (failures - 1))
                _log.error("log writer cycle failed (%s); retrying in %.2f s",
                           exc if isinstance(exc, Error) else repr(exc), delay,
                           exc_info=not isinstance(exc, Error))
                with self._cond:
                    if not self._stopping:
                        clock.wait_until(self._cond, clock.monotonic() + delay)
                    elif not self._pending:
                        break
        _log.debug("log writer for %s stopped", self._config.origin)

    def wake(self) -> None:
        """End the writer's current wait (hold the condition): it has work besides entries."""
        self._woken = True
        self._cond.notify_all()

    def _wake_at(self, next_checkpoint: float) -> float:
        """When the writer must wake without new entries (clock monotonic seconds)."""
        return self._clock.monotonic() if self._unintegrated else next_checkpoint

    def _integrate_or_resign(self, next_checkpoint: float, interval: float) -> float:
        """After a batch: integrate what waits, or re-sign when idle; the next deadline."""
        clock = self._clock
        if self._unintegrated:
            self._integrate_pending()
            return clock.monotonic() + interval
        if clock.monotonic() >= next_checkpoint:
            # Idle: re-sign, and record the state durably (the cycles above save it with
            # sync=False, made durable by the next commit, which idles).
            self.publish(self._edge, sync=True)
            return clock.monotonic() + interval
        return next_checkpoint

    def _gather(self, deadline: float) -> list[_Pending] | None:
        """The next batch; [] when the checkpoint deadline passes; None to stop.

        After the first entry, the batch gathers for ``batch_wait`` more (clock) seconds
        unless it fills up first.
        """
        cfg = self._config
        clock = self._clock
        with self._cond:
            while not self._pending:
                if self._stopping:
                    return None
                if self._woken or clock.monotonic() >= deadline:
                    self._woken = False
                    return []
                clock.wait_until(self._cond, deadline)
            if cfg.batch_wait > 0 and len(self._pending) < cfg.batch_max \
                    and not self._stopping:
                end = clock.monotonic() + cfg.batch_wait
                while len(self._pending) < cfg.batch_max and not self._stopping:
                    if clock.monotonic() >= end:
                        break
                    clock.wait_until(self._cond, end)
            count = min(cfg.batch_max, len(self._pending))
            return [self._pending.popleft() for _ in range(count)]

    def _sequence(self, batch: list[_Pending]) -> None:
        """Commit one batch, then acknowledge it. Nothing is acknowledged on failure."""
        assignments = self._commit(batch)
        expected = self._edge.size + len(self._unintegrated)
        fresh = [(a, p) for a, p in zip(assignments, batch) if not a.duplicate]
        consistent = all(a.index == expected + i and (p.entry.build is None or a.built)
                         for i, (a, p) in enumerate(fresh))
        with self._cond:
            if consistent:
                # A built entry is integrated as the sequencer stored it (built for its index).
                self._unintegrated.extend(a.built or (p.entry.leaf_hash, p.entry.body)
                                          for a, p in fresh)
            self._sequenced = max(self._sequenced,
                                  max((a.index + 1 for a in assignments), default=0))
        # Coroutine callers get their acknowledgement with this cycle's checkpoint, in ONE
        # wake-up of their loop (the writer flushes after publishing, or on failure);
        # threads are resolved at once.
        for assignment, item in zip(assignments, batch):
            self._dispatch.resolve(item.future, add_result(assignment))
        if not consistent:
            # Someone else appended to the sequencer: take the truth from it.
            _log.error("sequencer indexes are not contiguous with this engine's view; "
                       "reloading unintegrated entries from the sequencer")
            self._reload_unintegrated()

    def _commit(self, batch: list[_Pending]) -> list[Assignment]:
        """Sequence ``batch`` in one durable transaction; on failure fail every caller.

        Built entries are built by the sequencer inside that transaction, so a build that
        raises fails the whole batch too (nothing committed, every caller gets the error).
        """
        try:
            assignments = self._seq.assign([p.entry for p in batch], int(self._clock.time()))
            if len(assignments) != len(batch):
                raise LogStorageError("the sequencer returned the wrong number of indexes",
                                      actual=len(assignments), expected=len(batch))
        except Exception as exc:
            # The project's own errors reach the callers as they are (a built body the log
            # cannot hold is the caller's LogEntryInvalidError); anything else is storage.
            error = exc if isinstance(exc, Error) else storage_error(exc, "sequencing a batch")
            dispatch = Dispatch()
            for item in batch:
                dispatch.resolve(item.future, error=error)
            dispatch.flush()
            raise error from exc
        return assignments

    def _reload_unintegrated(self) -> None:
        sequenced = self._seq.sequenced_size()
        rows = self._seq.entries(self._edge.size, sequenced)
        if len(rows) != sequenced - self._edge.size:
            raise LogStorageError("the sequencer has a gap in its indexes")
        with self._cond:
            self._unintegrated = [(r.leaf_hash, r.body) for r in rows]
            self._sequenced = sequenced

    def _integrate_pending(self) -> None:
        items = list(self._unintegrated)
        old = self._edge
        result = integrate(old, [leaf for leaf, _ in items], [body for _, body in items])
        self._syncer.add(self._io.write(result.writes))
        for level, index, rows in result.expanded:
            self._io.cache.put(level, index, rows)
        self.publish(result.edge, result.root)
        with self._cond:
            self._edge = result.edge
            del self._unintegrated[:len(items)]

    def publish(self, edge: Edge, root: bytes | None = None, *,
                sync: bool = False) -> PublishedCheckpoint:
        """Sign, record, expose, and wake the waiters the new size covers.

        The state is saved with ``sync=False`` on the busy path: the next batch's commit
        makes it durable, and a crash that loses it loses nothing that open() cannot
        re-derive (the published tree is a function of the committed entries).
        """
        if root is None:
            snap = self._reader.snapshot
            root = (snap.checkpoint.root_hash if snap is not None and snap.edge is edge
                    else edge.root())
        body = Checkpoint(self._config.origin, edge.size, root).to_body()
        now = self._clock.time()
        note = self._config.sign_checkpoint(body, now)
        self._save_state(IntegrationState(edge.size, root, note, now,
                                          min(self._syncer.durable_size, edge.size)),
                         sync=sync)
        # The static copy for file servers and CDNs; the sequencer's record is the truth.
        self._tiles.write_many([("checkpoint", note.encode("utf-8"))])
        return self.expose(PublishedCheckpoint(edge.size, root, note, now), edge)

    def _save_state(self, state: IntegrationState, *, sync: bool) -> None:
        """Record the state a checkpoint is published for."""
        self._seq.save_state(state, sync=sync)

    def expose(self, published: PublishedCheckpoint, edge: Edge) -> PublishedCheckpoint:
        """Make ``published`` (whose tree has ``edge``) what readers see; wake its waiters."""
        with self._cond:
            self._edge = edge
            self._reader.snapshot = Snapshot(published, edge, self._reader.snapshot)
            woken = self._waiters.covered(edge.size)
        for future in woken:
            self._dispatch.resolve(future, published)
        self._dispatch.flush()
        return published
