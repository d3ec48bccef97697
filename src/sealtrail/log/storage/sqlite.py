"""SQLite sequencer: indexes, dedup, search and integration state in one file.

The embedded default (docs/adr/0004). Durability: WAL journal with ``synchronous=FULL``,
so a transaction is on disk (the WAL fsynced) when ``COMMIT`` returns; :meth:`assign`
commits each batch in one transaction, and the engine acknowledges nothing before that.
``save_state(..., sync=False)`` commits with ``synchronous=NORMAL`` instead: the frames are
written to the WAL but not fsynced, so the state is visible at once and becomes durable
with the next FULL commit (fsyncing the WAL flushes every frame before it, and recovery
replays WAL frames only as an unbroken, checksummed prefix, so a later durable commit
never survives without an earlier one).

One process owns a log: an exclusive ``flock`` on ``<db>.lock`` is taken at open and
released by the kernel when the process dies (so a restart after SIGKILL just works),
and a second process (or a second engine in this one) gets
:class:`~sealtrail.errors.LogStorageError` instead of a forked log.

Threads: one write connection behind a lock; every reading thread gets its own
read-only connection (WAL lets readers run while the writer commits).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sealtrail.errors import LogStorageError
from sealtrail.log.storage.memory import built_entry, check_state
from sealtrail.log.storage.protocols import (
    Assignment,
    IntegrationState,
    NewEntry,
    SequencedEntry,
)

try:  # pragma: no cover - platform dependent
    import fcntl
except ImportError:  # pragma: no cover - Windows: no cross-process guard
    fcntl = None  # type: ignore[assignment]

__all__ = ["SCHEMA_VERSION", "SqliteSequencer"]

SCHEMA_VERSION = 1
# Bound on bound parameters per statement (SQLite's own limit is higher in every build
# we support; this keeps statements small).
_IN_CHUNK = 500
_BUSY_TIMEOUT_MS = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
    idx INTEGER PRIMARY KEY,
    leaf_hash BLOB NOT NULL UNIQUE,
    body BLOB NOT NULL,
    integrated_time INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS search (
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    idx INTEGER NOT NULL,
    PRIMARY KEY (kind, value, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    size INTEGER NOT NULL,
    root_hash BLOB NOT NULL,
    checkpoint TEXT NOT NULL,
    published_at REAL NOT NULL
);
"""


def _wrap(exc: BaseException, what: str) -> LogStorageError:
    return LogStorageError(f"SQLite sequencer: {what} failed", actual=str(exc))


