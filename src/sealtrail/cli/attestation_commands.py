"""`sealtrail verify-attestation`: GitHub artifact attestations as `gh attestation verify`
checks them (flags, semantics, messages), offline, plus the predicate checks gh lacks.

Top-level imports stay light (stdlib only): this module is imported only when the command
runs (LAZY_COMMANDS in cli/main.py).
"""

from __future__ import annotations

import json
import sys
from typing import Any

HELP = "verify GitHub artifact attestations as `gh attestation verify` does (offline)"

_DESCRIPTION = """\
Verify that each ARTIFACT is attested by a bundle of --bundle (JSON, JSON Lines as written by
`gh attestation download`, or the {"attestations": [{"bundle": ...}]} answer of GitHub's and
npm's attestation APIs), with gh attestation verify's flags and checks: the leaf certificate's
issuer picks the verifier (public-good or GitHub's instance, or a root of
--custom-trusted-root); the certificate must name the owner (and repository) and issuer; one
bundle passing suffices. Beyond gh, a SLSA v1 predicate must agree with its certificate
(builder, source commit, workflow); --no-predicate-checks turns that off. npm tarballs with
--digest-alg sha512: the subject must also be named as the package (pkg:npm/NAME@VERSION).
Never uses the network. Exit 0 verified, 1 failed, 2 bad input or flags."""


def add_arguments(parser: Any) -> None:
    """The flags of `gh attestation verify` (SPEC: pkg/cmd/attestation/verify/verify.go)."""
    parser.description = _DESCRIPTION
    parser.add_argument("artifacts", nargs="+", metavar="ARTIFACT")
    parser.add_argument("-b", "--bundle", required=True, metavar="B",
                        help="the attestation bundle(s): JSON, JSON Lines, or an attestations "
                             "API answer")
    parser.add_argument("-o", "--owner", help="the GitHub organization or user the "
                                              "artifact's source repository belongs to")
    parser.add_argument("-R", "--repo", metavar="OWNER/REPO",
                        help="the repository the artifact was built from")
    parser.add_argument("-d", "--digest-alg", choices=("sha256", "sha512"), default="sha256",
                        help="the algorithm the subject digest uses (default sha256; npm: "
                             "sha512)")
    parser.add_argument("--predicate-type", default=None, metavar="URI",
                        help="the predicate type to verify (default "
                             "https://slsa.dev/provenance/v1)")
    signer = parser.add_mutually_exclusive_group()
    signer.add_argument("--cert-identity", metavar="SAN",
                        help="the exact certificate identity (SAN) expected")
    signer.add_argument("-i", "--cert-identity-regex", metavar="RE",
                        help="a pattern the certificate identity must match (anywhere, as Go's "
                             "regexp.MatchString)")
    signer.add_argument("--signer-repo", metavar="OWNER/REPO",
                        help="the repository of the reusable workflow that signed")
    signer.add_argument("--signer-workflow", metavar="[HOST/]OWNER/REPO/PATH",
                        help="the workflow that signed (a pattern, matched from the start)")
    parser.add_argument("--cert-oidc-issuer", default=None, metavar="URL",
                        help="the OIDC issuer expected (default "
                             "https://token.actions.githubusercontent.com)")
    parser.add_argument("--deny-self-hosted-runners", action="store_true",
                        help="fail unless the signing workflow ran on a GitHub-hosted runner")
    parser.add_argument("--source-ref", metavar="REF", help="the source ref expected "
                                                            "(e.g. refs/heads/main)")
    parser.add_argument("--source-digest", metavar="SHA", help="the source commit expected")
    parser.add_argument("--signer-digest", metavar="SHA",
                        help="the digest of the signing workflow expected")
    parser.add_argument("--custom-trusted-root", metavar="F",
                        help="trusted roots, one per line (JSON Lines, each line "
                             "newline-terminated); used instead of the built-in ones")
    parser.add_argument("--no-public-good", action="store_true",
                        help="refuse attestations signed on the public-good instance")
    parser.add_argument("--no-predicate-checks", action="store_true",
                        help="check the certificate only, exactly as gh does, not what the "
                             "SLSA predicate claims")
    parser.add_argument("--policy", metavar="FILE",
                        help="take owner or repo, the signer, issuer, predicate type and "
                             "--deny-self-hosted-runners from a provenance policy file (TOML, "
                             "docs/provenance.md); a flag may not repeat what it says")
    parser.add_argument("--json", action="store_true",
                        help="print gh's JSON (a list of {attestation, verificationResult})")
    parser.add_argument("--format", choices=("json",), default=None,
                        help="gh's spelling of --json")
    from sealtrail.cli.vsa_commands import add_vsa_out_arguments  # stdlib-only module

    add_vsa_out_arguments(parser)


