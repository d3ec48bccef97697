"""``sealtrail release sign`` and ``release verify``: a whole release at once.

The work is in :mod:`sealtrail.release`; here flags are read, the signer is made as `sign`
makes it (the pieces of :mod:`sealtrail.cli.sign_commands`), and results are printed. Only
stdlib at the top: the CLI imports this module to build its parser.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

_CI_VARIABLES = ("GITHUB_ACTIONS", "GITLAB_CI")


def add_arguments(parser: Any) -> None:
    from sealtrail.cli._common import ArgumentParser
    from sealtrail.cli.sign_commands import _add_signing_source

    parser.description = ("Sign every file of a release under one certificate (with "
                          "SHA256SUMS, provenance and VERIFY.md), or verify a downloaded "
                          "release in one pass.")
    commands = parser.add_subparsers(dest="release_command", metavar="COMMAND",
                                     prog="sealtrail release", parser_class=ArgumentParser)
    sign = commands.add_parser(
        "sign", help="sign every artifact, SHA256SUMS and the provenance; write VERIFY.md",
        description="Sign every artifact of DIR (its regular files, not the outputs of an "
                    "earlier run), or the FILEs given, under one keyless certificate: "
                    "FILE.sigstore.json beside each (and FILE.sig/FILE.pem with --detached), "
                    "SHA256SUMS (sha256sum's format) and its bundle, one SLSA provenance of "
                    "all artifacts (multiple.intoto.jsonl) with --provenance (the default in "
                    "CI), and VERIFY.md with the exact commands a user runs. A rerun after a "
                    "failure keeps every output that verifies and signs only what is missing.")
    sign.add_argument("targets", nargs="+", metavar="DIR|FILE",
                      help="the release directory, or its files (all in one directory)")
    sign.add_argument("--provenance", action=_boolean_optional(), default=None,
                      help="also sign SLSA provenance of all artifacts (default: on when "
                           "GITHUB_ACTIONS or GITLAB_CI is set)")
    sign.add_argument("--detached", action="store_true",
                      help="also write cosign's FILE.sig and FILE.pem beside each file "
                           "(logged to a Rekor v1 log, as `sign --detached`)")
    sign.add_argument("--allow-private-repository", action="store_true",
                      help="sign a private repository's provenance with a public instance "
                           "(its names and commit are then public, for good)")
    _add_signing_source(sign)

    verify = commands.add_parser(
        "verify", help="verify every file of a downloaded release, its checksums and "
                       "provenance (offline)",
        description="Verify, offline and in parallel, every artifact of DIR against its "
                    "bundle and SHA256SUMS, SHA256SUMS against its bundle, and the provenance; "
                    "name every file that is missing, extra, modified or signed by another "
                    "identity. Exit 1 if any check fails.")
    verify.add_argument("directory", metavar="DIR", help="the downloaded release")
    verify.add_argument("--certificate-identity", "--cert-identity", required=True,
                        metavar="ID", help="the identity that signed the release (exact)")
    verify.add_argument("--certificate-oidc-issuer", "--cert-oidc-issuer", required=True,
                        metavar="URL", help="its OIDC issuer (exact)")
    verify.add_argument("--source-uri", metavar="U",
                        help="expected source of the provenance, e.g. github.com/OWNER/REPO "
                             "(makes the provenance required)")
    verify.add_argument("--source-tag", metavar="T", help="expected tag in the provenance")
    verify.add_argument("--builder-id", metavar="B",
                        help="expected builder of the provenance (as verify-artifact's)")
    verify.add_argument("--policy", metavar="FILE",
                        help="the provenance's expectations from a policy file (TOML, "
                             "docs/provenance.md)")
    root = verify.add_mutually_exclusive_group()
    root.add_argument("--trusted-root", metavar="FILE", help="trusted_root.json")
    root.add_argument("--instance", metavar="NAME",
                      help="an instance's newest verified trust root (read offline)")
    root.add_argument("--staging", action="store_true", help="the public-good staging root")
    root.add_argument("--trust-config", metavar="FILE", help="a client trust config")
    root.add_argument("--instance-dir", metavar="DIR", help="a local instance's trust config")
    verify.add_argument("--jobs", type=int, metavar="N",
                        help="worker processes (default: one per core)")
    verify.add_argument("--json", action="store_true", help="print the results as JSON")


def _boolean_optional() -> Any:
    import argparse

    return argparse.BooleanOptionalAction


def run(args: Any) -> int:
    from sealtrail.cli._common import usage_error

    if args.release_command == "sign":
        return _sign(args)
    if args.release_command == "verify":
        return _verify(args)
    raise usage_error("give a release command: sign or verify")


# -- sign ------------------------------------------------------------------------------------


def _targets(targets: list[str]) -> tuple[str, list[str]]:
    """(release directory, artifact names) of DIR or FILE..."""
    from sealtrail.cli._common import usage_error
    from sealtrail.release.checksums import check_name
    from sealtrail.release.layout import is_output, scan

    if len(targets) == 1 and os.path.isdir(targets[0]):
        found = scan(targets[0])
        artifacts = found.artifacts
        if not artifacts:
            raise usage_error(f"{targets[0]} holds no file to sign")
        for name in artifacts:
            check_name(name)
        _note_orphans(found.names, artifacts)
        return targets[0], artifacts
    directories = set()
    names = []
    for path in targets:
        if not os.path.isfile(path):
            raise usage_error(f"{path} is not a file" + (" (give one directory, or files)"
                                                         if os.path.isdir(path) else ""))
        directories.add(os.path.dirname(os.path.realpath(path)))
        names.append(check_name(os.path.basename(path)))
    if len(directories) != 1:
        raise usage_error("the FILEs of a release must be in one directory (SHA256SUMS and "
                          "VERIFY.md are written there)")
    directory = os.path.dirname(targets[0]) or "."
    everything = frozenset(names)
    for name in names:
        if is_output(name, everything):
            raise usage_error(f"{name} is a name release sign writes, not an artifact")
    if len(set(names)) != len(names):
        raise usage_error("a file is named twice")
    return directory, sorted(names)


def _note_orphans(names: frozenset[str], artifacts: list[str]) -> None:
    """A bundle left by an earlier run whose file is gone: `release verify` will name it."""
    from sealtrail.release.checksums import CHECKSUMS_NAME
    from sealtrail.release.layout import BUNDLE_SUFFIX

    owners = {*artifacts, CHECKSUMS_NAME}
    for name in sorted(names):
        if name.endswith(BUNDLE_SUFFIX) and name[:-len(BUNDLE_SUFFIX)] not in owners:
            print(f"sealtrail: note: {name} is the bundle of no artifact (an earlier run's?); "
                  "`release verify` reports it as ARTIFACT_EXTRA: remove it", file=sys.stderr)


def _provenance_wanted(args: Any, env: Any) -> bool:
    """--provenance / --no-provenance, else on in CI. Generation exists for GitHub Actions
    and GitLab CI (sealtrail.provenance.generate); elsewhere an explicit --provenance is
    refused."""
    from sealtrail.cli._common import usage_error
    from sealtrail.provenance import generate

    wanted = args.provenance if args.provenance is not None else any(
        env.get(name) for name in _CI_VARIABLES)
    if not wanted:
        return False
    missing = generate.missing_github_variables(env)
    if not missing:
        return True
    if _in_gitlab(env):
        gitlab_missing = generate.missing_gitlab_variables(env)
        if not gitlab_missing:
            return True
        raise usage_error("provenance needs GitLab CI's predefined variables: "
                          + ", ".join(gitlab_missing)
                          + (" is" if len(gitlab_missing) == 1 else " are") + " not set"
                          + ("" if args.provenance else " (or pass --no-provenance)"))
    # TODO(issue 15 item 1): local-build provenance is not generated by release sign yet.
    if args.provenance is None:
        print("sealtrail: note: no provenance: sealtrail generates it in GitHub Actions and "
              "GitLab CI only for now (pass --no-provenance to silence this)", file=sys.stderr)
        return False
    raise usage_error("--provenance needs a GitHub Actions job (or a GitLab CI job; local "
                      "builds are not supported yet): " + ", ".join(missing)
                      + (" is" if len(missing) == 1 else " are") + " not set")


def _in_gitlab(env: Any) -> bool:
    """A GitLab CI job (GitLab sets GITLAB_CI=true), and not a GitHub Actions one."""
    return bool(env.get("GITLAB_CI")) and not env.get("GITHUB_ACTIONS")


def _trust_facts(args: Any) -> tuple[tuple[str, ...], bool]:
    if args.trust_config or args.instance_dir:
        return (), True
    if args.instance:
        return ("--instance", args.instance), False
    if args.staging:
        return ("--staging",), False
    return (), False


def _sign(args: Any) -> int:
    from sealtrail.cli import sign_commands as signing
    from sealtrail.cli._common import EXIT_OK, usage_error
    from sealtrail.errors import Error

    if args.key:
        raise usage_error("release sign is keyless: VERIFY.md and `release verify` name the "
                          "signer's identity and issuer (not --key)")
    env = os.environ
    directory, artifacts = _targets(args.targets)
    with_provenance = _provenance_wanted(args, env)
    context = signing._signing_context(args, detached=args.detached)
    token = signing.identity_token(args, context)
    maker = _provenance_maker(args, env, token) if with_provenance else None
    from sealtrail.release.instructions import facts_of, render_instructions
    from sealtrail.release.layout import hash_artifacts
    from sealtrail.release.signing import ReleaseSigning

    digests = hash_artifacts(directory, artifacts)
    total = len(artifacts) + 1 + (1 if maker else 0)
    with signing._make_signer(args, context, token) as signer:
        signing._announce(signer)
        release = ReleaseSigning(signer, directory, artifacts, detached=args.detached)
        trust_flags, trusted_root_file = _trust_facts(args)
        identity = release.identity
        facts = facts_of(identity.san, identity.issuer or "", identity.extensions, env,
                         trust_flags=trust_flags, trusted_root_file=trusted_root_file,
                         artifacts=artifacts, provenance=maker is not None,
                         detached=args.detached)
        count = [0]

        def done(name: str, log_index: int | None) -> None:
            count[0] += 1
            what = (f"signed {name} (log index {log_index})" if log_index is not None
                    else f"kept {name} (its outputs verify)")
            sys.stderr.write(f"[{count[0]}/{total}] {what}\n")

        try:
            outcome = release.run(digests, provenance=maker,
                                  instructions=lambda: render_instructions(facts), on_done=done)
        except Error:
            print(f"sealtrail: stopped after signing {len(release.signed)} and keeping "
                  f"{len(release.kept)} of {total} file(s); what is done is written: rerun "
                  "the same command to sign the rest", file=sys.stderr)
            raise
    kept = f"; kept {len(outcome.kept)} already signed" if outcome.kept else ""
    print(f"signed {len(outcome.signed)} file(s){kept} in {directory}; wrote SHA256SUMS, "
          "VERIFY.md" + (" and multiple.intoto.jsonl" if maker else ""))
    return EXIT_OK


def _provenance_maker(args: Any, env: Any, token: Any) -> Any:
    """The provenance statement of a GitHub Actions or GitLab CI job (attest-provenance's
    generator), checked against the job's token before the CA is asked for anything."""
    from sealtrail.cli.provenance_commands import _check_visibility, _token_claims
    from sealtrail.cli.sign_commands import _read_small
    from sealtrail.provenance import generate

    if generate.missing_github_variables(env) and _in_gitlab(env):
        from sealtrail.cli.provenance_commands import gitlab_provenance

        gitlab = gitlab_provenance(args, env, token)

        def make_gitlab(subjects: Any) -> bytes:
            return generate.provenance_statement(
                [generate.Subject(name, {"sha256": digest}) for name, digest in subjects],
                gitlab)

        return make_gitlab
    event = _read_small(env["GITHUB_EVENT_PATH"], "event payload (GITHUB_EVENT_PATH)",
                        generate.MAX_EVENT_PAYLOAD)
    github = generate.github_run(env, event, _token_claims(token))
    _check_visibility(args, github.visibility)
    predicate = generate.github_predicate(github)

    def make(subjects: Any) -> bytes:
        return generate.provenance_statement(
            [generate.Subject(name, {"sha256": digest}) for name, digest in subjects],
            predicate)

    return make


