"""A TUF repository on disk, laid out to be served as static files.

Layout (``DIR`` is the instance's ``tuf/`` directory)::

    DIR/metadata/1.root.json ... N.root.json   every root version, kept forever
    DIR/metadata/root.json                     copy of the latest root
    DIR/metadata/timestamp.json                never versioned (TUF 5.4)
    DIR/metadata/N.snapshot.json  snapshot.json
    DIR/metadata/N.targets.json   targets.json
    DIR/targets/<sha256>.<name>                target files, content-addressed

URL space (what sigstore-python, cosign and :mod:`sealtrail.trustroot.tuf_client` request, with
``BASE`` the repository URL, e.g. ``https://host/tuf``): metadata at ``BASE/<file>`` and
targets at ``BASE/targets/<sha256>.<name>``. :func:`resolve` maps one to the other and is the
only thing a server needs; it never serves anything outside those two patterns.

Every role has one key and threshold 1. ``consistent_snapshot`` is on, as in Sigstore's
repositories: snapshot and targets metadata are fetched by version (``N.snapshot.json``) and
target files by hash, so a client that races a publish still sees one consistent state.
Files are written atomically (temporary file + rename) in dependency order (target files,
targets, snapshot, timestamp last), so a reader never sees a timestamp that points at
something not yet written.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from sealtrail._internal.clock import utcnow
from sealtrail._internal.keyfiles import write_atomic
from sealtrail.errors import ConfigInvalidError, UsageError
from sealtrail.tufrepo._keys import ROLES, RepoKeys

if TYPE_CHECKING:
    from tuf.api.metadata import Metadata, Root, Signed, Snapshot, TargetFile, Targets, Timestamp

try:  # POSIX: serialise writers (a server refreshing the timestamp, a CLI publishing).
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

# One of the four top-level roles' signed parts (tuf's own Metadata type variable).
_Role = TypeVar("_Role", "Root", "Snapshot", "Targets", "Timestamp")

__all__ = [
    "DEFAULT_EXPIRY",
    "MAX_TARGETS",
    "MAX_TARGET_BYTES",
    "METADATA_DIR",
    "REFRESH_FRACTION",
    "RoleStatus",
    "SIGSTORE_TARGETS",
    "TARGETS_DIR",
    "TrustRepository",
    "resolve",
]

# How long each role's metadata stays valid after it is signed. Root keys are offline in a
# careful deployment, so root lasts longest; timestamp is re-signed by an online process
# (refresh_timestamp / refresh_expiring) and expires first, which bounds how long a
# freeze attack can hide an update (TUF spec 5.4.4).
DEFAULT_EXPIRY: Mapping[str, timedelta] = {
    "root": timedelta(days=365),
    "targets": timedelta(days=90),
    "snapshot": timedelta(days=7),
    "timestamp": timedelta(days=1),
}
# refresh_expiring() re-signs a role once less than this fraction of its lifetime remains.
REFRESH_FRACTION = 4  # i.e. the last quarter

METADATA_DIR = "metadata"
TARGETS_DIR = "targets"
# The target names Sigstore clients look up (sigstore-python _internal/tuf.py, cosign).
SIGSTORE_TARGETS = ("trusted_root.json", "signing_config.v0.2.json")

# Bounds on what we sign: a trust repository holds a handful of small JSON documents.
MAX_TARGETS = 64
MAX_TARGET_BYTES = 16 * 1024 * 1024
_MAX_METADATA_BYTES = 4 * 1024 * 1024

# Target names are plain file names: no directories, no dot files, nothing a URL must escape.
_TARGET_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_TARGET_NAME_RE = re.compile(rf"\A{_TARGET_NAME}\Z")
_METADATA_URL_RE = re.compile(
    r"\A(?:[1-9][0-9]{0,9}\.(?:root|snapshot|targets)|root|timestamp|snapshot|targets)\.json\Z")
_TARGET_URL_RE = re.compile(rf"\A{TARGETS_DIR}/([0-9a-f]{{64}}\.{_TARGET_NAME})\Z")
_HASH = "sha256"


@dataclass(frozen=True)
class RoleStatus:
    """Version and expiry of one role's current metadata."""

    version: int
    expires: datetime


