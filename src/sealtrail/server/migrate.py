"""Move an embedded instance's storage to PostgreSQL (and object storage), and upgrade the
PostgreSQL schemas of the logs (issue 16; docs/backup-and-migrate.md).

Copying a log (:func:`copy_log`) goes through the storage protocols for everything they
offer (entries, integration state, tiles) and reads only the search keys beside them (no
protocol lists them). It is:

- **bounded in memory**: entries, search rows and tiles move in batches;
- **idempotent and resumable**: the target's entries are checked against the source's,
  then only the missing ones are sequenced (with their own index, integrated time and
  search keys: the source's batches are replayed as batches of the same time); tiles are
  rewritten (same bytes); the integration state is saved last, so a target interrupted
  half-way holds a prefix of the log and no state claiming more (docs/adr/0004: its
  engine re-derives everything beyond the recorded durable size);
- **refusing** a target that holds anything else (another origin, other entries, a longer
  state) with :class:`~sealtrail.errors.LogStorageError`;
- **verified**: same size, same integration state (size, root, signed checkpoint), the
  root recomputed from the target's own leaf hashes, the same published checkpoint object.

Schema upgrades (:func:`upgrade_schema`) are the PostgreSQL driver's ordered steps (version
N -> N+1, ``SCHEMA_UPGRADES`` in sealtrail.log.storage.postgres), applied in one transaction
per schema under the advisory lock the driver takes to create its tables, so a driver
opening meanwhile waits and then sees the new version.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import closing
from typing import Any, NamedTuple

from sealtrail.errors import LogStorageError, UsageError
from sealtrail.log.storage import (
    SEQUENCER_FILE,
    IntegrationState,
    LogStorage,
    NewEntry,
    SequencedEntry,
)
from sealtrail.merkle import EMPTY_ROOT, node_hash
from sealtrail.server.storage import CA_SCHEMA

__all__ = [
    "LogCopy",
    "SEQUENCER_FILE",
    "SchemaUpgrade",
    "copy_ca_record",
    "copy_embedded_log",
    "copy_log",
    "merkle_root",
    "schema_version",
    "sqlite_search_rows",
    "upgrade_schema",
]

# Batches: entries per sequencing transaction, tile objects per write/sync, CA rows per insert.
ENTRY_BATCH = 2000
TILE_BATCH = 256
RECORD_BATCH = 1000

# (stage, done, total): "entries", "tiles", "verify"; total 0 when unknown.
Progress = Callable[[str, int, int], None]
# Search rows (index, kind, value) of the entries from an index on, in index order.
SearchRows = Callable[[int], Generator[tuple[int, str, str], None, None]]


class LogCopy(NamedTuple):
    """What :func:`copy_log` found and did."""

    entries: int  # sequenced entries in the log (source and target alike)
    copied: int  # entries this run sequenced into the target (0 when it had them all)
    tiles: int  # tile objects written (all the source's; 0 when the tiles stay in place)
    size: int  # integrated size of the checkpoint (0 for a log never integrated)
    root_hash: bytes


class SchemaUpgrade(NamedTuple):
    """One schema's version before and after :func:`upgrade_schema`."""

    schema: str
    before: int | None  # None: the schema has no log tables
    after: int | None


# -- reading the embedded source -------------------------------------------------------------


def sqlite_search_rows(path: str | os.PathLike[str]) -> SearchRows:
    """A reader of the search rows of the SQLite sequencer file at ``path``, read-only.

    The sequencer protocols only look keys up; copying needs them all. One sorted scan
    (SQLite sorts in temporary files, not in memory) is read alongside the entries.
    """
    uri = "file:" + os.path.abspath(os.fspath(path)) + "?mode=ro"

    def rows(start: int) -> Generator[tuple[int, str, str], None, None]:
        try:
            with closing(sqlite3.connect(uri, uri=True, isolation_level=None)) as conn:
                conn.execute("PRAGMA query_only=1")
                cursor = conn.execute("SELECT idx, kind, value FROM search WHERE idx >= ? "
                                      "ORDER BY idx, kind, value", (start,))
                while True:
                    batch = cursor.fetchmany(ENTRY_BATCH)
                    if not batch:
                        return
                    for idx, kind, value in batch:
                        yield int(idx), str(kind), str(value)
        except sqlite3.Error as exc:
            raise LogStorageError("SQLite sequencer: reading search keys failed",
                                  actual=str(exc)) from exc

    return rows


def _tile_paths(root: str) -> Iterator[str]:
    """Every object of a tlog-tiles directory tree, as its path in the read API, sorted."""
    for directory, subdirectories, files in os.walk(root):
        subdirectories.sort()
        relative = os.path.relpath(directory, root)
        for name in sorted(files):
            yield name if relative == "." else "/".join((*relative.split(os.sep), name))


