"""``sealtrail``: the command line.

Exit codes: 0 verified / ok, 1 verification failed, 2 usage or input error.
Heavy modules are imported inside the command functions, so ``sealtrail --help`` is instant.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from typing import Any, Sequence

from sealtrail.cli._common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, ArgumentParser

# cosign's flag names for the GitHub workflow claims, mapped to Fulcio extension names.
GITHUB_EXTENSION_FLAGS = {
    "cert_github_workflow_repository": "github_workflow_repository",
    "cert_github_workflow_ref": "github_workflow_ref",
    "cert_github_workflow_sha": "github_workflow_sha",
    "cert_github_workflow_trigger": "github_workflow_trigger",
    "cert_github_workflow_name": "github_workflow_name",
}
DIGEST_PREFIXES = ("sha256:", "sha384:", "sha512:")


def _build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="sealtrail", description="Sign releases and verify them, offline.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    # An explicit prog spares argparse a help formatter (and its shutil import) at start-up.
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", prog="sealtrail",
                                     parser_class=ArgumentParser)

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

    log = commands.add_parser("log", help="run transparency logs (Rekor v1 and v2 APIs)")
    log_commands = log.add_subparsers(dest="log_command", metavar="COMMAND", prog="sealtrail log",
                                      parser_class=ArgumentParser)
    serve = log_commands.add_parser(
        "serve", help="serve the logs of DIR over HTTP (creates DIR with fresh keys if needed)")
    serve.add_argument("directory", metavar="DIR")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default 127.0.0.1: loopback only)")
    serve.add_argument("--port", type=int, default=3000, help="port (0 picks a free one)")
    serve.add_argument("--port-file", metavar="FILE", help="write the bound port to FILE")
    serve.add_argument("--origin-host", metavar="NAME",
                       help="log name in checkpoints when DIR is created (default: --host)")
    rollover = log_commands.add_parser(
        "rollover", help="freeze the active log of an API version and start a new shard "
                         "(run while the server is stopped)")
    rollover.add_argument("directory", metavar="DIR")
    rollover.add_argument("--api", type=int, choices=(1, 2), required=True,
                          help="which log to roll over: Rekor v1 or v2")
    tlogs = log_commands.add_parser(
        "tlogs", help="print trusted_root.json 'tlogs' entries for the logs of DIR")
    tlogs.add_argument("directory", metavar="DIR")
    tlogs.add_argument("--base-url", required=True, metavar="URL",
                       help="the URL clients use to reach the server")

    trust = commands.add_parser("trust", help="manage the trust roots of Sigstore instances (TUF)")
    trust_commands = trust.add_subparsers(dest="trust_command", metavar="COMMAND",
                                          prog="sealtrail trust", parser_class=ArgumentParser)
    trust_add = trust_commands.add_parser(
        "add", help="bootstrap an instance from its TUF repository and a pinned root.json")
    trust_add.add_argument("name", metavar="NAME")
    trust_add.add_argument("url", metavar="URL", help="the instance's TUF repository URL")
    trust_add.add_argument("--root", required=True, metavar="root.json",
                           help="the root.json to pin (obtained out of band)")
    trust_update = trust_commands.add_parser(
        "update", help="refresh trust roots over the network (all, or NAME)")
    trust_update.add_argument("name", nargs="?", metavar="NAME")
    trust_show = trust_commands.add_parser("show", help="show cached trust roots and their age")
    trust_show.add_argument("name", nargs="?", metavar="NAME")
    trust_show.add_argument("--json", action="store_true")

    init = commands.add_parser("init", help="create a self-hosted instance in DIR (keys, CA, TSA, "
                                            "logs, trust root, TUF repository)")
    init.add_argument("directory", metavar="DIR")
    init.add_argument("--host", default="127.0.0.1", help="address `serve` binds (default loopback)")
    init.add_argument("--port", type=int, default=8080, help="port `serve` listens on (default 8080)")
    init.add_argument("--public-url", metavar="URL",
                      help="URL clients use (default http://HOST:PORT); it goes into the trust root")
    init.add_argument("--builtin-issuer", action="store_true",
                      help="enable the built-in OIDC issuer (local and test use)")
    init.add_argument("--no-github-actions", action="store_true",
                      help="do not trust GitHub Actions' OIDC issuer")
    init.add_argument("--encrypt-keys", action="store_true",
                      help="encrypt private keys with the passphrase in $SEALTRAIL_PASSPHRASE")

    serve_all = commands.add_parser("serve", help="serve an instance (CA, TSA, logs, OIDC, TUF)")
    serve_all.add_argument("directory", metavar="DIR")
    serve_all.add_argument("--port-file", metavar="FILE", help="write the bound port to FILE")

    token = commands.add_parser("token", help="mint an identity token from an instance's "
                                              "built-in OIDC issuer")
    token.add_argument("kind", choices=("email", "github"), help="identity kind")
    token.add_argument("subject", nargs="?", help="the email address (kind email)")
    token.add_argument("--instance", required=True, metavar="DIR", help="the instance directory")
    token.add_argument("--repository", help="owner/name (kind github)")
    token.add_argument("--workflow", default=".github/workflows/release.yml",
                       help="workflow file path (kind github)")
    token.add_argument("--ref", default="refs/heads/main", help="git ref (kind github)")
    token.add_argument("--sha", default="0" * 40, help="commit SHA (kind github)")
    token.add_argument("--event", default="push", help="triggering event (kind github)")

    rotate = commands.add_parser("rotate", help="rotate an instance's CA or log key and publish "
                                                "the new trust root through TUF (stop serve first)")
    rotate.add_argument("what", choices=("ca", "log"))
    rotate.add_argument("directory", metavar="DIR")
    rotate.add_argument("--api", type=int, choices=(1, 2), default=1,
                        help="which log to rotate (with `log`): Rekor v1 or v2")

    _add_signing_commands(commands)

    ca = commands.add_parser("ca", help="certificate authority tools")
    ca_commands = ca.add_subparsers(dest="ca_command", metavar="COMMAND", prog="sealtrail ca",
                                    parser_class=ArgumentParser)
    dry_run = ca_commands.add_parser("dry-run", help="show the certificate a token would get, or why not")
    dry_run.add_argument("token", metavar="TOKEN", help="the identity token (or - to read stdin)")
    dry_run.add_argument("--instance", required=True, metavar="DIR")
    return parser


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
                        help="an instance added with `sealtrail trust add` (cached trust root "
                             "and signing config)")
    source.add_argument("--staging", action="store_true",
                        help="the public-good staging instance (default: public-good production)")
    command.add_argument("--identity-token", metavar="TOKEN",
                         help="OIDC identity token (else $SIGSTORE_ID_TOKEN, GitHub Actions or "
                              "GitLab CI credentials, an instance's built-in issuer, or a "
                              "browser login when at a terminal)")
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
    command.add_argument("--jobs", type=int, default=16, metavar="N",
                         help="log submissions in flight at once (default 16)")


def _add_signing_commands(commands: Any) -> None:
    sign = commands.add_parser(
        "sign", help="sign files (keyless or with --key): certificate, signature, timestamp, "
                     "log entry, verified bundle",
        description="Sign each FILE and write FILE.sigstore.json. Keyless signing gets one "
                    "short-lived certificate for all files; every bundle is verified against "
                    "the trusted root before anything is written, and a failure writes nothing.")
    sign.add_argument("files", nargs="+", metavar="FILE")
    sign.add_argument("--bundle", metavar="OUT", help="bundle path (only with a single FILE)")
    sign.add_argument("--output-signature", metavar="F.sig",
                      help="also write the signature, base64 (cosign layout; single FILE)")
    sign.add_argument("--output-certificate", metavar="F.pem",
                      help="also write the signing certificate, PEM (single FILE, keyless)")
    _add_signing_source(sign)

    attest = commands.add_parser(
        "attest", help="sign an in-toto statement about files (DSSE) and log it",
        description="Sign an in-toto statement whose subjects are the FILEs (with --predicate "
                    "and --predicate-type), or a ready statement (--statement). The bundle goes "
                    "to --bundle, else to FILE.sigstore.json for each FILE, else to "
                    "STATEMENT.sigstore.json.")
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
        description="Write KEY (encrypted PKCS#8 PEM, mode 0600) and KEY.pub. The passphrase "
                    "comes from $SEALTRAIL_PASSPHRASE, else a prompt.")
    keygen.add_argument("--output-key", metavar="KEY", default="sealtrail.key",
                        help="private key path (default sealtrail.key; public key beside it "
                             "with .pub)")
    keygen.add_argument("--overwrite", action="store_true", help="replace existing key files")


_PUBLIC_GOOD = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "data", "public-good")


def _read_small(path: str, what: str, limit: int = 16 * 1024 * 1024) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise _usage(f"cannot read {what} {path}: {exc.strerror}") from exc
    if len(data) > limit:
        raise _usage(f"{what} {path} is too large")
    return data


def _skip_httpx_cli() -> None:
    """httpx imports its own command line (click and rich, about 60 ms) whenever those happen
    to be installed; sealtrail never runs it. Marking the module absent makes httpx fall back
    to its built-in stub, as it does when they are not installed."""
    if "httpx" not in sys.modules:
        sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]


def _signing_context(args: Any) -> Any:
    _skip_httpx_cli()
    from sealtrail.sign import SigningContext

    version = args.rekor_version
    if args.trust_config or args.instance_dir:
        path = args.trust_config or os.path.join(args.instance_dir, "trust", "trust_config.json")
        return SigningContext.from_trust_config(_read_small(path, "trust config"), version)
    if args.instance:
        from sealtrail.trust.tuf_client import TrustStore

        store = TrustStore()
        return SigningContext.from_documents(store.trusted_root_bytes(args.instance),
                                             store.signing_config_bytes(args.instance), version)
    directory = os.path.join(_PUBLIC_GOOD, "staging" if args.staging else "production")
    return SigningContext.from_documents(
        _read_small(os.path.join(directory, "trusted_root.json"), "trusted root"),
        _read_small(os.path.join(directory, "signing_config.v0.2.json"), "signing config"),
        version)


def _passphrase(prompt: str, *, confirm: bool = False) -> bytes:
    value = os.environ.get("SEALTRAIL_PASSPHRASE")
    if value:
        return value.encode()
    if not sys.stdin.isatty():
        raise _usage("set $SEALTRAIL_PASSPHRASE (no terminal to ask for the passphrase)")
    import getpass

    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("again: ") != first:
        raise _usage("the passphrases differ")
    return first.encode()


def _builtin_issuer_source(args: Any) -> list[Any]:
    """With --instance-dir: the instance's built-in issuer, as a last token source."""
    from sealtrail.transport.oidc import TokenSource

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


