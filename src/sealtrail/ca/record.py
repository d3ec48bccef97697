"""The CA's durable record of every certificate it issued (SQLite, or PostgreSQL).

Certificate transparency already makes issuance public; this local record answers "what did
*our* CA issue, to whom, when" without a log query, and is written before the certificate is
returned (an issuance that cannot be recorded fails).

:class:`IssuanceRecord` keeps it in a SQLite file; :class:`PostgresIssuanceRecord` in one
PostgreSQL schema (``ca`` for an instance, docs/instance.md "Storage"), with the same table.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from sealtrail.errors import ConfigInvalidError, ServiceUnavailableError

if TYPE_CHECKING:
    from sealtrail.ca.identities import Principal

__all__ = ["IssuanceRecord", "IssuedCertificate", "PostgresIssuanceRecord", "held_exclusively"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS issued (
    serial TEXT PRIMARY KEY,
    not_before TEXT NOT NULL,
    subject TEXT NOT NULL,
    issuer TEXT NOT NULL,
    certificate BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS issued_subject ON issued (subject);
"""


class IssuedCertificate(NamedTuple):
    """One row of the record."""

    serial: str  # hex
    not_before: str  # RFC 3339
    subject: str  # the SAN value
    issuer: str  # the OIDC issuer
    certificate: bytes  # DER


def _row(leaf: x509.Certificate, principal: Principal) -> tuple[str, str, str, str, bytes]:
    return (f"{leaf.serial_number:x}", leaf.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
            principal.san.value, principal.issuer, leaf.public_bytes(Encoding.DER))


class IssuanceRecord:
    """Append-only record in ``path`` (created on first use, WAL, fsynced commits)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._lock = threading.Lock()
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self._db = sqlite3.connect(os.fspath(path), check_same_thread=False,
                                       isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigInvalidError(f"cannot open the CA's issuance record {path}: {exc}") from exc

    def record(self, leaf: x509.Certificate, principal: Principal) -> None:
        """Record ``leaf`` issued to ``principal`` (a :class:`sealtrail.ca.identities.Principal`)."""
        row = _row(leaf, principal)
        try:
            with self._lock:
                self._db.execute("INSERT INTO issued VALUES (?, ?, ?, ?, ?)", row)
        except sqlite3.Error as exc:
            # The certificate is not handed out: the CA answers 503 and the client retries.
            raise ServiceUnavailableError("the CA cannot record the certificate it would "
                                          f"issue: {exc}") from exc

    def by_subject(self, subject: str, limit: int = 100) -> list[IssuedCertificate]:
        """The certificates issued to ``subject`` (a SAN value), newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT serial, not_before, subject, issuer, certificate FROM issued "
                "WHERE subject = ? ORDER BY not_before DESC LIMIT ?", (subject, limit)).fetchall()
        return [IssuedCertificate(*row) for row in rows]

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM issued").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


# PostgreSQL: one schema holds the table (docs/adr/0014: one schema per log, the record alike).
_PG_SCHEMA_VERSION = 1
_PG_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}\Z")
_PG_TABLES = (
    "CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)",
    ("CREATE TABLE IF NOT EXISTS issued (serial text PRIMARY KEY, not_before text NOT NULL, "
     "subject text NOT NULL, issuer text NOT NULL, certificate bytea NOT NULL)"),
    "CREATE INDEX IF NOT EXISTS issued_subject ON issued (subject)",
)
_PG_CONNECT_TIMEOUT_S = 10
# Every process serving the instance holds this advisory lock shared, on the record's
# connection, for as long as it runs; `rotate` takes it exclusively (held_exclusively), which
# a running server prevents. SPEC: PostgreSQL "Advisory Locks": session-level, released when
# the session ends, so a killed server never leaves it behind. The server process ends a
# moment after the client closes its connection, so both sides unlock explicitly first: the
# lock is free when close() returns. A process that waits for it longer than this (a
# rotation under way) fails, as a server that cannot reach the database does.
_SERVING_LOCK_KEY = "hashtext('sealtrail.serving')"
_SERVING_LOCK_WAIT = "5s"


def _pg_connect(conninfo: str, schema: str | None = None) -> Any:
    import psycopg  # the server extra; imported here so the CA and client never need it

    try:
        params = psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.Error:  # its message quotes the string, which may hold a password
        raise ConfigInvalidError("the CA's issuance record: not a libpq connection "
                                 "string") from None
    timeout = params.get("connect_timeout", _PG_CONNECT_TIMEOUT_S)
    conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=timeout)
    try:
        if schema is not None:
            conn.execute(psycopg.sql.SQL("SET search_path TO {}").format(
                psycopg.sql.Identifier(schema)))
        # SPEC: PostgreSQL "synchronous_commit": on = flushed before COMMIT returns; the
        # certificate is handed out only after its row is durable.
        conn.execute("SET synchronous_commit TO on")
    except BaseException:
        conn.close()
        raise
    return conn


def _unavailable(exc: BaseException, what: str) -> ServiceUnavailableError:
    # psycopg's messages name the server, never a password (the instance refuses
    # connection strings that hold one).
    return ServiceUnavailableError(f"the CA's issuance record (PostgreSQL): {what} failed",
                                   actual=f"{type(exc).__name__}: {str(exc).strip()}")


