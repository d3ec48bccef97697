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

Threads: one write connection behind a lock; reads borrow a connection from a small pool
(psycopg_pool), so that server threads that come and go leave no connections behind.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sealtrail.errors import LogStorageError
from sealtrail.log.storage.memory import built_entry, check_state
from sealtrail.log.storage.protocols import (
    Assignment,
    IntegrationState,
    IntegratorFencedError,
    NewEntry,
    SequencedEntry,
)

__all__ = ["SCHEMA_UPGRADES", "SCHEMA_VERSION", "PostgresLease", "PostgresSequencer",
           "upgrade_schema"]

#: The version of the tables this driver writes. 2 added ``integrator`` (the elected
#: integrator's epoch, for fencing). ``SCHEMA_UPGRADES[n]`` takes a schema from n to n + 1;
#: ``sealtrail migrate`` applies them (:func:`upgrade_schema`), the driver never does.
SCHEMA_VERSION = 2
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}\Z")
_CONNECT_TIMEOUT_S = 10
#: Reading connections per log and replica (each server thread that reads borrows one),
#: and how long a read waits for a free one before failing (503, retried by clients).
MAX_READERS = 4
READER_WAIT_SECONDS = 10.0

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
    # One row: the epoch of the current integrator, raised by every replica that takes the
    # integrator's advisory lock; a state save carries the saver's epoch (fencing).
    ("CREATE TABLE IF NOT EXISTS integrator (id integer PRIMARY KEY CHECK (id = 1), "
     "epoch bigint NOT NULL, holder text NOT NULL, since double precision NOT NULL)"),
    "INSERT INTO integrator VALUES (1, 0, '', 0) ON CONFLICT DO NOTHING",
)

SCHEMA_UPGRADES: dict[int, tuple[str, ...]] = {
    1: _SCHEMA[-2:],
}


def _wrap(exc: BaseException, what: str) -> LogStorageError:
    # The message of a psycopg error names the server, never the password.
    return LogStorageError(f"PostgreSQL sequencer: {what} failed",
                           actual=f"{type(exc).__name__}: {str(exc).strip()}")


