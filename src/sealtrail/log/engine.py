"""The log engine: sequence entries durably, integrate them into tiles, publish checkpoints.

One :class:`LogEngine` per log. A single background writer thread runs the loop::

    gather a batch -> sequence it (ONE durable transaction) -> acknowledge the adds
                   -> integrate the new leaves into tiles (atomic writes, not fsynced)
                   -> sign the checkpoint -> record it (not fsynced) -> wake waiters

and re-signs (and durably records) the checkpoint every ``checkpoint_interval`` while
idle. The only fsync on that path is the sequencing commit; it also makes the previous
cycle's state record durable (docs/adr/0004). Tiles are derived data: a syncer thread
makes the full tiles written so far durable in one group every ``_SYNC_SECONDS`` (or
``_SYNC_OBJECTS`` tiles), then the writer records "tiles durable up to size X" with its
next state. Nothing is acknowledged before the sequencer committed it, so a crash or a
power loss at any point is repaired by :meth:`LogEngine.open`, which trusts only the
committed entries and the tiles full at X, and re-derives everything else.

Readers (proofs, tiles, entries, search) see one consistent snapshot: the latest
published checkpoint plus the right edge of the tree at that size; nothing beyond the
published size is exposed.

``add`` and ``wait_for_checkpoint`` are coroutines usable from any asyncio event loop;
the writer resolves their futures in bulk, with one ``loop.call_soon_threadsafe`` per
event loop and batch (``_Dispatch``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import heapq
import itertools
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from sealtrail.crypto.keys import PublicKey
from sealtrail.errors import (
    Error,
    LogEntryInvalidError,
    LogEntryNotFoundError,
    LogError,
    LogFrozenError,
    LogOverloadedError,
    LogStorageError,
    UsageError,
)
from sealtrail.merkle import tile_proofs as _proofs
from sealtrail.log._integrate import Edge, TileWrite, edge_levels, integrate
from sealtrail.log.storage import LogStorage
from sealtrail.log.storage.protocols import IntegrationState, NewEntry
from sealtrail.merkle import EMPTY_ROOT, HASH_SIZE, leaf_hash
from sealtrail.merkle.tiles import (
    ENTRY_BUNDLE_WIDTH,
    MAX_ENTRY_SIZE,
    MAX_LEVEL,
    MAX_TILE_INDEX,
    TILE_BYTES,
    TILE_HEIGHT,
    TILE_WIDTH,
    decode_entry_bundle,
    encode_entry_bundle,
    entries_path,
    expand_tile,
    extend_expanded,
    subtree_root,
    tile_path,
    tile_width,
)
from sealtrail.models.checkpoint import Checkpoint, note_key_id, sign_note

__all__ = [
    "DEFAULT_BATCH_MAX",
    "DEFAULT_BATCH_WAIT",
    "DEFAULT_CHECKPOINT_INTERVAL",
    "DEFAULT_MAX_PENDING",
    "DEFAULT_TILE_CACHE",
    "MAX_SEARCH_KEYS",
    "MAX_SEARCH_LIMIT",
    "AddResult",
    "LogConfig",
    "LogEngine",
    "PublishedCheckpoint",
    "StoredEntry",
]

_log = logging.getLogger("sealtrail.log")

# -- options: named defaults, checked once (docs/architecture.md habit 8) --------------------

#: Seconds between checkpoints while no entry arrives. rekor-tiles' compose setup uses 2 s.
DEFAULT_CHECKPOINT_INTERVAL = 2.0
#: Entries sequenced per transaction (Trillian's log_signer uses 1000).
DEFAULT_BATCH_MAX = 1024
#: How long the writer gathers a batch after its first entry arrives.
DEFAULT_BATCH_WAIT = 0.005
#: Entries waiting to be sequenced or integrated beyond which add() pushes back.
DEFAULT_MAX_PENDING = 8192
#: Expanded full tiles kept for proofs (~16 KiB each, so at most ~64 MiB): every tile of a
#: log of 10^6 entries fits, and the most recent tiles of a bigger one.
DEFAULT_TILE_CACHE = 4096

#: Search keys per entry, and their bounds (values come from untrusted certificates).
MAX_SEARCH_KEYS = 32
MAX_SEARCH_KIND_CHARS = 64
MAX_SEARCH_VALUE_CHARS = 2048
#: The most indexes one search returns.
MAX_SEARCH_LIMIT = 1000

# Leaves integrated per step when catching up at open or rebuilding tiles.
_CATCH_UP_CHUNK = 4096
# Group sync of tiles: a barrier at least this often while tiles are written, or as soon
# as this many full tiles and bundles wait (~8,000 entries): it bounds what open() must
# re-derive after a power loss.
_SYNC_SECONDS = 1.0
_SYNC_OBJECTS = 64
# Back-off after a failed writer cycle (storage down): doubles up to the cap.
_BACKOFF_FIRST = 0.05
_BACKOFF_CAP = 1.0
_MAX_INT64 = 2**63 - 1
_SEARCH_KIND_RE = re.compile(r"\A[a-z0-9][a-z0-9_.:-]*\Z")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class LogConfig:
    """What makes one log: its origin, signing key and write-path tuning.

    ``origin`` is the checkpoint's first line (``"rekor.example - 1234"`` for a Rekor v1
    style log, ``"log2026-1.example"`` for Rekor v2); ``key_name`` the signed-note name
    (the host of the log's base URL). ``private_key`` is a ``cryptography`` ECDSA (P-256
    for v1 logs) or Ed25519 (v2 logs) private key. Checked when built:
    :class:`~sealtrail.errors.UsageError` on any invalid option.
    """

    origin: str
    key_name: str
    private_key: Any
    checkpoint_interval: float = DEFAULT_CHECKPOINT_INTERVAL
    batch_max: int = DEFAULT_BATCH_MAX
    batch_wait: float = DEFAULT_BATCH_WAIT
    max_pending: int = DEFAULT_MAX_PENDING
    frozen: bool = False
    tile_cache_size: int = DEFAULT_TILE_CACHE

    def __post_init__(self) -> None:
        self.valid()

    def valid(self) -> None:
        """Check every option; raises :class:`~sealtrail.errors.UsageError`."""
        if not isinstance(self.origin, str):
            raise UsageError("the log origin must be a string", actual=self.origin)
        try:
            parsed = Checkpoint.from_body(Checkpoint(self.origin, 0, EMPTY_ROOT).to_body())
        except Error as exc:
            raise UsageError("invalid log origin", actual=self.origin) from exc
        if parsed.origin != self.origin:
            raise UsageError("invalid log origin (it must be one line)", actual=self.origin)
        try:
            sign_note("probe\n", self.key_name, ed25519.Ed25519PrivateKey.generate())
        except Error as exc:
            raise UsageError("invalid signed-note key name", actual=self.key_name) from exc
        if not isinstance(self.private_key, (ec.EllipticCurvePrivateKey,
                                             ed25519.Ed25519PrivateKey)):
            raise UsageError("the log key must be an ECDSA or Ed25519 private key",
                             actual=type(self.private_key).__name__)
        for name, value, low, high in (("checkpoint_interval", self.checkpoint_interval,
                                        0.01, 3600.0),
                                       ("batch_wait", self.batch_wait, 0.0, 10.0)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    low <= value <= high):
                raise UsageError(f"{name} is out of range", actual=value,
                                 expected=f"{low}..{high} seconds")
        for name, ivalue, ilow, ihigh in (("batch_max", self.batch_max, 1, 65536),
                                          ("max_pending", self.max_pending, 1, 10_000_000),
                                          ("tile_cache_size", self.tile_cache_size, 1,
                                           1_000_000)):
            if not _is_int(ivalue) or not ilow <= ivalue <= ihigh:
                raise UsageError(f"{name} is out of range", actual=ivalue,
                                 expected=f"{ilow}..{ihigh}")
        if not isinstance(self.frozen, bool):
            raise UsageError("frozen must be a bool", actual=self.frozen)

    @property
    def public_key(self) -> PublicKey:
        """The log's public key."""
        return PublicKey.from_key(self.private_key.public_key())

    @property
    def checkpoint_key_id(self) -> bytes:
        """The full 32-byte signed-note key id (the trusted root's logId for v2 logs)."""
        return note_key_id(self.key_name, self.private_key)


