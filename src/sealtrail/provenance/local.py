"""Provenance of a build on a machine (`attest-provenance --local`), verified under a policy
that trusts that machine and names who may sign for it: SLSA Build L1, never more.

Pure: the artifacts' digests, the provenance file's bytes, the expectations (a policy's
builders) and the trusted root(s) in; a :class:`~sealtrail.provenance.slsa.VerifiedProvenance`
out, or one of :mod:`sealtrail.provenance.errors` (slsa-verifier's names). No file or network
access.

Why a policy is required. slsa-verifier trusts a builder because the certificate binds the
provenance to an isolated reusable workflow (SPEC: ../shared/reference/slsa-verification.md
§2 step 4). A local build's certificate names a person (an email, say) and its builder id is
a claim of the machine's; only the policy can say that this person may sign for that machine,
and the result is SLSA Build L1 ("provenance exists"; SPEC: SLSA v1.0 build track: L2 needs a
hosted platform generating and signing the provenance, L3 an isolated one). Default policies
(slsa-verifier's builders) never accept it.

The checks, in order:

1. the Sigstore bundle (:class:`sealtrail.verify.verifier.Verifier`, offline), its failures
   renamed as :data:`~sealtrail.provenance.slsa.SIGSTORE_ERROR_NAMES`;
2. an in-toto statement with the SLSA v1 predicate (and a type the policy accepts), buildType
   :data:`LOCAL_BUILD_TYPE` (``ErrorInvalidBuildType``);
3. the builder id is one of the policy's local builders (``ErrorUntrustedReusableWorkflow``,
   naming the ``[[builder]]`` that would accept it), and ``--builder-id`` when given
   (``ErrorMismatchBuilderID``);
4. the certificate's identity and issuer are among that builder's ``signers``
   (``ErrorInvalidOIDCIssuer`` when no signer has the issuer, else
   ``ErrorUntrustedReusableWorkflow``);
5. each artifact's digest among the subjects (``ErrorMismatchHash``);
6. the source: ``resolvedDependencies[0]`` agrees with ``externalParameters.source``
   (``ErrorInvalidDssePayload``) and names the expected repository (``ErrorMismatchSource``;
   compared by host and path: scheme, user, a trailing ``/`` or ``.git`` and the host's case
   do not matter);
7. a dirty working tree is refused unless the builder says ``allow-dirty = true``
   (``ErrorMismatchSource``: the artifact was not built from the commit named);
8. branch and tag when expected (``ErrorMismatchBranch``, ``ErrorMismatchTag``);
9. the level is the builder's; below the policy's ``minimum-level`` it fails
   (``ErrorUntrustedReusableWorkflow``).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Mapping, NamedTuple, Sequence
from urllib.parse import urlsplit

from sealtrail.errors import UsageError
from sealtrail.models.bundle import Bundle
from sealtrail.models.intoto import Subject
from sealtrail.models.trusted_root import TrustedRoot
from sealtrail.provenance import errors as pe
from sealtrail.provenance.intoto_predicates import (
    SLSA_PROVENANCE_V1,
    SlsaProvenance,
)
from sealtrail.provenance.policy import LOCAL_BUILDER_PREFIX, TrustedBuilder
from sealtrail.provenance.slsa import (
    SlsaExpectations,
    VerifiedProvenance,
    normalize_git_uri,
    signed_statement,
    verify_artifact_provenance,
    verify_dsse_signature,
    verify_each_bundle,
)
from sealtrail.verify.verifier import Verifier

__all__ = [
    "LOCAL_BUILD_TYPE",
    "LocalFacts",
    "build_type_of",
    "check_local_provenance",
    "is_local_provenance",
    "verify_local_provenance",
    "verify_provenance",
]

#: generate.py's LOCAL_BUILD_TYPE (docs/provenance.md "## attest-provenance"), repeated so that
#: verifying imports no generator.
LOCAL_BUILD_TYPE = "urn:sealtrail:buildtype:local:v1"
# Every identity passes the Sigstore step; step 4 checks it against the builder's signers.


class LocalFacts(NamedTuple):
    """What :func:`check_local_provenance` established."""

    builder: TrustedBuilder  # the policy's builder that accepted it
    builder_id: str  # the provenance's builder id (urn:sealtrail:builder:local:<host>)
    repository: str  # the source repository as recorded (https://host/o/r.git)
    commit: str
    ref: str  # refs/heads/..., refs/tags/... or "" (detached)
    dirty: bool
    subjects: tuple[Subject, ...]


# -- dispatch -----------------------------------------------------------------------------------


def is_local_provenance(provenance: bytes) -> bool:
    """Whether a provenance file's (unverified) statement has the local buildType: only to
    choose the verification path, which then verifies everything. An unreadable file is
    not local (the GitHub path reports it)."""
    return build_type_of(provenance) == LOCAL_BUILD_TYPE


def build_type_of(provenance: bytes) -> str | None:
    """The first sealtrail buildType (local or GitLab CI) among a provenance file's
    (unverified) statements, else None: only to choose the verification path, which then
    verifies everything."""
    from sealtrail.provenance.gitlab import GITLAB_BUILD_TYPE

    try:
        text = bytes(provenance).decode("utf-8")
        try:
            documents = [json.loads(text)]
        except ValueError:
            documents = [json.loads(line) for line in text.splitlines()[:1000] if line.strip()]
    except (ValueError, RecursionError):
        return None
    for document in documents:
        try:
            payload = base64.b64decode(document["dsseEnvelope"]["payload"], validate=True)
            build_type = json.loads(payload)["predicate"]["buildDefinition"]["buildType"]
        except (ValueError, RecursionError, KeyError, TypeError, binascii.Error):
            continue
        if build_type in (LOCAL_BUILD_TYPE, GITLAB_BUILD_TYPE):
            return str(build_type)
    return None


def verify_provenance(
        artifact_digests: Sequence[str | Mapping[str, str | bytes]], provenance: bytes,
        expectations: SlsaExpectations, *, trusted_root: TrustedRoot | bytes,
        other_roots: Sequence[TrustedRoot | bytes] = (),
        verifier: Verifier | None = None) -> VerifiedProvenance:
    """:func:`verify_local_provenance` for a local build under a policy file (expectations
    from :meth:`SlsaExpectations.from_policy`, which always sets ``predicate_types``; a policy
    without local builders then refuses it naming the ``[[builder]]`` that would accept it),
    else :func:`~sealtrail.provenance.slsa.verify_artifact_provenance`. Without a policy a
    local build is refused at once (``ErrorUntrustedReusableWorkflow``), naming what a policy
    must say to accept it: slsa-verifier's default builders never do. A GitLab CI job's
    provenance (sealtrail's GitLab buildType) goes to
    :func:`~sealtrail.provenance.gitlab.verify_gitlab_provenance`, with or without a policy."""
    from_policy = expectations.trusted_builders is not None \
        or expectations.predicate_types is not None
    if build_type_of(provenance) not in (None, LOCAL_BUILD_TYPE):
        from sealtrail.provenance.gitlab import verify_gitlab_provenance

        return verify_gitlab_provenance(artifact_digests, provenance, expectations,
                                        trusted_root=trusted_root, other_roots=other_roots,
                                        verifier=verifier)
    if is_local_provenance(provenance):
        if not from_policy:
            raise pe.ErrorUntrustedReusableWorkflow(
                "a local build's provenance (SLSA Build L1: not an isolated build platform) "
                "is accepted only under a policy that trusts its machine and signer: give "
                "--policy FILE with a [[builder]] whose id is urn:sealtrail:builder:local:..., "
                "level = 1 and signers = [...] (docs/provenance.md, Local builds)")
        return verify_local_provenance(artifact_digests, provenance, expectations,
                                       trusted_root=trusted_root, other_roots=other_roots,
                                       verifier=verifier)
    return verify_artifact_provenance(artifact_digests, provenance, expectations,
                                      trusted_root=trusted_root, other_roots=other_roots,
                                      verifier=verifier)


# -- the local path -----------------------------------------------------------------------------


def verify_local_provenance(
        artifact_digests: Sequence[str | Mapping[str, str | bytes]], provenance: bytes,
        expectations: SlsaExpectations, *, trusted_root: TrustedRoot | bytes,
        other_roots: Sequence[TrustedRoot | bytes] = (),
        verifier: Verifier | None = None) -> VerifiedProvenance:
    """Verify a local build's provenance (see the module's steps); the first bundle of a
    JSON Lines file that passes wins."""
    return verify_each_bundle(artifact_digests, provenance, expectations, _verify_bundle,
                              trusted_root=trusted_root, other_roots=other_roots,
                              verifier=verifier)


def _verify_bundle(bundle: Bundle, digests: list[dict[str, str]],
                   expected: SlsaExpectations, verifier: Verifier) -> VerifiedProvenance:
    result = verify_dsse_signature(bundle, verifier)
    signed = signed_statement(result)
    prov = signed.provenance
    facts = check_local_provenance(prov, result.identity or "", result.issuer or "", digests,
                                   expected)
    return VerifiedProvenance(
        statement=signed.statement, payload=signed.payload, builder_id=facts.builder_id,
        source_uri="git+" + facts.repository, commit=facts.commit, trigger="local",
        ref=facts.ref, build_level=facts.builder.level, build_type=prov.build_type,
        predicate_type=prov.predicate_type, identity=result.identity or "",
        issuer=result.issuer or "", signature=result, subjects=facts.subjects)


def check_local_provenance(prov: SlsaProvenance, identity: str, issuer: str,
                           digests: Sequence[Mapping[str, str]],
                           expected: SlsaExpectations) -> LocalFacts:
    """Steps 2-9 on a statement whose signature verified, signed by ``identity`` of
    ``issuer``; ``digests`` one mapping (hashlib name -> lowercase hex) per artifact."""
    # 2. The statement.
    if prov.predicate_type != SLSA_PROVENANCE_V1:
        raise pe.ErrorInvalidDssePayload("local provenance is SLSA v1",
                                          actual=prov.predicate_type, expected=SLSA_PROVENANCE_V1)
    if expected.predicate_types is not None and prov.predicate_type not in \
            expected.predicate_types:
        raise pe.ErrorInvalidDssePayload("the policy does not accept this predicate type",
                                          actual=prov.predicate_type,
                                          expected=" or ".join(expected.predicate_types))
    if prov.build_type != LOCAL_BUILD_TYPE:
        raise pe.ErrorInvalidBuildType("not the buildType of a local build",
                                       actual=prov.build_type, expected=LOCAL_BUILD_TYPE)
    # 3. The builder: a machine the policy names.
    builder_id = prov.builder_id
    if not builder_id.startswith(LOCAL_BUILDER_PREFIX):
        raise pe.ErrorMismatchBuilderID("a local build's builder id names a machine",
                                        actual=builder_id, expected=LOCAL_BUILDER_PREFIX + "HOST")
    candidates = [b for b in expected.trusted_builders or () if b.accepts_id(builder_id)]
    if not candidates:
        raise pe.ErrorUntrustedReusableWorkflow(
            f"the provenance was made on a machine ({builder_id}: SLSA Build L1, not an "
            "isolated build platform) and the policy trusts no such builder; a policy "
            f'[[builder]] with id = "{builder_id}", level = 1 and signers = [{{identity = '
            f'"{identity}", issuer = "{issuer}"}}] would accept it', actual=builder_id)
    if expected.builder_id is not None and expected.builder_id != builder_id:
        raise pe.ErrorMismatchBuilderID("the provenance's builder is not the expected one",
                                        actual=builder_id, expected=expected.builder_id)
    # 4. Who signed: one of the builder's signers (the first builder accepting both wins).
    builder = next((b for b in candidates if b.accepts_signer(identity, issuer)), None)
    if builder is None:
        issuers = sorted({s.issuer for b in candidates for s in b.signers})
        if issuer not in issuers:
            raise pe.ErrorInvalidOIDCIssuer(
                f"the certificate's OIDC issuer is not one of the policy's signers for "
                f"{builder_id}", actual=issuer or None, expected=" or ".join(issuers))
        raise pe.ErrorUntrustedReusableWorkflow(
            f"the provenance is signed by {identity} (issuer {issuer}), not one of the "
            f"policy's signers for {builder_id} ([[builder]] signers)", actual=identity,
            expected=" or ".join(s.describe() for b in candidates for s in b.signers))
    # 5. The artifacts.
    subjects = tuple(_subject(prov, d, i) for i, d in enumerate(digests))
    # 6. The source.
    source = _source(prov)
    repository, ref, dirty = source["repository"], source["ref"], source["dirty"]
    dependency = prov.source_uri()
    commit = prov.source_commit() or ""
    if dependency != f"git+{repository}@{ref or commit}":
        raise pe.ErrorInvalidDssePayload("the provenance's resolvedDependencies[0] and "
                                          "externalParameters.source disagree",
                                          actual=dependency,
                                          expected=f"git+{repository}@{ref or commit}")
    if not _same_repository(repository, expected.source_uri):
        raise pe.ErrorMismatchSource("the provenance's source is another repository",
                                     actual=repository,
                                     expected=normalize_git_uri(expected.source_uri))
    # 7. A dirty tree: the artifact need not be the commit's.
    if dirty and not builder.allow_dirty:
        raise pe.ErrorMismatchSource(
            "the build ran in a dirty working tree (uncommitted changes: the artifact need "
            f"not be built from {commit or 'the commit'}); the policy's [[builder]] "
            f"{builder.id} would accept it with allow-dirty = true", actual="dirty",
            expected="clean")
    # 8. Branch and tag.
    if expected.source_branch is not None:
        want = "refs/heads/" + expected.source_branch.removeprefix("refs/heads/")
        if not ref:
            raise pe.ErrorInvalidRef("the provenance records no branch", expected=want)
        if ref != want:
            raise pe.ErrorMismatchBranch("the build's branch differs", actual=ref,
                                         expected=want)
    if expected.source_tag is not None:
        want = "refs/tags/" + expected.source_tag.removeprefix("refs/tags/")
        if ref != want:
            raise pe.ErrorMismatchTag("the build's tag differs", actual=ref or None,
                                      expected=want)
    if expected.source_versioned_tag is not None or expected.workflow_inputs:
        raise UsageError("--source-versioned-tag and --build-workflow-input do not apply to "
                         "a local build (give --source-tag or --source-branch)")
    # 9. The level.
    if expected.minimum_level is not None and builder.level < expected.minimum_level:
        raise pe.ErrorUntrustedReusableWorkflow(
            f"the builder earns SLSA Build L{builder.level} < L{expected.minimum_level}, the "
            f"policy's minimum-level (built on {builder_id}, not an isolated platform)",
            actual=builder_id)
    return LocalFacts(builder, builder_id, repository, commit, ref, dirty, subjects)


def _subject(prov: SlsaProvenance, digests: Mapping[str, str], index: int) -> Subject:
    for subject in prov.subjects:
        if any(subject.digest.get(name) == value for name, value in digests.items()):
            return subject
    shown = ", ".join(f"{a}:{v}" for a, v in sorted(digests.items()))
    raise pe.ErrorMismatchHash(f"expected hash {shown!r} not found among the provenance's "
                               "subjects" + (f" (artifact {index + 1})" if index else ""),
                               actual=", ".join(s.name for s in prov.subjects[:5]))


def _source(prov: SlsaProvenance) -> dict[str, Any]:
    """``externalParameters.source``: ``{repository, ref, dirty}`` with their types."""
    predicate = prov.statement.predicate
    try:
        source = predicate["buildDefinition"]["externalParameters"]["source"]
    except (KeyError, TypeError):
        raise pe.ErrorInvalidDssePayload("the provenance has no "
                                          "buildDefinition.externalParameters.source") from None
    if not isinstance(source, dict) or not isinstance(source.get("repository"), str) \
            or not source["repository"] or not isinstance(source.get("ref"), str) \
            or not isinstance(source.get("dirty"), bool):
        raise pe.ErrorInvalidDssePayload("externalParameters.source must be {repository: "
                                          "non-empty string, ref: string, dirty: boolean}")
    return source


def _repository_key(uri: str) -> tuple[str, str] | None:
    """(host, path) of a repository URL, for comparison: the scheme, a user, a trailing
    ``/`` or ``.git`` and the host's case do not name another repository."""
    try:
        parts = urlsplit(normalize_git_uri(uri.strip()).removeprefix("git+"))
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    host = parts.hostname.lower() + (f":{port}" if port else "")
    path = parts.path.rstrip("/").removesuffix(".git").rstrip("/")
    return host, path


def _same_repository(recorded: str, expected: str) -> bool:
    have, want = _repository_key(recorded), _repository_key(expected)
    return have is not None and have == want
