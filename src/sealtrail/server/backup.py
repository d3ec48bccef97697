"""Back up an embedded instance to one tar archive, and restore it (docs/backup-and-migrate.md).

`backup` may run while the instance is served. Consistency comes from the storage design
(docs/adr/0004): every SQLite database (each log's sequencer, the CA's record) is copied
with SQLite's online backup API, a consistent snapshot taken in one step while writers go
on; the tiles are copied afterwards. Tiles are derived data: the snapshot's integration
state vouches only for tiles full at its durable size, which are immutable, and the log
engine re-derives every tile beyond it when the restored log opens. Tiles newer than the
snapshot are therefore harmless, and none that the snapshot needs can be missing.

Everything else (keys, certificates, configuration, trust documents, the TUF repository)
is copied as it is, with its mode: private keys stay 0600, and the archive itself is
written 0600 because it holds them.

`restore` extracts into an empty directory only, after checking every member with
tarfile's ``data`` filter (no absolute paths, no ``..``, no links leaving the directory,
no devices), then opens every log (the recovery above) and checks that its entries give
the root of its checkpoint.

An instance on PostgreSQL and object storage is backed up with those systems' own tools
(pg_dump / pg_basebackup with WAL archiving, object versioning or replication); `backup`
refuses it and points at the documentation.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import closing
from typing import Any, NamedTuple

from sealtrail.errors import ConfigInvalidError, InputError, LogStorageError, UsageError

__all__ = ["BackupReport", "LogCheck", "RestoreReport", "backup_instance", "restore_instance"]

DOCS = "docs/backup-and-migrate.md"
SQLITE_SUFFIXES = (".sqlite3", ".sqlite")
# Files beside a SQLite database that belong to a live connection, not to the data.
_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
_ARCHIVE_MODE = 0o600


class BackupReport(NamedTuple):
    archive: str
    databases: int  # SQLite databases copied with the online backup API
    files: int  # other files (tiles, keys, configuration...)
    bytes: int  # size of the archive


class LogCheck(NamedTuple):
    name: str
    size: int
    root_hash: str  # hex


class RestoreReport(NamedTuple):
    directory: str
    files: int
    logs: list[LogCheck]


def _storage_section(directory: str) -> Any:
    """The ``storage`` section of DIR/sealtrail.json (None when the instance is embedded)."""
    path = os.path.join(directory, "sealtrail.json")
    try:
        with open(path, "rb") as handle:
            config = json.loads(handle.read(1024 * 1024))
    except OSError as exc:
        raise InputError(f"{directory} is not a sealtrail instance (cannot read "
                         f"sealtrail.json: {exc.strerror})") from exc
    except ValueError as exc:
        raise ConfigInvalidError(f"{path} is not valid JSON") from exc
    if not isinstance(config, dict):
        raise ConfigInvalidError(f"{path} must hold a JSON object")
    return config.get("storage")


def _is_temporary(name: str) -> bool:
    # PosixTileStore's "<tiles>.tmp" directory, write_atomic's "<file>.tmp-<pid>-<tid>", and
    # lock files (a database's "<db>.lock", the TUF repository's ".lock"): they belong to
    # the running processes, hold no data, and are created again on demand.
    return name.endswith((".tmp", ".lock")) or ".tmp-" in name


def _walk(directory: str) -> Iterator[tuple[str, str]]:
    """(absolute path, archive name) of every directory and file to archive, parents first
    (so that extraction gives directories their modes: keys/ stays 0700); databases are
    archived by :func:`backup_instance` separately."""
    for parent, subdirectories, files in os.walk(directory):
        subdirectories[:] = sorted(d for d in subdirectories if not _is_temporary(d))
        relative = os.path.relpath(parent, directory)
        if relative != ".":
            yield parent, relative
        databases = {f for f in files if f.endswith(SQLITE_SUFFIXES)}
        for name in sorted(files):
            if _is_temporary(name) or name in databases or any(
                    name == db + suffix for db in databases for suffix in _SQLITE_COMPANIONS):
                continue
            path = os.path.join(parent, name)
            yield path, os.path.normpath(os.path.join(relative, name))


def _databases(directory: str) -> list[tuple[str, str]]:
    found = []
    for parent, subdirectories, files in os.walk(directory):
        subdirectories[:] = sorted(d for d in subdirectories if not _is_temporary(d))
        for name in sorted(files):
            if name.endswith(SQLITE_SUFFIXES):
                path = os.path.join(parent, name)
                found.append((path, os.path.relpath(path, directory)))
    return found


def _snapshot(database: str, copy: str) -> None:
    """A consistent copy of a live SQLite database (WAL included) with the backup API."""
    try:
        source = sqlite3.connect("file:" + database + "?mode=ro", uri=True)
        with closing(source), closing(sqlite3.connect(copy)) as target:
            # pages=-1 (the default): the whole database in one step, under one read
            # transaction, so the copy is a snapshot however busy the writer is.
            source.backup(target)
            # A standalone file: the copy needs no -wal beside it.
            target.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.Error as exc:
        raise LogStorageError("cannot back up a SQLite database",
                              actual=f"{os.path.basename(database)}: {exc}") from exc


def backup_instance(directory: str, archive: str) -> BackupReport:
    """Write a consistent archive of the embedded instance in ``directory`` to ``archive``
    (``.tar``, ``.tar.gz`` or ``.tgz``), mode 0600, atomically (complete or absent).

    Raises :class:`UsageError` for an instance on PostgreSQL/object storage (back it up
    with their own tools: :data:`DOCS`), or an archive path inside the instance.
    """
    directory = os.path.abspath(directory)
    archive = os.path.abspath(archive)
    if _storage_section(directory) is not None:
        raise UsageError(f"{directory} keeps its logs in PostgreSQL and object storage: back "
                         f"them up with their own tools and copy the keys ({DOCS})")
    if archive.startswith(directory + os.sep):
        raise UsageError("the archive must be written outside the instance directory",
                         actual=archive)
    compress = archive.endswith((".tar.gz", ".tgz"))
    if not compress and not archive.endswith(".tar"):
        raise UsageError("the archive name must end in .tar, .tar.gz or .tgz", actual=archive)
    partial = f"{archive}.partial-{os.getpid()}"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _ARCHIVE_MODE)
    databases = files = 0
    try:
        with os.fdopen(fd, "wb") as handle, \
                tempfile.TemporaryDirectory(prefix="sealtrail-backup-") as scratch:
            os.fchmod(handle.fileno(), _ARCHIVE_MODE)  # whatever the umask
            with tarfile.open(fileobj=handle, mode="w:gz" if compress else "w",
                              format=tarfile.PAX_FORMAT) as tar:
                # Databases first: the tiles copied after them may only be newer.
                for number, (path, name) in enumerate(_databases(directory)):
                    copy = os.path.join(scratch, str(number))
                    _snapshot(path, copy)
                    info = tar.gettarinfo(copy, arcname=name)
                    info.mode = os.stat(path).st_mode & 0o7777
                    with open(copy, "rb") as data:
                        tar.addfile(info, data)
                    os.unlink(copy)
                    databases += 1
                for path, name in _walk(directory):
                    try:
                        tar.add(path, arcname=name, recursive=False)
                    except FileNotFoundError:
                        continue  # a partial tile superseded meanwhile: not needed
                    files += 1
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, archive)
    except BaseException:
        try:
            os.unlink(partial)
        except FileNotFoundError:
            pass
        raise
    return BackupReport(archive, databases, files, os.path.getsize(archive))


def _check_members(tar: tarfile.TarFile, directory: str) -> list[tarfile.TarInfo]:
    """Every member as the ``data`` filter passes it; InputError naming the first it refuses."""
    members = []
    for member in tar.getmembers():
        if member.name.startswith("/"):
            # The data filter would only strip the slash; a backup never holds one.
            raise InputError("the archive holds a path that would leave the directory",
                             actual=member.name)
        try:
            # SPEC: Python tarfile "data" filter (PEP 706): refuses absolute names, "..",
            # links pointing outside the destination, devices; clears setuid/group-write.
            checked = tarfile.data_filter(member, directory)
        except tarfile.FilterError as exc:
            raise InputError("the archive holds a path that would leave the directory",
                             actual=member.name) from exc
        members.append(checked)
    return members


def restore_instance(archive: str, directory: str, *,
                     passphrase: bytes | None = None) -> RestoreReport:
    """Extract ``archive`` into ``directory`` (absent or empty) and check every log.

    Raises :class:`UsageError` for a non-empty directory, :class:`InputError` for an
    archive that is unreadable or holds a path leaving the directory (nothing is extracted
    then), :class:`LogStorageError` when a restored log does not verify.
    """
    directory = os.path.abspath(directory)
    if os.path.exists(directory) and (not os.path.isdir(directory) or os.listdir(directory)):
        raise UsageError("restore needs an empty directory", actual=directory)
    try:
        tar = tarfile.open(archive, "r:*")
    except (OSError, tarfile.TarError) as exc:
        raise InputError(f"cannot read the archive {archive}: {exc}") from exc
    created = not os.path.exists(directory)
    with tar:
        members = _check_members(tar, directory)
        config = next((m for m in members if m.name == "sealtrail.json" and m.isfile()), None)
        if config is None:
            raise InputError("the archive is not a sealtrail backup (no sealtrail.json)",
                             actual=archive)
        if passphrase is None and _encrypted_keys(tar, config):
            raise UsageError("the instance's keys are encrypted: set SEALTRAIL_PASSPHRASE to "
                             "restore it (its logs are opened and checked)")
        try:
            os.makedirs(directory, mode=0o755, exist_ok=True)
            tar.extractall(directory, members=members, filter="data")
            _directory_modes(directory, tar.getmembers())
        except BaseException:
            _empty(directory, remove=created)
            raise
    logs = _check_logs(directory, passphrase)
    return RestoreReport(directory, len(members), logs)


def _encrypted_keys(tar: tarfile.TarFile, config: tarfile.TarInfo) -> bool:
    handle = tar.extractfile(config)
    try:
        document = json.loads(handle.read(1024 * 1024)) if handle is not None else None
    except ValueError as exc:
        raise InputError("the archive's sealtrail.json is not valid JSON") from exc
    return isinstance(document, dict) and document.get("encryptedKeys") is True


def _directory_modes(directory: str, members: list[tarfile.TarInfo]) -> None:
    """Give extracted directories their archived modes (the ``data`` filter leaves them to
    the umask), never writable by group or others: keys/ is 0700 again."""
    for member in members:
        if not member.isdir():
            continue
        path = os.path.join(directory, os.path.normpath(member.name))
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, member.mode & 0o755)


def _empty(directory: str, *, remove: bool) -> None:
    if remove:
        shutil.rmtree(directory, ignore_errors=True)
        return
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)


def _check_logs(directory: str, passphrase: bytes | None) -> list[LogCheck]:
    """Open every log of the restored instance (recovery rebuilds tiles beyond the copied
    state) and check that its entries and tiles give the root of its checkpoint; check the
    CT log's entries against its recorded state."""
    from sealtrail.log.engine import LogConfig, LogEngine
    from sealtrail.log.storage import LogStorage
    from sealtrail.server.log_instance import LogDirectory
    from sealtrail.server.migrate import SEQUENCER_FILE, merkle_root

    logs = LogDirectory(os.path.join(directory, "logs"))
    checks = []
    for spec in logs.specs():
        config = LogConfig(origin=spec.origin, key_name=spec.origin_host,
                           private_key=logs.private_key(spec.name, passphrase),
                           frozen=spec.frozen)
        storage = LogStorage.embedded(os.path.join(logs.directory, spec.name))
        with LogEngine.open(config, storage) as engine:
            checkpoint = engine.latest_checkpoint()
            from_entries = merkle_root(storage.sequencer.leaf_hashes, checkpoint.size)
            from_tiles = engine.root_at(checkpoint.size)
            if not from_entries == from_tiles == checkpoint.root_hash:
                raise LogStorageError(f"restored log {spec.name} does not verify: its "
                                      "entries or tiles give another root",
                                      actual=from_entries.hex(),
                                      expected=checkpoint.root_hash.hex())
            checks.append(LogCheck(spec.name, checkpoint.size, checkpoint.root_hash.hex()))
    ct_dir = os.path.join(directory, "ct", "log")
    if os.path.isfile(os.path.join(ct_dir, SEQUENCER_FILE)):
        # The CT log's engine needs the CA's issuers to open (it opens with `serve`, which
        # rebuilds its tiles); its entries are checked against its recorded state here.
        storage = LogStorage.embedded(ct_dir)
        try:
            state = storage.sequencer.load_state()
            if state is not None:
                root = merkle_root(storage.sequencer.leaf_hashes, state.size)
                if root != state.root_hash:
                    raise LogStorageError("restored CT log does not verify: its entries give "
                                          "another root", actual=root.hex(),
                                          expected=state.root_hash.hex())
                checks.append(LogCheck("ct", state.size, state.root_hash.hex()))
        finally:
            storage.close()
    return checks
