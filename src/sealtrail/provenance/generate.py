"""SLSA v1 provenance generated where the build runs (`sealtrail attest-provenance`).

Pure: the environment (a mapping of variables), the event payload (bytes) and the identity
token's claims (read by the CLI, unverified: the CA verifies the token) go in; the in-toto
statement comes out. The CLI hashes files, reads the event file and signs.

GitHub Actions. SPEC: actions/toolkit packages/attest/src/provenance.ts
(``buildSLSAProvenancePredicate``) fills the predicate from the workflow token's claims;
shared/reference/provenance-formats.md §1 lists the fields. sealtrail fills the same fields from
the ``GITHUB_*`` variables the runner sets (they carry the same values) and refuses a variable
that contradicts the token: the certificate is issued for the token, so a job that could set
another repository or commit in its variables must not get provenance claiming it. The job
workflow ref (the builder: a reusable workflow when one runs the job) exists only in the token;
``GITHUB_WORKFLOW_REF`` (the caller's workflow) stands in when the token cannot be read.

Subjects. SPEC: slsa-verification.md §5 (slsa-github-generator's ``base64-subjects``) and
provenance-formats.md §1 (actions/attest's ``subject-path``, ``subject-checksums``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any, Iterable, Mapping, NamedTuple, Sequence
from urllib.parse import urlsplit

from sealtrail.errors import InputError, UsageError
from sealtrail.provenance.intoto_predicates import BUILD_TYPE_GITHUB_WORKFLOW, SLSA_PROVENANCE_V1

__all__ = [
    "GITHUB_VARIABLES",
    "LOCAL_BUILDER_PREFIX",
    "LOCAL_BUILD_TYPE",
    "LocalBuild",
    "MAX_SUBJECTS",
    "STATEMENT_V1",
    "GitHubRun",
    "Subject",
    "github_predicate",
    "github_run",
    "local_predicate",
    "merge_subjects",
    "missing_github_variables",
    "parse_base64_subjects",
    "parse_checksums",
    "provenance_statement",
    "source_repository",
]

STATEMENT_V1 = "https://in-toto.io/Statement/v1"
# A build on a developer's machine or an unrecognised CI: sealtrail's own buildType, defined in
# docs/provenance.md "## attest-provenance" (no project URL exists yet to host it). Its builder
# is the machine; nothing isolates the build from the person running it: SLSA Build L1.
LOCAL_BUILD_TYPE = "urn:sealtrail:buildtype:local:v1"
LOCAL_BUILDER_PREFIX = "urn:sealtrail:builder:local:"
# SPEC: actions/attest src/subject.ts caps the subjects of one attestation at 1024.
MAX_SUBJECTS = 1024
MAX_EVENT_PAYLOAD = 16 * 1024 * 1024

# What a GitHub Actions job sets and the predicate needs (GitHub docs, "Variables reference").
GITHUB_VARIABLES = (
    "GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_REF", "GITHUB_SHA", "GITHUB_WORKFLOW_REF",
    "GITHUB_EVENT_NAME", "GITHUB_EVENT_PATH", "GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT",
    "GITHUB_REPOSITORY_ID", "GITHUB_REPOSITORY_OWNER_ID", "RUNNER_ENVIRONMENT",
)
# Token claim -> the variable carrying the same value (GitHub docs, "OIDC token claims").
_CLAIM_VARIABLES = (
    ("repository", "GITHUB_REPOSITORY"), ("ref", "GITHUB_REF"), ("sha", "GITHUB_SHA"),
    ("workflow_ref", "GITHUB_WORKFLOW_REF"), ("event_name", "GITHUB_EVENT_NAME"),
    ("run_id", "GITHUB_RUN_ID"), ("run_attempt", "GITHUB_RUN_ATTEMPT"),
    ("repository_id", "GITHUB_REPOSITORY_ID"),
    ("repository_owner_id", "GITHUB_REPOSITORY_OWNER_ID"),
    ("runner_environment", "RUNNER_ENVIRONMENT"),
)

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")
_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_DECIMAL = re.compile(r"[1-9][0-9]{0,19}")
_EVENT = re.compile(r"[a-z_]{1,64}")
# owner/repo/path@ref: a workflow file in a repository, at a ref.
_WORKFLOW_REF = re.compile(r"([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)/([^@\s]+)@(\S+)")
_RUNNERS = ("github-hosted", "self-hosted")


class Subject(NamedTuple):
    """One subject of the statement: a name and its digests (algorithm -> lowercase hex)."""

    name: str
    digest: Mapping[str, str]


# -- subjects ----------------------------------------------------------------------------------


def parse_base64_subjects(text: str) -> list[Subject]:
    """slsa-github-generator's ``base64-subjects``: ``sha256sum a b | base64 -w0``.

    SPEC: slsa-verification.md §5: each decoded line splits at the first space or tab; the
    hash must be 64 hex characters (lowercased); names are trimmed and must not repeat.
    Raises :class:`UsageError` naming the line at fault."""
    try:
        decoded = base64.b64decode(text.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise UsageError("--base64-subjects is not base64 of UTF-8 text "
                         "(expected: sha256sum FILES | base64 -w0)") from None
    subjects: list[Subject] = []
    seen: set[str] = set()
    for number, line in enumerate(decoded.split("\n"), 1):
        line = line.strip()
        if not line:
            continue
        cut = min((i for i in (line.find(" "), line.find("\t")) if i >= 0), default=-1)
        if cut < 0:
            raise UsageError(f"--base64-subjects line {number} has no name after its hash",
                             actual=line[:100])
        digest, name = line[:cut].strip().lower(), line[cut + 1:].strip()
        if not _HEX64.fullmatch(digest):
            raise UsageError(f"--base64-subjects line {number}: the hash is not a SHA-256 "
                             "digest (64 hex characters)", actual=digest[:100])
        if not name:
            raise UsageError(f"--base64-subjects line {number} has no name after its hash")
        if name in seen:
            raise UsageError(f"--base64-subjects names {name!r} twice")
        seen.add(name)
        subjects.append(Subject(name, {"sha256": digest}))
    if not subjects:
        raise UsageError("--base64-subjects holds no subject")
    return subjects


def parse_checksums(text: str, what: str) -> list[Subject]:
    """A ``sha256sum``-style file (actions/attest's ``subject-checksums``): one ``HASH NAME``
    per line, blank lines skipped; a ``*`` before the name (binary mode) is dropped; the hash
    is SHA-256 (64 hex) or SHA-512 (128 hex), lowercased; names must not repeat."""
    subjects: list[Subject] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().split(None, 1)
        if len(parts) != 2:
            raise UsageError(f"{what} line {number} has no name after its hash",
                             actual=line[:100])
        digest, name = parts[0].lower(), parts[1].strip()
        name = name[1:] if name.startswith("*") else name
        if _HEX64.fullmatch(digest):
            algorithm = "sha256"
        elif _HEX128.fullmatch(digest):
            algorithm = "sha512"
        else:
            raise UsageError(f"{what} line {number}: the hash is not a SHA-256 or SHA-512 "
                             "digest (64 or 128 hex characters)", actual=digest[:130])
        if not name:
            raise UsageError(f"{what} line {number} has no name after its hash")
        if name in seen:
            raise UsageError(f"{what} names {name!r} twice")
        seen.add(name)
        subjects.append(Subject(name, {algorithm: digest}))
    if not subjects:
        raise UsageError(f"{what} holds no subject")
    return subjects


def merge_subjects(groups: Iterable[Sequence[Subject]]) -> list[Subject]:
    """All subjects in order; a name given twice with the same digests counts once, with
    other digests it is refused (two different artifacts cannot share a name); at most
    :data:`MAX_SUBJECTS`."""
    merged: dict[str, Subject] = {}
    for group in groups:
        for subject in group:
            known = merged.get(subject.name)
            if known is None:
                merged[subject.name] = subject
            elif dict(known.digest) != dict(subject.digest):
                raise UsageError(f"two different subjects are named {subject.name!r}",
                                 actual=dict(subject.digest), expected=dict(known.digest))
    if not merged:
        raise UsageError("no subjects: give FILEs or globs, --subjects-file or "
                         "--base64-subjects")
    if len(merged) > MAX_SUBJECTS:
        raise UsageError("too many subjects", actual=len(merged), expected=f"<= {MAX_SUBJECTS}")
    return list(merged.values())


# -- the GitHub Actions run --------------------------------------------------------------------


class GitHubRun(NamedTuple):
    """The job, as the predicate records it (names as GitHub's token claims)."""

    server_url: str
    repository: str
    ref: str
    sha: str
    workflow_ref: str
    job_workflow_ref: str
    event_name: str
    run_id: str
    run_attempt: str
    repository_id: str
    repository_owner_id: str
    runner_environment: str
    # The event payload's repository.visibility ("public", "private", "internal"), "" if it
    # does not say: actions/attest logs to public-good only a public repository's provenance.
    visibility: str = ""


def missing_github_variables(env: Mapping[str, str]) -> list[str]:
    """The variables of :data:`GITHUB_VARIABLES` that are unset or empty."""
    return [name for name in GITHUB_VARIABLES if not env.get(name)]


def _claim_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (str, int)):
        return str(value)
    return None


def github_run(env: Mapping[str, str], event_payload: bytes,
               claims: Mapping[str, Any] | None) -> GitHubRun:
    """The run described by ``env`` (GitHub Actions' variables), checked against the event
    payload and, when readable, the identity token's ``claims``.

    Raises :class:`UsageError` naming every missing variable, or one malformed; and
    :class:`InputError` for a variable contradicting the token or the event payload."""
    missing = missing_github_variables(env)
    if missing:
        raise UsageError("not in a GitHub Actions job: " + ", ".join(missing)
                         + (" is" if len(missing) == 1 else " are") + " not set")

    def variable(name: str, pattern: re.Pattern[str], expected: str) -> str:
        value = env[name]
        if not pattern.fullmatch(value):
            raise UsageError(f"{name} is malformed", actual=value[:200], expected=expected)
        return value

    server = env["GITHUB_SERVER_URL"].rstrip("/")
    parts = urlsplit(server)
    if parts.scheme != "https" or not parts.hostname or parts.path or parts.query \
            or parts.fragment or parts.username or parts.password:
        raise UsageError("GITHUB_SERVER_URL is not an https:// server URL",
                         actual=env["GITHUB_SERVER_URL"][:200], expected="https://github.com")
    repository = variable("GITHUB_REPOSITORY", _REPOSITORY, "OWNER/NAME")
    ref = env["GITHUB_REF"]
    if not ref.startswith("refs/") or any(c.isspace() for c in ref):
        raise UsageError("GITHUB_REF is malformed", actual=ref[:200], expected="refs/...")
    sha = variable("GITHUB_SHA", _COMMIT, "a commit id (40 lowercase hex characters)")
    workflow_ref = variable("GITHUB_WORKFLOW_REF", _WORKFLOW_REF,
                            "OWNER/NAME/.github/workflows/FILE@REF")
    if not workflow_ref.startswith(repository + "/"):
        raise InputError("GITHUB_WORKFLOW_REF names a workflow of another repository than "
                         "GITHUB_REPOSITORY", actual=workflow_ref[:200],
                         expected=f"{repository}/...")
    run = GitHubRun(
        server_url=server, repository=repository, ref=ref, sha=sha, workflow_ref=workflow_ref,
        job_workflow_ref=workflow_ref,
        event_name=variable("GITHUB_EVENT_NAME", _EVENT, "an event name"),
        run_id=variable("GITHUB_RUN_ID", _DECIMAL, "a decimal id"),
        run_attempt=variable("GITHUB_RUN_ATTEMPT", _DECIMAL, "a decimal number"),
        repository_id=variable("GITHUB_REPOSITORY_ID", _DECIMAL, "a decimal id"),
        repository_owner_id=variable("GITHUB_REPOSITORY_OWNER_ID", _DECIMAL, "a decimal id"),
        runner_environment=env["RUNNER_ENVIRONMENT"])
    if run.runner_environment not in _RUNNERS:
        raise UsageError("RUNNER_ENVIRONMENT is malformed", actual=run.runner_environment[:200],
                         expected=" or ".join(_RUNNERS))
    if claims is not None:
        if not isinstance(claims.get("repository"), str):
            # An email or other CI's token: its certificate would not name the workflow, so
            # nothing would bind the provenance's claims to the job that made it.
            raise InputError("the identity token is not a GitHub Actions workflow token (no "
                             "repository claim): its certificate would not name the workflow",
                             actual=str(claims.get("iss"))[:200])
        for claim, name in _CLAIM_VARIABLES:
            have = _claim_text(claims.get(claim))
            if have is not None and have != env[name]:
                # SPEC: provenance.ts reads these from the token: the token, not the
                # variable, is what the certificate vouches for.
                raise InputError(f"{name} contradicts the identity token's {claim} claim",
                                 actual=env[name][:200], expected=have[:200])
        job = claims.get("job_workflow_ref")
        if job is not None:
            if not isinstance(job, str) or not _WORKFLOW_REF.fullmatch(job):
                raise InputError("the identity token's job_workflow_ref claim is malformed",
                                 actual=str(job)[:200],
                                 expected="OWNER/NAME/.github/workflows/FILE@REF")
            run = run._replace(job_workflow_ref=job)
    return _check_event_payload(run, event_payload)


def _check_event_payload(run: GitHubRun, data: bytes) -> GitHubRun:
    """The event file must be a JSON object agreeing with the variables where both say the
    same thing: the repository's name and id, and a push's or dispatch's ref. (Not a push's
    ``after``: for an annotated tag it may name the tag object, not GITHUB_SHA's commit.)"""
    what = "the event payload (GITHUB_EVENT_PATH)"
    if len(data) > MAX_EVENT_PAYLOAD:
        raise UsageError(f"{what} is too large", actual=len(data),
                         expected=f"<= {MAX_EVENT_PAYLOAD} bytes")
    try:
        payload = json.loads(data)
    except ValueError as exc:
        raise UsageError(f"{what} is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise UsageError(f"{what} is not a JSON object", actual=type(payload).__name__)
    repository = payload.get("repository")
    checks: list[tuple[str, Any, str]] = []
    if isinstance(repository, dict):
        checks += [("repository.full_name", repository.get("full_name"), run.repository),
                   ("repository.id", repository.get("id"), run.repository_id)]
    if run.event_name in ("push", "workflow_dispatch"):
        checks.append(("ref", payload.get("ref"), run.ref))
    for field, value, expected in checks:
        have = _claim_text(value)
        if have is not None and have != expected:
            raise InputError(f"{what} contradicts the variables: its {field}",
                             actual=have[:200], expected=expected)
    visibility = repository.get("visibility") if isinstance(repository, dict) else None
    return run._replace(visibility=visibility if isinstance(visibility, str) else "")


# -- the statement -----------------------------------------------------------------------------


def github_predicate(run: GitHubRun) -> dict[str, Any]:
    """The SLSA v1 predicate actions/attest writes, field for field.

    SPEC: actions/toolkit packages/attest/src/provenance.ts: the workflow path is the
    workflow ref without its ``<repository>/`` prefix, before the ``@``; the source and the
    workflow are at the run's ref; the builder is the job's workflow (the reusable one when
    one runs the job)."""
    server = run.server_url
    path = run.workflow_ref.replace(f"{run.repository}/", "", 1).split("@")[0]
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE_GITHUB_WORKFLOW,
            "externalParameters": {
                "workflow": {"ref": run.ref, "repository": f"{server}/{run.repository}",
                             "path": path},
            },
            "internalParameters": {
                "github": {"event_name": run.event_name, "repository_id": run.repository_id,
                           "repository_owner_id": run.repository_owner_id,
                           "runner_environment": run.runner_environment},
            },
            "resolvedDependencies": [
                {"uri": f"git+{server}/{run.repository}@{run.ref}",
                 "digest": {"gitCommit": run.sha}},
            ],
        },
        "runDetails": {
            "builder": {"id": f"{server}/{run.job_workflow_ref}"},
            "metadata": {"invocationId": f"{server}/{run.repository}/actions/runs/"
                                         f"{run.run_id}/attempts/{run.run_attempt}"},
        },
    }


