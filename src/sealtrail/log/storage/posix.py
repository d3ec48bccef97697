"""A directory of tiles, laid out exactly as the C2SP tlog-tiles read API serves them.

``<root>/checkpoint``, ``<root>/tile/<L>/<N>[.p/<W>]`` and
``<root>/tile/entries/<N>[.p/<W>]``: point a static file server or a CDN at ``<root>``
and it serves the log's read API.

Writes are atomic and durable: each object is written to a temporary file in a sibling
directory (``<root>.tmp``, on the same filesystem, outside the served tree), fsynced, and
renamed into place; then every directory that received a file is fsynced once. A reader
sees the old object or the new one, never a torn write. Temporary files left by a crash
are removed when the store opens.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence

from sealtrail.errors import LogStorageError
from sealtrail.log.storage.memory import check_object_path

__all__ = ["PosixTileStore"]

_FILE_MODE = 0o644
_DIR_MODE = 0o755


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PosixTileStore:
    """A :class:`~sealtrail.log.storage.protocols.TileStore` in a directory tree."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        """Use (creating if needed) the directory ``root``.

        ``fsync=False`` skips the fsyncs: still atomic against a killed process, not
        against power loss (tiles lost that way are rebuilt from the sequencer at open).
        Raises :class:`~sealtrail.errors.LogStorageError` if the directories cannot be
        created.
        """
        self.root = os.path.abspath(os.fspath(root))
        self._tmp = self.root.rstrip(os.sep) + ".tmp"
        self._fsync = fsync
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
        """Write every object atomically; durable (fsynced) when this returns."""
        targets = [(self._file(p), d) for p, d in objects]
        dirs: set[str] = set()
        try:
            for target, data in targets:
                parent = os.path.dirname(target)
                if not os.path.isdir(parent):
                    self._makedirs(parent, dirs)
                tmp = os.path.join(self._tmp, uuid.uuid4().hex)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                    if self._fsync:
                        os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, target)
                dirs.add(parent)
            if self._fsync:
                for d in sorted(dirs):
                    _fsync_dir(d)
        except OSError as exc:
            raise LogStorageError("cannot write a tile", actual=str(exc)) from exc

    def _makedirs(self, parent: str, dirs: set[str]) -> None:
        # Record every new directory's parent, so the new entry itself is fsynced too.
        missing = []
        d = parent
        while not os.path.isdir(d) and d.startswith(self.root):
            missing.append(d)
            d = os.path.dirname(d)
        os.makedirs(parent, _DIR_MODE, exist_ok=True)
        dirs.update(os.path.dirname(m) for m in missing)

    def delete_partials(self, full_path: str) -> None:
        """Remove the ``<full_path>.p/`` directory of superseded partial tiles."""
        target = self._file(full_path) + ".p"
        try:
            shutil.rmtree(target)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise LogStorageError("cannot delete partial tiles", actual=str(exc)) from exc

    def close(self) -> None:
        """Nothing to release."""
