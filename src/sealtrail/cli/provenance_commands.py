"""``sealtrail attest-provenance``: SLSA v1 provenance of a GitHub Actions or GitLab CI build
(or a local one), made from the job's environment, signed keyless and written as a bundle.

The statement is built by :mod:`sealtrail.provenance.generate` (pure); here files are hashed,
the event payload read, the identity token found and the statement signed. Only stdlib at the
top: the CLI imports this module to build its parser.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

# SPEC: slsa-github-generator names its provenance <name>.intoto.jsonl, or
# multiple.intoto.jsonl for several subjects; neither collides with a `.sigstore.json`
# signature bundle of `sealtrail sign`.
PROVENANCE_SUFFIX = ".intoto.jsonl"
MULTIPLE_NAME = "multiple.intoto.jsonl"
_GLOB_CHARS = frozenset("*?[")


def add_arguments(parser: Any) -> None:
    parser.description = (
        "Make SLSA v1 provenance for SUBJECTs in a GitHub Actions job, as actions/attest-build-"
        "provenance does (buildType https://actions.github.io/buildtypes/workflow/v1, fields "
        "from the GITHUB_* variables, checked against the job's identity token), or in a "
        "GitLab CI job (GITLAB_CI set: sealtrail's buildType https://sealtrail.dev/buildtypes/"
        "gitlab-ci/v1 from the CI_* variables, checked against the id_tokens token in "
        "$SIGSTORE_ID_TOKEN), sign it keyless (DSSE), log it, and write a bundle: "
        "<subject>.intoto.jsonl, or "
        "multiple.intoto.jsonl for several subjects.")
    parser.add_argument("subjects", nargs="*", metavar="SUBJECT",
                        help="a file or a glob (quoted; ** recurses); its name is its basename")
    parser.add_argument("--subjects-file", metavar="F",
                        help="subjects from a sha256sum-style file (HASH NAME per line), as "
                             "actions/attest's subject-checksums")
    parser.add_argument("--base64-subjects", metavar="B64",
                        help="subjects as slsa-github-generator takes them: "
                             "`sha256sum FILES | base64 -w0`")
    parser.add_argument("--output", "-o", metavar="F",
                        help="the bundle to write (default <first subject>.intoto.jsonl for "
                             "one subject, multiple.intoto.jsonl for several)")
    parser.add_argument("--local", action="store_true",
                        help="a build on this machine (not GitHub Actions): the source from git "
                             "(remote, commit, ref, dirty tree), the machine as builder, marked "
                             "SLSA Build L1 (not isolated); signed with any identity")
    parser.add_argument("--source-dir", metavar="DIR", default=".",
                        help="with --local: the git working tree built (default .)")
    parser.add_argument("--git-remote", metavar="NAME",
                        help="with --local: the remote naming the source (default: the "
                             "branch's upstream remote, else origin, else the only one)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--trust-config", metavar="FILE",
                        help="client trust config (trusted root + signing config)")
    source.add_argument("--instance-dir", metavar="DIR",
                        help="a local instance made by `sealtrail init` (its trust config)")
    source.add_argument("--instance", metavar="NAME",
                        help="a packaged or added instance (public-good, public-good-staging, "
                             "...)")
    source.add_argument("--staging", action="store_true",
                        help="the public-good staging instance (default: public-good)")
    parser.add_argument("--identity-token", metavar="TOKEN",
                        help="the job's OIDC identity token (else $SIGSTORE_ID_TOKEN, else "
                             "requested from GitHub Actions with id-token: write)")
    parser.add_argument("--rekor-version", type=int, choices=(1, 2),
                        help="log to a Rekor v1 or v2 log (default: the newest offered)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    parser.add_argument("--allow-private-repository", action="store_true",
                        help="sign a private or internal repository's provenance with a "
                             "public instance (public-good): its names and commit are then "
                             "published in a public transparency log, for good")
    parser.add_argument("--json", action="store_true",
                        help="print the result as JSON (bundle, builder, subjects)")


def _subjects_of_paths(patterns: list[str]) -> list[Any]:
    """Each SUBJECT is a file or a glob of files (directories skipped); names are basenames,
    as actions/attest's subject-path names them."""
    import glob

    from sealtrail.errors import UsageError
    from sealtrail.provenance.generate import MAX_SUBJECTS, Subject
    from sealtrail.sign import hash_file

    paths: list[str] = []
    for pattern in patterns:
        if _GLOB_CHARS & set(pattern) and not os.path.exists(pattern):
            found = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
            if not found:
                raise UsageError(f"{pattern} matches no file")
            paths += found
        elif os.path.isfile(pattern):
            paths.append(pattern)
        else:
            raise UsageError(f"{pattern} is not a file")
        if len(paths) > MAX_SUBJECTS:
            raise UsageError("too many subjects", expected=f"<= {MAX_SUBJECTS}")
    unique = list(dict.fromkeys(os.path.realpath(p) for p in paths))
    return [Subject(os.path.basename(p), {"sha256": hash_file(p).hex()}) for p in unique]


