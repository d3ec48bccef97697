"""PostgreSQL sequencer: indexes, dedup, search and integration state in one database.

The plan of docs/adr/0004 ("The PostgreSQL plan"): the same four roles as the SQLite
sequencer, so that several API replicas can sequence into one log. Every caller may call
:meth:`PostgresSequencer.assign` directly (sequencing needs no leader): one transaction
takes the log's counter row ``FOR UPDATE``, which serialises assigners of one log, looks
the batch's leaf hashes up (READ COMMITTED gives each statement a fresh snapshot, so it sees
everything the previous holder of the row committed), inserts the new rows and moves the
counter. Dedup is exact: the unique index on ``leaf_hash`` backs it, the row lock makes it
race-free (two replicas that sequence the same entry at once get one index).

Durability: ``synchronous_commit=on`` for every transaction except ``save_state(...,
sync=False)``, which runs with ``SET LOCAL synchronous_commit = off``: visible to every
connection at once, durable with the next synchronous commit, because WAL is flushed in
order (PostgreSQL docs, "Asynchronous Commit"), exactly the contract SQLite's
``synchronous=NORMAL`` gives the embedded driver.

One log per PostgreSQL schema (``schema=``, default ``sealtrail``): the driver creates its
tables there, with a ``schema_version`` table that a later ``sealtrail migrate`` can follow.
Unlike the SQLite driver there is no process lock: several processes sharing the sequencer
is the point. Electing the one integrator (an advisory lock plus a compare-and-swap on the
state) is a later step of issue 16; until then only one engine may integrate a log.

The connection string comes from the caller and is never put in an error message (it may
hold a password). Every failure is a :class:`~sealtrail.errors.LogStorageError`; a broken
connection is dropped and opened again by the next call.

Threads: one write connection behind a lock; each reading thread gets its own connection.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sealtrail.errors import LogStorageError
from sealtrail.log.storage.memory import check_state
from sealtrail.log.storage.protocols import (
    Assignment,
    IntegrationState,
    NewEntry,
    SequencedEntry,
)

__all__ = ["SCHEMA_VERSION", "PostgresSequencer"]

SCHEMA_VERSION = 1
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}\Z")
_CONNECT_TIMEOUT_S = 10

# Each statement on its own: psycopg sends one statement per execute with parameters.
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text NOT NULL)",
    # One row: the next index to assign. Its row lock serialises assigners.
    ("CREATE TABLE IF NOT EXISTS counter (id integer PRIMARY KEY CHECK (id = 1), "
     "next_idx bigint NOT NULL)"),
    "INSERT INTO counter VALUES (1, 0) ON CONFLICT DO NOTHING",
    ("CREATE TABLE IF NOT EXISTS entries (idx bigint PRIMARY KEY, "
     "leaf_hash bytea NOT NULL UNIQUE, body bytea NOT NULL, integrated_time bigint NOT NULL)"),
    ("CREATE TABLE IF NOT EXISTS search (kind text NOT NULL, value text NOT NULL, "
     "idx bigint NOT NULL, PRIMARY KEY (kind, value, idx))"),
    ("CREATE TABLE IF NOT EXISTS state (id integer PRIMARY KEY CHECK (id = 1), "
     "size bigint NOT NULL, root_hash bytea NOT NULL, checkpoint text NOT NULL, "
     "published_at double precision NOT NULL, durable_size bigint NOT NULL)"),
)


def _wrap(exc: BaseException, what: str) -> LogStorageError:
    # The message of a psycopg error names the server, never the password.
    return LogStorageError(f"PostgreSQL sequencer: {what} failed",
                           actual=f"{type(exc).__name__}: {str(exc).strip()}")


class PostgresSequencer:
    """A :class:`~sealtrail.log.storage.protocols.SequencerStorage` in PostgreSQL."""

    def __init__(self, conninfo: str, *, schema: str = "sealtrail") -> None:
        """Connect with the libpq ``conninfo`` (``postgresql://...`` or ``key=value``) and
        create the log's tables in ``schema`` if they are missing.

        Raises :class:`~sealtrail.errors.LogStorageError` if psycopg is not installed, the
        server cannot be reached, or the schema has an unknown version.
        """
        if not _SCHEMA_NAME.match(schema):
            raise LogStorageError("invalid PostgreSQL schema name", actual=schema,
                                  expected="lower-case letters, digits and _")
        try:
            import psycopg  # the server extra; imported here so the client never needs it
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise LogStorageError("PostgreSQL storage needs psycopg (the server extra)",
                                  actual=str(exc)) from exc
        self._psycopg = psycopg
        self._conninfo = conninfo
        self._schema = schema
        self._lock = threading.Lock()
        self._readers: list[Any] = []
        self._local = threading.local()
        self._closed = False
        self._conn: Any = None
        with self._write("creating the schema") as conn:
            # Two processes creating the tables at once would race in the catalog.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('sealtrail.schema.' || %s))",
                         (schema,))
            conn.execute(psycopg.sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                psycopg.sql.Identifier(schema)))
            for statement in _SCHEMA:
                conn.execute(statement)
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                conn.execute("INSERT INTO schema_version VALUES (%s)", (SCHEMA_VERSION,))
            elif row[0] != SCHEMA_VERSION:
                raise LogStorageError("unknown sequencer schema version", actual=str(row[0]),
                                      expected=str(SCHEMA_VERSION))

    # -- connections ---------------------------------------------------------------------

    def _connect(self) -> Any:
        psycopg = self._psycopg
        params = psycopg.conninfo.conninfo_to_dict(self._conninfo)
        params.setdefault("connect_timeout", _CONNECT_TIMEOUT_S)
        conn = psycopg.connect(**params, autocommit=True)
        try:
            conn.execute(psycopg.sql.SQL("SET search_path TO {}").format(
                psycopg.sql.Identifier(self._schema)))
            # SPEC: PostgreSQL "synchronous_commit": on = the commit's WAL is flushed to
            # disk before COMMIT returns; the engine acknowledges nothing before that.
            conn.execute("SET synchronous_commit TO on")
        except BaseException:
            conn.close()
            raise
        return conn

    def _reader(self) -> Any:
        if self._closed:
            raise LogStorageError("the sequencer is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._readers.append(conn)
        return conn

    @contextmanager
    def _write(self, what: str, *, sync: bool = True) -> Iterator[Any]:
        psycopg = self._psycopg
        with self._lock:
            if self._closed:
                raise LogStorageError("the sequencer is closed")
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self._connect()
                conn = self._conn
                with conn.transaction():
                    if not sync:
                        conn.execute("SET LOCAL synchronous_commit TO off")
                    yield conn
            except psycopg.Error as exc:
                self._drop_broken_writer()
                raise _wrap(exc, what) from exc

    def _drop_broken_writer(self) -> None:
        conn = self._conn
        if conn is not None and conn.broken:
            self._conn = None
            try:
                conn.close()
            except self._psycopg.Error:  # pragma: no cover - already gone
                pass

    def _read(self, sql: str, params: Sequence[Any], what: str) -> list[Any]:
        psycopg = self._psycopg
        try:
            conn = self._reader()
            rows: list[Any] = conn.execute(sql, params).fetchall()
            return rows
        except psycopg.Error as exc:
            conn = getattr(self._local, "conn", None)
            if conn is not None and conn.broken:
                self._local.conn = None
            raise _wrap(exc, what) from exc

    # -- SequencerStorage ----------------------------------------------------------------

    def bind(self, origin: str) -> None:
        """Tie the schema to ``origin``; LogStorageError if it belongs to another log."""
        with self._write("binding the origin") as conn:
            conn.execute("INSERT INTO meta VALUES ('origin', %s) ON CONFLICT DO NOTHING",
                         (origin,))
            row = conn.execute("SELECT value FROM meta WHERE key = 'origin'").fetchone()
            if row[0] != origin:
                raise LogStorageError("storage belongs to another log", actual=origin,
                                      expected=row[0])

    def assign(self, entries: Sequence[NewEntry], integrated_time: int) -> list[Assignment]:
        """Sequence a batch in one durable transaction (see the protocol)."""
        if not entries:
            return []
        out: list[Assignment] = []
        with self._write("sequencing a batch") as conn:
            # The row lock is held until COMMIT: one assigner of this log at a time.
            next_index: int = conn.execute(
                "SELECT next_idx FROM counter WHERE id = 1 FOR UPDATE").fetchone()[0]
            existing: dict[bytes, tuple[int, int]] = {}
            leaves = list({bytes(e.leaf_hash) for e in entries})
            for leaf, idx, t in conn.execute(
                    "SELECT leaf_hash, idx, integrated_time FROM entries "
                    "WHERE leaf_hash = ANY(%s)", (leaves,)):
                existing[bytes(leaf)] = (idx, t)
            idxs: list[int] = []
            hashes: list[bytes] = []
            bodies: list[Any] = []
            kinds: list[str] = []
            values: list[str] = []
            key_idxs: list[int] = []
            for e in entries:
                found = existing.get(e.leaf_hash)
                if found is not None:
                    out.append(Assignment(found[0], True, found[1]))
                    continue
                existing[e.leaf_hash] = (next_index, integrated_time)
                idxs.append(next_index)
                hashes.append(e.leaf_hash)
                bodies.append(e.body)
                for kind, value in e.search_keys:
                    kinds.append(kind)
                    values.append(value)
                    key_idxs.append(next_index)
                out.append(Assignment(next_index, False, integrated_time))
                next_index += 1
            if idxs:
                # One statement per table whatever the batch size (unnest of arrays).
                conn.execute("INSERT INTO entries SELECT i, h, b, %s FROM "
                             "unnest(%s::bigint[], %s::bytea[], %s::bytea[]) AS u(i, h, b)",
                             (integrated_time, idxs, hashes, bodies))
                if kinds:
                    conn.execute("INSERT INTO search SELECT * FROM "
                                 "unnest(%s::text[], %s::text[], %s::bigint[]) "
                                 "ON CONFLICT DO NOTHING", (kinds, values, key_idxs))
                conn.execute("UPDATE counter SET next_idx = %s WHERE id = 1", (next_index,))
        return out

    def sequenced_size(self) -> int:
        """The number of sequenced entries (committed by any client)."""
        return int(self._read("SELECT next_idx FROM counter WHERE id = 1", (),
                              "reading the size")[0][0])

    def entries(self, start: int, end: int) -> list[SequencedEntry]:
        """Entries ``start`` .. ``end - 1`` that exist, in index order."""
        rows = self._read("SELECT idx, leaf_hash, body, integrated_time FROM entries "
                          "WHERE idx >= %s AND idx < %s ORDER BY idx", (start, end),
                          "reading entries")
        return [SequencedEntry(i, bytes(h), bytes(b), t) for i, h, b, t in rows]

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        """Leaf hashes of entries ``start`` .. ``end - 1``."""
        rows = self._read("SELECT leaf_hash FROM entries WHERE idx >= %s AND idx < %s "
                          "ORDER BY idx", (start, end), "reading leaf hashes")
        return [bytes(r[0]) for r in rows]

    def find(self, leaf_hash: bytes) -> int | None:
        """The index holding ``leaf_hash``, or None."""
        rows = self._read("SELECT idx FROM entries WHERE leaf_hash = %s", (bytes(leaf_hash),),
                          "finding an entry")
        return int(rows[0][0]) if rows else None

    def search(self, kind: str, value: str, below: int, limit: int, *,
               start: int = 0) -> list[int]:
        """Indexes stored under (kind, value), ascending, ``start`` <= index < ``below``,
        at most ``limit`` (one range scan of the primary key)."""
        rows = self._read("SELECT idx FROM search WHERE kind = %s AND value = %s "
                          "AND idx >= %s AND idx < %s ORDER BY idx LIMIT %s",
                          (kind, value, start, below, limit), "searching")
        return [int(r[0]) for r in rows]

    def load_state(self) -> IntegrationState | None:
        """The last saved integration state, or None."""
        rows = self._read("SELECT size, root_hash, checkpoint, published_at, durable_size "
                          "FROM state WHERE id = 1", (), "reading the integration state")
        if not rows:
            return None
        size, root, note, at, durable = rows[0]
        return IntegrationState(int(size), bytes(root), note, float(at), int(durable))

    def save_state(self, state: IntegrationState, *, sync: bool = True) -> None:
        """Save the integration state; the size must not go backwards (see the protocol)."""
        check_state(state)
        with self._write("saving the integration state", sync=sync) as conn:
            row = conn.execute("SELECT size FROM state WHERE id = 1 FOR UPDATE").fetchone()
            if row is not None and state.size < row[0]:
                raise LogStorageError("integrated size would go backwards",
                                      actual=state.size, expected=f">= {row[0]}")
            conn.execute("INSERT INTO state VALUES (1, %s, %s, %s, %s, %s) "
                         "ON CONFLICT (id) DO UPDATE SET size = EXCLUDED.size, "
                         "root_hash = EXCLUDED.root_hash, checkpoint = EXCLUDED.checkpoint, "
                         "published_at = EXCLUDED.published_at, "
                         "durable_size = EXCLUDED.durable_size",
                         (state.size, state.root_hash, state.checkpoint, state.published_at,
                          state.durable_size))

    def close(self) -> None:
        """Close every connection. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            conns = [c for c in (self._conn, *self._readers) if c is not None]
            self._conn = None
            self._readers.clear()
        for conn in conns:
            try:
                conn.close()
            except self._psycopg.Error:  # pragma: no cover - best effort at shutdown
                pass
