"""``sealtrail verify-pypi``: PEP 740 attestations and PyPI provenance files, offline.

The checks are pypi-attestations' (``verify attestation`` / ``verify pypi``), on sealtrail's
verifier: :mod:`sealtrail.provenance.pypi`. Which attestations: ``--attestation A`` or
``--provenance P`` (once per DIST, in the same order), else the files pypi-attestations'
CLI looks for beside each DIST: ``DIST.publish.attestation`` and ``DIST.slsa.attestation``
(each that exists must verify). Who must have signed: a trusted publisher named by
``--repository URL [--workflow W]`` (GitHub or GitLab, by the URL's host), or
``--cert-identity I --cert-oidc-issuer U``; a provenance file's own publisher is checked too.

Only the standard library is imported at the top: the command is registered lazily
(``LAZY_COMMANDS`` in cli/main.py).
"""

from __future__ import annotations

import json
import os
import sys
from argparse import ArgumentParser
from typing import Any

# SPEC: pypi-attestations _cli._verify_attestation looks for these beside each FILE.
DEFAULT_SUFFIXES = (".publish.attestation", ".slsa.attestation")


def add_arguments(parser: ArgumentParser) -> None:
    """The flags of ``sealtrail verify-pypi``."""
    parser.description = (
        "Verify Python distributions against their PEP 740 attestations or PyPI provenance "
        "files, offline, as pypi-attestations does: the Sigstore signature, log entry and "
        "certificate, the trusted publisher, exactly one subject naming the distribution "
        "(names compared once parsed) with its sha256, and a predicate type PyPI knows.")
    parser.add_argument("dists", nargs="+", metavar="DIST",
                        help="wheel (.whl) or sdist (.tar.gz, .zip) to verify")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--attestation", action="append", metavar="A",
                        help="PEP 740 attestation of a DIST (once per DIST, same order); "
                             "default: DIST.publish.attestation and DIST.slsa.attestation, "
                             "each that exists")
    source.add_argument("--provenance", "--provenance-file", action="append", metavar="P",
                        help="PyPI provenance file of a DIST (what PyPI's integrity API "
                             "serves; once per DIST, same order)")
    parser.add_argument("--repository", metavar="URL",
                        help="the trusted publisher's repository: https://github.com/OWNER/REPO "
                             "or https://gitlab.com/NAMESPACE/PROJECT")
    parser.add_argument("--workflow", metavar="W",
                        help="with --repository: the publishing workflow (GitHub: file name "
                             "under .github/workflows/, e.g. release.yml; GitLab: the CI file "
                             "path, e.g. .gitlab-ci.yml); default: any workflow of the "
                             "repository (with --provenance: the file's)")
    parser.add_argument("--cert-identity", "--certificate-identity", "--identity",
                        dest="cert_identity", metavar="I",
                        help="expected certificate identity (SAN), exact")
    parser.add_argument("--cert-oidc-issuer", "--certificate-oidc-issuer",
                        dest="cert_oidc_issuer", metavar="U", help="expected OIDC issuer, exact")
    root = parser.add_mutually_exclusive_group()
    root.add_argument("--staging", action="store_true",
                      help="use the public-good staging trust root")
    root.add_argument("--trusted-root", metavar="FILE", help="trusted_root.json to verify against")
    root.add_argument("--instance", metavar="NAME",
                      help="the newest verified trust root of an instance (see sealtrail trust)")
    parser.add_argument("--offline", action="store_true",
                        help="accepted for pypi-attestations' users: verification is always "
                             "offline")
    parser.add_argument("--jobs", type=int, default=0, metavar="N",
                        help="worker processes for many DISTs (default: one per core)")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per line for each attestation checked")


def _usage(message: str) -> Exception:
    from sealtrail.errors import UsageError

    return UsageError(message)


