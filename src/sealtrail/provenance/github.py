"""GitHub artifact attestations, checked as ``gh attestation verify`` checks them, and more.

``verify_attestations(artifact, bundles, criteria, roots)`` follows gh's steps
(SPEC: cli/cli pkg/cmd/attestation/verify and pkg/cmd/attestation/verification, trunk 2025-03;
../shared/reference/provenance-formats.md §2):

1. Keep the DSSE bundles whose payload is an in-toto statement of the expected predicate
   type (none left: ``no matching predicate found``).
2. For each bundle (a failing one is dropped; the last error is kept): a bundle older than
   v0.2 is refused (``unsupported bundle version``); the leaf certificate's issuer
   organisation picks the verifier: ``sigstore.dev`` is public-good (SCT, log entry and a
   verified time required), ``GitHub, Inc.`` is GitHub's instance (a signed timestamp), and
   with custom roots the first root whose certificate authority's lowest certificate names
   the same issuer organisation (policy inferred from the root's contents). The signature,
   the artifact digest (any subject, same algorithm), the SAN pattern and, with
   ``--deny-self-hosted-runners``, the runner environment fail as gh reports them:
   ``verifying with issuer "<O>"`` (the cause is kept aside, in ``cause``).
3. On the survivors, the certificate extensions, compared case-insensitively, with gh's
   messages (``expected SourceRepositoryOwnerURI to be X, got Y`` ...).
4. Beyond gh (``predicate_checks``): a SLSA v1 predicate must agree with the certificate:
   a known GitHub buildType, the builder id equal to the Build Signer URI (.9) (or, for the
   older runner buildType, to the runner the certificate names (.11)), the resolved source
   commit equal to the Source Repository Digest (.13), and the workflow
   ``repository/path@ref`` equal to the Build Config URI (.18). The certificate alone says
   nothing about what the predicate claims.

One survivor passes. Pure: the caller reads files and parses trusted roots.

The SLSA v1 predicate is read by :mod:`sealtrail.provenance.intoto_predicates` (builder id,
buildType, source commit); only the workflow's path, which it does not offer, is read here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping, NamedTuple, Sequence

from cryptography import x509
from cryptography.x509.oid import NameOID

from sealtrail.errors import (
    Error,
    ExtensionMismatchError,
    IssuerMismatchError,
    SubjectMismatchError,
    UsageError,
    VerificationError,
)
from sealtrail.models.bundle import Bundle
from sealtrail.models.certificate import FulcioIdentity
from sealtrail.models.intoto import INTOTO_PAYLOAD_TYPE, Statement
from sealtrail.models.trusted_root import TrustedRoot
from sealtrail.provenance.errors import (
    ErrorInvalidBuildType,
    ErrorInvalidDssePayload,
    ErrorMismatchBuilderID,
    ErrorMismatchSource,
)
from sealtrail.provenance.intoto_predicates import (
    BUILD_TYPE_CONTAINER,
    BUILD_TYPE_GENERIC,
    BUILD_TYPE_GITHUB_WORKFLOW,
    BUILD_TYPE_GITHUB_WORKFLOW_LEGACY,
    BUILD_TYPE_GO,
    GITHUB_CONTEXT_BUILD_TYPES,
    SLSA_PROVENANCE_V1,
    parse_provenance,
)
from sealtrail.verify.policy import IdentityPolicy
from sealtrail.verify.verifier import Artifact, VerificationResult, Verifier

__all__ = [
    "ACTIONS_BUILD_TYPE",
    "AttestationResult",
    "Criteria",
    "DEFAULT_OIDC_ISSUER",
    "DEFAULT_PREDICATE_TYPE",
    "GITHUB_ISSUER_ORG",
    "PUBLIC_GOOD_ISSUER_ORG",
    "RUNNER_BUILD_TYPE",
    "Roots",
    "certificate_summary",
    "check_predicate",
    "criteria_from_flags",
    "parse_custom_roots",
    "result_json",
    "verify_attestations",
]

DEFAULT_PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
DEFAULT_OIDC_ISSUER = "https://token.actions.githubusercontent.com"
PUBLIC_GOOD_ISSUER_ORG = "sigstore.dev"
GITHUB_ISSUER_ORG = "GitHub, Inc."
GITHUB_HOSTED = "github-hosted"
# SPEC: actions/toolkit packages/attest/src/provenance.ts (actions/attest-build-provenance).
ACTIONS_BUILD_TYPE = BUILD_TYPE_GITHUB_WORKFLOW
# SPEC: npm/cli libnpmpublish/lib/provenance.js and older actions/attest: builder.id is the
# runner, ``https://github.com/actions/runner/<RUNNER_ENVIRONMENT>``.
RUNNER_BUILD_TYPE = BUILD_TYPE_GITHUB_WORKFLOW_LEGACY
_RUNNER_BUILDER_PREFIX = "https://github.com/actions/runner/"
# slsa-github-generator's builders whose provenance names the signing workflow as builder.
_SIGNER_IS_BUILDER = (BUILD_TYPE_GENERIC, BUILD_TYPE_GO, BUILD_TYPE_CONTAINER)
_GENERATOR_BUILD_TYPES = (*_SIGNER_IS_BUILDER, *GITHUB_CONTEXT_BUILD_TYPES)
# SPEC: gh validateSignerWorkflow: a workflow that starts with a host name keeps it.
_HOST_PREFIX = re.compile(r"^[a-zA-Z0-9-]+\.[a-zA-Z0-9-]+")
_MIN_BUNDLE_VERSION = (0, 2)


@dataclass(frozen=True)
class Criteria:
    """gh's EnforcementCriteria: what the certificate must say (and the predicate type)."""

    san: str | None
    san_regex: str | None
    owner_uri: str
    repository_uri: str | None
    oidc_issuer: str
    runner_environment: str | None = None
    signer_digest: str | None = None
    source_digest: str | None = None
    source_ref: str | None = None
    predicate_type: str = DEFAULT_PREDICATE_TYPE
    predicate_checks: bool = True

    def identity_policy(self) -> IdentityPolicy:
        """The Sigstore policy gh hands sigstore-go: the SAN (exact or pattern), any issuer
        (checked with the extensions later) and the runner environment when required."""
        extensions = ({"runner_environment": self.runner_environment}
                      if self.runner_environment else {})
        return IdentityPolicy(identity=self.san, identity_regexp=self.san_regex,
                              issuer_regexp=".*", extensions=extensions)