def run(args: Any) -> int:
    """Verify every ARTIFACT; the highest exit status wins."""
    from sealtrail.cli.vsa_commands import check_vsa_arguments, write_attestation_vsa
    from sealtrail.errors import Error

    check_vsa_arguments(args)  # --vsa-* flags that cannot work: exit 2 before any check
    as_json = bool(args.json or args.format == "json")
    try:
        _apply_policy(args)
        criteria, roots, bundles = _prepare(args)
    except Error as error:
        _report_error(None, error, as_json)
        return error.exit_code
    status = 0
    args.vsa_verified = []  # (subject name, algorithm, digest, passed) for --vsa-out
    for artifact in args.artifacts:
        status = max(status, _verify_artifact(args, artifact, criteria, roots, bundles, as_json))
    if status == 0:
        write_attestation_vsa(args, args.vsa_verified)  # --vsa-out: a VSA of the passed check
    return status


# Policy file fields -> the flags they stand for (sealtrail.provenance.policy).
_POLICY_FLAGS = {"owner": "owner", "repo": "repo", "identity": "cert_identity",
                 "identity_regexp": "cert_identity_regex", "signer_workflow": "signer_workflow",
                 "issuer": "cert_oidc_issuer"}


def _apply_policy(args: Any) -> None:
    """``--policy FILE``: the flags it stands for, set on ``args`` (a flag that repeats one
    is a usage error); its source and builder tables are verify-artifact's checks."""
    args.policy_digest = None
    if not getattr(args, "policy", None):
        return
    from sealtrail.cli._common import usage_error
    from sealtrail.cli.policy_commands import load_policy
    from sealtrail.provenance.policy import DEFAULT_PREDICATE_TYPES

    policy = load_policy(args.policy)
    for field, flag in _POLICY_FLAGS.items():
        value = getattr(policy, field)
        if value is None:
            continue
        if getattr(args, flag) is not None:
            raise usage_error(f"--{flag.replace('_', '-')} repeats the policy's {field}: give "
                              "one or the other")
        setattr(args, flag, value)
    if policy.deny_self_hosted_runners:
        args.deny_self_hosted_runners = True
    if policy.predicate_types != DEFAULT_PREDICATE_TYPES:
        if len(policy.predicate_types) != 1:
            raise usage_error("verify-attestation checks one predicate type (as gh does): the "
                              "policy names several")
        if args.predicate_type is not None:
            raise usage_error("--predicate-type repeats the policy's predicate-types")
        args.predicate_type = policy.predicate_types[0]
    args.policy_digest = policy.digest()


def _prepare(args: Any) -> tuple[Any, Any, list[tuple[Any, Any]]]:
    from sealtrail.provenance.github import (
        DEFAULT_OIDC_ISSUER,
        DEFAULT_PREDICATE_TYPE,
        Roots,
        criteria_from_flags,
        parse_custom_roots,
    )

    criteria = criteria_from_flags(
        owner=args.owner, repo=args.repo, signer_repo=args.signer_repo,
        signer_workflow=args.signer_workflow, cert_identity=args.cert_identity,
        cert_identity_regex=args.cert_identity_regex,
        cert_oidc_issuer=args.cert_oidc_issuer or DEFAULT_OIDC_ISSUER,
        predicate_type=args.predicate_type or DEFAULT_PREDICATE_TYPE,
        deny_self_hosted_runners=args.deny_self_hosted_runners, source_ref=args.source_ref,
        source_digest=args.source_digest, signer_digest=args.signer_digest,
        predicate_checks=not args.no_predicate_checks)
    from sealtrail.verify.policy import anchoring_warning

    # As `verify` does: a user pattern not anchored at the start matches inside other values.
    warning = anchoring_warning(args.cert_identity_regex, "--cert-identity-regex")
    if warning:
        print(f"sealtrail: warning: {warning}", file=sys.stderr)
    if args.custom_trusted_root is not None:
        roots = Roots(custom=parse_custom_roots(_read_file(args.custom_trusted_root,
                                                           "custom trusted root")),
                      no_public_good=args.no_public_good)
    else:
        roots = _built_in_roots(args.no_public_good)
    return criteria, roots, _read_bundles(args.bundle)


def _built_in_roots(no_public_good: bool) -> Any:
    """public-good's and GitHub's newest verified roots (packaged or TUF cache), offline."""
    from sealtrail.models.trusted_root import TrustedRoot
    from sealtrail.provenance.github import Roots
    from sealtrail.trustroot.selection import select_trusted_root

    parsed = []
    for instance in ("public-good", "github"):
        selected = select_trusted_root(instance=instance)
        if selected.warning:
            print(f"sealtrail: warning: {selected.warning}", file=sys.stderr)
        parsed.append(TrustedRoot.from_json(selected.data))
    return Roots(public_good=parsed[0], github=parsed[1], no_public_good=no_public_good)


_MAX_FILE_BYTES = 32 * 1024 * 1024


def _read_file(path: str, what: str) -> bytes:
    from sealtrail._internal.keyfiles import read_bounded
    from sealtrail.errors import InputError

    return read_bounded(path, _MAX_FILE_BYTES, what=what, error=InputError)


