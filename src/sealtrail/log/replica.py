"""Replicas: several engines on one shared sequencer, exactly one of them integrating.

Every replica sequences the entries it receives (the sequencer serialises them and dedups
exactly, see ``storage/postgres.py``) and acknowledges them once committed. Integration,
which writes tiles and signs checkpoints, is done by one elected replica, the
*integrator*, which holds the log's lease (:class:`~sealtrail.log.storage.protocols.
IntegratorLease`: an advisory lock plus an epoch):

- the integrator reads what was sequenced beyond its tree (by any replica) from the
  sequencer, integrates it, and saves the new state with a compare-and-swap under its
  epoch (``save_state_fenced``) *before* it writes the static checkpoint or exposes the
  tree: a replica that lost the lease can never move the tree or publish beyond it;
- the other replicas (followers) learn every saved state through the database's
  notifications, and by polling when one is missed, and expose it: they extend their
  tree edge with the new entries and check the root against the saved one;
- a follower that finds the lease free takes it: it runs recovery (as at open) from the
  saved state and the committed entries, then integrates. Nothing acknowledged is lost:
  every acknowledged entry is committed in the sequencer, and integration is a function of
  the committed entries, so any replica derives the same tree.

One coordinator thread per replica waits on the notifications, polls, takes over, and
checks the lease; the writer thread sequences and, when this replica is the integrator,
integrates. docs/adr/0016 records the design.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from sealtrail.errors import Error, LogStorageError
from sealtrail.log._integrate import Edge, integrate
from sealtrail.log.reader import PublishedCheckpoint
from sealtrail.log.recovery import CATCH_UP_CHUNK, recover
from sealtrail.log.storage.protocols import (
    Assignment,
    IntegrationState,
    IntegratorFencedError,
    IntegratorLease,
    ReplicatedSequencer,
)
from sealtrail.log.waiters import Target
from sealtrail.log.writer import Writer, _Pending, add_result

if TYPE_CHECKING:
    from sealtrail.log.clock import Clock
    from sealtrail.log.config import LogConfig
    from sealtrail.log.reader import LogReader
    from sealtrail.log.storage.protocols import TileStore
    from sealtrail.log.tile_io import TileIO
    from sealtrail.log.tile_sync import TileSyncer

__all__ = ["POLL_SECONDS", "ReplicatedWriter", "STARTUP_SECONDS"]

_log = logging.getLogger("sealtrail.log")

#: Real seconds between polls of the saved state and attempts to take the lease when no
#: notification arrives: bounds how long a missed notification or a dead integrator
#: goes unnoticed (the failover target is 5 s).
POLL_SECONDS = 0.5
#: Real seconds a new follower waits for a first saved state (an empty log whose
#: integrator has not published yet) before open() fails.
STARTUP_SECONDS = 30.0


class ReplicatedWriter(Writer):
    """The writer of one replica: sequences always, integrates while holding the lease."""

    def __init__(self, config: LogConfig, seq: ReplicatedSequencer, tiles: TileStore,
                 io: TileIO, reader: LogReader, syncer: TileSyncer, clock: Clock,
                 lease: IntegratorLease) -> None:
        super().__init__(config, seq, tiles, io, reader, syncer, clock)
        self._rseq = seq
        self._lease = lease
        self._leader_epoch: int | None = None
        # The saved state's size this integrator expects (its compare-and-swap operand).
        self._saved_size = 0
        # The highest sequenced size this replica knows of (its own commits, the last
        # read of the sequencer), and whether to read the sequencer again (a notification
        # or a poll said other replicas may have sequenced entries).
        self._known_sequenced = 0
        self._recheck = False
        self._coordinator: threading.Thread | None = None
        self._stop_coordinator = threading.Event()
        # Held while integrating or taking over: the writer thread integrates, but the
        # coordinator thread runs the recovery of a takeover.
        self._integrating = threading.Lock()

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def is_integrator(self) -> bool:
        """Whether this replica integrates the log now."""
        return self._leader_epoch is not None

    def open_replica(self) -> None:
        """At open: take the lease if it is free (and recover), else follow the saved state."""
        if self._lease.acquire() is not None:
            self._take_over()
            return
        deadline = self._clock.monotonic() + STARTUP_SECONDS
        while True:
            state = self._seq.load_state()
            if state is not None:
                self._follow(state)
                return
            if self._lease.acquire() is not None:
                self._take_over()
                return
            if self._clock.monotonic() >= deadline:
                raise LogStorageError("no replica published a checkpoint of this log in time",
                                      actual=f"{STARTUP_SECONDS} s")
            self._lease.wait(POLL_SECONDS)

    def start(self) -> None:
        """Start the writer (and syncer) and the coordinator thread."""
        super().start()
        with self._cond:
            if self._coordinator is not None or self._config.frozen:
                return
            self._coordinator = threading.Thread(
                target=self._coordinate, daemon=True,
                name=f"sealtrail-replica[{self._config.origin}]")
            self._coordinator.start()

    def stop(self) -> bool:
        """Stop the writer (it drains and, as integrator, publishes), then the coordinator."""
        stopped = super().stop()
        self._stop_coordinator.set()
        thread = self._coordinator
        if thread is not None:
            thread.join()
        self._lease.close()
        return stopped

    def _final_barrier(self) -> None:
        # Only the integrator records state; a follower has nothing of its own to record.
        if self.is_integrator:
            super()._final_barrier()

    # -- integrator: taking over, integrating, saving fenced -----------------------------

    def _take_over(self) -> None:
        """Having just taken the lease: recover from the saved state, then publish."""
        with self._integrating:
            self._recover_and_publish()

    def _recover_and_publish(self) -> None:
        epoch = self._lease.epoch
        assert epoch is not None
        recovered = recover(self._seq, self._tiles, self._io)
        state = self._seq.load_state()
        with self._cond:
            self._saved_size = 0 if state is None else state.size
            self._leader_epoch = epoch
            self._sequenced = max(self._sequenced, recovered.sequenced)
            self._known_sequenced = max(self._known_sequenced, recovered.sequenced)
        self._syncer.reset(recovered.edge.size)
        # A warning, so that serve (which prints warnings and above) shows every change.
        _log.warning("this replica is now the integrator of %s (epoch %d, %d entries)",
                     self._config.origin, epoch, recovered.edge.size)
        self.publish(recovered.edge, sync=True)

    def _step_down(self, why: object) -> None:
        with self._cond:
            was = self._leader_epoch
            self._leader_epoch = None
        if was is not None:
            _log.warning("this replica stopped integrating %s: %s", self._config.origin, why)
        self._lease.release()

    def _save_state(self, state: IntegrationState, *, sync: bool) -> None:
        epoch = self._leader_epoch
        if epoch is None:
            raise IntegratorFencedError("this replica is not the log's integrator")
        self._rseq.save_state_fenced(state, epoch=epoch, expected_size=self._saved_size,
                                     sync=sync)
        self._saved_size = state.size

    def register_waiter(self, index: int, target: Target) -> PublishedCheckpoint | None:
        # The entry may have been sequenced by another replica: ask the sequencer before
        # calling it unknown.
        if isinstance(index, int) and index >= self._sequenced:
            sequenced = self._seq.sequenced_size()
            with self._cond:
                self._sequenced = max(self._sequenced, sequenced)
        return super().register_waiter(index, target)

    def _unintegrated_count(self) -> int:
        return max(0, self._known_sequenced - self._reader.current().checkpoint.size)

    def _wake_at(self, next_checkpoint: float) -> float:
        if self.is_integrator and (self._recheck or self._known_sequenced > self._edge.size):
            return self._clock.monotonic()
        if self.is_integrator:
            return next_checkpoint
        return self._clock.monotonic() + 3600.0  # followers wake for entries only

    def _sequence(self, batch: list[_Pending]) -> None:
        assignments: list[Assignment] = self._commit(batch)
        top = max((a.index + 1 for a in assignments), default=0)
        with self._cond:
            self._sequenced = max(self._sequenced, top)
            self._known_sequenced = max(self._known_sequenced, top)
        for assignment, item in zip(assignments, batch):
            self._dispatch.resolve(item.future, add_result(assignment))
        if not self.is_integrator:
            self._dispatch.flush()

    def _integrate_or_resign(self, next_checkpoint: float, interval: float) -> float:
        if not self.is_integrator:
            return next_checkpoint
        with self._integrating:
            return self._integrate_as_leader(next_checkpoint, interval)

    def _integrate_as_leader(self, next_checkpoint: float, interval: float) -> float:
        if not self.is_integrator:
            return next_checkpoint
        if self._lease.epoch != self._leader_epoch:
            # The lease's session ended (the database restarted, the connection broke):
            # its advisory lock is gone, so another replica may be taking over.
            self._step_down("the lease's database session ended")
            return next_checkpoint
        try:
            if self._recheck or self._known_sequenced > self._edge.size:
                self._integrate_from_sequencer()
                return self._clock.monotonic() + interval
            if self._clock.monotonic() >= next_checkpoint:
                self.publish(self._edge, sync=True)
                return self._clock.monotonic() + interval
        except IntegratorFencedError as exc:
            self._step_down(exc)
        return next_checkpoint

    def _integrate_from_sequencer(self) -> None:
        """Integrate entries sequenced by any replica beyond this tree, in bounded steps."""
        edge = self._edge
        with self._cond:
            self._recheck = False
        # The writer thread is the only one that raises _known_sequenced while this
        # replica integrates, so the sequencer's count replaces it.
        sequenced = self._seq.sequenced_size()
        end = min(sequenced, edge.size + CATCH_UP_CHUNK)
        with self._cond:
            self._known_sequenced = sequenced
            self._sequenced = max(self._sequenced, sequenced)
        if end <= edge.size:
            return
        rows = self._seq.entries(edge.size, end)
        if len(rows) != end - edge.size:
            raise LogStorageError("the sequencer has a gap in its indexes",
                                  actual=len(rows), expected=end - edge.size)
        result = integrate(edge, [r.leaf_hash for r in rows], [r.body for r in rows])
        self._syncer.add(self._io.write(result.writes))
        for level, index, tile_rows in result.expanded:
            self._io.cache.put(level, index, tile_rows)
        self.publish(result.edge, result.root)

    # -- followers: exposing what the integrator saved -----------------------------------

    def _follow(self, state: IntegrationState) -> None:
        """Expose a saved state newer than what this replica shows."""
        snap = self._reader.snapshot
        if snap is not None and (state.size < snap.checkpoint.size or
                                 state.checkpoint == snap.checkpoint.note):
            return
        edge = self._edge_at(snap.edge if snap is not None else None, state)
        with self._cond:
            self._sequenced = max(self._sequenced, state.size)
        self.expose(PublishedCheckpoint(state.size, state.root_hash, state.checkpoint,
                                        state.published_at), edge)

    def _edge_at(self, previous: Edge | None, state: IntegrationState) -> Edge:
        """The edge at the saved size: the previous edge extended by the new entries
        (one read of them), or derived afresh; its root must be the saved one."""
        if previous is not None and previous.size == state.size:
            edge = previous
        elif previous is not None and previous.size < state.size <= \
                previous.size + CATCH_UP_CHUNK:
            rows = self._seq.entries(previous.size, state.size)
            if len(rows) != state.size - previous.size:
                raise LogStorageError("the sequencer has a gap in its indexes")
            edge = integrate(previous, [r.leaf_hash for r in rows],
                             [r.body for r in rows]).edge
        else:
            edge = self._io.load_edge(state.size)
        if edge.root() != state.root_hash:
            raise LogStorageError("the saved checkpoint's root is not the root of the "
                                  "sequenced entries", actual=edge.root().hex(),
                                  expected=state.root_hash.hex())
        return edge

    # -- the coordinator thread ----------------------------------------------------------

    def _coordinate(self) -> None:
        """Wait for notifications (or poll), follow, take over, watch the lease.

        Whatever the notifications, the lease is checked (by the integrator) or tried (by
        a follower) once per :data:`POLL_SECONDS`: a deposed integrator that keeps
        saving would otherwise keep its followers busy with notifications forever.
        """
        next_check = 0.0
        while not self._stop_coordinator.is_set():
            try:
                channels = self._lease.wait(POLL_SECONDS)
                if self._stop_coordinator.is_set():
                    break
                due = time.monotonic() >= next_check
                if due:
                    next_check = time.monotonic() + POLL_SECONDS
                if self.is_integrator:
                    # A poll as well as the notification: one may be missed (a lease
                    # connection opened again, a notification queue overflow).
                    if due or self._rseq.sequenced_channel in channels:
                        self._poke()
                    if due and not self._lease.held():
                        self._step_down("the lease was lost")
                    continue
                # A follower hears every replica's assigns too (it may become the
                # integrator); only a saved state, or the poll, is worth a read.
                if due or self._rseq.integrated_channel in channels:
                    state = self._seq.load_state()
                    if state is not None:
                        self._follow(state)
                if due and self._lease.acquire() is not None:
                    self._become_integrator()
            except Exception as exc:  # keep coordinating whatever happens
                _log.error("replica coordination of %s failed (%s); retrying",
                           self._config.origin,
                           exc if isinstance(exc, Error) else repr(exc),
                           exc_info=not isinstance(exc, Error))
                self._stop_coordinator.wait(POLL_SECONDS)

    def _poke(self) -> None:
        """Tell the writer that entries may wait for integration (a notification)."""
        with self._cond:
            self._recheck = True
            self.wake()

    def _become_integrator(self) -> None:
        """The coordinator took the lease: recovery runs in the writer's stead, under the
        condition's protection of the edge (the writer does not integrate meanwhile,
        since it does not hold the lease yet)."""
        try:
            self._take_over()
        except Exception as exc:
            self._step_down(exc)
            raise
        with self._cond:
            self.wake()