def _upsert_state(conn: Any, state: IntegrationState) -> None:
    conn.execute("INSERT INTO state VALUES (1, %s, %s, %s, %s, %s) "
                 "ON CONFLICT (id) DO UPDATE SET size = EXCLUDED.size, "
                 "root_hash = EXCLUDED.root_hash, checkpoint = EXCLUDED.checkpoint, "
                 "published_at = EXCLUDED.published_at, durable_size = EXCLUDED.durable_size",
                 (state.size, state.root_hash, state.checkpoint, state.published_at,
                  state.durable_size))


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
        self._pool: Any = None  # the readers' connections, opened on the first read
        self._pool_lock = threading.Lock()  # not _lock, which a write holds throughout
        self._closed = False
        self._conn: Any = None
        with self._write("creating the schema") as conn:
            # Two processes creating the tables at once would race in the catalog.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('sealtrail.schema.' || %s))",
                         (schema,))
            conn.execute(psycopg.sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                psycopg.sql.Identifier(schema)))
            # The version is checked before any table is created: an older schema is left
            # exactly as it is, for `sealtrail migrate` to upgrade.
            if conn.execute("SELECT to_regclass('schema_version')").fetchone()[0] is not None:
                found = conn.execute("SELECT version FROM schema_version").fetchone()
                if found is not None and found[0] != SCHEMA_VERSION:
                    hint = (" (run `sealtrail migrate --upgrade-schema` to upgrade it)"
                            if found[0] < SCHEMA_VERSION else " (written by a newer sealtrail)")
                    raise LogStorageError("unsupported sequencer schema version" + hint,
                                          actual=str(found[0]), expected=str(SCHEMA_VERSION))
            for statement in _SCHEMA:
                conn.execute(statement)
            if conn.execute("SELECT version FROM schema_version").fetchone() is None:
                conn.execute("INSERT INTO schema_version VALUES (%s)", (SCHEMA_VERSION,))
        channel = hashlib.sha256(schema.encode()).hexdigest()[:24]
        # Channel names are identifiers (at most 63 bytes): derived from the schema.
        self.sequenced_channel = f"sealtrail_seq_{channel}"
        self.integrated_channel = f"sealtrail_int_{channel}"

    # -- connections ---------------------------------------------------------------------

    def _params(self) -> dict[str, Any]:
        params: dict[str, Any] = self._psycopg.conninfo.conninfo_to_dict(self._conninfo)
        params.setdefault("connect_timeout", _CONNECT_TIMEOUT_S)
        return params

    def _configure(self, conn: Any) -> None:
        """Every connection's session: the log's schema, synchronous commits."""
        conn.execute(self._psycopg.sql.SQL("SET search_path TO {}").format(
            self._psycopg.sql.Identifier(self._schema)))
        # SPEC: PostgreSQL "synchronous_commit": on = the commit's WAL is flushed to
        # disk before COMMIT returns; the engine acknowledges nothing before that.
        conn.execute("SET synchronous_commit TO on")

    def _connect(self) -> Any:
        conn = self._psycopg.connect(**self._params(), autocommit=True)
        try:
            self._configure(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _readers(self) -> Any:
        """The pool of reading connections (psycopg_pool), made on the first read.

        A pool, not a connection per thread: the server's worker threads come and go, and
        a connection kept per thread would outlive its thread until the database's
        connection limit. At most :data:`MAX_READERS` per log; a read waits for a free one
        at most :data:`READER_WAIT_SECONDS`.
        """
        with self._pool_lock:
            if self._closed:
                raise LogStorageError("the sequencer is closed")
            if self._pool is None:
                from psycopg_pool import ConnectionPool

                self._pool = ConnectionPool(
                    "", kwargs={**self._params(), "autocommit": True},
                    configure=self._configure, min_size=1, max_size=MAX_READERS,
                    timeout=READER_WAIT_SECONDS, name=f"sealtrail-{self._schema}",
                    open=True)
            return self._pool

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
        # A read is repeatable: once on a pooled connection that turned out broken (the
        # server restarted since it was last used; the pool drops it), once more.
        for attempt in (1, 2):
            broken = False
            try:
                with self._readers().connection() as conn:
                    try:
                        rows: list[Any] = conn.execute(sql, params).fetchall()
                        return rows
                    finally:
                        broken = conn.broken
            except psycopg.Error as exc:  # PoolTimeout is one too
                if not broken or attempt == 2:
                    raise _wrap(exc, what) from exc
        raise AssertionError("unreachable")  # pragma: no cover

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
            leaves = list({bytes(e.leaf_hash) for e in entries if e.build is None})
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
                built: tuple[bytes, bytes] | None = None
                if e.build is not None:
                    # The counter row lock makes next_index final for every replica until
                    # COMMIT: build for it. A built leaf hash already stored fails the
                    # INSERT (unique index), rolling the batch back.
                    built = leaf, body = built_entry(e.build, next_index)
                else:
                    leaf, body = e.leaf_hash, e.body
                    found = existing.get(leaf)
                    if found is not None:
                        out.append(Assignment(found[0], True, found[1]))
                        continue
                existing[leaf] = (next_index, integrated_time)
                idxs.append(next_index)
                hashes.append(leaf)
                bodies.append(body)
                for kind, value in e.search_keys:
                    kinds.append(kind)
                    values.append(value)
                    key_idxs.append(next_index)
                out.append(Assignment(next_index, False, integrated_time, built))
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
                # Delivered at COMMIT: the elected integrator (maybe another replica)
                # learns at once that entries wait for it.
                conn.execute("SELECT pg_notify(%s, %s)",
                             (self.sequenced_channel, str(next_index)))
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
            _upsert_state(conn, state)

    def save_state_fenced(self, state: IntegrationState, *, epoch: int, expected_size: int,
                          sync: bool = True) -> None:
        """Save ``state`` only if ``epoch`` is still the integrator's epoch and the saved
        size is still ``expected_size`` (compare-and-swap); announce it to the replicas.

        Raises :class:`IntegratorFencedError` otherwise: another replica took over (its
        epoch is higher) or moved the tree, so this one must stop integrating. The epoch
        row is read ``FOR SHARE``: a replica raising the epoch waits for this transaction,
        and this one waits for it, so a save and a takeover are never interleaved.
        """
        check_state(state)
        with self._write("saving the integration state", sync=sync) as conn:
            current = conn.execute("SELECT epoch FROM integrator WHERE id = 1 FOR SHARE"
                                   ).fetchone()[0]
            if current != epoch:
                raise IntegratorFencedError("another replica is the log's integrator",
                                            actual=f"epoch {epoch}",
                                            expected=f"epoch {current}")
            row = conn.execute("SELECT size FROM state WHERE id = 1 FOR UPDATE").fetchone()
            saved = 0 if row is None else int(row[0])
            if saved != expected_size or state.size < saved:
                raise IntegratorFencedError("the integration state moved under this replica",
                                            actual=f"size {saved}",
                                            expected=f"size {expected_size}")
            _upsert_state(conn, state)
            conn.execute("SELECT pg_notify(%s, %s)", (self.integrated_channel, str(state.size)))

    def integrator_lease(self, holder: str) -> PostgresLease:
        """A lease object for electing this log's integrator (one per engine)."""
        if self._closed:
            raise LogStorageError("the sequencer is closed")
        return PostgresLease(self, holder)

    def close(self) -> None:
        """Close every connection. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            conns = [c for c in (self._conn,) if c is not None]
            self._conn = None
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
        for conn in conns:
            try:
                conn.close()
            except self._psycopg.Error:  # pragma: no cover - best effort at shutdown
                pass


class PostgresLease:
    """The integrator election of one log: a session advisory lock plus an epoch.

    The lock lives on a connection of its own, which also LISTENs for the log's
    notifications. Whoever takes the lock raises the epoch (``integrator`` row) and saves
    state only with :meth:`PostgresSequencer.save_state_fenced` under that epoch, so a
    replica that lost its lock (its connection died, the database restarted) can never
    move the tree, even before it notices. PostgreSQL releases a session lock when the
    session ends: a replica killed with SIGKILL frees it as soon as the server sees the
    connection close, and another replica takes over at its next attempt.

    SPEC: PostgreSQL "Advisory Locks" (session level, pg_try_advisory_lock), "NOTIFY"
    (delivered at commit, in commit order; never to a session that is not listening, hence
    the polling fallback of the caller).
    """

    def __init__(self, sequencer: PostgresSequencer, holder: str) -> None:
        self._seq = sequencer
        self._holder = holder
        self._conn: Any = None
        self.epoch: int | None = None  # set while this replica believes it holds the lock
        self._key = f"sealtrail.integrator.{sequencer._schema}"

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._drop()
            conn = self._seq._connect()
            try:
                for channel in (self._seq.sequenced_channel, self._seq.integrated_channel):
                    conn.execute(f"LISTEN {channel}")
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self.epoch = None  # the session lock, if any, went with the session
        if conn is not None:
            try:
                conn.close()
            except self._seq._psycopg.Error:  # pragma: no cover - already gone
                pass

    def acquire(self) -> int | None:
        """Take the lock if it is free: the new epoch, or None (another replica holds it)."""
        psycopg = self._seq._psycopg
        if self.epoch is not None:
            return self.epoch
        try:
            conn = self._connection()
            got = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))",
                               (self._key,)).fetchone()[0]
            if not got:
                return None
            with conn.transaction():
                epoch = int(conn.execute(
                    "UPDATE integrator SET epoch = epoch + 1, holder = %s, "
                    "since = extract(epoch from now()) WHERE id = 1 RETURNING epoch",
                    (self._holder,)).fetchone()[0])
        except psycopg.Error as exc:
            self._drop()
            raise _wrap(exc, "taking the integrator lock") from exc
        self.epoch = epoch
        return epoch

    def held(self) -> bool:
        """Whether this replica still holds the lock and its epoch is the current one."""
        psycopg = self._seq._psycopg
        if self.epoch is None:
            return False
        try:
            current = self._connection().execute(
                "SELECT epoch FROM integrator WHERE id = 1").fetchone()[0]
        except psycopg.Error:
            self._drop()
            return False
        if current != self.epoch:
            self.release()
            return False
        return True

    def wait(self, timeout: float) -> set[str]:
        """Wait up to ``timeout`` seconds for notifications; the channels that had one.

        Returns early on the first notification, with every other one already queued.
        An empty set after a timeout (or a broken connection: the caller polls anyway).
        """
        psycopg = self._seq._psycopg
        seen: set[str] = set()
        try:
            conn = self._connection()
            for notify in conn.notifies(timeout=timeout, stop_after=1):
                seen.add(notify.channel)
            if seen:
                for notify in conn.notifies(timeout=0):
                    seen.add(notify.channel)
        except psycopg.Error as exc:
            self._drop()
            raise _wrap(exc, "waiting for notifications") from exc
        return seen

    def release(self) -> None:
        """Give the lock up (closing the session releases it whatever happens)."""
        self._drop()

    def close(self) -> None:
        """Release and close. Idempotent."""
        self._drop()


def upgrade_schema(conninfo: str, schema: str) -> tuple[int, int]:
    """Bring ``schema`` to :data:`SCHEMA_VERSION` (``sealtrail migrate --upgrade-schema``).

    One transaction under the schema's advisory lock applies every
    :data:`SCHEMA_UPGRADES` step from the version found; returns (found, now). A schema
    without tables is left alone (the driver creates the current version) and a newer one
    is refused. Raises :class:`~sealtrail.errors.LogStorageError`.
    """
    if not _SCHEMA_NAME.match(schema):
        raise LogStorageError("invalid PostgreSQL schema name", actual=schema)
    import psycopg as _psycopg

    psycopg: Any = _psycopg
    try:
        params = psycopg.conninfo.conninfo_to_dict(conninfo)
        params.setdefault("connect_timeout", _CONNECT_TIMEOUT_S)
        with psycopg.connect(**params) as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('sealtrail.schema.' || %s))",
                         (schema,))
            conn.execute(psycopg.sql.SQL("SET LOCAL search_path TO {}").format(
                psycopg.sql.Identifier(schema)))
            if conn.execute("SELECT to_regclass('schema_version')").fetchone()[0] is None:
                return SCHEMA_VERSION, SCHEMA_VERSION
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            found = SCHEMA_VERSION if row is None else int(row[0])
            if found > SCHEMA_VERSION:
                raise LogStorageError("the schema was written by a newer sealtrail",
                                      actual=str(found), expected=f"<= {SCHEMA_VERSION}")
            for version in range(found, SCHEMA_VERSION):
                for statement in SCHEMA_UPGRADES[version]:
                    conn.execute(statement)
            conn.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION,))
            return found, SCHEMA_VERSION
    except psycopg.Error as exc:
        raise _wrap(exc, "upgrading the schema") from exc
