"""Validation of the values that end up in minted tokens.

Every value the built-in issuer writes into a token is checked here first: it comes from a
command line or an HTTP request, and it later becomes part of a certificate (a SAN or a Fulcio
extension), so each one is bounded in length and restricted to characters that are safe in a
URI. Each check takes the error class to raise, so that the Python API reports
:class:`~sealtrail.errors.UsageError` and the HTTP request parser
:class:`~sealtrail.errors.InputError`.
"""

from __future__ import annotations

import re
from typing import Any

from sealtrail.errors import Error

__all__ = [
    "DEFAULT_AUDIENCE",
    "DEFAULT_LIFETIME",
    "GITLAB_PIPELINE_SOURCES",
    "GITLAB_RUNNER_ENVIRONMENTS",
    "MAX_LIFETIME",
    "RUNNER_ENVIRONMENTS",
    "VISIBILITIES",
    "check_actor",
    "check_audience",
    "check_bool",
    "check_choice",
    "check_decimal",
    "check_email",
    "check_environment",
    "check_event_name",
    "check_gitlab_project",
    "check_job_workflow_ref",
    "check_lifetime",
    "check_ref",
    "check_repository",
    "check_sha",
    "check_workflow_name",
    "check_workflow_path",
]

# SPEC: sigstore-wire.md §1: Fulcio's default client id, and sigstore-python requires aud=sigstore.
DEFAULT_AUDIENCE = "sigstore"
DEFAULT_LIFETIME = 600
# A development issuer has no business minting long-lived credentials: one hour at most.
MAX_LIFETIME = 3600

VISIBILITIES = ("public", "private", "internal")
RUNNER_ENVIRONMENTS = ("github-hosted", "self-hosted")
# SPEC: GitLab docs "OpenID Connect (OIDC) Authentication Using ID Tokens" (runner_environment)
# and "Predefined CI/CD variables" (CI_PIPELINE_SOURCE's values).
GITLAB_RUNNER_ENVIRONMENTS = ("gitlab-hosted", "self-hosted")
GITLAB_PIPELINE_SOURCES = (
    "api", "chat", "external", "external_pull_request_event", "merge_request_event",
    "ondemand_dast_scan", "ondemand_dast_validation", "parent_pipeline", "pipeline", "push",
    "schedule", "security_orchestration_policy", "trigger", "web", "webide",
)

_MAX_EMAIL = 254  # SPEC: RFC 5321 §4.5.3.1.3 (path limit 256 including the angle brackets).
_MAX_TEXT = 255
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# A deliberately conservative dot-atom: what any CA, x509 library and mail system accepts.
_EMAIL = re.compile(r"(?P<local>[A-Za-z0-9._%+-]{1,64})@(?P<domain>" + _LABEL + r"(?:\." + _LABEL
                    + r")*)")
# GitHub: owner names are 1-39 alphanumerics or hyphens; repository names letters, digits, . _ -
_OWNER = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})"
_REPOSITORY = re.compile(r"(?P<owner>" + _OWNER + r")/(?P<name>[A-Za-z0-9._-]{1,100})")
_SEGMENT = r"[A-Za-z0-9._+-]+"
_PATH = re.compile(_SEGMENT + r"(?:/" + _SEGMENT + r")*")
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # SHA-1 or SHA-256 object format
_EVENT = re.compile(r"[a-z_]{1,64}")
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")
_ACTOR = re.compile(_OWNER + r"(?:\[bot\])?")
_ENVIRONMENT = re.compile(r"[A-Za-z0-9._-]{1,255}")
# Free text (a workflow's display name): printable, no control characters (C0, DEL, C1).
_NAME = re.compile(r"[^\x00-\x1f\x7f-\x9f]{1,255}")
# An audience is an opaque string; printable ASCII without spaces keeps it one token.
_AUDIENCE = re.compile(r"[\x21-\x7e]{1,255}")


def _string(name: str, value: Any, limit: int, error: type[Error]) -> str:
    if not isinstance(value, str):
        raise error(f"{name} must be a string", actual=type(value).__name__)
    if not value:
        raise error(f"{name} must not be empty")
    if len(value) > limit:
        raise error(f"{name} is too long", expected=f"at most {limit} characters",
                    actual=f"{len(value)} characters")
    return value


def _match(name: str, value: Any, pattern: re.Pattern[str], limit: int, what: str,
           error: type[Error]) -> str:
    text = _string(name, value, limit, error)
    if pattern.fullmatch(text) is None:
        raise error(f"{name} is not {what}", actual=text)
    return text


def check_email(value: Any, error: type[Error]) -> str:
    """A well-formed, conservative email address (local@domain)."""
    text = _match("email", value, _EMAIL, _MAX_EMAIL, "a well-formed email address", error)
    local = text.split("@", 1)[0]
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise error("email is not a well-formed email address", actual=text)
    return text


def check_repository(value: Any, error: type[Error]) -> str:
    """A GitHub repository ``owner/name``."""
    text = _match("repository", value, _REPOSITORY, 140, "of the form owner/name", error)
    if text.split("/", 1)[1] in (".", ".."):
        raise error("repository is not of the form owner/name", actual=text)
    return text