# -- verify ----------------------------------------------------------------------------------


def _expectations(args: Any) -> Any:
    from sealtrail.provenance.slsa import SlsaExpectations

    flags = {"source_uri": args.source_uri, "source_tag": args.source_tag,
             "builder_id": args.builder_id, "oidc_issuer": args.certificate_oidc_issuer}
    if args.policy:
        from sealtrail.cli.policy_commands import load_policy

        policy = load_policy(args.policy)
        if policy.issuer is not None:
            # --certificate-oidc-issuer is required here (it checks every bundle): a policy
            # naming the same issuer agrees with it; another is a contradiction.
            if policy.issuer != args.certificate_oidc_issuer:
                from sealtrail.cli._common import usage_error

                raise usage_error(f"the policy's issuer {policy.issuer} is not "
                                  f"--certificate-oidc-issuer {args.certificate_oidc_issuer}")
            flags["oidc_issuer"] = None
        return SlsaExpectations.from_policy(policy, **flags).checked()
    if args.source_uri:
        return SlsaExpectations(**{k: v for k, v in flags.items() if v is not None}).checked()
    if args.source_tag or args.builder_id:
        from sealtrail.cli._common import usage_error

        raise usage_error("--source-tag and --builder-id check the provenance: give "
                          "--source-uri (or --policy) too")
    return None


