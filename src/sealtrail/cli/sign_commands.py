"""``sealtrail sign``, ``attest`` and ``generate-key-pair``: the signing side of the CLI.

Heavy modules are imported inside the functions, so the CLI starts fast.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from sealtrail.cli import _runtime
from sealtrail.cli._common import EXIT_OK, usage_error
from sealtrail.sign import DEFAULT_WORKERS, MAX_WORKERS  # light: the signer loads on first use

# Default output names: a signature bundle (`sign`) and an attestation (`attest`) never share
# one, so attesting a file does not replace (or get refused for) its signature bundle.
BUNDLE_SUFFIX = ".sigstore.json"
ATTESTATION_SUFFIX = ".intoto.sigstore.json"

def _add_signing_source(command: Any) -> None:
    """The flags that say where to sign (services + trusted root) and with what identity."""
    source = command.add_mutually_exclusive_group()
    source.add_argument("--trust-config", metavar="FILE",
                        help="client trust config (trusted root + signing config), as "
                             "`sigstore --trust-config` reads it")
    source.add_argument("--instance-dir", metavar="DIR",
                        help="a local instance made by `sealtrail init` (reads "
                             "DIR/trust/trust_config.json; mints a token from its built-in "
                             "issuer when that is enabled and no other token is found)")
    source.add_argument("--instance", metavar="NAME",
                        help="a packaged instance (public-good, public-good-staging, github) "
                             "or one added with `sealtrail trust add`: its newest verified "
                             "trust root and signing config")
    source.add_argument("--staging", action="store_true",
                        help="the public-good staging instance (default: public-good production)")
    command.add_argument("--identity-token", metavar="TOKEN",
                         help="OIDC identity token (else $SIGSTORE_ID_TOKEN, the CI's ambient "
                              "credentials (GitHub Actions, GitLab CI, Google Cloud, Buildkite, "
                              "CircleCI), an instance's built-in issuer, or a browser login "
                              "when at a terminal)")
    command.add_argument("--oidc-issuer", metavar="URL",
                         help="OIDC issuer for the interactive browser login (default: the "
                              "signing config's); used only at a terminal, never when $CI is "
                              "set")
    command.add_argument("--builtin-email", metavar="EMAIL",
                         help="with --instance-dir: the email the built-in issuer certifies "
                              "(default: $USER@localhost.localdomain)")
    command.add_argument("--key", metavar="KEY",
                         help="sign with this private key (from `sealtrail generate-key-pair`; "
                              "passphrase from $SEALTRAIL_PASSPHRASE or a prompt) instead of "
                              "keyless")
    command.add_argument("--rekor-version", type=int, choices=(1, 2),
                         help="log to a Rekor v1 or v2 log (default: the newest the signing "
                              "config offers)")
    command.add_argument("--overwrite", action="store_true",
                         help="replace existing output files")
    command.add_argument("--jobs", type=int, default=DEFAULT_WORKERS, metavar="N",
                         help=f"files in flight at once, each with its timestamp and log "
                              f"requests (default {DEFAULT_WORKERS}, at most {MAX_WORKERS})")


def add_parsers(commands: Any) -> None:
    sign = commands.add_parser(
        "sign", help="sign files (keyless or with --key): certificate, signature, timestamp, "
                     "log entry, verified bundle",
        description="Sign each FILE and write FILE.sigstore.json (and, with --detached, "
                    "cosign's FILE.sig and FILE.pem). Keyless signing gets one short-lived "
                    "certificate for all files; every bundle is verified against the trusted "
                    "root before it is written, no output appears until all are, and a "
                    "failure writes nothing.")
    sign.add_argument("files", nargs="+", metavar="FILE")
    sign.add_argument("--bundle", metavar="OUT", help="bundle path (only with a single FILE)")
    sign.add_argument("--detached", action="store_true",
                      help="also write FILE.sig (the signature, base64) and FILE.pem (the "
                           "certificate, PEM) beside each FILE, as cosign does (keyless); "
                           "logged to a Rekor v1 log, whose entry carries its signed time, so "
                           "that `sealtrail verify --signature` (or cosign) verifies the pair "
                           "alone")
    sign.add_argument("--output-signature", metavar="F.sig",
                      help="write the signature, base64, to F.sig (cosign's layout; single "
                           "FILE; implies --detached's Rekor v1 log)")
    sign.add_argument("--output-certificate", metavar="F.pem",
                      help="write the signing certificate, PEM, to F.pem (single FILE, "
                           "keyless; implies --detached's Rekor v1 log)")
    _add_signing_source(sign)

    attest = commands.add_parser(
        "attest", help="sign an in-toto statement about files (DSSE) and log it",
        description="Sign an in-toto statement whose subjects are the FILEs (with --predicate "
                    "and --predicate-type), or a ready statement (--statement). The bundle goes "
                    "to --bundle, else to FILE.intoto.sigstore.json for each FILE, else to "
                    "STATEMENT.intoto.sigstore.json: never the name of a signature bundle "
                    "(FILE.sigstore.json, from `sign`). `sealtrail verify FILE` finds it "
                    "there when FILE.sigstore.json does not exist.")
    attest.add_argument("files", nargs="*", metavar="FILE")
    attest.add_argument("--predicate", metavar="P.json", help="the predicate (a JSON object)")
    attest.add_argument("--predicate-type", metavar="URI", help="the predicate type URI")
    attest.add_argument("--statement", metavar="S.json",
                        help="sign this in-toto statement as it is (FILEs, if given, must be "
                             "among its subjects)")
    attest.add_argument("--bundle", metavar="OUT", help="bundle path")
    _add_signing_source(attest)

    keygen = commands.add_parser(
        "generate-key-pair", help="make an encrypted ECDSA P-256 signing key for `sign --key`",
        description="Write PREFIX.key (encrypted PKCS#8 PEM, mode 0600) and PREFIX.pub, as "
                    "cosign does: sealtrail.key and sealtrail.pub by default. With --output-key "
                    "KEY the public key is KEY with .key replaced by .pub (release.key -> "
                    "release.pub), or KEY.pub when KEY does not end in .key. The passphrase "
                    "comes from $SEALTRAIL_PASSPHRASE, else a prompt.")
    names = keygen.add_mutually_exclusive_group()
    names.add_argument("--output-key-prefix", metavar="PREFIX",
                       help="write PREFIX.key and PREFIX.pub (cosign's flag; default sealtrail)")
    names.add_argument("--output-key", metavar="KEY",
                       help="private key path; the public key is its .pub sibling")
    keygen.add_argument("--overwrite", action="store_true", help="replace existing key files")


def _read_small(path: str, what: str, limit: int = 16 * 1024 * 1024) -> bytes:
    from sealtrail._internal.keyfiles import read_bounded
    from sealtrail.errors import UsageError

    return read_bounded(path, limit, what=what, error=UsageError)


def _signing_context(args: Any, *, detached: bool = False) -> Any:
    """The services to sign with. ``detached`` (.sig/.pem outputs): a Rekor v1 log unless
    --rekor-version says otherwise, since a .sig/.pem pair carries no timestamp and only a
    v1 entry carries its own signed time."""
    if detached and args.rekor_version is None:
        from sealtrail.errors import UsageError

        try:
            return _signing_context_of_version(args, 1)
        except UsageError as exc:
            raise usage_error(
                "--detached needs a Rekor v1 log (a .sig/.pem pair carries no timestamp, and "
                f"only a v1 entry carries its signed time), and {exc.message}; publish the "
                "bundle instead") from exc
    if detached and args.rekor_version == 2:
        raise usage_error("--detached with --rekor-version 2: a Rekor v2 entry records no time "
                          "and a .sig/.pem pair carries no timestamp, so the pair could not be "
                          "verified alone; publish the bundle, or use --rekor-version 1")
    return _signing_context_of_version(args, args.rekor_version)


def _signing_context_of_version(args: Any, version: int | None) -> Any:
    from sealtrail.sign import SigningContext

    if args.trust_config or args.instance_dir:
        path = args.trust_config or os.path.join(args.instance_dir, "trust", "trust_config.json")
        return SigningContext.from_trust_config(_read_small(path, "trust config"), version)
    # --instance / --staging / the default (public-good): the newest verified trusted root
    # and its signing config, from one place (TUF cache or package), as `verify` picks them.
    from sealtrail.cli.trust_commands import signing_documents

    trusted_root, signing_config = signing_documents(args)
    return SigningContext.from_documents(trusted_root, signing_config, version)


def _passphrase(prompt: str, *, confirm: bool = False) -> bytes:
    value = os.environ.get("SEALTRAIL_PASSPHRASE")
    if value:
        return value.encode()
    if not sys.stdin.isatty():
        raise usage_error("set $SEALTRAIL_PASSPHRASE (no terminal to ask for the passphrase)")
    import getpass

    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("again: ") != first:
        raise usage_error("the passphrases differ")
    return first.encode()


def _builtin_issuer_source(args: Any) -> list[Any]:
    """With --instance-dir: the instance's built-in issuer, as a last token source."""
    from sealtrail.identity.tokens import TokenSource

    if not args.instance_dir:
        return []

    def fetch() -> tuple[str | None, str]:
        from sealtrail.server.instance import Instance

        instance = Instance(args.instance_dir)
        if not instance.config().builtin_issuer:
            return None, "not enabled on the instance"
        import getpass
        import re

        try:
            user = re.sub(r"[^A-Za-z0-9._+-]", "", getpass.getuser()).strip(".") or "signer"
        except (OSError, KeyError):  # no login name in this environment
            user = "signer"
        email = args.builtin_email or f"{user}@localhost.localdomain"
        return instance.builtin_issuer().mint_email(email), "minted"

    return [TokenSource("the instance's built-in issuer", fetch)]


