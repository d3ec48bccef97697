"""``sealtrail-conformance``: the sigstore-conformance CLI protocol.

``verify-bundle --bundle B (--certificate-identity I --certificate-oidc-issuer U | --key K)
[--trusted-root T] (ARTIFACT | sha256:HEX)``. Exit 0 means verified.
``sign-bundle [--in-toto] --identity-token T --bundle B [--trusted-root R --signing-config C]
FILE``: sign FILE (with --in-toto, the in-toto statement in FILE, as DSSE). Exit 0 means
the bundle was written (after verifying it).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

from sealtrail.cli._common import EXIT_OK, ArgumentParser


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
    sign = commands.add_parser("sign-bundle")
    sign.add_argument("--identity-token", required=True)
    sign.add_argument("--bundle", required=True)
    sign.add_argument("--trusted-root")
    sign.add_argument("--signing-config")
    sign.add_argument("--staging", action="store_true")
    sign.add_argument("--in-toto", action="store_true",
                      help="FILE is an in-toto statement, signed as a DSSE envelope")
    sign.add_argument("file")
    return parser


def _outcome(action: Callable[[], str]) -> int:
    """Run ``action``; print its success line, or the error code and reason (exit 1, 2 or 3:
    the error's own exit code, as ``sealtrail`` uses)."""
    from sealtrail.errors import Error, from_os_error

    try:
        message = action()
    except (Error, OSError) as caught:
        exc = caught if isinstance(caught, Error) else from_os_error(caught)
        print(f"{exc.code}: {exc.diagnostics()}", file=sys.stderr)
        return exc.exit_code
    print(message)
    return EXIT_OK


def _sign_bundle(args: argparse.Namespace) -> str:
    """``sign-bundle [--in-toto] --identity-token T --bundle B [--trusted-root R
    --signing-config C] FILE``: sign FILE (or the statement in FILE) and write bundle B.

    Without --trusted-root/--signing-config the public-good instance is used.
    """
    from sealtrail._internal.keyfiles import write_atomic
    from sealtrail.errors import UsageError

    trusted_root, signing_config = args.trusted_root, args.signing_config
    if (trusted_root is None) != (signing_config is None):
        raise UsageError("give both --trusted-root and --signing-config, or neither")
    if trusted_root is None:
        from sealtrail.trustroot import packaged_path

        instance = "staging" if args.staging else "production"
        trusted_root = packaged_path(instance, "trusted_root.json")
        signing_config = packaged_path(instance, "signing_config.v0.2.json")
    from sealtrail.sign import Signer, SigningContext
    from sealtrail.sign.statement import check_statement

    limit = 16 * 1024 * 1024
    with open(trusted_root, "rb") as handle:
        root_json = handle.read(limit + 1)
    with open(signing_config, "rb") as handle:
        config_json = handle.read(limit + 1)
    context = SigningContext.from_documents(root_json, config_json)
    path = args.file
    with Signer(context, identity_token=args.identity_token) as signer:
        if args.in_toto:
            with open(path, "rb") as handle:
                payload = handle.read(limit + 1)
            check_statement(payload)
            result = signer.sign_statement(payload, path)
        else:
            result = signer.sign_file(path)
    write_atomic(args.bundle, result.bundle_json())
    return f"OK: log index {result.log_index}"


def _verify_bundle(args: argparse.Namespace) -> str:
    """``verify-bundle``: verify ARTIFACT (or sha256:HEX) against bundle B."""
    from sealtrail._internal.files import digest_file
    from sealtrail.batch import read_bundle
    from sealtrail.errors import UsageError
    from sealtrail.trustroot import load_trusted_root
    from sealtrail.verify.policy import IdentityPolicy, KeyPolicy
    from sealtrail.verify.verifier import Artifact, Verifier

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
    return "OK"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = _build_parser().parse_args(argv)
    if args.command == "sign-bundle":
        return _outcome(lambda: _sign_bundle(args))
    return _outcome(lambda: _verify_bundle(args))


def run() -> None:
    """Console-script wrapper."""
    sys.exit(main())


if __name__ == "__main__":
    run()