def _make_signer(args: Any, context: Any) -> Any:
    from sealtrail.sign import Signer

    if args.key:
        if args.identity_token:
            raise _usage("--key and --identity-token exclude each other")
        from sealtrail.sign.keys import load_private_key

        key = load_private_key(_read_small(args.key, "key", 64 * 1024),
                               _passphrase(f"passphrase for {args.key}: "))
        return Signer(context, private_key=key, max_workers=args.jobs)
    from datetime import datetime, timezone

    from sealtrail.transport.oidc import find_identity_token

    token, source = find_identity_token(
        args.identity_token, now=datetime.now(timezone.utc),
        extra_sources=_builtin_issuer_source(args),
        oidc_issuer=getattr(args, "oidc_issuer", None) or getattr(context, "oidc_url", None))
    print(f"identity token from {source}: {token.identity} (issuer {token.issuer})",
          file=sys.stderr)
    return Signer(context, identity_token=token, max_workers=args.jobs)


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


def _progress(total: int) -> Any:
    done = [0]

    def report(result: Any) -> None:
        done[0] += 1
        print(f"[{done[0]}/{total}] signed {result.name} (log index {result.log_index})",
              file=sys.stderr)

    return report


def _sign(args: Any) -> int:
    _skip_httpx_cli()
    from sealtrail.sign.outputs import StagedOutputs

    single = len(args.files) == 1
    for flag in ("bundle", "output_signature", "output_certificate"):
        if getattr(args, flag) and not single:
            raise _usage(f"--{flag.replace('_', '-')} can be used with a single FILE only")
    if args.key and args.output_certificate:
        raise _usage("--output-certificate needs keyless signing (there is no certificate "
                     "with --key)")
    for path in args.files:
        if not os.path.isfile(path):
            raise _usage(f"{path} is not a file")
    bundles = [args.bundle or path + ".sigstore.json" for path in args.files]
    outputs = StagedOutputs(overwrite=args.overwrite)
    # Checked before any service is asked: a doomed run spends no log entries.
    outputs.plan(bundles + [p for p in (args.output_signature, args.output_certificate) if p])
    context = _signing_context(args)
    with _make_signer(args, context) as signer:
        _announce(signer)
        results = signer.sign_many([(path, None) for path in args.files],
                                    on_done=_progress(len(args.files)))
    import base64

    from cryptography.hazmat.primitives.serialization import Encoding

    for result, bundle in zip(results, bundles):
        outputs.put(bundle, result.bundle_json())
    if args.output_signature:
        outputs.put(args.output_signature, base64.b64encode(results[0].signature))
    if args.output_certificate:
        outputs.put(args.output_certificate, results[0].certificate.public_bytes(Encoding.PEM))
    written = outputs.commit()
    print(f"signed {len(results)} file(s); wrote {', '.join(written[:3])}"
          + (f" and {len(written) - 3} more" if len(written) > 3 else ""))
    return EXIT_OK