class AddResult(NamedTuple):
    """Where an entry landed. ``integrated_time``: unix seconds when first sequenced."""

    index: int
    duplicate: bool
    integrated_time: int


class PublishedCheckpoint(NamedTuple):
    """A signed checkpoint the log has published."""

    size: int
    root_hash: bytes
    note: str  # the full signed note
    published_at: float  # unix seconds


class StoredEntry(NamedTuple):
    """A log entry as stored."""

    index: int
    body: bytes
    integrated_time: int

    @property
    def leaf_hash(self) -> bytes:
        """SHA-256(0x00 || body): the Rekor UUID in hex."""
        return leaf_hash(self.body)


class _LoopFuture:
    """An asyncio future to resolve from the writer thread, with the loop it belongs to."""

    __slots__ = ("loop", "future")

    def __init__(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]) -> None:
        self.loop = loop
        self.future = future


# What the writer resolves: a concurrent future (threads) or an asyncio one (coroutines).
_Target = concurrent.futures.Future[Any] | _LoopFuture


class _Pending:
    __slots__ = ("entry", "future")

    def __init__(self, entry: NewEntry, future: _Target) -> None:
        self.entry = entry
        self.future = future


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


def _deliver(items: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    """Resolve asyncio futures, in their loop's thread (a cancelled caller is skipped)."""
    for future, value, error in items:
        if not future.done():
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)


class _Dispatch:
    """Resolves many targets at once: ONE ``call_soon_threadsafe`` per event loop.

    Resolving each asyncio future on its own (``asyncio.wrap_future``) costs a wake-up
    write to the loop's self-pipe per future, and a loop callback each; with 32 waiting
    clients that was most of the writer thread's time, twice per batch.
    """

    __slots__ = ("_loops",)

    def __init__(self) -> None:
        self._loops: dict[asyncio.AbstractEventLoop,
                          list[tuple[asyncio.Future[Any], Any, BaseException | None]]] = {}

    def resolve(self, target: _Target, value: Any = None,
                error: BaseException | None = None) -> None:
        if isinstance(target, _LoopFuture):
            self._loops.setdefault(target.loop, []).append((target.future, value, error))
        else:
            _resolve(target, value, error)

    def flush(self) -> None:
        loops, self._loops = self._loops, {}
        for loop, items in loops.items():
            try:
                loop.call_soon_threadsafe(_deliver, items)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass


class _Snapshot:
    """What readers see: the published checkpoint and the edge at its size.

    The partial edge tiles are expanded (every complete row hashed) on the first proof that
    needs them. A busy log publishes a checkpoint every few entries, so each snapshot
    extends the previous one's expansion of the same tile rather than redoing it: only the
    nodes over the new leaves are hashed. Only the previous snapshot's expansions are
    kept, never a chain of snapshots.
    """

    __slots__ = ("checkpoint", "edge", "_expanded", "_previous")

    def __init__(self, checkpoint: PublishedCheckpoint, edge: Edge,
                 previous: "_Snapshot | None" = None) -> None:
        self.checkpoint = checkpoint
        self.edge = edge
        self._expanded: dict[int, tuple[int, _proofs.ExpandedTile]] = {}
        self._previous = previous._expanded if previous is not None else None

    def expanded_edge(self, level: int) -> _proofs.ExpandedTile:
        found = self._expanded.get(level)
        if found is not None:
            return found[1]
        data = self.edge.tiles[level]
        index = self.edge.size >> (TILE_HEIGHT * (level + 1))
        old = self._previous.get(level) if self._previous is not None else None
        if old is not None and old[0] == index and data.startswith(old[1][0]):
            tile = extend_expanded(old[1], data)
        else:
            tile = expand_tile(data)
        self._expanded[level] = (index, tile)
        return tile