# -- copying a log ------------------------------------------------------------------------------


def merkle_root(leaf_hashes: Callable[[int, int], list[bytes]], size: int) -> bytes:
    """The RFC 6962 root of the first ``size`` leaves, read in batches from
    ``leaf_hashes(start, end)`` (constant memory: one hash per level)."""
    # SPEC: RFC 6962 §2.1: MTH splits at the largest power of two below n, so the tree is
    # the perfect subtrees of a binary decomposition of n, folded from the right.
    stack: list[tuple[int, bytes]] = []  # (height, root of a perfect subtree)
    for start in range(0, size, ENTRY_BATCH):
        end = min(size, start + ENTRY_BATCH)
        hashes = leaf_hashes(start, end)
        if len(hashes) != end - start:
            raise LogStorageError("the log is missing entries", actual=f"{start}..{end - 1}")
        for leaf in hashes:
            height, node = 0, leaf
            while stack and stack[-1][0] == height:
                node = node_hash(stack.pop()[1], node)
                height += 1
            stack.append((height, node))
    if not stack:
        return EMPTY_ROOT
    root = stack[-1][1]
    for _, left in reversed(stack[:-1]):
        root = node_hash(left, root)
    return root


def _origin(state: IntegrationState | None) -> str | None:
    # SPEC: C2SP signed-note / tlog-checkpoint: the first line of a checkpoint is the origin.
    return state.checkpoint.split("\n", 1)[0] if state is not None else None


def _check_prefix(source: LogStorage, target: LogStorage, size: int) -> None:
    """The target's first ``size`` entries must be the source's."""
    for start in range(0, size, ENTRY_BATCH):
        end = min(size, start + ENTRY_BATCH)
        theirs = target.sequencer.leaf_hashes(start, end)
        ours = source.sequencer.leaf_hashes(start, end)
        for offset, (a, b) in enumerate(zip(ours, theirs, strict=False)):
            if a != b:
                raise LogStorageError("the target already holds other entries",
                                      actual=f"index {start + offset}")
        if len(theirs) != len(ours):
            raise LogStorageError("the target is missing entries below its size",
                                  actual=f"{start}..{end - 1}")


def _runs(entries: Sequence[SequencedEntry]) -> Iterator[list[SequencedEntry]]:
    """Consecutive entries with one integrated time: the source's own sequencing batches."""
    for _, run in itertools.groupby(entries, key=lambda e: e.integrated_time):
        yield list(run)


def copy_log(source: LogStorage, target: LogStorage, *, search_rows: SearchRows | None = None,
             origin: str | None = None, progress: Progress | None = None) -> LogCopy:
    """Copy every sequenced entry, tile object and the integration state of ``source`` into
    ``target``, then verify the target (see the module docstring).

    ``search_rows`` reads the source's search keys (default: the source sequencer's own
    ``search_rows`` method, if it has one); ``origin`` binds the target (default: the
    origin of the source's checkpoint). The source's tiles must be a directory tree (what
    :meth:`LogStorage.embedded` keeps). Raises :class:`~sealtrail.errors.LogStorageError`
    when either side fails, the target holds something else, or the copy does not verify.
    """
    if search_rows is None:
        search_rows = getattr(source.sequencer, "search_rows", None)
        if search_rows is None:
            raise UsageError("copy_log needs a reader of the source's search keys "
                             "(sqlite_search_rows for an embedded log)")
    tile_root = getattr(source.tiles, "root", None)
    if not isinstance(tile_root, str):
        raise UsageError("copy_log reads tiles from a directory tree (an embedded log)")
    report = progress or (lambda stage, done, total: None)

    state = source.sequencer.load_state()
    size = source.sequencer.sequenced_size()
    origin = origin or _origin(state)
    if origin is not None:
        target.sequencer.bind(origin)  # refuses a target that belongs to another log
    present = target.sequencer.sequenced_size()
    if present > size:
        raise LogStorageError("the target holds more entries than the source",
                              actual=present, expected=f"<= {size}")
    target_state = target.sequencer.load_state()
    if target_state is not None and (state is None or target_state.size > state.size):
        raise LogStorageError("the target's checkpoint is ahead of the source's",
                              actual=target_state.size,
                              expected=f"<= {state.size if state else 0}")
    _check_prefix(source, target, present)

    copied = _copy_entries(source, target, present, size, search_rows, report)
    target_root = getattr(target.tiles, "root", None)
    if isinstance(target_root, str) and os.path.realpath(target_root) == os.path.realpath(
            tile_root):
        tiles = 0  # the tiles stay where they are (a "storage" section without "tiles")
    else:
        tiles = _copy_tiles(tile_root, source, target, report)
    if state is not None and target_state != state:
        # Last: the state vouches for the tiles up to its durable size, now synced.
        target.sequencer.save_state(state)
    _verify(source, target, size, state, report)
    return LogCopy(size, copied, tiles, state.size if state else 0,
                   state.root_hash if state else EMPTY_ROOT)


