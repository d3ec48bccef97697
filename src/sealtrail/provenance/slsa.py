"""``verify-artifact``: artifacts checked against SLSA provenance, as slsa-verifier does.

One call, :func:`verify_artifact_provenance`, takes the artifacts' digests, the provenance
file's bytes, the expectations (:class:`SlsaExpectations`, what slsa-verifier's flags say)
and the trusted root(s), and returns a :class:`VerifiedProvenance` (the verified statement,
builder id, source, commit, trigger, ref and SLSA build level) or raises one of
:mod:`sealtrail.provenance.errors`, whose ``code`` is slsa-verifier's error name. Pure: bytes
and parsed models in, no file or network access (the CLI reads the files).

The steps, in slsa-verifier's order (SPEC: ../shared/reference/slsa-verification.md §2):

1. Read the provenance: a Sigstore bundle, JSON or JSON Lines (one bundle per line; the first
   that passes every check wins). A bare DSSE envelope would need slsa-verifier's online
   Rekor search: refused offline (``ErrorRekorSearch``, naming the bundle to pass instead);
   an unreadable file is ``ErrorInvalidFormat``.
2. The log entry ``tlogEntries[0]`` must record the envelope's signature
   (``ErrorMismatchSignature``), checked before the signature itself as slsa-verifier does.
3. The Sigstore verifier (:class:`sealtrail.verify.verifier.Verifier`, offline): verified
   times, the certificate chain and SCT, the DSSE signature over PAE, the log entry. Its
   failures are renamed (:data:`SIGSTORE_ERROR_NAMES`).
4. The certificate: the OIDC issuer (``ErrorInvalidOIDCIssuer``), the deprecated/current
   extension pairs agree (``ErrorInvalidCertificate``), the SAN is a GitHub workflow
   (``ErrorMalformedURI``); the builder (the SAN's workflow) is a default trusted builder,
   or loosely matches ``builder_id`` (``ErrorUntrustedReusableWorkflow``), at a
   ``refs/tags/vX.Y.Z`` ref (``ErrorInvalidRef``); the source repository is the expected one
   (``ErrorMismatchSource``, after stripping ``git+https://`` then ``github.com/``, case
   folded: slsa-verifier's quirk, so ``https://github.com/o/r`` does not match).
5. The provenance: in-toto payload type and SLSA v0.2/v1 predicate (``ErrorInvalidDssePayload``),
   a buildType the builder makes (``ErrorInvalidBuildType``), the builder id equal to the
   certificate's (delegators: loosely equal to ``builder_id``; ``ErrorMismatchBuilderID``),
   source and trigger URIs naming the expected repository (``ErrorMismatchSource``), the
   source commit equal to the certificate's (beyond slsa-verifier: a predicate contradicting
   its certificate), each artifact's digest among the subjects (``ErrorMismatchHash``), then
   branch, tag, versioned tag and workflow inputs when expected.

GitHub artifact attestations (buildType ``https://actions.github.io/buildtypes/workflow/v1``)
are checked as slsa-verifier's ``verify-github-attestation`` does: the builder is the signing
workflow itself (any workflow on GitHub's hosted platform; ``builder_id`` may pin it), its
``runDetails.builder.id`` must be the certificate's identity, and no semver ref is required.

A policy file (:meth:`SlsaExpectations.from_policy`) replaces the default trusted builders by
its own (each at the refs it lists, earning its level), may require a minimum level and
restrict the predicate types; without ``[[builder]]`` tables its defaults are slsa-verifier's.

The expected OIDC issuer is GitHub Actions' by default; a self-hosted instance whose built-in
issuer mints workflow tokens names its own (``SlsaExpectations.oidc_issuer``, the CLI's
``--certificate-oidc-issuer``). The trusted builder set does not change with the instance.
"""

from __future__ import annotations

import json
import re
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

from sealtrail.errors import BundleMalformedError, Error, UsageError
from sealtrail.models.bundle import Bundle
from sealtrail.models.intoto import INTOTO_PAYLOAD_TYPE, Statement, Subject
from sealtrail.models.rekor import parse_entry_body
from sealtrail.models.trusted_root import TrustedRoot
from sealtrail.provenance import errors as pe
from sealtrail.provenance.policy import DEFAULT_BUILDERS as DEFAULT_POLICY_BUILDERS
from sealtrail.provenance.policy import ProvenancePolicy, TrustedBuilder
from sealtrail.provenance.intoto_predicates import (
    BUILD_TYPE_CONTAINER,
    BUILD_TYPE_CONTAINER_BASED,
    BUILD_TYPE_DELEGATOR,
    BUILD_TYPE_GENERIC,
    BUILD_TYPE_GITHUB_WORKFLOW,
    BUILD_TYPE_GITHUB_WORKFLOW_LEGACY,
    BUILD_TYPE_GO,
    SLSA_PROVENANCE_V02,
    SLSA_PROVENANCE_V1,
    SlsaProvenance,
    parse_provenance,
)
from sealtrail.verify.policy import IdentityPolicy
from sealtrail.verify.verifier import VerificationResult, Verifier

__all__ = [
    "BundleCheck",
    "DEFAULT_TRUSTED_BUILDERS",
    "DELEGATOR_BUILDERS",
    "GITHUB_ACTIONS_ISSUER",
    "SIGSTORE_ERROR_NAMES",
    "SignedStatement",
    "SlsaExpectations",
    "VerifiedProvenance",
    "normalize_git_uri",
    "parse_semver",
    "read_provenance_bundles",
    "signed_statement",
    "verify_artifact_provenance",
    "verify_dsse_signature",
    "verify_each_bundle",
]

GITHUB_ACTIONS_ISSUER = "https://token.actions.githubusercontent.com"
_GITHUB = "https://github.com/"
_WORKFLOWS = _GITHUB + "slsa-framework/slsa-github-generator/.github/workflows/"

