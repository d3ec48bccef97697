"""The small, role-based interfaces a log's storage drivers implement.

A log has two kinds of state, kept apart on purpose (docs/adr/0004):

- the **sequencer** state, small and transactional: which entry got which index, the
  dedup and search indexes, and the integration state (how far the tiles go and the last
  signed checkpoint). It is the source of truth: an index is acknowledged only once the
  sequencer has durably committed it.
- the **tiles**: hash tiles, entry bundles and the checkpoint, laid out as the C2SP
  tlog-tiles read API serves them. They are derived data: everything in them can be
  recomputed from the sequenced entries, so a crash between the two is repaired when the
  log opens. Tile writes are therefore not durable one by one: the engine makes them
  durable in groups (:meth:`TileStore.sync`) and records how far that got
  (:attr:`IntegrationState.durable_size`); open() rewrites everything beyond it.

The roles are separate protocols so that a driver can implement only what it is, and a
future PostgreSQL driver (several API replicas, one elected integrator) can slot in
without changing callers. Drivers share no base class; they share only the pure helpers
in ``sealtrail.log._integrate`` and ``sealtrail.merkle.tiles``.

Every method raises :class:`~sealtrail.errors.LogStorageError` when the backend fails
(never a foreign exception).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol, runtime_checkable

from sealtrail.errors import LogStorageError

__all__ = [
    "Assignment",
    "EntryBuilder",
    "EntryReader",
    "IntegrationState",
    "IntegrationStateStore",
    "IntegratorFencedError",
    "IntegratorLease",
    "NewEntry",
    "SearchIndex",
    "SequencedEntry",
    "ReplicatedSequencer",
    "Sequencer",
    "SequencerStorage",
    "TileStore",
]


#: ``build(index) -> (leaf_hash, body)``: an entry made from the index it gets.
EntryBuilder = Callable[[int], tuple[bytes, bytes]]


class NewEntry(NamedTuple):
    """An entry waiting for an index: its leaf hash, body and search keys.

    With ``build``, the entry is *built*: its body depends on its own index (a static-ct-api
    TileLeaf names its index in its leaf_index extension). The sequencer then ignores
    ``leaf_hash`` and ``body``, and calls ``build(index)`` inside the sequencing
    transaction, once the index is final (the commit it is part of is the one that gives
    the index), and stores the ``(leaf_hash, body)`` it returns. A built entry is never
    deduplicated against earlier entries (its body differs per index anyway).
    """

    leaf_hash: bytes
    body: bytes
    search_keys: tuple[tuple[str, str], ...] = ()
    build: EntryBuilder | None = None


class Assignment(NamedTuple):
    """The index an entry got (or already had, when ``duplicate``).

    ``built``: for a built entry, the ``(leaf_hash, body)`` its ``build`` returned for that
    index (what was stored); None for every other entry.
    """

    index: int  # type: ignore[assignment]  # a field named like tuple.index
    duplicate: bool
    integrated_time: int
    built: tuple[bytes, bytes] | None = None


class SequencedEntry(NamedTuple):
    """An entry as the sequencer holds it."""

    index: int  # type: ignore[assignment]  # a field named like tuple.index
    leaf_hash: bytes
    body: bytes
    integrated_time: int


class IntegrationState(NamedTuple):
    """How far the tiles go, and the checkpoint signed for that size.

    ``durable_size`` (<= ``size``): every full tile and full entry bundle made only of
    entries below it is durably stored (synced), and the partial versions of those tiles
    are durably deleted. Objects that cover any entry at or beyond it may be missing or
    damaged after a power loss; the engine re-derives and rewrites them when it opens
    (docs/adr/0004). 0 claims nothing, which is always safe.
    """

    size: int
    root_hash: bytes
    checkpoint: str  # the full signed note
    published_at: float  # unix seconds
    durable_size: int = 0


@runtime_checkable
class Sequencer(Protocol):
    """Assigns indexes. The only write path for entries."""

    def assign(self, entries: Sequence[NewEntry], integrated_time: int) -> list[Assignment]:
        """Give every entry the next free index, in order, in ONE durable transaction.

        An entry whose leaf hash is already sequenced (earlier, or earlier in this batch)
        gets the existing index with ``duplicate=True`` and the existing integrated time;
        its search keys are not stored again. Either every entry is committed or none is
        (then :class:`~sealtrail.errors.LogStorageError` is raised). When this returns,
        the assignments survive a crash or power loss.

        A built entry (``NewEntry.build``) is never a duplicate: ``build`` is called once,
        with its index, before the commit, and its result is in ``Assignment.built``. If a
        build raises, nothing is committed and its exception propagates unchanged; a built
        leaf hash that is already sequenced is a LogStorageError (nothing committed).
        """
        ...

    def sequenced_size(self) -> int:
        """The number of entries sequenced so far (the next index to assign)."""
        ...


@runtime_checkable
class EntryReader(Protocol):
    """Reads sequenced entries (integrated or not; callers bound what they expose)."""

    def entries(self, start: int, end: int) -> list[SequencedEntry]:
        """The entries with ``start <= index < end`` that exist, in index order."""
        ...

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        """The leaf hashes of entries ``start`` .. ``end - 1``, in index order."""
        ...

    def find(self, leaf_hash: bytes) -> int | None:
        """The index of the entry with this leaf hash, or None."""
        ...


@runtime_checkable
class SearchIndex(Protocol):
    """Looks entries up by search key (artifact digest, signer identity, ...)."""

    def search(self, kind: str, value: str, below: int, limit: int, *,
               start: int = 0) -> list[int]:
        """Indexes (``start`` <= index < ``below``, ascending, at most ``limit``) stored
        under (kind, value)."""
        ...


@runtime_checkable
class IntegrationStateStore(Protocol):
    """Durable record of the integrated size, root and last checkpoint."""

    def load_state(self) -> IntegrationState | None:
        """The last recorded state, or None for a new log."""
        ...

    def save_state(self, state: IntegrationState, *, sync: bool = True) -> None:
        """Record ``state``. The size never goes backwards.

        ``sync=True``: durable when this returns. ``sync=False``: visible to
        :meth:`load_state` at once, durable no later than the next durable write of this
        storage (the next :meth:`Sequencer.assign` commit or a synced save): what SQLite's
        ``synchronous=NORMAL`` in WAL mode and PostgreSQL's ``synchronous_commit=off``
        give. A crash may lose it, so it must only ever record something the engine can
        re-derive (it can: integration is deterministic over committed entries).
        """
        ...


@runtime_checkable
class SequencerStorage(Sequencer, EntryReader, SearchIndex, IntegrationStateStore,
                       Protocol):
    """What the embedded engine needs from one database: all four roles."""

    def bind(self, origin: str) -> None:
        """Tie the storage to one log; LogStorageError if it already belongs to another."""
        ...

    def close(self) -> None:
        """Release connections. Idempotent."""
        ...


@runtime_checkable
class TileStore(Protocol):
    """Objects at tlog-tiles paths (``tile/...`` and ``checkpoint``), bytes in and out.

    Paths are the exact HTTP paths, so the store can be served by a static file server or
    a CDN. Writes are atomic (a reader sees the old object or the new one, never a mix)
    but need not be durable until :meth:`sync` names them: tiles are derived data, and
    the engine syncs them in groups, off its critical path.
    """

    def read(self, path: str) -> bytes | None:
        """The object at ``path``, or None if there is none."""
        ...

    def write_many(self, objects: Sequence[tuple[str, bytes]]) -> None:
        """Write every (path, data) atomically per object (not necessarily durably)."""
        ...

    def delete_partials(self, full_path: str) -> None:
        """Delete every partial version (``<full_path>.p/<W>``) of a full tile or bundle.

        Called only once the full object is written; clients that ask for a partial tile
        that is gone fall back to the full one (C2SP tlog-tiles). The deletion is durable
        once ``sync([full_path])`` returns.
        """
        ...

    def sync(self, paths: Sequence[str]) -> None:
        """Make the objects at ``paths`` durable: their content, their names (every
        directory on the way) and any earlier ``delete_partials`` of them.

        A no-op for stores whose writes are durable anyway (object stores).
        """
        ...

    def close(self) -> None:
        """Release resources. Idempotent."""
        ...


class IntegratorFencedError(LogStorageError):
    """This replica is no longer the log's integrator; it must stop integrating.

    Raised by a fenced state save (another replica took over or moved the tree).
    """


@runtime_checkable
class IntegratorLease(Protocol):
    """The election of one log's integrator among replicas sharing a sequencer."""

    epoch: int | None

    def acquire(self) -> int | None:
        """Become the integrator if nobody is: the new epoch, or None."""
        ...

    def held(self) -> bool:
        """Whether this replica still is the integrator (checked against the database)."""
        ...

    def wait(self, timeout: float) -> set[str]:
        """Wait up to ``timeout`` seconds for the log's notifications; the channels seen."""
        ...

    def release(self) -> None:
        """Stop being the integrator."""
        ...

    def close(self) -> None:
        """Release and free the connection. Idempotent."""
        ...


@runtime_checkable
class ReplicatedSequencer(SequencerStorage, Protocol):
    """A sequencer several engines (replicas) share: one of them integrates at a time."""

    sequenced_channel: str
    integrated_channel: str

    def integrator_lease(self, holder: str) -> IntegratorLease:
        """A new lease object for this engine."""
        ...

    def save_state_fenced(self, state: IntegrationState, *, epoch: int, expected_size: int,
                          sync: bool = True) -> None:
        """Save ``state`` if ``epoch`` is current and the saved size is ``expected_size``;
        :class:`IntegratorFencedError` otherwise."""
        ...
