"""`release verify`: every artifact, SHA256SUMS and the provenance of a release directory,
checked in one pass (bundles on every core, :func:`sealtrail.batch.verify_many`), offline.

Each file gets one row (:mod:`sealtrail.release.results`); the release passes only if every
row does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from sealtrail._internal.keyfiles import read_bounded
from sealtrail.batch import Pair, verify_many
from sealtrail.errors import Error, InputError
from sealtrail.provenance.local import verify_provenance
from sealtrail.provenance.slsa import SlsaExpectations
from sealtrail.release import errors as codes
from sealtrail.release.checksums import CHECKSUMS_NAME, MAX_CHECKSUMS_BYTES, parse_checksums
from sealtrail.release.layout import PROVENANCE_NAME, bundle_of, hash_artifacts, scan
from sealtrail.release.results import FileResult, classify, outcome_result
from sealtrail.verify.policy import Policy

__all__ = ["MAX_PROVENANCE_BYTES", "verify_release"]

MAX_PROVENANCE_BYTES = 32 * 1024 * 1024


def verify_release(directory: str, trusted_root_json: bytes, policy: Policy, *,
                   expectations: SlsaExpectations | None = None,
                   other_roots_json: Sequence[bytes] | None = None,
                   workers: int | None = None) -> list[FileResult]:
    """The rows of the release in ``directory``: SHA256SUMS first, the artifacts by name,
    then the provenance. ``expectations`` (the source, tag, builder) make the provenance
    required; without them it is reported as not checked."""
    if not os.path.isdir(directory):
        raise InputError(f"{directory} is not a directory")
    files = scan(directory)
    present = hash_artifacts(directory, files.artifacts)
    rows: list[FileResult] = []
    listed: dict[str, str] | None = None
    checksums_row: FileResult | None = None
    checksums_path = os.path.join(directory, CHECKSUMS_NAME)
    if CHECKSUMS_NAME not in files.names:
        checksums_row = FileResult(CHECKSUMS_NAME, "checksums", False, codes.CHECKSUMS_MISSING,
                                   f"the release has no {CHECKSUMS_NAME}")
    else:
        try:
            listed = parse_checksums(read_bounded(checksums_path, MAX_CHECKSUMS_BYTES,
                                                  what=CHECKSUMS_NAME, error=InputError))
        except Error as exc:
            checksums_row = FileResult(CHECKSUMS_NAME, "checksums", False, exc.code,
                                       exc.diagnostics())
        if checksums_row is None and bundle_of(CHECKSUMS_NAME) not in files.names:
            checksums_row = FileResult(CHECKSUMS_NAME, "checksums", False,
                                       codes.CHECKSUMS_MISSING,
                                       f"{CHECKSUMS_NAME} has no bundle "
                                       f"({bundle_of(CHECKSUMS_NAME)})")
    bundled = [n[:-len(bundle_of(""))] for n in files.names
               if n.endswith(bundle_of("")) and n != bundle_of(CHECKSUMS_NAME)]
    names = [n for n in files.artifacts if bundle_of(n) in files.names]
    pairs = [Pair(f"sha256:{present[n]}", os.path.join(directory, bundle_of(n)))
             for n in names]
    checks_sums = checksums_row is None
    if checks_sums:
        import hashlib

        with open(checksums_path, "rb") as handle:
            digest = hashlib.sha256(handle.read(MAX_CHECKSUMS_BYTES + 1)).hexdigest()
        pairs.append(Pair(f"sha256:{digest}",
                          os.path.join(directory, bundle_of(CHECKSUMS_NAME))))
    outcomes = verify_many(pairs, trusted_root_json, policy, workers=workers,
                           other_roots_json=other_roots_json) if pairs else []
    if checks_sums:
        checksums_row = outcome_result(CHECKSUMS_NAME, "checksums", outcomes.pop())
    assert checksums_row is not None
    rows.append(checksums_row)
    # The list is used even when its own bundle failed: it can only add failures (each
    # artifact still needs its own verified bundle). Without a readable list the bundles are
    # still checked one by one, and the files present stand in for it.
    rows += classify(listed if listed is not None else present, present, bundled,
                     dict(zip(names, outcomes)))
    # The provenance must cover the release proper: the listed files that are there (an
    # added file is named above, not blamed on the provenance).
    release = {n: d for n, d in present.items() if listed is None or n in listed}
    rows.append(_provenance_row(directory, files.names, release, expectations,
                                trusted_root_json, other_roots_json))
    return rows


def _provenance_row(directory: str, names: frozenset[str], present: dict[str, str],
                    expectations: SlsaExpectations | None, trusted_root_json: bytes,
                    other_roots_json: Sequence[bytes] | None) -> FileResult:
    if PROVENANCE_NAME not in names:
        if expectations is None:
            return FileResult(PROVENANCE_NAME, "provenance", True,
                              message="none in the release, none expected")
        return FileResult(PROVENANCE_NAME, "provenance", False, codes.PROVENANCE_MISSING,
                          f"provenance was expected and the release has no {PROVENANCE_NAME}")
    if expectations is None:
        return FileResult(PROVENANCE_NAME, "provenance", True,
                          message="not checked: give --source-uri (or --policy) to check it")
    try:
        data = read_bounded(os.path.join(directory, PROVENANCE_NAME), MAX_PROVENANCE_BYTES,
                            what="provenance", error=InputError)
        # A local build under a policy trusting its machine: provenance/local.py.
        verified = verify_provenance(
            [present[name] for name in sorted(present)], data, expectations,
            trusted_root=trusted_root_json, other_roots=list(other_roots_json or ()))
    except Error as exc:
        return FileResult(PROVENANCE_NAME, "provenance", False, exc.code, exc.diagnostics())
    return FileResult(PROVENANCE_NAME, "provenance", True,
                      message=f"built by {verified.builder_id} at commit {verified.commit} "
                              f"(SLSA Build L{verified.build_level})")