def _attest(args: Any) -> int:
    _skip_httpx_cli()
    from sealtrail.sign import hash_file
    from sealtrail.sign.outputs import StagedOutputs
    from sealtrail.sign.statement import build_statement, check_statement

    if args.statement and (args.predicate or args.predicate_type):
        raise _usage("give --statement, or --predicate with --predicate-type, not both")
    if not args.statement and not (args.predicate and args.predicate_type):
        raise _usage("give --predicate and --predicate-type (or --statement)")
    if not args.statement and not args.files:
        raise _usage("give the FILEs the statement is about")
    for path in args.files:
        if not os.path.isfile(path):
            raise _usage(f"{path} is not a file")
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
            raise _usage(f"the predicate {args.predicate} is not JSON: {exc}") from exc
        payload = build_statement([(os.path.basename(p), d) for p, d in digests],
                                  args.predicate_type, predicate)
        check_statement(payload)
        name = ", ".join(p for p, _ in digests[:3]) + (" ..." if len(digests) > 3 else "")
    if args.bundle:
        bundles = [args.bundle]
    elif args.files:
        bundles = [path + ".sigstore.json" for path in args.files]
    else:
        bundles = [args.statement + ".sigstore.json"]
    outputs = StagedOutputs(overwrite=args.overwrite)
    outputs.plan(bundles)
    context = _signing_context(args)
    with _make_signer(args, context) as signer:
        _announce(signer)
        result = signer.sign_statement(payload, name)
    print(f"attested {name} (log index {result.log_index})", file=sys.stderr)
    for bundle in bundles:
        outputs.put(bundle, result.bundle_json())
    written = outputs.commit()
    print(f"wrote {', '.join(written)}")
    return EXIT_OK


