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

A temporary is named ``.<target name>.<pid>-<run tag>-<n>.tmp``. A run that could not remove
its temporaries (killed by SIGKILL, a power cut; SIGINT and SIGTERM do unwind, see
cli/_runtime.py) leaves them behind; :meth:`plan` removes those of the targets it plans, and
only those that are stale: their process is gone, or they are older than
:data:`STALE_AFTER`. Nothing else in the directory is touched.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable

from sealtrail.errors import InputError, UsageError

__all__ = ["StagedOutputs"]

# A temporary is created exclusively (never follows or reuses an existing name) and never
# leaks to a child process. No O_TRUNC: a fresh file is empty.
_CREATE_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                 | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
_NAME_ATTEMPTS = 8
#: What follows ".<target name>." in a temporary's name: the process id (absent in names
#: from before it was added), the run's random tag and a counter.
_TEMPORARY_TAIL = re.compile(r"(?:(?P<pid>[0-9]{1,10})-)?[0-9a-f]{16}-[0-9]{1,12}\.tmp")
#: A temporary this old (seconds) is stale even when a process with its id runs: no signing
#: run lasts a day (its certificate is valid for minutes), so that process is another one
#: that got the id again.
STALE_AFTER = 24 * 3600.0


class StagedOutputs:
    """Output files planned up front, staged as they are ready, and placed together."""

    def __init__(self, *, overwrite: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        self.overwrite = overwrite
        self._planned: dict[str, str] = {}  # absolute path -> path as given
        self._staged: dict[str, str] = {}  # absolute path -> its temporary file
        self._lock = threading.Lock()
        self._clock = clock  # wall time, to tell a stale temporary by its age
        # Temporary names: ".<target name>.<pid>-<run tag>-<n>.tmp". The process id tells a
        # later run whether the one that wrote it still runs; the random tag keeps runs apart;
        # the counter keeps this run's names apart without a random draw per file.
        self._tag = f"{os.getpid()}-{secrets.token_hex(8)}"  # 64 random bits: no other run shares it
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
        self._remove_stale_temporaries()

    def _remove_stale_temporaries(self) -> None:
        """Remove the temporaries of planned targets that earlier runs left (killed before
        they could): only names of this module's pattern, only regular files, and only
        stale ones (their process is gone, or older than :data:`STALE_AFTER`)."""
        names: dict[str, set[str]] = {}
        for absolute in self._planned:
            directory, name = os.path.split(absolute)
            names.setdefault(directory, set()).add(name)
        now = self._clock()
        for directory, targets in names.items():
            try:
                entries = list(os.scandir(directory))
            except OSError:
                continue  # best effort: the run itself will say what is wrong with it
            for entry in entries:
                if not entry.name.startswith(".") or not entry.name.endswith(".tmp"):
                    continue
                if _stale(entry, targets, now):
                    _remove(entry.path)

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
        except BaseException:
            # Interrupted half-way (SIGINT or SIGTERM, cli/_runtime.py): none, not some.
            self._undo(placed)
            raise
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


def _stale(entry: os.DirEntry[str], targets: set[str], now: float) -> bool:
    """Whether ``entry`` is a temporary of one of ``targets`` that no running process owns."""
    for target in targets:
        prefix = f".{target}."
        if entry.name.startswith(prefix):
            tail = _TEMPORARY_TAIL.fullmatch(entry.name, len(prefix))
            if tail is not None:
                break
    else:
        return False
    try:
        if not entry.is_file(follow_symlinks=False):
            return False
        age = now - entry.stat(follow_symlinks=False).st_mtime
    except OSError:
        return False
    if age > STALE_AFTER:
        return True
    pid = tail["pid"]
    return pid is not None and int(pid) != os.getpid() and not _running(int(pid))


def _running(pid: int) -> bool:
    """Whether a process ``pid`` exists (signal 0 checks without sending anything)."""
    if os.name != "posix":  # pragma: no cover - there, only the age tells
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, as another user's
        return True
    return True


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:  # gone already, or best effort while a failure is being reported
        pass