def identity_token(args: Any, context: Any) -> Any:
    """The keyless signer's identity token, from the flags and the environment (say where
    from); shared by `sign`, `attest` and `release sign` (which reads its claims for the
    provenance)."""
    from sealtrail.identity.tokens import find_identity_token

    # Unread: its claims (and PyJWT, about 8 ms to load) are needed only if the CA refuses
    # it, to say why; the certificate line below names the identity it certifies.
    token, source = find_identity_token(
        args.identity_token, extra_sources=_builtin_issuer_source(args), read=False,
        oidc_issuer=getattr(args, "oidc_issuer", None) or getattr(context, "oidc_url", None))
    print(f"identity token from {source}", file=sys.stderr)
    return token


def _make_signer(args: Any, context: Any, token: Any = None) -> Any:
    """The signer the flags ask for; keyless with ``token`` when given (else found)."""
    if not 1 <= args.jobs <= MAX_WORKERS:  # before the CA is asked for anything
        raise usage_error(f"--jobs takes 1 to {MAX_WORKERS}")
    if args.key:
        if args.identity_token:
            raise usage_error("--key and --identity-token exclude each other")
        from sealtrail.sign import Signer
        from sealtrail.sign.keys import load_private_key

        key = load_private_key(_read_small(args.key, "key", 64 * 1024),
                               _passphrase(f"passphrase for {args.key}: "))
        return Signer(context, private_key=key, max_workers=args.jobs)
    from sealtrail.sign.certificate_request import CertificateRequest

    if token is None:
        token = identity_token(args, context)
    # Sent now, read by the signer: the CA works while the signer's modules load.
    request = CertificateRequest(context, token)
    from sealtrail.sign import Signer

    return Signer(context, certificate_request=request, max_workers=args.jobs)


