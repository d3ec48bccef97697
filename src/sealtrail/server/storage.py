"""Where an instance keeps its state: the embedded default or PostgreSQL plus a tile location.

The optional ``storage`` section of sealtrail.json (docs/instance.md, "Storage")::

    "storage": {"database": "postgresql://user@host:5432/dbname?sslmode=verify-full",
                "tiles": "s3://bucket/prefix" | "/abs/dir" | "file:///abs/dir",
                "tilesEndpoint": "https://s3.example.com"}

Without it everything stays under the instance directory (SQLite and files). With it, each
log's sequencer lives in the PostgreSQL schema ``log_<name>`` (``-`` becomes ``_``), the CA's
issuance record in ``ca``, the CT log in ``ct_log`` (docs/adr/0014: one schema per log), and
each log's tiles in ``<tiles>/<log name>/`` (under the instance directory when ``tiles`` is
absent).

Secrets never sit in the file: a ``database`` holding a password is refused, libpq finds it
itself (PGPASSWORD, PGPASSFILE, ~/.pgpass or ``passfile=`` in the string); S3 credentials come
from the standard AWS chain. Neither the string nor a password is ever put in a message.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from sealtrail._internal.encoding import reject_unknown, require_dict, require_str
from sealtrail.errors import ConfigInvalidError

if TYPE_CHECKING:
    from sealtrail.ca.record import IssuanceRecord
    from sealtrail.log.storage import LogStorage

__all__ = ["CA_SCHEMA", "CT_LOG_SCHEMA", "StorageConfig", "log_schema", "open_ct_log_storage",
           "open_issuance_record", "open_log_storage"]

CA_SCHEMA = "ca"
CT_LOG_SCHEMA = "ct_log"
# The CT log's tiles go to <tiles>/ct (Rekor logs are named rekor<n> and log<n>).
CT_LOG_NAME = "ct"
_FIELDS = ("database", "tiles", "tilesEndpoint")


def log_schema(name: str) -> str:
    """The PostgreSQL schema of the log called ``name``."""
    return "log_" + name.replace("-", "_")


@dataclass(frozen=True)
class StorageConfig:
    """The ``storage`` section: a PostgreSQL database and, optionally, where tiles go.

    ``database`` is a libpq URL or ``key=value`` string without a password; ``tiles`` is ""
    (under the instance directory), an absolute directory, ``file:///abs/dir`` or
    ``s3://bucket[/prefix]``; ``tiles_endpoint`` the S3 endpoint URL (s3 tiles only; ""
    for AWS's own)."""

    database: str
    tiles: str = ""
    tiles_endpoint: str = ""

    @classmethod
    def from_json(cls, data: Any, source: str = "storage") -> "StorageConfig":
        """Parse the section strictly (ADR 0002): strings only, no unknown fields, a database
        always (the section exists to name one). Raises :class:`ConfigInvalidError` naming
        ``source`` and the field, never showing the connection string."""
        E = ConfigInvalidError
        section = require_dict(data, source, E)
        reject_unknown(section, _FIELDS, source, E)
        if "database" not in section:
            raise E(f"{source} has no database (remove the section for the embedded storage)")
        database = require_str(section["database"], f"{source}.database", E)
        tiles = require_str(section.get("tiles", ""), f"{source}.tiles", E)
        endpoint = require_str(section.get("tilesEndpoint", ""), f"{source}.tilesEndpoint", E)
        _check_database(database, f"{source}.database")
        _check_tiles(tiles, endpoint, f"{source}.tiles", f"{source}.tilesEndpoint")
        return cls(database, tiles, endpoint)

    @classmethod
    def from_arguments(cls, database: str, tiles: str = "",
                       tiles_endpoint: str = "") -> "StorageConfig":
        """The section from `init`'s flags, checked as :meth:`from_json` checks the file
        (errors name the flags)."""
        _check_database(database, "--database")
        _check_tiles(tiles, tiles_endpoint, "--tiles", "--tiles-endpoint")
        return cls(database, tiles, tiles_endpoint)

    def to_json(self) -> dict[str, str]:
        out = {"database": self.database}
        if self.tiles:
            out["tiles"] = self.tiles
        if self.tiles_endpoint:
            out["tilesEndpoint"] = self.tiles_endpoint
        return out

    def tile_location(self, name: str, embedded_dir: str) -> str:
        """Where the tiles of log ``name`` go: an ``s3://`` URL or a directory."""
        if not self.tiles:
            return os.path.join(embedded_dir, "tiles")
        if self.tiles.startswith("s3://"):
            return self.tiles.rstrip("/") + "/" + name
        directory = (unquote(urlsplit(self.tiles).path) if self.tiles.startswith("file:")
                     else self.tiles)
        return os.path.join(directory, name)


