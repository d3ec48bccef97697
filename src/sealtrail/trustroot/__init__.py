"""Trust roots (L3): load a trusted_root.json from a file or from the copies shipped in the package.

Loading never touches the network. Refreshing a root (TUF) is a separate, explicit step
(:mod:`sealtrail.trustroot.tuf_client`); which root a verification uses, the packaged copy or
a newer TUF-verified one from the cache, is decided offline by
:mod:`sealtrail.trustroot.selection`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date

from sealtrail.errors import InputError
from sealtrail.models.trusted_root import MAX_TRUSTED_ROOT_BYTES, TrustedRoot

__all__ = ["INSTANCES", "PACKAGED", "PACKAGED_AS_OF", "load_trusted_root", "packaged_instances",
           "packaged_path", "read_trusted_root_bytes"]

# The public-good instances by their short names (data/public-good/<name>/), as --staging and
# the signing commands name them.
INSTANCES = ("production", "staging")

# Instances whose trust roots ship inside the package: instance name -> folder under data/.
# An instance is packaged only if its folder holds a trusted_root.json (see packaged_instances).
PACKAGED: Mapping[str, str] = {
    "public-good": os.path.join("public-good", "production"),
    "public-good-staging": os.path.join("public-good", "staging"),
    "github": os.path.join("github", "production"),
}
_SHORT_NAMES = {"production": "public-good", "staging": "public-good-staging"}

# The day each packaged copy was last compared with what its instance publishes and found
# current (the copies in ../shared/trust, themselves taken from the instances' TUF
# repositories). Verification reports a packaged root's age from this date, and a root in
# the TUF cache is preferred only if it was verified after it. Update it with the files.
PACKAGED_AS_OF: Mapping[str, date] = {
    "public-good": date(2026, 12, 7),
    "public-good-staging": date(2026, 12, 7),
    # data/github/README.md: sigstore-rust's copy of 2026-08 (the month's first day: the
    # copy is at least that current).
    "github": date(2026, 8, 1),
}


# The package's own data folder. A plain path (not importlib.resources) keeps pathlib and
# zipfile off the CLI's start-up path; sealtrail is never imported from a zip.
_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")


def packaged_instances() -> tuple[str, ...]:
    """The instances whose trusted root ships in this package (public-good first)."""
    return tuple(name for name, folder in PACKAGED.items()
                 if os.path.isfile(os.path.join(_DATA, folder, "trusted_root.json")))


def packaged_path(instance: str, name: str) -> str:
    """The path of a trust file shipped for ``instance``: a packaged instance name
    (``public-good``, ``public-good-staging``, ``github``) or a public-good short name
    (``production``, ``staging``)."""
    full = _SHORT_NAMES.get(instance, instance)
    if full not in PACKAGED or not os.path.isfile(
            os.path.join(_DATA, PACKAGED[full], "trusted_root.json")):
        raise InputError("unknown trust instance", actual=instance,
                         expected=" or ".join((*INSTANCES, *packaged_instances())))
    return os.path.join(_DATA, PACKAGED[full], name)


def read_trusted_root_bytes(path: str | os.PathLike[str] | None = None, *,
                            instance: str = "production") -> bytes:
    """The raw trusted_root.json: from ``path`` if given, else the packaged ``instance`` copy."""
    if path is not None:
        try:
            with open(path, "rb") as handle:
                data = handle.read(MAX_TRUSTED_ROOT_BYTES + 1)
        except OSError as exc:
            raise InputError(f"cannot read trusted root {path}: {exc.strerror}") from exc
        return data
    with open(packaged_path(instance, "trusted_root.json"), "rb") as handle:
        return handle.read()


def load_trusted_root(path: str | os.PathLike[str] | None = None, *,
                      instance: str = "production") -> TrustedRoot:
    """Parse the trusted root from ``path`` or from the packaged ``instance`` copy."""
    return TrustedRoot.from_json(read_trusted_root_bytes(path, instance=instance))