def _announce(signer: Any) -> None:
    certificate = signer.certificate()
    if certificate is None:
        print("signing with key " + _key_id(signer.public_key_pem), file=sys.stderr)
        return
    identity = signer.identity
    print(f"certificate for {identity.san} (issuer {identity.issuer}), valid until "
          f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M:%S}Z; verified against the trusted "
          "root", file=sys.stderr)


def _key_id(public_pem: bytes) -> str:
    from sealtrail.crypto.keys import PublicKey

    return PublicKey.from_pem(public_pem).key_id.hex()[:16]


class _ProgressLines:
    """One line per signed file: what a CI log keeps."""

    def __init__(self, total: int, stream: Any) -> None:
        self.total, self.done, self._stream = total, 0, stream

    def __enter__(self) -> "_ProgressLines":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __call__(self, result: Any) -> None:
        self.done += 1
        # One write per line: print() writes the end of line separately, a second system
        # call per file on an unbuffered stream (PYTHONUNBUFFERED, as CI systems often set).
        self._stream.write(f"[{self.done}/{self.total}] signed {result.name} "
                           f"(log index {result.log_index})\n")


class _ProgressBar(_ProgressLines):
    """A progress bar (rich) for a person at a terminal, redrawn by rich's refresh thread
    (so the elapsed time moves while the services work)."""

    REFRESHES_PER_SECOND = 10

    def __init__(self, total: int, stream: Any) -> None:
        super().__init__(total, stream)
        # Imported here: about 45 ms, paid only at a terminal.
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn)

        self._bar = Progress(TextColumn("signing"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), console=Console(file=stream),
                             refresh_per_second=self.REFRESHES_PER_SECOND,
                             redirect_stdout=False, redirect_stderr=False)
        self._task = self._bar.add_task("signing", total=total)

    def __enter__(self) -> "_ProgressBar":
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()  # draws the last count and ends the refresh thread

    def __call__(self, result: Any) -> None:
        self.done += 1
        self._bar.advance(self._task)


