"""SLSA provenance predicates (v0.2 and v1.0) read into one shape: who built, from what, how.

Pure parsing of an in-toto :class:`~sealtrail.models.intoto.Statement` whose predicate is SLSA
provenance, as slsa-verifier reads it (its ``slsaprovenance`` packages). Nothing here decides
whether to trust the builder: :mod:`sealtrail.provenance.slsa` does, and the ``gh``-style
verifier may reuse these readers for its predicate checks.

Like slsa-verifier, fields are read when a check asks for them, so a provenance missing a
field that no check needs still verifies; a field that is asked for and missing (or of the
wrong type) raises :class:`~sealtrail.provenance.errors.ErrorInvalidDssePayload`, an empty
URI :class:`~sealtrail.provenance.errors.ErrorMalformedURI`.

SPEC: ../shared/reference/slsa-verification.md §3 (fields read per predicate and buildType);
provenance-formats.md §1 (GitHub artifact attestations, buildType
``https://actions.github.io/buildtypes/workflow/v1``), §6 (BYOB delegator provenance).

Public API: :func:`parse_provenance` (a Statement in, a :class:`SlsaProvenance` out) and the
predicate/buildType constants.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

from sealtrail.models.intoto import Statement, Subject
from sealtrail.provenance.errors import ErrorInvalidDssePayload, ErrorMalformedURI

__all__ = [
    "BUILD_TYPE_CONTAINER",
    "BUILD_TYPE_CONTAINER_BASED",
    "BUILD_TYPE_DELEGATOR",
    "BUILD_TYPE_GENERIC",
    "BUILD_TYPE_GITHUB_WORKFLOW",
    "BUILD_TYPE_GITHUB_WORKFLOW_LEGACY",
    "BUILD_TYPE_GO",
    "GITHUB_CONTEXT_BUILD_TYPES",
    "SLSA_PROVENANCE_V02",
    "SLSA_PROVENANCE_V1",
    "GitHubContext",
    "SlsaProvenance",
    "parse_provenance",
]

SLSA_PROVENANCE_V02 = "https://slsa.dev/provenance/v0.2"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"

_GENERATOR = "https://github.com/slsa-framework/slsa-github-generator/"
BUILD_TYPE_GENERIC = _GENERATOR + "generic@v1"
BUILD_TYPE_GO = _GENERATOR + "go@v1"
BUILD_TYPE_CONTAINER = _GENERATOR + "container@v1"
BUILD_TYPE_DELEGATOR = _GENERATOR + "delegator-generic@v0"
BUILD_TYPE_CONTAINER_BASED = "https://slsa.dev/container-based-build/v0.1?draft"
#: GitHub artifact attestations (actions/attest-build-provenance).
BUILD_TYPE_GITHUB_WORKFLOW = "https://actions.github.io/buildtypes/workflow/v1"
#: The same shape under its older name (older attestations, npm provenance).
BUILD_TYPE_GITHUB_WORKFLOW_LEGACY = \
    "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1"
#: SLSA v1 buildTypes whose GitHub context sits in internalParameters as GITHUB_* variables.
GITHUB_CONTEXT_BUILD_TYPES = (BUILD_TYPE_DELEGATOR, BUILD_TYPE_CONTAINER_BASED)
_WORKFLOW_BUILD_TYPES = (BUILD_TYPE_GITHUB_WORKFLOW, BUILD_TYPE_GITHUB_WORKFLOW_LEGACY)

_E = ErrorInvalidDssePayload


def _field(data: Any, key: str, what: str) -> Any:
    if not isinstance(data, dict):
        raise _E(f"{what} is not an object", actual=type(data).__name__)
    if key not in data:
        raise _E(f"the provenance has no {what}.{key}")
    return data[key]


def _string(data: Any, key: str, what: str) -> str:
    value = _field(data, key, what)
    if not isinstance(value, str):
        raise _E(f"{what}.{key} is not a string", actual=type(value).__name__)
    return value


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _E(f"{what} is not an object", actual=type(value).__name__)
    return value


class GitHubContext(NamedTuple):
    """The GitHub Actions run a provenance records (names as GitHub's ``github`` context).

    ``ref_type`` is ``"branch"``, ``"tag"`` or empty; ``event_payload`` is the triggering
    event as GitHub delivered it, or None when the provenance does not record it (GitHub
    artifact attestations)."""

    event_name: str
    ref: str
    ref_type: str
    base_ref: str
    sha: str
    event_payload: Mapping[str, Any] | None


class SlsaProvenance(NamedTuple):
    """A SLSA provenance statement, read the way slsa-verifier reads it.

    ``builder_id`` and ``build_type`` are read eagerly (every verification needs them); the
    methods read the rest when asked and raise slsa-verifier's error for what is missing."""

    statement: Statement
    predicate_type: str
    builder_id: str
    build_type: str

    @property
    def subjects(self) -> tuple[Subject, ...]:
        """The statement's subjects; none is ``ErrorInvalidDssePayload`` (``no subjects``)."""
        if not self.statement.subjects:
            raise _E("the provenance has no subjects")
        return self.statement.subjects

    @property
    def _predicate(self) -> dict[str, Any]:
        return _object(self.statement.predicate, "predicate")

    def _v1_definition(self) -> dict[str, Any]:
        return _object(_field(self._predicate, "buildDefinition", "predicate"),
                       "predicate.buildDefinition")

    def _first_dependency(self) -> dict[str, Any]:
        if self.predicate_type == SLSA_PROVENANCE_V02:
            items = _field(self._predicate, "materials", "predicate")
            what = "predicate.materials"
        else:
            items = _field(self._v1_definition(), "resolvedDependencies",
                           "predicate.buildDefinition")
            what = "predicate.buildDefinition.resolvedDependencies"
        if not isinstance(items, list) or not items:
            raise _E(f"{what} is empty")
        return _object(items[0], f"{what}[0]")

    def source_uri(self) -> str:
        """The source repository URI with its ref (``git+https://github.com/o/r@ref``): v0.2
        ``materials[0].uri``, v1 ``resolvedDependencies[0].uri``."""
        uri = self._first_dependency().get("uri")
        if not isinstance(uri, str) or not uri:
            raise ErrorMalformedURI("the provenance's source URI is empty")
        return uri

    def source_commit(self) -> str | None:
        """The source commit the first dependency names (``sha1`` or ``gitCommit``)."""
        try:
            digest = self._first_dependency().get("digest")
        except ErrorInvalidDssePayload:
            return None
        if isinstance(digest, dict):
            for name in ("gitCommit", "sha1"):
                value = digest.get(name)
                if isinstance(value, str) and value:
                    return value
        return None

    def trigger_uri(self) -> str:
        """The workflow's repository and ref (``git+https://github.com/o/r@ref``).

        v0.2: ``invocation.configSource.uri``. v1 delegator and container-based builders:
        from ``internalParameters`` (``GITHUB_WORKFLOW_REF``, else ``GITHUB_REPOSITORY`` and
        ``GITHUB_REF``). GitHub attestations: ``externalParameters.workflow``'s repository
        and ref."""
        if self.predicate_type == SLSA_PROVENANCE_V02:
            invocation = _field(self._predicate, "invocation", "predicate")
            config = _field(invocation, "configSource", "predicate.invocation")
            uri = _string(config, "uri", "predicate.invocation.configSource")
        elif self.build_type in _WORKFLOW_BUILD_TYPES:
            external = _field(self._v1_definition(), "externalParameters",
                              "predicate.buildDefinition")
            workflow = _field(external, "workflow", "predicate.buildDefinition."
                                                    "externalParameters")
            what = "predicate.buildDefinition.externalParameters.workflow"
            repository = _string(workflow, "repository", what)
            ref = _string(workflow, "ref", what)
            uri = f"git+{repository}@{ref}" if repository and ref else ""
        else:
            internal = self._internal_parameters()
            workflow_ref = internal.get("GITHUB_WORKFLOW_REF")
            if isinstance(workflow_ref, str) and "@" in workflow_ref \
                    and "/.github/workflows/" in workflow_ref:
                path, _, ref = workflow_ref.rpartition("@")
                repository = path.split("/.github/workflows/", 1)[0]
            else:
                what = "predicate.buildDefinition.internalParameters"
                repository = _string(internal, "GITHUB_REPOSITORY", what)
                ref = _string(internal, "GITHUB_REF", what)
            uri = f"git+https://github.com/{repository}@{ref}" if repository and ref else ""
        if not uri:
            raise ErrorMalformedURI("the provenance's trigger URI is empty")
        return uri

    def _internal_parameters(self) -> dict[str, Any]:
        return _object(_field(self._v1_definition(), "internalParameters",
                              "predicate.buildDefinition"),
                       "predicate.buildDefinition.internalParameters")

    def github(self) -> GitHubContext:
        """The GitHub run: v0.2 ``invocation.environment.github_*``; v1 delegator and
        container-based ``internalParameters.GITHUB_*``; GitHub attestations the workflow's
        ref and ``internalParameters.github.event_name`` (no event payload)."""
        if self.predicate_type == SLSA_PROVENANCE_V02:
            invocation = _field(self._predicate, "invocation", "predicate")
            environment = _object(_field(invocation, "environment", "predicate.invocation"),
                                  "predicate.invocation.environment")
            return _context(environment, "predicate.invocation.environment", "github_")
        if self.build_type in _WORKFLOW_BUILD_TYPES:
            definition = self._v1_definition()
            external = _field(definition, "externalParameters", "predicate.buildDefinition")
            what = "predicate.buildDefinition.externalParameters.workflow"
            ref = _string(_field(external, "workflow", "predicate.buildDefinition."
                                                       "externalParameters"), "ref", what)
            internal = _object(definition.get("internalParameters", {}),
                               "predicate.buildDefinition.internalParameters")
            github = internal.get("github", {})
            event = github.get("event_name", "") if isinstance(github, dict) else ""
            ref_type = ("branch" if ref.startswith("refs/heads/") else
                        "tag" if ref.startswith("refs/tags/") else "")
            return GitHubContext(event if isinstance(event, str) else "", ref, ref_type, "",
                                 self.source_commit() or "", None)
        return _context(self._internal_parameters(),
                        "predicate.buildDefinition.internalParameters", "GITHUB_")


def _context(data: dict[str, Any], what: str, prefix: str) -> GitHubContext:
    """The run from ``prefix``-named fields: ``github_ref`` (v0.2) or ``GITHUB_REF`` (v1)."""
    upper = prefix.isupper()

    def key(name: str) -> str:
        return prefix + (name.upper() if upper else name)

    def text(name: str) -> str:
        value = data.get(key(name), "")
        if not isinstance(value, str):
            raise _E(f"{what}.{key(name)} is not a string", actual=type(value).__name__)
        return value

    payload = data.get(key("event_payload"))
    if payload is not None and not isinstance(payload, dict):
        raise _E(f"{what}.{key('event_payload')} is not an object", actual=type(payload).__name__)
    return GitHubContext(text("event_name"), text("ref"), text("ref_type"), text("base_ref"),
                         text("sha1") or text("sha"), payload)


def parse_provenance(statement: Statement) -> SlsaProvenance:
    """Read ``statement`` as SLSA provenance: its predicate type must be SLSA v0.2 or v1, and
    the builder id and buildType strings (``ErrorInvalidDssePayload`` otherwise)."""
    if not isinstance(statement, Statement):
        raise TypeError("parse_provenance takes a sealtrail.models.intoto.Statement")
    predicate_type = statement.predicate_type
    predicate = statement.predicate
    if predicate_type == SLSA_PROVENANCE_V02:
        builder = _field(predicate, "builder", "predicate")
        builder_id = _string(builder, "id", "predicate.builder")
        build_type = _string(predicate, "buildType", "predicate")
    elif predicate_type == SLSA_PROVENANCE_V1:
        run = _field(predicate, "runDetails", "predicate")
        builder = _field(run, "builder", "predicate.runDetails")
        builder_id = _string(builder, "id", "predicate.runDetails.builder")
        definition = _field(predicate, "buildDefinition", "predicate")
        build_type = _string(definition, "buildType", "predicate.buildDefinition")
    else:
        raise _E("the statement's predicate is not SLSA provenance", actual=predicate_type,
                 expected=f"{SLSA_PROVENANCE_V02} or {SLSA_PROVENANCE_V1}")
    return SlsaProvenance(statement, predicate_type, builder_id, build_type)