def _github_url(value: str) -> str:
    return f"https://github.com/{value}"


def criteria_from_flags(*, owner: str | None = None, repo: str | None = None,
                        signer_repo: str | None = None, signer_workflow: str | None = None,
                        cert_identity: str | None = None, cert_identity_regex: str | None = None,
                        cert_oidc_issuer: str = DEFAULT_OIDC_ISSUER,
                        predicate_type: str = DEFAULT_PREDICATE_TYPE,
                        deny_self_hosted_runners: bool = False, source_ref: str | None = None,
                        source_digest: str | None = None, signer_digest: str | None = None,
                        hostname: str = "github.com",
                        predicate_checks: bool = True) -> Criteria:
    """gh's newEnforcementCriteria from its flags (SPEC: pkg/cmd/attestation/verify/policy.go).

    Raises :class:`UsageError` for a combination gh refuses.
    """
    if (owner is None) == (repo is None):
        raise UsageError("give exactly one of --owner or --repo")
    signers = [name for name, value in (("--signer-repo", signer_repo),
                                        ("--signer-workflow", signer_workflow),
                                        ("--cert-identity", cert_identity),
                                        ("--cert-identity-regex", cert_identity_regex))
               if value is not None]
    if len(signers) > 1:
        raise UsageError(f"{' and '.join(signers)} are mutually exclusive")
    if repo is not None:
        parts = repo.split("/")
        if len(parts) != 2 or not all(parts):
            raise UsageError("--repo must be of the form OWNER/REPO", actual=repo)
        owner = parts[0]
    assert owner is not None
    if not owner or "/" in owner:
        raise UsageError("--owner must be an owner name", actual=owner)
    san: str | None = None
    san_regex: str | None = None
    if signer_repo is not None:
        san_regex = f"(?i)^https://github.com/{signer_repo}/"
    elif signer_workflow is not None:
        # SPEC: gh validateSignerWorkflow: the value is used unescaped.
        if _HOST_PREFIX.match(signer_workflow):
            san_regex = f"^https://{signer_workflow}"
        else:
            san_regex = f"^https://{hostname}/{signer_workflow}"
    else:
        san, san_regex = cert_identity, cert_identity_regex
    if san is None and san_regex is None:
        san_regex = f"(?i)^https://github.com/{repo if repo is not None else owner}/"
    criteria = Criteria(
        san=san, san_regex=san_regex, owner_uri=_github_url(owner),
        repository_uri=_github_url(repo) if repo is not None else None,
        oidc_issuer=cert_oidc_issuer,
        runner_environment=GITHUB_HOSTED if deny_self_hosted_runners else None,
        signer_digest=signer_digest, source_digest=source_digest, source_ref=source_ref,
        predicate_type=predicate_type, predicate_checks=predicate_checks)
    criteria.identity_policy()  # refuses a pattern RE2 would not accept, before any work
    return criteria


