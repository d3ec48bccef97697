"""The provenance policy file: what the flags of `verify-artifact` and `verify-attestation`
say, in one reviewable file, and `sealtrail policy explain` to read it back in words.

A policy is TOML (the standard library parses it; no new dependency), parsed strictly as
every file sealtrail reads (ADR 0002): unknown keys, wrong types and contradictions are
``CONFIG_INVALID`` with the key named. Example::

    version = 1
    predicate-types = ["https://slsa.dev/provenance/v1"]
    minimum-level = 3

    [source]
    uri = "github.com/org/repo"
    versioned-tag = "v1"

    [[builder]]
    id = "https://github.com/org/builders/.github/workflows/build.yml"
    refs = ["refs/tags/v*"]
    level = 3

    [identity]
    issuer = "https://token.actions.githubusercontent.com"
    identity-regexp = "^https://github.com/org/"

A build outside an isolated platform (``sealtrail attest-provenance --local``) is trusted only
by a builder table that names it and who may sign for it: its id is
``urn:sealtrail:builder:local:<host>`` or a ``*`` pattern of one, ``level`` at most 1 (SPEC:
SLSA build track, Build L1: provenance exists, nothing isolates the build from the person
running it), ``signers`` the certificate identities (``identity`` or ``identity-regexp``, and
``issuer``) that may sign its provenance, ``allow-dirty`` whether a tree with uncommitted
changes is accepted (default: refused)::

    [[builder]]
    id = "urn:sealtrail:builder:local:*"
    level = 1
    signers = [{identity = "dev@example.com", issuer = "https://oauth2.example.com/auth"}]

A GitLab CI job's provenance (sealtrail's GitLab buildType) is trusted by a builder table whose
id is ``<server>/<project>/-/runners/<id>`` or a ``*`` pattern of it, ``level`` at most 2 (SPEC:
SLSA build track, Build L2: a hosted platform signs the provenance; the job's steps can reach
the signing token, so not L3), ``allow-self-hosted`` whether a self-hosted runner is accepted
(default: refused)::

    [[builder]]
    id = "https://gitlab.com/group/project/-/runners/*"
    level = 2

Defaults equal slsa-verifier's: without ``[[builder]]`` tables, the trusted builders are
slsa-github-generator's reusable workflows (SPEC: slsa-verifier's default trusted builders,
../shared/reference/slsa-verification.md §2 step 4), each only at a full semantic-version
release tag ``refs/tags/vX.Y.Z``, each earning SLSA Build L3 (SPEC: SLSA build track:
provenance generated and signed in an isolated reusable workflow, ibid. §5). The accepted
predicate types default to SLSA provenance v0.2 and v1.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import rfc8785

from sealtrail.errors import ConfigInvalidError

__all__ = [
    "DEFAULT_BUILDERS",
    "DEFAULT_PREDICATE_TYPES",
    "GITLAB_MAX_LEVEL",
    "GITLAB_RUNNERS",
    "LOCAL_BUILDER_PREFIX",
    "LOCAL_MAX_LEVEL",
    "MAX_POLICY_BYTES",
    "SEMVER_TAGS",
    "BuilderSigner",
    "TrustedBuilder",
    "ProvenancePolicy",
]

MAX_POLICY_BYTES = 256 * 1024

#: The ``refs`` value that means slsa-verifier's rule: a release tag ``refs/tags/vX.Y.Z``
#: (full semantic version, no pre-release).
SEMVER_TAGS = "semver-tags"
_SEMVER_TAG = re.compile(r"refs/tags/v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
                         r"(\+[0-9A-Za-z.-]+)?")

_GENERATOR = "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
SLSA_PROVENANCE_V02 = "https://slsa.dev/provenance/v0.2"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
DEFAULT_PREDICATE_TYPES = (SLSA_PROVENANCE_V1, SLSA_PROVENANCE_V02)
_LEVELS = (0, 1, 2, 3)
#: The builder ids of builds on a machine (attest-provenance --local): generate.py's
#: LOCAL_BUILDER_PREFIX, repeated so that parsing a policy imports no generator.
LOCAL_BUILDER_PREFIX = "urn:sealtrail:builder:local:"
#: SPEC: SLSA v1.0 build track, Build L1 ("provenance exists"); L2 needs a hosted build
#: platform that signs the provenance, which a developer's machine is not.
LOCAL_MAX_LEVEL = 1
#: What names a GitLab CI builder: its ids are ``<server>/<project>/-/runners/<id>``
#: (sealtrail's GitLab buildType, docs/provenance.md).
GITLAB_RUNNERS = "/-/runners/"
#: SPEC: SLSA v1.0 build track: GitLab (a hosted platform) signs the provenance, Build L2; the
#: job's steps can reach the signing token, so it is not isolated (L3).
GITLAB_MAX_LEVEL = 2


@dataclass(frozen=True)
class BuilderSigner:
    """Who may sign the provenance of a local builder: a certificate identity (exact, or a
    pattern matching anywhere in it as cosign's do) and its OIDC issuer (exact)."""

    issuer: str
    identity: str | None = None
    identity_regexp: str | None = None

    def accepts(self, identity: str, issuer: str) -> bool:
        """Whether a certificate naming ``identity`` from ``issuer`` is this signer."""
        from sealtrail.verify.policy import matches

        if issuer != self.issuer:
            return False
        if self.identity is not None:
            return identity == self.identity
        # Validated as RE2-compatible when the policy was read (_signer); ASCII as there.
        assert self.identity_regexp is not None
        return matches(re.compile(self.identity_regexp, re.ASCII), identity)

    def describe(self) -> str:
        who = self.identity if self.identity is not None else \
            f"an identity matching {self.identity_regexp}"
        return f"{who} (issuer {self.issuer})"

    def to_json(self) -> dict[str, str]:
        out = {"issuer": self.issuer}
        if self.identity is not None:
            out["identity"] = self.identity
        if self.identity_regexp is not None:
            out["identity_regexp"] = self.identity_regexp
        return out


@dataclass(frozen=True)
class TrustedBuilder:
    """A builder the policy trusts: its id (a URI without ``@ref``), the refs it must be
    at (exact refs or ``*`` patterns, or :data:`SEMVER_TAGS`) and the SLSA Build level its
    provenance earns."""

    id: str
    refs: tuple[str, ...] = (SEMVER_TAGS,)
    level: int = 3
    #: A local builder's signers (empty for GitHub workflow builders, whose certificate is
    #: the workflow's own).
    signers: tuple[BuilderSigner, ...] = ()
    #: A local builder: whether provenance of a dirty working tree is accepted.
    allow_dirty: bool = False
    #: A GitLab builder: whether a self-hosted runner (.11 ``self-hosted``) is accepted.
    allow_self_hosted: bool = False

    @property
    def gitlab(self) -> bool:
        """Whether the builder is a GitLab project's runners (``.../-/runners/...``)."""
        return not self.local and GITLAB_RUNNERS in self.id

    def accepts_gitlab(self, builder_id: str) -> bool:
        """Whether a GitLab builder's id (a ``*`` pattern or exact) admits ``builder_id``."""
        return self.gitlab and fnmatch.fnmatchcase(builder_id, self.id)

    def describe_gitlab(self) -> str:
        """A GitLab builder, in words."""
        runners = ("GitLab-hosted or self-hosted runners" if self.allow_self_hosted
                   else "GitLab-hosted runners only (self-hosted runners are refused)")
        return (f"{self.id}: a GitLab CI job, its provenance signed with the pipeline's "
                f"identity, on {runners}, earning SLSA Build L{self.level} (the job's steps "
                "can reach the signing token: not isolated)")

    @property
    def local(self) -> bool:
        """Whether the builder is a machine (``urn:sealtrail:builder:local:...``)."""
        return self.id.startswith(LOCAL_BUILDER_PREFIX)

    def accepts_id(self, builder_id: str) -> bool:
        """Whether a local builder's id (a ``*`` pattern or exact) admits ``builder_id``."""
        return self.local and fnmatch.fnmatchcase(builder_id, self.id)

    def accepts_signer(self, identity: str, issuer: str) -> bool:
        """Whether a local builder's provenance may be signed by ``identity`` of ``issuer``."""
        return any(signer.accepts(identity, issuer) for signer in self.signers)

    def describe_local(self) -> str:
        """A local builder, in words."""
        who = " or ".join(s.describe() for s in self.signers)
        dirty = ("a dirty working tree is accepted" if self.allow_dirty
                 else "a dirty working tree is refused")
        return (f"{self.id}: built on a developer machine by {who}, earning SLSA Build "
                f"L{self.level}: not an isolated build platform; {dirty}")

    def accepts_ref(self, ref: str) -> bool:
        """Whether the builder at ``ref`` is trusted (``refs/tags/v1.2.3``, ``refs/heads/main``)."""
        for pattern in self.refs:
            if pattern == SEMVER_TAGS:
                if _SEMVER_TAG.fullmatch(ref):
                    return True
            elif fnmatch.fnmatchcase(ref, pattern):
                return True
        return False

    def describe_refs(self) -> str:
        words = []
        for pattern in self.refs:
            if pattern == SEMVER_TAGS:
                words.append("a release tag vX.Y.Z (full semantic version)")
            elif "*" in pattern or "?" in pattern or "[" in pattern:
                words.append(f"a ref matching {pattern}")
            else:
                words.append(f"the ref {pattern}")
        return " or ".join(words)


DEFAULT_BUILDERS = tuple(TrustedBuilder(_GENERATOR + name) for name in (
    "generator_generic_slsa3.yml",
    "builder_go_slsa3.yml",
    "builder_container-based_slsa3.yml",
    "delegator_generic_slsa3.yml",
    "delegator_lowperms-generic_slsa3.yml",
))


@dataclass(frozen=True)
class ProvenancePolicy:
    """A parsed policy file. Every field is optional; what is absent is not checked, except
    the builders and predicate types, whose defaults are slsa-verifier's."""

    builders: tuple[TrustedBuilder, ...] = DEFAULT_BUILDERS
    predicate_types: tuple[str, ...] = DEFAULT_PREDICATE_TYPES
    minimum_level: int | None = None
    source_uri: str | None = None
    source_branch: str | None = None
    source_tag: str | None = None
    source_versioned_tag: str | None = None
    workflow_inputs: Mapping[str, str] = field(default_factory=dict)
    identity: str | None = None
    identity_regexp: str | None = None
    issuer: str | None = None
    owner: str | None = None
    repo: str | None = None
    signer_workflow: str | None = None
    deny_self_hosted_runners: bool = False
    #: The file's own bytes, for the policy digest a VSA names (None when built in code).
    source_bytes: bytes | None = None

    # -- parsing --------------------------------------------------------------------------
    @classmethod
    def from_toml(cls, data: bytes, name: str = "policy") -> "ProvenancePolicy":
        """Parse a policy file (UTF-8 TOML, at most :data:`MAX_POLICY_BYTES`)."""
        if len(data) > MAX_POLICY_BYTES:
            raise ConfigInvalidError(f"{name} is too large", actual=len(data),
                                     expected=f"<= {MAX_POLICY_BYTES} bytes")
        try:
            document = tomllib.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigInvalidError(f"{name} is not valid TOML: {exc}") from None
        return cls._from_document(document, name, data)

    @classmethod
    def _from_document(cls, document: dict[str, Any], name: str,
                       data: bytes) -> "ProvenancePolicy":
        _only(document, {"version", "predicate-types", "minimum-level", "source", "builder",
                         "identity"}, name)
        if document.get("version") != 1:
            raise ConfigInvalidError(f"{name}: 'version' must be 1",
                                     actual=repr(document.get("version")), expected="1")
        kwargs: dict[str, Any] = {"source_bytes": data}
        if "predicate-types" in document:
            types = _strings(document["predicate-types"], f"{name}: predicate-types")
            if not types:
                raise ConfigInvalidError(f"{name}: predicate-types must not be empty")
            kwargs["predicate_types"] = tuple(types)
        if "minimum-level" in document:
            kwargs["minimum_level"] = _level(document["minimum-level"], f"{name}: minimum-level")
        if "source" in document:
            kwargs.update(_source(document["source"], f"{name}: [source]"))
        if "builder" in document:
            kwargs["builders"] = _builders(document["builder"], f"{name}: [[builder]]")
        if "identity" in document:
            kwargs.update(_identity(document["identity"], f"{name}: [identity]"))
        policy = cls(**kwargs)
        if policy.minimum_level is not None and policy.builders and \
                max(b.level for b in policy.builders) < policy.minimum_level:
            raise ConfigInvalidError(
                f"{name}: no trusted builder earns minimum-level {policy.minimum_level}",
                actual=max(b.level for b in policy.builders), expected=policy.minimum_level)
        return policy

    # -- use ------------------------------------------------------------------------------
    def builder_for(self, builder_id: str) -> TrustedBuilder | None:
        """The trusted builder whose id is ``builder_id`` (given with or without ``@ref``)
        and whose refs admit the ref, if any."""
        name, _, ref = builder_id.rpartition("@") if "@" in builder_id else (builder_id, "", "")
        for builder in self.builders:
            if builder.id == name and (not ref or builder.accepts_ref(ref)):
                return builder
        return None

    def digest(self) -> str:
        """SHA-256 (hex) of the policy: of the file's bytes when read from one, else of the
        RFC 8785 canonical JSON of what it checks (a VSA's ``policy.digest``)."""
        if self.source_bytes is not None:
            return hashlib.sha256(self.source_bytes).hexdigest()
        return hashlib.sha256(rfc8785.dumps(self.to_json())).hexdigest()

    def to_json(self) -> dict[str, Any]:
        """What the policy checks, as JSON (for ``explain --json`` and the digest)."""
        out: dict[str, Any] = {
            "version": 1,
            "predicate_types": list(self.predicate_types),
            "builders": [_builder_json(b) for b in self.builders],
        }
        for key in ("minimum_level", "source_uri", "source_branch", "source_tag",
                    "source_versioned_tag", "identity", "identity_regexp", "issuer", "owner",
                    "repo", "signer_workflow"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.workflow_inputs:
            out["workflow_inputs"] = dict(self.workflow_inputs)
        if self.deny_self_hosted_runners:
            out["deny_self_hosted_runners"] = True
        return out

    def explain(self) -> list[str]:
        """What the policy checks, in words: one line per check, in the order they run."""
        lines = ["An artifact passes this policy when all of these hold:"]
        types = " or ".join(self.predicate_types)
        lines.append(f"- its provenance is a signed in-toto statement with predicate type {types};")
        lines.append("- the statement names the artifact's digest among its subjects;")
        if self.issuer or self.identity or self.identity_regexp:
            who = []
            if self.identity:
                who.append(f"the signing certificate's identity is exactly {self.identity}")
            if self.identity_regexp:
                who.append(f"the signing certificate's identity matches {self.identity_regexp} "
                           "(anywhere in the value, as cosign matches)")
            if self.issuer:
                who.append(f"its OIDC issuer is exactly {self.issuer}")
            lines.append("- " + "; ".join(who) + ";")
        if self.owner:
            lines.append(f"- the source repository belongs to the owner {self.owner};")
        if self.repo:
            lines.append(f"- the source repository is {self.repo};")
        if self.signer_workflow:
            lines.append(f"- the signing workflow is {self.signer_workflow};")
        if self.deny_self_hosted_runners:
            lines.append("- the build ran on a GitHub-hosted runner (self-hosted runners are "
                         "refused);")
        if self.builders:
            lines.append("- it was built by one of these trusted builders:")
            for builder in self.builders:
                if builder.local:
                    lines.append(f"  - {builder.describe_local()};")
                    continue
                if builder.gitlab:
                    lines.append(f"  - {builder.describe_gitlab()};")
                    continue
                lines.append(f"  - {builder.id}, at {builder.describe_refs()} "
                             f"(earns SLSA Build L{builder.level});")
        else:
            lines.append("- any builder (no builder is trusted to earn a level);")
        if self.source_uri:
            lines.append(f"- from the source repository {self.source_uri};")
        if self.source_branch:
            lines.append(f"- on the branch {self.source_branch};")
        if self.source_tag:
            lines.append(f"- at the tag {self.source_tag} exactly (v13 is not v13.0.1);")
        if self.source_versioned_tag:
            lines.append(f"- at a tag of version {self.source_versioned_tag} (the major version "
                         "must match; minor and patch only where given);")
        for key, value in sorted(self.workflow_inputs.items()):
            lines.append(f"- started by workflow_dispatch with the input {key} = {value!r};")
        if self.minimum_level is not None:
            lines.append(f"- and the builder earns at least SLSA Build L{self.minimum_level}.")
        else:
            lines[-1] = lines[-1].rstrip(";") + "."
        return lines


def _builder_json(builder: TrustedBuilder) -> dict[str, Any]:
    if builder.gitlab:
        return {"id": builder.id, "level": builder.level,
                "allow_self_hosted": builder.allow_self_hosted}
    if not builder.local:
        return {"id": builder.id, "refs": list(builder.refs), "level": builder.level}
    return {"id": builder.id, "level": builder.level,
            "signers": [s.to_json() for s in builder.signers],
            "allow_dirty": builder.allow_dirty}


# -- strict readers ---------------------------------------------------------------------------

def _only(table: Any, keys: set[str], where: str) -> None:
    if not isinstance(table, dict):
        raise ConfigInvalidError(f"{where} must be a table", actual=type(table).__name__)
    unknown = sorted(set(table) - keys)
    if unknown:
        raise ConfigInvalidError(f"{where}: unknown key {unknown[0]!r}",
                                 expected=" ".join(sorted(keys)))


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigInvalidError(f"{where} must be a non-empty string",
                                 actual=type(value).__name__)
    return value


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list):
        raise ConfigInvalidError(f"{where} must be a list of strings",
                                 actual=type(value).__name__)
    return [_string(item, where) for item in value]


def _level(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in _LEVELS:
        raise ConfigInvalidError(f"{where} must be a SLSA Build level", actual=repr(value),
                                 expected="0, 1, 2 or 3")
    return value


def _source(table: Any, where: str) -> dict[str, Any]:
    _only(table, {"uri", "branch", "tag", "versioned-tag", "workflow-inputs"}, where)
    out: dict[str, Any] = {}
    for key, attribute in (("uri", "source_uri"), ("branch", "source_branch"),
                           ("tag", "source_tag"), ("versioned-tag", "source_versioned_tag")):
        if key in table:
            out[attribute] = _string(table[key], f"{where} {key}")
    if "tag" in table and "versioned-tag" in table:
        # SPEC: slsa-verifier: --source-tag and --source-versioned-tag exclude each other.
        raise ConfigInvalidError(f"{where}: 'tag' and 'versioned-tag' exclude each other")
    if "workflow-inputs" in table:
        inputs = table["workflow-inputs"]
        if not isinstance(inputs, dict):
            raise ConfigInvalidError(f"{where} workflow-inputs must be a table",
                                     actual=type(inputs).__name__)
        out["workflow_inputs"] = {_string(k, f"{where} workflow-inputs"):
                                  _string(v, f"{where} workflow-inputs {k}")
                                  for k, v in inputs.items()}
    return out


def _builders(value: Any, where: str) -> tuple[TrustedBuilder, ...]:
    if not isinstance(value, list):
        raise ConfigInvalidError(f"{where} must be an array of tables")
    builders = []
    seen: set[str] = set()
    for i, table in enumerate(value):
        here = f"{where} #{i + 1}"
        builder_id = _string(table.get("id") if isinstance(table, dict) else None, f"{here} id")
        if builder_id.startswith(LOCAL_BUILDER_PREFIX):
            builders.append(_local_builder(table, builder_id, here, seen))
            continue
        if GITLAB_RUNNERS in builder_id:
            builders.append(_gitlab_builder(table, builder_id, here, seen))
            continue
        _only(table, {"id", "refs", "level"}, here)
        if "@" in builder_id:
            raise ConfigInvalidError(f"{here} id names a ref; give the id without '@' and the "
                                     "refs in 'refs'", actual=builder_id)
        if builder_id in seen:
            raise ConfigInvalidError(f"{here} repeats the builder {builder_id}")
        seen.add(builder_id)
        refs: Sequence[str] = (_strings(table["refs"], f"{here} refs") if "refs" in table
                               else [SEMVER_TAGS])
        if not refs:
            raise ConfigInvalidError(f"{here} refs must not be empty")
        level = _level(table.get("level", 3), f"{here} level")
        builders.append(TrustedBuilder(builder_id, tuple(refs), level))
    return tuple(builders)


def _local_builder(table: dict[str, Any], builder_id: str, here: str,
                   seen: set[str]) -> TrustedBuilder:
    """A ``[[builder]]`` for builds on a machine: who may sign for it is required (the
    certificate is a person's, not a workflow's, so the id alone names nobody)."""
    _only(table, {"id", "level", "signers", "allow-dirty"}, here)
    if builder_id in seen:
        raise ConfigInvalidError(f"{here} repeats the builder {builder_id}")
    seen.add(builder_id)
    if "level" not in table:
        raise ConfigInvalidError(f"{here} level is required for a local builder",
                                 expected=f"level = {LOCAL_MAX_LEVEL}")
    level = _level(table["level"], f"{here} level")
    if level > LOCAL_MAX_LEVEL:
        raise ConfigInvalidError(f"{here} level: a local builder earns at most SLSA Build "
                                 f"L{LOCAL_MAX_LEVEL} (not an isolated build platform)",
                                 actual=level, expected=f"<= {LOCAL_MAX_LEVEL}")
    signers = table.get("signers")
    if not isinstance(signers, list) or not signers:
        raise ConfigInvalidError(f"{here} signers is required for a local builder: a "
                                 "non-empty list of {identity = ..., issuer = ...}",
                                 actual=type(signers).__name__)
    parsed = tuple(_signer(item, f"{here} signers #{i + 1}") for i, item in enumerate(signers))
    allow_dirty = table.get("allow-dirty", False)
    if not isinstance(allow_dirty, bool):
        raise ConfigInvalidError(f"{here} allow-dirty must be true or false",
                                 actual=type(allow_dirty).__name__)
    return TrustedBuilder(builder_id, (), level, parsed, allow_dirty)


def _gitlab_builder(table: dict[str, Any], builder_id: str, here: str,
                    seen: set[str]) -> TrustedBuilder:
    """A ``[[builder]]`` for GitLab CI jobs: ``id`` is ``<server>/<project>/-/runners/<id>``
    or a ``*`` pattern of it; the pipeline's certificate says who signed, so no signers."""
    _only(table, {"id", "level", "allow-self-hosted"}, here)
    if builder_id in seen:
        raise ConfigInvalidError(f"{here} repeats the builder {builder_id}")
    seen.add(builder_id)
    if not builder_id.startswith(("https://", "http://")) or "@" in builder_id:
        raise ConfigInvalidError(f"{here} id: a GitLab builder is <server>/<project>/-/runners/"
                                 "<id> (or a * pattern of it)", actual=builder_id,
                                 expected="https://gitlab.com/GROUP/PROJECT/-/runners/*")
    level = _level(table.get("level", GITLAB_MAX_LEVEL), f"{here} level")
    if level > GITLAB_MAX_LEVEL:
        raise ConfigInvalidError(f"{here} level: a GitLab CI job earns at most SLSA Build "
                                 f"L{GITLAB_MAX_LEVEL} (its steps can reach the signing token)",
                                 actual=level, expected=f"<= {GITLAB_MAX_LEVEL}")
    allow = table.get("allow-self-hosted", False)
    if not isinstance(allow, bool):
        raise ConfigInvalidError(f"{here} allow-self-hosted must be true or false",
                                 actual=type(allow).__name__)
    return TrustedBuilder(builder_id, (), level, allow_self_hosted=allow)


def _signer(table: Any, where: str) -> BuilderSigner:
    _only(table, {"identity", "identity-regexp", "issuer"}, where)
    issuer = _string(table.get("issuer"), f"{where} issuer")
    if ("identity" in table) == ("identity-regexp" in table):
        raise ConfigInvalidError(f"{where}: give exactly one of 'identity' and "
                                 "'identity-regexp'")
    if "identity" in table:
        return BuilderSigner(issuer, identity=_string(table["identity"], f"{where} identity"))
    pattern = _string(table["identity-regexp"], f"{where} identity-regexp")
    from sealtrail.errors import UsageError
    from sealtrail.verify.policy import IdentityPolicy

    try:  # the same rules as --certificate-identity-regexp (Go RE2 semantics, ADR 0012)
        IdentityPolicy(identity_regexp=pattern, issuer="x")
    except UsageError as exc:
        raise ConfigInvalidError(f"{where} identity-regexp: {exc.message}") from None
    return BuilderSigner(issuer, identity_regexp=pattern)


def _identity(table: Any, where: str) -> dict[str, Any]:
    keys = {"identity": "identity", "identity-regexp": "identity_regexp", "issuer": "issuer",
            "owner": "owner", "repo": "repo", "signer-workflow": "signer_workflow"}
    _only(table, {*keys, "deny-self-hosted-runners"}, where)
    out: dict[str, Any] = {}
    for key, attribute in keys.items():
        if key in table:
            out[attribute] = _string(table[key], f"{where} {key}")
    if "identity" in table and "identity-regexp" in table:
        raise ConfigInvalidError(f"{where}: 'identity' and 'identity-regexp' exclude each other")
    if "owner" in table and "repo" in table:
        raise ConfigInvalidError(f"{where}: 'owner' and 'repo' exclude each other (a repo "
                                 "names its owner)")
    if "repo" in out and out["repo"].count("/") != 1:
        raise ConfigInvalidError(f"{where} repo must be OWNER/NAME", actual=out["repo"])
    if "identity_regexp" in out:
        # The same rules as --certificate-identity-regexp (Go RE2 semantics, ADR 0012).
        from sealtrail.errors import UsageError
        from sealtrail.verify.policy import IdentityPolicy

        try:
            IdentityPolicy(identity_regexp=out["identity_regexp"], issuer="x")
        except UsageError as exc:
            raise ConfigInvalidError(f"{where} identity-regexp: {exc.message}") from None
    if "deny-self-hosted-runners" in table:
        deny = table["deny-self-hosted-runners"]
        if not isinstance(deny, bool):
            raise ConfigInvalidError(f"{where} deny-self-hosted-runners must be true or false",
                                     actual=type(deny).__name__)
        out["deny_self_hosted_runners"] = deny
    return out
