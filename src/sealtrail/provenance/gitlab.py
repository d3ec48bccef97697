"""Provenance of a GitLab CI job (sealtrail's buildType :data:`GITLAB_BUILD_TYPE`, made by
``attest-provenance`` and ``release sign`` in a pipeline), verified at SLSA Build L2.

Pure: the artifacts' digests, the provenance file's bytes, the expectations and the trusted
root(s) in; a :class:`~sealtrail.provenance.slsa.VerifiedProvenance` out, or one of
:mod:`sealtrail.provenance.errors` (slsa-verifier's names). No file or network access.

Why L2, not L3. The provenance is signed with the pipeline's own identity: Fulcio binds the
certificate to GitLab's token for the job (SAN = the Build Config URI, the source's
extensions .12-.14 from GitLab's claims), so a hosted platform vouches for where and what was
built (SPEC: SLSA v1.0 build track, Build L2: "hosted build platform", "signed provenance").
But the job's own steps can read that token (``id_tokens``) and sign anything with it: the
provenance is not generated where the build cannot reach it (Build L3, "isolated"; SPEC:
../shared/reference/slsa-verification.md §5). A self-hosted runner is the project's own
machine, not the platform's: refused unless the policy's GitLab builder allows it (and then
still L2 at most, as the policy says).

The checks, in order (docs/provenance.md, "## verify-artifact", "### GitLab CI"):

1. the Sigstore bundle (:class:`sealtrail.verify.verifier.Verifier`, offline), its failures
   renamed as :data:`~sealtrail.provenance.slsa.SIGSTORE_ERROR_NAMES`;
2. the certificate is a GitLab pipeline's: its issuer is the expected one
   (``--certificate-oidc-issuer``, default ``https://gitlab.com``: ``ErrorInvalidOIDCIssuer``),
   its SAN equals its Build Config URI (.18) and has GitLab's ``//`` between the project and
   the config path (``ErrorMismatchCertificate``);
3. an in-toto statement with the SLSA v1 predicate, buildType :data:`GITLAB_BUILD_TYPE`
   (``ErrorInvalidBuildType``);
4. the builder id is ``<server>/<project>/-/runners/<id>`` under the certificate's server and
   project (``ErrorMismatchBuilderID``), a policy's GitLab builder admits it
   (``ErrorUntrustedReusableWorkflow``), ``--builder-id`` when given
   (``ErrorMismatchBuilderID``);
5. the runner (.11) is ``gitlab-hosted`` unless that builder says ``allow-self-hosted``
   (``ErrorUntrustedReusableWorkflow``);
6. each artifact's digest among the subjects (``ErrorMismatchHash``);
7. the source: the expected repository (host and path) equals the certificate's .12
   (``ErrorMismatchSource``), and the predicate's ``externalParameters.source`` and
   ``resolvedDependencies[0]`` name that repository at the certificate's ref
   (``ErrorMismatchSource``); the commit is .13 (``ErrorMismatchCertificate``);
   ``externalParameters.ref`` is .14 and ``ci_config`` is the SAN (``ErrorMismatchCertificate``);
8. branch, tag or versioned tag against .14 (``ErrorMismatchBranch``, ``ErrorMismatchTag``,
   ``ErrorMismatchVersionedTag``, ``ErrorInvalidRef``);
9. the level is 2 (or a policy builder's lower one); below the policy's ``minimum-level``
   it fails (``ErrorUntrustedReusableWorkflow``).
"""

from __future__ import annotations

from typing import Mapping, NamedTuple, Sequence

from sealtrail.errors import UsageError
from sealtrail.models.bundle import Bundle
from sealtrail.models.intoto import Subject
from sealtrail.models.trusted_root import TrustedRoot
from sealtrail.provenance import errors as pe
from sealtrail.provenance.intoto_predicates import (
    SLSA_PROVENANCE_V1,
    SlsaProvenance,
)
from sealtrail.provenance.policy import GITLAB_MAX_LEVEL, TrustedBuilder
from sealtrail.provenance.slsa import (
    GITHUB_ACTIONS_ISSUER,
    SlsaExpectations,
    VerifiedProvenance,
    normalize_git_uri,
    signed_statement,
    verify_dsse_signature,
    verify_each_bundle,
)
from sealtrail.verify.verifier import Verifier

__all__ = [
    "GITLAB_BUILD_TYPE",
    "GITLAB_DEFAULT_ISSUER",
    "GITLAB_LEVEL",
    "GitLabFacts",
    "check_gitlab_provenance",
    "verify_gitlab_provenance",
]

