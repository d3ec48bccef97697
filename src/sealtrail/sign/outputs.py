"""All-or-nothing output files: a signing run leaves every output or none.

:class:`StagedOutputs` is used in two phases. Before any network work, :meth:`plan` checks
that each output path is free (unless overwriting was asked for), distinct from the others
and in a directory that exists, so that a doomed run fails before it spends log entries.
After every artifact has been signed and verified, :meth:`commit` writes each file to a
temporary name beside its target and only then moves them into place. A failure while
writing removes the temporaries; a failure before commit writes nothing at all.

Without ``overwrite``, files are moved into place with ``link`` + ``unlink``, which fails
rather than replacing a file that appeared in the meantime.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable

from sealtrail.errors import InputError, UsageError

__all__ = ["StagedOutputs"]


class StagedOutputs:
    """Output files planned up front and written together at the end."""

    def __init__(self, *, overwrite: bool = False) -> None:
        self.overwrite = overwrite
        self._planned: dict[str, str] = {}  # absolute path -> path as given
        self._data: dict[str, tuple[bytes, int]] = {}

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
        """Set the content (and permission bits) of planned output ``path``; it is kept in
        memory until :meth:`commit`. Private keys use ``mode=0o600``."""
        absolute = os.path.abspath(path)
        if absolute not in self._planned:
            raise UsageError(f"{path} was not planned as an output")
        self._data[absolute] = (data, mode)

    def commit(self) -> list[str]:
        """Write every output; return their paths (as given). All or nothing on write errors."""
        missing = [self._planned[p] for p in self._planned if p not in self._data]
        if missing:
            raise UsageError(f"no content for output {missing[0]}")
        staged: list[tuple[str, str]] = []
        placed: list[str] = []  # new files linked into place (removed again on failure)
        try:
            for absolute, (data, mode) in self._data.items():
                handle, temporary = tempfile.mkstemp(
                    prefix="." + os.path.basename(absolute) + ".", suffix=".tmp",
                    dir=os.path.dirname(absolute))
                staged.append((temporary, absolute))
                # mkstemp creates the file 0600: a private key is never readable by others,
                # not even for a moment; public outputs are opened up before they are moved.
                # No fsync: the promise is "a failed run writes nothing", not durability
                # across a power cut, and a sync per file would dominate a 100-file run.
                with os.fdopen(handle, "wb") as out:
                    out.write(data)
                if mode != 0o600:
                    os.chmod(temporary, mode)
            for temporary, absolute in staged:
                if self.overwrite:
                    os.replace(temporary, absolute)
                else:
                    os.link(temporary, absolute)  # fails if the target appeared meanwhile
                    placed.append(absolute)
                    os.unlink(temporary)
        except FileExistsError as exc:
            self._undo(placed)
            raise UsageError(f"{exc.filename or 'an output'} appeared while signing; "
                             "nothing was overwritten (pass --overwrite to replace it)") from exc
        except OSError as exc:
            self._undo(placed)
            raise InputError(f"cannot write {exc.filename or 'an output'}: {exc.strerror}") from exc
        finally:
            for temporary, _ in staged:
                if os.path.lexists(temporary):
                    os.unlink(temporary)
        return [self._planned[absolute] for absolute in self._data]

    @staticmethod
    def _undo(placed: list[str]) -> None:
        # These files did not exist before this run (link refuses to replace), so removing
        # them restores the state before the run.
        for path in placed:
            try:
                os.unlink(path)
            except OSError:
                pass
