"""The verdict on each file of a release (pure): what `release verify` prints and exits on.

Inputs are what was found and checked: the SHA256SUMS entries, the digests of the artifacts
present, which of them have a bundle, and the outcome of verifying each bundle
(:class:`sealtrail.batch.Outcome`-shaped). A file gets one row; a failing row carries one
stable code (:mod:`sealtrail.release.errors`, else the verifier's own code).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Protocol

from sealtrail.release import errors as codes
from sealtrail.release.layout import bundle_of

__all__ = ["IDENTITY_CODES", "FileResult", "OutcomeLike", "classify", "outcome_result"]

#: The verifier's codes for a bundle that is sound but certifies someone else.
IDENTITY_CODES = frozenset({"IDENTITY_MISMATCH", "ISSUER_MISMATCH", "EXTENSION_MISMATCH"})
#: The verifier's code for a bundle that signs other bytes than the file's.
_DIGEST_CODES = frozenset({"DIGEST_MISMATCH"})


class OutcomeLike(Protocol):
    @property
    def ok(self) -> bool: ...
    @property
    def code(self) -> str | None: ...
    @property
    def message(self) -> str | None: ...
    @property
    def identity(self) -> str | None: ...
    @property
    def issuer(self) -> str | None: ...
    @property
    def log_index(self) -> int | None: ...


class FileResult(NamedTuple):
    """One row: a file of the release (``kind``: artifact, checksums or provenance)."""

    name: str
    kind: str
    ok: bool
    code: str | None = None
    message: str | None = None
    identity: str | None = None
    issuer: str | None = None
    log_index: int | None = None

    def to_json(self) -> dict[str, Any]:
        return self._asdict()


def outcome_result(name: str, kind: str, outcome: OutcomeLike) -> FileResult:
    """The row of a verified (or failed) bundle: identity and digest failures get the
    release's codes, other failures keep the verifier's."""
    if outcome.ok:
        return FileResult(name, kind, True, identity=outcome.identity, issuer=outcome.issuer,
                          log_index=outcome.log_index)
    code = outcome.code
    if code in IDENTITY_CODES:
        return FileResult(name, kind, False, codes.OTHER_IDENTITY,
                          f"signed by another identity: {outcome.message}")
    if code in _DIGEST_CODES:
        return FileResult(name, kind, False, codes.ARTIFACT_MODIFIED,
                          f"{name} differs from what {bundle_of(name)} signs")
    return FileResult(name, kind, False, code, outcome.message)


def classify(listed: Mapping[str, str], present: Mapping[str, str], bundled: Iterable[str],
             outcomes: Mapping[str, OutcomeLike]) -> list[FileResult]:
    """One row per artifact name, sorted.

    ``listed``: SHA256SUMS (name -> hex digest); ``present``: the artifacts in the directory
    (name -> hex digest); ``bundled``: names whose bundle file exists (artifacts or not);
    ``outcomes``: the verification of each present artifact's bundle.
    """
    bundles = set(bundled)
    rows = []
    for name in sorted(set(listed) | set(present) | bundles):
        if name not in present:
            if name in listed:
                rows.append(FileResult(name, "artifact", False, codes.ARTIFACT_MISSING,
                                       f"{name} is listed in SHA256SUMS but absent"))
            else:
                rows.append(FileResult(name, "artifact", False, codes.ARTIFACT_EXTRA,
                                       f"{bundle_of(name)} is the bundle of no artifact"))
        elif name not in listed:
            rows.append(FileResult(name, "artifact", False, codes.ARTIFACT_EXTRA,
                                   f"{name} is not listed in SHA256SUMS"))
        elif present[name] != listed[name]:
            rows.append(FileResult(name, "artifact", False, codes.ARTIFACT_MODIFIED,
                                   f"{name} differs from SHA256SUMS (sha256 {present[name]}, "
                                   f"listed {listed[name]})"))
        elif name not in bundles or name not in outcomes:
            rows.append(FileResult(name, "artifact", False, codes.ARTIFACT_EXTRA,
                                   f"{name} has no bundle ({bundle_of(name)})"))
        else:
            rows.append(outcome_result(name, "artifact", outcomes[name]))
    return rows
