"""``sealtrail verify``: the verifying side of the CLI.

Heavy modules are imported inside the functions, so the CLI starts fast.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from sealtrail.cli import _runtime
from sealtrail.cli._common import EXIT_OK, Commands, usage_error

# cosign's flag names for the GitHub workflow claims, mapped to Fulcio extension names.
GITHUB_EXTENSION_FLAGS = {
    "cert_github_workflow_repository": "github_workflow_repository",
    "cert_github_workflow_ref": "github_workflow_ref",
    "cert_github_workflow_sha": "github_workflow_sha",
    "cert_github_workflow_trigger": "github_workflow_trigger",
    "cert_github_workflow_name": "github_workflow_name",
}
DIGEST_PREFIXES = ("sha256:", "sha384:", "sha512:")


def add_parser(commands: Commands) -> None:
    """Define `sealtrail verify` (fully only when it is the command being run)."""
    verify = commands.add_parser(
        "verify", help="verify artifacts against their Sigstore bundles (never uses the network)",
        description="Verify each ARTIFACT against its bundle (default ARTIFACT.sigstore.json) "
                    "and an identity policy or a public key. Works offline.")
    verify.add_argument("artifacts", nargs="+", metavar="ARTIFACT",
                        help="file to verify, or sha256:HEX (then --bundle is required)")
    verify.add_argument("--bundle", help="bundle path (only with a single artifact)")
    identity = verify.add_mutually_exclusive_group()
    identity.add_argument("--certificate-identity", metavar="ID",
                          help="expected certificate identity (SAN), exact")
    identity.add_argument("--certificate-identity-regexp", metavar="RE",
                          help="expected certificate identity, as a regular expression "
                               "matched against the whole value")
    issuer = verify.add_mutually_exclusive_group()
    issuer.add_argument("--certificate-oidc-issuer", metavar="URL",
                        help="expected OIDC issuer, exact")
    issuer.add_argument("--certificate-oidc-issuer-regexp", metavar="RE",
                        help="expected OIDC issuer, as a whole-value regular expression")
    for flag in GITHUB_EXTENSION_FLAGS:
        verify.add_argument("--" + flag.replace("_", "-"), metavar="VALUE",
                            help=f"expected {GITHUB_EXTENSION_FLAGS[flag]} certificate claim")
    verify.add_argument("--key", metavar="PUB.pem", help="verify with this public key instead "
                        "of a certificate identity")
    root = verify.add_mutually_exclusive_group()
    root.add_argument("--trusted-root", metavar="FILE", help="trusted_root.json to verify against "
                      "(default: the public-good production root shipped with sealtrail)")
    root.add_argument("--staging", action="store_true",
                      help="use the public-good staging trust root")
    root.add_argument("--instance", metavar="NAME",
                      help="use the cached trust root of an instance added with `sealtrail trust "
                           "add` (read offline; refresh it with `sealtrail trust update`)")
    verify.add_argument("--signature", metavar="F.sig",
                        help="a detached signature (base64, cosign layout) instead of a bundle; "
                             "with --certificate, the log entry is looked up ONLINE in the "
                             "Rekor v1 log of --trust-config or --instance-dir")
    verify.add_argument("--certificate", metavar="F.pem", help="the detached signing certificate")
    verify.add_argument("--trust-config", metavar="FILE",
                        help="with --signature: a client trust config naming the trusted root "
                             "and the log")
    verify.add_argument("--instance-dir", metavar="DIR",
                        help="with --signature: a local instance (its trust config)")
    verify.add_argument("--json", action="store_true", help="print one JSON object per artifact")
    verify.add_argument("--jobs", type=int, default=0, metavar="N",
                        help="worker processes for many artifacts (default: all cores)")


def _policy_from_args(args: Any) -> Any:
    from sealtrail.verify.policy import IdentityPolicy, KeyPolicy

    identity_given = args.certificate_identity or args.certificate_identity_regexp
    issuer_given = args.certificate_oidc_issuer or args.certificate_oidc_issuer_regexp
    extensions = {name: getattr(args, flag) for flag, name in GITHUB_EXTENSION_FLAGS.items()
                  if getattr(args, flag) is not None}
    if args.key:
        if identity_given or issuer_given or extensions:
            raise usage_error("--key cannot be combined with certificate identity flags")
        try:
            with open(args.key, "rb") as handle:
                pem = handle.read(1024 * 1024)
        except OSError as exc:
            raise usage_error(f"cannot read key {args.key}: {exc.strerror}") from exc
        return KeyPolicy(pem)
    if not identity_given or not issuer_given:
        raise usage_error("give --certificate-identity (or -regexp) and --certificate-oidc-issuer "
                     "(or -regexp), or --key")
    return IdentityPolicy(identity=args.certificate_identity,
                          identity_regexp=args.certificate_identity_regexp,
                          issuer=args.certificate_oidc_issuer,
                          issuer_regexp=args.certificate_oidc_issuer_regexp,
                          extensions=extensions)


def _verify_detached(args: Any, policy: Any) -> int:
    """`verify --signature F.sig --certificate F.pem ARTIFACT`: one online look-up, then offline."""
    from cryptography import x509

    from sealtrail.batch import Outcome
    from sealtrail.errors import Error
    from sealtrail.sign.context import SigningContext
    from sealtrail._internal.files import digest_file
    from sealtrail.sign.detached import bundle_from_detached, read_detached_signature
    from sealtrail.verify.verifier import Artifact, Verifier

    if len(args.artifacts) != 1 or not args.certificate:
        raise usage_error("--signature takes a single ARTIFACT and --certificate")
    config_path = args.trust_config or (os.path.join(args.instance_dir, "trust", "trust_config.json")
                                        if args.instance_dir else None)
    if config_path is None:
        raise usage_error("--signature needs --trust-config or --instance-dir to find the log")
    try:
        with open(config_path, "rb") as handle:
            context = SigningContext.from_trust_config(handle.read(16 * 1024 * 1024), rekor_version=1)
        with open(args.signature, "rb") as handle:
            signature = read_detached_signature(handle.read(1024 * 1024))
        with open(args.certificate, "rb") as handle:
            certificate = x509.load_pem_x509_certificate(handle.read(1024 * 1024))
        digest = digest_file(args.artifacts[0])["sha256"]
    except OSError as exc:
        raise usage_error(f"cannot read {exc.filename}: {exc.strerror}") from exc
    except ValueError as exc:
        raise usage_error(f"{args.certificate} is not a PEM certificate") from exc
    artifact = args.artifacts[0]
    print(f"looking up the log entry online at {context.rekor_url} (the only network step)",
          file=sys.stderr)
    try:
        bundle = bundle_from_detached(digest, signature, certificate, context.rekor_url)
        result = Verifier(context.trusted_root).verify_artifact(
            Artifact({"sha256": digest}), bundle, policy)
        outcome = Outcome(artifact, True, identity=result.identity, issuer=result.issuer,
                          log_index=result.log_index,
                          verified_time=result.to_json()["verified_time"])
    except Error as exc:
        outcome = Outcome(artifact, False, exc.code, exc.diagnostics(), exit_code=exc.exit_code)
    return _report([outcome], args)


def _report(outcomes: list[Any], args: Any) -> int:
    for outcome in outcomes:
        if args.json:
            print(json.dumps(outcome.to_json(), sort_keys=True))
        elif outcome.ok:
            who = (f"identity {outcome.identity} (issuer {outcome.issuer})" if outcome.identity
                   else f"key {outcome.key_id[:16] if outcome.key_id else '?'}")
            print(f"OK: {outcome.artifact}: signed by {who}, logged at index {outcome.log_index}, "
                  f"verified time {outcome.verified_time}")
        else:
            print(f"FAILED: {outcome.artifact}: {outcome.code}: {outcome.message}", file=sys.stderr)
    return max((o.exit_code if not o.ok else EXIT_OK) for o in outcomes)


def verify(args: Any) -> int:
    from sealtrail.batch import Pair, verify_many
    from sealtrail.trustroot import read_trusted_root_bytes

    policy = _policy_from_args(args)
    if args.signature:
        return _verify_detached(args, policy)
    _runtime.started("verify")  # what start-up made lives until exit (see cli/_runtime.py)
    if args.bundle and len(args.artifacts) != 1:
        raise usage_error("--bundle can be used with a single artifact only")
    pairs = []
    for artifact in args.artifacts:
        is_digest = artifact.startswith(DIGEST_PREFIXES) and not os.path.exists(artifact)
        if is_digest:
            if not args.bundle:
                raise usage_error(f"{artifact}: a digest needs --bundle")
            from sealtrail.verify.verifier import Artifact

            Artifact.from_digest(artifact)  # a malformed digest is a usage error, said once
        pairs.append(Pair(artifact, args.bundle or artifact + ".sigstore.json"))
    if args.instance:
        from sealtrail.trustroot.tuf_client import TrustStore

        root_json = TrustStore().trusted_root_bytes(args.instance)
    else:
        root_json = read_trusted_root_bytes(args.trusted_root,
                                            instance="staging" if args.staging else "production")
    outcomes = verify_many(pairs, root_json, policy, workers=args.jobs or None)
    return _report(outcomes, args)