def _copy_entries(source: LogStorage, target: LogStorage, start: int, size: int,
                  search_rows: SearchRows, report: Progress) -> int:
    with closing(search_rows(start)) as keys:
        return _copy_entries_with(source, target, start, size, keys, report)


def _copy_entries_with(source: LogStorage, target: LogStorage, start: int, size: int,
                       keys: Iterator[tuple[int, str, str]], report: Progress) -> int:
    pending: tuple[int, str, str] | None = next(keys, None)
    for batch_start in range(start, size, ENTRY_BATCH):
        batch_end = min(size, batch_start + ENTRY_BATCH)
        entries = source.sequencer.entries(batch_start, batch_end)
        if [e.index for e in entries] != list(range(batch_start, batch_end)):
            raise LogStorageError("the source is missing entries",
                                  actual=f"{batch_start}..{batch_end - 1}")
        by_index: dict[int, list[tuple[str, str]]] = {}
        while pending is not None and pending[0] < batch_end:
            by_index.setdefault(pending[0], []).append((pending[1], pending[2]))
            pending = next(keys, None)
        for run in _runs(entries):
            new = [NewEntry(e.leaf_hash, e.body, tuple(by_index.get(e.index, ())))
                   for e in run]
            assigned = target.sequencer.assign(new, run[0].integrated_time)
            for entry, got in zip(run, assigned, strict=True):
                if got.duplicate or got.index != entry.index:
                    # Someone else sequenced into the target meanwhile, or it held this
                    # entry at another index.
                    raise LogStorageError("the target assigned another index",
                                          actual=f"{got.index} (duplicate: {got.duplicate})",
                                          expected=entry.index)
        report("entries", batch_end, size)
    return size - start


def _copy_tiles(root: str, source: LogStorage, target: LogStorage, report: Progress) -> int:
    written = 0
    paths = _tile_paths(root)
    while True:
        batch = list(itertools.islice(paths, TILE_BATCH))
        if not batch:
            return written
        objects = []
        for path in batch:
            data = source.tiles.read(path)
            if data is not None:
                objects.append((path, data))
        target.tiles.write_many(objects)
        target.tiles.sync([path for path, _ in objects])
        written += len(objects)
        report("tiles", written, 0)


def _verify(source: LogStorage, target: LogStorage, size: int,
            state: IntegrationState | None, report: Progress) -> None:
    got_size = target.sequencer.sequenced_size()
    if got_size != size:
        raise LogStorageError("the copy does not verify: another size", actual=got_size,
                              expected=size)
    got_state = target.sequencer.load_state()
    if state is None:
        return
    if got_state is None or (got_state.size, got_state.root_hash, got_state.checkpoint) != \
            (state.size, state.root_hash, state.checkpoint):
        raise LogStorageError("the copy does not verify: another checkpoint",
                              actual=got_state.size if got_state else None, expected=state.size)
    root = merkle_root(target.sequencer.leaf_hashes, state.size)
    if root != state.root_hash:
        raise LogStorageError("the copy does not verify: the target's entries give another "
                              "root", actual=root.hex(), expected=state.root_hash.hex())
    if target.tiles.read("checkpoint") != source.tiles.read("checkpoint"):
        raise LogStorageError("the copy does not verify: another published checkpoint")
    report("verify", state.size, state.size)


def copy_embedded_log(directory: str | os.PathLike[str], target: LogStorage, *,
                      origin: str | None = None, progress: Progress | None = None) -> LogCopy:
    """:func:`copy_log` from the embedded log in ``directory`` (taking its process lock, so a
    log being served is refused with :class:`~sealtrail.errors.LogStorageError`)."""
    source = LogStorage.embedded(directory)
    try:
        return copy_log(source, target, origin=origin, progress=progress,
                        search_rows=sqlite_search_rows(os.path.join(directory, SEQUENCER_FILE)))
    finally:
        source.close()


# -- PostgreSQL ---------------------------------------------------------------------------------


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise LogStorageError("PostgreSQL storage needs psycopg (the server extra)",
                              actual=str(exc)) from exc
    return psycopg


def _connect(conninfo: str) -> Any:
    psycopg = _psycopg()
    try:
        params = psycopg.conninfo.conninfo_to_dict(conninfo)
        params.setdefault("connect_timeout", 10)
        return psycopg.connect(**params, autocommit=True)
    except psycopg.Error as exc:
        # psycopg's message names the server, never the password.
        raise LogStorageError("cannot connect to PostgreSQL",
                              actual=f"{type(exc).__name__}: {str(exc).strip()}") from exc


