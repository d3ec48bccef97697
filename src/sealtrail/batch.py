"""Verify many (artifact, bundle) pairs at once, on every core (L3: reads files, no network).

Each pair is verified independently; one bad pair never stops the others. Results come back
in input order as :class:`Outcome` records (plain data, so they cross process boundaries).
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple, Sequence

from sealtrail._internal.files import digest_file
from sealtrail.errors import BundleMalformedError, Error, InputError
from sealtrail.models.bundle import MAX_BUNDLE_BYTES, Bundle
from sealtrail.models.trusted_root import TrustedRoot
from sealtrail.verify.policy import Policy
from sealtrail.verify.verifier import Artifact, Verifier

__all__ = ["Outcome", "Pair", "digest_file", "verify_many", "verify_pair"]

# Below this many pairs, starting worker processes costs more than it saves.
MIN_PAIRS_FOR_PROCESSES = 8


class Pair(NamedTuple):
    """An artifact (a path, or ``sha256:HEX``) and the path of its bundle."""

    artifact: str
    bundle: str


class Outcome(NamedTuple):
    """The result of verifying one pair."""

    artifact: str
    ok: bool
    code: str | None = None
    message: str | None = None
    identity: str | None = None
    issuer: str | None = None
    key_id: str | None = None
    log_index: int | None = None
    verified_time: str | None = None
    exit_code: int = 0

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return self._asdict()


def read_bundle(path: str) -> Bundle:
    """Read and parse a bundle file, refusing oversized files before reading them whole."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_BUNDLE_BYTES:
                # Refuse before reading: memory stays flat whatever the file's size.
                raise BundleMalformedError("bundle is too large", actual=f"{size} bytes",
                                           expected=f"<= {MAX_BUNDLE_BYTES} bytes")
            data = handle.read(MAX_BUNDLE_BYTES + 1)
    except OSError as exc:
        raise InputError(f"cannot read bundle {path}: {exc.strerror}") from exc
    return Bundle.from_json(data)


def verify_pair(verifier: Verifier, pair: Pair, policy: Policy) -> Outcome:
    """Verify one pair, turning every sealtrail error into a failed :class:`Outcome`."""
    try:
        bundle = read_bundle(pair.bundle)
        if pair.artifact.startswith(("sha256:", "sha384:", "sha512:")) and not os.path.exists(pair.artifact):
            artifact = Artifact.from_digest(pair.artifact)
        else:
            artifact = Artifact(digest_file(pair.artifact, verifier.required_digests(bundle)))
        result = verifier.verify_artifact(artifact, bundle, policy)
    except Error as exc:
        return Outcome(pair.artifact, False, exc.code, exc.diagnostics(), exit_code=exc.exit_code)
    summary = result.to_json()
    return Outcome(pair.artifact, True, identity=result.identity, issuer=result.issuer,
                   key_id=result.key_id, log_index=result.log_index,
                   verified_time=summary["verified_time"])


# -- process pool plumbing: each worker builds its Verifier once ------------------------
_worker_verifier: Verifier | None = None


def _init_worker(trusted_root_json: bytes) -> None:
    global _worker_verifier
    _worker_verifier = Verifier(TrustedRoot.from_json(trusted_root_json))


def _work(args: tuple[Pair, Policy]) -> Outcome:
    assert _worker_verifier is not None
    return verify_pair(_worker_verifier, args[0], args[1])


def verify_many(pairs: Sequence[Pair], trusted_root_json: bytes, policy: Policy,
                *, workers: int | None = None) -> list[Outcome]:
    """Verify every pair under ``policy``, in parallel when it pays; results in input order."""
    workers = workers or os.cpu_count() or 1
    # Parsed here even when workers parse their own copy: a broken trust root is then one
    # error for the caller, not one per pair.
    trusted_root = TrustedRoot.from_json(trusted_root_json)
    if workers <= 1 or len(pairs) < MIN_PAIRS_FOR_PROCESSES:
        verifier = Verifier(trusted_root)
        return [verify_pair(verifier, pair, policy) for pair in pairs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # fork: workers inherit the imported modules, so they start in milliseconds.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    chunk = max(1, len(pairs) // (workers * 4))
    with ProcessPoolExecutor(max_workers=workers, mp_context=context,
                             initializer=_init_worker, initargs=(trusted_root_json,)) as pool:
        return list(pool.map(_work, [(pair, policy) for pair in pairs], chunksize=chunk))
