"""Verify many (artifact, bundle) pairs at once, on every core (L3: reads files, no network).

Each pair is verified independently; one bad pair never stops the others. Results come back
in input order as :class:`Outcome` records (plain data, so they cross process boundaries).

A bundle file may hold several bundles as JSON Lines (what ``gh attestation download``
writes): the pair passes if one of them verifies under the policy, and the outcome says
which line did. Keyless bundles of GitHub's own Sigstore instance (artifact attestations of
private repositories) verify against GitHub's packaged trust root when the given root is
public-good's: the root is chosen by the leaf certificate's issuer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any, NamedTuple, Sequence

from sealtrail._internal.files import digest_file
from sealtrail.errors import BundleMalformedError, Error, InputError, UsageError
from sealtrail.models.bundle import MAX_BUNDLE_BYTES, Bundle
from sealtrail.models.trusted_root import TrustedRoot
from sealtrail.verify.policy import IdentityPolicy, KeyPolicy, Policy
from sealtrail.verify.verifier import Artifact, Verifier

__all__ = [
    "GITHUB_TRUSTED_ROOT",
    "MAX_BUNDLES_PER_FILE",
    "Outcome",
    "Pair",
    "default_other_roots",
    "digest_file",
    "github_trusted_root_bytes",
    "read_bundle",
    "read_bundles",
    "verify_many",
    "verify_pair",
    "verify_payload",
]

# Below this many pairs, starting worker processes costs more than it saves.
MIN_PAIRS_FOR_PROCESSES = 8
# SPEC: gh attestation verify --limit accepts 1..1000 attestations.
MAX_BUNDLES_PER_FILE = 1000
# The longest path a pair may name (Linux PATH_MAX); longer input is not a path.
_MAX_PATH_CHARS = 4096

_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
#: GitHub's trusted root as packaged (data/github/production/, beside public-good's).
GITHUB_TRUSTED_ROOT = os.path.join(_DATA, "github", "production", "trusted_root.json")
# The CA that marks a public-good trusted root (production), next to which GitHub's own
# instance is trusted by default, as `gh attestation verify` does.
_PUBLIC_GOOD_CA_URI = "https://fulcio.sigstore.dev"


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
    #: For a JSON Lines bundle file: the line (from 1) of the bundle that verified, or of
    #: the last one tried when none did. None for a file holding one bundle.
    bundle_line: int | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return self._asdict()


def github_trusted_root_bytes() -> bytes:
    """The packaged trusted_root.json of GitHub's own Sigstore instance."""
    with open(GITHUB_TRUSTED_ROOT, "rb") as handle:
        return handle.read()


def default_other_roots(trusted_root: TrustedRoot) -> list[bytes]:
    """The roots trusted beside ``trusted_root`` by default: GitHub's packaged root next to a
    public-good root (SPEC: gh attestation verify trusts both, and picks one by the leaf
    certificate's issuer); none next to any other root."""
    if any(ca.uri == _PUBLIC_GOOD_CA_URI for ca in trusted_root.certificate_authorities):
        return [github_trusted_root_bytes()]
    return []


