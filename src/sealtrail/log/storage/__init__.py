"""Storage for transparency logs: role-based protocols and the drivers that implement them.

:class:`LogStorage` bundles what one log needs: a sequencer database (indexes, dedup,
search, integration state) and a tile store (tiles, entry bundles, checkpoint). Callers
get one from the wiring code (``LogStorage.embedded(directory)``,
``LogStorage.postgres(conninfo, tile_directory)`` or ``LogStorage.memory()``) and never import a driver by name (docs/architecture.md).
"""

from __future__ import annotations

import os
from typing import NamedTuple

from sealtrail.errors import LogStorageError
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
]

# File names inside an embedded log directory.
SEQUENCER_FILE = "sequencer.sqlite3"
TILES_DIR = "tiles"


class LogStorage(NamedTuple):
    """The storage of one log: a sequencer database and a tile store."""

    sequencer: SequencerStorage
    tiles: TileStore

    @classmethod
    def embedded(cls, directory: str | os.PathLike[str], *, fsync: bool = True) -> "LogStorage":
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
    def postgres(cls, conninfo: str, tile_directory: str | os.PathLike[str], *,
                 schema: str = "sealtrail", fsync: bool = True) -> LogStorage:
        """PostgreSQL sequencer (libpq ``conninfo``, one log per ``schema``) plus a POSIX
        tile tree in ``tile_directory`` (docs/adr/0004, "The PostgreSQL plan").

        In progress (issue 16): one engine per log until the integrator is elected.
        The connection string may hold a password: take it from the environment or a file,
        never from the command line. Raises :class:`~sealtrail.errors.LogStorageError`.
        """
        from sealtrail.log.storage.posix import PosixTileStore
        from sealtrail.log.storage.postgres import PostgresSequencer

        sequencer = PostgresSequencer(conninfo, schema=schema)
        try:
            tiles = PosixTileStore(os.fspath(tile_directory), fsync=fsync)
        except LogStorageError:
            sequencer.close()
            raise
        return cls(sequencer, tiles)

    @classmethod
    def memory(cls) -> "LogStorage":
        """In-memory drivers (tests, throw-away logs); reopen with the same object."""
        from sealtrail.log.storage.memory import MemorySequencer, MemoryTileStore

        return cls(MemorySequencer(), MemoryTileStore())

    def close(self) -> None:
        """Close both drivers."""
        try:
            self.sequencer.close()
        finally:
            self.tiles.close()
