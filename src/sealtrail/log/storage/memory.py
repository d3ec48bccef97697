"""In-memory storage drivers, for unit tests and throw-away logs.

They implement the same protocols as the durable drivers, with the same semantics
(atomic batches, dedup, path checks), so tests exercise the engine's real code paths.
State lives in the driver objects: reopening an engine on the same objects is how tests
simulate a restart. ``close()`` keeps the data for that reason.

Both drivers also model what a power loss does to what was never made durable
(``power_loss()``): the sequencer forgets states saved with ``sync=False`` since the last
durable write, and the tile store damages every object written (or resurrects every
partial deleted) since it was last synced. Tests use this to check the engine's recovery
against the worst outcome a real disk allows.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from sealtrail.errors import Error, LogStorageError
from sealtrail.log.storage.protocols import (
    Assignment,
    EntryBuilder,
    IntegrationState,
    NewEntry,
    SequencedEntry,
)
from sealtrail.merkle.tiles import parse_tile_path

__all__ = ["MemorySequencer", "MemoryTileStore", "built_entry", "check_object_path",
           "check_state"]


def check_object_path(path: object) -> str:
    """Accept only the paths a log writes: ``checkpoint`` and canonical tile paths.

    Raises :class:`~sealtrail.errors.LogStorageError` otherwise (a bug, or an attempt to
    write outside the tile tree).
    """
    if path == "checkpoint":
        return path
    try:
        return parse_tile_path(path).path()
    except Error as exc:
        raise LogStorageError("refusing to store an object outside the tile layout",
                              actual=path) from exc


class MemorySequencer:
    """A :class:`~sealtrail.log.storage.protocols.SequencerStorage` in a few dicts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[SequencedEntry] = []
        self._by_leaf: dict[bytes, int] = {}
        self._search: dict[tuple[str, str], list[int]] = {}
        self._state: IntegrationState | None = None
        self._durable_state: IntegrationState | None = None
        self._origin: str | None = None

    def bind(self, origin: str) -> None:
        """Tie the storage to ``origin``; LogStorageError if bound to another log."""
        with self._lock:
            if self._origin is None:
                self._origin = origin
            elif self._origin != origin:
                raise LogStorageError("storage belongs to another log", actual=origin,
                                      expected=self._origin)

    def assign(self, entries: Sequence[NewEntry], integrated_time: int) -> list[Assignment]:
        """Sequence a batch atomically (see the protocol)."""
        with self._lock:
            out: list[Assignment] = []
            added: list[SequencedEntry] = []
            seen: dict[bytes, int] = {}
            keys: list[tuple[tuple[str, str], int]] = []
            next_index = len(self._entries)
            for e in entries:
                built: tuple[bytes, bytes] | None = None
                if e.build is not None:
                    # Built for its final index, inside the "transaction" (the lock); an
                    # exception leaves everything untouched.
                    built = leaf, body = built_entry(e.build, next_index)
                    if leaf in self._by_leaf or leaf in seen:
                        raise LogStorageError("a built entry's leaf hash is already sequenced",
                                              actual=leaf.hex())
                else:
                    leaf, body = e.leaf_hash, e.body
                    existing = self._by_leaf.get(leaf)
                    if existing is not None:
                        out.append(Assignment(existing, True,
                                              self._entries[existing].integrated_time))
                        continue
                    if leaf in seen:
                        out.append(Assignment(seen[leaf], True, integrated_time))
                        continue
                seen[leaf] = next_index
                added.append(SequencedEntry(next_index, leaf, body, integrated_time))
                keys.extend((k, next_index) for k in e.search_keys)
                out.append(Assignment(next_index, False, integrated_time, built))
                next_index += 1
            # Commit: nothing above touched shared state. Like a WAL commit, it also makes
            # every earlier unsynced state save durable.
            self._durable_state = self._state
            self._entries.extend(added)
            for entry in added:
                self._by_leaf[entry.leaf_hash] = entry.index
            for key, index in keys:
                bucket = self._search.setdefault(key, [])
                if not bucket or bucket[-1] != index:
                    bucket.append(index)
            return out

    def sequenced_size(self) -> int:
        """The number of sequenced entries."""
        with self._lock:
            return len(self._entries)

    def entries(self, start: int, end: int) -> list[SequencedEntry]:
        """Entries ``start`` .. ``end - 1`` that exist."""
        with self._lock:
            return self._entries[max(0, start):max(0, end)]

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        """Leaf hashes of entries ``start`` .. ``end - 1``."""
        return [e.leaf_hash for e in self.entries(start, end)]

    def find(self, leaf_hash: bytes) -> int | None:
        """The index holding ``leaf_hash``, or None."""
        with self._lock:
            return self._by_leaf.get(bytes(leaf_hash))

    def search(self, kind: str, value: str, below: int, limit: int, *,
               start: int = 0) -> list[int]:
        """Indexes stored under (kind, value), ascending, ``start`` <= index < ``below``,
        at most ``limit``."""
        with self._lock:
            found = [i for i in self._search.get((kind, value), []) if start <= i < below]
        return found[:limit]

    def load_state(self) -> IntegrationState | None:
        """The last saved integration state."""
        with self._lock:
            return self._state

    def save_state(self, state: IntegrationState, *, sync: bool = True) -> None:
        """Save the integration state; the size must not go backwards (see the protocol)."""
        check_state(state)
        with self._lock:
            if self._state is not None and state.size < self._state.size:
                raise LogStorageError("integrated size would go backwards", actual=state.size,
                                      expected=f">= {self._state.size}")
            self._state = state
            if sync:
                self._durable_state = state

    def power_loss(self) -> None:
        """Forget what a power loss would: states saved with ``sync=False`` since then."""
        with self._lock:
            self._state = self._durable_state

    def close(self) -> None:
        """Nothing to release; the data stays for a later reopen."""