#: generate.py's GITLAB_BUILD_TYPE (docs/provenance.md "## attest-provenance", GitLab CI),
#: repeated so that verifying imports no generator.
GITLAB_BUILD_TYPE = "https://sealtrail.dev/buildtypes/gitlab-ci/v1"
#: gitlab.com's OIDC issuer (GitLab docs, "OpenID Connect (OIDC) authentication": the
#: instance URL), the default of --certificate-oidc-issuer for GitLab provenance.
GITLAB_DEFAULT_ISSUER = "https://gitlab.com"
#: SPEC: SLSA v1.0 build track: a hosted platform signs the provenance (L2); the job's steps
#: reach the signing token, so not isolated (not L3).
GITLAB_LEVEL = GITLAB_MAX_LEVEL
_HOSTED = "gitlab-hosted"
# Every identity passes the Sigstore step; step 2 checks it is a GitLab pipeline's.


class GitLabFacts(NamedTuple):
    """What :func:`check_gitlab_provenance` established."""

    builder_id: str  # <server>/<project>/-/runners/<id>
    repository: str  # the certificate's Source Repository URI (.12)
    commit: str  # .13
    ref: str  # .14
    ci_config: str  # the SAN / Build Config URI (.18)
    runner_environment: str  # .11
    level: int
    trigger: str  # .20 (push, web, schedule, ...) or ""
    subjects: tuple[Subject, ...]


def verify_gitlab_provenance(
        artifact_digests: Sequence[str | Mapping[str, str | bytes]], provenance: bytes,
        expectations: SlsaExpectations, *, trusted_root: TrustedRoot | bytes,
        other_roots: Sequence[TrustedRoot | bytes] = (),
        verifier: Verifier | None = None) -> VerifiedProvenance:
    """Verify a GitLab CI job's provenance (see the module's steps); the first bundle of a
    JSON Lines file that passes wins."""
    return verify_each_bundle(artifact_digests, provenance, expectations, _verify_bundle,
                              trusted_root=trusted_root, other_roots=other_roots,
                              verifier=verifier)


def _verify_bundle(bundle: Bundle, digests: list[dict[str, str]],
                   expected: SlsaExpectations, verifier: Verifier) -> VerifiedProvenance:
    result = verify_dsse_signature(bundle, verifier)
    signed = signed_statement(result)
    prov = signed.provenance
    facts = check_gitlab_provenance(prov, result.identity or "", result.issuer or "",
                                    result.extensions, digests, expected)
    return VerifiedProvenance(
        statement=signed.statement, payload=signed.payload, builder_id=facts.builder_id,
        source_uri="git+" + facts.repository, commit=facts.commit, trigger=facts.trigger,
        ref=facts.ref, build_level=facts.level, build_type=prov.build_type,
        predicate_type=prov.predicate_type, identity=result.identity or "",
        issuer=result.issuer or "", signature=result, subjects=facts.subjects)


def expected_issuer(expected: SlsaExpectations) -> str:
    """The issuer a GitLab certificate must name: ``--certificate-oidc-issuer``, or
    gitlab.com's when it was left at its default (GitHub Actions' issuer, which never signs
    for a GitLab pipeline)."""
    if expected.oidc_issuer == GITHUB_ACTIONS_ISSUER:
        return GITLAB_DEFAULT_ISSUER
    return expected.oidc_issuer