def _read_text(path: str, what: str) -> str:
    from sealtrail.cli.sign_commands import _read_small
    from sealtrail.errors import UsageError

    try:
        return _read_small(path, what).decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{what} {path} is not UTF-8 text") from None


def _default_output(subjects: list[Any]) -> str:
    from sealtrail.errors import UsageError

    if len(subjects) > 1:
        return MULTIPLE_NAME
    name: str = os.path.basename(subjects[0].name)
    if name in ("", ".", ".."):
        raise UsageError(f"no file name in subject {subjects[0].name!r}: give --output")
    return name + PROVENANCE_SUFFIX


def _token_claims(token: Any) -> dict[str, Any] | None:
    """The token's claims if it is a JWT they can be read from (unverified: the CA checks
    the token; these only bind the provenance to what it certifies), else None."""
    from sealtrail.errors import TokenInvalidError

    try:
        claims: dict[str, Any] = token.claims
    except TokenInvalidError:
        return None
    return claims


def _check_visibility(args: Any, visibility: str, *, gitlab: bool = False) -> None:
    """SPEC: actions/attest src/main.ts signs with public-good only when the event payload's
    repository.visibility is "public" (else GitHub's own instance, which logs nothing): a
    transparency log is public and append-only, so a private repository's (or GitLab
    project's) names would leak for good. sealtrail does not switch instances silently; it
    refuses unless told."""
    public = not (args.trust_config or args.instance_dir) and (
        args.instance in (None, "public-good", "public-good-staging"))
    if public and visibility and visibility != "public" and not args.allow_private_repository:
        from sealtrail.errors import UsageError

        what, elsewhere = (("project", "your own instance") if gitlab else
                           ("repository", "--instance github (as actions/attest does) or "
                                          "your own instance"))
        raise UsageError(
            f"the {what} is {visibility}: signing with public-good would publish its names "
            f"and commit in a public transparency log; sign with {elsewhere}, or pass "
            "--allow-private-repository")


def _git(directory: str, *argv: str) -> tuple[int, str]:
    """``git -C directory argv...``: (exit status, stdout stripped). Local commands only;
    never a prompt."""
    import subprocess

    from sealtrail.errors import UsageError

    try:
        done = subprocess.run(["git", "-C", directory, *argv], capture_output=True, text=True,
                              timeout=60, env={**os.environ, "GIT_TERMINAL_PROMPT": "0",
                                               "LC_ALL": "C"})
    except FileNotFoundError:
        raise UsageError("--local needs git, which is not installed") from None
    except subprocess.TimeoutExpired:
        raise UsageError(f"git {argv[0]} did not finish in 60 s") from None
    return done.returncode, done.stdout.strip()