def _generate_key_pair(args: Any) -> int:
    _skip_httpx_cli()
    from sealtrail.sign.keys import generate_key_pair
    from sealtrail.sign.outputs import StagedOutputs

    private_path = args.output_key
    base = private_path[:-4] if private_path.endswith(".key") else private_path
    public_path = base + ".pub"
    outputs = StagedOutputs(overwrite=args.overwrite)
    outputs.plan([private_path, public_path])
    private, public = generate_key_pair(_passphrase("passphrase for the new key: ", confirm=True))
    outputs.put(private_path, private, mode=0o600)
    outputs.put(public_path, public)
    outputs.commit()
    print(f"wrote {private_path} (encrypted, mode 0600) and {public_path} "
          f"(key id {_key_id(public)})")
    return EXIT_OK


def _trust(args: Any) -> int:
    from sealtrail.trust.tuf_client import TrustStore

    store = TrustStore()
    if args.trust_command == "add":
        try:
            with open(args.root, "rb") as handle:
                root = handle.read(1024 * 1024)
        except OSError as exc:
            raise _usage(f"cannot read {args.root}: {exc.strerror}") from exc
        info = store.add(args.name, args.url, root)
        print(f"added {info.name} ({info.url}): root version {info.root_version}")
        return EXIT_OK
    names = [args.name] if args.name else list(store.instances())
    if args.trust_command == "update":
        for name in names:
            info = store.update(name)
            print(f"updated {name}: root v{info.root_version}, targets "
                  f"{', '.join(sorted(info.targets)) or 'none'}")
        return EXIT_OK
    if args.trust_command == "show":
        from datetime import datetime, timezone

        now = datetime.now(timezone.utc)
        for name in names:
            info = store.show(name, now=now)
            if args.json:
                print(json.dumps({
                    "name": info.name, "url": info.url, "builtin": info.builtin,
                    "root_version": info.root_version,
                    "last_updated": info.last_updated.isoformat() if info.last_updated else None,
                    "age_seconds": int(info.age.total_seconds()) if info.age else None,
                    "expired_roles": list(info.expired_roles(now)),
                    "roles": {r: {"version": v.version, "expires": v.expires.isoformat()}
                              for r, v in info.roles.items()}}, sort_keys=True))
                continue
            age = (f"updated {int(info.age.total_seconds() // 3600)} h ago" if info.age is not None
                   else "never updated (only the pinned root)")
            expired = info.expired_roles(now)
            print(f"{info.name}: {info.url} root v{info.root_version}, {age}"
                  + (f"; EXPIRED: {', '.join(expired)}" if expired else ""))
        return EXIT_OK
    raise _usage("give a trust command: add, update or show")