def resolve(directory: str | os.PathLike[str], url_path: str) -> str | None:
    """Map a request path relative to the repository URL to a file, or ``None``.

    ``"timestamp.json"``, ``"3.root.json"``, ``"2.snapshot.json"``... map into
    ``metadata/``; ``"targets/<sha256>.<name>"`` maps into ``targets/``. Anything else
    (other names, ``..``, dot files, the lock file) is ``None``, as is a missing file.
    """
    path = url_path.lstrip("/")
    base = os.fspath(directory)
    if _METADATA_URL_RE.match(path):
        candidate = os.path.join(base, METADATA_DIR, path)
    else:
        match = _TARGET_URL_RE.match(path)
        if match is None:
            return None
        candidate = os.path.join(base, TARGETS_DIR, match.group(1))
    return candidate if os.path.isfile(candidate) else None


def _check_now(now: datetime | None) -> datetime:
    if now is None:
        return utcnow()
    if now.tzinfo is None:
        raise UsageError("the time given to the TUF repository must be timezone-aware")
    return now.astimezone(timezone.utc)


def _check_expiry(expiry: Mapping[str, timedelta] | None) -> dict[str, timedelta]:
    merged = dict(DEFAULT_EXPIRY)
    for role, period in (expiry or {}).items():
        if role not in ROLES:
            raise UsageError("unknown TUF role in expiry", actual=role, expected=list(ROLES))
        if not isinstance(period, timedelta) or period <= timedelta(0):
            raise UsageError(f"expiry of {role} must be a positive timedelta", actual=period)
        merged[role] = period
    return merged


def _check_targets(targets: Mapping[str, bytes]) -> None:
    if not isinstance(targets, Mapping):
        raise UsageError("targets must map names to bytes", actual=type(targets).__name__)
    if len(targets) > MAX_TARGETS:
        raise UsageError("too many targets", actual=len(targets), expected=f"<= {MAX_TARGETS}")
    for name, data in targets.items():
        if not isinstance(name, str) or not _TARGET_NAME_RE.match(name):
            raise UsageError("target names must be plain file names ([A-Za-z0-9._-], "
                             "not starting with a dot)", actual=name)
        if not isinstance(data, (bytes, bytearray)):
            raise UsageError(f"target {name} must be bytes", actual=type(data).__name__)
        if len(data) > MAX_TARGET_BYTES:
            raise UsageError(f"target {name} is too large", actual=len(data),
                             expected=f"<= {MAX_TARGET_BYTES}")


def _write_public(path: str, data: bytes) -> None:
    """Write a world-readable file atomically (temporary file in the same dir + rename)."""
    write_atomic(path, data, 0o644)


def _serialize(md: Metadata[Any]) -> bytes:
    from tuf.api.serialization.json import JSONSerializer

    # Indented for humans; signatures cover the canonical JSON of "signed", not these bytes.
    return md.to_bytes(JSONSerializer(compact=False))


class _State:
    """The current, verified metadata of a repository: parsed objects and their raw bytes."""

    def __init__(self, metadata: dict[str, Metadata[Any]], raw: dict[str, bytes]) -> None:
        self.metadata = metadata
        self.raw = raw

    def signed(self, role: str) -> Signed:
        """The signed part of ``role``'s metadata (its version and expiry)."""
        signed: Signed = self.metadata[role].signed
        return signed

    def targets(self) -> Targets:
        """The signed part of the targets metadata."""
        targets: Targets = self.metadata["targets"].signed
        return targets