class SqliteSequencer:
    """A :class:`~sealtrail.log.storage.protocols.SequencerStorage` in one SQLite file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Open (creating if needed) the database at ``path`` and lock it for this process.

        Raises :class:`~sealtrail.errors.LogStorageError` if the file cannot be opened, has
        an unknown schema version, or is in use by another owner.
        """
        self._path = os.fspath(path)
        self._lock = threading.Lock()
        self._readers: list[sqlite3.Connection] = []
        self._local = threading.local()
        self._closed = False
        self._lock_fd: int | None = None
        self._take_process_lock()
        try:
            self._conn = self._connect(readonly=False)
            self._conn.executescript(_SCHEMA)
            row = self._conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                self._conn.execute("INSERT INTO meta VALUES ('schema', ?)",
                                   (str(SCHEMA_VERSION),))
            elif row[0] != str(SCHEMA_VERSION):
                raise LogStorageError("unknown sequencer schema version", actual=row[0],
                                      expected=str(SCHEMA_VERSION))
        except sqlite3.Error as exc:
            self._release_process_lock()
            raise _wrap(exc, "opening the database") from exc
        except LogStorageError:
            self._release_process_lock()
            raise

    # -- connections ---------------------------------------------------------------------

    def _take_process_lock(self) -> None:
        if fcntl is None:  # pragma: no cover - Windows
            return
        try:
            fd = os.open(self._path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise _wrap(exc, "creating the lock file") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise LogStorageError("the log's database is in use by another process or engine",
                                  actual=self._path) from exc
        self._lock_fd = fd

    def _release_process_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None

    def _connect(self, *, readonly: bool) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; we BEGIN/COMMIT ourselves.
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False,
                               timeout=_BUSY_TIMEOUT_MS / 1000)
        conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        if readonly:
            conn.execute("PRAGMA query_only=1")
        else:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise LogStorageError("SQLite refused WAL mode", actual=mode, expected="wal")
            # FULL: the WAL is fsynced at every commit, so a committed batch survives
            # power loss, not just a killed process.
            conn.execute("PRAGMA synchronous=FULL")
        return conn

    def _reader(self) -> sqlite3.Connection:
        if self._closed:
            raise LogStorageError("the sequencer is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = self._connect(readonly=True)
            except sqlite3.Error as exc:
                raise _wrap(exc, "opening a reader") from exc
            self._local.conn = conn
            with self._lock:
                self._readers.append(conn)
        return conn

    @contextmanager
    def _write(self, what: str, *, sync: bool = True) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._closed:
                raise LogStorageError("the sequencer is closed")
            conn = self._conn
            try:
                if not sync:
                    conn.execute("PRAGMA synchronous=NORMAL")
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        yield conn
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                    conn.execute("COMMIT")
                finally:
                    if not sync:
                        conn.execute("PRAGMA synchronous=FULL")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:  # pragma: no cover - already rolled back
                        pass
                raise _wrap(exc, what) from exc

    def _read(self, sql: str, params: Sequence[Any], what: str) -> list[Any]:
        try:
            return self._reader().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _wrap(exc, what) from exc

    # -- SequencerStorage ----------------------------------------------------------------

    def bind(self, origin: str) -> None:
        """Tie the database to ``origin``; LogStorageError if it belongs to another log."""
        with self._write("binding the origin") as conn:
            row = conn.execute("SELECT value FROM meta WHERE key='origin'").fetchone()
            if row is None:
                conn.execute("INSERT INTO meta VALUES ('origin', ?)", (origin,))
            elif row[0] != origin:
                raise LogStorageError("storage belongs to another log", actual=origin,
                                      expected=row[0])

    def assign(self, entries: Sequence[NewEntry], integrated_time: int) -> list[Assignment]:
        """Sequence a batch in one durable transaction (see the protocol)."""
        out: list[Assignment] = []
        with self._write("sequencing a batch") as conn:
            existing: dict[bytes, tuple[int, int]] = {}
            leaves = list({e.leaf_hash for e in entries if e.build is None})
            for i in range(0, len(leaves), _IN_CHUNK):
                chunk = leaves[i:i + _IN_CHUNK]
                marks = ",".join("?" * len(chunk))
                for leaf, idx, t in conn.execute(
                        f"SELECT leaf_hash, idx, integrated_time FROM entries "
                        f"WHERE leaf_hash IN ({marks})", chunk):
                    existing[bytes(leaf)] = (idx, t)
            row = conn.execute("SELECT MAX(idx) FROM entries").fetchone()
            next_index = 0 if row[0] is None else row[0] + 1
            rows: list[tuple[int, bytes, bytes, int]] = []
            keys: list[tuple[str, str, int]] = []
            for e in entries:
                built: tuple[bytes, bytes] | None = None
                if e.build is not None:
                    # The write lock (BEGIN IMMEDIATE) makes next_index final: build for it.
                    # A built leaf hash already stored fails the INSERT (UNIQUE), rolling
                    # the batch back.
                    built = leaf, body = built_entry(e.build, next_index)
                else:
                    leaf, body = e.leaf_hash, e.body
                    found = existing.get(leaf)
                    if found is not None:
                        out.append(Assignment(found[0], True, found[1]))
                        continue
                existing[leaf] = (next_index, integrated_time)
                rows.append((next_index, leaf, body, integrated_time))
                keys.extend((kind, value, next_index) for kind, value in e.search_keys)
                out.append(Assignment(next_index, False, integrated_time, built))
                next_index += 1
            conn.executemany("INSERT INTO entries VALUES (?, ?, ?, ?)", rows)
            if keys:
                conn.executemany("INSERT OR IGNORE INTO search VALUES (?, ?, ?)", keys)
        return out

    def sequenced_size(self) -> int:
        """The number of sequenced entries."""
        row = self._read("SELECT MAX(idx) FROM entries", (), "reading the size")[0]
        return 0 if row[0] is None else row[0] + 1

    def entries(self, start: int, end: int) -> list[SequencedEntry]:
        """Entries ``start`` .. ``end - 1`` that exist, in index order."""
        rows = self._read("SELECT idx, leaf_hash, body, integrated_time FROM entries "
                          "WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end),
                          "reading entries")
        return [SequencedEntry(i, bytes(h), bytes(b), t) for i, h, b, t in rows]

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        """Leaf hashes of entries ``start`` .. ``end - 1``."""
        rows = self._read("SELECT leaf_hash FROM entries WHERE idx >= ? AND idx < ? "
                          "ORDER BY idx", (start, end), "reading leaf hashes")
        return [bytes(r[0]) for r in rows]

    def find(self, leaf_hash: bytes) -> int | None:
        """The index holding ``leaf_hash``, or None."""
        rows = self._read("SELECT idx FROM entries WHERE leaf_hash = ?", (bytes(leaf_hash),),
                          "finding an entry")
        return rows[0][0] if rows else None

    def search(self, kind: str, value: str, below: int, limit: int, *,
               start: int = 0) -> list[int]:
        """Indexes stored under (kind, value), ascending, ``start`` <= index < ``below``,
        at most ``limit`` (one range scan of the primary key)."""
        rows = self._read("SELECT idx FROM search WHERE kind = ? AND value = ? AND idx >= ? "
                          "AND idx < ? ORDER BY idx LIMIT ?", (kind, value, start, below, limit),
                          "searching")
        return [r[0] for r in rows]

    def load_state(self) -> IntegrationState | None:
        """The last saved integration state, or None."""
        rows = self._read("SELECT size, root_hash, checkpoint, published_at, "
                          "(SELECT value FROM meta WHERE key = 'durable_size') FROM state "
                          "WHERE id = 1", (), "reading the integration state")
        if not rows:
            return None
        size, root, note, at, durable = rows[0]
        # Databases written before durable_size existed fsynced every tile before saving
        # the state, so their tiles are durable up to the recorded size.
        durable_size = size if durable is None else min(size, max(0, int(durable)))
        return IntegrationState(size, bytes(root), note, at, durable_size)

    def save_state(self, state: IntegrationState, *, sync: bool = True) -> None:
        """Save the integration state; the size must not go backwards (see the protocol)."""
        check_state(state)
        with self._write("saving the integration state", sync=sync) as conn:
            row = conn.execute("SELECT size FROM state WHERE id = 1").fetchone()
            if row is not None and state.size < row[0]:
                raise LogStorageError("integrated size would go backwards",
                                      actual=state.size, expected=f">= {row[0]}")
            conn.execute("INSERT OR REPLACE INTO state VALUES (1, ?, ?, ?, ?)",
                         (state.size, state.root_hash, state.checkpoint, state.published_at))
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('durable_size', ?)",
                         (str(state.durable_size),))

    def close(self) -> None:
        """Close every connection and drop the process lock. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            conns = [self._conn, *self._readers]
            self._readers.clear()
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:  # pragma: no cover - best effort at shutdown
                pass
        self._release_process_lock()