def provenance_statement(subjects: Sequence[Subject], predicate: Mapping[str, Any]) -> bytes:
    """The in-toto statement v1 (JSON bytes) binding ``predicate`` (SLSA v1) to ``subjects``,
    keys in actions/attest's order."""
    if not subjects:
        raise UsageError("a provenance statement needs at least one subject")
    statement = {
        "_type": STATEMENT_V1,
        "subject": [{"name": s.name, "digest": dict(s.digest)} for s in subjects],
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": dict(predicate),
    }
    return json.dumps(statement, separators=(",", ":"), ensure_ascii=False).encode()


# -- a local build -----------------------------------------------------------------------------


class LocalBuild(NamedTuple):
    """A build from a git working tree, as the CLI found it.

    ``repository`` is the remote's URL as git gives it (credentials are dropped by
    :func:`source_repository`); ``ref`` the checked-out branch or tag (``refs/...``), empty
    when detached; ``dirty`` whether the tree differs from the commit (tracked changes or
    untracked, unignored files); ``host`` the machine's name."""

    repository: str
    ref: str
    commit: str
    dirty: bool
    host: str


_SCP_LIKE = re.compile(r"([A-Za-z0-9._-]+@)?([A-Za-z0-9.-]+):(?!//)(.+)")
_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}")


