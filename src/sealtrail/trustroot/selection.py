"""Which trusted root a verification uses, and how old it is. Offline: never the network.

For an instance whose root ships in the package (``public-good``, ``public-good-staging``,
``github``), the root is the newer of

- the packaged copy, current as of :data:`sealtrail.trustroot.PACKAGED_AS_OF`, and
- the copy in the TUF cache (:class:`~sealtrail.trustroot.tuf_client.TrustStore`), verified
  by the last successful ``sealtrail trust update`` at the time it records;

a cache that cannot be read or changed since it was verified is skipped with a warning (the
packaged copy is used). An instance added with ``sealtrail trust add`` has only its cache.
A ``--trusted-root`` file is used as given.

:class:`SelectedRoot` says which root was used and how old it is, for ``--json`` output and
for the lines the CLI prints on failures (:meth:`SelectedRoot.notes`), with a hint for the
failures that most often mean "the wrong root" (:data:`HINT_CODES`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Any

from sealtrail import __version__
from sealtrail._internal.clock import utcnow
from sealtrail.errors import InputError, TrustUpdateError, UsageError
from sealtrail.trustroot import (PACKAGED_AS_OF, packaged_instances, packaged_path,
                                 read_trusted_root_bytes)

if TYPE_CHECKING:  # imported where used: the TUF client is not needed for a packaged root
    from sealtrail.trustroot.tuf_client import TrustStore

__all__ = ["DEFAULT_INSTANCE", "HINT_CODES", "SOURCES", "SelectedRoot", "select_signing_documents",
           "select_trusted_root"]

_SIGNING_CONFIG = "signing_config.v0.2.json"

DEFAULT_INSTANCE = "public-good"
#: Where a root came from: a file given by the user, the TUF cache, or the package.
SOURCES = ("file", "tuf-cache", "packaged")
#: Failures that usually mean the bundle was checked against the wrong or an outdated root.
HINT_CODES = frozenset({"TLOG_KEY_UNKNOWN", "CERT_CHAIN_INVALID"})


def _age_text(age: timedelta) -> str:
    seconds = max(0, int(age.total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return "less than a minute"


def _rfc3339(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class SelectedRoot:
    """The trusted_root.json a verification uses, where it came from and how old it is."""

    data: bytes
    #: The instance (``public-good``, ``mine``...), or ``None`` for a file.
    instance: str | None
    #: One of :data:`SOURCES`.
    source: str
    #: The file the bytes were read from.
    path: str
    #: When the root was last known current: the TUF update that verified it, or the day
    #: the packaged copy was checked; ``None`` when unknown (a file).
    as_of: datetime | None
    #: ``now - as_of`` at selection time.
    age: timedelta | None
    #: Why a newer-looking cached root was not used (one line), if it was not.
    warning: str | None = None

    def describe(self) -> str:
        """One phrase naming the root and its age, e.g. for a failure message."""
        if self.source == "file":
            return f"the trusted root in {self.path}"
        if self.source == "tuf-cache":
            when = f"verified by `sealtrail trust update` on {_rfc3339(self.as_of)}" \
                if self.as_of is not None else "of unknown age"
            age = f", {_age_text(self.age)} ago" if self.age is not None else ""
            return f"the {self.instance} trusted root from the TUF cache ({when}{age})"
        if self.as_of is None:
            when = "date unknown"
        else:
            age = f", {_age_text(self.age)} old" if self.age is not None else ""
            when = f"current as of {self.as_of.date().isoformat()}{age}"
        return f"the {self.instance} trusted root packaged with sealtrail {__version__} ({when})"

    def to_json(self) -> dict[str, Any]:
        """``instance``, ``source``, ``path``, ``as_of``, ``age_seconds`` (and ``warning``)."""
        out: dict[str, Any] = {
            "instance": self.instance, "source": self.source, "path": self.path,
            "as_of": _rfc3339(self.as_of) if self.as_of is not None else None,
            "age_seconds": int(self.age.total_seconds()) if self.age is not None else None}
        if self.warning is not None:
            out["warning"] = self.warning
        return out

    def hint(self, code: str | None, *, root: str | None = None) -> str | None:
        """For :data:`HINT_CODES`: the root used (``root``, default :meth:`describe`) and
        what to try instead; else ``None``."""
        if code not in HINT_CODES:
            return None
        what = ("the bundle's transparency log is not" if code == "TLOG_KEY_UNKNOWN"
                else "the signing certificate's CA is not")
        return (f"{what} trusted by {root or self.describe()}. If the bundle comes from "
                "another Sigstore instance, verify against its root: --staging (public-good "
                "staging), --instance NAME (github, or an instance added with `sealtrail trust "
                "add`) or --trusted-root FILE; if the instance changed its keys after this "
                "root was made, run `sealtrail trust update` (online) and verify again")

    def annotate(self, result: dict[str, Any]) -> dict[str, Any]:
        """A copy of one JSON result with ``trusted_root`` (and ``hint`` for its code)."""
        out = {**result, "trusted_root": self.to_json()}
        hint = self.hint(result.get("code")) if not result.get("ok", False) else None
        if hint is not None:
            out["hint"] = hint
        return out

    def notes(self, failed_codes: Iterable[str | None]) -> list[str]:
        """The lines to print after the results (without a prefix): nothing if all
        passed; else the root used, and one hint if a failure has a code of
        :data:`HINT_CODES`. The warning is separate (:attr:`warning`): it is printed
        whatever the outcome."""
        codes = list(failed_codes)
        if not codes:
            return []
        lines = [f"trusted root: {self.describe()}"]
        hinted = next((code for code in codes if code in HINT_CODES), None)
        if hinted is not None:  # the line above names the root already
            lines.append(f"hint: {self.hint(hinted, root='this root')}")
        return lines


def select_trusted_root(*, trusted_root: str | os.PathLike[str] | None = None,
                        instance: str | None = None, store: TrustStore | None = None,
                        now: datetime | None = None) -> SelectedRoot:
    """The root to verify with: the ``trusted_root`` file if given, else the newest
    verified root of ``instance`` (default ``public-good``; see the module docstring).

    ``store`` is the :class:`~sealtrail.trustroot.tuf_client.TrustStore` to read (default:
    the user's cache); ``now`` the time ages are measured at (default: the clock). Never
    uses the network.
    """
    if now is not None and (not isinstance(now, datetime) or now.tzinfo is None):
        raise UsageError("select_trusted_root() needs a timezone-aware time")
    when = utcnow() if now is None else now
    if trusted_root is not None:
        return SelectedRoot(read_trusted_root_bytes(trusted_root), None, "file",
                            os.fspath(trusted_root), None, None)
    name = DEFAULT_INSTANCE if instance is None else instance
    if store is None:
        from sealtrail.trustroot.tuf_client import TrustStore

        store = TrustStore()
    if name not in packaged_instances():
        # Only the cache: its errors (never updated, damaged) are the command's errors.
        cached = store.cached_target(name)
        if cached is None:
            raise TrustUpdateError(f"no verified trusted_root.json cached for {name!r}: run "
                                   f"`sealtrail trust update {name}` first (the only step "
                                   "that uses the network)")
        data, verified = cached
        return SelectedRoot(data, name, "tuf-cache", _cached_path(store, name), verified,
                            when - verified)
    packaged_day = PACKAGED_AS_OF.get(name)
    as_of = datetime.combine(packaged_day, time(0), timezone.utc) \
        if packaged_day is not None else None
    warning = None
    try:
        cached = store.cached_target(name)
    except (InputError, TrustUpdateError) as exc:
        cached = None
        warning = (f"the TUF cache of {name} is not usable ({exc.diagnostics()}); using the "
                   "packaged root instead; `sealtrail trust update` (online) repairs the cache")
    if cached is not None and (as_of is None or cached[1] >= as_of):
        data, verified = cached
        return SelectedRoot(data, name, "tuf-cache", _cached_path(store, name), verified,
                            when - verified)
    path = packaged_path(name, "trusted_root.json")
    with open(path, "rb") as handle:
        data = handle.read()
    return SelectedRoot(data, name, "packaged", path, as_of,
                        when - as_of if as_of is not None else None, warning)


def _cached_path(store: TrustStore, name: str) -> str:
    return os.path.join(store.directory, name, "targets", "trusted_root.json")


def select_signing_documents(*, instance: str | None = None, store: TrustStore | None = None,
                             now: datetime | None = None) -> tuple[SelectedRoot, bytes]:
    """The trusted root and the signing config to sign with, by the same rule as
    :func:`select_trusted_root`, and from the same place: both from the TUF cache when its
    root is the one chosen (one update verified them together), else both packaged.
    Offline. An instance without a signing config (none packaged, none cached) is an
    :class:`~sealtrail.errors.InputError`."""
    root = select_trusted_root(instance=instance, store=store, now=now)
    name = root.instance if root.instance is not None else DEFAULT_INSTANCE
    if root.source == "tuf-cache":
        if store is None:
            from sealtrail.trustroot.tuf_client import TrustStore

            store = TrustStore()
        cached = store.cached_target(name, _SIGNING_CONFIG)
        if cached is not None:
            return root, cached[0]
        raise InputError(f"the TUF repository of {name!r} publishes no {_SIGNING_CONFIG}: "
                         "give the signing services with --trust-config")
    try:
        path = packaged_path(name, _SIGNING_CONFIG)
        with open(path, "rb") as handle:
            return root, handle.read()
    except OSError as exc:
        raise InputError(f"no {_SIGNING_CONFIG} is packaged for {name!r}: give the signing "
                         "services with --trust-config") from exc