def _check_database(database: str, what: str) -> None:
    """A libpq connection string that parses and holds no password.

    libpq itself parses it (psycopg's ``conninfo_to_dict``: PQconninfoParse), so URLs and
    ``key=value`` strings, quoting and ``?password=`` in a URL's query are read exactly as the
    connection will read them. Without psycopg (a client install reading the file, e.g. for
    `token`) it is skipped: such an install cannot connect to PostgreSQL either."""
    if not database.strip():
        raise ConfigInvalidError(f"{what} must not be empty")
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        return
    try:
        params = conninfo_to_dict(database)
    except Exception:  # psycopg.ProgrammingError; its message quotes the string: not shown
        raise ConfigInvalidError(f"{what} is not a libpq connection string",
                                 expected="postgresql://USER@HOST:PORT/DBNAME or "
                                          "host=... dbname=...") from None
    if "password" in params:
        raise ConfigInvalidError(
            f"{what} must not hold a password: give it to libpq through PGPASSWORD, "
            "PGPASSFILE, ~/.pgpass or passfile=FILE")


def _check_tiles(tiles: str, endpoint: str, tiles_name: str, endpoint_name: str) -> None:
    E = ConfigInvalidError
    if tiles.startswith("s3://"):
        parts = urlsplit(tiles)
        if not parts.netloc or "@" in parts.netloc or parts.query or parts.fragment:
            raise E(f"{tiles_name} must be s3://BUCKET[/PREFIX]", actual=tiles)
    elif tiles:
        if endpoint:
            raise E(f"{endpoint_name} is for s3:// tiles only", actual=tiles)
        if tiles.startswith("file:"):
            parts = urlsplit(tiles)
            if parts.netloc not in ("", "localhost") or not parts.path.startswith("/") \
                    or parts.query or parts.fragment:
                raise E(f"{tiles_name} must be file:///ABSOLUTE/DIR", actual=tiles)
        elif "://" in tiles:
            raise E(f"{tiles_name} must be s3://BUCKET/PREFIX, file:///DIR or /DIR",
                    actual=tiles)
        elif not os.path.isabs(tiles):
            raise E(f"{tiles_name} must be an absolute directory", actual=tiles)
    elif endpoint:
        raise E(f"{endpoint_name} is for s3:// tiles only (no tiles given)")
    if endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise E(f"{endpoint_name} must be an http(s) URL", actual=endpoint)


def open_log_storage(storage: StorageConfig | None, name: str, embedded_dir: str, *,
                     fsync: bool = True, schema: str | None = None) -> LogStorage:
    """The storage of log ``name``: embedded in ``embedded_dir`` (SQLite and tiles) when
    ``storage`` is None, else PostgreSQL schema ``schema`` (default :func:`log_schema`) and
    the tiles at :meth:`StorageConfig.tile_location`.

    Raises :class:`~sealtrail.errors.LogStorageError` (exit 3) when it cannot be opened."""
    from sealtrail.log.storage import LogStorage

    if storage is None:
        return LogStorage.embedded(embedded_dir, fsync=fsync)
    schema = schema or log_schema(name)
    location = storage.tile_location(name, embedded_dir)
    if not location.startswith("s3://"):
        return LogStorage.postgres(storage.database, location, schema=schema, fsync=fsync)
    from sealtrail.log.storage import open_tile_store

    tiles = open_tile_store(location, endpoint_url=storage.tiles_endpoint or None)
    try:
        return LogStorage.postgres(storage.database, tiles, schema=schema, fsync=fsync)
    except BaseException:
        tiles.close()
        raise


def open_ct_log_storage(storage: StorageConfig | None, embedded_dir: str) -> LogStorage:
    """The CT log's storage: embedded in ``embedded_dir``, or PostgreSQL schema ``ct_log``
    with its tiles in ``<tiles>/ct`` (``embedded_dir``/tiles when no tiles are configured)."""
    return open_log_storage(storage, CT_LOG_NAME, embedded_dir, schema=CT_LOG_SCHEMA)


def open_issuance_record(storage: StorageConfig | None, path: str) -> IssuanceRecord:
    """The CA's issuance record: SQLite at ``path``, or the PostgreSQL schema ``ca``."""
    from sealtrail.ca.record import IssuanceRecord, PostgresIssuanceRecord

    if storage is None:
        return IssuanceRecord(path)
    return PostgresIssuanceRecord(storage.database, schema=CA_SCHEMA)