class Roots(NamedTuple):
    """The trusted roots to choose from by the leaf's issuer organisation.

    ``custom`` (``--custom-trusted-root``), when not None, is the only source of roots, as in
    gh; otherwise ``public_good`` and ``github`` (None: not trusted)."""

    public_good: TrustedRoot | None = None
    github: TrustedRoot | None = None
    custom: tuple[TrustedRoot, ...] | None = None
    no_public_good: bool = False


def parse_custom_roots(data: bytes) -> tuple[TrustedRoot, ...]:
    """``--custom-trusted-root``: one trusted root per line (JSON Lines).

    SPEC: gh reads lines with ``ReadBytes('\\n')`` and stops at the first error, so a last
    line without its newline is ignored, as here. Blank lines are not roots.
    """
    roots = []
    lines = data.split(b"\n")
    for number, line in enumerate(lines[:-1], 1):  # the part after the last newline is dropped
        if not line.strip():
            continue
        try:
            roots.append(TrustedRoot.from_json(line))
        except Error as exc:
            raise type(exc)(f"custom trusted root, line {number}: {exc.message}",
                            expected=exc.expected, actual=exc.actual) from exc
    return tuple(roots)


class AttestationResult(NamedTuple):
    """One bundle that passed every check."""

    bundle_index: int  # position in the bundles given (JSON Lines: the line order)
    bundle: Bundle
    result: VerificationResult
    statement: dict[str, Any]
    issuer_organization: str
    root: TrustedRoot


def _fail(message: str, cause: Error | None = None) -> Error:
    """gh's words; the code is the cause's (raise it ``from`` the cause, which gh drops and
    the CLI shows on a second line)."""
    return (type(cause) if cause is not None else VerificationError)(message)