def _progress(total: int, stream: Any = None) -> _ProgressLines:
    """How signing reports each file: a bar at a terminal (for more than one file), one line
    per file elsewhere."""
    stream = stream if stream is not None else sys.stderr
    try:
        interactive = stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError, OSError):  # a closed or replaced stream
        interactive = False
    return (_ProgressBar if interactive and total > 1 else _ProgressLines)(total, stream)


def _detached_paths(args: Any) -> dict[str, tuple[str | None, str | None]]:
    """FILE -> (signature path, certificate path) of the detached outputs asked for."""
    if args.detached:
        return {path: (args.output_signature or path + ".sig",
                       args.output_certificate or path + ".pem") for path in args.files}
    if args.output_signature or args.output_certificate:
        return {args.files[0]: (args.output_signature, args.output_certificate)}
    return {}


def sign(args: Any) -> int:
    from sealtrail.sign.outputs import StagedOutputs

    single = len(args.files) == 1
    for flag in ("bundle", "output_signature", "output_certificate"):
        if getattr(args, flag) and not single:
            raise usage_error(f"--{flag.replace('_', '-')} can be used with a single FILE only"
                              + ("; --detached writes FILE.sig and FILE.pem beside each FILE"
                                 if flag != "bundle" else ""))
    if args.key and (args.output_certificate or args.detached):
        raise usage_error("--detached and --output-certificate need keyless signing (there is "
                          "no certificate with --key)")
    for path in args.files:
        if not os.path.isfile(path):
            raise usage_error(f"{path} is not a file")
    bundles = {path: args.bundle or path + BUNDLE_SUFFIX for path in args.files}
    detached = _detached_paths(args)
    with StagedOutputs(overwrite=args.overwrite) as outputs:
        # Checked before any service is asked: a doomed run spends no log entries.
        outputs.plan([bundles[path] for path in args.files]  # a file named twice is refused
                     + [p for pair in detached.values() for p in pair if p])
        context = _signing_context(args, detached=bool(detached))
        progress = _progress(len(args.files))

        def done(result: Any) -> None:
            # Staged as each file is verified (a temporary beside its target), so that
            # writing overlaps the rest of the run; nothing is moved into place until
            # every file is done.
            outputs.put(bundles[result.name], result.bundle_json())
            signature_path, certificate_path = detached.get(result.name, (None, None))
            if signature_path:
                import base64

                outputs.put(signature_path, base64.b64encode(result.signature))
            if certificate_path:
                from cryptography.hazmat.primitives.serialization import Encoding

                outputs.put(certificate_path, result.certificate.public_bytes(Encoding.PEM))
            progress(result)

        with _make_signer(args, context) as signer:
            _announce(signer)
            _runtime.started("sign")  # after the certificate: start-up's objects stay frozen
            with progress:
                results = signer.sign_many([(path, None) for path in args.files],
                                           on_done=done)
        written = outputs.commit()
    print(f"signed {len(results)} file(s); wrote {', '.join(written[:3])}"
          + (f" and {len(written) - 3} more" if len(written) > 3 else ""))
    return EXIT_OK