def _check_flags(args: Any) -> None:
    if args.repository is not None:
        if args.cert_identity is not None or args.cert_oidc_issuer is not None:
            raise _usage("give either --repository (a trusted publisher) or --cert-identity "
                         "and --cert-oidc-issuer, not both")
    elif args.cert_identity is None or args.cert_oidc_issuer is None:
        raise _usage("say who must have signed: --repository URL [--workflow W], or "
                     "--cert-identity I --cert-oidc-issuer U")
    if args.jobs < 0:
        raise _usage("--jobs must be a positive number (0: one per core)")
    if args.workflow is not None and args.repository is None:
        raise _usage("--workflow needs --repository")
    given = args.attestation or args.provenance
    if given is not None and len(given) != len(args.dists):
        flag = "--attestation" if args.attestation else "--provenance"
        raise _usage(f"{flag} is given {len(given)} time(s) for {len(args.dists)} DIST(s): "
                     "give one per DIST, in the same order (an attestation names exactly one "
                     "distribution), or none to use DIST.publish.attestation")


def _read(path: str, what: str) -> bytes:
    from sealtrail.errors import BundleMalformedError, InputError
    from sealtrail.provenance.pypi import MAX_FILE_BYTES

    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise BundleMalformedError(f"{what} {path} is too large", actual=f"{size} bytes",
                                           expected=f"<= {MAX_FILE_BYTES} bytes")
            return handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror}") from exc


def _sources(args: Any, index: int, dist: str) -> list[tuple[str, str]]:
    """``(kind, path)`` of the files to check for the ``index``-th DIST."""
    from sealtrail.errors import InputError

    if args.attestation:
        return [("attestation", args.attestation[index])]
    if args.provenance:
        return [("provenance", args.provenance[index])]
    found = [("attestation", dist + suffix) for suffix in DEFAULT_SUFFIXES
             if os.path.isfile(dist + suffix)]
    if not found:
        raise InputError(f"Couldn't find attestations for file {dist} (looked for "
                         + " and ".join(dist + suffix for suffix in DEFAULT_SUFFIXES)
                         + "; give --attestation or --provenance)")
    return found


def _flag_policy(args: Any) -> Any:
    from sealtrail.provenance.pypi import publisher_from_repository
    from sealtrail.verify.policy import IdentityPolicy

    if args.repository is not None:
        return publisher_from_repository(args.repository, args.workflow)
    return IdentityPolicy(identity=args.cert_identity, issuer=args.cert_oidc_issuer)


def _checks(args: Any, kind: str, data: bytes, flag_policy: Any) -> list[tuple[Any, list[Any]]]:
    """``(attestation, policies)`` for one file: an attestation under the flags' policy; a
    provenance file's attestations under their publisher's policy, the publisher first
    checked against the flags (SPEC: pypi-attestations _cli._verify_pypi)."""
    from sealtrail.provenance import pypi

    if kind == "attestation":
        return [(pypi.parse_attestation(data), [flag_policy])]
    checks: list[tuple[Any, list[Any]]] = []
    for bundle in pypi.parse_provenance(data):
        if args.repository is not None:
            pypi.check_repository_flag(args.repository, args.workflow, bundle.publisher)
            policies: list[Any] = [bundle.publisher]
        else:
            pypi.check_identity_flags(args.cert_identity, args.cert_oidc_issuer, bundle.publisher)
            policies = [flag_policy, bundle.publisher]
        checks.extend((attestation, policies) for attestation in bundle.attestations)
    return checks


# Fewer DISTs than this are verified in this process: forking workers costs more than it saves.
MIN_DISTS_FOR_PROCESSES = 8

# A forked worker's state: (args, flag policy, verifier), set once by _init_worker.
_worker: tuple[Any, Any, Any] | None = None


