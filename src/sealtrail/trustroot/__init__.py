"""Trust roots (L3): load a trusted_root.json from a file or from the copies shipped in the package.

Loading never touches the network. Refreshing a root (TUF) is a separate, explicit step.
"""

from __future__ import annotations

import os

from sealtrail.errors import InputError
from sealtrail.models.trusted_root import MAX_TRUSTED_ROOT_BYTES, TrustedRoot

__all__ = ["INSTANCES", "load_trusted_root", "packaged_path", "read_trusted_root_bytes"]

# Instances whose trust roots ship inside the package (data/public-good/<name>/).
INSTANCES = ("production", "staging")


# The package's own data folder. A plain path (not importlib.resources) keeps pathlib and
# zipfile off the CLI's start-up path; sealtrail is never imported from a zip.
_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")


def packaged_path(instance: str, name: str) -> str:
    """The path of a trust file shipped for a public-good ``instance`` (production, staging)."""
    if instance not in INSTANCES:
        raise InputError("unknown trust instance", actual=instance, expected=" or ".join(INSTANCES))
    return os.path.join(_DATA, "public-good", instance, name)


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
