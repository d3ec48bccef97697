"""The service side of the CLI: ``init``, ``serve``, ``token``, ``ca``, ``rotate`` and ``log``
(``trust`` is in :mod:`sealtrail.cli.trust_commands`).

Heavy modules are imported inside the functions, so the CLI starts fast.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING

from sealtrail.cli._common import EXIT_OK, usage_error

if TYPE_CHECKING:  # imported where used, so that the CLI starts fast
    from argparse import Namespace

    from sealtrail.server.instance import Instance
    from sealtrail.server.storage import StorageConfig

#: What the services import and no client command does: installed by ``sealtrail[server]``.
SERVER_MODULES = ("starlette", "uvicorn")


def require_server_extra(command: str) -> None:
    """Refuse a service command (exit 2, one line) when the server extra is not installed.

    The client (verify, sign, attest, trust, token) installs without the service stack."""
    import importlib.util

    missing = [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise usage_error(f"`sealtrail {command}` needs the server extra (missing: "
                          f"{', '.join(missing)}): pip install 'sealtrail[server]'")


def _passphrase_for_init(args: Namespace) -> bytes | None:
    if not args.encrypt_keys:
        return None
    value = os.environ.get("SEALTRAIL_PASSPHRASE")
    if not value:
        raise usage_error("--encrypt-keys needs the passphrase in $SEALTRAIL_PASSPHRASE")
    return value.encode()


def _storage_for_init(args: Namespace) -> StorageConfig | None:
    """The ``storage`` section `init` writes, checked as sealtrail.json's is read (a
    connection string holding a password is refused, exit 2, without showing it)."""
    if args.database is None:
        if args.tiles is not None or args.tiles_endpoint is not None:
            raise usage_error("--tiles and --tiles-endpoint go with --database")
        return None
    from sealtrail.server.storage import StorageConfig

    return StorageConfig.from_arguments(args.database, args.tiles or "",
                                        args.tiles_endpoint or "")


def _no_writing_by_others() -> None:
    """Add group and others' write to the umask of this process: what a service command
    creates (instance and log directories, databases, tiles, TUF metadata) is never
    writable by others, even when run under umask 000. Modes that must be tighter (keys
    0600, key directories 0700) are set exactly where those are created."""
    os.umask(os.umask(0o022) | 0o022)


def instance_commands(args: Namespace) -> int:
    if args.command != "token":  # token only mints with the instance's issuer key
        require_server_extra(args.command)
    _no_writing_by_others()
    from sealtrail.server.instance import Instance

    if args.command == "init":
        instance = Instance.init(args.directory, public_url=args.public_url, host=args.host,
                                 port=args.port, builtin_issuer=args.builtin_issuer,
                                 github_actions=not args.no_github_actions,
                                 passphrase=_passphrase_for_init(args),
                                 storage=_storage_for_init(args))
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

        from sealtrail.server.run import configure_logging

        configure_logging()
        config = instance.config()
        port = config.port if args.port is None else args.port
        if not 0 <= port <= 65535:
            raise usage_error(f"--port must be 0..65535 (got {port})")
        serve(instance.build_app(), host=args.host or config.host, port=port,
              port_file=args.port_file)
        return EXIT_OK
    if args.command == "token":
        issuer = instance.builtin_issuer(args.kind)
        if args.kind == "email":
            if not args.subject:
                raise usage_error("give the email address: sealtrail token email ADDRESS --instance DIR")
            print(issuer.mint_email(args.subject))
        elif args.kind == "gitlab":
            if not args.project:
                raise usage_error("give --project group/project")
            print(issuer.mint_gitlab_pipeline(
                project=args.project, ref=args.ref, sha=args.sha, ci_config_path=args.ci_config,
                pipeline_source=args.pipeline_source,
                **({"environment": args.environment} if args.environment else {})))
        else:
            if not args.repository:
                raise usage_error("give --repository owner/name")
            print(issuer.mint_github_workflow(repository=args.repository,
                                              workflow_path=args.workflow, ref=args.ref,
                                              sha=args.sha, event_name=args.event))
        return EXIT_OK
    if args.command == "ca":
        return _ca_dry_run(instance, args)
    raise usage_error("unknown command")


def _ca_dry_run(instance: Instance, args: Namespace) -> int:
    from cryptography.hazmat.primitives import serialization

    from sealtrail.ca.token_verifier import TokenVerifier

    if args.ca_command != "dry-run":
        raise usage_error("give a ca command: dry-run")
    token = sys.stdin.read(1024 * 1024).strip() if args.token == "-" else args.token
    issuers, fetch_json, _ = instance.token_issuers()
    principal = TokenVerifier(issuers, fetch_json).verify(token)
    leaf = instance.certificate_authority().dry_run(principal)
    print(json.dumps(principal.to_json(), indent=2))
    print(leaf.public_bytes(serialization.Encoding.PEM).decode(), end="")
    return EXIT_OK


def log(args: Namespace) -> int:
    require_server_extra(f"log {args.log_command or ''}".strip())
    _no_writing_by_others()
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
        raise usage_error("give a log command: serve, rollover or tlogs")
    from sealtrail.server.log_api import build_log_app
    from sealtrail.server.run import serve

    from sealtrail.server.run import configure_logging

    configure_logging()
    if not os.path.exists(directory.config_path):
        directory.create(args.origin_host or args.host)
    serve(build_log_app(directory.open()), host=args.host, port=args.port,
          port_file=args.port_file)
    return EXIT_OK
