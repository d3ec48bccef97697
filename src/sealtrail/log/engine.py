"""The log engine: sequence entries durably, integrate them into tiles, publish checkpoints.

One :class:`LogEngine` per log. A single background writer thread runs the loop::

    gather a batch -> sequence it (ONE durable transaction) -> acknowledge the adds
                   -> integrate the new leaves into tiles (written atomically)
                   -> sign the checkpoint -> record it durably -> wake checkpoint waiters

and re-signs the checkpoint every ``checkpoint_interval`` while idle. Nothing is
acknowledged before the sequencer committed it; tiles are derived data, so a crash at any
point is repaired by :meth:`LogEngine.open`, which re-integrates from the recorded
integrated size (and rebuilds any missing tile from the sequenced entries).

Readers (proofs, tiles, entries, search) see one consistent snapshot: the latest
published checkpoint plus the right edge of the tree at that size; nothing beyond the
published size is exposed.

``add`` and ``wait_for_checkpoint`` are coroutines usable from any asyncio event loop;
results cross from the writer thread through ``concurrent.futures`` futures, which
asyncio resolves with ``loop.call_soon_threadsafe`` (``asyncio.wrap_future``).
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
from sealtrail.log import proofs as _proofs
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


class _Pending:
    __slots__ = ("entry", "future")

    def __init__(self, entry: NewEntry, future: concurrent.futures.Future[AddResult]) -> None:
        self.entry = entry
        self.future = future


class _Snapshot:
    """What readers see: the published checkpoint and the edge at its size."""

    __slots__ = ("checkpoint", "edge", "_expanded")

    def __init__(self, checkpoint: PublishedCheckpoint, edge: Edge) -> None:
        self.checkpoint = checkpoint
        self.edge = edge
        self._expanded: dict[int, _proofs.ExpandedTile] = {}

    def expanded_edge(self, level: int) -> _proofs.ExpandedTile:
        tile = self._expanded.get(level)
        if tile is None:
            tile = self._expanded[level] = expand_tile(self.edge.tiles[level])
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
        self._waiters: list[tuple[int, int, concurrent.futures.Future[PublishedCheckpoint]]] = []
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

    # -- lifecycle ----------------------------------------------------------------------

    @classmethod
    def open(cls, config: LogConfig, storage: LogStorage, *,
             clock: Callable[[], float] = time.time) -> "LogEngine":
        """Open the log in ``storage``, recovering from any crash, and publish a checkpoint.

        Recovery: the edge of the tree at the recorded integrated size is read back from
        the tiles (any missing or damaged tile is rebuilt from the sequenced entries) and
        checked against the recorded root; entries sequenced after it are integrated.
        Every sequenced entry keeps its index.

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
        closed = LogError("the log is closed")
        with self._cond:
            pending, self._pending = list(self._pending), deque()
            waiters, self._waiters = self._waiters, []
        for item in pending:
            _resolve(item.future, error=closed)
        for _, _, future in waiters:
            _resolve(future, error=closed)
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
        future: concurrent.futures.Future[AddResult] = concurrent.futures.Future()
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
        return future

    async def add(self, body: bytes, search_keys: Sequence[tuple[str, str]] = ()) -> AddResult:
        """Add an entry; returns once its index is durably committed.

        An identical body returns the existing index with ``duplicate=True``. Raises as
        :meth:`submit`. Cancelling the caller does not unsequence the entry.
        """
        return await asyncio.wrap_future(self.submit(body, search_keys))

    def add_blocking(self, body: bytes, search_keys: Sequence[tuple[str, str]] = (), *,
                     timeout: float | None = 60.0) -> AddResult:
        """:meth:`add` for threads; :class:`~sealtrail.errors.LogOverloadedError` on timeout."""
        future = self.submit(body, search_keys)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError as exc:
            raise LogOverloadedError("the entry was not sequenced in time",
                                     actual=f"{timeout} s") from exc

    def _checkpoint_future(self, index: int) -> concurrent.futures.Future[PublishedCheckpoint]:
        if not _is_int(index) or not 0 <= index <= _MAX_INT64:
            raise UsageError("index must be a non-negative integer", actual=index)
        future: concurrent.futures.Future[PublishedCheckpoint] = concurrent.futures.Future()
        with self._cond:
            snap = self._current()
            if index < snap.checkpoint.size:
                future.set_result(snap.checkpoint)
                return future
            if index >= self._sequenced:
                raise LogEntryNotFoundError("no entry has this index", actual=index,
                                            expected=f"< {self._sequenced}")
            if self._closed:
                raise LogError("the log is closed")
            heapq.heappush(self._waiters, (index, next(self._waiter_ids), future))
        return future

    async def wait_for_checkpoint(self, index: int, timeout: float) -> PublishedCheckpoint:
        """The first published checkpoint whose size is greater than ``index``.

        Raises :class:`~sealtrail.errors.LogEntryNotFoundError` if no entry has that
        index, :class:`~sealtrail.errors.LogOverloadedError` if no checkpoint covers it
        within ``timeout`` seconds, :class:`~sealtrail.errors.LogError` if the log closes.
        """
        future = self._checkpoint_future(index)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except TimeoutError as exc:  # asyncio.TimeoutError is TimeoutError on 3.11
            raise LogOverloadedError("no checkpoint covered the entry in time",
                                     actual=f"index {index} after {timeout} s") from exc

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

        def node(height: int, index: int) -> bytes:
            level, tile_index, sub, offset = _proofs.tile_coordinates(height, index)
            if tile_width(level, tile_index, size) == TILE_WIDTH:
                tile = self._cache.get(level, tile_index,
                                       lambda: self._full_tile(level, tile_index))
            else:
                tile = snap.expanded_edge(level)
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
        self._tiles.write_many([(path, data)])
        return data

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
        self._tiles.write_many([(path, data)])
        return data

    def _edge_tile(self, level: int, index: int, width: int) -> bytes:
        """The first ``width`` hashes of tile (level, index): partial, full, or rebuilt."""
        want = width * HASH_SIZE
        for path in (tile_path(level, index, width), tile_path(level, index)):
            data = self._tiles.read(path)
            if data is not None and len(data) >= want and (
                    len(data) == want or len(data) == TILE_BYTES):
                return data[:want]
        return self._derive_tile(level, index, width)

    def _load_edge(self, size: int) -> Edge:
        """The edge at ``size``: level 0 and the bundle from the sequencer, the rest tiles."""
        tiles = []
        for level in range(edge_levels(size)):
            nodes = size >> (TILE_HEIGHT * level)
            width, index = nodes % TILE_WIDTH, nodes // TILE_WIDTH
            if not width:
                tiles.append(b"")
            elif level == 0:
                tiles.append(self._derive_tile(0, index, width))
            else:
                tiles.append(self._edge_tile(level, index, width))
        start = size - size % ENTRY_BUNDLE_WIDTH
        bundle = tuple(r.body for r in self._seq.entries(start, size))
        if len(bundle) != size - start:
            raise LogStorageError("the sequencer is missing integrated entries",
                                  actual=len(bundle), expected=size - start)
        return Edge(size, tuple(tiles), bundle)

    def _write_tiles(self, writes: Sequence[TileWrite], *, repair: bool = False) -> None:
        """Store integration output. A full tile already present is never changed.

        An existing full tile of the right size with different content means the tile
        tree belongs to another history: refuse (LogStorageError) rather than rewrite a
        published tile. One of the wrong size is damage and is replaced. ``repair``
        rewrites full tiles unconditionally (used by a rebuild after a root mismatch).
        """
        objects = []
        for w in writes:
            path = (entries_path(w.index, w.width) if w.level is None
                    else tile_path(w.level, w.index, w.width))
            if w.full and not repair:
                existing = self._tiles.read(path)
                if existing == w.data:
                    continue
                if existing is not None and _valid_full(w.level, existing):
                    raise LogStorageError("a full tile already holds different content; "
                                          "the tile directory belongs to another history",
                                          actual=path)
            objects.append((path, w.data))
        if objects:
            self._tiles.write_many(objects)

    # -- recovery -----------------------------------------------------------------------

    def _recover(self) -> None:
        state = self._seq.load_state()
        sequenced = self._seq.sequenced_size()
        if state is None:
            if self._tiles.read("checkpoint") is not None and sequenced == 0:
                raise LogStorageError("the tile directory already holds a published log but "
                                      "the sequencer is empty")
            size, root = 0, EMPTY_ROOT
        else:
            size, root = state.size, state.root_hash
        if sequenced < size:
            raise LogStorageError("the sequencer holds fewer entries than were integrated",
                                  actual=sequenced, expected=f">= {size}")
        edge = self._load_edge(size)
        if edge.root() != root:
            _log.warning("tiles at the edge of %d entries do not match the recorded root; "
                         "rebuilding every tile from the sequenced entries", size)
            edge = self._rebuild(size)
            if edge.root() != root:
                raise LogStorageError("the sequenced entries do not hash to the recorded root",
                                      actual=edge.root().hex(), expected=root.hex())
        self._restore_edge_objects(edge)
        self._edge = edge
        self._sequenced = sequenced
        # Entries committed after the last integration (a crash between the two steps).
        while self._edge.size < sequenced:
            end = min(sequenced, self._edge.size + _CATCH_UP_CHUNK)
            rows = self._seq.entries(self._edge.size, end)
            if len(rows) != end - self._edge.size:
                raise LogStorageError("the sequencer has a gap in its indexes",
                                      actual=len(rows), expected=end - self._edge.size)
            result = integrate(self._edge, [r.leaf_hash for r in rows], [r.body for r in rows])
            self._write_tiles(result.writes)
            self._edge = result.edge
        self._publish(self._edge)
        self._collect_partials_upto(size, self._edge.size)

    def _restore_edge_objects(self, edge: Edge) -> None:
        """Rewrite the edge's partial tiles and bundle if a static reader would miss them."""
        objects = []
        for level, data in enumerate(edge.tiles):
            if data:
                nodes = edge.size >> (TILE_HEIGHT * level)
                path = tile_path(level, nodes // TILE_WIDTH, len(data) // HASH_SIZE)
                if self._tiles.read(path) != data:
                    objects.append((path, data))
        if edge.bundle:
            path = entries_path(edge.size // ENTRY_BUNDLE_WIDTH, len(edge.bundle))
            data = encode_entry_bundle(edge.bundle)
            if self._tiles.read(path) != data:
                objects.append((path, data))
        if objects:
            _log.warning("restoring %d missing or damaged edge tiles", len(objects))
            self._tiles.write_many(objects)

    def _rebuild(self, size: int) -> Edge:
        """Re-integrate entries [0, size) from scratch, rewriting every tile."""
        edge = Edge.empty()
        while edge.size < size:
            end = min(size, edge.size + _CATCH_UP_CHUNK)
            rows = self._seq.entries(edge.size, end)
            if len(rows) != end - edge.size:
                raise LogStorageError("the sequencer has a gap in its indexes",
                                      actual=len(rows), expected=end - edge.size)
            result = integrate(edge, [r.leaf_hash for r in rows], [r.body for r in rows])
            self._write_tiles(result.writes, repair=True)
            edge = result.edge
        self._cache.clear()
        return edge

    # -- the writer ---------------------------------------------------------------------

    def _run(self) -> None:
        interval = self._config.checkpoint_interval
        next_checkpoint = time.monotonic() + interval
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
                    self._publish(self._edge)
                    next_checkpoint = time.monotonic() + interval
                failures = 0
            except Exception as exc:  # keep the writer alive whatever happens
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
            for item in batch:
                _resolve(item.future, error=error)
            raise error from exc
        expected = self._edge.size + len(self._unintegrated)
        fresh = [(a, p) for a, p in zip(assignments, batch) if not a.duplicate]
        consistent = all(a.index == expected + i for i, (a, _) in enumerate(fresh))
        with self._cond:
            if consistent:
                self._unintegrated.extend((p.entry.leaf_hash, p.entry.body) for _, p in fresh)
            self._sequenced = max(self._sequenced,
                                  max((a.index + 1 for a in assignments), default=0))
        for assignment, item in zip(assignments, batch):
            _resolve(item.future, AddResult(*assignment))
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
        self._write_tiles(result.writes)
        for level, index, rows in result.expanded:
            self._cache.put(level, index, rows)
        self._publish(result.edge, result.root)
        with self._cond:
            self._edge = result.edge
            del self._unintegrated[:len(items)]
        self._collect_partials_upto(old.size, result.edge.size)

    def _publish(self, edge: Edge, root: bytes | None = None) -> PublishedCheckpoint:
        """Sign, record durably, expose, and wake the waiters the new size covers."""
        if root is None:
            snap = self._snapshot
            root = (snap.checkpoint.root_hash if snap is not None and snap.edge is edge
                    else edge.root())
        body = Checkpoint(self._config.origin, edge.size, root).to_body()
        note = sign_note(body, self._config.key_name, self._config.private_key)
        now = self._clock()
        self._seq.save_state(IntegrationState(edge.size, root, note, now))
        # The static copy for file servers and CDNs; the sequencer's record is the truth.
        self._tiles.write_many([("checkpoint", note.encode("utf-8"))])
        published = PublishedCheckpoint(edge.size, root, note, now)
        woken = []
        with self._cond:
            self._edge = edge
            self._snapshot = _Snapshot(published, edge)
            while self._waiters and self._waiters[0][0] < edge.size:
                woken.append(heapq.heappop(self._waiters)[2])
        for future in woken:
            _resolve(future, published)
        return published

    def _collect_partials_upto(self, old_size: int, new_size: int) -> None:
        """Delete partial tiles and bundles that full ones have superseded.

        SPEC: C2SP tlog-tiles lets a log drop a partial tile once the full tile exists;
        clients then fetch the full tile. Failures here are only logged.
        """
        try:
            for level in range(edge_levels(new_size)):
                shift = TILE_HEIGHT * level
                first = (old_size >> shift) // TILE_WIDTH
                last = (new_size >> shift) // TILE_WIDTH  # tiles below this are full
                for index in range(first, last):
                    self._tiles.delete_partials(tile_path(level, index))
                    if level == 0:
                        self._tiles.delete_partials(entries_path(index))
        except Exception as exc:  # clean-up only; never fail the cycle for it
            _log.warning("could not delete superseded partial tiles: %s", exc)


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