def source_repository(remote: str) -> str:
    """The remote as a URL without credentials: ``https://user:token@host/o/r.git`` becomes
    ``https://host/o/r.git`` (a token must never reach a public log), scp-like
    ``git@host:o/r.git`` becomes ``ssh://git@host/o/r.git`` (git's own reading of it, RFC 3986
    form). Raises :class:`UsageError` for a local path or an unusable URL: a verifier could not
    name the source."""
    remote = remote.strip()
    if not remote or any(c.isspace() for c in remote):
        raise UsageError("the git remote's URL is empty or has spaces", actual=remote[:200])
    scp = _SCP_LIKE.fullmatch(remote)
    if scp and "/" not in scp.group(2) and len(scp.group(2)) > 1:
        user, host, path = scp.groups()
        return f"ssh://{user or ''}{host}/{path.lstrip('/')}"
    parts = urlsplit(remote)
    if parts.scheme not in ("https", "http", "ssh", "git") or not parts.hostname:
        raise UsageError("the git remote is not a network URL (https://, ssh://, git:// or "
                         "host:path): provenance must name a source others can fetch",
                         actual=remote[:200])
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    # ssh's user name is not a secret (git@); an http(s) user name may be a token.
    user = f"{parts.username}@" if parts.scheme == "ssh" and parts.username else ""
    return parts._replace(netloc=user + host, query="", fragment="").geturl()