def _resolve(future: concurrent.futures.Future[Any], value: Any = None,
             error: BaseException | None = None) -> None:
    # A waiter that timed out or was cancelled has a finished future; skip it quietly.
    if future.done():
        return
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)
    except concurrent.futures.InvalidStateError:  # cancelled meanwhile
        pass


def _storage_error(exc: BaseException, what: str) -> LogError:
    if isinstance(exc, LogError):
        return exc
    return LogStorageError(f"{what} failed", actual=f"{type(exc).__name__}: {exc}")


class LogEngine:
    """A transparency log: durable sequencing, tiles, checkpoints, proofs, search.

    Build with :meth:`open`, then :meth:`start` the writer; :meth:`close` when done.
    """

    def __init__(self, config: LogConfig, storage: LogStorage,
                 clock: Callable[[], float]) -> None:
        """Use :meth:`open`; this only sets fields."""
        self._config = config
        self._storage = storage
        self._seq = storage.sequencer
        self._tiles = storage.tiles
        self._clock = clock
        self._cache = _proofs.TileCache(config.tile_cache_size)
        self._cond = threading.Condition()
        self._pending: deque[_Pending] = deque()
        self._waiters: list[tuple[int, int, _Target]] = []
        self._waiter_ids = itertools.count()
        self._thread: threading.Thread | None = None
        self._accepting = not config.frozen
        self._stopping = False
        self._closed = False
        # Writer-thread state: the edge of the integrated tree, entries sequenced but not
        # integrated yet (leaf, body), and the number of sequenced entries.
        self._edge = Edge.empty()
        self._unintegrated: list[tuple[bytes, bytes]] = []
        self._sequenced = 0
        self._snapshot: _Snapshot | None = None
        self._key_id = config.checkpoint_key_id
        # Group sync of tiles (docs/adr/0004): full objects written since the last barrier,
        # the barrier running in the syncer thread, and the size up to which every full
        # object is synced (recorded with the next state save).
        self._sync_lock = threading.Lock()
        self._unsynced: list[str] = []
        self._syncer: concurrent.futures.ThreadPoolExecutor | None = None
        self._barrier: concurrent.futures.Future[bool] | None = None
        self._durable_size = 0
        # Results for coroutine callers, delivered in bulk (writer thread, or open()).
        self._dispatch = _Dispatch()

    # -- lifecycle ----------------------------------------------------------------------

    @classmethod
    def open(cls, config: LogConfig, storage: LogStorage, *,
             clock: Callable[[], float] = time.time) -> "LogEngine":
        """Open the log in ``storage``, recovering from any crash, and publish a checkpoint.

        Recovery: the edge of the tree at the recorded durable size X is derived from the
        tiles full at X (synced) and the sequenced entries; every entry after X is
        integrated again, rewriting every tile and bundle that was not full at X (in
        every width), and the root at the recorded integrated size is checked on the way
        (a mismatch rebuilds every tile). Every sequenced entry keeps its index.

        The engine owns ``storage`` from here on: :meth:`close` closes it, and so does a
        failed open. Raises :class:`~sealtrail.errors.LogStorageError` if the storage
        belongs to another log, is unreadable, or contradicts itself.
        """
        try:
            if not isinstance(config, LogConfig):
                raise UsageError("config must be a LogConfig", actual=type(config).__name__)
            storage.sequencer.bind(config.origin)
            engine = cls(config, storage, clock)
            engine._recover()
        except BaseException as exc:
            storage.close()
            if isinstance(exc, Error) or not isinstance(exc, Exception):
                raise
            raise _storage_error(exc, "opening the log") from exc
        return engine

    def start(self) -> None:
        """Start the writer thread (a no-op for a frozen log, which never writes)."""
        with self._cond:
            if self._closed:
                raise LogError("the log is closed")
            if self._thread is not None or self._config.frozen:
                return
            self._syncer = concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix=f"sealtrail-log-sync[{self._config.origin}]")
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"sealtrail-log[{self._config.origin}]")
            self._thread.start()

    def close(self) -> None:
        """Stop gracefully: sequence and integrate what is queued, stop, close storage.

        Adds after this raise :class:`~sealtrail.errors.LogError`; checkpoint waiters
        still waiting get the same error. Idempotent.
        """
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._accepting = False
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()
            self._final_barrier()
        closed = LogError("the log is closed")
        with self._cond:
            pending, self._pending = list(self._pending), deque()
            waiters, self._waiters = self._waiters, []
        dispatch = _Dispatch()
        for item in pending:
            dispatch.resolve(item.future, error=closed)
        for _, _, future in waiters:
            dispatch.resolve(future, error=closed)
        dispatch.flush()
        self._storage.close()

    def __enter__(self) -> "LogEngine":
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
        self._enqueue(body, search_keys, future)
        return future

    def _enqueue(self, body: bytes, search_keys: Sequence[tuple[str, str]],
                 future: _Target) -> None:
        """Check an entry and queue it for the writer (see :meth:`submit`)."""
        if self._config.frozen:
            raise LogFrozenError("the log is frozen and accepts no entries",
                                 actual=self._config.origin)
        if not isinstance(body, (bytes, bytearray, memoryview)):
            raise LogEntryInvalidError("log entry body must be bytes",
                                       actual=type(body).__name__)
        body = bytes(body)
        # SPEC: C2SP tlog-tiles entry bundles prefix each entry with a uint16 length.
        if not 1 <= len(body) <= MAX_ENTRY_SIZE:
            raise LogEntryInvalidError("log entry body has an unsupported size",
                                       actual=f"{len(body)} bytes",
                                       expected=f"1..{MAX_ENTRY_SIZE} bytes")
        entry = NewEntry(leaf_hash(body), body, _check_search_keys(search_keys))
        with self._cond:
            if not self._accepting:
                raise LogError("the log is closed")
            backlog = len(self._pending) + len(self._unintegrated)
            if backlog >= self._config.max_pending:
                raise LogOverloadedError("too many entries are waiting; retry later",
                                         actual=backlog,
                                         expected=f"< {self._config.max_pending}")
            self._pending.append(_Pending(entry, future))
            # Wake the writer only when it has something new to do: a first entry, or a
            # full batch; otherwise it is sleeping out its gathering window anyway.
            if len(self._pending) in (1, self._config.batch_max):
                self._cond.notify_all()

    async def add(self, body: bytes, search_keys: Sequence[tuple[str, str]] = ()) -> AddResult:
        """Add an entry; returns once its index is durably committed.

        An identical body returns the existing index with ``duplicate=True``. Raises as
        :meth:`submit`. Cancelling the caller does not unsequence the entry.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[AddResult] = loop.create_future()
        self._enqueue(body, search_keys, _LoopFuture(loop, future))
        return await future

    def add_blocking(self, body: bytes, search_keys: Sequence[tuple[str, str]] = (), *,
                     timeout: float | None = 60.0) -> AddResult:
        """:meth:`add` for threads; :class:`~sealtrail.errors.LogOverloadedError` on timeout."""
        future = self.submit(body, search_keys)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError as exc:
            raise LogOverloadedError("the entry was not sequenced in time",
                                     actual=f"{timeout} s") from exc

    def _register_waiter(self, index: int, target: _Target) -> PublishedCheckpoint | None:
        """The covering checkpoint if there is one already, else queue ``target`` for it."""
        if not _is_int(index) or not 0 <= index <= _MAX_INT64:
            raise UsageError("index must be a non-negative integer", actual=index)
        with self._cond:
            snap = self._current()
            if index < snap.checkpoint.size:
                return snap.checkpoint
            if index >= self._sequenced:
                raise LogEntryNotFoundError("no entry has this index", actual=index,
                                            expected=f"< {self._sequenced}")
            if self._closed:
                raise LogError("the log is closed")
            heapq.heappush(self._waiters, (index, next(self._waiter_ids), target))
        return None

    def _checkpoint_future(self, index: int) -> concurrent.futures.Future[PublishedCheckpoint]:
        future: concurrent.futures.Future[PublishedCheckpoint] = concurrent.futures.Future()
        covered = self._register_waiter(index, future)
        if covered is not None:
            future.set_result(covered)
        return future

    async def wait_for_checkpoint(self, index: int, timeout: float) -> PublishedCheckpoint:
        """The first published checkpoint whose size is greater than ``index``.

        Raises :class:`~sealtrail.errors.LogEntryNotFoundError` if no entry has that
        index, :class:`~sealtrail.errors.LogOverloadedError` if no checkpoint covers it
        within ``timeout`` seconds, :class:`~sealtrail.errors.LogError` if the log closes.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[PublishedCheckpoint] = loop.create_future()
        covered = self._register_waiter(index, _LoopFuture(loop, future))
        if covered is not None:
            return covered
        # One timer handle, not asyncio.wait_for's extra task and future per call.
        timer = None if timeout is None else loop.call_later(timeout, _expire, future)
        try:
            return await future
        except TimeoutError as exc:
            raise LogOverloadedError("no checkpoint covered the entry in time",
                                     actual=f"index {index} after {timeout} s") from exc
        finally:
            if timer is not None:
                timer.cancel()

    def wait_blocking(self, index: int, timeout: float) -> PublishedCheckpoint:
        """:meth:`wait_for_checkpoint` for threads."""
        future = self._checkpoint_future(index)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            raise LogOverloadedError("no checkpoint covered the entry in time",
                                     actual=f"index {index} after {timeout} s") from exc

    # -- read path ----------------------------------------------------------------------

    def _current(self) -> _Snapshot:
        snap = self._snapshot
        if snap is None:  # pragma: no cover - open() always publishes
            raise LogError("the log has not published a checkpoint yet")
        return snap

    def latest_checkpoint(self) -> PublishedCheckpoint:
        """The latest published checkpoint."""
        return self._current().checkpoint

    def entry(self, index: int) -> StoredEntry:
        """The entry at ``index``, if the latest checkpoint covers it.

        Raises :class:`~sealtrail.errors.LogEntryNotFoundError` otherwise.
        """
        size = self._current().checkpoint.size
        if not _is_int(index) or not 0 <= index < size:
            raise LogEntryNotFoundError("no entry has this index", actual=index,
                                        expected=f"0 <= index < {size}")
        rows = self._seq.entries(index, index + 1)
        if not rows:  # pragma: no cover - the sequencer lost a published entry
            raise LogStorageError("a published entry is missing from the sequencer",
                                  actual=index)
        row = rows[0]
        return StoredEntry(row.index, row.body, row.integrated_time)

    def find(self, leaf_hash: bytes) -> int | None:
        """The index of the published entry with this leaf hash (the Rekor UUID), or None."""
        if not isinstance(leaf_hash, (bytes, bytearray)) or len(leaf_hash) != HASH_SIZE:
            raise UsageError("a leaf hash is 32 bytes", actual=leaf_hash)
        index = self._seq.find(bytes(leaf_hash))
        if index is None or index >= self._current().checkpoint.size:
            return None
        return index

    def search(self, kind: str, value: str, limit: int = 100) -> list[int]:
        """Indexes of published entries stored under the search key (kind, value).

        Ascending, at most ``limit`` (1..1000). Raises
        :class:`~sealtrail.errors.UsageError` for an invalid kind, value or limit.
        """
        ((kind, value),) = _check_search_keys([(kind, value)], error=UsageError)
        if not _is_int(limit) or not 1 <= limit <= MAX_SEARCH_LIMIT:
            raise UsageError("search limit is out of range", actual=limit,
                             expected=f"1..{MAX_SEARCH_LIMIT}")
        return self._seq.search(kind, value, self._current().checkpoint.size, limit)

    def _node_source(self, snap: _Snapshot) -> _proofs.NodeSource:
        size = snap.checkpoint.size
        # One proof touches only a few tiles (about one per 8 levels) but asks for ~log2(n)
        # nodes: remember the tiles for the duration of this proof, so a deeper tree costs
        # little more than a shallow one (no lock or LRU bookkeeping per node).
        seen: dict[tuple[int, int], _proofs.ExpandedTile] = {}

        def node(height: int, index: int) -> bytes:
            level, tile_index, sub, offset = _proofs.tile_coordinates(height, index)
            tile = seen.get((level, tile_index))
            if tile is None:
                if tile_width(level, tile_index, size) == TILE_WIDTH:
                    tile = self._cache.get(level, tile_index,
                                           lambda: self._full_tile(level, tile_index))
                else:
                    tile = snap.expanded_edge(level)
                seen[(level, tile_index)] = tile
            return _proofs.node_from_tile(tile, sub, offset)

        return node

    def _check_size(self, tree_size: int, what: str, snap: _Snapshot) -> int:
        if not _is_int(tree_size) or tree_size < 0:
            raise UsageError(f"{what} must be a non-negative integer", actual=tree_size)
        if tree_size > snap.checkpoint.size:
            raise LogEntryNotFoundError(f"{what} is beyond the latest checkpoint",
                                        actual=tree_size,
                                        expected=f"<= {snap.checkpoint.size}")
        return tree_size

    def inclusion_proof(self, index: int, tree_size: int) -> list[bytes]:
        """The inclusion proof (leaf to root) for ``index`` in the tree of ``tree_size``.

        Raises :class:`~sealtrail.errors.UsageError` unless ``0 <= index < tree_size``
        and :class:`~sealtrail.errors.LogEntryNotFoundError` if ``tree_size`` is beyond
        the latest checkpoint.
        """
        snap = self._current()
        tree_size = self._check_size(tree_size, "tree size", snap)
        if not _is_int(index) or not 0 <= index < tree_size:
            raise UsageError("leaf index is not inside the tree", actual=index,
                             expected=f"0 <= index < {tree_size}")
        return _proofs.inclusion_proof(index, tree_size, self._node_source(snap))

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """The consistency proof from ``old_size`` to ``new_size`` (empty if equal or 0).

        Raises :class:`~sealtrail.errors.UsageError` unless ``0 <= old_size <= new_size``
        and :class:`~sealtrail.errors.LogEntryNotFoundError` if ``new_size`` is beyond
        the latest checkpoint.
        """
        snap = self._current()
        new_size = self._check_size(new_size, "new tree size", snap)
        old_size = self._check_size(old_size, "old tree size", snap)
        if old_size > new_size:
            raise UsageError("old tree size is larger than the new one", actual=old_size,
                             expected=f"<= {new_size}")
        return _proofs.consistency_proof(old_size, new_size, self._node_source(snap))

    def root_at(self, tree_size: int) -> bytes:
        """The root hash of the tree of ``tree_size`` (any size up to the latest)."""
        snap = self._current()
        tree_size = self._check_size(tree_size, "tree size", snap)
        return _proofs.range_root(0, tree_size, self._node_source(snap))

    def read_tile(self, level: int, index: int, width: int | None) -> bytes:
        """Tile bytes as served at ``tile/<L>/<N>[.p/<W>]`` for the latest checkpoint.

        A partial width smaller than the tile's current width is served as the prefix
        (tiles only grow; C2SP tlog-tiles). Raises
        :class:`~sealtrail.errors.LogEntryNotFoundError` if the tile (at that width) does
        not exist, :class:`~sealtrail.errors.UsageError` for out-of-range arguments.
        """
        _check_tile_args(level, index, width, MAX_LEVEL)
        snap = self._current()
        have = tile_width(level, index, snap.checkpoint.size)
        want = TILE_WIDTH if width is None else width
        if have == 0 or want > have or (width is None and have < TILE_WIDTH):
            raise LogEntryNotFoundError("no such tile", actual=tile_path(level, index, width),
                                        expected=f"tree size {snap.checkpoint.size}")
        data = self._full_tile(level, index) if have == TILE_WIDTH else snap.edge.tiles[level]
        return data[:want * HASH_SIZE]

    def read_entry_bundle(self, index: int, width: int | None) -> bytes:
        """Entry bundle bytes as served at ``tile/entries/<N>[.p/<W>]`` (see read_tile)."""
        _check_tile_args(0, index, width, 0)
        snap = self._current()
        have = tile_width(0, index, snap.checkpoint.size)
        want = ENTRY_BUNDLE_WIDTH if width is None else width
        if have == 0 or want > have or (width is None and have < ENTRY_BUNDLE_WIDTH):
            raise LogEntryNotFoundError("no such entry bundle",
                                        actual=entries_path(index, width),
                                        expected=f"tree size {snap.checkpoint.size}")
        if have == ENTRY_BUNDLE_WIDTH:
            data = self._full_bundle(index)
            return data if want == have else encode_entry_bundle(
                decode_entry_bundle(data, have)[:want])
        return encode_entry_bundle(snap.edge.bundle[:want])

    # -- tiles: read with repair --------------------------------------------------------

    def _full_tile(self, level: int, index: int) -> bytes:
        """A full tile from the store, rebuilt (and rewritten) if missing or damaged."""
        path = tile_path(level, index)
        data = self._tiles.read(path)
        if data is not None and len(data) == TILE_BYTES:
            return data
        _log.warning("tile %s is %s; rebuilding it from the sequenced entries", path,
                     "missing" if data is None else "damaged")
        data = self._derive_tile(level, index, TILE_WIDTH)
        self._repair_object(path, data)
        return data

    def _repair_object(self, path: str, data: bytes) -> None:
        # A repair of a full object that may lie below the durable size: sync it at once,
        # since no barrier is bound to cover it and open() only rewrites beyond that size.
        self._tiles.write_many([(path, data)])
        self._tiles.sync([path])

    def _derive_tile(self, level: int, index: int, width: int) -> bytes:
        """The first ``width`` hashes of tile (level, index), from the level below."""
        if level == 0:
            leaves = self._seq.leaf_hashes(index * TILE_WIDTH, index * TILE_WIDTH + width)
            if len(leaves) != width:
                raise LogStorageError("the sequencer is missing entries a tile needs",
                                      actual=len(leaves), expected=width)
            return b"".join(leaves)
        children = range(index * TILE_WIDTH, index * TILE_WIDTH + width)
        return b"".join(subtree_root(_split_hashes(self._full_tile(level - 1, c)))
                        for c in children)

    def _full_bundle(self, index: int) -> bytes:
        path = entries_path(index)
        data = self._tiles.read(path)
        if data is not None:
            try:
                decode_entry_bundle(data, ENTRY_BUNDLE_WIDTH)
                return data
            except Error:
                pass
        _log.warning("entry bundle %s is %s; rebuilding it", path,
                     "missing" if data is None else "damaged")
        rows = self._seq.entries(index * ENTRY_BUNDLE_WIDTH, (index + 1) * ENTRY_BUNDLE_WIDTH)
        if len(rows) != ENTRY_BUNDLE_WIDTH:
            raise LogStorageError("the sequencer is missing entries a bundle needs",
                                  actual=len(rows), expected=ENTRY_BUNDLE_WIDTH)
        data = encode_entry_bundle([r.body for r in rows])
        self._repair_object(path, data)
        return data

    def _load_edge(self, size: int) -> Edge:
        """The edge at ``size``, trusting only what is durable at ``size``.

        Level 0 and the bundle come from the sequencer; a higher level's partial tile is
        derived from the full tiles of the level below (full at ``size``, hence synced),
        never read from its own partial file, which was never synced.
        """
        tiles = []
        for level in range(edge_levels(size)):
            nodes = size >> (TILE_HEIGHT * level)
            width, index = nodes % TILE_WIDTH, nodes // TILE_WIDTH
            tiles.append(self._derive_tile(level, index, width) if width else b"")
        start = size - size % ENTRY_BUNDLE_WIDTH
        bundle = tuple(r.body for r in self._seq.entries(start, size))
        if len(bundle) != size - start:
            raise LogStorageError("the sequencer is missing integrated entries",
                                  actual=len(bundle), expected=size - start)
        return Edge(size, tuple(tiles), bundle)

    def _write_tiles(self, writes: Sequence[TileWrite], *, repair: bool = False) -> list[str]:
        """Store integration output; returns the paths of its full objects.

        A full tile already present is never changed: an existing full tile of the right
        size with different content means the tile tree belongs to another history, so
        refuse (LogStorageError) rather than rewrite a published tile. One of the wrong
        size is damage and is replaced. ``repair`` rewrites full objects unconditionally
        (open() does so beyond the durable size, where a power loss may have left a
        damaged tile that looks whole). Every full path is returned, written or found
        equal: an equal one may itself be an unsynced write of an earlier, failed cycle.
        """
        objects = []
        full = []
        for w in writes:
            path = (entries_path(w.index, w.width) if w.level is None
                    else tile_path(w.level, w.index, w.width))
            if w.full:
                full.append(path)
                if not repair:
                    existing = self._tiles.read(path)
                    if existing == w.data:
                        continue
                    if existing is not None and _valid_full(w.level, existing):
                        raise LogStorageError("a full tile already holds different "
                                              "content; the tile directory belongs to "
                                              "another history", actual=path)
            objects.append((path, w.data))
        if objects:
            self._tiles.write_many(objects)
        return full

    # -- recovery -----------------------------------------------------------------------

    def _recover(self) -> None:
        """Bring tiles and state up to every committed entry, then publish (see open()).

        Trusted: the sequenced entries (committed durably before any ack) and the tiles
        that are full at the recorded durable size X (synced before X was recorded).
        Everything else is re-derived: every tile and bundle that was not full at X, in
        every width, is rewritten or checked (a power loss may have damaged any of them
        and left it looking whole). That is bounded: the writer advances X every
        _SYNC_SECONDS or _SYNC_OBJECTS full tiles. The recorded state may lag the
        published checkpoints (saved with sync=False); that is safe because integration
        over the committed entries is deterministic, so re-deriving gives every tree
        published before, and the new checkpoint is consistent with all of them.
        """
        state = self._seq.load_state()
        sequenced = self._seq.sequenced_size()
        if state is None:
            if self._tiles.read("checkpoint") is not None and sequenced == 0:
                raise LogStorageError("the tile directory already holds a published log but "
                                      "the sequencer is empty")
            size, root, durable = 0, EMPTY_ROOT, 0
        else:
            size, root = state.size, state.root_hash
            durable = max(0, min(state.durable_size, size))
        if sequenced < size:
            raise LogStorageError("the sequencer holds fewer entries than were integrated",
                                  actual=sequenced, expected=f">= {size}")
        written: list[str] = []
        edge = self._catch_up(self._load_edge(durable), size, written)
        if edge.root() != root:
            _log.warning("the tiles durable at %d entries do not lead to the recorded root "
                         "at %d; rebuilding every tile from the sequenced entries",
                         durable, size)
            written = []
            edge = self._catch_up(Edge.empty(), size, written)
            if edge.root() != root:
                raise LogStorageError("the sequenced entries do not hash to the recorded root",
                                      actual=edge.root().hex(), expected=root.hex())
            self._cache.clear()
        # Entries committed after the last recorded state (a crash between the steps).
        edge = self._catch_up(edge, sequenced, written)
        self._repair_partials(edge)
        # The open barrier: once the full objects are synced (and their partials durably
        # gone), everything full at the current size is durable.
        if written:
            for path in written:
                self._tiles.delete_partials(path)
            self._tiles.sync(written)
        self._edge = edge
        self._sequenced = sequenced
        self._durable_size = edge.size
        self._publish(edge, sync=True)

    def _catch_up(self, edge: Edge, end: int, written: list[str]) -> Edge:
        """Integrate entries [edge.size, end) from the sequencer, rewriting full objects.

        Partial tiles are left to :meth:`_repair_partials` (intermediate ones are moot).
        """
        while edge.size < end:
            stop = min(end, edge.size + _CATCH_UP_CHUNK)
            rows = self._seq.entries(edge.size, stop)
            if len(rows) != stop - edge.size:
                raise LogStorageError("the sequencer has a gap in its indexes",
                                      actual=len(rows), expected=stop - edge.size)
            result = integrate(edge, [r.leaf_hash for r in rows], [r.body for r in rows])
            written += self._write_tiles([w for w in result.writes if w.full], repair=True)
            edge = result.edge
        return edge

    def _repair_partials(self, edge: Edge) -> None:
        """Make every partial version of the edge's tiles right, and the current one exist.

        Tiles that are full now had their partials removed by the caller; what remains
        are the edge's own tiles, which may hold partial files of any width written since
        the last barrier (never synced): each one present is checked against the prefix
        it must be and rewritten if it is not; the current width is written if missing.
        """
        checks: list[tuple[str, bytes, bool]] = []
        for level, data in enumerate(edge.tiles):
            if data:
                index = (edge.size >> (TILE_HEIGHT * level)) // TILE_WIDTH
                widths = len(data) // HASH_SIZE
                for width in range(1, widths + 1):
                    checks.append((tile_path(level, index, width),
                                   data[:width * HASH_SIZE], width == widths))
        if edge.bundle:
            index = edge.size // ENTRY_BUNDLE_WIDTH
            encoded = encode_entry_bundle(edge.bundle)
            offset = 0
            for width, entry in enumerate(edge.bundle, 1):
                offset += 2 + len(entry)  # SPEC: C2SP tlog-tiles: uint16 length, then entry
                checks.append((entries_path(index, width), encoded[:offset],
                               width == len(edge.bundle)))
        objects = []
        for path, expected, current in checks:
            existing = self._tiles.read(path)
            if existing != expected and (existing is not None or current):
                objects.append((path, expected))
        if objects:
            _log.warning("rewriting %d missing or damaged partial tiles", len(objects))
            self._tiles.write_many(objects)

    # -- the writer ---------------------------------------------------------------------

    def _run(self) -> None:
        interval = self._config.checkpoint_interval
        next_checkpoint = time.monotonic() + interval
        next_barrier = time.monotonic() + _SYNC_SECONDS
        failures = 0
        while True:
            # Entries left unintegrated by a failed cycle are retried at once (the failure
            # already slept its back-off), not at the next checkpoint tick.
            batch = self._gather(time.monotonic() if self._unintegrated else next_checkpoint)
            if batch is None:
                break
            try:
                if batch:
                    self._sequence(batch)
                if self._unintegrated:
                    self._integrate_pending()
                    next_checkpoint = time.monotonic() + interval
                elif time.monotonic() >= next_checkpoint:
                    # Idle: re-sign, and record the state durably (the cycles above save
                    # it with sync=False, made durable by the next commit, which idles).
                    self._publish(self._edge, sync=True)
                    next_checkpoint = time.monotonic() + interval
                failures = 0
                self._dispatch.flush()  # e.g. a batch of duplicates publishes nothing
                if time.monotonic() >= next_barrier or len(self._unsynced) >= _SYNC_OBJECTS:
                    if self._start_barrier():
                        next_barrier = time.monotonic() + _SYNC_SECONDS
            except Exception as exc:  # keep the writer alive whatever happens
                self._dispatch.flush()  # acknowledgements of a batch committed before
                failures += 1
                delay = min(_BACKOFF_CAP, _BACKOFF_FIRST * 2 ** (failures - 1))
                _log.error("log writer cycle failed (%s); retrying in %.2f s",
                           exc if isinstance(exc, Error) else repr(exc), delay,
                           exc_info=not isinstance(exc, Error))
                with self._cond:
                    if not self._stopping:
                        self._cond.wait(delay)
                    elif not self._pending:
                        break
        _log.debug("log writer for %s stopped", self._config.origin)

    # -- group sync of tiles (docs/adr/0004) ----------------------------------------------

    def _start_barrier(self) -> bool:
        """Hand the full objects written so far to the syncer; False if one still runs.

        Writer thread only: every full object of the integrated tree at ``size`` is either
        in the list handed over or was synced by an earlier barrier (or at open).
        """
        if self._barrier is not None and not self._barrier.done():
            return False
        size = self._edge.size
        with self._sync_lock:
            paths, self._unsynced = self._unsynced, []
        if not paths:
            # Nothing full was completed since the last barrier: the claim extends for free.
            self._durable_size = max(self._durable_size, size)
            return True
        assert self._syncer is not None
        try:
            self._barrier = self._syncer.submit(self._sync_objects, paths, size)
        except BaseException:
            self._requeue(paths)  # never drop a path: a later barrier would claim it
            raise
        return True

    def _requeue(self, paths: list[str]) -> None:
        with self._sync_lock:
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
        with self._cond:
            self._durable_size = max(self._durable_size, size)
        return True

    def _final_barrier(self) -> None:
        """At close: wait for the syncer, sync the rest, record the state durably."""
        syncer = self._syncer
        if syncer is not None:
            syncer.shutdown(wait=True)  # lets a running barrier finish
        snap = self._snapshot
        if snap is None:  # pragma: no cover - open() always publishes
            return
        with self._sync_lock:
            paths, self._unsynced = self._unsynced, []
        if paths and not self._sync_objects(paths, snap.checkpoint.size):
            return
        if not paths:
            self._durable_size = max(self._durable_size, snap.checkpoint.size)
        cp = snap.checkpoint
        try:
            self._seq.save_state(IntegrationState(cp.size, cp.root_hash, cp.note,
                                                  cp.published_at,
                                                  min(self._durable_size, cp.size)))
        except Exception as exc:  # the state is re-derivable; only a slower next open
            _log.error("could not record the final log state: %s", exc)

    def _gather(self, deadline: float) -> list[_Pending] | None:
        """The next batch; [] when the checkpoint deadline passes; None to stop."""
        cfg = self._config
        with self._cond:
            while not self._pending:
                if self._stopping:
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._cond.wait(remaining)
            if cfg.batch_wait > 0 and len(self._pending) < cfg.batch_max \
                    and not self._stopping:
                end = time.monotonic() + cfg.batch_wait
                while len(self._pending) < cfg.batch_max and not self._stopping:
                    remaining = end - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            count = min(cfg.batch_max, len(self._pending))
            return [self._pending.popleft() for _ in range(count)]

    def _sequence(self, batch: list[_Pending]) -> None:
        """Commit one batch, then acknowledge it. Nothing is acknowledged on failure."""
        try:
            assignments = self._seq.assign([p.entry for p in batch], int(self._clock()))
            if len(assignments) != len(batch):
                raise LogStorageError("the sequencer returned the wrong number of indexes",
                                      actual=len(assignments), expected=len(batch))
        except Exception as exc:
            error = _storage_error(exc, "sequencing a batch")
            dispatch = _Dispatch()
            for item in batch:
                dispatch.resolve(item.future, error=error)
            dispatch.flush()
            raise error from exc
        expected = self._edge.size + len(self._unintegrated)
        fresh = [(a, p) for a, p in zip(assignments, batch) if not a.duplicate]
        consistent = all(a.index == expected + i for i, (a, _) in enumerate(fresh))
        with self._cond:
            if consistent:
                self._unintegrated.extend((p.entry.leaf_hash, p.entry.body) for _, p in fresh)
            self._sequenced = max(self._sequenced,
                                  max((a.index + 1 for a in assignments), default=0))
        # Coroutine callers get their acknowledgement with this cycle's checkpoint, in ONE
        # wake-up of their loop (the writer flushes after publishing, or on failure);
        # threads are resolved at once.
        for assignment, item in zip(assignments, batch):
            self._dispatch.resolve(item.future, AddResult(*assignment))
        if not consistent:
            # Someone else appended to the sequencer: take the truth from it.
            _log.error("sequencer indexes are not contiguous with this engine's view; "
                       "reloading unintegrated entries from the sequencer")
            self._reload_unintegrated()

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
        full = self._write_tiles(result.writes)
        if full:
            with self._sync_lock:
                self._unsynced.extend(full)
        for level, index, rows in result.expanded:
            self._cache.put(level, index, rows)
        self._publish(result.edge, result.root)
        with self._cond:
            self._edge = result.edge
            del self._unintegrated[:len(items)]

    def _publish(self, edge: Edge, root: bytes | None = None, *,
                 sync: bool = False) -> PublishedCheckpoint:
        """Sign, record, expose, and wake the waiters the new size covers.

        The state is saved with ``sync=False`` on the busy path: the next batch's commit
        makes it durable, and a crash that loses it loses nothing that open() cannot
        re-derive (the published tree is a function of the committed entries).
        """
        if root is None:
            snap = self._snapshot
            root = (snap.checkpoint.root_hash if snap is not None and snap.edge is edge
                    else edge.root())
        body = Checkpoint(self._config.origin, edge.size, root).to_body()
        note = sign_note(body, self._config.key_name, self._config.private_key)
        now = self._clock()
        self._seq.save_state(IntegrationState(edge.size, root, note, now,
                                              min(self._durable_size, edge.size)),
                             sync=sync)
        # The static copy for file servers and CDNs; the sequencer's record is the truth.
        self._tiles.write_many([("checkpoint", note.encode("utf-8"))])
        published = PublishedCheckpoint(edge.size, root, note, now)
        woken = []
        with self._cond:
            self._edge = edge
            self._snapshot = _Snapshot(published, edge, self._snapshot)
            while self._waiters and self._waiters[0][0] < edge.size:
                woken.append(heapq.heappop(self._waiters)[2])
        for future in woken:
            self._dispatch.resolve(future, published)
        self._dispatch.flush()
        return published