def _read_bundle_file(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_BUNDLE_BYTES:
                # Refuse before reading: memory stays flat whatever the file's size.
                raise BundleMalformedError("bundle is too large", actual=f"{size} bytes",
                                           expected=f"<= {MAX_BUNDLE_BYTES} bytes")
            return handle.read(MAX_BUNDLE_BYTES + 1)
    except OSError as exc:
        raise InputError(f"cannot read bundle {_shown_path(path)}: {exc.strerror}") from exc


def read_bundles(path: str) -> list[tuple[int | None, Bundle]]:
    """Read a bundle file: one JSON bundle, or JSON Lines of bundles.

    Returns ``(line, bundle)`` pairs; ``line`` (from 1) is None for a one-bundle file.
    SPEC: `gh attestation download` writes one bundle per line (.jsonl); gh refuses the
    file if any line does not parse, and so do we (BUNDLE_MALFORMED naming the line).
    """
    data = _read_bundle_file(path)
    try:
        return [(None, Bundle.from_json(data))]
    except BundleMalformedError as whole:
        lines = [(number, line) for number, line in enumerate(data.splitlines(), 1)
                 if line.strip()]
        if len(lines) < 2 or not _is_json_object(lines[0][1]):
            raise whole
    if len(lines) > MAX_BUNDLES_PER_FILE:
        raise BundleMalformedError("bundle file holds too many JSON Lines",
                                   actual=len(lines), expected=f"<= {MAX_BUNDLES_PER_FILE}")
    bundles: list[tuple[int | None, Bundle]] = []
    for number, line in lines:
        try:
            bundles.append((number, Bundle.from_json(line)))
        except BundleMalformedError as exc:
            raise BundleMalformedError(f"line {number}: {exc.message}", actual=exc.actual,
                                       expected=exc.expected) from exc
    return bundles


def _is_json_object(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except (ValueError, RecursionError):
        return False


def read_bundle(path: str) -> Bundle:
    """Read and parse a file holding one bundle, refusing oversized files before reading."""
    return Bundle.from_json(_read_bundle_file(path))


def verify_pair(verifier: Verifier, pair: Pair, policy: Policy) -> Outcome:
    """Verify one pair, turning every sealtrail error into a failed :class:`Outcome`.

    With several bundles in the file (JSON Lines), the first that verifies wins; if none
    does, the outcome carries the last error, as `gh attestation verify` reports it.
    """
    line: int | None = None
    try:
        bundles = read_bundles(pair.bundle)
        is_digest = (pair.artifact.startswith(("sha256:", "sha384:", "sha512:"))
                     and not os.path.exists(pair.artifact))
        digest_algorithms: dict[str, None] = {}
        for _, bundle in bundles:
            digest_algorithms.update(dict.fromkeys(verifier.required_digests(bundle)))
        if is_digest:
            artifact = Artifact.from_digest(pair.artifact)
        else:
            artifact = Artifact(digest_file(pair.artifact, tuple(digest_algorithms)))
        last: Error | None = None
        for line, bundle in bundles:
            try:
                result = verifier.verify_artifact(artifact, bundle, policy)
            except Error as exc:
                last = exc
                continue
            summary = result.to_json()
            return Outcome(pair.artifact, True, identity=result.identity, issuer=result.issuer,
                           key_id=result.key_id, log_index=result.log_index,
                           verified_time=summary["verified_time"], bundle_line=line,
                           message=(f"bundle on line {line} of {len(bundles)} verified"
                                    if line is not None else None))
        assert last is not None
        if len(bundles) > 1:
            raise type(last)(f"none of the {len(bundles)} bundles verified; line {line}: "
                             f"{last.message}", actual=last.actual, expected=last.expected)
        raise last
    except Error as exc:
        return Outcome(pair.artifact, False, exc.code, exc.diagnostics(), exit_code=exc.exit_code,
                       bundle_line=line)


class PayloadOutcome(NamedTuple):
    """The result of verifying a DSSE bundle without an artifact: the outcome, and the
    verified payload (None when verification failed)."""

    outcome: Outcome
    payload_type: str | None = None
    payload: bytes | None = None


def verify_payload(bundle_path: str, trusted_root_json: bytes, policy: Policy, *,
                   payload_type: str | None = None,
                   other_roots_json: Sequence[bytes] | None = None) -> PayloadOutcome:
    """Verify a DSSE bundle file with no artifact, and return its verified payload.

    For payloads that name no artifact (not in-toto statements): the signature, signer,
    policy, times and log entries are checked, and ``payload_type``, when given, must be
    the envelope's. A JSON Lines file passes if one bundle verifies (the outcome names its
    line). Errors become a failed outcome, as in :func:`verify_many`.
    """
    path = _path(bundle_path, "bundle_path")
    _check_policy(policy)
    verifier = _make_verifier(_root_bytes(trusted_root_json, "trusted_root_json"),
                              _other_roots(trusted_root_json, other_roots_json))
    line: int | None = None
    try:
        bundles = read_bundles(path)
        last: Error | None = None
        for line, bundle in bundles:
            try:
                result = verifier.verify_dsse(bundle, policy, payload_type=payload_type)
            except Error as exc:
                last = exc
                continue
            summary = result.to_json()
            return PayloadOutcome(
                Outcome(path, True, identity=result.identity, issuer=result.issuer,
                        key_id=result.key_id, log_index=result.log_index,
                        verified_time=summary["verified_time"], bundle_line=line),
                result.payload_type, result.payload)
        assert last is not None
        raise last
    except Error as exc:
        return PayloadOutcome(Outcome(path, False, exc.code, exc.diagnostics(),
                                      exit_code=exc.exit_code, bundle_line=line))


# -- process pool plumbing: each worker builds its Verifier once ------------------------
_worker_verifier: Verifier | None = None


def _make_verifier(trusted_root_json: bytes, other_roots_json: Sequence[bytes]) -> Verifier:
    return Verifier(TrustedRoot.from_json(trusted_root_json),
                    other_roots=[TrustedRoot.from_json(data) for data in other_roots_json])


def _init_worker(trusted_root_json: bytes, other_roots_json: Sequence[bytes]) -> None:
    global _worker_verifier
    _worker_verifier = _make_verifier(trusted_root_json, other_roots_json)


def _work(args: tuple[Pair, Policy]) -> Outcome:
    assert _worker_verifier is not None
    return verify_pair(_worker_verifier, args[0], args[1])


def _shown_path(path: str) -> str:
    return path if len(path) <= 200 else path[:197] + "..."


def _pairs(pairs: Any) -> list[Pair]:
    """Check and normalise the pairs argument (never echoing its content)."""
    if isinstance(pairs, (str, bytes, bytearray, dict)) or not isinstance(pairs, Iterable):
        raise UsageError("pairs must be a list of (artifact, bundle) pairs",
                         actual=type(pairs).__name__, expected="a list of sealtrail.Pair")
    checked = []
    for index, item in enumerate(pairs):
        if isinstance(item, (str, bytes, bytearray)) or not isinstance(item, (tuple, list)) \
                or len(item) != 2:
            raise UsageError(f"pairs[{index}] must be an (artifact, bundle) pair",
                             actual=type(item).__name__, expected="sealtrail.Pair(artifact, bundle)")
        checked.append(Pair(_path(item[0], f"pairs[{index}].artifact"),
                            _path(item[1], f"pairs[{index}].bundle")))
    return checked


def _path(value: Any, what: str) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise UsageError(f"{what} must be a path (str)", actual=type(value).__name__,
                         expected="a file path (or sha256:HEX for an artifact)")
    if len(value) > _MAX_PATH_CHARS or "\x00" in value:
        raise UsageError(f"{what} is not a path", actual=f"{len(value)} characters",
                         expected="a file path (the bundle's path, not its content)")
    return value


def _root_bytes(value: Any, what: str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise UsageError(f"{what} must be the bytes of a trusted_root.json",
                     actual=type(value).__name__,
                     expected="bytes (read the file, or sealtrail.trustroot.read_trusted_root_bytes())")


def _check_policy(policy: Any) -> None:
    if not isinstance(policy, (IdentityPolicy, KeyPolicy)):
        raise UsageError("policy must be an IdentityPolicy or a KeyPolicy",
                         actual=type(policy).__name__)


def _other_roots(trusted_root_json: Any, other_roots_json: Any,
                 parsed: TrustedRoot | None = None) -> list[bytes]:
    """The roots beside the given one (``parsed``, if the caller has parsed it already): as
    given, or by default (see default_other_roots)."""
    if other_roots_json is None:
        trusted_root = parsed or TrustedRoot.from_json(
            _root_bytes(trusted_root_json, "trusted_root_json"))
        return default_other_roots(trusted_root)
    if isinstance(other_roots_json, (str, bytes, bytearray)) \
            or not isinstance(other_roots_json, Iterable):
        raise UsageError("other_roots_json must be a list of trusted_root.json bytes",
                         actual=type(other_roots_json).__name__)
    return [_root_bytes(item, f"other_roots_json[{i}]") for i, item in enumerate(other_roots_json)]


def verify_many(pairs: Sequence[Pair], trusted_root_json: bytes, policy: Policy,
                *, workers: int | None = None,
                other_roots_json: Sequence[bytes] | None = None) -> list[Outcome]:
    """Verify every pair under ``policy``, in parallel when it pays; results in input order.

    ``pairs`` are :class:`Pair` (or 2-tuples of paths; the artifact may be ``sha256:HEX``),
    ``trusted_root_json`` the bytes of a trusted_root.json. ``other_roots_json`` are further
    trusted roots, chosen for a bundle by its leaf certificate's issuer; by default
    (None), GitHub's packaged root when ``trusted_root_json`` is a public-good root, as
    `gh attestation verify` trusts both. Other input is refused with a
    :class:`~sealtrail.errors.UsageError`.
    """
    checked = _pairs(pairs)
    root_json = _root_bytes(trusted_root_json, "trusted_root_json")
    _check_policy(policy)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise UsageError("workers must be a positive integer", actual=repr(workers)[:40])
    # Parsed here, once, even when workers parse their own copy: a broken trust root is then
    # one error for the caller, not one per pair.
    root = TrustedRoot.from_json(root_json)
    others = _other_roots(root_json, other_roots_json, root)
    parsed_others = [TrustedRoot.from_json(other) for other in others]
    workers = workers or os.cpu_count() or 1
    if workers <= 1 or len(checked) < MIN_PAIRS_FOR_PROCESSES:
        verifier = Verifier(root, other_roots=parsed_others)
        return [verify_pair(verifier, pair, policy) for pair in checked]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # fork: workers inherit the imported modules, so they start in milliseconds.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    chunk = max(1, len(checked) // (workers * 4))
    with ProcessPoolExecutor(max_workers=workers, mp_context=context,
                             initializer=_init_worker, initargs=(root_json, others)) as pool:
        return list(pool.map(_work, [(pair, policy) for pair in checked], chunksize=chunk))