def local_predicate(build: LocalBuild) -> dict[str, Any]:
    """The SLSA v1 predicate of :data:`LOCAL_BUILD_TYPE`: the source as in actions/attest's
    (``resolvedDependencies[0]`` = ``git+<repository>@<ref>`` and its commit, so verifiers
    find it where they look), and in ``internalParameters`` what makes it Build L1: the
    build is not isolated, and the tree may have been dirty.

    No build times: the command runs after the build and cannot know them."""
    repository = source_repository(build.repository)
    if not _COMMIT.fullmatch(build.commit):
        raise UsageError("the commit is not a git object id", actual=build.commit[:100])
    if build.ref and (not build.ref.startswith("refs/") or any(c.isspace() for c in build.ref)):
        raise UsageError("the ref is malformed", actual=build.ref[:200], expected="refs/...")
    if not _HOST.fullmatch(build.host):
        raise UsageError("the host name is malformed", actual=build.host[:100])
    at = build.ref or build.commit
    return {
        "buildDefinition": {
            "buildType": LOCAL_BUILD_TYPE,
            "externalParameters": {"source": {"repository": repository, "ref": build.ref,
                                              "dirty": build.dirty}},
            "internalParameters": {"platform": "local", "isolated": False,
                                   "slsaBuildLevel": 1},
            "resolvedDependencies": [{"uri": f"git+{repository}@{at}",
                                      "digest": {"gitCommit": build.commit}}],
        },
        "runDetails": {"builder": {"id": LOCAL_BUILDER_PREFIX + build.host.lower()}},
    }