def built_entry(build: EntryBuilder, index: int) -> tuple[bytes, bytes]:
    """``build(index)``, checked to be a (32-byte leaf hash, non-empty body) pair.

    Shared by the drivers, which call it inside their sequencing transaction. A result of
    the wrong shape is a caller bug: LogStorageError (the batch is not committed).
    """
    result = build(index)
    if not (isinstance(result, tuple) and len(result) == 2
            and isinstance(result[0], bytes) and len(result[0]) == 32
            and isinstance(result[1], bytes) and result[1]):
        raise LogStorageError("an entry's build did not return (32-byte leaf hash, body)",
                              actual=type(result).__name__)
    return result[0], result[1]


def check_state(state: IntegrationState) -> None:
    """Refuse a state whose durable size is not within 0..size (a caller bug)."""
    durable = state.durable_size
    if not isinstance(durable, int) or isinstance(durable, bool) or \
            not 0 <= durable <= state.size:
        raise LogStorageError("the durable size must be within 0..size", actual=durable,
                              expected=f"0..{state.size}")


class MemoryTileStore:
    """A :class:`~sealtrail.log.storage.protocols.TileStore` in a dict."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.objects: dict[str, bytes] = {}
        # Written, or partials deleted, since last synced: what a power loss may damage.
        self._unsynced: set[str] = set()
        self._deleted: dict[str, bytes] = {}
        self.synced: list[list[str]] = []  # every sync() call, for tests

    def read(self, path: str) -> bytes | None:
        """The object at ``path``, or None."""
        path = check_object_path(path)
        with self._lock:
            return self.objects.get(path)

    def write_many(self, objects: Sequence[tuple[str, bytes]]) -> None:
        """Store every object (each write is trivially atomic)."""
        checked = [(check_object_path(p), bytes(d)) for p, d in objects]
        with self._lock:
            self.objects.update(checked)
            for path, _ in checked:
                self._unsynced.add(path)
                self._deleted.pop(path, None)

    def delete_partials(self, full_path: str) -> None:
        """Delete ``<full_path>.p/<W>`` for every W."""
        prefix = check_object_path(full_path) + ".p/"
        with self._lock:
            for path in [p for p in self.objects if p.startswith(prefix)]:
                self._deleted[path] = self.objects.pop(path)
                self._unsynced.discard(path)

    def sync(self, paths: Sequence[str]) -> None:
        """Mark the objects (and the deletion of their partials) durable."""
        checked = [check_object_path(p) for p in paths]
        with self._lock:
            for path in checked:  # a missing object is skipped, as on disk
                self._unsynced.discard(path)
                prefix = path + ".p/"
                for gone in [p for p in self._deleted if p.startswith(prefix)]:
                    del self._deleted[gone]
            self.synced.append(checked)

    def power_loss(self) -> list[str]:
        """Do the worst a power loss may do to what was not synced; returns those paths.

        Every unsynced object keeps its length but its bytes turn to zeros (it still
        passes a length check), and every unsynced deletion is undone, the same way.
        """
        with self._lock:
            damaged = sorted(self._unsynced | set(self._deleted))
            for path in self._unsynced:
                self.objects[path] = bytes(len(self.objects[path]))
            for path, data in self._deleted.items():
                self.objects[path] = bytes(len(data))
            self._unsynced.clear()
            self._deleted.clear()
            return damaged

    def close(self) -> None:
        """Nothing to release; the data stays for a later reopen."""
