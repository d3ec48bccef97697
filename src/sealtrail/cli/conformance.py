"""``sealtrail-conformance``: the sigstore-conformance CLI protocol.

Only verification is implemented for now:
``verify-bundle --bundle B (--certificate-identity I --certificate-oidc-issuer U | --key K)
[--trusted-root T] (ARTIFACT | sha256:HEX)``. Exit 0 means verified.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

from sealtrail.cli._common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, ArgumentParser


def _build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="sealtrail-conformance")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    verify = commands.add_parser("verify-bundle")
    verify.add_argument("--bundle", required=True)
    verify.add_argument("--certificate-identity")
    verify.add_argument("--certificate-oidc-issuer")
    verify.add_argument("--key")
    verify.add_argument("--trusted-root")
    verify.add_argument("artifact")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = _build_parser().parse_args(argv)
    from sealtrail.batch import read_bundle
    from sealtrail.errors import Error, UsageError
    from sealtrail.trust import load_trusted_root
    from sealtrail.verify.policy import IdentityPolicy, KeyPolicy
    from sealtrail.verify.verifier import Artifact, Verifier
    from sealtrail.batch import digest_file

    try:
        if args.key:
            with open(args.key, "rb") as handle:
                policy: IdentityPolicy | KeyPolicy = KeyPolicy(handle.read(1024 * 1024))
        elif args.certificate_identity and args.certificate_oidc_issuer:
            policy = IdentityPolicy(identity=args.certificate_identity,
                                    issuer=args.certificate_oidc_issuer)
        else:
            raise UsageError("give --certificate-identity and --certificate-oidc-issuer, or --key")
        verifier = Verifier(load_trusted_root(args.trusted_root))
        bundle = read_bundle(args.bundle)
        if args.artifact.startswith("sha256:") and not os.path.exists(args.artifact):
            artifact = Artifact.from_digest(args.artifact)
        else:
            artifact = Artifact(digest_file(args.artifact, verifier.required_digests(bundle)))
        verifier.verify_artifact(artifact, bundle, policy)
    except Error as exc:
        print(f"{exc.code}: {exc.diagnostics()}", file=sys.stderr)
        return EXIT_FAILED if exc.exit_code == EXIT_FAILED else EXIT_USAGE
    except OSError as exc:
        print(f"INPUT_INVALID: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print("OK")
    return EXIT_OK


def run() -> None:
    """Console-script wrapper."""
    sys.exit(main())


if __name__ == "__main__":
    run()