def _verify_dist(args: Any, flag_policy: Any, verifier: Any, index: int) -> list[dict[str, Any]]:
    """Every check of the ``index``-th DIST: one outcome per attestation (or one for a DIST
    that could not be checked at all)."""
    from sealtrail._internal.files import digest_file
    from sealtrail.errors import Error
    from sealtrail.provenance.pypi import verify_attestation

    dist = args.dists[index]
    filename = os.path.basename(dist)
    outcomes: list[dict[str, Any]] = []
    try:
        sources = _sources(args, index, dist)
        sha256 = digest_file(dist, ("sha256",), what="distribution")["sha256"].hex()
        for kind, path in sources:
            try:
                checks = _checks(args, kind, _read(path, kind), flag_policy)
                for attestation, policies in checks:
                    result = verify_attestation(verifier, attestation, filename=filename,
                                                sha256_hex=sha256, policies=policies)
                    verified = result.verification
                    outcomes.append({
                        "ok": True, "dist": dist, kind: path, "code": None, "exit_code": 0,
                        "predicate_type": result.predicate_type,
                        "subject": result.subject_name, "sha256": sha256,
                        "identity": verified.identity, "issuer": verified.issuer,
                        "log_index": verified.log_index,
                        "verified_time": verified.verified_time.isoformat()
                                                 .replace("+00:00", "Z")})
            except Error as error:
                outcomes.append({"ok": False, "dist": dist, kind: path, **error.to_json()})
    except Error as error:
        outcomes.append({"ok": False, "dist": dist, **error.to_json()})
    return outcomes


def _init_worker(args: Any, flag_policy: Any, verifier: Any) -> None:
    global _worker
    _worker = (args, flag_policy, verifier)


def _work(index: int) -> list[dict[str, Any]]:
    assert _worker is not None
    return _verify_dist(*_worker, index)


def _verify_all(args: Any, flag_policy: Any, verifier: Any) -> list[list[dict[str, Any]]]:
    """The outcomes of every DIST, in order: in this process, or (many DISTs) in forked
    worker processes, one per core unless ``--jobs`` says otherwise, each inheriting the
    verifier already built (as sealtrail.batch does for `verify`)."""
    indices = range(len(args.dists))
    workers = args.jobs or os.cpu_count() or 1
    methods = None
    if workers > 1 and len(args.dists) >= MIN_DISTS_FOR_PROCESSES:
        import multiprocessing

        methods = multiprocessing.get_all_start_methods()
    if methods is None or "fork" not in methods:
        return [_verify_dist(args, flag_policy, verifier, index) for index in indices]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    chunk = max(1, len(args.dists) // (workers * 4))
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                             initializer=_init_worker,
                             initargs=(args, flag_policy, verifier)) as pool:
        return list(pool.map(_work, indices, chunksize=chunk))


def run(args: Any) -> int:
    """Verify every DIST; exit 0 if all verified, else the highest failure's status."""
    from sealtrail.cli import _runtime, trust_commands
    from sealtrail.models.trusted_root import TrustedRoot
    from sealtrail.verify.verifier import Verifier

    _check_flags(args)
    flag_policy = _flag_policy(args)
    selected = trust_commands.verification_root(args)
    verifier = Verifier(TrustedRoot.from_json(selected.data))
    # The long-lived objects exist: the command's collector policy applies from here
    # (cli/_runtime.py declares it per command).
    _runtime.started("verify-pypi")

    status = 0
    failed_codes: list[str | None] = []
    for outcomes in _verify_all(args, flag_policy, verifier):
        for outcome in outcomes:
            status = max(status, outcome["exit_code"])
            if not outcome["ok"]:
                failed_codes.append(outcome["code"])
            _report(args, trust_commands.annotate_result(args, outcome))
    trust_commands.print_root_notes(args, failed_codes)
    return status


def _report(args: Any, outcome: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(outcome, sort_keys=True), flush=True)
        return
    where = outcome.get("attestation") or outcome.get("provenance")
    if outcome["ok"]:
        print(f"OK: {outcome['dist']} ({where}: {outcome['predicate_type']}, signed by "
              f"{outcome['identity']})", flush=True)
    else:
        # SPEC: pypi-attestations prints "Verification failed for <dist>: <error>".
        print(f"Verification failed for {outcome['dist']}"
              + (f" ({where})" if where else "")
              + f": {outcome['code']}: {outcome['message']}", file=sys.stderr, flush=True)