# -- helpers --------------------------------------------------------------------------------


def _split_hashes(data: bytes) -> list[bytes]:
    return [data[i:i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def _valid_full(level: int | None, data: bytes) -> bool:
    if level is not None:
        return len(data) == TILE_BYTES
    try:
        decode_entry_bundle(data, ENTRY_BUNDLE_WIDTH)
    except Error:
        return False
    return True


def _check_tile_args(level: int, index: int, width: int | None, max_level: int) -> None:
    if not _is_int(level) or not 0 <= level <= max_level:
        raise UsageError("tile level is out of range", actual=level,
                         expected=f"0..{max_level}")
    if not _is_int(index) or not 0 <= index <= MAX_TILE_INDEX:
        raise UsageError("tile index is out of range", actual=index)
    if width is not None and (not _is_int(width) or not 1 <= width < TILE_WIDTH):
        raise UsageError("partial tile width is out of range", actual=width,
                         expected="1..255 (None for a full tile)")


def _check_search_keys(keys: Sequence[tuple[str, str]], *,
                       error: type[Error] = LogEntryInvalidError) -> tuple[tuple[str, str], ...]:
    if isinstance(keys, (str, bytes)) or not isinstance(keys, Sequence):
        raise error("search keys must be a sequence of (kind, value) pairs",
                    actual=type(keys).__name__)
    if len(keys) > MAX_SEARCH_KEYS:
        raise error("too many search keys", actual=len(keys), expected=f"<= {MAX_SEARCH_KEYS}")
    out = []
    for pair in keys:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise error("a search key is a (kind, value) pair", actual=pair)
        kind, value = pair
        if not isinstance(kind, str) or len(kind) > MAX_SEARCH_KIND_CHARS or \
                not _SEARCH_KIND_RE.match(kind):
            raise error("invalid search key kind", actual=kind,
                        expected="lower-case letters, digits, '_.:-' (at most 64)")
        if not isinstance(value, str) or not 1 <= len(value) <= MAX_SEARCH_VALUE_CHARS:
            raise error("invalid search key value", actual=value,
                        expected=f"a string of 1..{MAX_SEARCH_VALUE_CHARS} characters")
        out.append((kind, value))
    return tuple(dict.fromkeys(out))
