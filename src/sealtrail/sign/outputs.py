"""All-or-nothing output files: a signing run leaves every output or none.

:class:`StagedOutputs` is used in three steps. Before any network work, :meth:`plan` checks
that each output path is free (unless overwriting was asked for), distinct from the others
and in a directory that exists, so that a doomed run fails before it spends log entries.
As each artifact is signed and verified, :meth:`put` writes its file to a temporary name
beside the target (from any thread: the writing overlaps the rest of the run). When every
artifact is done, :meth:`commit` moves them all into place; a failure moves none, and
:meth:`discard` (or leaving the ``with`` block) removes the temporaries. Nothing ever
appears at a target path before every output is ready.

Without ``overwrite``, files are moved into place with ``link`` + ``unlink``, which fails
rather than replacing a file that appeared in the meantime.
"""

from __future__ import annotations

import itertools
import os
import secrets
import threading
from collections.abc import Iterable

from sealtrail.errors import InputError, UsageError

__all__ = ["StagedOutputs"]

# A temporary is created exclusively (never follows or reuses an existing name) and never
# leaks to a child process. No O_TRUNC: a fresh file is empty.
_CREATE_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                 | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
_NAME_ATTEMPTS = 8


class StagedOutputs:
    """Output files planned up front, staged as they are ready, and placed together."""

    def __init__(self, *, overwrite: bool = False) -> None:
        self.overwrite = overwrite
        self._planned: dict[str, str] = {}  # absolute path -> path as given
        self._staged: dict[str, str] = {}  # absolute path -> its temporary file
        self._lock = threading.Lock()
        # Temporary names: ".<target name>.<run tag>-<n>.tmp". The random tag keeps runs
        # apart; the counter keeps this run's names apart without a random draw per file.
        self._tag = secrets.token_hex(8)  # 64 random bits: no other run shares it
        self._counter = itertools.count()

    def __enter__(self) -> "StagedOutputs":
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()  # after a commit there is nothing left to remove

    def plan(self, paths: Iterable[str]) -> None:
        """Reserve ``paths``; raise :class:`UsageError` if one exists (without overwrite),
        is named twice, is a directory, or lives in a missing directory."""
        for path in paths:
            absolute = os.path.abspath(path)
            if absolute in self._planned:
                raise UsageError(f"{path} would be written twice; give distinct output names")
            if os.path.isdir(absolute):
                raise UsageError(f"{path} is a directory")
            if os.path.lexists(absolute) and not self.overwrite:
                raise UsageError(f"{path} exists; pass --overwrite to replace it")
            if not os.path.isdir(os.path.dirname(absolute)):
                raise UsageError(f"the directory of {path} does not exist")
            self._planned[absolute] = path

    def put(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Write the content (and permission bits) of planned output ``path`` to a temporary
        file beside it; :meth:`commit` moves it into place. Thread-safe. Private keys use
        ``mode=0o600``. Raises :class:`InputError` if the file cannot be written; content
        put before for the same path is replaced."""
        absolute = os.path.abspath(path)
        if absolute not in self._planned:
            raise UsageError(f"{path} was not planned as an output")
        directory, name = os.path.split(absolute)
        # Created 0600, so a private key is never readable by others, not even for a moment;
        # public outputs are opened up (fchmod: exact bits, whatever the umask) before they
        # are moved. Plain os calls: a buffered file object costs three more system calls.
        temporary, handle = "", -1
        for _ in range(_NAME_ATTEMPTS):
            temporary = os.path.join(directory, f"{self._prefix(name)}{next(self._counter)}.tmp")
            try:
                handle = os.open(temporary, _CREATE_FLAGS, 0o600)
                break
            except FileExistsError:
                continue  # a leftover of an earlier run with the same tag: take the next
            except OSError as exc:
                raise InputError(f"cannot write {path}: {exc.strerror}") from exc
        else:
            raise InputError(f"cannot write {path}: no free temporary name beside it")
        try:
            # No fsync: the promise is "a failed run writes nothing", not durability across
            # a power cut, and a sync per file would dominate a 100-file run.
            view = memoryview(data)
            while view:
                view = view[os.write(handle, view):]
            if mode != 0o600:
                if hasattr(os, "fchmod"):
                    os.fchmod(handle, mode)
                else:  # pragma: no cover - Windows before Python 3.13
                    os.chmod(temporary, mode)
        except OSError as exc:
            os.close(handle)
            _remove(temporary)
            raise InputError(f"cannot write {path}: {exc.strerror}") from exc
        os.close(handle)
        with self._lock:
            previous = self._staged.get(absolute)
            self._staged[absolute] = temporary
        if previous is not None and previous != temporary:
            _remove(previous)

    def _prefix(self, name: str) -> str:
        """Temporaries of ``name`` in this run: ``.<name>.<run tag>-<n>.tmp``."""
        return f".{name}.{self._tag}-"

    def commit(self) -> list[str]:
        """Move every staged output into place; return their paths (as given, in planned
        order). All or nothing: on a failure the outputs already moved are removed again."""
        with self._lock:
            staged = dict(self._staged)
        missing = [given for absolute, given in self._planned.items() if absolute not in staged]
        if missing:
            raise UsageError(f"no content for output {missing[0]}")
        placed: list[str] = []  # new files linked into place (removed again on failure)
        try:
            for absolute in self._planned:
                temporary = staged[absolute]
                if self.overwrite:
                    os.replace(temporary, absolute)
                else:
                    os.link(temporary, absolute)  # fails if the target appeared meanwhile
                    placed.append(absolute)
                    os.unlink(temporary)
                with self._lock:  # moved: nothing left for discard() to remove
                    del self._staged[absolute]
        except FileExistsError as exc:
            self._undo(placed)
            raise UsageError(f"{exc.filename or 'an output'} appeared while signing; "
                             "nothing was overwritten (pass --overwrite to replace it)") from exc
        except OSError as exc:
            self._undo(placed)
            raise InputError(f"cannot write {exc.filename or 'an output'}: {exc.strerror}") from exc
        finally:
            self.discard()
        return list(self._planned.values())

    def discard(self) -> None:
        """Remove every temporary file not moved into place (a failed or abandoned run)."""
        with self._lock:
            temporaries = list(self._staged.values())
            self._staged.clear()
        for temporary in temporaries:
            _remove(temporary)

    @staticmethod
    def _undo(placed: list[str]) -> None:
        # These files did not exist before this run (link refuses to replace), so removing
        # them restores the state before the run.
        for path in placed:
            try:
                os.unlink(path)
            except OSError:
                pass


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:  # gone already, or best effort while a failure is being reported
        pass
