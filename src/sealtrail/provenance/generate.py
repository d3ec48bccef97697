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

GitLab CI. GitLab signs no provenance of its own (its runner writes an unsigned statement,
provenance-formats.md §3), so the buildType :data:`GITLAB_BUILD_TYPE` is sealtrail's, defined
in docs/provenance.md "## attest-provenance". Its fields come from GitLab's predefined ``CI_*``
variables, refused where they contradict the job's ``id_tokens`` token (the claims Fulcio
writes into the certificate, provenance-formats.md §3).

Subjects. SPEC: slsa-verification.md §5 (slsa-github-generator's ``base64-subjects``) and
provenance-formats.md §1 (actions/attest's ``subject-path``, ``subject-checksums``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from functools import partial
from typing import Any, Iterable, Mapping, NamedTuple, Sequence
from urllib.parse import urlsplit

from sealtrail.errors import InputError, UsageError
from sealtrail.provenance.intoto_predicates import BUILD_TYPE_GITHUB_WORKFLOW, SLSA_PROVENANCE_V1

__all__ = [
    "GITHUB_VARIABLES",
    "GITLAB_BUILD_TYPE",
    "GITLAB_VARIABLES",
    "LOCAL_BUILDER_PREFIX",
    "LOCAL_BUILD_TYPE",
    "MAX_SUBJECTS",
    "STATEMENT_V1",
    "GitHubRun",
    "GitLabRun",
    "LocalBuild",
    "Subject",
    "github_predicate",
    "github_run",
    "gitlab_predicate",
    "gitlab_run",
    "local_predicate",
    "merge_subjects",
    "missing_github_variables",
    "missing_gitlab_variables",
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
        name = name.removeprefix("*")
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


def _require_variables(missing: Sequence[str], ci: str) -> None:
    """A usage error naming every variable ``ci`` sets that is missing."""
    if missing:
        raise UsageError(f"not in a {ci} job: " + ", ".join(missing)
                         + (" is" if len(missing) == 1 else " are") + " not set")


def _variable(env: Mapping[str, str], name: str, pattern: re.Pattern[str],
              expected: str) -> str:
    """``env[name]``, which must match ``pattern`` whole (else a usage error)."""
    value = env[name]
    if not pattern.fullmatch(value):
        raise UsageError(f"{name} is malformed", actual=value[:200], expected=expected)
    return value


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
    _require_variables(missing_github_variables(env), "GitHub Actions")
    variable = partial(_variable, env)

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


# -- a GitLab CI job ---------------------------------------------------------------------------

# sealtrail's buildType for a GitLab CI job (docs/provenance.md "## attest-provenance", GitLab
# CI): GitLab defines none for signed provenance.
GITLAB_BUILD_TYPE = "https://sealtrail.dev/buildtypes/gitlab-ci/v1"

# What a GitLab CI job sets and the predicate needs (GitLab docs, "Predefined CI/CD
# variables"). CI_COMMIT_TAG is set in tag pipelines only.
GITLAB_VARIABLES = (
    "CI_SERVER_URL", "CI_PROJECT_PATH", "CI_PROJECT_ID", "CI_PROJECT_NAMESPACE",
    "CI_COMMIT_SHA", "CI_COMMIT_REF_NAME", "CI_PIPELINE_SOURCE", "CI_PIPELINE_ID", "CI_JOB_ID",
    "CI_JOB_URL", "CI_CONFIG_PATH", "CI_RUNNER_ID",
)
_GITLAB_PROJECT = re.compile(r"[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)+")
_GITLAB_NAMESPACE = re.compile(r"[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*")
_GITLAB_SOURCE = re.compile(r"[a-z_]{1,64}")
_CONFIG_PATH = re.compile(r"[A-Za-z0-9._+-]+(?:/[A-Za-z0-9._+-]+)*")
_GITLAB_RUNNERS = ("gitlab-hosted", "self-hosted")


class GitLabRun(NamedTuple):
    """The job, as the predicate records it. ``ref`` is fully qualified (``refs/heads/main``,
    ``refs/tags/v1``) as the certificate's .14; ``ref_name`` GitLab's short name;
    ``ci_config_ref_uri`` the token claim (no scheme, ``//`` before the config path);
    ``runner_environment`` empty when the token does not say."""

    server_url: str
    project: str
    project_id: str
    namespace: str
    sha: str
    ref_name: str
    ref_type: str
    ref: str
    pipeline_source: str
    pipeline_id: str
    job_id: str
    job_url: str
    config_path: str
    runner_id: str
    ci_config_ref_uri: str
    ci_config_sha: str
    runner_environment: str = ""
    visibility: str = ""


def missing_gitlab_variables(env: Mapping[str, str]) -> list[str]:
    """The variables of :data:`GITLAB_VARIABLES` that are unset or empty."""
    return [name for name in GITLAB_VARIABLES if not env.get(name)]


def _gitlab_server(value: str) -> str:
    server = value.rstrip("/")
    try:
        parts = urlsplit(server)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        parts = None
    # A self-managed GitLab may live under a path (a relative URL root), and on plain http.
    if parts is None or parts.scheme not in ("https", "http") or not parts.hostname \
            or parts.query or parts.fragment or parts.username or parts.password \
            or any(c.isspace() for c in server):
        raise UsageError("CI_SERVER_URL is not a server URL", actual=value[:200],
                         expected="https://gitlab.com")
    return server


def gitlab_run(env: Mapping[str, str], claims: Mapping[str, Any] | None) -> GitLabRun:
    """The job described by ``env`` (GitLab's predefined variables), checked against the
    ``id_tokens`` token's ``claims`` when readable.

    Raises :class:`UsageError` naming every missing variable, or one malformed; and
    :class:`InputError` for variables contradicting each other or the token."""
    _require_variables(missing_gitlab_variables(env), "GitLab CI")
    variable = partial(_variable, env)

    server = _gitlab_server(env["CI_SERVER_URL"])
    project = variable("CI_PROJECT_PATH", _GITLAB_PROJECT, "GROUP/PROJECT")
    namespace = variable("CI_PROJECT_NAMESPACE", _GITLAB_NAMESPACE, "GROUP[/SUBGROUP]")
    if project.rsplit("/", 1)[0] != namespace:
        raise InputError("CI_PROJECT_NAMESPACE is not the namespace of CI_PROJECT_PATH",
                         actual=namespace[:200], expected=project.rsplit("/", 1)[0])
    ref_name = env["CI_COMMIT_REF_NAME"]
    if any(c.isspace() or c in "~^:?*[\\" for c in ref_name) or ".." in ref_name:
        raise UsageError("CI_COMMIT_REF_NAME is malformed", actual=ref_name[:200])
    tag = env.get("CI_COMMIT_TAG", "")
    if tag and tag != ref_name:
        raise InputError("CI_COMMIT_TAG is not CI_COMMIT_REF_NAME", actual=tag[:200],
                         expected=ref_name[:200])
    ref_type = "tag" if tag else "branch"
    ref = f"refs/{'tags' if tag else 'heads'}/{ref_name}"
    sha = variable("CI_COMMIT_SHA", _COMMIT, "a commit id (40 lowercase hex characters)")
    job_id = variable("CI_JOB_ID", _DECIMAL, "a decimal id")
    job_url = env["CI_JOB_URL"]
    # SPEC: Fulcio's .21 for GitLab is <server>/<project>/-/jobs/<id>: the job URL must be it.
    if job_url.rstrip("/") != f"{server}/{project}/-/jobs/{job_id}":
        raise InputError("CI_JOB_URL is not the job CI_JOB_ID of CI_PROJECT_PATH on "
                         "CI_SERVER_URL", actual=job_url[:200],
                         expected=f"{server}/{project}/-/jobs/{job_id}")
    config_path = variable("CI_CONFIG_PATH", _CONFIG_PATH,
                           "a path in the project (an external or included config has no "
                           "ci_config_ref_uri claim, so no certificate identity to name it)")
    if any(part in (".", "..") for part in config_path.split("/")):
        raise UsageError("CI_CONFIG_PATH must not contain . or .. segments",
                         actual=config_path[:200])
    parts = urlsplit(server)
    run = GitLabRun(
        server_url=server, project=project,
        project_id=variable("CI_PROJECT_ID", _DECIMAL, "a decimal id"),
        namespace=namespace, sha=sha, ref_name=ref_name, ref_type=ref_type, ref=ref,
        pipeline_source=variable("CI_PIPELINE_SOURCE", _GITLAB_SOURCE, "a pipeline source"),
        pipeline_id=variable("CI_PIPELINE_ID", _DECIMAL, "a decimal id"),
        job_id=job_id, job_url=job_url.rstrip("/"), config_path=config_path,
        runner_id=variable("CI_RUNNER_ID", _DECIMAL, "a decimal id"),
        # SPEC: GitLab's ci_config_ref_uri: <host>/<project>//<config path>@<ref path>.
        ci_config_ref_uri=f"{parts.netloc}{parts.path}/{project}//{config_path}@{ref}",
        ci_config_sha=sha, visibility=env.get("CI_PROJECT_VISIBILITY", ""))
    if claims is None:
        return run
    return _check_gitlab_claims(run, claims)


def _check_gitlab_claims(run: GitLabRun, claims: Mapping[str, Any]) -> GitLabRun:
    if not isinstance(claims.get("project_path"), str):
        # An email or other CI's token: its certificate would not name the pipeline.
        raise InputError("the identity token is not a GitLab CI token (no project_path "
                         "claim): its certificate would not name the pipeline",
                         actual=str(claims.get("iss"))[:200])
    # SPEC: GitLab's iss is the instance's URL, which CI_SERVER_URL is.
    checks = (
        ("iss", "CI_SERVER_URL", run.server_url), ("project_path", "CI_PROJECT_PATH",
                                                   run.project),
        ("project_id", "CI_PROJECT_ID", run.project_id),
        ("namespace_path", "CI_PROJECT_NAMESPACE", run.namespace),
        ("sha", "CI_COMMIT_SHA", run.sha), ("ref", "CI_COMMIT_REF_NAME", run.ref_name),
        ("ref_type", "CI_COMMIT_TAG", run.ref_type),
        ("pipeline_source", "CI_PIPELINE_SOURCE", run.pipeline_source),
        ("pipeline_id", "CI_PIPELINE_ID", run.pipeline_id), ("job_id", "CI_JOB_ID", run.job_id),
        ("runner_id", "CI_RUNNER_ID", run.runner_id),
        ("ci_config_ref_uri", "CI_CONFIG_PATH", run.ci_config_ref_uri),
        ("project_visibility", "CI_PROJECT_VISIBILITY", run.visibility or None),
    )
    for claim, name, mine in checks:
        have = _claim_text(claims.get(claim))
        if have is None or mine is None:
            continue
        if claim == "iss":
            have = have.rstrip("/")
        if have != mine:
            # The certificate vouches for the token, not for the variables.
            raise InputError(f"{name} contradicts the identity token's {claim} claim",
                             actual=str(mine)[:200], expected=have[:200])
    if _claim_text(claims.get("ci_config_ref_uri")) is None:
        raise InputError("the identity token has no ci_config_ref_uri claim (a pipeline "
                         "config outside the project, or included): its certificate would "
                         "name no build config")
    runner = _claim_text(claims.get("runner_environment")) or ""
    if runner and runner not in _GITLAB_RUNNERS:
        raise InputError("the identity token's runner_environment claim is malformed",
                         actual=runner[:200], expected=" or ".join(_GITLAB_RUNNERS))
    config_sha = _claim_text(claims.get("ci_config_sha")) or run.sha
    if not _COMMIT.fullmatch(config_sha):
        raise InputError("the identity token's ci_config_sha claim is malformed",
                         actual=config_sha[:200])
    visibility = _claim_text(claims.get("project_visibility")) or run.visibility
    return run._replace(runner_environment=runner, ci_config_sha=config_sha,
                        visibility=visibility)


def gitlab_predicate(run: GitLabRun) -> dict[str, Any]:
    """The SLSA v1 predicate of :data:`GITLAB_BUILD_TYPE` (docs/provenance.md): the source in
    ``resolvedDependencies[0]`` as actions/attest's (``git+<repository>@<ref>``, the commit),
    the pipeline config as external parameters (its URI is the certificate's Build Config URI,
    .18), the job's ids as internal ones, the runner as builder, the job as invocation."""
    source = f"{run.server_url}/{run.project}"
    return {
        "buildDefinition": {
            "buildType": GITLAB_BUILD_TYPE,
            "externalParameters": {
                "source": source,
                "ci_config": f"https://{run.ci_config_ref_uri}",
                "ref": run.ref,
            },
            "internalParameters": {
                "gitlab": {
                    "project_id": run.project_id,
                    "namespace_path": run.namespace,
                    "pipeline_source": run.pipeline_source,
                    "pipeline_id": run.pipeline_id,
                    "job_id": run.job_id,
                    "runner_id": run.runner_id,
                    "runner_environment": run.runner_environment,
                    "ci_config_sha": run.ci_config_sha,
                },
            },
            "resolvedDependencies": [
                {"uri": f"git+{source}@{run.ref}", "digest": {"gitCommit": run.sha}},
            ],
        },
        "runDetails": {
            "builder": {"id": f"{source}/-/runners/{run.runner_id}"},
            "metadata": {"invocationId": run.job_url},
        },
    }
