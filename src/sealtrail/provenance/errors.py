"""Provenance failures under the names slsa-verifier gives them.

Users script against slsa-verifier's error names (``FAILED: SLSA verification failed:
<ErrorName>``), so each is a class here whose stable ``code`` *is* that name. All are
:class:`~sealtrail.errors.VerificationError` (exit 1), except the input errors a command
can meet before any check (``ErrorInvalidFormat`` ...), which are input errors (exit 2) as
everywhere in sealtrail.

SPEC: slsa-verifier errors/errors.go (names listed in ../shared/reference/slsa-verification.md
§2 and provenance-formats.md §6).
"""

from __future__ import annotations

from sealtrail.errors import InputError, VerificationError

__all__ = [
    "ErrorEmptyRequiredField",
    "ErrorInvalidBuildType",
    "ErrorInvalidBuilderID",
    "ErrorInvalidCertificate",
    "ErrorInvalidDssePayload",
    "ErrorInvalidFormat",
    "ErrorInvalidHash",
    "ErrorInvalidOIDCIssuer",
    "ErrorInvalidRef",
    "ErrorInvalidRekorEntry",
    "ErrorInvalidSemver",
    "ErrorInvalidSignature",
    "ErrorInvalidVerificationResult",
    "ErrorMalformedURI",
    "ErrorMismatchBranch",
    "ErrorMismatchBuilderID",
    "ErrorMismatchCertificate",
    "ErrorMismatchHash",
    "ErrorMismatchResourceURI",
    "ErrorMismatchSignature",
    "ErrorMismatchSource",
    "ErrorMismatchTag",
    "ErrorMismatchVerifiedLevels",
    "ErrorMismatchVerifierID",
    "ErrorMismatchVersionedTag",
    "ErrorMismatchWorkflowInputs",
    "ErrorMissingSubjectDigest",
    "ErrorNoValidRekorEntries",
    "ErrorNoValidSignature",
    "ErrorRekorSearch",
    "ErrorUntrustedReusableWorkflow",
    "ErrorVerifierNotSupported",
    "ProvenanceError",
    "ProvenanceInputError",
]


class ProvenanceError(VerificationError):
    """A provenance check failed (exit 1); ``code`` is slsa-verifier's error name."""

    code = "ErrorProvenance"


class ProvenanceInputError(InputError):
    """Provenance that cannot be read at all (exit 2); ``code`` is slsa-verifier's name."""

    code = "ErrorInvalidFormat"


class ErrorInvalidFormat(ProvenanceInputError):
    """The provenance file is neither a Sigstore bundle nor a DSSE envelope."""

    code = "ErrorInvalidFormat"


class ErrorInvalidDssePayload(ProvenanceError):
    """The DSSE payload is not the expected in-toto statement (type, JSON, fields)."""

    code = "ErrorInvalidDssePayload"


class ErrorInvalidSignature(ProvenanceError):
    """The DSSE signature does not verify over PAE(payloadType, payload)."""

    code = "ErrorInvalidSignature"


class ErrorNoValidSignature(ProvenanceError):
    """No signature of the envelope verifies with the given key (VSA)."""

    code = "ErrorNoValidSignature"


class ErrorMismatchSignature(ProvenanceError):
    """The log entry records other signatures than the envelope's."""

    code = "ErrorMismatchSignature"


class ErrorInvalidCertificate(ProvenanceError):
    """The signing certificate does not verify (chain, SCT, profile) or names no builder."""

    code = "ErrorInvalidCertificate"


class ErrorInvalidOIDCIssuer(ProvenanceError):
    """The certificate's OIDC issuer is not the builder platform's."""

    code = "ErrorInvalidOIDCIssuer"


class ErrorInvalidRekorEntry(ProvenanceError):
    """The transparency log entry does not verify (promise, proof, checkpoint)."""

    code = "ErrorInvalidRekorEntry"