def check_gitlab_provenance(prov: SlsaProvenance, identity: str, issuer: str,
                            extensions: Mapping[str, str],
                            digests: Sequence[Mapping[str, str]],
                            expected: SlsaExpectations) -> GitLabFacts:
    """Steps 2-9 on a statement whose signature verified, signed by a certificate naming
    ``identity`` of ``issuer`` with Fulcio ``extensions`` (FulcioIdentity's names)."""
    # 2. A GitLab pipeline's certificate.
    want_issuer = expected_issuer(expected)
    if issuer != want_issuer:
        raise pe.ErrorInvalidOIDCIssuer("the certificate's OIDC issuer is not the expected "
                                        "GitLab instance's (--certificate-oidc-issuer)",
                                        actual=issuer or None, expected=want_issuer)
    config_uri = extensions.get("build_config_uri", "")
    if not config_uri or identity != config_uri:
        raise pe.ErrorMismatchCertificate("the certificate's SAN is not its Build Config URI "
                                          "(.18): not a GitLab pipeline's certificate",
                                          actual=identity, expected=config_uri or None)
    server, project = _pipeline(config_uri)
    # 3. The statement.
    if prov.predicate_type != SLSA_PROVENANCE_V1:
        raise pe.ErrorInvalidDssePayload("GitLab CI provenance is SLSA v1",
                                          actual=prov.predicate_type, expected=SLSA_PROVENANCE_V1)
    if expected.predicate_types is not None and prov.predicate_type not in \
            expected.predicate_types:
        raise pe.ErrorInvalidDssePayload("the policy does not accept this predicate type",
                                          actual=prov.predicate_type,
                                          expected=" or ".join(expected.predicate_types))
    if prov.build_type != GITLAB_BUILD_TYPE:
        raise pe.ErrorInvalidBuildType("not sealtrail's GitLab CI buildType",
                                       actual=prov.build_type, expected=GITLAB_BUILD_TYPE)
    # 4. The builder: a runner of the certificate's project on the certificate's server.
    builder_id = prov.builder_id
    runners = f"{server}/{project}/-/runners/"
    # The SAN always says https:// (Fulcio adds it to ci_config_ref_uri); the builder id has
    # the server's own scheme (CI_SERVER_URL), so the two compare by host and path.
    scheme, _, rest = builder_id.partition("://")
    bare = runners.partition("://")[2]
    runner = rest[len(bare):] if scheme in ("https", "http") and rest.startswith(bare) else ""
    if not runner or "/" in runner:
        raise pe.ErrorMismatchBuilderID("the builder is not a runner of the certificate's "
                                        "GitLab project", actual=builder_id,
                                        expected=runners + "<id>")
    builder: TrustedBuilder | None = None
    if expected.trusted_builders is not None:
        builder = next((b for b in expected.trusted_builders if b.accepts_gitlab(builder_id)),
                       None)
        if builder is None:
            raise pe.ErrorUntrustedReusableWorkflow(
                f"the policy trusts no GitLab builder admitting {builder_id}; a policy "
                f'[[builder]] with id = "{runners}*" and level = {GITLAB_LEVEL} would accept '
                "it", actual=builder_id)
    if expected.builder_id is not None and expected.builder_id != builder_id:
        raise pe.ErrorMismatchBuilderID("the provenance's builder is not the expected one",
                                        actual=builder_id, expected=expected.builder_id)
    # 5. The runner: GitLab's, unless the policy accepts the project's own machines.
    runner_environment = extensions.get("runner_environment", "")
    if runner_environment != _HOSTED and not (builder is not None and builder.allow_self_hosted):
        raise pe.ErrorUntrustedReusableWorkflow(
            "the job ran on a self-hosted runner (the project's machine, not GitLab's); a "
            "policy [[builder]] for it with allow-self-hosted = true would accept it",
            actual=runner_environment or None, expected=_HOSTED)
    # 6. The artifacts.
    from sealtrail.provenance.local import _subject

    subjects = tuple(_subject(prov, d, i) for i, d in enumerate(digests))
    # 7. The source, the commit, the ref and the pipeline config.
    repository = extensions.get("source_repository_uri", "")
    if not _same_repository(repository, expected.source_uri):
        raise pe.ErrorMismatchSource("the certificate's source repository is another one",
                                     actual=repository or None,
                                     expected=normalize_git_uri(expected.source_uri))
    if not _same_repository(repository, f"{server}/{project}"):
        raise pe.ErrorMismatchCertificate("the certificate's source repository (.12) is not "
                                          "the project of its Build Config URI",
                                          actual=repository, expected=f"{server}/{project}")
    commit = extensions.get("source_repository_digest", "")
    ref = extensions.get("source_repository_ref", "")
    parameters = _external_parameters(prov)
    if not _same_repository(parameters["source"], repository):
        raise pe.ErrorMismatchSource("the provenance's externalParameters.source is not the "
                                     "certificate's repository", actual=parameters["source"],
                                     expected=repository)
    dependency = prov.source_uri() or ""
    name, _, at = dependency.rpartition("@")
    if not name.startswith("git+") or not _same_repository(name, repository) or at != ref:
        raise pe.ErrorMismatchSource("the provenance's resolvedDependencies[0] is not the "
                                     "certificate's repository at its ref", actual=dependency,
                                     expected=f"git+{repository}@{ref}")
    if not commit or prov.source_commit() != commit:
        raise pe.ErrorMismatchCertificate("the provenance's commit is not the certificate's "
                                          "(.13)", actual=prov.source_commit(),
                                          expected=commit or None)
    if parameters["ref"] != ref:
        raise pe.ErrorMismatchCertificate("the provenance's externalParameters.ref is not the "
                                          "certificate's (.14)", actual=parameters["ref"],
                                          expected=ref or None)
    if parameters["ci_config"] != config_uri:
        raise pe.ErrorMismatchCertificate("the provenance's externalParameters.ci_config is "
                                          "not the certificate's Build Config URI (.18)",
                                          actual=parameters["ci_config"], expected=config_uri)
    # 8. Branch and tags (slsa-verifier's rules, on the certificate's ref).
    _check_ref(ref, expected)
    if expected.workflow_inputs:
        raise UsageError("--build-workflow-input does not apply to a GitLab pipeline")
    # 9. The level.
    level = builder.level if builder is not None else GITLAB_LEVEL
    if expected.minimum_level is not None and level < expected.minimum_level:
        raise pe.ErrorUntrustedReusableWorkflow(
            f"the builder earns SLSA Build L{level} < L{expected.minimum_level}, the policy's "
            "minimum-level (a GitLab job's steps can reach its signing token: not isolated)",
            actual=builder_id)
    return GitLabFacts(builder_id, repository, commit, ref, config_uri, runner_environment,
                       level, extensions.get("build_trigger", ""), subjects)


