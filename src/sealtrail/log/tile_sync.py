"""Group sync of tiles: the syncer thread and the durable size X (docs/adr/0004, decision 7).

The writer writes tiles without fsync and hands the paths of the full tiles and bundles it
completed to the :class:`TileSyncer`. Every ``SYNC_SECONDS`` (on the engine's clock), or as
soon as ``SYNC_OBJECTS`` full objects wait, the writer cuts a barrier at its integrated
size; the syncer thread deletes the superseded partials of those objects, fsyncs them
and their directories, and only then raises X (:attr:`TileSyncer.durable_size`) to the
size the barrier was cut at. The writer records X with its next state save. Partial tiles
and the static checkpoint are never synced: open() re-derives them.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading

from sealtrail.errors import Error
from sealtrail.log.clock import Clock
from sealtrail.log.storage.protocols import TileStore

__all__ = ["SYNC_OBJECTS", "SYNC_SECONDS", "TileSyncer"]

_log = logging.getLogger("sealtrail.log")

# A barrier at least this often (clock seconds) while tiles are written, or as soon as this
# many full tiles and bundles wait (~8,000 entries): it bounds what open() must re-derive
# after a power loss. Read at every check, so tests may change them.
SYNC_SECONDS = 1.0
SYNC_OBJECTS = 64


class TileSyncer:
    """Full objects written since the last barrier, the barrier in flight, and X.

    :meth:`add`, :meth:`tick` and :meth:`close` are called by the writer thread (or by
    open() and close() when no writer runs); the barrier itself runs in the syncer's own
    thread, started by :meth:`start`.
    """

    def __init__(self, tiles: TileStore, clock: Clock, name: str) -> None:
        self._tiles = tiles
        self._clock = clock
        self._name = name
        self._lock = threading.Lock()
        self._unsynced: list[str] = []
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._barrier: concurrent.futures.Future[bool] | None = None
        self._durable_size = 0
        self._next_barrier = 0.0

    @property
    def durable_size(self) -> int:
        """X: every tile and bundle full at this size is durable, with no partials left."""
        with self._lock:
            return self._durable_size

    def _raise_durable(self, size: int) -> None:
        with self._lock:
            self._durable_size = max(self._durable_size, size)

    def reset(self, size: int) -> None:
        """At open, after recovery synced everything full at ``size``: X = ``size``."""
        with self._lock:
            self._durable_size = size

    def start(self) -> None:
        """Start the syncer thread; the first barrier is due ``SYNC_SECONDS`` from now."""
        self._executor = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix=f"sealtrail-log-sync[{self._name}]")
        self._next_barrier = self._clock.monotonic() + SYNC_SECONDS

    def add(self, paths: list[str]) -> None:
        """Full objects just written (not synced yet)."""
        if paths:
            with self._lock:
                self._unsynced.extend(paths)

    def tick(self, size: int) -> None:
        """Writer thread, after each cycle: cut a barrier at ``size`` if one is due."""
        if self._clock.monotonic() >= self._next_barrier or \
                len(self._unsynced) >= SYNC_OBJECTS:
            if self._start_barrier(size):
                self._next_barrier = self._clock.monotonic() + SYNC_SECONDS

    def _start_barrier(self, size: int) -> bool:
        """Hand the full objects written so far to the syncer; False if one still runs.

        Every full object of the integrated tree at ``size`` is either in the list handed
        over or was synced by an earlier barrier (or at open).
        """
        if self._barrier is not None and not self._barrier.done():
            return False
        with self._lock:
            paths, self._unsynced = self._unsynced, []
        if not paths:
            # Nothing full was completed since the last barrier: the claim extends for free.
            self._raise_durable(size)
            return True
        assert self._executor is not None, "start() the syncer before cutting barriers"
        try:
            self._barrier = self._executor.submit(self._sync_objects, paths, size)
        except BaseException:
            self._requeue(paths)  # never drop a path: a later barrier would claim it
            raise
        return True

    def _requeue(self, paths: list[str]) -> None:
        with self._lock:
            self._unsynced[:0] = paths

    def _sync_objects(self, paths: list[str], size: int) -> bool:
        """The barrier: drop superseded partials, sync the full objects, advance X.

        On failure the paths go back to the queue and X stays where it was.
        """
        try:
            for path in paths:
                self._tiles.delete_partials(path)
            self._tiles.sync(paths)
        except BaseException as exc:
            self._requeue(paths)
            if not isinstance(exc, Exception):
                raise
            _log.error("syncing %d tiles failed (%s); will retry", len(paths),
                       exc if isinstance(exc, Error) else repr(exc))
            return False
        self._raise_durable(size)
        return True

    def stop(self) -> None:
        """Stop the syncer thread, letting a running barrier finish; the rest stays queued."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    def close(self, size: int) -> bool:
        """At close, once the writer stopped: sync the rest; True if X is now ``size``."""
        self.stop()
        with self._lock:
            paths, self._unsynced = self._unsynced, []
        if paths:
            return self._sync_objects(paths, size)
        self._raise_durable(size)
        return True