def _issuer_organization(certificate: x509.Certificate) -> str:
    names = certificate.issuer.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    if len(names) != 1:
        raise _fail("expected the leaf certificate issuer to only have one organization")
    value = names[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _lowest_issuer_organization(root: TrustedRoot) -> list[str]:
    found = []
    for ca in root.certificate_authorities:
        if not ca.chain:
            continue
        # SPEC: gh getLowestCertInChain: the intermediate nearest the leaf, else the root;
        # its *issuer* organisation is compared with the leaf's issuer organisation.
        names = ca.chain[0].issuer.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        if names and isinstance(names[0].value, str):
            found.append(names[0].value)
    return found


def _choose_root(organization: str, roots: Roots) -> TrustedRoot:
    if roots.custom is not None:
        for root in roots.custom:
            if organization in _lowest_issuer_organization(root):
                if organization == PUBLIC_GOOD_ISSUER_ORG and roots.no_public_good:
                    raise _fail("detected public good instance but requested verification "
                                "without public good instance")
                return root
        raise _fail("unable to use provided trusted roots")
    if organization == PUBLIC_GOOD_ISSUER_ORG:
        if roots.no_public_good:
            raise _fail("detected public good instance but requested verification without "
                        "public good instance")
        if roots.public_good is not None:
            return roots.public_good
    elif organization == GITHUB_ISSUER_ORG and roots.github is not None:
        return roots.github
    raise _fail("leaf certificate issuer is not recognized")


def _statement_of(bundle: Bundle) -> dict[str, Any] | None:
    envelope = bundle.dsse_envelope
    if envelope is None or envelope.payload_type != INTOTO_PAYLOAD_TYPE:
        return None
    try:
        data = json.loads(envelope.payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def verify_attestations(artifact: Artifact, bundles: Sequence[Bundle], criteria: Criteria,
                        roots: Roots, *, now: datetime | None = None,
                        subject_name: str | None = None) -> list[AttestationResult]:
    """The bundles of ``bundles`` that verify ``artifact`` under ``criteria`` (at least one).

    ``subject_name``, when given, must be the name of a subject carrying the artifact's
    digest (npm: the package's purl). Raises the last failure when none passes.
    """
    if not isinstance(criteria, Criteria) or not isinstance(roots, Roots):
        raise UsageError("verify_attestations needs Criteria and Roots")
    # 1. SPEC: gh FilterAttestations: DSSE in-toto statements of the predicate type only;
    # an entry that is not one is skipped, not an error.
    kept = [(index, bundle, statement) for index, bundle in enumerate(bundles)
            if (statement := _statement_of(bundle)) is not None
            and statement.get("predicateType") == criteria.predicate_type]
    if not kept:
        raise SubjectMismatchError("no matching predicate found: no attestation has predicate "
                                   f"type {criteria.predicate_type}")
    policy = criteria.identity_policy()
    verifiers: dict[int, Verifier] = {}
    last: Error | None = None
    # 2. Sigstore verification, bundle by bundle.
    passed: list[AttestationResult] = []
    for index, bundle, statement in kept:
        try:
            passed.append(_verify_one(index, bundle, statement, artifact, policy, roots,
                                      verifiers, now, subject_name))
        except Error as exc:
            last = exc
    # 3. Certificate extensions, then 4. the predicate, on the survivors of each stage.
    for stage in (_check_extensions, _check_predicate_stage):
        survivors = []
        for item in passed:
            try:
                stage(item, criteria)
                survivors.append(item)
            except Error as exc:
                last = exc
        passed = survivors
    if not passed:
        assert last is not None
        raise last
    return passed


def _verify_one(index: int, bundle: Bundle, statement: dict[str, Any], artifact: Artifact,
                policy: IdentityPolicy, roots: Roots, verifiers: dict[int, Verifier],
                now: datetime | None, subject_name: str | None) -> AttestationResult:
    # SPEC: gh getBundleIssuer: bundles before v0.2 are refused, then the leaf's issuer O.
    if bundle.version < _MIN_BUNDLE_VERSION:
        raise _fail(f"unsupported bundle version: {bundle.media_type}")
    if bundle.certificate is None:
        raise _fail("leaf cert not found")
    organization = _issuer_organization(bundle.certificate)
    root = _choose_root(organization, roots)
    verifier = verifiers.get(id(root))
    if verifier is None:
        verifier = verifiers[id(root)] = Verifier(root, now=now)
    try:
        result = verifier.verify_artifact(artifact, bundle, policy)
        if subject_name is not None:
            _check_subject_name(result.statement, artifact, subject_name)
    except Error as exc:
        raise _fail(f'verifying with issuer "{organization}"', exc) from exc
    return AttestationResult(index, bundle, result, statement, organization, root)


def _check_subject_name(statement: Statement | None, artifact: Artifact, name: str) -> None:
    assert statement is not None
    wanted = {algorithm: value.hex() for algorithm, value in artifact.digests.items()}
    names = [subject.name for subject in statement.subjects
             if any(subject.digest.get(a) == v for a, v in wanted.items())]
    if name not in names:
        raise SubjectMismatchError("the subject carrying the artifact's digest is not named "
                                   "as the package", actual=", ".join(names) or "none",
                                   expected=name)


def _equal_fold(expected: str, actual: str | None) -> bool:
    # SPEC: gh verifyCertExtensions uses strings.EqualFold (Unicode simple folding).
    return expected.casefold() == (actual or "").casefold()


def _check_extensions(item: AttestationResult, criteria: Criteria) -> None:
    """SPEC: gh verification/extensions.go verifyCertExtensions, in its order and words."""
    found = item.result.extensions

    def check(name: str, key: str, expected: str | None) -> None:
        actual = found.get(key, "")
        if expected is not None and expected != "" and not _equal_fold(expected, actual):
            raise ExtensionMismatchError(f"expected {name} to be {expected}, got {actual}")

    owner = found.get("source_repository_owner_uri", "")
    if not _equal_fold(criteria.owner_uri, owner):
        raise ExtensionMismatchError(f"expected SourceRepositoryOwnerURI to be "
                                     f"{criteria.owner_uri}, got {owner}")
    check("SourceRepositoryURI", "source_repository_uri", criteria.repository_uri)
    issuer = item.result.issuer or ""
    if not _equal_fold(criteria.oidc_issuer, issuer):
        message = f"expected Issuer to be {criteria.oidc_issuer}, got {issuer}"
        if issuer.startswith(criteria.oidc_issuer + "/"):
            message += (" -- if you have a custom OIDC issuer policy for your enterprise, use "
                        "the --cert-oidc-issuer flag with your expected issuer")
        raise IssuerMismatchError(message)
    check("BuildSignerDigest", "build_signer_digest", criteria.signer_digest)
    check("SourceRepositoryDigest", "source_repository_digest", criteria.source_digest)
    check("SourceRepositoryRef", "source_repository_ref", criteria.source_ref)


def _check_predicate_stage(item: AttestationResult, criteria: Criteria) -> None:
    if criteria.predicate_checks:
        assert item.result.statement is not None
        check_predicate(item.result.statement, item.result.extensions)


def check_predicate(statement: Statement, extensions: Mapping[str, str]) -> None:
    """Beyond gh: a SLSA v1 predicate made on GitHub Actions agrees with its certificate.

    Other predicate types are not provenance of a GitHub build and are left alone. The
    predicate is read by :mod:`sealtrail.provenance.intoto_predicates`; the workflow's path,
    which that module does not offer, is read here. Raises ErrorInvalidBuildType,
    ErrorMismatchBuilderID, ErrorMismatchSource or ErrorInvalidDssePayload (a required field
    missing).
    """
    if statement.predicate_type != SLSA_PROVENANCE_V1:
        return
    provenance = parse_provenance(statement)
    build_type = provenance.build_type
    if build_type not in (ACTIONS_BUILD_TYPE, RUNNER_BUILD_TYPE, *_GENERATOR_BUILD_TYPES):
        raise ErrorInvalidBuildType(
            "the SLSA predicate's buildType is not one GitHub Actions produces (use "
            "--no-predicate-checks to check the certificate only, as gh does)",
            actual=build_type, expected=f"{ACTIONS_BUILD_TYPE}, {RUNNER_BUILD_TYPE} or an "
                                        "slsa-github-generator buildType")
    expected_builder: str | None
    if build_type in (ACTIONS_BUILD_TYPE, *_SIGNER_IS_BUILDER):
        # SPEC: actions/toolkit provenance.ts: builder.id = <server>/<job_workflow_ref>,
        # which Fulcio writes as the Build Signer URI (.9); slsa-github-generator's builders
        # name themselves, the reusable workflow that signs (slsa-verification.md §2 step 6).
        expected_builder = extensions.get("build_signer_uri")
        what = "Build Signer URI (the signing workflow)"
    elif build_type in GITHUB_CONTEXT_BUILD_TYPES:
        # Delegators (BYOB) and container-based builds name the tool's reusable workflow,
        # not the delegator that signs: slsa-verifier matches it against --builder-id, which
        # gh has no flag for. The source commit is still checked below.
        expected_builder = None
        what = ""
    else:
        runner = extensions.get("runner_environment")
        expected_builder = _RUNNER_BUILDER_PREFIX + runner if runner else None
        what = "runner the certificate names"
    if expected_builder is not None and provenance.builder_id != expected_builder:
        raise ErrorMismatchBuilderID(f"the predicate's builder id is not the certificate's "
                                     f"{what}", actual=provenance.builder_id,
                                     expected=expected_builder)
    expected_commit = extensions.get("source_repository_digest")
    if expected_commit is not None:
        commit = provenance.source_commit()
        if commit is None:
            raise ErrorInvalidDssePayload("the predicate names no resolved source commit "
                                          "(resolvedDependencies[0].digest.gitCommit)")
        if commit.lower() != expected_commit.lower():
            raise ErrorMismatchSource("the predicate's source commit is not the certificate's "
                                      "Source Repository Digest", actual=commit,
                                      expected=expected_commit)
    config = extensions.get("build_config_uri")
    # Only GitHub's own buildTypes name the calling workflow in externalParameters.workflow.
    if config is not None and build_type in (ACTIONS_BUILD_TYPE, RUNNER_BUILD_TYPE):
        workflow = _field(statement.predicate, "buildDefinition", "externalParameters",
                          "workflow")
        parts = [_field(workflow, name) for name in ("repository", "path", "ref")]
        if not all(isinstance(part, str) and part for part in parts):
            raise ErrorInvalidDssePayload("the predicate names no workflow "
                                          "(externalParameters.workflow repository, path, ref)")
        repository, path, ref = parts
        claimed = f"{repository.rstrip('/')}/{path.lstrip('/')}@{ref}"
        if claimed != config:
            raise ErrorMismatchSource("the predicate's workflow is not the certificate's Build "
                                      "Config URI", actual=claimed, expected=config)


def _field(data: Any, *path: str) -> Any:
    for name in path:
        if not isinstance(data, dict):
            return None
        data = data.get(name)
    return data


# -- gh's --format json ----------------------------------------------------------------

# SPEC: sigstore-go pkg/fulcio/certificate Extensions (JSON names).
_SUMMARY_NAMES = {
    "github_workflow_trigger": "githubWorkflowTrigger",
    "github_workflow_sha": "githubWorkflowSHA",
    "github_workflow_name": "githubWorkflowName",
    "github_workflow_repository": "githubWorkflowRepository",
    "github_workflow_ref": "githubWorkflowRef",
    "build_signer_uri": "buildSignerURI",
    "build_signer_digest": "buildSignerDigest",
    "runner_environment": "runnerEnvironment",
    "source_repository_uri": "sourceRepositoryURI",
    "source_repository_digest": "sourceRepositoryDigest",
    "source_repository_ref": "sourceRepositoryRef",
    "source_repository_identifier": "sourceRepositoryIdentifier",
    "source_repository_owner_uri": "sourceRepositoryOwnerURI",
    "source_repository_owner_identifier": "sourceRepositoryOwnerIdentifier",
    "build_config_uri": "buildConfigURI",
    "build_config_digest": "buildConfigDigest",
    "build_trigger": "buildTrigger",
    "run_invocation_uri": "runInvocationURI",
    "source_repository_visibility_at_signing": "sourceRepositoryVisibilityAtSigning",
}


def _rfc3339(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def certificate_summary(certificate: x509.Certificate) -> dict[str, str]:
    """sigstore-go's certificate.Summary of a Fulcio leaf."""
    identity = FulcioIdentity.from_certificate(certificate)
    summary = {"certificateIssuer": certificate.issuer.rfc4514_string(),
               "subjectAlternativeName": identity.san}
    if identity.issuer:
        summary["issuer"] = identity.issuer
    for name, json_name in _SUMMARY_NAMES.items():
        value = identity.extensions.get(name)
        if value:
            summary[json_name] = value
    return summary


def result_json(item: AttestationResult, bundle_json: Any, criteria: Criteria) -> dict[str, Any]:
    """One element of gh's JSON output: ``{attestation: {bundle}, verificationResult: {...}}``."""
    assert item.bundle.certificate is not None
    stamps = []
    logged = set()
    for entry in item.bundle.tlog_entries:
        if entry.signed_entry_timestamp is None:
            continue
        when = datetime.fromtimestamp(entry.integrated_time, timezone.utc)
        log = item.root.tlog_by_id(entry.log_id)
        logged.add(when)
        stamps.append({"type": "Tlog", "uri": log.base_url if log else "",
                       "timestamp": _rfc3339(when)})
    tsa_uri = item.root.timestamp_authorities[0].uri if item.root.timestamp_authorities else ""
    for when in item.result.verified_times:
        if when not in logged:
            stamps.append({"type": "TimestampAuthority", "uri": tsa_uri,
                           "timestamp": _rfc3339(when)})
    identity: dict[str, Any] = {
        "subjectAlternativeName": {"subjectAlternativeName": criteria.san or "",
                                   "regexp": criteria.san_regex or ""},
        "issuer": {"issuer": "", "regexp": ".*"},
    }
    if criteria.runner_environment:
        identity["runnerEnvironment"] = criteria.runner_environment
    return {
        "attestation": {"bundle": bundle_json},
        "verificationResult": {
            "mediaType": "application/vnd.dev.sigstore.verificationresult+json;version=0.1",
            "statement": item.statement,
            "signature": {"certificate": certificate_summary(item.bundle.certificate)},
            "verifiedTimestamps": stamps,
            "verifiedIdentity": identity,
        },
    }