def _failed(exc: BaseException, what: str) -> LogStorageError:
    return LogStorageError(f"PostgreSQL: {what} failed",
                           actual=f"{type(exc).__name__}: {str(exc).strip()}")


def _read_version(conn: Any, schema: str) -> int | None:
    row = conn.execute("SELECT to_regclass(%s)", (f"{schema}.schema_version",)).fetchone()
    if row[0] is None:
        return None
    sql = _psycopg().sql
    found = conn.execute(sql.SQL("SELECT version FROM {}.schema_version").format(
        sql.Identifier(schema))).fetchone()
    return None if found is None else int(found[0])


def schema_version(conninfo: str, schema: str) -> int | None:
    """The version recorded in ``schema``'s ``schema_version`` table (None: no such table)."""
    with closing(_connect(conninfo)) as conn:
        try:
            return _read_version(conn, schema)
        except _psycopg().Error as exc:
            raise _failed(exc, "reading the schema version") from exc


def upgrade_schema(conninfo: str, schema: str, *, dry_run: bool = False) -> SchemaUpgrade:
    """Report ``schema``'s version and bring it to the driver's
    (:data:`sealtrail.log.storage.postgres.SCHEMA_VERSION`) with the driver's own ordered
    steps, in one transaction under the schema's advisory lock
    (:func:`sealtrail.log.storage.postgres.upgrade_schema`). A schema without log tables is
    reported as None and left alone; one newer than the driver's is refused
    (:class:`~sealtrail.errors.LogStorageError`)."""
    from sealtrail.log.storage.postgres import SCHEMA_VERSION
    from sealtrail.log.storage.postgres import upgrade_schema as upgrade

    before = schema_version(conninfo, schema)
    if before is None:
        return SchemaUpgrade(schema, None, None)
    if before > SCHEMA_VERSION:
        raise LogStorageError(f"schema {schema} was written by a newer sealtrail",
                              actual=before, expected=f"<= {SCHEMA_VERSION}")
    if dry_run or before == SCHEMA_VERSION:
        return SchemaUpgrade(schema, before, before)
    found, now = upgrade(conninfo, schema)
    return SchemaUpgrade(schema, found, now)


# -- the CA's issuance record -----------------------------------------------------------------

def copy_ca_record(path: str | os.PathLike[str], conninfo: str, *,
                   schema: str = CA_SCHEMA) -> int:
    """Copy the CA's issuance record (the SQLite file at ``path``, read-only) into
    ``schema``'s ``issued`` table (sealtrail.ca.record's PostgreSQL record); returns the number of certificates, verified equal.

    Idempotent: rows already there are kept when they are the same certificate. A target
    holding another certificate under a serial, or certificates the source lacks, is
    refused with :class:`~sealtrail.errors.LogStorageError`.
    """
    from sealtrail.ca.record import PostgresIssuanceRecord

    uri = "file:" + os.path.abspath(os.fspath(path)) + "?mode=ro"
    psycopg = _psycopg()
    sql = psycopg.sql
    # The record's own driver creates its schema and tables (and checks their version).
    PostgresIssuanceRecord(conninfo, schema=schema).close()
    try:
        source = sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise LogStorageError("cannot read the CA's issuance record", actual=str(exc)) from exc
    with closing(source), closing(_connect(conninfo)) as conn:
        try:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            total = 0
            cursor = source.execute("SELECT serial, not_before, subject, issuer, certificate "
                                    "FROM issued ORDER BY serial")
            while rows := cursor.fetchmany(RECORD_BATCH):
                columns = list(zip(*rows, strict=True))
                with conn.transaction():
                    conn.execute("INSERT INTO issued SELECT * FROM unnest(%s::text[], "
                                 "%s::text[], %s::text[], %s::text[], %s::bytea[]) "
                                 "ON CONFLICT (serial) DO NOTHING",
                                 [list(c) for c in columns])
                    stored = dict(conn.execute(
                        "SELECT serial, certificate FROM issued WHERE serial = ANY(%s)",
                        (list(columns[0]),)).fetchall())
                for serial, *_, certificate in rows:
                    if bytes(stored.get(serial, b"")) != bytes(certificate):
                        raise LogStorageError("the target's CA record holds another "
                                              "certificate under a serial", actual=serial)
                total += len(rows)
            count = conn.execute("SELECT count(*) FROM issued").fetchone()[0]
        except sqlite3.Error as exc:
            raise LogStorageError("cannot read the CA's issuance record",
                                  actual=str(exc)) from exc
        except psycopg.Error as exc:
            raise _failed(exc, "copying the CA's issuance record") from exc
    if count != total:
        raise LogStorageError("the target's CA record holds certificates the source lacks",
                              actual=count, expected=total)
    return total