def _local_build(args: Any) -> Any:
    """The git facts of the working tree at --source-dir."""
    import socket

    from sealtrail.errors import UsageError
    from sealtrail.provenance.generate import LocalBuild

    directory = args.source_dir
    code, commit = _git(directory, "rev-parse", "--verify", "HEAD^{commit}")
    if code != 0:
        raise UsageError(f"{directory} is not a git working tree with a commit")
    code, ref = _git(directory, "symbolic-ref", "-q", "HEAD")
    branch = ref.removeprefix("refs/heads/") if code == 0 else ""
    if code != 0:  # detached: a tag, if exactly one names this commit
        code, tags = _git(directory, "tag", "--points-at", "HEAD")
        names = tags.split() if code == 0 else []
        ref = f"refs/tags/{names[0]}" if len(names) == 1 else ""
    _, listed = _git(directory, "remote")
    remotes = listed.split()
    remote = args.git_remote
    if remote is None:
        upstream = _git(directory, "config", "--get", f"branch.{branch}.remote")[1] \
            if branch else ""
        remote = (upstream if upstream in remotes else "origin" if "origin" in remotes
                  else remotes[0] if len(remotes) == 1 else None)
    if remote is None or remote not in remotes:
        raise UsageError("no git remote names the source" + (
            f": give --git-remote ({', '.join(remotes)})" if remotes else
            " (provenance must name a source others can fetch: add one)"))
    code, url = _git(directory, "remote", "get-url", remote)
    if code != 0 or not url:
        raise UsageError(f"git has no URL for remote {remote}")
    # SPEC: git status --porcelain: one line per changed or untracked (unignored) path.
    code, status = _git(directory, "status", "--porcelain", "--untracked-files=normal")
    if code != 0:
        raise UsageError(f"git status failed in {directory}")
    host = socket.gethostname().split(".")[0] or "localhost"
    return LocalBuild(url, ref, commit, bool(status), host)


def _subjects(args: Any) -> list[Any]:
    from sealtrail.provenance import generate

    groups = [_subjects_of_paths(args.subjects)]
    if args.subjects_file:
        groups.append(generate.parse_checksums(
            _read_text(args.subjects_file, "subjects file"), args.subjects_file))
    if args.base64_subjects is not None:
        groups.append(generate.parse_base64_subjects(args.base64_subjects))
    return generate.merge_subjects(groups)


def _run_local(args: Any) -> int:
    """--local: the statement from git, signed with whatever identity `attest` would use."""
    from types import SimpleNamespace

    from sealtrail.cli.sign_commands import _announce, _make_signer, _signing_context
    from sealtrail.provenance import generate
    from sealtrail.sign.outputs import StagedOutputs

    subjects = _subjects(args)
    output = args.output or _default_output(subjects)
    build = _local_build(args)
    predicate = generate.local_predicate(build)
    payload = generate.provenance_statement(subjects, predicate)
    source = predicate["buildDefinition"]["resolvedDependencies"][0]["uri"]
    print(f"local build of {source} ({build.commit}{', dirty tree' if build.dirty else ''}): "
          "SLSA Build L1, not built on an isolated platform", file=sys.stderr)
    signing = SimpleNamespace(
        trust_config=args.trust_config, instance_dir=args.instance_dir, instance=args.instance,
        staging=args.staging, rekor_version=args.rekor_version,
        identity_token=args.identity_token, oidc_issuer=None, builtin_email=None, key=None,
        jobs=1)
    with StagedOutputs(overwrite=args.overwrite) as outputs:
        outputs.plan([output])
        context = _signing_context(signing)
        with _make_signer(signing, context) as signer:
            _announce(signer)
            result = signer.sign_statement(payload, subjects[0].name)
        outputs.put(output, result.bundle_json())
        written = outputs.commit()
    return _report(args, written[0], predicate, result.log_index, subjects)


def _report(args: Any, bundle: str, predicate: dict[str, Any], log_index: Any,
            subjects: list[Any]) -> int:
    from sealtrail.cli._common import EXIT_OK

    if args.json:
        print(json.dumps({"ok": True, "bundle": bundle,
                          "build_type": predicate["buildDefinition"]["buildType"],
                          "builder_id": predicate["runDetails"]["builder"]["id"],
                          "log_index": log_index,
                          "subjects": [{"name": s.name, "digest": dict(s.digest)}
                                       for s in subjects]}, sort_keys=True))
    else:
        print(f"wrote {bundle}")
    return EXIT_OK


def gitlab_provenance(args: Any, env: Any, token: Any) -> dict[str, Any]:
    """The predicate of a GitLab CI job, checked against its token (``release sign`` too)."""
    from sealtrail.provenance import generate

    job = generate.gitlab_run(env, _token_claims(token))
    _check_visibility(args, job.visibility, gitlab=True)
    return generate.gitlab_predicate(job)


