"""Requests to the built-in issuer's HTTP token endpoint.

The body is a JSON object with a ``kind`` and the identity to mint::

    {"kind": "email", "email": "alice@example.com"}
    {"kind": "github-workflow", "repository": "octo/app", "workflow": ".github/workflows/r.yml",
     "ref": "refs/tags/v1.0.0", "sha": "<40 hex>"}

Optional members: ``audience`` and ``lifetime`` (seconds) for every kind; ``email_verified`` for
email; for github-workflow ``event_name``, ``workflow_name``, ``repository_id``,
``repository_owner_id``, ``repository_visibility``, ``run_id``, ``run_number``, ``run_attempt``,
``actor``, ``actor_id``, ``environment``, ``runner_environment``, ``job_workflow_ref`` and
``job_workflow_sha``; for gitlab-pipeline (required ``project``, ``ref`` as ``refs/heads/..`` or
``refs/tags/..``, ``sha``) ``ci_config_path``, ``ci_config_sha``, ``pipeline_source``,
``project_id``, ``namespace_id``, ``project_visibility``, ``pipeline_id``, ``job_id``,
``runner_id``, ``runner_environment`` and ``environment``. In a request ``workflow`` is the workflow file's path (the Python API calls
it ``workflow_path``). Unknown members are refused, so a typo never silently mints a token for
a different identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

from sealtrail.errors import InputError
from sealtrail.issuer import _fields as f

__all__ = ["KINDS", "TokenRequest", "parse_token_request"]

_E = InputError
KINDS = ("email", "github-workflow", "gitlab-pipeline")

# request member -> (keyword argument of the mint method, validator)
_Check = Callable[[Any], Any]
_EMAIL: dict[str, tuple[str, _Check]] = {
    "email": ("email", lambda v: f.check_email(v, _E)),
    "email_verified": ("email_verified", lambda v: f.check_bool("email_verified", v, _E)),
}
_WORKFLOW: dict[str, tuple[str, _Check]] = {
    "repository": ("repository", lambda v: f.check_repository(v, _E)),
    "workflow": ("workflow_path", lambda v: f.check_workflow_path(v, _E)),
    "ref": ("ref", lambda v: f.check_ref(v, _E)),
    "sha": ("sha", lambda v: f.check_sha("sha", v, _E)),
    "event_name": ("event_name", lambda v: f.check_event_name(v, _E)),
    "workflow_name": ("workflow_name", lambda v: f.check_workflow_name(v, _E)),
    "repository_id": ("repository_id", lambda v: f.check_decimal("repository_id", v, _E)),
    "repository_owner_id": ("repository_owner_id",
                            lambda v: f.check_decimal("repository_owner_id", v, _E)),
    "repository_visibility": ("repository_visibility", lambda v: f.check_choice(
        "repository_visibility", v, f.VISIBILITIES, _E)),
    "run_id": ("run_id", lambda v: f.check_decimal("run_id", v, _E)),
    "run_number": ("run_number", lambda v: f.check_decimal("run_number", v, _E)),
    "run_attempt": ("run_attempt", lambda v: f.check_decimal("run_attempt", v, _E)),
    "actor": ("actor", lambda v: f.check_actor(v, _E)),
    "actor_id": ("actor_id", lambda v: f.check_decimal("actor_id", v, _E)),
    "environment": ("environment", lambda v: f.check_environment(v, _E)),
    "runner_environment": ("runner_environment", lambda v: f.check_choice(
        "runner_environment", v, f.RUNNER_ENVIRONMENTS, _E)),
    "job_workflow_ref": ("job_workflow_ref", lambda v: f.check_job_workflow_ref(v, _E)),
    "job_workflow_sha": ("job_workflow_sha", lambda v: f.check_sha("job_workflow_sha", v, _E)),
}
_GITLAB: dict[str, tuple[str, _Check]] = {
    "project": ("project", lambda v: f.check_gitlab_project(v, _E)),
    "ref": ("ref", lambda v: f.check_ref(v, _E)),
    "sha": ("sha", lambda v: f.check_sha("sha", v, _E)),
    "ci_config_path": ("ci_config_path", lambda v: f.check_workflow_path(v, _E)),
    "ci_config_sha": ("ci_config_sha", lambda v: f.check_sha("ci_config_sha", v, _E)),
    "pipeline_source": ("pipeline_source", lambda v: f.check_choice(
        "pipeline_source", v, f.GITLAB_PIPELINE_SOURCES, _E)),
    "project_id": ("project_id", lambda v: f.check_decimal("project_id", v, _E)),
    "namespace_id": ("namespace_id", lambda v: f.check_decimal("namespace_id", v, _E)),
    "project_visibility": ("project_visibility", lambda v: f.check_choice(
        "project_visibility", v, f.VISIBILITIES, _E)),
    "pipeline_id": ("pipeline_id", lambda v: f.check_decimal("pipeline_id", v, _E)),
    "job_id": ("job_id", lambda v: f.check_decimal("job_id", v, _E)),
    "runner_id": ("runner_id", lambda v: f.check_decimal("runner_id", v, _E)),
    "runner_environment": ("runner_environment", lambda v: f.check_choice(
        "runner_environment", v, f.GITLAB_RUNNER_ENVIRONMENTS, _E)),
    "environment": ("environment", lambda v: f.check_environment(v, _E)),
}
_SCHEMAS = {"email": (_EMAIL, ("email",)),
            "github-workflow": (_WORKFLOW, ("repository", "workflow", "ref", "sha")),
            # ref here is fully qualified (refs/heads/... or refs/tags/...): it sets ref_type.
            "gitlab-pipeline": (_GITLAB, ("project", "ref", "sha"))}
_COMMON = ("kind", "audience", "lifetime")


@dataclass(frozen=True)
class TokenRequest:
    """A validated token request: the kind, and the keyword arguments of its mint method."""

    kind: str
    arguments: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    audience: str = f.DEFAULT_AUDIENCE
    lifetime: int = f.DEFAULT_LIFETIME

    @classmethod
    def from_json(cls, data: Any) -> TokenRequest:
        """Validate a decoded JSON request body; raises :class:`InputError` on any problem."""
        if not isinstance(data, dict):
            raise InputError("a token request must be a JSON object", actual=type(data).__name__)
        kind = data.get("kind")
        if kind is None:
            raise InputError("a token request needs a 'kind'", expected=" or ".join(KINDS))
        if not isinstance(kind, str) or kind not in _SCHEMAS:
            raise InputError("unknown token kind", expected=" or ".join(KINDS), actual=kind)
        schema, required = _SCHEMAS[kind]
        unknown = sorted(k for k in data if k not in schema and k not in _COMMON)
        if unknown:
            # Names only in the evidence: they are client input and may be long.
            raise InputError(f"unknown members in a {kind} token request", actual=unknown)
        missing = [name for name in required if name not in data]
        if missing:
            raise InputError(f"a {kind} token request needs {', '.join(missing)}")
        arguments = {}
        for name, value in data.items():
            if name in schema:
                keyword, check = schema[name]
                arguments[keyword] = check(value)
        return cls(kind=kind, arguments=MappingProxyType(arguments),
                   audience=f.check_audience(data.get("audience", f.DEFAULT_AUDIENCE), _E),
                   lifetime=f.check_lifetime(data.get("lifetime", f.DEFAULT_LIFETIME), _E))


def parse_token_request(data: Any) -> TokenRequest:
    """Same as :meth:`TokenRequest.from_json`."""
    return TokenRequest.from_json(data)