class TrustRepository:
    """A TUF repository for one instance, stored under ``directory``.

    Build with :meth:`create` (a new repository) or :meth:`open` (an existing one). Every
    change re-reads the repository from disk under a lock, so several processes (a server
    refreshing the timestamp, a CLI publishing a new trusted root) can share it.
    """

    def __init__(self, directory: str | os.PathLike[str], keys: RepoKeys,
                 expiry: Mapping[str, timedelta] | None = None) -> None:
        """Use :meth:`create` or :meth:`open` instead."""
        self._dir = os.path.abspath(os.fspath(directory))
        self._keys = keys
        self._expiry = _check_expiry(expiry)

    # -- construction -------------------------------------------------------------------

    @classmethod
    def create(cls, directory: str | os.PathLike[str], keys: RepoKeys,
               targets: Mapping[str, bytes], *, expiry: Mapping[str, timedelta] | None = None,
               now: datetime | None = None) -> TrustRepository:
        """Create version 1 of every role, signing ``targets`` (name -> content).

        ``expiry`` overrides :data:`DEFAULT_EXPIRY` per role; ``now`` overrides the clock
        (metadata expires at ``now + expiry``). Raises
        :class:`~sealtrail.errors.ConfigInvalidError` if a repository already exists there
        or the directory cannot be written, and :class:`~sealtrail.errors.UsageError` for
        bad targets or expiry values.
        """
        from tuf.api.metadata import Metadata, Root

        repo = cls(directory, keys, expiry)
        _check_targets(targets)
        when = _check_now(now)
        try:
            # Served to every client, written only by the owner: 0755 whatever the umask
            # (makedirs gives intermediate directories the umask's default, so each level).
            for directory in (repo._dir, repo._path(METADATA_DIR), repo._path(TARGETS_DIR)):
                os.makedirs(directory, mode=0o755, exist_ok=True)
        except OSError as exc:
            raise ConfigInvalidError(f"cannot create TUF repository in {repo._dir}: "
                                     f"{exc.strerror}") from exc
        with repo._locked():
            if os.path.exists(repo._path(METADATA_DIR, "root.json")):
                raise ConfigInvalidError(f"a TUF repository already exists in {repo._dir}")
            root = Root(version=1, expires=when + repo._expiry["root"], consistent_snapshot=True)
            for role in ROLES:
                root.add_key(keys.public_key(role), role)
            root_md = Metadata(root)
            root_md.sign(keys.signer("root"))
            with repo._io("write"):
                repo._write_root(root_md)
                target_files = repo._store_target_files(targets)
                targets_raw = repo._write_targets(target_files, 1, when)
                snapshot_raw = repo._write_snapshot(1, targets_raw, 1, when)
                repo._write_timestamp(1, snapshot_raw, 1, when)
        return repo

    @classmethod
    def open(cls, directory: str | os.PathLike[str], keys: RepoKeys, *,
             expiry: Mapping[str, timedelta] | None = None) -> TrustRepository:
        """Open an existing repository and check that ``keys`` are its current role keys.

        Raises :class:`~sealtrail.errors.ConfigInvalidError` if the metadata is missing,
        malformed, badly signed or inconsistent, or if a key is not the one the current
        root names for its role.
        """
        repo = cls(directory, keys, expiry)
        repo._load()
        return repo

    # -- reading ------------------------------------------------------------------------

    @property
    def directory(self) -> str:
        """The repository directory (absolute)."""
        return self._dir

    @property
    def keys(self) -> RepoKeys:
        """The role keys in use (the new ones after :meth:`rotate_root`)."""
        return self._keys

    def status(self) -> dict[str, RoleStatus]:
        """Version and expiry of each role's current metadata."""
        state = self._load()
        return {role: RoleStatus(state.signed(role).version, state.signed(role).expires)
                for role in ROLES}

    def root_json(self) -> bytes:
        """The latest root metadata, exactly as served: give it to clients to pin."""
        return self._load().raw["root"]

    def target_names(self) -> tuple[str, ...]:
        """The names of the current targets, sorted."""
        return tuple(sorted(self._load().targets().targets))

    def read_target(self, name: str) -> bytes:
        """The content of target ``name``, checked against the signed length and hash."""
        from tuf.api.exceptions import LengthOrHashMismatchError

        info = self._load().targets().targets.get(name)
        if info is None:
            raise UsageError("no such target in the TUF repository", actual=name)
        with self._io("read"):
            with open(self._target_path(info), "rb") as handle:
                data = handle.read(MAX_TARGET_BYTES + 1)
        try:
            info.verify_length_and_hashes(data)
        except LengthOrHashMismatchError as exc:
            raise ConfigInvalidError(f"target file {name} does not match the signed targets "
                                     "metadata (modified on disk?)") from exc
        return data

    # -- changes ------------------------------------------------------------------------

    def publish(self, targets: Mapping[str, bytes], *, now: datetime | None = None) -> int:
        """Replace the whole set of targets; sign new targets, snapshot and timestamp.

        Returns the new targets version. Target files of earlier versions stay on disk,
        so clients in the middle of an update can still fetch what they were promised.
        """
        _check_targets(targets)
        when = _check_now(now)
        with self._locked():
            state = self._load()
            with self._io("write"):
                target_files = self._store_target_files(targets)
                version = state.signed("targets").version + 1
                self._reissue_from("targets", state, when, target_files)
        return version

    def refresh_timestamp(self, *, now: datetime | None = None) -> int:
        """Sign a new timestamp (same snapshot, fresh expiry). Returns its version."""
        when = _check_now(now)
        with self._locked():
            state = self._load()
            with self._io("write"):
                self._reissue_from("timestamp", state, when)
        return state.signed("timestamp").version + 1

    def refresh_expiring(self, *, now: datetime | None = None) -> tuple[str, ...]:
        """Re-sign every role that has less than a quarter of its lifetime left.

        Meant to be called periodically by the process that holds the online keys.
        Returns the roles that got a new version (a targets refresh also re-signs
        snapshot and timestamp, which are listed too).
        """
        when = _check_now(now)
        with self._locked():
            state = self._load()

            def expiring(role: str) -> bool:
                margin = self._expiry[role] / REFRESH_FRACTION
                return bool(state.signed(role).expires <= when + margin)

            done: list[str] = []
            with self._io("write"):
                if expiring("root"):
                    self._write_new_root(state, self._keys, when)
                    done.append("root")
                    state = self._load()
                for role, chain in (("targets", ("targets", "snapshot", "timestamp")),
                                    ("snapshot", ("snapshot", "timestamp")),
                                    ("timestamp", ("timestamp",))):
                    if expiring(role):
                        self._reissue_from(role, state, when)
                        done.extend(chain)
                        break
        return tuple(done)

    def rotate_root(self, new_keys: RepoKeys, *, now: datetime | None = None) -> int:
        """Sign root version N+1 naming ``new_keys``, with both the old and new root keys.

        SPEC (TUF 5.3.4): a new root must be signed by a threshold of the keys of the
        trusted root *and* of its own root role. Roles whose key changed are re-signed
        right away (targets also re-issues snapshot and timestamp; snapshot re-issues
        timestamp). Afterwards this object signs with ``new_keys``. Returns the new root
        version. Also use it with the same keys to extend the root's expiry.
        """
        when = _check_now(now)
        with self._locked():
            state = self._load()
            old_keys = self._keys
            with self._io("write"):
                version = self._write_new_root(state, new_keys, when)
                self._keys = new_keys
                changed = [role for role in ("targets", "snapshot", "timestamp")
                           if old_keys.keyid(role) != new_keys.keyid(role)]
                if changed:
                    # From the pre-rotation state: re-verifying now would fail, since the
                    # new root already names keys that the old metadata is not signed by.
                    self._reissue_from(changed[0], state, when)
        return version

    # -- internals ----------------------------------------------------------------------

    def _path(self, *parts: str) -> str:
        return os.path.join(self._dir, *parts)

    def _target_path(self, info: TargetFile) -> str:
        return self._path(TARGETS_DIR, f"{info.hashes[_HASH]}.{info.path}")

    @contextlib.contextmanager
    def _io(self, what: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise ConfigInvalidError(f"cannot {what} TUF repository {self._dir}: "
                                     f"{exc.strerror or exc}") from exc

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if fcntl is None:  # pragma: no cover
            yield
            return
        with self._io("lock"):
            # 0644 at creation, not the umask's default: nobody else writes into the repo.
            handle = os.fdopen(os.open(self._path(".lock"), os.O_RDWR | os.O_CREAT, 0o644),
                               "r+b")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            yield
        finally:
            handle.close()  # releases the lock

    def _read_metadata(self, role: str) -> tuple[Metadata[Any], bytes]:
        from tuf.api.metadata import Metadata
        from tuf.api.serialization import DeserializationError

        path = self._path(METADATA_DIR, f"{role}.json")
        try:
            with open(path, "rb") as handle:
                raw = handle.read(_MAX_METADATA_BYTES + 1)
        except FileNotFoundError as exc:
            raise ConfigInvalidError(f"no TUF repository in {self._dir} ({role}.json missing)") \
                from exc
        except OSError as exc:
            raise ConfigInvalidError(f"cannot read {path}: {exc.strerror}") from exc
        if len(raw) > _MAX_METADATA_BYTES:
            raise ConfigInvalidError(f"{path} is too large", actual=len(raw),
                                     expected=f"<= {_MAX_METADATA_BYTES}")
        try:
            md = Metadata.from_bytes(raw)
        except (DeserializationError, ValueError, KeyError, TypeError) as exc:
            raise ConfigInvalidError(f"{path} is not valid TUF metadata: {exc}") from exc
        if md.signed.type != role:
            raise ConfigInvalidError(f"{path} holds {md.signed.type} metadata", actual=md.signed.type,
                                     expected=role)
        return md, raw

    def _load(self) -> _State:
        """Read and verify the current metadata; check that our keys are the root's keys."""
        from tuf.api.exceptions import UnsignedMetadataError

        metadata: dict[str, Metadata[Any]] = {}
        raw: dict[str, bytes] = {}
        for role in ROLES:
            metadata[role], raw[role] = self._read_metadata(role)
        root = metadata["root"].signed
        for role in ROLES:
            # SPEC (TUF 5.3.4, 5.4.2, 5.5.3, 5.6.3): each top-level role is signed by a
            # threshold of the keys the root assigns to it. Root verifies itself.
            try:
                root.verify_delegate(role, metadata[role].signed_bytes, metadata[role].signatures)
            except UnsignedMetadataError as exc:
                raise ConfigInvalidError(f"the repository's {role} metadata is not signed by "
                                         "the key its root names") from exc
            if self._keys.keyid(role) not in root.roles[role].keyids:
                raise ConfigInvalidError(f"the TUF {role} key is not the one the repository's "
                                         "root names", actual=self._keys.keyid(role),
                                         expected=root.roles[role].keyids)
        snapshot_meta = metadata["timestamp"].signed.snapshot_meta
        targets_meta = metadata["snapshot"].signed.meta.get("targets.json")
        if snapshot_meta.version != metadata["snapshot"].signed.version or targets_meta is None \
                or targets_meta.version != metadata["targets"].signed.version:
            raise ConfigInvalidError("the repository's timestamp, snapshot and targets "
                                     "metadata do not refer to each other")
        return _State(metadata, raw)

    def _store_target_files(self, targets: Mapping[str, bytes]) -> dict[str, TargetFile]:
        from tuf.api.metadata import TargetFile

        files: dict[str, TargetFile] = {}
        for name, data in targets.items():
            info = TargetFile.from_data(name, bytes(data), [_HASH])
            path = self._target_path(info)
            if not os.path.exists(path):  # content-addressed: an existing file is identical
                _write_public(path, bytes(data))
            files[name] = info
        return files

    def _sign(self, role: str, signed: _Role) -> tuple[Metadata[_Role], bytes]:
        from tuf.api.metadata import Metadata

        md = Metadata(signed)
        md.sign(self._keys.signer(role))
        return md, _serialize(md)

    def _write_root(self, md: Metadata[Any]) -> bytes:
        raw = _serialize(md)
        _write_public(self._path(METADATA_DIR, f"{md.signed.version}.root.json"), raw)
        _write_public(self._path(METADATA_DIR, "root.json"), raw)
        return raw

    def _write_new_root(self, state: _State, new_keys: RepoKeys, when: datetime) -> int:
        from tuf.api.metadata import Metadata, Root

        old = state.signed("root")
        root = Root(version=old.version + 1, expires=when + self._expiry["root"],
                    consistent_snapshot=True)
        for role in ROLES:
            root.add_key(new_keys.public_key(role), role)
        md = Metadata(root)
        md.sign(self._keys.signer("root"))
        if new_keys.keyid("root") != self._keys.keyid("root"):
            md.sign(new_keys.signer("root"), append=True)
        self._write_root(md)
        return root.version

    def _write_targets(self, files: dict[str, TargetFile], version: int, when: datetime) -> bytes:
        from tuf.api.metadata import Targets

        signed = Targets(version=version, expires=when + self._expiry["targets"], targets=files)
        _, raw = self._sign("targets", signed)
        _write_public(self._path(METADATA_DIR, f"{version}.targets.json"), raw)
        _write_public(self._path(METADATA_DIR, "targets.json"), raw)
        return raw

    def _write_snapshot(self, version: int, targets_raw: bytes, targets_version: int,
                        when: datetime) -> bytes:
        from tuf.api.metadata import MetaFile, Snapshot

        meta = {"targets.json": MetaFile.from_data(targets_version, targets_raw, [_HASH])}
        signed = Snapshot(version=version, expires=when + self._expiry["snapshot"], meta=meta)
        _, raw = self._sign("snapshot", signed)
        _write_public(self._path(METADATA_DIR, f"{version}.snapshot.json"), raw)
        _write_public(self._path(METADATA_DIR, "snapshot.json"), raw)
        return raw

    def _write_timestamp(self, version: int, snapshot_raw: bytes, snapshot_version: int,
                         when: datetime) -> None:
        from tuf.api.metadata import MetaFile, Timestamp

        meta = MetaFile.from_data(snapshot_version, snapshot_raw, [_HASH])
        signed = Timestamp(version=version, expires=when + self._expiry["timestamp"],
                           snapshot_meta=meta)
        _, raw = self._sign("timestamp", signed)
        # Written last: it is what makes a new snapshot (and targets) visible to clients.
        _write_public(self._path(METADATA_DIR, "timestamp.json"), raw)

    def _reissue_from(self, role: str, state: _State, when: datetime,
                      target_files: dict[str, TargetFile] | None = None) -> None:
        """New versions of ``role`` and every role below it (targets > snapshot > timestamp)."""
        targets_raw, targets_version = state.raw["targets"], state.signed("targets").version
        snapshot_raw, snapshot_version = state.raw["snapshot"], state.signed("snapshot").version
        if role == "targets":
            files = target_files if target_files is not None else state.targets().targets
            targets_version += 1
            targets_raw = self._write_targets(files, targets_version, when)
        if role in ("targets", "snapshot"):
            snapshot_version += 1
            snapshot_raw = self._write_snapshot(snapshot_version, targets_raw, targets_version,
                                                when)
        self._write_timestamp(state.signed("timestamp").version + 1, snapshot_raw,
                              snapshot_version, when)
