"""``sealtrail trust``: follow the trust roots of Sigstore instances through TUF.

Heavy modules are imported inside the functions, so the CLI starts fast.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sealtrail.cli._common import EXIT_OK, ArgumentParser, Commands, usage_error

if TYPE_CHECKING:  # imported where used, so that the CLI starts fast
    from argparse import Namespace


def add_parser(commands: Commands) -> None:
    """Define `sealtrail trust` (fully only when it is the command being run)."""
    trust = commands.add_parser("trust", help="manage the trust roots of Sigstore instances (TUF)")
    trust_commands: Any = trust.add_subparsers(dest="trust_command", metavar="COMMAND",
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


def trust(args: Namespace) -> int:
    from sealtrail.trustroot.tuf_client import TrustStore

    store = TrustStore()
    if args.trust_command == "add":
        try:
            with open(args.root, "rb") as handle:
                root = handle.read(1024 * 1024)
        except OSError as exc:
            raise usage_error(f"cannot read {args.root}: {exc.strerror}") from exc
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
    raise usage_error("give a trust command: add, update or show")
