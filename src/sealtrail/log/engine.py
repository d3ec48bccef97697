"""The log engine: one transparency log, assembled from its parts. The public entry point.

One :class:`LogEngine` per log. The work is split by thread and role:

- ``config``: :class:`LogConfig`, the defaults, the limits on entries;
- ``clock``: the injected clock (every wait and every recorded time);
- ``writer``: the writer thread: gather, sequence, integrate, publish;
- ``tile_sync``: the syncer thread: group sync of tiles, the durable size X;
- ``recovery``: open(): re-derive what the committed entries imply;
- ``reader``: the read path at the published snapshot (any thread);
- ``waiters``: callers waiting (threads, coroutines), woken in bulk;
- ``tile_io``: tiles read with repair, written without rewriting.

The only fsync on the write path is the sequencing commit (docs/adr/0004); nothing is
acknowledged before it, so a crash or a power loss at any point is repaired by
:meth:`LogEngine.open`, which trusts only the committed entries and the tiles full at the
durable size X, and re-derives everything else. Readers see nothing beyond the latest
published checkpoint.

``add`` and ``wait_for_checkpoint`` are coroutines usable from any asyncio event loop;
``submit``, ``add_blocking`` and ``wait_blocking`` serve threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import platform
from collections.abc import Callable, Sequence
from typing import NamedTuple

from sealtrail.crypto.keys import PublicKey
from sealtrail.errors import (
    Error,
    LogEntryInvalidError,
    LogError,
    LogFrozenError,
    LogOverloadedError,
    UsageError,
)
from sealtrail.log.clock import SYSTEM_CLOCK, Clock
from sealtrail.log.config import (
    DEFAULT_BATCH_MAX,
    DEFAULT_BATCH_WAIT,
    DEFAULT_CHECKPOINT_INTERVAL,
    DEFAULT_MAX_PENDING,
    DEFAULT_TILE_CACHE,
    MAX_SEARCH_KEYS,
    MAX_SEARCH_KIND_CHARS,
    MAX_SEARCH_LIMIT,
    MAX_SEARCH_VALUE_CHARS,
    LogConfig,
    check_search_keys,
)
from sealtrail.log.reader import LogReader, PublishedCheckpoint, StoredEntry
from sealtrail.log.recovery import recover
from sealtrail.log.replica import ReplicatedWriter
from sealtrail.log.storage import LogStorage
from sealtrail.log.storage.protocols import NewEntry, ReplicatedSequencer
from sealtrail.log.tile_io import TileIO
from sealtrail.log.tile_sync import TileSyncer
from sealtrail.log.waiters import LoopFuture, expire
from sealtrail.log.writer import AddResult, Writer, storage_error
from sealtrail.merkle import tile_proofs as _proofs
from sealtrail.merkle.tiles import MAX_ENTRY_SIZE

__all__ = [
    "DEFAULT_BATCH_MAX",
    "DEFAULT_BATCH_WAIT",
    "DEFAULT_CHECKPOINT_INTERVAL",
    "DEFAULT_MAX_PENDING",
    "DEFAULT_TILE_CACHE",
    "MAX_SEARCH_KEYS",
    "MAX_SEARCH_KIND_CHARS",
    "MAX_SEARCH_LIMIT",
    "MAX_SEARCH_VALUE_CHARS",
    "AddResult",
    "Clock",
    "LogConfig",
    "LogEngine",
    "LogHealth",
    "PublishedCheckpoint",
    "StoredEntry",
]


class LogHealth(NamedTuple):
    """A log's health as one replica sees it (see :meth:`LogEngine.health`)."""

    size: int  # the latest published checkpoint's tree size
    integrator: bool  # whether this engine integrates (signs checkpoints)
    checkpoint_age: float  # seconds since that checkpoint was signed (engine clock)
    backlog: int  # entries waiting to be sequenced or covered by a checkpoint