# GitLab: a project path is a namespace (groups and subgroups) and a project name.
_GITLAB_PROJECT = re.compile(r"[A-Za-z0-9_.-]{1,255}(?:/[A-Za-z0-9_.-]{1,255}){1,20}")


def check_gitlab_project(value: Any, error: type[Error]) -> str:
    """A GitLab project path ``group[/subgroup...]/project``."""
    text = _match("project", value, _GITLAB_PROJECT, 1024, "of the form group/project", error)
    if any(part in (".", "..") or part.startswith(".") for part in text.split("/")):
        raise error("project is not of the form group/project", actual=text)
    return text


def check_workflow_path(value: Any, error: type[Error]) -> str:
    """A relative path inside the repository, e.g. ``.github/workflows/release.yml``."""
    text = _match("workflow path", value, _PATH, _MAX_TEXT,
                  "a relative path of letters, digits and . _ + - /", error)
    if any(part in (".", "..") for part in text.split("/")):
        raise error("workflow path must not contain . or .. segments", actual=text)
    return text


def check_ref(value: Any, error: type[Error]) -> str:
    """A fully qualified git ref, e.g. ``refs/heads/main`` or ``refs/tags/v1.0.0``."""
    text = _match("ref", value, _PATH, _MAX_TEXT, "a git ref of letters, digits and . _ + - /",
                  error)
    # SPEC: git-check-ref-format: no "..", no component starting with "." or ending ".lock".
    if not text.startswith("refs/") or text.count("/") < 2:
        raise error("ref must be fully qualified", expected="refs/<kind>/<name>", actual=text)
    if ".." in text or any(p.startswith(".") or p.endswith(".lock") for p in text.split("/")):
        raise error("ref is not a valid git ref name", actual=text)
    return text


def check_sha(name: str, value: Any, error: type[Error]) -> str:
    """A git commit id: 40 (SHA-1) or 64 (SHA-256) lowercase hex digits."""
    return _match(name, value, _SHA, 64, "a commit id of 40 or 64 lowercase hex digits", error)


def check_event_name(value: Any, error: type[Error]) -> str:
    """A GitHub event name such as ``push`` or ``workflow_dispatch``."""
    return _match("event_name", value, _EVENT, 64, "an event name of a-z and _", error)


def check_decimal(name: str, value: Any, error: type[Error]) -> str:
    """A GitHub numeric id or counter: a non-negative integer, returned as a decimal string.

    GitHub writes these claims as strings; an ``int`` is accepted for convenience.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < 10**20:
            raise error(f"{name} is out of range", expected="0 <= n < 10^20", actual=value)
        return str(value)
    return _match(name, value, _DECIMAL, 20, "a decimal number", error)


def check_actor(value: Any, error: type[Error]) -> str:
    """A GitHub user or bot login."""
    return _match("actor", value, _ACTOR, 44, "a GitHub login", error)


def check_environment(value: Any, error: type[Error]) -> str:
    """A deployment environment name."""
    return _match("environment", value, _ENVIRONMENT, _MAX_TEXT,
                  "an environment name of letters, digits and . _ -", error)


def check_workflow_name(value: Any, error: type[Error]) -> str:
    """A workflow's display name: printable text."""
    return _match("workflow name", value, _NAME, _MAX_TEXT, "printable text", error)


def check_choice(name: str, value: Any, choices: tuple[str, ...], error: type[Error]) -> str:
    """One of a fixed set of strings."""
    if not isinstance(value, str) or value not in choices:
        raise error(f"{name} is not allowed", expected=" or ".join(choices), actual=value)
    return value


def check_job_workflow_ref(value: Any, error: type[Error]) -> str:
    """``owner/repo/path@ref``: the workflow that actually ran (a reusable one, perhaps)."""
    text = _string("job_workflow_ref", value, 2 * _MAX_TEXT + 141, error)
    where, sep, ref = text.partition("@")
    parts = where.split("/", 2)
    if not sep or len(parts) != 3:
        raise error("job_workflow_ref is not of the form owner/repo/path@ref", actual=text)
    check_repository("/".join(parts[:2]), error)
    check_workflow_path(parts[2], error)
    check_ref(ref, error)
    return text


def check_audience(value: Any, error: type[Error]) -> str:
    """A token audience: printable ASCII without spaces."""
    return _match("audience", value, _AUDIENCE, _MAX_TEXT, "printable ASCII without spaces",
                  error)


def check_lifetime(value: Any, error: type[Error]) -> int:
    """A token lifetime in seconds, 1 to :data:`MAX_LIFETIME`."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise error("lifetime must be an integer number of seconds", actual=type(value).__name__)
    if not 1 <= value <= MAX_LIFETIME:
        raise error("lifetime is out of range", expected=f"1 to {MAX_LIFETIME} seconds",
                    actual=value)
    return value


def check_bool(name: str, value: Any, error: type[Error]) -> bool:
    """A JSON boolean (not 0/1, not a string)."""
    if not isinstance(value, bool):
        raise error(f"{name} must be true or false", actual=value)
    return value