# SPEC: slsa-verifier verifiers/internal/gha: the reusable workflows trusted without
# --builder-id, and the buildTypes (by predicate) each produces.
_GENERIC_TYPES = {SLSA_PROVENANCE_V02: (BUILD_TYPE_GENERIC,)}
DEFAULT_TRUSTED_BUILDERS: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    _WORKFLOWS + "generator_generic_slsa3.yml": _GENERIC_TYPES,
    _WORKFLOWS + "builder_go_slsa3.yml": {SLSA_PROVENANCE_V02: (BUILD_TYPE_GO,)},
    _WORKFLOWS + "generator_container_slsa3.yml": {SLSA_PROVENANCE_V02: (BUILD_TYPE_CONTAINER,)},
    _WORKFLOWS + "builder_container-based_slsa3.yml":
        {SLSA_PROVENANCE_V1: (BUILD_TYPE_CONTAINER_BASED,)},
    _WORKFLOWS + "delegator_generic_slsa3.yml": {SLSA_PROVENANCE_V1: (BUILD_TYPE_DELEGATOR,)},
    _WORKFLOWS + "delegator_lowperms-generic_slsa3.yml":
        {SLSA_PROVENANCE_V1: (BUILD_TYPE_DELEGATOR,)},
}
#: Builders that build on behalf of a tool reusable workflow (BYOB): the provenance names the
#: tool's workflow, which ``builder_id`` must name.
DELEGATOR_BUILDERS = (_WORKFLOWS + "delegator_generic_slsa3.yml",
                      _WORKFLOWS + "delegator_lowperms-generic_slsa3.yml")
_WORKFLOW_TYPES = (BUILD_TYPE_GITHUB_WORKFLOW, BUILD_TYPE_GITHUB_WORKFLOW_LEGACY)
# Every buildType a builder named by builder_id (not a default one) may produce.
_KNOWN_TYPES = {SLSA_PROVENANCE_V02: (BUILD_TYPE_GENERIC, BUILD_TYPE_GO, BUILD_TYPE_CONTAINER),
                SLSA_PROVENANCE_V1: (BUILD_TYPE_CONTAINER_BASED, BUILD_TYPE_DELEGATOR)}

#: The Sigstore verifier's failures under slsa-verifier's names (its bundle step wraps
#: sigstore-go's errors the same way: log problems are Rekor entry errors, chain and
#: profile problems certificate errors).
SIGSTORE_ERROR_NAMES: Mapping[str, type[pe.ProvenanceError]] = {
    "SIGNATURE_INVALID": pe.ErrorInvalidSignature,
    "TIMESTAMP_INVALID": pe.ErrorInvalidSignature,
    "CERT_CHAIN_INVALID": pe.ErrorInvalidCertificate,
    "CERT_PROFILE_INVALID": pe.ErrorInvalidCertificate,
    "SCT_INVALID": pe.ErrorInvalidCertificate,
    "KEY_MISMATCH": pe.ErrorInvalidCertificate,
    "SET_INVALID": pe.ErrorInvalidRekorEntry,
    "TLOG_INCLUSION_INVALID": pe.ErrorInvalidRekorEntry,
    "CHECKPOINT_INVALID": pe.ErrorInvalidRekorEntry,
    "TLOG_KEY_UNKNOWN": pe.ErrorInvalidRekorEntry,
    "TLOG_ENTRY_MISMATCH": pe.ErrorInvalidRekorEntry,
    "BUNDLE_MALFORMED": pe.ErrorInvalidRekorEntry,
    "NO_VERIFIED_TIME": pe.ErrorNoValidRekorEntries,
    "ISSUER_MISMATCH": pe.ErrorInvalidOIDCIssuer,
    "IDENTITY_MISMATCH": pe.ErrorUntrustedReusableWorkflow,
    "EXTENSION_MISMATCH": pe.ErrorInvalidCertificate,
    "SUBJECT_MISMATCH": pe.ErrorInvalidDssePayload,
    "DIGEST_MISMATCH": pe.ErrorMismatchHash,
}

_HASH_BITS = {256: "sha256", 384: "sha384", 512: "sha512"}
_HEX = re.compile(r"\A[0-9a-f]+\Z")


