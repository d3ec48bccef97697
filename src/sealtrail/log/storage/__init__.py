"""Storage for transparency logs: role-based protocols and the drivers that implement them.

:class:`LogStorage` bundles what one log needs: a sequencer database (indexes, dedup,
search, integration state) and a tile store (tiles, entry bundles, checkpoint). Callers
get one from the wiring code (``LogStorage.embedded(directory)``,
``LogStorage.postgres(conninfo, tiles)`` or ``LogStorage.memory()``) and never import a
driver by name (docs/architecture.md). :func:`open_tile_store` turns a location
(``s3://bucket/prefix``, ``file:///dir`` or a directory) into a tile store.
"""

from __future__ import annotations

import os
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from sealtrail.errors import LogStorageError, UsageError
from sealtrail.log.storage.protocols import (
    Assignment,
    EntryReader,
    IntegrationState,
    IntegrationStateStore,
    NewEntry,
    SearchIndex,
    SequencedEntry,
    Sequencer,
    SequencerStorage,
    TileStore,
)

__all__ = [
    "Assignment",
    "EntryReader",
    "IntegrationState",
    "IntegrationStateStore",
    "LogStorage",
    "NewEntry",
    "SearchIndex",
    "SequencedEntry",
    "Sequencer",
    "SequencerStorage",
    "TileStore",
    "open_tile_store",
]

# File names inside an embedded log directory.
SEQUENCER_FILE = "sequencer.sqlite3"
TILES_DIR = "tiles"


class LogStorage(NamedTuple):
    """The storage of one log: a sequencer database and a tile store."""

    sequencer: SequencerStorage
    tiles: TileStore

    @classmethod
    def embedded(cls, directory: str | os.PathLike[str], *, fsync: bool = True) -> LogStorage:
        """SQLite sequencer plus a POSIX tile tree under ``directory``.

        Layout: ``<directory>/sequencer.sqlite3`` and ``<directory>/tiles/`` (serve the
        latter as static files to publish the tlog-tiles read API). Tiles are written
        without fsync and made durable in groups by ``tiles.sync()`` (docs/adr/0004).
        ``fsync=False`` makes that a no-op: for benchmarks and tests only, since after a
        power loss the engine would then trust tiles that may be damaged; the sequencer
        always fsyncs, so no acknowledged entry is lost either way.
        Raises :class:`~sealtrail.errors.LogStorageError` if the directory cannot be used.
        """
        from sealtrail.log.storage.posix import PosixTileStore
        from sealtrail.log.storage.sqlite import SqliteSequencer

        root = os.fspath(directory)
        try:
            os.makedirs(root, 0o755, exist_ok=True)
        except OSError as exc:
            raise LogStorageError("cannot create the log directory", actual=str(exc)) from exc
        sequencer = SqliteSequencer(os.path.join(root, SEQUENCER_FILE))
        try:
            tiles = PosixTileStore(os.path.join(root, TILES_DIR), fsync=fsync)
        except LogStorageError:
            sequencer.close()
            raise
        return cls(sequencer, tiles)

    @classmethod
    def postgres(cls, conninfo: str, tiles: str | os.PathLike[str] | TileStore, *,
                 schema: str = "sealtrail", fsync: bool = True) -> LogStorage:
        """PostgreSQL sequencer (libpq ``conninfo``, one log per ``schema``) plus the
        tiles: a directory (a POSIX tile tree, ``fsync`` as in :meth:`embedded`) or a
        ready :class:`TileStore` such as one from :func:`open_tile_store` (docs/adr/0004,
        "The PostgreSQL plan"; docs/adr/0015).

        A store passed in belongs to the result from then on (:meth:`close` closes it);
        if the sequencer cannot be opened it is left to the caller to close.
        In progress (issue 16): one engine per log until the integrator is elected.
        The connection string may hold a password: take it from the environment or a file,
        never from the command line. Raises :class:`~sealtrail.errors.LogStorageError`.
        """
        from sealtrail.log.storage.posix import PosixTileStore
        from sealtrail.log.storage.postgres import PostgresSequencer

        sequencer = PostgresSequencer(conninfo, schema=schema)
        if isinstance(tiles, TileStore):
            return cls(sequencer, tiles)
        try:
            store = PosixTileStore(os.fspath(tiles), fsync=fsync)
        except LogStorageError:
            sequencer.close()
            raise
        return cls(sequencer, store)

    @classmethod
    def memory(cls) -> LogStorage:
        """In-memory drivers (tests, throw-away logs); reopen with the same object."""
        from sealtrail.log.storage.memory import MemorySequencer, MemoryTileStore

        return cls(MemorySequencer(), MemoryTileStore())

    def close(self) -> None:
        """Close both drivers."""
        try:
            self.sequencer.close()
        finally:
            self.tiles.close()


def open_tile_store(location: str, *, endpoint_url: str | None = None,
                    fsync: bool = True) -> TileStore:
    """The tile store at ``location``.

    - ``s3://BUCKET/PREFIX``: an S3-compatible bucket (:mod:`.s3`; ``endpoint_url`` names
      a server other than AWS, credentials come from boto3's standard chain);
    - ``file:///DIR`` or a plain directory path: a POSIX tile tree (``fsync`` as in
      :meth:`LogStorage.embedded`).

    Raises :class:`~sealtrail.errors.UsageError` for any other location (or an endpoint
    for a directory), :class:`~sealtrail.errors.LogStorageError` if the store cannot be
    set up.
    """
    if not isinstance(location, str) or not location:
        raise UsageError("a tile store location is required",
                         expected="s3://BUCKET/PREFIX, file:///DIR or a directory")
    if location.startswith("s3://"):
        parts = urlsplit(location)
        if "@" in parts.netloc:
            # Not echoed: what precedes the @ may be a key. Credentials come from boto3's
            # standard chain, never from a location.
            raise UsageError("an S3 tile location holds no credentials",
                             expected="s3://BUCKET/PREFIX")
        if not parts.netloc or parts.query or parts.fragment:
            raise UsageError("an S3 tile location is s3://BUCKET/PREFIX", actual=location)
        from sealtrail.log.storage.s3 import S3TileStore

        return S3TileStore(parts.netloc, unquote(parts.path), endpoint_url=endpoint_url)
    if endpoint_url is not None:
        raise UsageError("an endpoint URL applies to s3:// tile locations only",
                         actual=location)
    if location.startswith("file://"):
        parts = urlsplit(location)
        if parts.netloc not in ("", "localhost") or parts.query or parts.fragment \
                or not parts.path:
            raise UsageError("a file tile location is file:///DIR", actual=location)
        directory = unquote(parts.path)
    elif "://" in location:
        raise UsageError("unsupported tile store location", actual=location.split("://")[0],
                         expected="s3://BUCKET/PREFIX, file:///DIR or a directory")
    else:
        directory = location
    from sealtrail.log.storage.posix import PosixTileStore

    return PosixTileStore(directory, fsync=fsync)