class LogEngine:
    """A transparency log: durable sequencing, tiles, checkpoints, proofs, search.

    Build with :meth:`open`, then :meth:`start` the writer; :meth:`close` when done.
    """

    def __init__(self, config: LogConfig, storage: LogStorage, clock: Clock) -> None:
        """Use :meth:`open`; this only wires the parts together."""
        self._config = config
        self._storage = storage
        self._clock = clock
        self._key_id = config.checkpoint_key_id
        self._io = TileIO(storage.sequencer, storage.tiles,
                          _proofs.TileCache(config.tile_cache_size))
        self._reader = LogReader(storage.sequencer, self._io)
        self._syncer = TileSyncer(storage.tiles, clock, config.origin)
        seq = storage.sequencer
        if isinstance(seq, ReplicatedSequencer):
            # A shared sequencer: this engine is one replica of several (log/replica.py).
            holder = f"{platform.node()}:{os.getpid()}"
            self._writer: Writer = ReplicatedWriter(
                config, seq, storage.tiles, self._io, self._reader, self._syncer, clock,
                seq.integrator_lease(holder))
        else:
            self._writer = Writer(config, seq, storage.tiles, self._io, self._reader,
                                  self._syncer, clock)

    # -- lifecycle ----------------------------------------------------------------------

    @classmethod
    def open(cls, config: LogConfig, storage: LogStorage, *,
             clock: Clock = SYSTEM_CLOCK) -> LogEngine:
        """Open the log in ``storage``, recovering from any crash, and publish a checkpoint.

        Recovery: the edge of the tree at the recorded durable size X is derived from the
        tiles full at X (synced) and the sequenced entries; every entry after X is
        integrated again, rewriting every tile and bundle that was not full at X (in
        every width), and the root at the recorded integrated size is checked on the way
        (a mismatch rebuilds every tile). Every sequenced entry keeps its index.

        ``clock`` times the engine's waits and gives the times it records
        (:mod:`sealtrail.log.clock`). The engine owns ``storage`` from here on:
        :meth:`close` closes it, and so does a failed open. Raises
        :class:`~sealtrail.errors.LogStorageError` if the storage belongs to another log,
        is unreadable, or contradicts itself.
        """
        try:
            if not isinstance(config, LogConfig):
                raise UsageError("config must be a LogConfig", actual=type(config).__name__)
            if not all(callable(getattr(clock, name, None))
                       for name in ("time", "monotonic", "wait_until")):
                # Callers may be untyped (ADR 0002); a bare time function was the old API.
                raise UsageError("clock must be a sealtrail.log.clock.Clock",
                                 actual=type(clock).__name__)
            storage.sequencer.bind(config.origin)
            engine = cls(config, storage, clock)
            if isinstance(engine._writer, ReplicatedWriter):
                engine._writer.open_replica()
            else:
                recovered = recover(storage.sequencer, storage.tiles, engine._io)
                # Recovery synced every full object at the recovered size.
                engine._syncer.reset(recovered.edge.size)
                engine._writer.resume(recovered.edge, recovered.sequenced)
        except BaseException as exc:
            storage.close()
            if isinstance(exc, Error) or not isinstance(exc, Exception):
                raise
            raise storage_error(exc, "opening the log") from exc
        return engine

    def start(self) -> None:
        """Start the writer thread (a no-op for a frozen log, which never writes)."""
        self._writer.start()

    def close(self) -> None:
        """Stop gracefully: sequence and integrate what is queued, stop, close storage.

        Adds after this raise :class:`~sealtrail.errors.LogError`; checkpoint waiters
        still waiting get the same error. Idempotent.
        """
        if not self._writer.stop():
            return
        self._writer.fail_waiting(LogError("the log is closed"))
        self._storage.close()

    def __enter__(self) -> LogEngine:
        """Use as a context manager: ``close()`` on exit."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the engine."""
        self.close()

    # -- properties ---------------------------------------------------------------------

    @property
    def config(self) -> LogConfig:
        """The log's configuration."""
        return self._config

    @property
    def public_key(self) -> PublicKey:
        """The checkpoint (and SET) verification key."""
        return self._config.public_key

    @property
    def checkpoint_key_id(self) -> bytes:
        """The full signed-note key id (Rekor v2 logId; SHA-256(SPKI) for ECDSA keys)."""
        return self._key_id

    def health(self) -> LogHealth:
        """What an operator watches: size, role, checkpoint age, backlog (``/healthz``)."""
        cp = self._reader.current().checkpoint
        return LogHealth(cp.size, self.is_integrator,
                         max(0.0, self._clock.time() - cp.published_at), self._writer.backlog())

    @property
    def is_integrator(self) -> bool:
        """Whether this engine integrates the log (always, unless it is one replica of
        several on a shared sequencer and another one was elected)."""
        writer = self._writer
        return not isinstance(writer, ReplicatedWriter) or writer.is_integrator

    @property
    def frozen(self) -> bool:
        """Whether the log refuses new entries."""
        return self._config.frozen

    # -- write path ---------------------------------------------------------------------

    def submit(self, body: bytes, search_keys: Sequence[tuple[str, str]] = ()
               ) -> concurrent.futures.Future[AddResult]:
        """Queue ``body`` for sequencing; the future resolves once its index is committed.

        Raises at once: :class:`~sealtrail.errors.LogFrozenError` (frozen log),
        :class:`~sealtrail.errors.LogEntryInvalidError` (empty or over 65535 bytes, bad
        search keys), :class:`~sealtrail.errors.LogOverloadedError` (too many entries
        waiting), :class:`~sealtrail.errors.LogError` (closed). The future fails with
        :class:`~sealtrail.errors.LogStorageError` if the commit fails (nothing was
        acknowledged then).
        """
        future: concurrent.futures.Future[AddResult] = concurrent.futures.Future()
        self._writer.enqueue(self._entry(body, search_keys), future)
        return future

    def submit_built(self, build: Callable[[int], bytes],
                     search_keys: Sequence[tuple[str, str]] = ()
                     ) -> concurrent.futures.Future[AddResult]:
        """Queue an entry whose body is ``build(index)``, for the index it gets.

        For entries that name their own index (a static-ct-api TileLeaf's leaf_index): the
        sequencer calls ``build`` inside the transaction that assigns the index, once it is
        final (on a shared sequencer too, whichever replica sequences), and stores and
        integrates what it returns; the future resolves with that index once committed.
        Such entries are batched with any others and never deduplicated.

        ``build`` runs on the writer thread while the sequencer holds its lock, once per
        commit attempt: it must be quick and must not fail. If it raises, or returns
        something that is not a body of 1..65535 bytes, the whole batch fails (nothing is
        committed) and every entry of it fails with that error (a
        :class:`~sealtrail.errors.LogError` as raised, anything else as
        :class:`~sealtrail.errors.LogStorageError`): callers check what can fail before
        submitting. Raises at once as :meth:`submit` (frozen, bad search keys,
        overloaded, closed).
        """
        self._check_writable()
        if not callable(build):
            raise UsageError("build must be a function of the index",
                             actual=type(build).__name__)
        config = self._config

        def build_entry(index: int) -> tuple[bytes, bytes]:
            body = self._checked_body(build(index))
            return config.hash_leaf(body), body

        future: concurrent.futures.Future[AddResult] = concurrent.futures.Future()
        entry = NewEntry(b"", b"", check_search_keys(search_keys), build_entry)
        self._writer.enqueue(entry, future)
        return future

    def _check_writable(self) -> None:
        if self._config.frozen:
            raise LogFrozenError("the log is frozen and accepts no entries",
                                 actual=self._config.origin)

    @staticmethod
    def _checked_body(body: object) -> bytes:
        """``body`` as bytes of a size an entry bundle holds, else LogEntryInvalidError."""
        if not isinstance(body, (bytes, bytearray, memoryview)):
            raise LogEntryInvalidError("log entry body must be bytes",
                                       actual=type(body).__name__)
        body = bytes(body)
        # SPEC: C2SP tlog-tiles entry bundles prefix each entry with a uint16 length.
        if not 1 <= len(body) <= MAX_ENTRY_SIZE:
            raise LogEntryInvalidError("log entry body has an unsupported size",
                                       actual=f"{len(body)} bytes",
                                       expected=f"1..{MAX_ENTRY_SIZE} bytes")
        return body

    def _entry(self, body: bytes, search_keys: Sequence[tuple[str, str]]) -> NewEntry:
        """Check an entry before it is queued (see :meth:`submit`)."""
        self._check_writable()
        body = self._checked_body(body)
        return NewEntry(self._config.hash_leaf(body), body, check_search_keys(search_keys))

    async def add(self, body: bytes, search_keys: Sequence[tuple[str, str]] = ()) -> AddResult:
        """Add an entry; returns once its index is durably committed.

        An identical body returns the existing index with ``duplicate=True``. Raises as
        :meth:`submit`. Cancelling the caller does not unsequence the entry.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[AddResult] = loop.create_future()
        self._writer.enqueue(self._entry(body, search_keys), LoopFuture(loop, future))
        return await future

    def add_blocking(self, body: bytes, search_keys: Sequence[tuple[str, str]] = (), *,
                     timeout: float | None = 60.0) -> AddResult:
        """:meth:`add` for threads; :class:`~sealtrail.errors.LogOverloadedError` on timeout.

        ``timeout`` is the caller's (real seconds), not the engine clock's.
        """
        future = self.submit(body, search_keys)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError as exc:
            raise LogOverloadedError("the entry was not sequenced in time",
                                     actual=f"{timeout} s") from exc

    def _checkpoint_future(self, index: int) -> concurrent.futures.Future[PublishedCheckpoint]:
        """A future for the first checkpoint covering ``index`` (see wait_for_checkpoint)."""
        future: concurrent.futures.Future[PublishedCheckpoint] = concurrent.futures.Future()
        covered = self._writer.register_waiter(index, future)
        if covered is not None:
            future.set_result(covered)
        return future

    async def wait_for_checkpoint(self, index: int, timeout: float | None
                                  ) -> PublishedCheckpoint:
        """The first published checkpoint whose size is greater than ``index``.

        Raises :class:`~sealtrail.errors.LogEntryNotFoundError` if no entry has that
        index, :class:`~sealtrail.errors.LogOverloadedError` if no checkpoint covers it
        within ``timeout`` seconds of the event loop's clock (None: no limit),
        :class:`~sealtrail.errors.LogError` if the log closes.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[PublishedCheckpoint] = loop.create_future()
        covered = self._writer.register_waiter(index, LoopFuture(loop, future))
        if covered is not None:
            return covered
        # One timer handle, not asyncio.wait_for's extra task and future per call.
        timer = None if timeout is None else loop.call_later(timeout, expire, future)
        try:
            return await future
        except TimeoutError as exc:
            raise LogOverloadedError("no checkpoint covered the entry in time",
                                     actual=f"index {index} after {timeout} s") from exc
        finally:
            if timer is not None:
                timer.cancel()

    def wait_blocking(self, index: int, timeout: float | None) -> PublishedCheckpoint:
        """:meth:`wait_for_checkpoint` for threads (``timeout`` in real seconds)."""
        future = self._checkpoint_future(index)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            raise LogOverloadedError("no checkpoint covered the entry in time",
                                     actual=f"index {index} after {timeout} s") from exc

    # -- read path (sealtrail.log.reader) -------------------------------------------------

    def latest_checkpoint(self) -> PublishedCheckpoint:
        """The latest published checkpoint."""
        return self._reader.current().checkpoint

    def entry(self, index: int) -> StoredEntry:
        """The entry at ``index``, if the latest checkpoint covers it.

        Raises :class:`~sealtrail.errors.LogEntryNotFoundError` otherwise.
        """
        return self._reader.entry(index)

    def find(self, leaf_hash: bytes) -> int | None:
        """The index of the published entry with this leaf hash (the Rekor UUID), or None."""
        return self._reader.find(leaf_hash)

    def search(self, kind: str, value: str, limit: int = 100, *, start: int = 0) -> list[int]:
        """Indexes of published entries stored under the search key (kind, value).

        Ascending, from index ``start`` on (the next page starts after the last index of
        this one), at most ``limit`` (1..1000). Raises
        :class:`~sealtrail.errors.UsageError` for an invalid kind, value, limit or start.
        """
        return self._reader.search(kind, value, limit, start)

    def inclusion_proof(self, index: int, tree_size: int) -> list[bytes]:
        """The inclusion proof (leaf to root) for ``index`` in the tree of ``tree_size``.

        Raises :class:`~sealtrail.errors.UsageError` unless ``0 <= index < tree_size``
        and :class:`~sealtrail.errors.LogEntryNotFoundError` if ``tree_size`` is beyond
        the latest checkpoint.
        """
        return self._reader.inclusion_proof(index, tree_size)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """The consistency proof from ``old_size`` to ``new_size`` (empty if equal or 0).

        Raises :class:`~sealtrail.errors.UsageError` unless ``0 <= old_size <= new_size``
        and :class:`~sealtrail.errors.LogEntryNotFoundError` if ``new_size`` is beyond
        the latest checkpoint.
        """
        return self._reader.consistency_proof(old_size, new_size)

    def root_at(self, tree_size: int) -> bytes:
        """The root hash of the tree of ``tree_size`` (any size up to the latest)."""
        return self._reader.root_at(tree_size)

    def read_tile(self, level: int, index: int, width: int | None) -> bytes:
        """Tile bytes as served at ``tile/<L>/<N>[.p/<W>]`` for the latest checkpoint.

        A partial width smaller than the tile's current width is served as the prefix
        (tiles only grow; C2SP tlog-tiles). Raises
        :class:`~sealtrail.errors.LogEntryNotFoundError` if the tile (at that width) does
        not exist, :class:`~sealtrail.errors.UsageError` for out-of-range arguments.
        """
        return self._reader.read_tile(level, index, width)

    def read_entry_bundle(self, index: int, width: int | None) -> bytes:
        """Entry bundle bytes as served at ``tile/entries/<N>[.p/<W>]`` (see read_tile)."""
        return self._reader.read_entry_bundle(index, width)