def _verify(args: Any) -> int:
    from sealtrail.cli import trust_commands
    from sealtrail.cli._common import usage_error
    from sealtrail.cli.verify_commands import _trusted_root_bytes
    from sealtrail.release.verifying import verify_release
    from sealtrail.verify.policy import IdentityPolicy

    if args.jobs is not None and args.jobs < 1:
        raise usage_error("--jobs takes a positive number")
    if not os.path.isdir(args.directory):
        raise usage_error(f"{args.directory} is not a directory")
    policy = IdentityPolicy(identity=args.certificate_identity,
                            issuer=args.certificate_oidc_issuer)
    expectations = _expectations(args)
    root = _trusted_root_bytes(args)
    others = trust_commands.companion_roots(args)
    rows = verify_release(args.directory, root, policy, expectations=expectations,
                          other_roots_json=others, workers=args.jobs)
    failed = [row for row in rows if not row.ok]
    if args.json:
        data = {"ok": not failed, "directory": args.directory,
                "failed": [row.name for row in failed],
                "results": [row.to_json() for row in rows]}
        print(json.dumps(trust_commands.annotate_result(args, data), sort_keys=True))
    else:
        _print_rows(rows)
    if failed:
        print(f"FAILED: {len(failed)} of {len(rows)} check(s) failed: "
              + ", ".join(f"{row.name} ({row.code})" for row in failed[:10])
              + (" ..." if len(failed) > 10 else ""), file=sys.stderr)
        trust_commands.print_root_notes(args, [row.code for row in failed])
        return 1
    print(f"PASSED: {len(rows)} checks passed", file=sys.stderr)
    return 0


def _print_rows(rows: list[Any]) -> None:
    """A table at a terminal (rich), one line per file elsewhere."""
    try:
        interactive = sys.stdout.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError, OSError):
        interactive = False
    if not interactive:
        for row in rows:
            detail = (row.identity or row.message or "") if row.ok \
                else f"{row.code}: {row.message}"
            sys.stdout.write(f"{'OK' if row.ok else 'FAILED':<6} {row.name}  {detail}\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("file", "kind", "result", "detail")
    for row in rows:
        table.add_row(row.name, row.kind, "[green]ok[/]" if row.ok else f"[red]{row.code}[/]",
                      (row.identity or row.message or "") if row.ok else (row.message or ""))
    Console().print(table)