def _read_bundles(path: str) -> list[tuple[Any, Any]]:
    """``(bundle, its JSON)`` pairs from a bundle file: one bundle, JSON Lines (gh attestation
    download), or the attestations API's ``{"attestations": [{"bundle": ...}]}`` (GitHub's
    and npm's registry answer)."""
    from sealtrail.batch import read_bundles
    from sealtrail.errors import BundleMalformedError
    from sealtrail.models.bundle import Bundle

    data = _read_file(path, "bundle")
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        document = None
    if isinstance(document, dict) and isinstance(document.get("attestations"), list):
        found = []
        for index, item in enumerate(document["attestations"][:1000]):
            bundle = item.get("bundle") if isinstance(item, dict) else None
            try:
                found.append((Bundle.from_dict(bundle), bundle))
            except BundleMalformedError as exc:
                raise BundleMalformedError(f"attestations[{index}].bundle: {exc.message}",
                                           expected=exc.expected, actual=exc.actual) from exc
        return found
    parsed = read_bundles(path)
    if len(parsed) == 1 and parsed[0][0] is None:
        return [(parsed[0][1], document)]
    lines = data.splitlines()
    return [(bundle, json.loads(lines[line - 1])) for line, bundle in parsed if line is not None]


def _verify_artifact(args: Any, artifact: str, criteria: Any, roots: Any,
                     bundles: list[tuple[Any, Any]], as_json: bool) -> int:
    from sealtrail._internal.files import digest_file
    from sealtrail.errors import Error
    from sealtrail.provenance.github import result_json, verify_attestations
    from sealtrail.provenance.npm import read_package
    from sealtrail.verify.verifier import Artifact

    algorithm = args.digest_alg
    try:
        digests = digest_file(artifact, (algorithm,))
        package = read_package(artifact) if algorithm == "sha512" else None
        if not as_json:
            print(f"Loaded digest {algorithm}:{digests[algorithm].hex()} for file://{artifact}",
                  file=sys.stderr)
            print(f"Loaded {len(bundles)} attestation{'s' if len(bundles) != 1 else ''} from "
                  f"{args.bundle}", file=sys.stderr)
        passed = verify_attestations(Artifact(digests), [bundle for bundle, _ in bundles],
                                     criteria, roots,
                                     subject_name=package.purl if package else None)
    except Error as error:
        _report_error(artifact, error, as_json)
        return error.exit_code
    if getattr(args, "vsa_verified", None) is not None:
        import os

        args.vsa_verified.append((package.purl if package else os.path.basename(artifact),
                                  algorithm, digests[algorithm], passed))
    if as_json:
        print(json.dumps([result_json(item, bundles[item.bundle_index][1], criteria)
                          for item in passed]))
        return 0
    print(f"OK: {artifact}: ✓ Verification succeeded!")
    if package is not None:
        print(f"  npm package {package.purl}")
    print(f"The following {len(passed)} attestation{'s' if len(passed) != 1 else ''} matched "
          "the policy criteria")
    for item in passed:
        extensions = item.result.extensions
        print(f"- Attestation #{item.bundle_index + 1}")
        print(f"  - Build repo:..... {_repo(extensions.get('source_repository_uri', ''))}")
        print(f"  - Build workflow:. {_workflow(extensions.get('build_config_uri', ''))}")
        print(f"  - Signer repo:.... {_repo(_workflow_repo(extensions.get('build_signer_uri', '')))}")
        print(f"  - Signer workflow: {_workflow(extensions.get('build_signer_uri', ''))}")
    return 0


def _repo(uri: str) -> str:
    # SPEC: gh prints the repository without its https://<host>/ prefix.
    parts = uri.split("/", 3)
    return parts[3] if len(parts) == 4 and uri.startswith("https://") else uri


def _workflow_repo(uri: str) -> str:
    return "/".join(uri.split("/", 5)[:5]) if uri.startswith("https://") else uri


def _workflow(uri: str) -> str:
    parts = uri.split("/", 5)
    return parts[5] if len(parts) == 6 and uri.startswith("https://") else uri


def _report_error(artifact: str | None, error: Any, as_json: bool) -> None:
    cause = error.__cause__
    if cause is not None and getattr(cause, "message", "") in error.message:
        cause = None  # already said (a line number added to a parse error, say)
    if as_json:
        out = {"ok": False, "artifact": artifact, **error.to_json()}
        if cause is not None and hasattr(cause, "to_json"):
            out["cause"] = cause.to_json()
        print(json.dumps(out, sort_keys=True))
    where = f"{artifact}: " if artifact is not None else ""
    if error.exit_code == 1:
        print(f"FAILED: {where}✗ Verification failed: {error.code}: {error.diagnostics()}",
              file=sys.stderr)
    else:
        print(f"sealtrail: error: {where}{error.code}: {error.diagnostics()}", file=sys.stderr)
    if cause is not None and hasattr(cause, "diagnostics"):
        print(f"sealtrail: cause: {cause.code}: {cause.diagnostics()}", file=sys.stderr)