def _passphrase_for_init(args: Any) -> bytes | None:
    if not args.encrypt_keys:
        return None
    value = os.environ.get("SEALTRAIL_PASSPHRASE")
    if not value:
        raise _usage("--encrypt-keys needs the passphrase in $SEALTRAIL_PASSPHRASE")
    return value.encode()


def _instance_commands(args: Any) -> int:
    import logging

    from sealtrail.server.instance import Instance

    if args.command == "init":
        instance = Instance.init(args.directory, public_url=args.public_url, host=args.host,
                                 port=args.port, builtin_issuer=args.builtin_issuer,
                                 github_actions=not args.no_github_actions,
                                 passphrase=_passphrase_for_init(args))
        config = instance.config()
        print(f"created instance {instance.directory} for {config.public_url}")
        print(f"  client trust config: {instance.path('trust', 'trust_config.json')}")
        print(f"  TUF root:            {instance.path('tuf', 'metadata', '1.root.json')}")
        print(f"serve it with: sealtrail serve {args.directory}")
        return EXIT_OK
    if args.command == "rotate":
        instance = Instance(args.directory)
        version = instance.rotate_ca() if args.what == "ca" else instance.rotate_log(args.api)
        print(f"rotated the {'CA' if args.what == 'ca' else f'Rekor v{args.api} log'} key; "
              f"published trust root as TUF targets version {version}")
        return EXIT_OK
    instance = Instance(args.directory if args.command == "serve" else args.instance)
    if args.command == "serve":
        from sealtrail.server.run import serve

        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
        config = instance.config()
        serve(instance.build_app(), host=config.host, port=config.port, port_file=args.port_file)
        return EXIT_OK
    if args.command == "token":
        issuer = instance.builtin_issuer(args.kind)
        if args.kind == "email":
            if not args.subject:
                raise _usage("give the email address: sealtrail token email ADDRESS --instance DIR")
            print(issuer.mint_email(args.subject))
        else:
            if not args.repository:
                raise _usage("give --repository owner/name")
            print(issuer.mint_github_workflow(repository=args.repository,
                                              workflow_path=args.workflow, ref=args.ref,
                                              sha=args.sha, event_name=args.event))
        return EXIT_OK
    if args.command == "ca":
        return _ca_dry_run(instance, args)
    raise _usage("unknown command")