def attest(args: Any) -> int:
    from sealtrail.sign import hash_file
    from sealtrail.sign.outputs import StagedOutputs
    from sealtrail.sign.statement import build_statement, check_statement

    if args.statement and (args.predicate or args.predicate_type):
        raise usage_error("give --statement, or --predicate with --predicate-type, not both")
    if not args.statement and not (args.predicate and args.predicate_type):
        raise usage_error("give --predicate and --predicate-type (or --statement)")
    if not args.statement and not args.files:
        raise usage_error("give the FILEs the statement is about")
    for path in args.files:
        if not os.path.isfile(path):
            raise usage_error(f"{path} is not a file")
    digests = [(path, hash_file(path)) for path in args.files]
    if args.statement:
        payload = _read_small(args.statement, "statement")
        statement = check_statement(payload)
        for path, digest in digests:
            if statement.subject_matching({"sha256": digest}) is None:
                from sealtrail.errors import SubjectMismatchError

                raise SubjectMismatchError(f"{path} is not a subject of the statement",
                                           actual=f"sha256:{digest.hex()}")
        name = args.statement
    else:
        try:
            predicate = json.loads(_read_small(args.predicate, "predicate"))
        except ValueError as exc:
            raise usage_error(f"the predicate {args.predicate} is not JSON: {exc}") from exc
        payload = build_statement([(os.path.basename(p), d) for p, d in digests],
                                  args.predicate_type, predicate)
        check_statement(payload)
        name = ", ".join(p for p, _ in digests[:3]) + (" ..." if len(digests) > 3 else "")
    if args.bundle:
        bundles = [args.bundle]
    elif args.files:
        bundles = [path + ATTESTATION_SUFFIX for path in args.files]
    else:
        bundles = [args.statement + ATTESTATION_SUFFIX]
    with StagedOutputs(overwrite=args.overwrite) as outputs:
        outputs.plan(bundles)
        context = _signing_context(args)
        with _make_signer(args, context) as signer:
            _announce(signer)
            _runtime.started("attest")
            result = signer.sign_statement(payload, name)
        print(f"attested {name} (log index {result.log_index})", file=sys.stderr)
        for bundle in bundles:
            outputs.put(bundle, result.bundle_json())
        written = outputs.commit()
    print(f"wrote {', '.join(written)}")
    return EXIT_OK


def generate_key_pair(args: Any) -> int:
    from sealtrail.sign.keys import generate_key_pair
    from sealtrail.sign.outputs import StagedOutputs

    _runtime.started("generate-key-pair")
    # cosign's naming (its users bring scripts that expect it): PREFIX.key / PREFIX.pub.
    if args.output_key is not None:
        private_path = args.output_key
        base = private_path[:-len(".key")] if private_path.endswith(".key") else private_path
    else:
        base = args.output_key_prefix or "sealtrail"
        private_path = base + ".key"
    public_path = base + ".pub"
    with StagedOutputs(overwrite=args.overwrite) as outputs:
        outputs.plan([private_path, public_path])
        private, public = generate_key_pair(_passphrase("passphrase for the new key: ",
                                                        confirm=True))
        outputs.put(private_path, private, mode=0o600)
        outputs.put(public_path, public)
        outputs.commit()
    print(f"wrote {private_path} (encrypted, mode 0600) and {public_path} "
          f"(key id {_key_id(public)})")
    return EXIT_OK