class SlsaExpectations(NamedTuple):
    """What the artifacts' provenance must say: slsa-verifier's ``verify-artifact`` flags.

    ``source_uri`` is required (``github.com/o/r``; ``git+https://github.com/o/r`` too).
    ``builder_id`` (``NAME``, ``NAME@vX.Y.Z`` or ``NAME@refs/tags/vX.Y.Z``) trusts that
    builder; without it only :data:`DEFAULT_TRUSTED_BUILDERS` pass. ``source_tag`` and
    ``source_versioned_tag`` exclude each other. ``oidc_issuer`` is the issuer the signing
    certificate must name (GitHub Actions'; a self-hosted instance's own for its tokens)."""

    source_uri: str
    builder_id: str | None = None
    source_branch: str | None = None
    source_tag: str | None = None
    source_versioned_tag: str | None = None
    workflow_inputs: Mapping[str, str] = MappingProxyType({})
    oidc_issuer: str = GITHUB_ACTIONS_ISSUER
    #: A policy's trusted builders (id without @ref, refs, level: ``policy.TrustedBuilder``);
    #: None: slsa-verifier's defaults (:data:`DEFAULT_TRUSTED_BUILDERS`, vX.Y.Z tags, L3).
    trusted_builders: tuple[TrustedBuilder, ...] | None = None
    #: The predicate types accepted (None: SLSA v0.2 and v1).
    predicate_types: tuple[str, ...] | None = None
    #: The SLSA Build level the builder must earn at least (None: any).
    minimum_level: int | None = None

    @classmethod
    def from_policy(cls, policy: ProvenancePolicy, **flags: Any) -> "SlsaExpectations":
        """The expectations of a policy file (``sealtrail.provenance.policy``), with
        ``flags`` (field name -> value, None for not given) for what it leaves open; a
        field given both ways is a :class:`UsageError`. Its ``[identity]`` table other than
        ``issuer`` is for certificate-policy commands (verify-attestation) and is refused."""
        if not isinstance(policy, ProvenancePolicy):
            raise UsageError("from_policy needs a ProvenancePolicy", actual=type(policy).__name__)
        unsupported = [key for key in ("identity", "identity_regexp", "owner", "repo",
                                       "signer_workflow") if getattr(policy, key) is not None]
        if policy.deny_self_hosted_runners:
            unsupported.append("deny_self_hosted_runners")
        if unsupported:
            raise UsageError(f"the policy's [identity] {unsupported[0].replace('_', '-')} is "
                             "not a verify-artifact check (it checks the builder and source; "
                             "use verify-attestation for certificate identities)")
        values: dict[str, Any] = {
            "source_uri": policy.source_uri, "source_branch": policy.source_branch,
            "source_tag": policy.source_tag, "source_versioned_tag": policy.source_versioned_tag,
            "workflow_inputs": dict(policy.workflow_inputs) or None,
            "oidc_issuer": policy.issuer,
        }
        for name, value in flags.items():
            if name not in cls._fields:
                raise UsageError(f"unknown expectation {name!r}")
            if value in (None, {}, ()):
                continue
            if values.get(name) is not None:
                raise UsageError(f"{name} is given both by the policy and as a flag")
            values[name] = value
        if values["source_tag"] is not None and values["source_versioned_tag"] is not None:
            raise UsageError("the source tag and versioned tag exclude each other (one comes "
                             "from the policy, one from a flag)")
        if not values.get("source_uri"):
            raise UsageError("the expected source URI is required (--source-uri, or the "
                             "policy's [source] uri)")
        builders = None if policy.builders == DEFAULT_POLICY_BUILDERS else policy.builders
        return cls(**{k: v for k, v in values.items() if v is not None},
                   trusted_builders=builders, predicate_types=policy.predicate_types,
                   minimum_level=policy.minimum_level)

    def checked(self) -> "SlsaExpectations":
        """Self, or a :class:`UsageError` for values no provenance could satisfy."""
        if not isinstance(self.source_uri, str) or not self.source_uri:
            raise UsageError("the expected source URI is required (--source-uri)")
        for name in ("builder_id", "source_branch", "source_tag", "source_versioned_tag"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise UsageError(f"{name} must be a non-empty string when given")
        if self.source_tag is not None and self.source_versioned_tag is not None:
            raise UsageError("source_tag and source_versioned_tag exclude each other "
                             "(--source-tag, --source-versioned-tag)")
        if not isinstance(self.workflow_inputs, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in self.workflow_inputs.items()):
            raise UsageError("workflow_inputs must map names to strings")
        if not isinstance(self.oidc_issuer, str) or not self.oidc_issuer:
            raise UsageError("oidc_issuer must be a non-empty string")
        if self.trusted_builders is not None and not all(
                isinstance(b, TrustedBuilder) for b in self.trusted_builders):
            raise UsageError("trusted_builders must be policy.TrustedBuilder values")
        if self.minimum_level is not None and self.minimum_level not in (0, 1, 2, 3):
            raise UsageError("minimum_level must be 0 to 3", actual=self.minimum_level)
        return self


class VerifiedProvenance(NamedTuple):
    """What verification established about the artifacts' build."""

    statement: Statement
    payload: bytes  # the verified DSSE payload (what --print-provenance prints)
    builder_id: str  # the verified builder: NAME@REF (delegators: the tool's workflow)
    source_uri: str  # git+https://github.com/OWNER/REPO
    commit: str  # the source commit the certificate names
    trigger: str  # the event that started the build (push, workflow_dispatch, ...)
    ref: str  # the source ref (refs/tags/v1, refs/heads/main)
    build_level: int  # the SLSA Build level the builder earns (1-3)
    build_type: str
    predicate_type: str
    identity: str  # the certificate's SAN (the signing workflow)
    issuer: str
    signature: VerificationResult
    subjects: tuple[Subject, ...]  # per artifact, the subject that carried its digest
    bundle_line: int | None = None  # the JSON Lines line that verified

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary (without the statement)."""
        return {
            "builder_id": self.builder_id, "source_uri": self.source_uri,
            "commit": self.commit, "trigger": self.trigger, "ref": self.ref,
            "slsa_build_level": self.build_level, "build_type": self.build_type,
            "predicate_type": self.predicate_type, "identity": self.identity,
            "issuer": self.issuer, "log_index": self.signature.log_index,
            "verified_time": self.signature.to_json()["verified_time"],
            "bundle_line": self.bundle_line,
        }


# -- entry point ------------------------------------------------------------------------------


def verify_artifact_provenance(
        artifact_digests: Sequence[str | Mapping[str, str | bytes]], provenance: bytes,
        expectations: SlsaExpectations, *, trusted_root: TrustedRoot | bytes,
        other_roots: Sequence[TrustedRoot | bytes] = (),
        verifier: Verifier | None = None) -> VerifiedProvenance:
    """Verify that ``provenance`` (a file's bytes) attests the build of every artifact.

    ``artifact_digests``: one entry per artifact: a hex digest (algorithm by length, as
    slsa-verifier infers it: 256, 384 or 512 bits), ``ALG:HEX``, or a mapping of hashlib
    names to digests (raw bytes or hex). ``trusted_root`` (parsed or bytes) and
    ``other_roots`` (chosen by the leaf's issuer, e.g. GitHub's beside public-good's) are
    what the Sigstore bundle must chain to; a ready ``verifier`` replaces both.

    Returns the :class:`VerifiedProvenance`; raises a
    :class:`~sealtrail.provenance.errors.ProvenanceError` (``code``: slsa-verifier's error
    name), :class:`~sealtrail.provenance.errors.ErrorInvalidFormat` for an unreadable file,
    or :class:`UsageError` for arguments no call could satisfy.
    """
    return verify_each_bundle(artifact_digests, provenance, expectations, _verify_bundle,
                              trusted_root=trusted_root, other_roots=other_roots,
                              verifier=verifier)


#: One bundle's checks: (bundle, each artifact's digests, checked expectations, verifier).
BundleCheck = Callable[[Bundle, list[dict[str, str]], "SlsaExpectations", Verifier],
                       "VerifiedProvenance"]


def verify_each_bundle(
        artifact_digests: Sequence[str | Mapping[str, str | bytes]], provenance: bytes,
        expectations: SlsaExpectations, check: BundleCheck, *,
        trusted_root: TrustedRoot | bytes, other_roots: Sequence[TrustedRoot | bytes] = (),
        verifier: Verifier | None = None) -> VerifiedProvenance:
    """What every kind of provenance shares (slsa-verifier's, a local build's, a GitLab
    job's): check the arguments, read the file's bundles, and return the first that passes
    ``check`` (with its line); else the last failure, naming how many were tried."""
    expected = _check_expectations(expectations)
    digests = _artifact_digests(artifact_digests)
    if not isinstance(provenance, (bytes, bytearray, memoryview)):
        raise UsageError("provenance must be the bytes of the provenance file",
                         actual=type(provenance).__name__)
    if verifier is None:
        verifier = Verifier(_root(trusted_root, "trusted_root"),
                            other_roots=[_root(r, f"other_roots[{i}]")
                                         for i, r in enumerate(other_roots)])
    elif not isinstance(verifier, Verifier):
        raise UsageError("verifier must be a sealtrail Verifier", actual=type(verifier).__name__)
    bundles = read_provenance_bundles(bytes(provenance))
    last: pe.ProvenanceError | None = None
    for line, bundle in bundles:
        try:
            return check(bundle, digests, expected, verifier)._replace(bundle_line=line)
        except pe.ProvenanceError as exc:
            last = exc
    assert last is not None
    if len(bundles) > 1:
        raise type(last)(f"none of the {len(bundles)} bundles passed; the last: "
                         f"{last.message}", actual=last.actual, expected=last.expected)
    raise last


class SignedStatement(NamedTuple):
    """A verified DSSE payload, the in-toto statement it holds and its SLSA provenance."""

    payload: bytes
    statement: Statement
    provenance: SlsaProvenance


def signed_statement(result: VerificationResult) -> SignedStatement:
    """The in-toto statement a verified DSSE result carries, and its SLSA provenance
    (``ErrorInvalidDssePayload`` for another payload type or a malformed statement)."""
    if result.payload_type != INTOTO_PAYLOAD_TYPE or result.payload is None:
        raise pe.ErrorInvalidDssePayload("the payload is not an in-toto statement",
                                          actual=result.payload_type,
                                          expected=INTOTO_PAYLOAD_TYPE)
    try:
        statement = Statement.from_payload(result.payload)
    except Error as exc:
        raise pe.ErrorInvalidDssePayload(exc.message, actual=exc.actual,
                                          expected=exc.expected) from None
    return SignedStatement(result.payload, statement, parse_provenance(statement))


def _check_expectations(value: Any) -> SlsaExpectations:
    if not isinstance(value, SlsaExpectations):
        raise UsageError("expectations must be SlsaExpectations", actual=type(value).__name__)
    return value.checked()


def _root(value: Any, what: str) -> TrustedRoot:
    if isinstance(value, TrustedRoot):
        return value
    if isinstance(value, (bytes, bytearray, str)):
        return TrustedRoot.from_json(value if isinstance(value, str) else bytes(value))
    raise UsageError(f"{what} must be a TrustedRoot or the bytes of a trusted_root.json",
                     actual=type(value).__name__)


def _artifact_digests(items: Any) -> list[dict[str, str]]:
    """Each artifact's digests as lowercase hex by hashlib name; an ``ErrorInvalidHash``
    for a digest shorter than 256 bits or not hex (slsa-verifier's rule)."""
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
        raise UsageError("artifact_digests must be a list, one entry per artifact",
                         actual=type(items).__name__)
    result = []
    for index, item in enumerate(items):
        found: dict[str, str] = {}
        if isinstance(item, str):
            algorithm, _, value = item.rpartition(":")
            value = value.lower()
            if not _HEX.match(value):
                raise pe.ErrorInvalidHash(f"artifact {index}: the digest is not hex")
            algorithm = algorithm.lower() or _HASH_BITS.get(len(value) * 4, "")
            if algorithm not in _HASH_BITS.values() or len(value) * 4 < 256:
                raise pe.ErrorInvalidHash(f"artifact {index}: unsupported digest",
                                          actual=f"{len(value) * 4} bits",
                                          expected="sha256, sha384 or sha512")
            found[algorithm] = value
        elif isinstance(item, Mapping):
            for name, digest in item.items():
                text = digest.hex() if isinstance(digest, (bytes, bytearray)) else digest
                if not isinstance(name, str) or not isinstance(text, str) \
                        or not _HEX.match(text.lower()) or len(text) * 4 < 256:
                    raise pe.ErrorInvalidHash(f"artifact {index}: digest {name!r} is not a hex "
                                              "digest of at least 256 bits")
                found[name.lower()] = text.lower()
        if not found:
            raise UsageError(f"artifact_digests[{index}] names no digest",
                             expected="hex, ALG:HEX or a mapping of digests")
        result.append(found)
    if not result:
        raise UsageError("give at least one artifact digest")
    return result


# -- 1. reading ---------------------------------------------------------------------------------


def read_provenance_bundles(data: bytes) -> list[tuple[int | None, Bundle]]:
    """The Sigstore bundles of a provenance file: one JSON document, or JSON Lines (``line``
    from 1). A bare DSSE envelope is ``ErrorRekorSearch``; anything else unreadable
    ``ErrorInvalidFormat``."""
    try:
        documents: list[tuple[int | None, Any]] = [(None, json.loads(data))]
    except (ValueError, UnicodeDecodeError, RecursionError):
        documents = []
        lines = [(n, text) for n, text in enumerate(data.splitlines(), 1) if text.strip()]
        for number, text in lines:
            try:
                documents.append((number, json.loads(text)))
            except (ValueError, UnicodeDecodeError, RecursionError):
                raise pe.ErrorInvalidFormat(
                    "the provenance is neither a Sigstore bundle nor JSON Lines of bundles"
                    + (f" (line {number} is not JSON)" if len(lines) > 1 else
                       " (not JSON: truncated?)")) from None
        if not documents:
            raise pe.ErrorInvalidFormat("the provenance file is empty")
    if len(documents) > 1000:
        raise pe.ErrorInvalidFormat("the provenance file holds too many JSON Lines",
                                    actual=len(documents), expected="<= 1000")
    bundles = []
    for line, document in documents:
        where = f"line {line}: " if line is not None else ""
        if isinstance(document, dict) and "payloadType" in document \
                and "signatures" in document and "mediaType" not in document:
            # SPEC: slsa-verifier finds the log entry of a bare envelope by searching Rekor
            # online (by the envelope's hash); sealtrail verifies offline only.
            raise pe.ErrorRekorSearch(
                f"{where}the provenance is a bare DSSE envelope without verification "
                "material; slsa-verifier would search the Rekor log online for its entry. "
                "Pass the Sigstore bundle instead (slsa-github-generator v2.1.0 and later "
                "write one as the .intoto.jsonl; `sealtrail attest` writes one)")
        try:
            bundles.append((line, Bundle.from_dict(document)))
        except BundleMalformedError as exc:
            raise pe.ErrorInvalidFormat(f"{where}the provenance is not a Sigstore bundle: "
                                        f"{exc.message}", actual=exc.actual,
                                        expected=exc.expected) from None
    return bundles


# -- 2-3. the Sigstore bundle ----------------------------------------------------------------

# Every identity passes here: steps 4 and 5 check it with slsa-verifier's names and order.
_ANY_SIGNER = IdentityPolicy(identity_regexp="^", issuer_regexp="^")


def _verify_signature(bundle: Bundle, verifier: Verifier) -> VerificationResult:
    envelope = bundle.dsse_envelope
    if envelope is None:
        raise pe.ErrorInvalidDssePayload("the bundle signs an artifact, not a DSSE envelope "
                                         "of provenance")
    if not bundle.tlog_entries and not bundle.rfc3161_timestamps:
        raise pe.ErrorRekorSearch(
            "the bundle has no transparency log entry and no timestamp; slsa-verifier would "
            "search the Rekor log online. Pass the Sigstore bundle the builder wrote (with "
            "its log entry)")
    if bundle.tlog_entries:
        # SPEC: slsa-verifier gha/bundle.go: only tlogEntries[0] is used; the signatures it
        # records must be the envelope's (checked before the DSSE signature).
        entry = bundle.tlog_entries[0]
        try:
            body = parse_entry_body(entry.canonicalized_body, entry.kind, entry.version)
        except Error as exc:
            raise pe.ErrorInvalidRekorEntry(f"the log entry does not parse: {exc.message}") \
                from None
        recorded = sorted(s.signature for s in body.signatures)
        if recorded != sorted(s.sig for s in envelope.signatures):
            raise pe.ErrorMismatchSignature(
                "the bundle's log entry does not record the envelope's signature (matching "
                "bundle entry with content)")
    return verify_dsse_signature(bundle, verifier)


def verify_dsse_signature(bundle: Bundle, verifier: Verifier) -> VerificationResult:
    """The Sigstore checks of a DSSE bundle (any signer: the caller checks who), failures
    renamed as slsa-verifier names them (:data:`SIGSTORE_ERROR_NAMES`)."""
    if bundle.dsse_envelope is None:
        raise pe.ErrorInvalidDssePayload("the bundle signs an artifact, not a DSSE envelope "
                                         "of provenance")
    try:
        return verifier.verify_dsse(bundle, _ANY_SIGNER)
    except Error as exc:
        name = SIGSTORE_ERROR_NAMES.get(exc.code, pe.ErrorInvalidSignature)
        raise name(f"{exc.code}: {exc.message}", actual=exc.actual,
                   expected=exc.expected) from None


# -- 4. the certificate ----------------------------------------------------------------------


class _Signer(NamedTuple):
    """The certificate's workflow identity, as slsa-verifier's WorkflowIdentity."""

    name: str  # https://github.com/OWNER/REPO/.github/workflows/FILE (the SAN before @)
    ref: str  # the SAN after the last @
    repository: str  # OWNER/REPO of the source (.12 without https://github.com/, or .5)
    commit: str
    trigger: str
    ref_of_source: str
    runner: str


def _signer(result: VerificationResult, issuer: str) -> _Signer:
    found = result.issuer or ""
    # SPEC: slsa-verifier compares the issuer with strings.EqualFold.
    if found.casefold() != issuer.casefold():
        hint = ("" if issuer != GITHUB_ACTIONS_ISSUER else
                "; for provenance signed through a self-hosted instance's workflow issuer, "
                "pass its issuer (--certificate-oidc-issuer)")
        raise pe.ErrorInvalidOIDCIssuer("the certificate's OIDC issuer is not the expected one"
                                        + hint, actual=found or None, expected=issuer)
    ext = result.extensions
    # SPEC: slsa-verifier cross-checks the deprecated extensions with their successors.
    pairs = (("github_workflow_trigger", "build_trigger", ""),
             ("github_workflow_sha", "source_repository_digest", ""),
             ("github_workflow_repository", "source_repository_uri", _GITHUB))
    for old, new, prefix in pairs:
        if old in ext and new in ext and prefix + ext[old] != ext[new]:
            raise pe.ErrorInvalidCertificate(f"the certificate's {old} and {new} disagree",
                                             actual=ext[old], expected=ext[new])
    san = result.identity or ""
    if not san.startswith(_GITHUB) or "@" not in san:
        raise pe.ErrorMalformedURI("the certificate does not name a GitHub workflow "
                                   "(https://github.com/OWNER/REPO/PATH@REF)", actual=san)
    name, _, ref = san.rpartition("@")
    repository = ext.get("source_repository_uri", "").removeprefix(_GITHUB) \
        or ext.get("github_workflow_repository", "")
    return _Signer(name, ref, repository,
                   ext.get("source_repository_digest") or ext.get("github_workflow_sha", ""),
                   ext.get("build_trigger") or ext.get("github_workflow_trigger", ""),
                   ext.get("source_repository_ref") or ext.get("github_workflow_ref", ""),
                   ext.get("runner_environment", ""))


def _parse_builder_id(text: str) -> tuple[str, str]:
    """slsa-verifier's ParseBuilderID: ``NAME`` or ``NAME@VERSION`` (VERSION not empty)."""
    parts = text.split("@")
    if len(parts) == 2 and parts[1]:
        return parts[0], parts[1]
    if len(parts) == 1:
        return parts[0], ""
    raise pe.ErrorInvalidBuilderID("the builder id is not NAME or NAME@VERSION", actual=text)


def _matches_loose(name: str, ref: str, expected: str) -> str | None:
    """Why ``expected`` does not loosely match the builder ``name@ref``, else None.

    SPEC: slsa-verifier utils.TrustedBuilderID.MatchesLoose: names equal; a version, when
    given, equal to the ref or to ``refs/tags/`` + it."""
    want_name, want_version = _parse_builder_id(expected)
    if want_name != name:
        return f"expected name {want_name!r}, got {name!r}"
    if want_version and want_version != ref and "refs/tags/" + want_version != ref:
        return f"expected version {want_version!r}, got {ref!r}"
    return None


def _check_builder_ref(ref: str) -> None:
    """SPEC: slsa-verifier verifyTrustedBuilderRef: ``refs/tags/vX.Y.Z``, full semver, no
    pre-release or build metadata."""
    if not ref.startswith("refs/tags/"):
        raise pe.ErrorInvalidRef("the builder's ref is not of the form refs/tags/vX.Y.Z",
                                 actual=ref)
    version = parse_semver(ref.removeprefix("refs/tags/"))
    if version is None or version[2] is None or version[3] or version[4]:
        raise pe.ErrorInvalidRef("the builder's tag is not of the form vX.Y.Z", actual=ref)


def _strip_source(uri: str) -> str:
    # SPEC: slsa-verifier VerifyWorkflowIdentity strips only these two prefixes (a quirk:
    # https://github.com/o/r is then compared as is and fails).
    return uri.removeprefix("git+https://").removeprefix("github.com/")


# -- 5. the provenance -----------------------------------------------------------------------


def normalize_git_uri(uri: str) -> str:
    """SPEC: slsa-verifier utils.NormalizeGitURI: prefix ``git+https://`` (or ``git+``)."""
    if uri.startswith("git+"):
        return uri
    return "git+" + uri if "://" in uri else "git+https://" + uri


def _repository_of(uri: str, what: str, *, need_ref: bool = True) -> str:
    if "@" not in uri and need_ref:
        raise pe.ErrorMalformedURI(f"the provenance's {what} has no ref", actual=uri)
    return uri.split("@", 1)[0]


def _check_sources(prov: SlsaProvenance, expected_uri: str) -> str:
    """SPEC: slsa-verifier verifySourceURI: trigger and source name the expected repository
    (each with a ref) and are identical. Returns the normalised expected source."""
    source = normalize_git_uri(expected_uri)
    trigger_uri = prov.trigger_uri()
    if _repository_of(trigger_uri, "trigger URI") != source:
        raise pe.ErrorMismatchSource("the provenance's trigger is another repository",
                                     actual=trigger_uri, expected=source)
    material_uri = prov.source_uri()
    if _repository_of(material_uri, "source URI") != source:
        raise pe.ErrorMismatchSource("the provenance's source is another repository",
                                     actual=material_uri, expected=source)
    if trigger_uri != material_uri:
        raise pe.ErrorInvalidDssePayload("the provenance's trigger and source URIs differ",
                                         actual=material_uri, expected=trigger_uri)
    return source


def _check_digest(prov: SlsaProvenance, digests: dict[str, str], index: int) -> Subject:
    subjects = prov.subjects
    for subject in subjects:
        for algorithm, value in digests.items():
            if subject.digest.get(algorithm) == value:
                return subject
    shown = ", ".join(f"{a}:{v}" for a, v in sorted(digests.items()))
    raise pe.ErrorMismatchHash(f"expected hash {shown!r} not found among the provenance's "
                               "subjects" + (f" (artifact {index + 1})" if index else ""),
                               actual=", ".join(s.name for s in subjects[:5]))


def _full_ref(value: str, prefix: str) -> str:
    return prefix + value.removeprefix(prefix)


def _branch(prov: SlsaProvenance) -> str:
    """SPEC: slsa-verifier GetBranch: the ref for a branch build; for a tag, github_base_ref,
    else the push event's base_ref, else a release's target_commitish."""
    run = prov.github()
    if run.ref_type == "branch":
        return run.ref
    if run.ref_type != "tag":
        raise pe.ErrorInvalidDssePayload("the provenance records an unknown ref type",
                                         actual=run.ref_type or None)
    if run.base_ref:
        return _full_ref(run.base_ref, "refs/heads/")
    payload = run.event_payload or {}
    if run.event_name == "push" and isinstance(payload.get("base_ref"), str) \
            and payload["base_ref"]:
        return _full_ref(payload["base_ref"], "refs/heads/")
    release = payload.get("release")
    if run.event_name == "release" and isinstance(release, dict) \
            and isinstance(release.get("target_commitish"), str) and release["target_commitish"]:
        return _full_ref(release["target_commitish"], "refs/heads/")
    return ""


def _tag(prov: SlsaProvenance) -> str:
    run = prov.github()
    if run.ref_type != "tag" or not run.ref.startswith("refs/tags/"):
        raise pe.ErrorInvalidRef("the build was not started by a tag", actual=run.ref or None)
    return run.ref


def parse_semver(text: str) -> tuple[int, int | None, int | None, str, str] | None:
    """Go's golang.org/x/mod/semver: ``vMAJOR[.MINOR[.PATCH[-PRE][+BUILD]]]`` as (major,
    minor, patch, pre-release, build), None if invalid. Shorthands (``v1``, ``v1.2``) take
    no pre-release or build; numbers have no leading zeros."""
    match = re.fullmatch(r"v(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*)"
                         r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
                         r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?)?)?", text)
    if match is None:
        return None
    major, minor, patch, pre, build = match.groups()
    for part in (pre or "").split("."):
        if part.isdigit() and len(part) > 1 and part[0] == "0":
            return None  # numeric pre-release identifiers have no leading zeros
    return (int(major), None if minor is None else int(minor),
            None if patch is None else int(patch), pre or "", build or "")


def _check_versioned_tag(prov: SlsaProvenance, expected: str) -> None:
    """SPEC: slsa-verifier VerifyVersionedTag: the expected value is semver with a leading v;
    the provenance's tag is canonicalised; major must match, minor and patch (with its
    pre-release) only when given; build metadata is ignored."""
    want = parse_semver(expected)
    if want is None:
        raise pe.ErrorInvalidSemver("the expected versioned tag is not semver (vX[.Y[.Z]])",
                                    actual=expected)
    tag = _tag(prov)
    have = parse_semver(tag.removeprefix("refs/tags/"))
    if have is None:
        raise pe.ErrorInvalidSemver("the provenance's tag is not semver", actual=tag)
    major, minor, patch = have[0], have[1] or 0, have[2] or 0
    if want[0] != major:
        raise pe.ErrorMismatchVersionedTag("major version differs", actual=tag, expected=expected)
    if want[1] is not None and want[1] != minor:
        raise pe.ErrorMismatchVersionedTag("minor version differs", actual=tag, expected=expected)
    if want[2] is not None and (want[2], want[3]) != (patch, have[3]):
        raise pe.ErrorMismatchVersionedTag("patch version differs", actual=tag, expected=expected)


def _as_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


def _check_inputs(prov: SlsaProvenance, expected: Mapping[str, str]) -> None:
    """SPEC: slsa-verifier VerifyWorkflowInputs: only a workflow_dispatch event has inputs,
    read from its payload's ``inputs`` object and compared as strings."""
    run = prov.github()
    if run.event_name != "workflow_dispatch":
        raise pe.ErrorMismatchWorkflowInputs("workflow inputs exist only for a "
                                             "workflow_dispatch event",
                                             actual=run.event_name or None)
    if run.event_payload is None:
        raise pe.ErrorMismatchWorkflowInputs("the provenance does not record the event's "
                                             "inputs")
    inputs = run.event_payload.get("inputs")
    if not isinstance(inputs, dict):
        raise pe.ErrorInvalidDssePayload("the event payload's inputs are not an object "
                                         "(parameters type inputs)",
                                         actual=type(inputs).__name__)
    for name, want in sorted(expected.items()):
        if name not in inputs:
            raise pe.ErrorMismatchWorkflowInputs(f"the build has no input {name!r}")
        have = _as_text(inputs[name])
        if have != want:
            raise pe.ErrorMismatchWorkflowInputs(f"input {name!r} differs", actual=have,
                                                 expected=want)


def _level(default_builder: bool, workflow_type: bool, signer: _Signer) -> int:
    """The SLSA Build level the builder earns (slsa spec build-track-basics.md).

    L3 (isolated, signing key out of the build's reach): the default trusted reusable
    workflows, and GitHub attestations made by a reusable workflow of another repository on
    a GitHub-hosted runner. L2 (a hosted platform signs the provenance): any other
    signing workflow, including builders trusted only through ``builder_id``."""
    if default_builder:
        return 3
    if workflow_type:
        own_repository = signer.name.startswith(f"{_GITHUB}{signer.repository}/")
        return 3 if not own_repository and signer.runner == "github-hosted" else 2
    return 2


def _verify_bundle(bundle: Bundle, digests: list[dict[str, str]], expected: SlsaExpectations,
                   verifier: Verifier) -> VerifiedProvenance:
    result = _verify_signature(bundle, verifier)
    assert result.payload is not None and result.payload_type is not None
    # Peeked before the certificate checks, which depend on the kind of provenance; a
    # statement that does not parse fails in step 5, where slsa-verifier reports it.
    prov: SlsaProvenance | None = None
    problem: pe.ProvenanceError | None = None
    try:
        prov = signed_statement(result).provenance
    except pe.ProvenanceError as exc:
        problem = exc
    workflow_type = prov is not None and prov.predicate_type == SLSA_PROVENANCE_V1 \
        and prov.build_type in _WORKFLOW_TYPES

    # 4. The certificate: issuer, builder, its ref, the source repository.
    signer = _signer(result, expected.oidc_issuer)
    policy = expected.trusted_builders
    listed = None if policy is None else next((b for b in policy if b.id == signer.name), None)
    default_builder = signer.name in DEFAULT_TRUSTED_BUILDERS if policy is None \
        else listed is not None
    if expected.builder_id is None:
        if not default_builder and not (workflow_type and policy is None):
            raise pe.ErrorUntrustedReusableWorkflow(
                "the signing workflow is not a " + ("default " if policy is None else
                                                     "policy's ") +
                "trusted builder (name it with --builder-id to trust it)", actual=signer.name)
    elif signer.name not in DELEGATOR_BUILDERS or not default_builder:
        # SPEC: slsa-verifier isTrustedDelegatorBuilder: a trusted delegator builds on behalf
        # of any tool workflow (checked against builder_id in the provenance step).
        why = _matches_loose(signer.name, signer.ref, expected.builder_id)
        if why is not None:
            raise pe.ErrorUntrustedReusableWorkflow(
                f"the signing workflow is not the expected builder: {why}",
                actual=f"{signer.name}@{signer.ref}", expected=expected.builder_id)
    if listed is not None:
        if not listed.accepts_ref(signer.ref):
            raise pe.ErrorInvalidRef(f"the builder's ref is not one the policy accepts "
                                     f"({listed.describe_refs()})", actual=signer.ref)
    elif not workflow_type:
        _check_builder_ref(signer.ref)
    want_repository = _strip_source(expected.source_uri)
    if signer.repository.casefold() != want_repository.casefold():
        raise pe.ErrorMismatchSource("the certificate names another source repository",
                                     actual=signer.repository, expected=want_repository)
    delegator = signer.name in DELEGATOR_BUILDERS
    if delegator and expected.builder_id is None and policy is None:
        raise pe.ErrorInvalidBuilderID("a delegator (BYOB) build needs --builder-id naming "
                                       "the tool's reusable workflow (empty ID)")

    # 5. The provenance.
    if problem is not None:
        raise problem
    assert prov is not None
    if expected.predicate_types is not None and prov.predicate_type not in \
            expected.predicate_types:
        raise pe.ErrorInvalidDssePayload("the policy does not accept this predicate type",
                                         actual=prov.predicate_type,
                                         expected=" or ".join(expected.predicate_types))
    certificate_builder = f"{signer.name}@{signer.ref}"
    if workflow_type:
        wanted_ids = (result.identity,) if prov.build_type == BUILD_TYPE_GITHUB_WORKFLOW else (
            f"{_GITHUB}actions/runner/{signer.runner or 'github-hosted'}",)
        if prov.builder_id not in wanted_ids:
            raise pe.ErrorMismatchBuilderID("the provenance's builder is not the signing "
                                            "workflow", actual=prov.builder_id,
                                            expected=wanted_ids[0])
        builder_id = certificate_builder
    else:
        if signer.name in DEFAULT_TRUSTED_BUILDERS:
            types = DEFAULT_TRUSTED_BUILDERS[signer.name].get(prov.predicate_type, ())
        else:
            types = _KNOWN_TYPES.get(prov.predicate_type, ())
        if prov.build_type not in types:
            raise pe.ErrorInvalidBuildType("the builder does not make provenance of this "
                                           "buildType", actual=prov.build_type,
                                           expected=" or ".join(types) or None)
        if delegator:
            name, _, ref = prov.builder_id.rpartition("@")
            if expected.builder_id is not None:
                why = _matches_loose(name or prov.builder_id, ref, expected.builder_id)
            else:  # a policy: the tool's workflow must be one of its builders, at its refs
                assert policy is not None
                tool = next((b for b in policy if b.id == name), None)
                why = (None if tool is not None and tool.accepts_ref(ref) else
                       "not among the policy's trusted builders at the refs it accepts")
            if not name or why is not None:
                raise pe.ErrorMismatchBuilderID(
                    "the provenance's builder (the tool's workflow) is not the expected one"
                    + (f": {why}" if why else ""), actual=prov.builder_id,
                    expected=expected.builder_id)
            builder_id = prov.builder_id
        else:
            if prov.builder_id != certificate_builder:
                raise pe.ErrorMismatchBuilderID("the provenance's builder id is not the "
                                                "certificate's", actual=prov.builder_id,
                                                expected=certificate_builder)
            builder_id = certificate_builder
    source = _check_sources(prov, expected.source_uri)
    commit = prov.source_commit()
    if commit and signer.commit and commit.lower() != signer.commit.lower():
        raise pe.ErrorMismatchSource("the provenance's source commit contradicts the "
                                     "certificate's", actual=commit, expected=signer.commit)
    subjects = tuple(_check_digest(prov, d, i) for i, d in enumerate(digests))
    if expected.source_branch is not None:
        branch = _branch(prov)
        want = _full_ref(expected.source_branch, "refs/heads/")
        if not branch:
            raise pe.ErrorInvalidRef("the provenance records no branch", expected=want)
        if branch != want:
            raise pe.ErrorMismatchBranch("the build's branch differs", actual=branch,
                                         expected=want)
    if expected.source_tag is not None:
        tag = _tag(prov)
        want = _full_ref(expected.source_tag, "refs/tags/")
        if tag != want:
            raise pe.ErrorMismatchTag("the build's tag differs", actual=tag, expected=want)
    if expected.source_versioned_tag is not None:
        _check_versioned_tag(prov, expected.source_versioned_tag)
    if expected.workflow_inputs:
        _check_inputs(prov, expected.workflow_inputs)
    try:
        run_ref = prov.github().ref
    except pe.ProvenanceError:
        run_ref = ""
    if policy is not None:
        trusted = listed
        if delegator:
            name = builder_id.rpartition("@")[0]
            trusted = next((b for b in policy if b.id == name), None) or listed
        level = trusted.level if trusted is not None else _level(False, workflow_type, signer)
    else:
        level = _level(default_builder or (delegator and expected.builder_id is not None),
                       workflow_type, signer)
    if expected.minimum_level is not None and level < expected.minimum_level:
        raise pe.ErrorUntrustedReusableWorkflow(
            f"the builder earns SLSA Build L{level}, the policy requires at least "
            f"L{expected.minimum_level}", actual=builder_id)
    return VerifiedProvenance(
        statement=prov.statement, payload=result.payload, builder_id=builder_id,
        source_uri=source, commit=signer.commit or commit or "", trigger=signer.trigger,
        ref=signer.ref_of_source or run_ref,
        build_level=level,
        build_type=prov.build_type, predicate_type=prov.predicate_type,
        identity=result.identity or "", issuer=result.issuer or "", signature=result,
        subjects=subjects)