def _ca_dry_run(instance: Any, args: Any) -> int:
    from cryptography.hazmat.primitives import serialization

    from sealtrail.ca.tokens import TokenVerifier

    if args.ca_command != "dry-run":
        raise _usage("give a ca command: dry-run")
    token = sys.stdin.read(1024 * 1024).strip() if args.token == "-" else args.token
    issuers, fetch_json, _ = instance.token_issuers()
    principal = TokenVerifier(issuers, fetch_json).verify(token)
    leaf = instance.certificate_authority().dry_run(principal)
    print(json.dumps(principal.to_json(), indent=2))
    print(leaf.public_bytes(serialization.Encoding.PEM).decode(), end="")
    return EXIT_OK


def _log(args: Any) -> int:
    import logging

    from sealtrail.server.log_instance import LogDirectory

    directory = LogDirectory(args.directory)
    if args.log_command == "tlogs":
        print(json.dumps(directory.trusted_root_tlogs(args.base_url), indent=2))
        return EXIT_OK
    if args.log_command == "rollover":
        new = directory.rollover(args.api)
        print(f"froze the active Rekor v{args.api} log; new shard {new.name!r}"
              + (f" starts at global index {new.index_offset}" if args.api == 1 else ""))
        return EXIT_OK
    if args.log_command != "serve":
        raise _usage("give a log command: serve, rollover or tlogs")
    from sealtrail.server.log_api import build_log_app
    from sealtrail.server.run import serve

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    if not os.path.exists(directory.config_path):
        directory.create(args.origin_host or args.host)
    serve(build_log_app(directory.open()), host=args.host, port=args.port,
          port_file=args.port_file)
    return EXIT_OK


def _policy_from_args(args: Any) -> Any:
    from sealtrail.verify.policy import IdentityPolicy, KeyPolicy

    identity_given = args.certificate_identity or args.certificate_identity_regexp
    issuer_given = args.certificate_oidc_issuer or args.certificate_oidc_issuer_regexp
    extensions = {name: getattr(args, flag) for flag, name in GITHUB_EXTENSION_FLAGS.items()
                  if getattr(args, flag) is not None}
    if args.key:
        if identity_given or issuer_given or extensions:
            raise _usage("--key cannot be combined with certificate identity flags")
        try:
            with open(args.key, "rb") as handle:
                pem = handle.read(1024 * 1024)
        except OSError as exc:
            raise _usage(f"cannot read key {args.key}: {exc.strerror}") from exc
        return KeyPolicy(pem)
    if not identity_given or not issuer_given:
        raise _usage("give --certificate-identity (or -regexp) and --certificate-oidc-issuer "
                     "(or -regexp), or --key")
    return IdentityPolicy(identity=args.certificate_identity,
                          identity_regexp=args.certificate_identity_regexp,
                          issuer=args.certificate_oidc_issuer,
                          issuer_regexp=args.certificate_oidc_issuer_regexp,
                          extensions=extensions)


def _usage(message: str) -> Exception:
    from sealtrail.errors import UsageError

    return UsageError(message)


