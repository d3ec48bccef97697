"""``sealtrail verify-artifact``: slsa-verifier's ``verify-artifact``, offline.

Flags, messages, error names and exit statuses are slsa-verifier's (users script against
them): ``PASSED: SLSA verification passed`` or ``FAILED: SLSA verification failed:
<ErrorName>: <detail>`` on standard error, ``Verified build using builder "<id>" at commit
<sha>`` per artifact. Exit 0 passed, 1 verification failed, 2 unreadable input or bad flags.
The checks are :func:`sealtrail.provenance.slsa.verify_artifact_provenance`; this module
reads the files and picks the trusted root as ``verify`` does.

Top-level imports are stdlib only: the module loads only when the command runs, and
``sealtrail --help`` lists it from main.LAZY_COMMANDS without importing it.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

GITHUB_ACTIONS_ISSUER = "https://token.actions.githubusercontent.com"
MAX_PROVENANCE_BYTES = 32 * 1024 * 1024


def add_arguments(parser: Any) -> None:
    """The flags of slsa-verifier's verify-artifact, and verify's trust-root flags."""
    parser.description = (
        "Verify that each ARTIFACT was built as its SLSA provenance says, with slsa-verifier's "
        "checks, messages and error names, offline: the provenance must be a Sigstore bundle "
        "(JSON or JSON Lines, e.g. slsa-github-generator's .intoto.jsonl), signed by a "
        "trusted builder's workflow, for the expected source.")
    parser.add_argument("artifacts", nargs="+", metavar="ARTIFACT",
                        help="the files the provenance must name (all must pass, with the "
                             "same builder)")
    parser.add_argument("--provenance-path", required=True, metavar="P",
                        help="the provenance: a Sigstore bundle, JSON or JSON Lines")
    parser.add_argument("--source-uri", metavar="U",
                        help="expected source repository, e.g. github.com/OWNER/REPO "
                             "(required, unless --policy names it)")
    parser.add_argument("--builder-id", metavar="B",
                        help="expected builder: NAME, NAME@vX.Y.Z or NAME@refs/tags/vX.Y.Z "
                             "(required for delegator/BYOB builders; without it only the "
                             "default slsa-github-generator builders are trusted)")
    tags = parser.add_mutually_exclusive_group()
    tags.add_argument("--source-tag", metavar="T", help="expected tag (exact: v13 is not v13.0)")
    tags.add_argument("--source-versioned-tag", metavar="V",
                      help="expected semver tag vX[.Y[.Z]]: major must match, minor and "
                           "patch only when given")
    parser.add_argument("--source-branch", metavar="B", help="expected branch, e.g. main")
    parser.add_argument("--build-workflow-input", action="append", default=[], metavar="K=V",
                        help="expected workflow_dispatch input (repeatable)")
    parser.add_argument("--print-provenance", action="store_true",
                        help="print the verified provenance statement (JSON) on standard "
                             "output, once per artifact")
    parser.add_argument("--policy", metavar="FILE",
                        help="take the expectations from a provenance policy file (TOML, "
                             "docs/provenance.md): source, trusted builders with their refs "
                             "and levels, minimum level, predicate types, issuer; a flag may "
                             "add what it leaves open, not repeat it")
    parser.add_argument("--certificate-oidc-issuer", "--cert-oidc-issuer", metavar="URL",
                        help="OIDC issuer the signing certificate must name (default GitHub "
                             "Actions'; give a self-hosted instance's workflow issuer, e.g. "
                             "http://HOST:PORT/oidc/github, to verify its provenance)")
    root = parser.add_mutually_exclusive_group()
    root.add_argument("--trusted-root", metavar="FILE",
                      help="trusted_root.json to verify against (default: the public-good "
                           "root, with GitHub's beside it for private-repository attestations)")
    root.add_argument("--staging", action="store_true",
                      help="use the public-good staging trust root")
    root.add_argument("--instance", metavar="NAME",
                      help="use the newest verified trust root of an instance (packaged, or "
                           "added with `sealtrail trust add`; read offline)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object with the result on standard output")
    from sealtrail.cli.vsa_commands import add_vsa_out_arguments  # stdlib-only module

    add_vsa_out_arguments(parser)


def _workflow_inputs(pairs: list[str]) -> dict[str, str]:
    from sealtrail.errors import UsageError

    inputs = {}
    for pair in pairs:
        # SPEC: slsa-verifier: a workflow input must split into exactly two parts on "=".
        parts = pair.split("=")
        if len(parts) != 2 or not parts[0]:
            raise UsageError("--build-workflow-input must be KEY=VALUE", actual=pair)
        inputs[parts[0]] = parts[1]
    return inputs


def _hash_artifacts(paths: list[str]) -> list[dict[str, bytes]]:
    """sha256 of every artifact; several files are hashed in threads (hashlib releases the
    GIL on large buffers, so they use several cores)."""
    from sealtrail._internal.files import digest_file

    if len(paths) == 1:
        return [digest_file(paths[0], ("sha256",))]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(os.cpu_count() or 1, len(paths))) as pool:
        return list(pool.map(lambda path: digest_file(path, ("sha256",)), paths))


def _failed(args: Any, error: Any, artifact: str | None = None) -> int:
    """slsa-verifier's failure line (and the --json object); the error's exit status."""
    if args.json:
        from sealtrail.cli import trust_commands

        data = {"ok": False, "artifact": artifact, **error.to_json()}
        print(json.dumps(trust_commands.annotate_result(args, data), sort_keys=True))
    print(f"FAILED: SLSA verification failed: {error.code}: {error.diagnostics()}",
          file=sys.stderr)
    if error.exit_code == 1:
        from sealtrail.cli import trust_commands

        trust_commands.print_root_notes(args, [error.code])
    code: int = error.exit_code
    return code


def run(args: Any) -> int:
    from sealtrail._internal.keyfiles import read_bounded
    from sealtrail.cli import trust_commands
    from sealtrail.errors import Error, InputError
    from sealtrail.provenance.gitlab import GITLAB_BUILD_TYPE
    from sealtrail.provenance.local import LOCAL_BUILD_TYPE, verify_provenance
    from sealtrail.provenance.slsa import SlsaExpectations
    from sealtrail.cli.vsa_commands import check_vsa_arguments, write_vsa

    check_vsa_arguments(args)  # --vsa-* flags that cannot work: exit 2 before any check
    policy = None
    try:
        flags = {"source_uri": args.source_uri, "builder_id": args.builder_id,
                 "source_branch": args.source_branch, "source_tag": args.source_tag,
                 "source_versioned_tag": args.source_versioned_tag,
                 "workflow_inputs": _workflow_inputs(args.build_workflow_input),
                 "oidc_issuer": args.certificate_oidc_issuer}
        if args.policy:
            from sealtrail.cli.policy_commands import load_policy

            policy = load_policy(args.policy)
            expectations = SlsaExpectations.from_policy(policy, **flags).checked()
        else:
            if not args.source_uri:
                from sealtrail.errors import UsageError

                raise UsageError("the following arguments are required: --source-uri "
                                 "(or --policy naming the source)")
            flags["oidc_issuer"] = args.certificate_oidc_issuer or GITHUB_ACTIONS_ISSUER
            expectations = SlsaExpectations(**flags).checked()
        provenance = read_bounded(args.provenance_path, MAX_PROVENANCE_BYTES,
                                  what="provenance", error=InputError)
        digests = _hash_artifacts(args.artifacts)
        root = trust_commands.verification_root(args)
        others = trust_commands.companion_roots(args) or []
        # A local build (attest-provenance --local) goes the local path when a policy may
        # trust its machine (docs/provenance.md, "### Local builds").
        verified = verify_provenance(digests, provenance, expectations,
                                     trusted_root=root.data, other_roots=others)
    except Error as exc:
        return _failed(args, exc, args.artifacts[0] if len(args.artifacts) == 1 else None)
    for artifact, subject in zip(args.artifacts, verified.subjects):
        print(f'Verified build using builder "{verified.builder_id}" at commit '
              f"{verified.commit}", file=sys.stderr)
        if args.print_provenance:
            sys.stdout.write(verified.payload.decode("utf-8", "replace") + "\n")
    if args.json:
        data = {"ok": True, **verified.to_json(),
                "artifacts": [{"artifact": path, "sha256": digest["sha256"].hex(),
                               "subject": subject.name}
                              for path, digest, subject in zip(args.artifacts, digests,
                                                               verified.subjects)]}
        print(json.dumps(trust_commands.annotate_result(args, data), sort_keys=True))
    # --vsa-out: a VSA of this passed check (docs/provenance.md, "verify-vsa and --vsa-out").
    write_vsa(args, [(os.path.basename(path), digest["sha256"])
                     for path, digest in zip(args.artifacts, digests)],
              [args.provenance_path],
              {"command": "verify-artifact", "source_uri": args.source_uri,
               "builder_id": args.builder_id, "source_tag": args.source_tag,
               "source_versioned_tag": args.source_versioned_tag,
               "source_branch": args.source_branch,
               "build_workflow_inputs": _workflow_inputs(args.build_workflow_input),
               "certificate_oidc_issuer": expectations.oidc_issuer},
              f"SLSA_BUILD_LEVEL_{verified.build_level}",
              policy_sha256=policy.digest() if policy is not None else None)
    why = ""
    if verified.build_type == LOCAL_BUILD_TYPE:
        why = (f" (SLSA Build L{verified.build_level}: built on {verified.builder_id}, not an "
               "isolated platform)")
    elif verified.build_type == GITLAB_BUILD_TYPE:
        why = (f" (SLSA Build L{verified.build_level}: a GitLab CI job on {verified.builder_id}; "
               "the job's steps can reach its signing token, so not isolated)")
    print("PASSED: SLSA verification passed" + why, file=sys.stderr)
    return 0
