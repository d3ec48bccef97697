"""``sealtrail``: the command line.

Exit codes: 0 verified / ok, 1 verification failed, 2 usage or input error, 3 a service
could not be reached or failed (retry later). A command that ends with an error exits with
that error's ``exit_code`` (the one mapping, in :mod:`sealtrail.errors`) and, with ``--json``,
prints it beside the error's ``code``.
Heavy modules are imported inside the command functions, so ``sealtrail --help`` is instant.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Sequence

from sealtrail.cli import (_runtime, service_commands, sign_commands, trust_commands,
                           verify_commands)
from sealtrail.cli._common import EXIT_OK, EXIT_USAGE, ArgumentParser, Commands, command_in


# Commands whose module is imported only when that command runs (every command pays for the
# modules imported to build the parser): name -> (module under sealtrail.cli, help line). The
# module defines ``add_arguments(parser)`` and ``run(args) -> int``.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "verify-artifact": ("slsa_commands", "verify artifacts against SLSA provenance as "
                                         "slsa-verifier verify-artifact does (offline)"),
    "verify-attestation": ("attestation_commands", "verify GitHub artifact attestations as "
                                                   "`gh attestation verify` does (offline)"),
    "verify-pypi": ("pypi_commands", "verify Python distributions against PEP 740 attestations "
                                     "or PyPI provenance (as pypi-attestations, offline)"),
    "policy": ("policy_commands", "read a provenance policy file: `policy explain FILE` says "
                                  "what it checks, in words"),
    "verify-vsa": ("vsa_commands", "verify a verification summary attestation (VSA) as "
                                   "slsa-verifier verify-vsa does (offline)"),
    "attest-provenance": ("provenance_commands", "sign SLSA provenance of a GitHub CI build"),
    "release": ("release_commands", "sign a whole release (SHA256SUMS, provenance, VERIFY.md) "
                                    "or verify a downloaded one"),
    "migrate": ("storage_commands", "move an embedded instance to PostgreSQL (and object "
                                    "storage), or upgrade its PostgreSQL schemas"),
    "backup": ("storage_commands", "write a consistent archive of an embedded instance"),
    "restore": ("storage_commands", "restore a `sealtrail backup` archive into an empty "
                                    "directory"),
}


def _lazy_module(name: str) -> Any:
    import importlib

    return importlib.import_module(f"sealtrail.cli.{LAZY_COMMANDS[name][0]}")


def _build_parser(only: str | None = None) -> ArgumentParser:
    """The whole command line, or (``only``) the arguments of that one command plus the names
    and help lines of the others: what a run needs, at a fraction of the start-up cost."""
    parser = ArgumentParser(prog="sealtrail", description="Sign releases and verify them, offline.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log debugging details to stderr (retries, proxies, fallbacks; "
                             "never tokens)")
    # An explicit prog spares argparse a help formatter (and its shutil import) at start-up.
    commands = Commands(parser.add_subparsers(dest="command", metavar="COMMAND", prog="sealtrail",
                                              parser_class=ArgumentParser), only)

    verify_commands.add_parser(commands)

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

    trust_commands.add_parser(commands)

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
    init.add_argument("--database", metavar="URL",
                      help="keep the logs' sequencers and the CA's record in this PostgreSQL "
                           "database (libpq URL or key=value, no password: libpq reads it "
                           "from PGPASSWORD, PGPASSFILE or ~/.pgpass)")
    init.add_argument("--tiles", metavar="LOCATION",
                      help="with --database: where each log's tiles go (s3://BUCKET/PREFIX, "
                           "file:///DIR or /DIR; default under DIR; S3 credentials from the "
                           "standard AWS chain)")
    init.add_argument("--tiles-endpoint", metavar="URL",
                      help="the S3-compatible server of s3:// tiles (default AWS)")

    serve_all = commands.add_parser("serve", help="serve an instance (CA, TSA, logs, OIDC, TUF)")
    serve_all.add_argument("directory", metavar="DIR")
    serve_all.add_argument("--port-file", metavar="FILE", help="write the bound port to FILE")
    serve_all.add_argument("--host", metavar="HOST",
                           help="address to bind (default: the instance's, set by init)")
    serve_all.add_argument("--port", metavar="PORT", type=int,
                           help="port to listen on (default: the instance's; 0 picks a free "
                                "one). Replicas of one instance on one machine each need "
                                "their own")

    token = commands.add_parser("token", help="mint an identity token from an instance's "
                                              "built-in OIDC issuer")
    token.add_argument("kind", choices=("email", "github", "gitlab"), help="identity kind")
    token.add_argument("subject", nargs="?", help="the email address (kind email)")
    token.add_argument("--instance", required=True, metavar="DIR", help="the instance directory")
    token.add_argument("--repository", help="owner/name (kind github)")
    token.add_argument("--workflow", default=".github/workflows/release.yml",
                       help="workflow file path (kind github)")
    token.add_argument("--ref", default="refs/heads/main", help="git ref (kind github)")
    token.add_argument("--sha", default="0" * 40, help="commit SHA (kind github)")
    token.add_argument("--event", default="push", help="triggering event (kind github)")
    token.add_argument("--project", help="group/project (kind gitlab)")
    token.add_argument("--ci-config", default=".gitlab-ci.yml",
                       help="CI config file path (kind gitlab)")
    token.add_argument("--pipeline-source", default="push",
                       help="CI_PIPELINE_SOURCE (kind gitlab)")
    token.add_argument("--environment", help="deployment environment (kind gitlab)")

    rotate = commands.add_parser("rotate", help="rotate an instance's CA or log key and publish "
                                                "the new trust root through TUF (stop serve first)")
    rotate.add_argument("what", choices=("ca", "log"))
    rotate.add_argument("directory", metavar="DIR")
    rotate.add_argument("--api", type=int, choices=(1, 2), default=1,
                        help="which log to rotate (with `log`): Rekor v1 or v2")

    sign_commands.add_parsers(commands)

    ca = commands.add_parser("ca", help="certificate authority tools")
    ca_commands = ca.add_subparsers(dest="ca_command", metavar="COMMAND", prog="sealtrail ca",
                                    parser_class=ArgumentParser)
    dry_run = ca_commands.add_parser("dry-run", help="show the certificate a token would get, or why not")
    dry_run.add_argument("token", metavar="TOKEN", help="the identity token (or - to read stdin)")
    dry_run.add_argument("--instance", required=True, metavar="DIR")

    for name, (_, help_line) in LAZY_COMMANDS.items():
        lazy = commands.add_parser(name, help=help_line)
        if only in (None, name):
            _lazy_module(name).add_arguments(lazy)
    return parser


def _log_debug_to_stderr() -> None:
    """``-v``: the "sealtrail" loggers (e.g. ``sealtrail.net``) print DEBUG records to stderr."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("sealtrail: debug: %(name)s: %(message)s"))
    logger = logging.getLogger("sealtrail")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sealtrail``; returns the process exit code."""
    words = sys.argv[1:] if argv is None else list(argv)
    parser = _build_parser(only=command_in(words) or "")
    args = parser.parse_args(words)
    if args.version:
        from sealtrail import __version__

        print(f"sealtrail {__version__}")
        return EXIT_OK
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    if args.verbose:
        _log_debug_to_stderr()
    from sealtrail.errors import Error, from_os_error

    try:
        if args.command == "verify":
            return verify_commands.verify(args)
        if args.command == "sign":
            return sign_commands.sign(args)
        if args.command == "attest":
            return sign_commands.attest(args)
        if args.command == "generate-key-pair":
            return sign_commands.generate_key_pair(args)
        if args.command == "log":
            return service_commands.log(args)
        if args.command == "trust":
            return trust_commands.trust(args)
        if args.command in ("init", "serve", "token", "ca", "rotate"):
            return service_commands.instance_commands(args)
        if args.command in LAZY_COMMANDS:
            code: int = _lazy_module(args.command).run(args)
            return code
    except (Error, OSError) as caught:
        # The one mapping from errors to exit statuses (sealtrail.errors): the class decides.
        if isinstance(caught, BrokenPipeError):
            raise  # output closed by a reader (`| head`): run() stops quietly
        exc = caught if isinstance(caught, Error) else from_os_error(caught)
        if getattr(args, "json", False):
            print(json.dumps({"ok": False, **exc.to_json()}, sort_keys=True))
        print(f"sealtrail: error: {exc.code}: {exc.diagnostics()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    parser.print_help()
    return EXIT_USAGE


def run() -> None:
    """Console-script wrapper: the command runs and ends as cli/_runtime.py declares."""
    command = command_in(sys.argv[1:])
    _runtime.begin(command)
    try:
        code = main()
        _runtime.leave(command, code)
        sys.exit(code)
    except BrokenPipeError:
        # Output piped into `head` and the like: stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_OK)


if __name__ == "__main__":
    run()