def _verify_detached(args: Any, policy: Any) -> int:
    """`verify --signature F.sig --certificate F.pem ARTIFACT`: one online look-up, then offline."""
    from cryptography import x509

    from sealtrail.batch import Outcome
    from sealtrail.errors import Error
    from sealtrail.sign.context import SigningContext
    from sealtrail.sign.detached import bundle_from_detached, read_detached_signature, sha256_file
    from sealtrail.verify.verifier import Artifact, Verifier

    if len(args.artifacts) != 1 or not args.certificate:
        raise _usage("--signature takes a single ARTIFACT and --certificate")
    config_path = args.trust_config or (os.path.join(args.instance_dir, "trust", "trust_config.json")
                                        if args.instance_dir else None)
    if config_path is None:
        raise _usage("--signature needs --trust-config or --instance-dir to find the log")
    try:
        with open(config_path, "rb") as handle:
            context = SigningContext.from_trust_config(handle.read(16 * 1024 * 1024), rekor_version=1)
        with open(args.signature, "rb") as handle:
            signature = read_detached_signature(handle.read(1024 * 1024))
        with open(args.certificate, "rb") as handle:
            certificate = x509.load_pem_x509_certificate(handle.read(1024 * 1024))
        digest = sha256_file(args.artifacts[0])
    except OSError as exc:
        raise _usage(f"cannot read {exc.filename}: {exc.strerror}") from exc
    except ValueError as exc:
        raise _usage(f"{args.certificate} is not a PEM certificate") from exc
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


def _verify(args: Any) -> int:
    from sealtrail.batch import Pair, verify_many
    from sealtrail.trust import read_trusted_root_bytes

    policy = _policy_from_args(args)
    if args.signature:
        return _verify_detached(args, policy)
    gc.freeze()  # what start-up imported lives until exit: keep it out of future collections
    gc.enable()
    if args.bundle and len(args.artifacts) != 1:
        raise _usage("--bundle can be used with a single artifact only")
    pairs = []
    for artifact in args.artifacts:
        is_digest = artifact.startswith(DIGEST_PREFIXES) and not os.path.exists(artifact)
        if is_digest:
            if not args.bundle:
                raise _usage(f"{artifact}: a digest needs --bundle")
            from sealtrail.verify.verifier import Artifact

            Artifact.from_digest(artifact)  # a malformed digest is a usage error, said once
        pairs.append(Pair(artifact, args.bundle or artifact + ".sigstore.json"))
    if args.instance:
        from sealtrail.trust.tuf_client import TrustStore

        root_json = TrustStore().trusted_root_bytes(args.instance)
    else:
        root_json = read_trusted_root_bytes(args.trusted_root,
                                            instance="staging" if args.staging else "production")
    outcomes = verify_many(pairs, root_json, policy, workers=args.jobs or None)
    return _report(outcomes, args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sealtrail``; returns the process exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from sealtrail import __version__

        print(f"sealtrail {__version__}")
        return EXIT_OK
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    from sealtrail.errors import Error

    try:
        if args.command == "verify":
            return _verify(args)
        if args.command == "sign":
            return _sign(args)
        if args.command == "attest":
            return _attest(args)
        if args.command == "generate-key-pair":
            return _generate_key_pair(args)
        if args.command == "log":
            return _log(args)
        if args.command == "trust":
            return _trust(args)
        if args.command in ("init", "serve", "token", "ca", "rotate"):
            return _instance_commands(args)
    except Error as exc:
        if getattr(args, "json", False):
            print(json.dumps({"ok": False, **exc.to_json()}, sort_keys=True))
        print(f"sealtrail: error: {exc.code}: {exc.diagnostics()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    parser.print_help()
    return EXIT_USAGE


def run() -> None:
    """Console-script wrapper."""
    # Start-up allocates many long-lived objects (imported modules); collecting cycles among
    # them is wasted work for a short-lived command. _verify re-enables collection once the
    # heavy imports are done, after freezing what was imported.
    gc.disable()
    try:
        sys.exit(main())
    except BrokenPipeError:
        # Output piped into `head` and the like: stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_OK)


if __name__ == "__main__":
    run()