def _run_gitlab(args: Any, env: Any) -> int:
    """GitLab CI: the job from its CI_* variables, the token from its id_tokens (in
    $SIGSTORE_ID_TOKEN, or --identity-token), checked against each other before signing."""
    from sealtrail.cli.sign_commands import _announce, _signing_context
    from sealtrail.errors import UsageError
    from sealtrail.identity.tokens import find_identity_token
    from sealtrail.provenance import generate
    from sealtrail.sign import Signer
    from sealtrail.sign.certificate_request import CertificateRequest
    from sealtrail.sign.outputs import StagedOutputs

    missing = generate.missing_gitlab_variables(env)
    if missing:  # before any file is hashed or service asked
        raise UsageError("not in a GitLab CI job: " + ", ".join(missing)
                         + (" is" if len(missing) == 1 else " are") + " not set"
                         + " (for a build elsewhere: --local)")
    subjects = _subjects(args)
    output = args.output or _default_output(subjects)
    with StagedOutputs(overwrite=args.overwrite) as outputs:
        outputs.plan([output])
        context = _signing_context(args)
        token, source = find_identity_token(
            args.identity_token, read=False, oidc_issuer=getattr(context, "oidc_url", None))
        print(f"identity token from {source}", file=sys.stderr)
        predicate = gitlab_provenance(args, env, token)
        payload = generate.provenance_statement(subjects, predicate)
        request = CertificateRequest(context, token)
        with Signer(context, certificate_request=request, max_workers=1) as signer:
            _announce(signer)
            name = subjects[0].name + (f" and {len(subjects) - 1} more" if len(subjects) > 1
                                       else "")
            result = signer.sign_statement(payload, name)
        builder = predicate["runDetails"]["builder"]["id"]
        ref = predicate["buildDefinition"]["externalParameters"]["ref"]
        commit = predicate["buildDefinition"]["resolvedDependencies"][0]["digest"]["gitCommit"]
        print(f"provenance of {name} built by {builder} at {ref} ({commit}), "
              f"log index {result.log_index}", file=sys.stderr)
        outputs.put(output, result.bundle_json())
        written = outputs.commit()
    return _report(args, written[0], predicate, result.log_index, subjects)


def run(args: Any) -> int:
    from sealtrail.cli.sign_commands import _announce, _read_small, _signing_context
    from sealtrail.errors import UsageError
    from sealtrail.identity.tokens import find_identity_token
    from sealtrail.provenance import generate
    from sealtrail.sign.outputs import StagedOutputs

    if not args.local and (args.source_dir != "." or args.git_remote):
        raise UsageError("--source-dir and --git-remote go with --local")
    if args.local:
        if args.allow_private_repository:
            raise UsageError("--allow-private-repository is for GitHub Actions builds")
        return _run_local(args)
    env = os.environ
    missing = generate.missing_github_variables(env)
    if missing and env.get("GITLAB_CI") and not env.get("GITHUB_ACTIONS"):
        return _run_gitlab(args, env)
    if missing:  # before any file is hashed or service asked
        raise UsageError("not in a GitHub Actions job: " + ", ".join(missing)
                         + (" is" if len(missing) == 1 else " are") + " not set"
                         + " (for a build elsewhere: --local)")
    subjects = _subjects(args)
    output = args.output or _default_output(subjects)
    event = _read_small(env["GITHUB_EVENT_PATH"], "event payload (GITHUB_EVENT_PATH)",
                        generate.MAX_EVENT_PAYLOAD)
    with StagedOutputs(overwrite=args.overwrite) as outputs:
        outputs.plan([output])
        context = _signing_context(args)
        token, source = find_identity_token(
            args.identity_token, read=False, oidc_issuer=getattr(context, "oidc_url", None))
        print(f"identity token from {source}", file=sys.stderr)
        # Everything is checked before the CA is asked for a certificate.
        github = generate.github_run(env, event, _token_claims(token))
        _check_visibility(args, github.visibility)
        predicate = generate.github_predicate(github)
        payload = generate.provenance_statement(subjects, predicate)
        from sealtrail.sign import Signer
        from sealtrail.sign.certificate_request import CertificateRequest

        request = CertificateRequest(context, token)
        with Signer(context, certificate_request=request, max_workers=1) as signer:
            _announce(signer)
            name = subjects[0].name + (f" and {len(subjects) - 1} more" if len(subjects) > 1
                                       else "")
            result = signer.sign_statement(payload, name)
        builder = predicate["runDetails"]["builder"]["id"]
        print(f"provenance of {name} built by {builder} at {github.ref} ({github.sha}), "
              f"log index {result.log_index}", file=sys.stderr)
        outputs.put(output, result.bundle_json())
        written = outputs.commit()
    return _report(args, written[0], predicate, result.log_index, subjects)