class ErrorNoValidRekorEntries(ProvenanceError):
    """No transparency log entry for the provenance verifies."""

    code = "ErrorNoValidRekorEntries"


class ErrorRekorSearch(ProvenanceError):
    """A bare DSSE envelope would need an online log search (not done offline)."""

    code = "ErrorRekorSearch"


class ErrorMalformedURI(ProvenanceError):
    """A URI (source, builder id, trigger) is not well formed."""

    code = "ErrorMalformedURI"


class ErrorUntrustedReusableWorkflow(ProvenanceError):
    """The signing workflow is not the trusted builder expected."""

    code = "ErrorUntrustedReusableWorkflow"


class ErrorInvalidRef(ProvenanceError):
    """A ref is missing or not of the required form (builder tag, branch, tag)."""

    code = "ErrorInvalidRef"


class ErrorInvalidBuilderID(ProvenanceError):
    """The builder id is not one the verifier knows."""

    code = "ErrorInvalidBuilderID"


class ErrorInvalidBuildType(ProvenanceError):
    """The buildType is not the one the builder produces."""

    code = "ErrorInvalidBuildType"


class ErrorMismatchBuilderID(ProvenanceError):
    """The provenance's builder id differs from the certificate's or the expected one."""

    code = "ErrorMismatchBuilderID"


class ErrorMismatchSource(ProvenanceError):
    """The source repository differs from --source-uri."""

    code = "ErrorMismatchSource"


class ErrorMismatchHash(ProvenanceError):
    """No subject of the provenance carries the artifact's digest."""

    code = "ErrorMismatchHash"


class ErrorInvalidHash(ProvenanceError):
    """A subject digest is not a usable hex digest (too short, not hex)."""

    code = "ErrorInvalidHash"


class ErrorMismatchBranch(ProvenanceError):
    """The build's branch differs from --source-branch."""

    code = "ErrorMismatchBranch"


class ErrorMismatchTag(ProvenanceError):
    """The build's tag differs from --source-tag."""

    code = "ErrorMismatchTag"


class ErrorInvalidSemver(ProvenanceError):
    """A versioned tag is not semver with a leading v."""

    code = "ErrorInvalidSemver"


class ErrorMismatchVersionedTag(ProvenanceError):
    """The build's tag does not satisfy --source-versioned-tag."""

    code = "ErrorMismatchVersionedTag"


class ErrorMismatchWorkflowInputs(ProvenanceError):
    """A workflow_dispatch input differs from --build-workflow-input."""

    code = "ErrorMismatchWorkflowInputs"


class ErrorVerifierNotSupported(ProvenanceError):
    """No verifier for this builder or provenance kind."""

    code = "ErrorVerifierNotSupported"


class ErrorEmptyRequiredField(ProvenanceError):
    """A field the VSA specification requires is empty."""

    code = "ErrorEmptyRequiredField"


class ErrorMissingSubjectDigest(ProvenanceError):
    """The VSA does not name the expected subject digest."""

    code = "ErrorMissingSubjectDigest"


class ErrorMismatchVerifierID(ProvenanceError):
    """The VSA's verifier id differs from --verifier-id."""

    code = "ErrorMismatchVerifierID"


class ErrorMismatchResourceURI(ProvenanceError):
    """The VSA's resourceUri differs from --resource-uri."""

    code = "ErrorMismatchResourceURI"


class ErrorInvalidVerificationResult(ProvenanceError):
    """The VSA's verificationResult is not PASSED."""

    code = "ErrorInvalidVerificationResult"


class ErrorMismatchVerifiedLevels(ProvenanceError):
    """The VSA's verifiedLevels do not satisfy --verified-level."""

    code = "ErrorMismatchVerifiedLevels"


class ErrorMismatchCertificate(ProvenanceError):
    """The signing certificate and the provenance disagree (slsa-verifier's "certificate and
    provenance mismatch"): a GitLab job's commit, ref or pipeline config."""

    code = "ErrorMismatchCertificate"
