"""A directory of tiles, laid out exactly as the C2SP tlog-tiles read API serves them.

``<root>/checkpoint``, ``<root>/tile/<L>/<N>[.p/<W>]`` and
``<root>/tile/entries/<N>[.p/<W>]``: point a static file server or a CDN at ``<root>``
and it serves the log's read API.

Writes are atomic: each object is written to a temporary file in a sibling directory
(``<root>.tmp``, on the same filesystem, outside the served tree) and renamed into place,
so a reader sees the old object or the new one, never a torn write. They are not fsynced
there: tiles are derived data, and the engine makes them durable in groups with
:meth:`PosixTileStore.sync` (each named file, then every directory whose entries changed,
once), off its critical path (docs/adr/0004). Temporary files left by a crash are removed
when the store opens.
"""

from __future__ import annotations

import itertools
import os
import shutil
import threading
import uuid
from collections.abc import Sequence

from sealtrail.errors import LogStorageError
from sealtrail.log.storage.memory import check_object_path

__all__ = ["PosixTileStore"]

_FILE_MODE = 0o644
_DIR_MODE = 0o755


def _fsync_path(path: str) -> None:
    # O_RDONLY works for files and directories alike; fsync flushes the inode, whatever
    # descriptor it is reached through.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PosixTileStore:
    """A :class:`~sealtrail.log.storage.protocols.TileStore` in a directory tree."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        """Use (creating if needed) the directory ``root``.

        ``fsync=False`` makes :meth:`sync` a no-op: still atomic against a killed process,
        not durable against power loss, and then nothing bounds what a power loss may
        damage (the engine trusts what it was told is synced). For benchmarks and tests.
        Raises :class:`~sealtrail.errors.LogStorageError` if the directories cannot be
        created.
        """
        self.root = os.path.abspath(os.fspath(root))
        self._tmp = self.root.rstrip(os.sep) + ".tmp"
        self._fsync = fsync
        # Temporary names: unique per store (one process owns a log, see sqlite.py), with
        # no system call per name.
        self._names = itertools.count()
        self._prefix = uuid.uuid4().hex[:12] + "-"
        # Directories whose entries changed through a directory created since the last
        # sync (the parents of new directories): sync() fsyncs them too.
        self._lock = threading.Lock()
        self._dirty_dirs: set[str] = set()
        try:
            os.makedirs(self.root, _DIR_MODE, exist_ok=True)
            # Anything in the temporary directory is from a write that never finished.
            shutil.rmtree(self._tmp, ignore_errors=True)
            os.makedirs(self._tmp, _DIR_MODE, exist_ok=True)
        except OSError as exc:
            raise LogStorageError("cannot create the tile directory", actual=str(exc)) from exc

    def _file(self, path: str) -> str:
        return os.path.join(self.root, *check_object_path(path).split("/"))

    def read(self, path: str) -> bytes | None:
        """The object at ``path``, or None if it does not exist."""
        target = self._file(path)
        try:
            with open(target, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise LogStorageError("cannot read a tile", actual=f"{path}: {exc}") from exc

    def write_many(self, objects: Sequence[tuple[str, bytes]]) -> None:
        """Write every object atomically (temporary file + rename); not fsynced."""
        targets = [(self._file(p), d) for p, d in objects]
        try:
            for target, data in targets:
                tmp = os.path.join(self._tmp, self._prefix + str(next(self._names)))
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                finally:
                    os.close(fd)
                try:
                    os.replace(tmp, target)
                except FileNotFoundError:
                    # The first object in a new directory: create it (no stat per write
                    # for the common case) and try again.
                    self._makedirs(os.path.dirname(target))
                    os.replace(tmp, target)
        except OSError as exc:
            raise LogStorageError("cannot write a tile", actual=str(exc)) from exc

    def _makedirs(self, parent: str) -> None:
        # Record every new directory's parent, so that the new entry is fsynced too.
        missing = []
        d = parent
        while not os.path.isdir(d) and d.startswith(self.root):
            missing.append(d)
            d = os.path.dirname(d)
        os.makedirs(parent, _DIR_MODE, exist_ok=True)
        with self._lock:
            self._dirty_dirs.update(os.path.dirname(m) for m in missing)

    def delete_partials(self, full_path: str) -> None:
        """Remove the ``<full_path>.p/`` directory of superseded partial tiles.

        Durable once ``sync([full_path])`` returns (it fsyncs the same directory).
        """
        target = self._file(full_path) + ".p"
        try:
            # Partial directories hold only files: a listing and an unlink per file is
            # all it takes (shutil.rmtree costs several system calls per entry).
            for name in os.listdir(target):
                os.unlink(os.path.join(target, name))
            os.rmdir(target)
        except FileNotFoundError:
            return
        except IsADirectoryError:  # pragma: no cover - not written by this store
            shutil.rmtree(target, ignore_errors=True)
        except OSError as exc:
            raise LogStorageError("cannot delete partial tiles", actual=str(exc)) from exc

    def sync(self, paths: Sequence[str]) -> None:
        """Make the objects at ``paths`` durable (see the protocol).

        Fsyncs every file, then once each directory holding one of them (its entry, and
        the removal of its ``.p/`` directory) and the parent of every directory created
        since the last sync. An object that is missing (deleted behind the store's back)
        is skipped: a missing tile is visible, and the engine rebuilds it when read.
        Raises :class:`~sealtrail.errors.LogStorageError` if the disk fails; nothing is
        lost then, a later sync redoes it.
        """
        files = [self._file(p) for p in paths]
        if not self._fsync:
            return
        with self._lock:
            dirty, self._dirty_dirs = self._dirty_dirs, set()
        dirs = dirty | {os.path.dirname(f) for f in files}
        try:
            for f in files:
                try:
                    _fsync_path(f)
                except FileNotFoundError:
                    continue
            # Deepest first, so a new directory's own entries are on disk before its name.
            for d in sorted(dirs, key=lambda d: (-d.count(os.sep), d)):
                try:
                    _fsync_path(d)
                except FileNotFoundError:  # a .p/ directory removed meanwhile
                    continue
        except OSError as exc:
            with self._lock:
                self._dirty_dirs |= dirty
            raise LogStorageError("cannot sync tiles", actual=str(exc)) from exc

    def close(self) -> None:
        """Nothing to release."""