def _pipeline(config_uri: str) -> tuple[str, str]:
    """(server, project) of a Build Config URI ``https://<host>/<project>//<config>@<ref>``."""
    # SPEC: Fulcio's GitLab mapping: SAN and .18 are https:// + ci_config_ref_uri, where
    # GitLab writes "<host>/<project>//<config path>@<ref>".
    scheme, sep, rest = config_uri.partition("://")
    project_part, double, _config = rest.partition("//")
    host, _, project = project_part.partition("/")
    if not sep or scheme not in ("https", "http") or not double or not host or not project:
        raise pe.ErrorMismatchCertificate("the certificate's Build Config URI is not a GitLab "
                                          "pipeline's (<host>/<project>//<config>@<ref>)",
                                          actual=config_uri)
    return f"{scheme}://{host}", project


def _external_parameters(prov: SlsaProvenance) -> dict[str, str]:
    try:
        parameters = prov.statement.predicate["buildDefinition"]["externalParameters"]
    except (KeyError, TypeError):
        parameters = None
    if not isinstance(parameters, dict) or not all(
            isinstance(parameters.get(k), str) and parameters[k]
            for k in ("source", "ci_config", "ref")):
        raise pe.ErrorInvalidDssePayload("externalParameters must be {source, ci_config, ref}: "
                                          "non-empty strings (sealtrail's GitLab buildType)")
    return {k: parameters[k] for k in ("source", "ci_config", "ref")}


def _check_ref(ref: str, expected: SlsaExpectations) -> None:
    from sealtrail.provenance.slsa import parse_semver

    if expected.source_branch is not None:
        want = "refs/heads/" + expected.source_branch.removeprefix("refs/heads/")
        if not ref.startswith("refs/heads/"):
            raise pe.ErrorInvalidRef("the pipeline ran for no branch", actual=ref or None,
                                     expected=want)
        if ref != want:
            raise pe.ErrorMismatchBranch("the pipeline's branch differs", actual=ref,
                                         expected=want)
    if expected.source_tag is not None:
        want = "refs/tags/" + expected.source_tag.removeprefix("refs/tags/")
        if ref != want:
            raise pe.ErrorMismatchTag("the pipeline's tag differs", actual=ref or None,
                                      expected=want)
    if expected.source_versioned_tag is not None:
        if not ref.startswith("refs/tags/"):
            raise pe.ErrorInvalidRef("the pipeline ran for no tag", actual=ref or None,
                                     expected="refs/tags/...")
        # SPEC: slsa-verifier VerifyVersionedTag (slsa.py's _check_versioned_tag): major must
        # match, minor and patch (with its pre-release) only when given.
        want, tag = expected.source_versioned_tag, ref.removeprefix("refs/tags/")
        wanted, have = parse_semver(want), parse_semver(tag)
        if wanted is None:
            raise pe.ErrorInvalidSemver("the expected versioned tag is not semver "
                                        "(vX[.Y[.Z]])", actual=want)
        if have is None:
            raise pe.ErrorInvalidSemver("the pipeline's tag is not semver", actual=ref)
        if wanted[0] != have[0] or (wanted[1] is not None and wanted[1] != (have[1] or 0)) \
                or (wanted[2] is not None and (wanted[2], wanted[3]) != (have[2] or 0, have[3])):
            raise pe.ErrorMismatchVersionedTag("the pipeline's tag is another version",
                                               actual=ref, expected=want)


def _same_repository(recorded: str, expected: str) -> bool:
    from sealtrail.provenance.local import _same_repository as same

    return same(recorded, expected)
