"""``sealtrail policy explain FILE``: what a provenance policy file checks, in words.

Also :func:`load_policy`, which the provenance commands call for ``--policy FILE``.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["add_arguments", "load_policy", "run"]


def add_arguments(parser: Any) -> None:
    from sealtrail.cli._common import ArgumentParser

    commands = parser.add_subparsers(dest="policy_command", metavar="COMMAND",
                                     prog="sealtrail policy", parser_class=ArgumentParser)
    explain = commands.add_parser(
        "explain", help="print what a provenance policy file checks, in words",
        description="Print, in words and in the order they run, the checks a provenance "
                    "policy file (TOML; see docs/provenance.md) makes; --json prints them as "
                    "data, with the policy's digest (the one a VSA names).")
    explain.add_argument("file", metavar="FILE", help="the policy file (TOML)")
    explain.add_argument("--json", action="store_true", help="print the checks as JSON")


def load_policy(path: str) -> Any:
    """The :class:`~sealtrail.provenance.policy.ProvenancePolicy` in ``path`` (read bounded;
    a file that cannot be read is an input error, one that does not parse CONFIG_INVALID)."""
    from sealtrail._internal.keyfiles import read_bounded
    from sealtrail.errors import InputError
    from sealtrail.provenance.policy import MAX_POLICY_BYTES, ProvenancePolicy

    data = read_bounded(path, MAX_POLICY_BYTES, what="policy", error=InputError)
    return ProvenancePolicy.from_toml(data, path)


def run(args: Any) -> int:
    from sealtrail.cli._common import EXIT_OK, usage_error

    if args.policy_command != "explain":
        raise usage_error("give a policy command: explain")
    policy = load_policy(args.file)
    if args.json:
        print(json.dumps({"policy": policy.to_json(), "digest": {"sha256": policy.digest()},
                          "checks": [line.strip().removeprefix("- ").rstrip(";.")
                                     for line in policy.explain()[1:]]}, sort_keys=True))
    else:
        print("\n".join(policy.explain()))
    return EXIT_OK
