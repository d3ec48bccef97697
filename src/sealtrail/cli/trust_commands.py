"""``sealtrail trust``: follow the trust roots of Sigstore instances through TUF.

``add``, ``update`` and ``add --replace`` are the only steps that use the network, and say
so; ``show`` and ``remove`` read or change the local cache only. Where the cache lives and
which root ``verify`` uses are in docs/verification.md ("Trust roots").

Heavy modules are imported inside the functions, so the CLI starts fast.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from sealtrail.cli._common import EXIT_OK, ArgumentParser, Commands, usage_error

if TYPE_CHECKING:  # imported where used, so that the CLI starts fast
    from argparse import Namespace
    from datetime import datetime

    from sealtrail.trustroot.selection import SelectedRoot
    from sealtrail.trustroot.tuf_client import InstanceInfo, TrustStore

_ONLINE = "sealtrail: trust {what} contacts {whom} over the network (the only online step)"


def add_parser(commands: Commands) -> None:
    """Define `sealtrail trust` (fully only when it is the command being run)."""
    trust = commands.add_parser("trust", help="manage the trust roots of Sigstore instances (TUF)")
    trust_commands: Any = trust.add_subparsers(dest="trust_command", metavar="COMMAND",
                                               prog="sealtrail trust", parser_class=ArgumentParser)
    trust_add = trust_commands.add_parser(
        "add", help="bootstrap an instance from its TUF repository and a pinned root.json "
                    "(online)")
    trust_add.add_argument("name", metavar="NAME")
    trust_add.add_argument("url", metavar="URL", help="the instance's TUF repository URL")
    trust_add.add_argument("--root", required=True, metavar="root.json",
                           help="the root.json to pin (obtained out of band)")
    trust_add.add_argument("--replace", action="store_true",
                           help="replace an instance of that name (its cache is discarded "
                                "once the new one is verified)")
    trust_update = trust_commands.add_parser(
        "update", help="refresh trust roots over the network: every instance, or NAME...; "
                       "reports each and goes on after a failure")
    trust_update.add_argument("names", nargs="*", metavar="NAME")
    trust_update.add_argument("--json", action="store_true", help="one JSON object per instance")
    trust_remove = trust_commands.add_parser(
        "remove", help="forget an added instance, or the cached root of a built-in one "
                       "(verification then uses the packaged root)")
    trust_remove.add_argument("name", metavar="NAME")
    trust_show = trust_commands.add_parser(
        "show", help="show the trust cache, the cached roots, their age and the root "
                     "verification uses")
    trust_show.add_argument("name", nargs="?", metavar="NAME")
    trust_show.add_argument("--json", action="store_true")


# -- what `verify` calls: the root it uses, in its JSON results and after failures ------------

_SELECTED = "_sealtrail_trusted_root"  # where verification_root() leaves its choice on args


def verification_root(args: Any) -> SelectedRoot:
    """The trusted root `verify` uses under its flags (``--trusted-root``, ``--staging``,
    ``--instance``; default public-good), offline: the newest verified copy, packaged or
    from the TUF cache (:func:`sealtrail.trustroot.selection.select_trusted_root`).

    The choice is remembered on ``args`` for :func:`annotate_result` and
    :func:`print_root_notes`."""
    from sealtrail.trustroot.selection import select_trusted_root

    instance = getattr(args, "instance", None)
    if instance is None and getattr(args, "staging", False):
        instance = "public-good-staging"
    root = select_trusted_root(trusted_root=getattr(args, "trusted_root", None),
                               instance=instance)
    setattr(args, _SELECTED, root)
    return root


def signing_documents(args: Any) -> tuple[bytes, bytes]:
    """``(trusted_root.json, signing_config.v0.2.json)`` for ``--instance`` / ``--staging``
    (default public-good) by the rule of :func:`verification_root`, both from one place
    (:func:`sealtrail.trustroot.selection.select_signing_documents`); the root is
    remembered on ``args`` as there."""
    from sealtrail.trustroot.selection import select_signing_documents

    instance = getattr(args, "instance", None)
    if instance is None and getattr(args, "staging", False):
        instance = "public-good-staging"
    root, signing_config = select_signing_documents(instance=instance)
    setattr(args, _SELECTED, root)
    return root.data, signing_config


def companion_roots(args: Any) -> list[bytes] | None:
    """The roots trusted beside the one :func:`verification_root` chose: with public-good's,
    GitHub's newest verified root (packaged or from the TUF cache), as `gh attestation
    verify` trusts both and picks one by the leaf's issuer; ``None`` (the library's
    default) for any other root. Offline."""
    root = getattr(args, _SELECTED, None)
    if root is None or root.instance != "public-good":
        return None
    from sealtrail.trustroot.selection import select_trusted_root

    return [select_trusted_root(instance="github").data]


def annotate_result(args: Any, result: dict[str, Any]) -> dict[str, Any]:
    """One `verify --json` result with ``trusted_root`` (which root, how old) and, for
    TLOG_KEY_UNKNOWN and CERT_CHAIN_INVALID, a ``hint``; unchanged if no root was chosen
    by :func:`verification_root` (e.g. a trust config)."""
    root = getattr(args, _SELECTED, None)
    return root.annotate(result) if root is not None else result


def print_root_notes(args: Any, failed_codes: list[str | None]) -> None:
    """After `verify`'s results, on stderr: the warning about an unusable cache (always),
    and on failure the root used and its age, with a hint for TLOG_KEY_UNKNOWN and
    CERT_CHAIN_INVALID (not with ``--json``, whose results carry them)."""
    root = getattr(args, _SELECTED, None)
    if root is None:
        return
    if root.warning:
        print(f"sealtrail: warning: {root.warning}", file=sys.stderr)
    if not getattr(args, "json", False):
        for line in root.notes(failed_codes):
            print(f"sealtrail: {line}", file=sys.stderr)


# -- sealtrail trust ---------------------------------------------------------------------------


def trust(args: Namespace) -> int:
    from sealtrail.trustroot.tuf_client import TrustStore

    store = TrustStore()
    if args.trust_command == "add":
        return _add(store, args)
    if args.trust_command == "update":
        return _update(store, args.names, json_output=args.json)
    if args.trust_command == "remove":
        return _remove(store, args.name)
    if args.trust_command == "show":
        return _show(store, [args.name] if args.name else list(store.instances()),
                     json_output=args.json)
    raise usage_error("give a trust command: add, update, remove or show")


def _add(store: TrustStore, args: Namespace) -> int:
    try:
        with open(args.root, "rb") as handle:
            root = handle.read(1024 * 1024)
    except OSError as exc:
        raise usage_error(f"cannot read {args.root}: {exc.strerror}") from exc
    existed = args.replace and args.name in store.instances()
    print(_ONLINE.format(what="add", whom=args.url), file=sys.stderr)
    info = store.add(args.name, args.url, root, replace=args.replace)
    print(f"{'replaced' if existed else 'added'} {info.name} ({info.url}): "
          f"root version {info.root_version}")
    return EXIT_OK


def _update(store: TrustStore, names: list[str], *, json_output: bool) -> int:
    from sealtrail.errors import Error

    known = store.instances()
    unknown = [name for name in names if name not in known]
    if unknown:  # before anything is fetched
        from sealtrail.errors import UsageError

        raise UsageError("unknown trust instance", actual=", ".join(unknown),
                         expected=" or ".join(known))
    chosen = list(dict.fromkeys(names)) or list(known)
    print(_ONLINE.format(what="update", whom=f"the TUF repositories of {', '.join(chosen)}"),
          file=sys.stderr)
    worst = EXIT_OK
    for name in chosen:
        url, before = _before_update(store, name)
        try:
            info = store.update(name)
        except Error as exc:
            worst = max(worst, exc.exit_code)
            if json_output:
                print(json.dumps({"name": name, "url": url, "ok": False, **exc.to_json()},
                                 sort_keys=True))
            else:
                print(f"FAILED {name}: {exc.code}: {exc.diagnostics()}", file=sys.stderr)
            continue
        digest = info.targets.get("trusted_root.json")
        record = {"name": name, "url": info.url, "ok": True, "root_version": info.root_version,
                  "targets_version": info.roles["targets"].version if "targets" in info.roles
                  else None,
                  "trusted_root_sha256": digest, "changed": digest != before,
                  "last_updated": _rfc3339(info.last_updated)}
        if json_output:
            print(json.dumps(record, sort_keys=True))
        else:
            print(f"updated {name} from {info.url}: TUF root v{info.root_version}, targets "
                  f"v{record['targets_version']}, trusted_root.json sha256:"
                  f"{(digest or '?')[:16]} ({'changed' if record['changed'] else 'unchanged'})")
    return worst


def _before_update(store: TrustStore, name: str) -> tuple[str | None, str | None]:
    """The instance's URL and the SHA-256 of the trusted root the last successful update
    left (``None`` where the cache cannot tell)."""
    from sealtrail.errors import Error

    try:
        info = store.show(name)
    except Error:
        return None, None
    return info.url, info.targets.get("trusted_root.json")


def _remove(store: TrustStore, name: str) -> int:
    import os

    from sealtrail.trustroot.tuf_client import BUILTIN_INSTANCES

    builtin = name in BUILTIN_INSTANCES
    had_cache = os.path.isdir(os.path.join(store.directory, name))
    store.remove(name)  # an unknown added name: UsageError
    if not builtin:
        print(f"removed {name} and its cache")
    elif had_cache:
        print(f"removed the cached trust root of {name}; verification uses the packaged "
              "root again")
    else:
        print(f"nothing cached for {name}; verification uses the packaged root")
    return EXIT_OK


def _show(store: TrustStore, names: list[str], *, json_output: bool) -> int:
    from sealtrail._internal.clock import utcnow

    now = utcnow()
    if not json_output:
        print(f"trust cache: {store.directory} (SEALTRAIL_TRUST_DIR)")
    for name in names:
        info = store.show(name, now=now)
        root = _verification_root(store, name, now)
        if json_output:
            print(json.dumps(_show_json(info, now, store.directory, root), sort_keys=True))
            continue
        age = (f"updated {int(info.age.total_seconds() // 3600)} h ago" if info.age is not None
               else "never updated (only the pinned root)")
        expired = info.expired_roles(now)
        if info.last_updated is None and expired == ("root",):
            # SPEC (TUF 5.3.10): an expired root matters only once the update has found no
            # newer one; the pinned root is where the update starts.
            note = (f"; the pinned root expired {info.roles['root'].expires:%Y-%m-%d}: "
                    "`sealtrail trust update` fetches the roots that followed it")
        else:
            note = f"; EXPIRED: {', '.join(expired)}" if expired else ""
        print(f"{info.name}: {info.url} root v{info.root_version}, {age}{note}")
        if root is not None:
            print(f"  verification uses {root.describe()}")
            if root.warning:
                print(f"  warning: {root.warning}")
    return EXIT_OK


def _verification_root(store: TrustStore, name: str, now: datetime) -> Any:
    """What `verify --instance NAME` would use (None if nothing usable is cached)."""
    from sealtrail.errors import Error
    from sealtrail.trustroot.selection import select_trusted_root

    try:
        return select_trusted_root(instance=name, store=store, now=now)
    except Error:
        return None


def _show_json(info: InstanceInfo, now: datetime, directory: str, root: Any) -> dict[str, Any]:
    return {
        "name": info.name, "url": info.url, "builtin": info.builtin,
        "cache_dir": directory,
        "root_version": info.root_version,
        "last_updated": info.last_updated.isoformat() if info.last_updated else None,
        "age_seconds": int(info.age.total_seconds()) if info.age else None,
        "expired_roles": list(info.expired_roles(now)),
        "roles": {r: {"version": v.version, "expires": v.expires.isoformat()}
                  for r, v in info.roles.items()},
        "verification_root": root.to_json() if root is not None else None}


def _rfc3339(when: datetime | None) -> str | None:
    from datetime import timezone

    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if when else None
