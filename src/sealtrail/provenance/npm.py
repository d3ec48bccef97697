"""npm packages: the subject an npm provenance statement must name, read from the tarball.

SPEC: npm/cli workspaces/libnpmpublish/lib/provenance.js and publish.js: the provenance
statement's subject is ``{name: pkg:npm/<name>@<version>, digest: {sha512: <tarball
sha512>}}`` with ``@scope`` written ``%40scope``; ``npm audit signatures`` requires
subject[0]'s name to be the purl and its sha512 the tarball's integrity
(``EATTESTATIONSUBJECT``). ../shared/reference/provenance-formats.md §4.

The name and version come from ``package.json`` in the tarball's top directory (npm writes
``package/``), read with :mod:`tarfile` under fixed bounds, since the tarball is untrusted.
"""

from __future__ import annotations

import json
import re
import tarfile
from typing import NamedTuple

from sealtrail.errors import InputError

__all__ = ["NpmPackage", "PUBLISH_PREDICATE_TYPE", "package_purl", "read_package"]

# SPEC: sigstore-go examples/bundle-publish.json, npm/attestation specs/publish/v0.1.
PUBLISH_PREDICATE_TYPE = "https://github.com/npm/attestation/tree/main/specs/publish/v0.1"

# Bounds on an untrusted tarball: members looked at, bytes skipped on the way, and the size
# of package.json itself.
MAX_MEMBERS = 20_000
MAX_SCANNED_BYTES = 512 * 1024 * 1024
MAX_PACKAGE_JSON_BYTES = 1024 * 1024
# SPEC: npm's package name rules (validate-npm-package-name): lower-case URL-safe names,
# optionally under one @scope.
_NAME = re.compile(r"^(?:@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*$", re.IGNORECASE)
_VERSION = re.compile(r"^[0-9A-Za-z.+-]{1,256}$")


class NpmPackage(NamedTuple):
    """An npm package tarball's identity."""

    name: str
    version: str

    @property
    def purl(self) -> str:
        """The package URL npm puts in its provenance subject."""
        return package_purl(self.name, self.version)


def package_purl(name: str, version: str) -> str:
    """``pkg:npm/<name>@<version>``, a scope's ``@`` written ``%40``."""
    if name.startswith("@"):
        name = "%40" + name[1:]
    return f"pkg:npm/{name}@{version}"


def _is_package_json(member: tarfile.TarInfo) -> bool:
    parts = member.name.lstrip("./").split("/")
    return member.isfile() and len(parts) == 2 and parts[1] == "package.json"


def read_package(path: str) -> NpmPackage | None:
    """The name and version of the npm tarball at ``path``; None if it is not one (not a
    gzipped tar, or no ``<top>/package.json``). Raises :class:`InputError` for a tarball
    whose package.json is unreadable or names no valid name and version."""
    try:
        archive = tarfile.open(path, mode="r|gz")
    except (tarfile.TarError, OSError, EOFError):
        return None
    scanned = 0
    try:
        with archive:
            for count, member in enumerate(archive):
                if count >= MAX_MEMBERS or scanned > MAX_SCANNED_BYTES:
                    return None
                scanned += max(member.size, 0)
                if not _is_package_json(member):
                    continue
                if member.size > MAX_PACKAGE_JSON_BYTES:
                    raise InputError("npm package.json is too large", actual=member.size,
                                     expected=f"<= {MAX_PACKAGE_JSON_BYTES} bytes")
                handle = archive.extractfile(member)
                if handle is None:
                    return None
                return _parse_package_json(handle.read(MAX_PACKAGE_JSON_BYTES + 1), member.name)
    except (tarfile.TarError, OSError, EOFError):
        return None
    return None


def _parse_package_json(data: bytes, where: str) -> NpmPackage:
    try:
        manifest = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InputError(f"npm tarball's {where} is not valid JSON") from exc
    if not isinstance(manifest, dict):
        raise InputError(f"npm tarball's {where} is not a JSON object")
    name, version = manifest.get("name"), manifest.get("version")
    if not isinstance(name, str) or not _NAME.match(name):
        raise InputError(f"npm tarball's {where} names no valid package name", actual=name)
    if not isinstance(version, str) or not _VERSION.match(version):
        raise InputError(f"npm tarball's {where} names no valid version", actual=version)
    return NpmPackage(name, version)