class PostgresIssuanceRecord(IssuanceRecord):
    """The record in PostgreSQL schema ``schema`` (created on first use).

    While open it holds the instance's serving lock shared (an advisory lock on its
    connection; :func:`held_exclusively` is how `rotate` sees a running server).

    Same interface and guarantees as the SQLite record: a row is committed durably
    (``synchronous_commit=on``) before the certificate is returned; any failure is a
    :class:`ServiceUnavailableError`, so the CA answers 503 and the client retries. A broken
    connection is dropped and opened again by the next call. Several processes may record
    at once (the serial is the primary key)."""

    def __init__(self, conninfo: str, *, schema: str = "ca") -> None:  # noqa: D107
        if not _PG_SCHEMA_NAME.match(schema):
            raise ConfigInvalidError("invalid PostgreSQL schema name for the issuance record",
                                     actual=schema)
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise ConfigInvalidError("PostgreSQL storage needs psycopg (the server extra)",
                                     actual=str(exc)) from exc
        self._psycopg = psycopg
        self._conninfo = conninfo
        self._schema = schema
        self._lock = threading.Lock()
        self._conn: Any = None
        self._closed = False
        try:
            with _pg_connect(conninfo) as conn, conn.transaction():
                # Two processes creating the tables at once would race in the catalog.
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('sealtrail.schema.' || %s))",
                             (schema,))
                conn.execute(psycopg.sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                    psycopg.sql.Identifier(schema)))
                conn.execute(psycopg.sql.SQL("SET LOCAL search_path TO {}").format(
                    psycopg.sql.Identifier(schema)))
                for statement in _PG_TABLES:
                    conn.execute(statement)
                row = conn.execute("SELECT version FROM schema_version").fetchone()
                if row is None:
                    conn.execute("INSERT INTO schema_version VALUES (%s)", (_PG_SCHEMA_VERSION,))
                elif row[0] != _PG_SCHEMA_VERSION:
                    raise ConfigInvalidError("unknown schema version of the CA's issuance record",
                                             actual=str(row[0]), expected=str(_PG_SCHEMA_VERSION))
        except psycopg.Error as exc:
            raise _unavailable(exc, "opening") from exc
        # Connect now, taking the shared serving lock: `rotate` is refused from the moment
        # a server has opened its record.
        self._execute("SELECT 1", (), "connecting")

    def _execute(self, sql: str, params: tuple[Any, ...], what: str) -> list[Any]:
        psycopg = self._psycopg
        with self._lock:
            if self._closed:
                raise ServiceUnavailableError("the CA's issuance record is closed")
            try:
                if self._conn is None or self._conn.closed:
                    conn = _pg_connect(self._conninfo, self._schema)
                    try:
                        # Shared: replicas hold it together.
                        conn.execute(f"SET lock_timeout = '{_SERVING_LOCK_WAIT}'")
                        conn.execute(f"SELECT pg_advisory_lock_shared({_SERVING_LOCK_KEY})")
                        conn.execute("RESET lock_timeout")
                    except BaseException:
                        conn.close()
                        raise
                    self._conn = conn
                cursor = self._conn.execute(sql, params)
                return cursor.fetchall() if cursor.description is not None else []
            except psycopg.Error as exc:
                if self._conn is not None and self._conn.broken:
                    self._conn.close()
                    self._conn = None
                raise _unavailable(exc, what) from exc

    def record(self, leaf: x509.Certificate, principal: Principal) -> None:
        """Record ``leaf`` issued to ``principal``; committed before this returns."""
        self._execute("INSERT INTO issued VALUES (%s, %s, %s, %s, %s)", _row(leaf, principal),
                      "recording the certificate it would issue")

    def by_subject(self, subject: str, limit: int = 100) -> list[IssuedCertificate]:
        """The certificates issued to ``subject`` (a SAN value), newest first."""
        rows = self._execute("SELECT serial, not_before, subject, issuer, certificate FROM issued "
                             "WHERE subject = %s ORDER BY not_before DESC LIMIT %s",
                             (subject, limit), "reading")
        return [IssuedCertificate(serial, before, subj, issuer, bytes(cert))
                for serial, before, subj, issuer, cert in rows]

    def count(self) -> int:
        return int(self._execute("SELECT COUNT(*) FROM issued", (), "counting")[0][0])

    def close(self) -> None:
        """Close the connection (which releases the serving lock). Idempotent."""
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.execute("SELECT pg_advisory_unlock_all()")
            except self._psycopg.Error:  # a broken connection: its session ends anyway
                pass
            conn.close()


@contextlib.contextmanager
def held_exclusively(conninfo: str) -> Iterator[bool]:
    """Take the serving lock exclusively for the block; yields False (holding nothing) when
    a process serving the instance holds it (see :class:`PostgresIssuanceRecord`).

    Raises :class:`ServiceUnavailableError` when the database cannot be reached."""
    import psycopg

    try:
        conn = _pg_connect(conninfo)
    except psycopg.Error as exc:
        raise _unavailable(exc, "connecting") from exc
    try:
        try:
            row = conn.execute(f"SELECT pg_try_advisory_lock({_SERVING_LOCK_KEY})").fetchone()
        except psycopg.Error as exc:
            raise _unavailable(exc, "locking") from exc
        if row[0]:
            try:
                yield True
            finally:
                with contextlib.suppress(psycopg.Error):
                    conn.execute(f"SELECT pg_advisory_unlock({_SERVING_LOCK_KEY})")
        else:
            yield False
    finally:
        conn.close()
