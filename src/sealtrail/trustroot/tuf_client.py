"""Trust roots over TUF: pin an instance's root.json, refresh explicitly, read offline.

A :class:`TrustStore` keeps one cache entry per Sigstore instance::

    <cache_dir>/trust/<name>/instance.json      url, when last updated, sha256 of each target
    <cache_dir>/trust/<name>/pinned-root.json   the root.json given to add() (trust anchor)
    <cache_dir>/trust/<name>/metadata/          python-tuf's metadata cache (root_history/...)
    <cache_dir>/trust/<name>/targets/           trusted_root.json, signing_config.v0.2.json

``cache_dir`` defaults to ``$SEALTRAIL_TRUST_DIR``, else ``$XDG_CACHE_HOME/sealtrail``, else
``~/.cache/sealtrail``.

Only :meth:`TrustStore.add` and :meth:`TrustStore.update` use the network, with python-tuf's
``Updater`` and a fetcher on the urllib3 managers of :mod:`sealtrail.net.http` (the same TLS,
proxy and timeout behaviour as the signing clients; ADR 0010). The repository URL layout is Sigstore's:
metadata at ``URL/<N>.root.json``, ``URL/timestamp.json``...; targets at
``URL/targets/<sha256>.<name>`` (the same as sigstore-python's ``TrustUpdater``). Reading the
cached documents (:meth:`TrustStore.trusted_root_bytes`) never touches the network: it
returns what the last successful update verified, after checking its recorded SHA-256.

Instances whose root.json ships in the package are known without being added:
``public-good`` (https://tuf-repo-cdn.sigstore.dev), ``public-good-staging``
(https://tuf-repo-cdn.sigstage.dev) and, once its files are packaged, ``github``
(https://tuf-repo.github.com), each pinned to its packaged root.json. Nothing is fetched
until ``update`` is called.

Every failure is a :class:`~sealtrail.errors.Error`: problems with the arguments are
:class:`~sealtrail.errors.UsageError` / :class:`~sealtrail.errors.InputError`, and every
failed or refused refresh (tampered or expired metadata, rollback, unreachable server)
is :class:`~sealtrail.errors.TrustUpdateError` with a one-line message.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

from sealtrail import __version__
from sealtrail._internal.clock import utcnow
from sealtrail._internal.encoding import parse_rfc3339
from sealtrail._internal.keyfiles import write_atomic
from sealtrail.trustroot import packaged_instances, packaged_path
from sealtrail.errors import InputError, TrustUpdateError, UsageError

try:  # POSIX: one update at a time per entry (python-tuf's Updater is single-instance).
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "BUILTIN_INSTANCES",
    "ENV_TRUST_DIR",
    "GITHUB",
    "InstanceInfo",
    "PUBLIC_GOOD",
    "PUBLIC_GOOD_STAGING",
    "RoleInfo",
    "SIGNING_CONFIG",
    "TRUSTED_ROOT",
    "TrustStore",
    "default_cache_dir",
]

PUBLIC_GOOD = "public-good"
PUBLIC_GOOD_STAGING = "public-good-staging"
GITHUB = "github"
_TUF_URLS = {
    PUBLIC_GOOD: "https://tuf-repo-cdn.sigstore.dev",
    PUBLIC_GOOD_STAGING: "https://tuf-repo-cdn.sigstage.dev",
    # GitHub's instance (artifact attestations of private repositories), as gh uses it.
    GITHUB: "https://tuf-repo.github.com",
}
# name -> (TUF repository URL, packaged instance holding the pinned root.json): the
# instances above whose files ship in this package (packaged_path(name, "root.json")).
BUILTIN_INSTANCES: Mapping[str, tuple[str, str]] = {
    name: (url, name) for name, url in _TUF_URLS.items() if name in packaged_instances()}
# The targets Sigstore repositories publish (sigstore-python and cosign look these up).
TRUSTED_ROOT = "trusted_root.json"
SIGNING_CONFIG = "signing_config.v0.2.json"
_WANTED_TARGETS = (TRUSTED_ROOT, SIGNING_CONFIG)  # the first one is required

ENV_TRUST_DIR = "SEALTRAIL_TRUST_DIR"
# Bounds on what we accept or read back: python-tuf's own root limit, and a target size far
# above any real trusted root (public-good's is ~20 KB).
MAX_ROOT_BYTES = 512_000
MAX_TARGET_BYTES = 16 * 1024 * 1024
_MAX_STATE_BYTES = 64 * 1024
_MAX_URL_CHARS = 2048
# Seconds python-tuf's fetcher waits for a connection or between bytes.
DEFAULT_TIMEOUT = 30

_NAME_RE = re.compile(r"\A[a-z0-9][a-z0-9._-]{0,63}\Z")
_STATE_FILE = "instance.json"
_PINNED_FILE = "pinned-root.json"
_ROLES = ("root", "targets", "snapshot", "timestamp")



@dataclass(frozen=True)
class RoleInfo:
    """Version and expiry of one TUF role as last verified (or as pinned, for root)."""

    version: int
    expires: datetime


@dataclass(frozen=True)
class InstanceInfo:
    """What the store knows about one instance, read from the cache (no network)."""

    name: str
    url: str
    builtin: bool
    #: The roles known locally: ``root`` always (the pinned root until the first update),
    #: ``timestamp``/``snapshot``/``targets`` once an update succeeded.
    roles: Mapping[str, RoleInfo]
    #: When the last successful update finished (``None``: never updated).
    last_updated: datetime | None
    #: ``now - last_updated``: how stale the cached trusted_root.json may be.
    age: timedelta | None
    #: Cached, verified targets: name -> SHA-256 (hex) of the content.
    targets: Mapping[str, str] = field(default_factory=dict)

    @property
    def root_version(self) -> int:
        """The version of the newest trusted root.json."""
        return self.roles["root"].version

    def expired_roles(self, now: datetime) -> tuple[str, ...]:
        """The roles whose metadata has expired at ``now``."""
        return tuple(role for role in _ROLES if role in self.roles
                     and self.roles[role].expires <= now)


def default_cache_dir() -> str:
    """``$SEALTRAIL_TRUST_DIR``, else ``$XDG_CACHE_HOME/sealtrail``, else ``~/.cache/sealtrail``."""
    override = os.environ.get(ENV_TRUST_DIR)
    if override:
        return os.path.abspath(override)
    xdg = os.environ.get("XDG_CACHE_HOME")
    # SPEC (XDG Base Directory): relative paths in XDG_* variables are invalid; ignore them.
    base = xdg if xdg and os.path.isabs(xdg) else os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "sealtrail")


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise UsageError("instance names are 1-64 of [a-z0-9._-], starting with a letter or digit",
                         actual=name)
    return name


def _check_url(url: str) -> str:
    if not isinstance(url, str) or len(url) > _MAX_URL_CHARS:
        raise UsageError("the TUF repository URL must be a string of at most "
                         f"{_MAX_URL_CHARS} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise UsageError("the TUF repository URL must be http(s)://host[:port][/path] "
                         "without query or fragment", actual=url)
    # Not canonicalisation: a trailing slash is a common slip (sigstore-python strips it too).
    return url.rstrip("/")


def _parse_root(data: bytes, what: str) -> Any:
    """Parse and self-verify TUF root metadata; return the ``Root`` (InputError if bad)."""
    from tuf.api.exceptions import UnsignedMetadataError
    from tuf.api.metadata import Metadata
    from tuf.api.serialization import DeserializationError

    if not isinstance(data, (bytes, bytearray)):
        raise UsageError(f"{what} must be bytes", actual=type(data).__name__)
    if len(data) > MAX_ROOT_BYTES:
        raise InputError(f"{what} is too large", actual=len(data), expected=f"<= {MAX_ROOT_BYTES}")
    try:
        md = Metadata.from_bytes(bytes(data))
    except (DeserializationError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{what} is not TUF root metadata: {_one_line(str(exc))}") from exc
    if md.signed.type != "root":
        raise InputError(f"{what} is not TUF root metadata", actual=md.signed.type,
                         expected="root")
    try:
        # SPEC (TUF 5.2/5.3.4): a root is trusted only if a threshold of its own root keys
        # signed it; python-tuf's Updater checks this again when it loads the bootstrap.
        md.signed.verify_delegate("root", md.signed_bytes, md.signatures)
    except UnsignedMetadataError as exc:
        raise InputError(f"{what} is not signed by its own root keys") from exc
    return md.signed


def _translate(name: str, url: str, exc: BaseException) -> TrustUpdateError:
    """One python-tuf (or OS) failure -> one TrustUpdateError with a one-line message."""
    from tuf.api import exceptions as tuf

    detail = _one_line(str(exc)) if str(exc) else type(exc).__name__
    prefix = f"cannot update trust for {name!r}"
    if isinstance(exc, tuf.ExpiredMetadataError):
        text = f"{prefix}: TUF metadata from {url} has expired ({detail})"
    elif isinstance(exc, tuf.BadVersionNumberError):
        text = f"{prefix}: TUF metadata from {url} is older than what was trusted before " \
               f"(rollback; {detail})"
    elif isinstance(exc, tuf.UnsignedMetadataError):
        text = f"{prefix}: TUF metadata from {url} is not signed by the trusted keys ({detail})"
    elif isinstance(exc, tuf.LengthOrHashMismatchError):
        text = f"{prefix}: a file from {url} does not match its signed length or hash " \
               f"(tampered?; {detail})"
    elif isinstance(exc, tuf.DownloadLengthMismatchError):
        # Length is checked while downloading, before the hash: also a sign of tampering.
        text = f"{prefix}: a file from {url} is longer than its signed length " \
               f"(tampered?; {detail})"
    elif isinstance(exc, tuf.DownloadHTTPError):
        text = f"{prefix}: {url} answered HTTP {exc.status_code}"
    elif isinstance(exc, tuf.DownloadError):
        # Includes SlowRetrievalError, which urllib3 also raises for a refused connection
        # (its NewConnectionError is a ConnectTimeoutError): say what really happened.
        text = f"{prefix}: cannot reach {url} ({_network_reason(exc)})"
    elif isinstance(exc, tuf.RepositoryError):
        text = f"{prefix}: invalid TUF metadata from {url} ({detail})"
    elif isinstance(exc, OSError):
        text = f"{prefix}: cannot write the trust cache ({exc.strerror or detail})"
    else:
        text = f"{prefix}: {type(exc).__name__}: {detail}"
    return TrustUpdateError(text)


def _network_reason(exc: BaseException) -> str:
    """The innermost useful reason of a download failure (urllib3 hides it in ``.reason``)."""
    reason: BaseException = exc
    seen = 0
    while seen < 8:  # bounded: exception chains can be long or cyclic
        seen += 1
        inner = getattr(reason, "reason", None)
        if isinstance(inner, BaseException):
            reason = inner
        elif reason.__cause__ is not None:
            reason = reason.__cause__
        else:
            break
    text = str(reason) or type(reason).__name__
    return _one_line(text, 200)


def _fetcher(timeout: int, user_agent: str | None) -> Any:
    """A python-tuf fetcher on sealtrail's urllib3 managers (:mod:`sealtrail.net.http`):
    certifi's TLS, the proxies of the environment (https:// ones included, loopback never
    proxied) and the connect timeout cap, as the signing clients have them.

    python-tuf's own ``Urllib3Fetcher`` builds its managers itself and offers no way to
    pass ours, so this implements its ``FetcherInterface`` (``_fetch`` only) the same way:
    ``timeout`` bounds connecting and each wait for bytes; urllib3's default retries and
    redirects stay on, as they were with python-tuf's fetcher (metadata is signed, so a
    redirect cannot change what is trusted).
    """
    import urllib3
    from tuf.api import exceptions as tuf_exceptions
    from tuf.ngclient.fetcher import FetcherInterface

    from sealtrail.net.http import PoolManagers, ProxySettings, timeout_for

    class Fetcher(FetcherInterface):
        def __init__(self) -> None:
            import tuf

            agent = f"python-tuf/{tuf.__version__}"
            self._pools = PoolManagers(
                ProxySettings(), retries=urllib3.Retry.DEFAULT,
                headers={"User-Agent": f"{user_agent} {agent}" if user_agent else agent})

        def _fetch(self, url: str) -> Iterator[bytes]:
            try:
                response = self._pools.for_url(url).request(
                    "GET", url, preload_content=False, timeout=timeout_for(timeout))
            except urllib3.exceptions.MaxRetryError as exc:
                if isinstance(exc.reason, urllib3.exceptions.TimeoutError):
                    raise tuf_exceptions.SlowRetrievalError from exc
                raise
            if response.status >= 400:
                response.close()
                raise tuf_exceptions.DownloadHTTPError(
                    f"HTTP error occurred with status {response.status}", response.status)
            return self._chunks(response)

        def _chunks(self, response: Any) -> Iterator[bytes]:
            try:
                yield from response.stream(64 * 1024)
            except urllib3.exceptions.TimeoutError as exc:
                # The wait between bytes expired mid-stream.
                raise tuf_exceptions.SlowRetrievalError from exc
            finally:
                response.release_conn()

    return Fetcher()


def _atomic_write(path: str, data: bytes) -> None:
    write_atomic(path, data, 0o644, durable=False)


def _read_bounded(path: str, limit: int) -> bytes:
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise InputError(f"{path} is too large", actual=len(data), expected=f"<= {limit}")
    return data


# The fields of a cache entry's instance.json (written by TrustStore._write_state).
_STATE_FIELDS = ("name", "url", "targets", "last_updated")
_TARGET_RECORD_FIELDS = ("sha256", "length")
_SHA256_HEX = re.compile(r"\A[0-9a-f]{64}\Z")


def _check_state(state: Any, path: str) -> dict[str, Any]:
    """A cache entry's state, checked strictly (ADR 0002): the fields we write, with their
    JSON types; anything else means the file was edited or damaged."""
    hint = "; remove the instance and add it again"

    def corrupt(what: str, actual: Any = None) -> InputError:
        return InputError(f"{path}: {what}{hint}", actual=actual)

    if not isinstance(state, dict):
        raise corrupt("not a JSON object", type(state).__name__)
    unknown = sorted(set(state) - set(_STATE_FIELDS))
    if unknown:
        raise corrupt(f"unknown fields {', '.join(map(repr, unknown))}")
    for key in ("name", "url"):
        if key in state and not isinstance(state[key], str):
            raise corrupt(f"{key} must be a string", state[key])
    # null until the first successful update (what add() writes).
    if state.get("last_updated") is not None:
        if not isinstance(state["last_updated"], str):
            raise corrupt("last_updated must be a string or null", state["last_updated"])
        parse_rfc3339(state["last_updated"], f"{path}: last_updated", InputError)
    targets = state.get("targets")
    if not isinstance(targets, dict):
        raise corrupt("targets must be a JSON object", type(targets).__name__)
    for target, record in targets.items():
        if not isinstance(record, dict) or set(record) - set(_TARGET_RECORD_FIELDS):
            raise corrupt(f"targets[{target!r}] is not a {{sha256, length}} record")
        if not isinstance(record.get("sha256"), str) or not _SHA256_HEX.match(record["sha256"]):
            raise corrupt(f"targets[{target!r}].sha256 must be 64 lowercase hex digits",
                          record.get("sha256"))
        length = record.get("length", 0)
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise corrupt(f"targets[{target!r}].length must be an integer", length)
    return state


class TrustStore:
    """Per-user cache of TUF-verified trust roots for any number of Sigstore instances."""

    def __init__(self, cache_dir: str | os.PathLike[str] | None = None, *,
                 timeout: int = DEFAULT_TIMEOUT) -> None:
        """Use ``cache_dir`` (default: :func:`default_cache_dir`). Does no I/O."""
        base = os.fspath(cache_dir) if cache_dir is not None else default_cache_dir()
        self._root = os.path.join(os.path.abspath(base), "trust")
        if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout <= 0:
            raise UsageError("timeout must be a positive number of seconds", actual=timeout)
        self._timeout = timeout

    @property
    def directory(self) -> str:
        """The directory holding one subdirectory per instance."""
        return self._root

    # -- listing and information (offline) ----------------------------------------------

    def instances(self) -> tuple[str, ...]:
        """Built-in instance names first, then added ones (sorted)."""
        added: list[str] = []
        with contextlib.suppress(OSError):
            for entry in os.listdir(self._root):
                if entry not in BUILTIN_INSTANCES and _NAME_RE.match(entry) \
                        and os.path.isfile(os.path.join(self._root, entry, _STATE_FILE)):
                    added.append(entry)
        return (*BUILTIN_INSTANCES, *sorted(added))

    def show(self, name: str, *, now: datetime | None = None) -> InstanceInfo:
        """What is known about ``name``, from the cache only (never the network).

        ``roles`` are the newest metadata python-tuf verified; ``targets`` are the documents
        of the last *successful* update (a failed update may have verified newer metadata
        but leaves the previous documents in place).
        """
        url, pinned, state = self._entry(name)
        entry = self._entry_dir(name)
        roles: dict[str, RoleInfo] = {}
        for role in _ROLES:
            info = self._cached_role(os.path.join(entry, "metadata", f"{role}.json"), role)
            if info is not None:
                roles[role] = info
        if "root" not in roles:
            root = _parse_root(pinned, f"pinned root.json of {name}")
            roles["root"] = RoleInfo(root.version, root.expires)
        last = state.get("last_updated")
        last_updated = parse_rfc3339(last, "last_updated", InputError) if last is not None \
            else None
        if now is not None and now.tzinfo is None:
            raise UsageError("show() needs a timezone-aware time")
        when = utcnow() if now is None else now
        return InstanceInfo(
            name=name, url=url, builtin=name in BUILTIN_INSTANCES, roles=roles,
            last_updated=last_updated,
            age=(when - last_updated) if last_updated is not None else None,
            targets={t: v["sha256"] for t, v in state.get("targets", {}).items()},
        )

    def pinned_root(self, name: str) -> bytes:
        """The root.json this instance was bootstrapped from (its trust anchor)."""
        return self._entry(name)[1]

    # -- offline reads ------------------------------------------------------------------

    def trusted_root_bytes(self, name: str) -> bytes:
        """The cached, TUF-verified ``trusted_root.json`` of ``name``. Never uses the network.

        Raises :class:`~sealtrail.errors.TrustUpdateError` if no update has fetched it yet
        or the cached copy changed since it was verified.
        """
        return self.target_bytes(name, TRUSTED_ROOT)

    def signing_config_bytes(self, name: str) -> bytes:
        """The cached, TUF-verified ``signing_config.v0.2.json`` of ``name`` (offline)."""
        return self.target_bytes(name, SIGNING_CONFIG)

    def target_bytes(self, name: str, target: str) -> bytes:
        """Any cached target by name (offline); see :meth:`trusted_root_bytes`."""
        _, _, state = self._entry(name)
        return self._verified_target(name, state, target)

    def cached_target(self, name: str,
                      target: str = TRUSTED_ROOT) -> tuple[bytes, datetime] | None:
        """``(content, when it was verified)`` of ``target`` as the last successful update
        left it, or ``None`` if no update has fetched it. Offline, and lighter than
        :meth:`show` (no TUF metadata is parsed): what verification reads.

        Raises :class:`~sealtrail.errors.InputError` if the entry's state is damaged and
        :class:`~sealtrail.errors.TrustUpdateError` if the cached copy cannot be read or
        changed since it was verified; :class:`~sealtrail.errors.UsageError` for a name
        that is neither built in nor added.
        """
        _check_name(name)
        state = self._read_state(self._entry_dir(name))
        if state is None:
            if name in BUILTIN_INSTANCES:
                return None
            raise UsageError("unknown trust instance", actual=name,
                             expected=" or ".join(self.instances()))
        last = state.get("last_updated")
        if last is None or target not in state.get("targets", {}):
            return None
        when = parse_rfc3339(last, "last_updated", InputError)
        return self._verified_target(name, state, target), when

    def _verified_target(self, name: str, state: Mapping[str, Any], target: str) -> bytes:
        record = state.get("targets", {}).get(target)
        if record is None:
            raise TrustUpdateError(f"no verified {target} cached for {name!r}: run an update "
                                   "first (this is the only step that uses the network)")
        path = os.path.join(self._entry_dir(name), "targets", target)
        try:
            data = _read_bounded(path, MAX_TARGET_BYTES)
        except OSError as exc:
            raise TrustUpdateError(f"the cached {target} of {name!r} cannot be read "
                                   f"({exc.strerror}); run an update") from exc
        digest = hashlib.sha256(data).hexdigest()
        if digest != record["sha256"]:
            raise TrustUpdateError(f"the cached {target} of {name!r} changed since it was "
                                   "verified; run an update", actual=digest,
                                   expected=record["sha256"])
        return data

    # -- networked operations ----------------------------------------------------------

    def add(self, name: str, url: str, root_json: bytes, *, update: bool = True,
            replace: bool = False) -> InstanceInfo:
        """Pin ``root_json`` as the trust anchor of a new instance served at ``url``.

        With ``update`` (the default) the first refresh runs now, and if it fails nothing
        is added (:class:`~sealtrail.errors.TrustUpdateError`). ``replace`` allows an
        existing entry of that name to be replaced (its cache is discarded). The built-in
        names cannot be added.
        """
        _check_name(name)
        if name in BUILTIN_INSTANCES:
            raise UsageError(f"{name!r} is built in; pick another name")
        clean_url = _check_url(url)
        _parse_root(root_json, "root.json")
        final = self._entry_dir(name)
        if os.path.exists(os.path.join(final, _STATE_FILE)) and not replace:
            raise UsageError(f"instance {name!r} already exists (remove it first, or replace "
                             "it: `sealtrail trust add --replace`)")
        staging = os.path.join(self._root, f".add-{name}-{os.getpid()}")
        import shutil  # here: verification reads the cache on every run and never needs it

        try:
            shutil.rmtree(staging, ignore_errors=True)
            os.makedirs(staging)
            _atomic_write(os.path.join(staging, _PINNED_FILE), bytes(root_json))
            state: dict[str, Any] = {"name": name, "url": clean_url, "last_updated": None,
                                     "targets": {}}
            self._write_state(staging, state)
            if update:
                self._refresh(name, staging, clean_url, bytes(root_json), state)
            with self._locked(final, create=True):
                old = os.path.join(self._root, f".old-{name}-{os.getpid()}")
                moved = False
                if os.path.exists(os.path.join(final, _STATE_FILE)):
                    os.rename(final, old)
                    moved = True
                elif os.path.isdir(final):
                    shutil.rmtree(final)
                os.rename(staging, final)
                if moved:
                    shutil.rmtree(old, ignore_errors=True)
        except OSError as exc:
            raise TrustUpdateError(f"cannot add {name!r} to the trust cache {self._root}: "
                                   f"{exc.strerror or exc}") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return self.show(name)

    def update(self, name: str) -> InstanceInfo:
        """Refresh ``name`` over the network: TUF metadata, then its targets.

        SPEC (TUF 5): root versions are walked from the pinned root, then timestamp,
        snapshot and targets are verified (signatures, versions, expiry, hashes). Raises
        :class:`~sealtrail.errors.TrustUpdateError` on any failure; the previously
        verified documents stay in the cache and readable.
        """
        url, pinned, state = self._entry(name)
        entry = self._entry_dir(name)
        try:
            os.makedirs(entry, exist_ok=True)
        except OSError as exc:
            raise TrustUpdateError(f"cannot create the trust cache {entry}: {exc.strerror}") \
                from exc
        with self._locked(entry):
            state.setdefault("name", name)
            state["url"] = url
            self._refresh(name, entry, url, pinned, state)
        return self.show(name)

    def remove(self, name: str) -> None:
        """Forget ``name``'s cache (and, for an added instance, the instance itself)."""
        _check_name(name)
        entry = self._entry_dir(name)
        if not os.path.isdir(entry):
            if name in BUILTIN_INSTANCES:
                return
            raise UsageError("unknown trust instance", actual=name,
                             expected=" or ".join(self.instances()))
        import shutil

        try:
            shutil.rmtree(entry)
        except OSError as exc:
            raise TrustUpdateError(f"cannot remove {entry}: {exc.strerror}") from exc

    # -- internals ----------------------------------------------------------------------

    def _entry_dir(self, name: str) -> str:
        return os.path.join(self._root, name)

    def _entry(self, name: str) -> tuple[str, bytes, dict[str, Any]]:
        """(url, pinned root bytes, state) for a known instance, read from disk."""
        _check_name(name)
        entry = self._entry_dir(name)
        state = self._read_state(entry)
        if name in BUILTIN_INSTANCES:
            url, packaged = BUILTIN_INSTANCES[name]
            with open(packaged_path(packaged, "root.json"), "rb") as handle:
                pinned = handle.read()
            return url, pinned, state or {"name": name, "url": url, "targets": {}}
        if state is None:
            raise UsageError("unknown trust instance", actual=name,
                             expected=" or ".join(self.instances()))
        try:
            pinned = _read_bounded(os.path.join(entry, _PINNED_FILE), MAX_ROOT_BYTES)
        except OSError as exc:
            raise InputError(f"the pinned root.json of {name!r} cannot be read: "
                             f"{exc.strerror}") from exc
        recorded = state.get("url")
        if not isinstance(recorded, str):
            raise InputError(f"the trust cache entry of {name!r} is corrupt (no url)")
        return _check_url(recorded), pinned, state

    @staticmethod
    def _read_state(entry: str) -> dict[str, Any] | None:
        path = os.path.join(entry, _STATE_FILE)
        try:
            data = _read_bounded(path, _MAX_STATE_BYTES)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}") from exc
        try:
            state = json.loads(data)
        except ValueError as exc:
            raise InputError(f"{path} is not valid JSON") from exc
        return _check_state(state, path)

    @staticmethod
    def _write_state(entry: str, state: dict[str, Any]) -> None:
        _atomic_write(os.path.join(entry, _STATE_FILE),
                      json.dumps(state, indent=2, sort_keys=True).encode() + b"\n")

    @staticmethod
    def _cached_role(path: str, role: str) -> RoleInfo | None:
        """Version/expiry from a metadata file python-tuf cached (already verified)."""
        from tuf.api.metadata import Metadata
        from tuf.api.serialization import DeserializationError

        try:
            data = _read_bounded(path, MAX_TARGET_BYTES)
            md = Metadata.from_bytes(data)
        except (OSError, InputError, DeserializationError, ValueError, KeyError, TypeError):
            return None
        if md.signed.type != role:
            return None
        return RoleInfo(md.signed.version, md.signed.expires)

    @contextlib.contextmanager
    def _locked(self, entry: str, *, create: bool = False) -> Iterator[None]:
        if fcntl is None:  # pragma: no cover
            yield
            return
        if create:
            os.makedirs(self._root, exist_ok=True)
        # The lock lives beside the entry, so it survives the entry being replaced.
        handle = open(f"{entry}.lock", "a+b")  # noqa: SIM115 - held for the block
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            yield
        finally:
            handle.close()

    def _refresh(self, name: str, entry: str, url: str, pinned: bytes,
                 state: dict[str, Any]) -> None:
        """Run python-tuf's client workflow into ``entry``; record the targets' digests."""
        import urllib3.exceptions
        from tuf.api import exceptions as tuf_exceptions
        from tuf.ngclient import Updater, UpdaterConfig

        metadata_dir = os.path.join(entry, "metadata")
        targets_dir = os.path.join(entry, "targets")
        recorded: dict[str, dict[str, Any]] = {}
        try:
            os.makedirs(metadata_dir, exist_ok=True)
            os.makedirs(targets_dir, exist_ok=True)
            config = UpdaterConfig(app_user_agent=f"sealtrail/{__version__}")
            updater = Updater(
                metadata_dir=metadata_dir,
                metadata_base_url=f"{url}/",
                target_dir=targets_dir,
                target_base_url=f"{url}/targets/",
                fetcher=_fetcher(self._timeout, config.app_user_agent),
                config=config,
                # Always start from the pinned root: newer cached roots are re-verified
                # as a chain from it, so a modified cache cannot change the anchor.
                bootstrap=pinned,
            )
            updater.refresh()
            for target in _WANTED_TARGETS:
                info = updater.get_targetinfo(target)
                if info is None:
                    if target == TRUSTED_ROOT:
                        raise TrustUpdateError(f"cannot update trust for {name!r}: the TUF "
                                               f"repository at {url} has no {TRUSTED_ROOT}")
                    continue
                path = os.path.join(targets_dir, target)
                if updater.find_cached_target(info, path) is None:
                    # Download beside the final name, then rename: a reader never sees a
                    # half-written file (python-tuf verifies before writing the temp file).
                    tmp = f"{path}.download-{os.getpid()}"
                    try:
                        updater.download_target(info, tmp)
                        os.replace(tmp, path)
                    finally:
                        with contextlib.suppress(OSError):
                            os.unlink(tmp)
                data = _read_bounded(path, MAX_TARGET_BYTES)
                recorded[target] = {"sha256": hashlib.sha256(data).hexdigest(),
                                    "length": len(data)}
        except TrustUpdateError:
            raise
        except (tuf_exceptions.RepositoryError, tuf_exceptions.DownloadError, OSError) as exc:
            raise _translate(name, url, exc) from exc
        except InputError as exc:  # a cached target over our size bound
            raise TrustUpdateError(f"cannot update trust for {name!r}: {exc.message}") from exc
        except ValueError as exc:  # python-tuf: e.g. a target without a usable hash
            raise _translate(name, url, exc) from exc
        except urllib3.exceptions.HTTPError as exc:
            # Raised while streaming a body (e.g. connection reset): python-tuf's fetch()
            # wraps only errors raised before the first byte.
            raise TrustUpdateError(f"cannot update trust for {name!r}: cannot reach {url} "
                                   f"({_network_reason(exc)})") from exc
        state["targets"] = recorded
        state["last_updated"] = utcnow().astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            self._write_state(entry, state)
        except OSError as exc:
            raise _translate(name, url, exc) from exc
