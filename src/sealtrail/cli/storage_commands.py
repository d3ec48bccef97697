"""``sealtrail migrate``, ``backup`` and ``restore``: move an instance's storage, copy it.

The work is in :mod:`sealtrail.server.migrate` and :mod:`sealtrail.server.backup`; here flags
are read and results printed (docs/backup-and-migrate.md). Only stdlib at the top: the CLI
imports this module to build its parser.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

_DOCS = "docs/backup-and-migrate.md"


def add_arguments(parser: Any) -> None:
    command = parser.prog.split()[-1]
    if command == "migrate":
        _migrate_arguments(parser)
    elif command == "backup":
        parser.description = (
            "Write a consistent archive of an embedded instance (every SQLite database "
            "through SQLite's online backup API, then tiles, keys, certificates, "
            "configuration, trust documents and the TUF repository), while it may be "
            "serving. The archive holds private keys: it is written mode 0600. An instance "
            f"on PostgreSQL and object storage is backed up with their own tools ({_DOCS}).")
        parser.add_argument("directory", metavar="DIR", help="the instance directory")
        parser.add_argument("archive", metavar="OUT",
                            help="the archive to write: OUT.tar, OUT.tar.gz or OUT.tgz")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")
    else:
        parser.description = (
            "Extract a `sealtrail backup` archive into DIR (absent or empty), refusing any "
            "path that would leave it, then open every log and check that its entries and "
            "tiles give its checkpoint's root (tiles newer than the copied state are "
            "rebuilt).")
        parser.add_argument("archive", metavar="ARCHIVE", help="a `sealtrail backup` archive")
        parser.add_argument("directory", metavar="DIR", help="where to restore (empty)")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _migrate_arguments(parser: Any) -> None:
    parser.description = (
        "Copy an embedded instance's logs (frozen shards too), CT log and CA issuance record "
        "into PostgreSQL (and its tiles to --tiles), verify the copy, then point "
        "sealtrail.json at it. Run it while the instance is stopped; it can be run again "
        "after an interruption. The SQLite files are kept. With --upgrade-schema: report "
        "the schema version of each log in PostgreSQL and upgrade older ones.")
    parser.add_argument("directory", metavar="DIR", help="the instance directory")
    parser.add_argument("--database", metavar="URL",
                        help="the PostgreSQL database (libpq URL or key=value, no password: "
                             "libpq reads it from PGPASSWORD, PGPASSFILE or ~/.pgpass)")
    parser.add_argument("--tiles", metavar="LOCATION",
                        help="where each log's tiles go (s3://BUCKET/PREFIX, file:///DIR or "
                             "/DIR; default: they stay under DIR)")
    parser.add_argument("--tiles-endpoint", metavar="URL",
                        help="the S3-compatible server of s3:// tiles (default AWS)")
    parser.add_argument("--upgrade-schema", action="store_true",
                        help="report each log's PostgreSQL schema version and upgrade older "
                             "ones (the database of sealtrail.json, or --database)")
    parser.add_argument("--dry-run", action="store_true",
                        help="say what would be copied or upgraded; change nothing")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: Any) -> int:
    if args.command == "migrate":
        return _upgrade_schema(args) if args.upgrade_schema else _migrate(args)
    if args.command == "backup":
        return _backup(args)
    return _restore(args)


def _print(args: Any, document: dict[str, Any], lines: list[str]) -> None:
    if args.json:
        print(json.dumps({"ok": True, **document}, sort_keys=True))
    else:
        for line in lines:
            print(line)


# -- migrate ----------------------------------------------------------------------------------


class _Source:
    """One embedded log to copy: its storage (holding its process lock) and its target."""

    def __init__(self, label: str, name: str, directory: str, schema: str,
                 origin: str | None) -> None:
        self.label = label  # "rekor", "ct"...
        self.name = name  # the name its tiles go under
        self.directory = directory
        self.schema = schema
        self.origin = origin
        self.storage: Any = None


def _sources(directory: str, specs: list[Any]) -> list[_Source]:
    from sealtrail.server.migrate import SEQUENCER_FILE
    from sealtrail.server.storage import CT_LOG_SCHEMA, log_schema

    logs_dir = os.path.join(directory, "logs")
    found = [_Source(spec.name, spec.name, os.path.join(logs_dir, spec.name),
                     log_schema(spec.name), spec.origin) for spec in specs]
    ct_dir = os.path.join(directory, "ct", "log")
    if os.path.isfile(os.path.join(ct_dir, SEQUENCER_FILE)):
        found.append(_Source("ct", "ct", ct_dir, CT_LOG_SCHEMA, None))
    return found


def _open_sources(directory: str, sources: list[_Source]) -> None:
    """Open every source, taking its process lock: refused while the instance is served, and
    holding every lock until the end keeps a server from starting half-way."""
    from sealtrail.errors import LogStorageError
    from sealtrail.log.storage import LogStorage

    for source in sources:
        try:
            source.storage = LogStorage.embedded(source.directory)
        except LogStorageError as exc:
            raise LogStorageError(f"cannot migrate {directory} while it is served (log "
                                  f"{source.label} is in use): stop `sealtrail serve` first",
                                  actual=exc.actual) from exc


def _migrate(args: Any) -> int:
    from sealtrail._internal.keyfiles import write_atomic
    from sealtrail.cli._common import usage_error
    from sealtrail.server.instance import CONFIG_NAME, Instance
    from sealtrail.server.migrate import (SEQUENCER_FILE, copy_ca_record, copy_log,
                                          schema_version, sqlite_search_rows)
    from sealtrail.server.storage import (CA_SCHEMA, StorageConfig, open_ct_log_storage,
                                         open_log_storage)

    if args.database is None:
        raise usage_error("migrate needs --database URL (or --upgrade-schema)")
    storage = StorageConfig.from_arguments(args.database, args.tiles or "",
                                           args.tiles_endpoint or "")
    instance = Instance(args.directory)
    directory = instance.directory
    config = instance.config()
    if config.storage is not None:
        if config.storage != storage:
            raise usage_error(f"{directory} already keeps its storage in PostgreSQL, "
                              "elsewhere: migrate copies an embedded instance")
        _print(args, {"migrated": False, "reason": "already on this storage"},
               [f"{directory} already keeps its storage there: nothing to do"])
        return 0
    sources = _sources(directory, instance.logs.specs())
    record = instance.path("ca", "issued.sqlite")
    results: list[dict[str, Any]] = []
    try:
        _open_sources(directory, sources)
        for source in sources:
            if args.dry_run:
                sequencer = source.storage.sequencer
                state = sequencer.load_state()
                results.append({"log": source.label, "schema": source.schema,
                                "entries": sequencer.sequenced_size(),
                                "size": state.size if state else 0,
                                # Reaches the database: exit 3 now rather than later.
                                "targetVersion": schema_version(storage.database,
                                                                source.schema)})
                continue
            target = (open_ct_log_storage(storage, source.directory) if source.label == "ct"
                      else open_log_storage(storage, source.name, source.directory,
                                            schema=source.schema))
            started = time.monotonic()
            try:
                copy = copy_log(source.storage, target, origin=source.origin,
                                search_rows=sqlite_search_rows(
                                    os.path.join(source.directory, SEQUENCER_FILE)),
                                progress=_progress(source.label, args.json))
            finally:
                target.close()
            seconds = time.monotonic() - started
            results.append({"log": source.label, "schema": source.schema,
                            "entries": copy.entries, "copied": copy.copied,
                            "tiles": copy.tiles, "size": copy.size,
                            "rootHash": copy.root_hash.hex(), "seconds": round(seconds, 3)})
        certificates = None
        if os.path.isfile(record) and not args.dry_run:
            certificates = copy_ca_record(record, storage.database, schema=CA_SCHEMA)
        if not args.dry_run:
            # Last, atomically: until here the instance is still the embedded one.
            with open(instance.path(CONFIG_NAME), "rb") as handle:
                document = json.loads(handle.read())
            document["storage"] = storage.to_json()
            write_atomic(instance.path(CONFIG_NAME),
                         json.dumps(document, indent=2).encode() + b"\n")
    finally:
        for source in sources:
            if source.storage is not None:
                source.storage.close()
    lines = [("would copy" if args.dry_run else "copied") + f" {directory} to PostgreSQL"
             + (f" and tiles to {storage.tiles}" if storage.tiles else "")]
    for item in results:
        if args.dry_run:
            there = ("absent" if item["targetVersion"] is None
                     else f"exists already (version {item['targetVersion']})")
            lines.append(f"  log {item['log']} -> schema {item['schema']} ({there}): "
                         f"{item['entries']} entries, checkpoint size {item['size']}")
        else:
            rate = item["copied"] / item["seconds"] if item["seconds"] else 0.0
            tiles = (f"{item['tiles']} tile objects" if storage.tiles
                     else "tiles left in place")
            lines.append(f"  log {item['log']} -> schema {item['schema']}: {item['entries']} "
                         f"entries ({item['copied']} copied now, {rate:.0f}/s), {tiles}, "
                         f"checkpoint size {item['size']} verified")
    if certificates is not None:
        lines.append(f"  CA record -> schema {CA_SCHEMA}: {certificates} certificates")
    if not args.dry_run:
        kept = ("the SQLite files and the old tiles are kept" if storage.tiles
                else "the SQLite files are kept (the tiles there stay in use)")
        lines.append(f"{CONFIG_NAME} now names this storage. Under {directory}, {kept}: "
                     f"remove the SQLite files once the instance serves well ({_DOCS}).")
    _print(args, {"migrated": not args.dry_run, "dryRun": args.dry_run, "logs": results,
                  "caRecord": certificates}, lines)
    return 0


def _progress(label: str, quiet: bool) -> Any:
    """Entries copied so far, on stderr, at most every 2 seconds (large logs take a while)."""
    last = [time.monotonic()]

    def report(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if quiet or now - last[0] < 2:
            return
        last[0] = now
        print(f"sealtrail: log {label}: {stage} {done}" + (f"/{total}" if total else ""),
              file=sys.stderr)

    return report


def _upgrade_schema(args: Any) -> int:
    from sealtrail.ca.record import held_exclusively
    from sealtrail.cli._common import usage_error
    from sealtrail.errors import LogStorageError
    from sealtrail.server.instance import Instance
    from sealtrail.server.migrate import upgrade_schema
    from sealtrail.server.storage import CT_LOG_SCHEMA, StorageConfig, log_schema

    instance = Instance(args.directory)
    config = instance.config()
    if args.database is not None:
        database = StorageConfig.from_arguments(args.database).database
    elif config.storage is not None:
        database = config.storage.database
    else:
        raise usage_error(f"{instance.directory} is embedded (no storage in sealtrail.json): "
                          "there is no PostgreSQL schema to upgrade")
    schemas = [log_schema(spec.name) for spec in instance.logs.specs()] + [CT_LOG_SCHEMA]
    # Every serving process holds the instance's serving lock shared (sealtrail.ca.record):
    # servers of the old version must be stopped before their tables change.
    with held_exclusively(database) as free:
        if not free and not args.dry_run:
            raise LogStorageError(f"cannot upgrade the schemas of {instance.directory} while "
                                  "it is served (a server holds the PostgreSQL serving lock): "
                                  "stop every `sealtrail serve` first")
        results = [upgrade_schema(database, schema, dry_run=args.dry_run)
                   for schema in schemas]
    lines = []
    for result in results:
        if result.before is None:
            lines.append(f"  {result.schema}: no log tables")
        elif result.before == result.after:
            lines.append(f"  {result.schema}: version {result.before}"
                         + (" (would be upgraded)" if args.dry_run and
                            result.before < _driver_version() else ""))
        else:
            lines.append(f"  {result.schema}: upgraded from version {result.before} to "
                         f"{result.after}")
    _print(args, {"schemas": [{"schema": r.schema, "before": r.before, "after": r.after}
                              for r in results], "dryRun": args.dry_run,
                  "version": _driver_version()},
           [f"PostgreSQL log schemas (this sealtrail writes version {_driver_version()}):",
            *lines])
    return 0


def _driver_version() -> int:
    from sealtrail.log.storage.postgres import SCHEMA_VERSION

    return SCHEMA_VERSION


# -- backup and restore -----------------------------------------------------------------------


def _backup(args: Any) -> int:
    from sealtrail.server.backup import backup_instance

    report = backup_instance(args.directory, args.archive)
    _print(args, {"archive": report.archive, "databases": report.databases,
                  "files": report.files, "bytes": report.bytes},
           [f"wrote {report.archive} ({report.bytes} bytes, mode 0600: it holds private "
            f"keys): {report.databases} databases, {report.files} other files and "
            "directories"])
    return 0


def _restore(args: Any) -> int:
    from sealtrail.server.backup import restore_instance

    passphrase = os.environ.get("SEALTRAIL_PASSPHRASE")
    report = restore_instance(args.archive, args.directory,
                              passphrase=passphrase.encode() if passphrase else None)
    _print(args, {"directory": report.directory, "members": report.files,
                  "logs": [{"log": c.name, "size": c.size, "rootHash": c.root_hash}
                           for c in report.logs]},
           [f"restored {report.directory} ({report.files} archive members)",
            *(f"  log {c.name}: checkpoint size {c.size}, root {c.root_hash} verified"
              for c in report.logs)])
    return 0
