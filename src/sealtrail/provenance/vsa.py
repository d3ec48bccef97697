"""Verification summary attestations (VSA): check one as slsa-verifier does, or build one.

``verify_vsa_envelope(envelope_bytes, key, options)`` checks a bare DSSE envelope signed by a
public key; ``check_vsa_payload(payload_type, payload, options)`` checks the statement of an
envelope whose signature was verified elsewhere (a keyless Sigstore bundle, by
:class:`sealtrail.verify.verifier.Verifier`). ``build_vsa_statement(...)`` is the pure builder
behind ``--vsa-out``. Nothing here reads files or the clock: times and bytes come in.

SPEC: SLSA verification_summary v1 (provenance-formats.md §6): predicate type
``https://slsa.dev/verification_summary/v1``; ``verifier.id``, ``resourceUri`` and ``policy``
(a ResourceDescriptor with a ``uri``) are required, ``verificationResult`` is PASSED or
FAILED, ``verifiedLevels`` holds ``SLSA_<TRACK>_LEVEL_<n>`` (or ``_UNEVALUATED``) and custom
values that must not start ``SLSA_``.
SPEC: slsa-verifier verifiers/internal/vsa/verifier.go, the order of its checks: the envelope
signature (key hash by key type, signatures naming another key id skipped), then the
statement type and predicate type, then subject digests, verifier id, resource URI, result,
verified levels; each failure under its error name.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, NamedTuple

from sealtrail._internal.encoding import b64decode, parse_rfc3339
from sealtrail.crypto.keys import PublicKey
from sealtrail.errors import Error, UsageError
from sealtrail.provenance.errors import (
    ErrorEmptyRequiredField,
    ErrorInvalidDssePayload,
    ErrorInvalidVerificationResult,
    ErrorMismatchResourceURI,
    ErrorMismatchVerifiedLevels,
    ErrorMismatchVerifierID,
    ErrorMissingSubjectDigest,
    ErrorNoValidSignature,
)

__all__ = [
    "INTOTO_PAYLOAD_TYPE",
    "SEALTRAIL_VERIFIER_ID",
    "STATEMENT_V1",
    "VSA_PREDICATE_TYPE",
    "VerifiedVSA",
    "VSAOptions",
    "build_vsa_statement",
    "check_vsa_payload",
    "dsse_key_id",
    "parse_level",
    "parse_subject_digest",
    "policy_digest",
    "slsa_build_level",
    "verify_envelope_signature",
    "verify_vsa_envelope",
]

VSA_PREDICATE_TYPE = "https://slsa.dev/verification_summary/v1"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"
INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
#: The ``verifier.id`` of the VSAs sealtrail writes (its package URL; the version goes into
#: ``verifier.version``). An organisation running its own verification service names itself
#: with ``--vsa-verifier-id`` instead, since consumers check this id (``--verifier-id``).
SEALTRAIL_VERIFIER_ID = "pkg:pypi/sealtrail"
MAX_ENVELOPE_BYTES = 16 * 1024 * 1024
MAX_SIGNATURES = 64

# SPEC: verification_summary v1 "verifiedLevels": SLSA_<TRACK>_LEVEL_<n> or _UNEVALUATED.
_SLSA_LEVEL = re.compile(r"\ASLSA_([A-Z0-9]+)_LEVEL_([0-9]{1,4}|UNEVALUATED)\Z")
# Digest set values that are hex by definition (in-toto DigestSet): compared lowercase.
_HEX_ALGORITHMS = frozenset({"sha256", "sha224", "sha384", "sha512", "sha512_224", "sha512_256",
                             "sha3_224", "sha3_256", "sha3_384", "sha3_512", "shake128",
                             "shake256", "sha1", "md5", "gitcommit", "gittree", "gitblob",
                             "gittag"})


class VSAOptions(NamedTuple):
    """What ``verify-vsa`` expects (its flags)."""

    subject_digests: tuple[tuple[str, str], ...]  # (algorithm, value), from parse_subject_digest
    verifier_id: str
    resource_uri: str
    verified_levels: tuple[str, ...] = ()


class VerifiedVSA(NamedTuple):
    """A VSA that passed every check."""

    payload: bytes  # the statement as signed (``--print-attestation``)
    statement: dict[str, Any]
    verifier_id: str
    resource_uri: str
    verified_levels: tuple[str, ...]
    time_verified: datetime | None
    key_id: str | None  # the DSSE key id the signature was checked under (key-signed)


# -- flags -------------------------------------------------------------------------------------


def parse_subject_digest(text: str) -> tuple[str, str]:
    """``ALG:VALUE`` (``--subject-digest``) -> ``(alg, value)``; :class:`UsageError` else."""
    algorithm, sep, value = text.partition(":") if isinstance(text, str) else ("", "", "")
    if not sep or not algorithm or not value:
        raise UsageError("--subject-digest takes ALG:VALUE", actual=text,
                         expected="e.g. sha256:<hex>")
    return algorithm, value


def parse_level(text: str) -> str:
    """Check a ``--verified-level``: an SLSA track level, or a custom value not starting
    ``SLSA_`` (SPEC: verification_summary v1)."""
    if not isinstance(text, str) or not text:
        raise UsageError("--verified-level takes a level name", actual=text)
    if text.startswith("SLSA_") and not _SLSA_LEVEL.match(text):
        raise UsageError("--verified-level: an SLSA level is SLSA_<TRACK>_LEVEL_<n>",
                         actual=text, expected="e.g. SLSA_BUILD_LEVEL_2")
    return text


def dsse_key_id(key: PublicKey) -> str:
    """slsa-verifier's default key id: ``SHA256:`` + unpadded base64 of SHA-256(DER SPKI)."""
    digest = hashlib.sha256(key.spki_der).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


# -- verification ------------------------------------------------------------------------------


def verify_vsa_envelope(envelope: bytes, key: PublicKey, options: VSAOptions, *,
                        key_id: str | None = None) -> VerifiedVSA:
    """Check a bare DSSE envelope holding a VSA, signed by ``key``; raise the error named as
    slsa-verifier names it, else return what was verified."""
    payload_type, payload, used = verify_envelope_signature(envelope, key, key_id=key_id)
    return check_vsa_payload(payload_type, payload, options)._replace(key_id=used)


def verify_envelope_signature(envelope: bytes, key: PublicKey, *,
                              key_id: str | None = None) -> tuple[str, bytes, str]:
    """``(payloadType, payload, key id)`` of a DSSE envelope one of whose signatures verifies
    with ``key`` over PAE; signatures naming another key id are skipped.

    SPEC: DSSE v1 (a verifier tries each signature; ``keyid`` is a hint, and one that names
    another key is skipped, as go-securesystemslib's envelope verifier does); the hash
    follows the key: P-256 and RSA (PKCS#1 v1.5) SHA-256, P-384 SHA-384, P-521 SHA-512,
    Ed25519 pure (slsa-verifier: sigstore's LoadVerifier by key type).
    """
    expected_id = key_id if key_id else dsse_key_id(key)
    data = _envelope_json(envelope)
    payload_type = data.get("payloadType")
    if not isinstance(payload_type, str):
        raise ErrorInvalidDssePayload("the DSSE envelope has no payloadType string")
    payload = b64decode(data.get("payload"), "the DSSE payload", ErrorInvalidDssePayload)
    signatures = data.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise ErrorNoValidSignature("the DSSE envelope carries no signatures")
    if len(signatures) > MAX_SIGNATURES:
        raise ErrorInvalidDssePayload("the DSSE envelope carries too many signatures",
                                      actual=len(signatures), expected=f"<= {MAX_SIGNATURES}")
    type_bytes = payload_type.encode()
    # SPEC: DSSE v1 PAE = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body.
    pae = b"DSSEv1 %d %s %d %s" % (len(type_bytes), type_bytes, len(payload), payload)
    skipped = 0
    for entry in signatures:
        if not isinstance(entry, dict):
            raise ErrorInvalidDssePayload("a DSSE signature is not an object")
        named = entry.get("keyid", "")
        if not isinstance(named, str):
            raise ErrorInvalidDssePayload("a DSSE signature's keyid is not a string")
        if named and named != expected_id:
            skipped += 1
            continue
        try:
            signature = b64decode(entry.get("sig"), "a DSSE signature", ErrorInvalidDssePayload)
        except ErrorInvalidDssePayload:
            continue  # a garbled signature is one that does not verify
        if key.verify(signature, pae):
            return payload_type, payload, expected_id
    detail = (f" ({skipped} signature(s) for other key ids skipped)" if skipped else "")
    raise ErrorNoValidSignature("no signature of the envelope verifies with the public key"
                                + detail, expected=f"key id {expected_id}")


def _envelope_json(envelope: bytes) -> dict[str, Any]:
    if len(envelope) > MAX_ENVELOPE_BYTES:
        raise ErrorInvalidDssePayload("the attestation is too large", actual=len(envelope),
                                      expected=f"<= {MAX_ENVELOPE_BYTES} bytes")
    try:
        data = json.loads(envelope)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ErrorInvalidDssePayload("the attestation is not a JSON DSSE envelope") from exc
    if not isinstance(data, dict):
        raise ErrorInvalidDssePayload("the attestation is not a JSON DSSE envelope")
    return data


def check_vsa_payload(payload_type: str, payload: bytes, options: VSAOptions) -> VerifiedVSA:
    """Check the (already authenticated) statement of a VSA against ``options``."""
    if payload_type != INTOTO_PAYLOAD_TYPE:
        raise ErrorInvalidDssePayload("the DSSE payload type is not in-toto's",
                                      actual=payload_type, expected=INTOTO_PAYLOAD_TYPE)
    statement = _statement(payload)
    predicate = statement["predicate"]
    subjects = statement["subject"]
    _check_subject_digests(subjects, options.subject_digests)
    verifier_id = predicate["verifier"]["id"]
    if verifier_id != options.verifier_id:
        raise ErrorMismatchVerifierID("the VSA's verifier id is not the expected one",
                                      actual=verifier_id, expected=options.verifier_id)
    resource_uri = predicate["resourceUri"]
    if resource_uri != options.resource_uri:
        raise ErrorMismatchResourceURI("the VSA's resourceUri is not the expected one",
                                       actual=resource_uri, expected=options.resource_uri)
    result = predicate["verificationResult"]
    if result != "PASSED":
        raise ErrorInvalidVerificationResult("the VSA's verificationResult is not PASSED",
                                             actual=result, expected="PASSED")
    levels = tuple(predicate.get("verifiedLevels", ()))
    _check_levels(levels, options.verified_levels)
    when = predicate.get("timeVerified")
    time_verified = (parse_rfc3339(when, "timeVerified", ErrorInvalidDssePayload)
                     if when is not None else None)
    return VerifiedVSA(payload, statement, verifier_id, resource_uri, levels, time_verified,
                       None)


def _statement(payload: bytes) -> dict[str, Any]:
    """The statement, shape-checked: wrong types are ErrorInvalidDssePayload (as a Go
    unmarshal into the VSA struct fails), missing required values ErrorEmptyRequiredField."""
    bad = ErrorInvalidDssePayload
    try:
        statement = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise bad("the DSSE payload is not JSON") from exc
    if not isinstance(statement, dict):
        raise bad("the DSSE payload is not a JSON object")
    if statement.get("_type") != STATEMENT_V1:
        raise bad("the payload is not an in-toto v1 statement", actual=statement.get("_type"),
                  expected=STATEMENT_V1)
    if statement.get("predicateType") != VSA_PREDICATE_TYPE:
        raise bad("the statement is not a VSA", actual=statement.get("predicateType"),
                  expected=VSA_PREDICATE_TYPE)
    subjects = statement.get("subject")
    if subjects is None or subjects == []:
        raise ErrorEmptyRequiredField("the statement has no subject")
    if not isinstance(subjects, list):
        raise bad("statement.subject is not a list")
    for index, subject in enumerate(subjects):
        if not isinstance(subject, dict):
            raise bad(f"statement.subject[{index}] is not an object")
        _digest_set(subject.get("digest", {}), f"statement.subject[{index}].digest")
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        raise bad("the VSA has no predicate object")
    verifier = predicate.get("verifier")
    if verifier is None:
        raise ErrorEmptyRequiredField("the VSA names no verifier (predicate.verifier.id)")
    if not isinstance(verifier, dict):
        raise bad("predicate.verifier is not an object")
    _required_str(verifier, "id", "predicate.verifier.id")
    version = verifier.get("version", {})
    if not isinstance(version, dict) or not all(isinstance(v, str) for v in version.values()):
        raise bad("predicate.verifier.version is not a map of strings")
    _required_str(predicate, "resourceUri", "predicate.resourceUri")
    policy = predicate.get("policy")
    if policy is None:
        raise ErrorEmptyRequiredField("the VSA names no policy (predicate.policy)")
    if not isinstance(policy, dict):
        raise bad("predicate.policy is not an object")
    # SPEC: verification_summary v1: the policy entry MUST contain a uri (its digest SHOULD
    # be there: checked for shape when present, not required).
    _required_str(policy, "uri", "predicate.policy.uri")
    if "digest" in policy:
        _digest_set(policy["digest"], "predicate.policy.digest")
    _required_str(predicate, "verificationResult", "predicate.verificationResult")
    if "timeVerified" in predicate:
        parse_rfc3339(predicate["timeVerified"], "predicate.timeVerified", bad)
    levels = predicate.get("verifiedLevels", [])
    if not isinstance(levels, list) or not all(isinstance(v, str) for v in levels):
        raise bad("predicate.verifiedLevels is not a list of strings")
    for name in ("inputAttestations",):
        items = predicate.get(name, [])
        if not isinstance(items, list) or not all(isinstance(v, dict) for v in items):
            raise bad(f"predicate.{name} is not a list of resource descriptors")
        for index, item in enumerate(items):
            if "digest" in item:
                _digest_set(item["digest"], f"predicate.{name}[{index}].digest")
    dependencies = predicate.get("dependencyLevels", {})
    if not isinstance(dependencies, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0
            for v in dependencies.values()):
        raise bad("predicate.dependencyLevels is not a map of counts")
    if not isinstance(predicate.get("slsaVersion", ""), str):
        raise bad("predicate.slsaVersion is not a string")
    return statement


def _required_str(data: dict[str, Any], key: str, what: str) -> str:
    value = data.get(key)
    if value is None or value == "":
        raise ErrorEmptyRequiredField(f"{what} is empty")
    if not isinstance(value, str):
        raise ErrorInvalidDssePayload(f"{what} is not a string", actual=value)
    return value


def _digest_set(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ErrorInvalidDssePayload(f"{what} is not a digest set (names to strings)")
    return value


def _normal(algorithm: str, value: str) -> tuple[str, str]:
    return (algorithm, value.lower()) if algorithm.lower() in _HEX_ALGORITHMS else (algorithm,
                                                                                  value)


def _check_subject_digests(subjects: list[dict[str, Any]],
                           expected: Sequence[tuple[str, str]]) -> None:
    """Every expected digest must be carried by some subject (any subject may carry each).

    SPEC: slsa-verifier matchExpectedSubjectDigests: all of --subject-digest must be found."""
    if not expected:
        raise UsageError("give at least one --subject-digest ALG:VALUE")
    found = {_normal(algorithm, value)
             for subject in subjects for algorithm, value in subject.get("digest", {}).items()}
    for algorithm, value in expected:
        if _normal(algorithm, value) not in found:
            raise ErrorMissingSubjectDigest("no subject of the VSA carries the digest",
                                            expected=f"{algorithm}:{value}")


def _ladder(levels: Sequence[str]) -> dict[str, int]:
    """Track -> highest numeric level among ``levels`` (UNEVALUATED gives none)."""
    ladder: dict[str, int] = {}
    for level in levels:
        if not level.startswith("SLSA_"):
            continue
        match = _SLSA_LEVEL.match(level)
        if match is None:
            raise ErrorInvalidDssePayload("a verifiedLevels value starting SLSA_ is not "
                                          "SLSA_<TRACK>_LEVEL_<n>", actual=level)
        track, number = match.groups()
        if number != "UNEVALUATED":
            ladder[track] = max(ladder.get(track, 0), int(number))
    return ladder


def _check_levels(found: Sequence[str], wanted: Sequence[str]) -> None:
    """SLSA track levels are minimums (SLSA_BUILD_LEVEL_3 satisfies SLSA_BUILD_LEVEL_2);
    any other value, UNEVALUATED included, must appear as it is.

    SPEC: slsa-verifier matchVerifiedLevels; verification_summary v1 (levels per track)."""
    have = _ladder(found)
    for level in wanted:
        match = _SLSA_LEVEL.match(level)
        if match is not None and match.group(2) != "UNEVALUATED":
            track, number = match.group(1), int(match.group(2))
            if track not in have:
                raise ErrorMismatchVerifiedLevels(f"the VSA verifies no SLSA {track} level",
                                                  actual=list(found), expected=level)
            if have[track] < number:
                raise ErrorMismatchVerifiedLevels(
                    f"the VSA's SLSA {track} level is below the one required",
                    actual=f"SLSA_{track}_LEVEL_{have[track]}", expected=level)
        elif level not in found:
            raise ErrorMismatchVerifiedLevels("the VSA does not list the verified level",
                                              actual=list(found), expected=level)


# -- writing -----------------------------------------------------------------------------------

#: The reusable workflows of slsa-github-generator (slsa-verification.md §2 step 4).
GENERATOR_WORKFLOWS = "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"


def slsa_build_level(*, builder_id: str | None = None, github_hosted: bool = False,
                     reusable_workflow: bool = False, policy_level: str | None = None) -> str:
    """The SLSA build level a passed check earns (docs/provenance.md lists the mapping).

    - slsa-github-generator's builders: ``SLSA_BUILD_LEVEL_3`` (provenance made and signed
      in a trusted reusable workflow, out of reach of the caller's steps;
      slsa-verification.md §5).
    - A GitHub artifact attestation from a GitHub-hosted runner: ``SLSA_BUILD_LEVEL_3`` when
      it was signed by a reusable workflow of another repository than the source
      (``reusable_workflow``: the certificate's Build Signer URI names another repository
      than its Source Repository URI), else ``SLSA_BUILD_LEVEL_2``: a job's own steps can
      reach its OIDC token, and the source's owners can change a workflow of their own
      repository, so signing there does not meet L3's "signing secrets out of reach" (SPEC:
      SLSA build-track-basics L3; GitHub documents attestations alone as Build L2; the same
      rule as provenance.slsa's levels).
    - Anything else: the policy's level (``policy_level``), else ``SLSA_BUILD_LEVEL_1``
      (SPEC: verifying-artifacts: the default level of a trusted builder is L1).
    """
    if builder_id is not None and builder_id.startswith(GENERATOR_WORKFLOWS):
        return "SLSA_BUILD_LEVEL_3"
    if github_hosted:
        return "SLSA_BUILD_LEVEL_3" if reusable_workflow else "SLSA_BUILD_LEVEL_2"
    if policy_level is not None:
        return parse_level(policy_level)
    return "SLSA_BUILD_LEVEL_1"



def policy_digest(policy_description: Any) -> str:
    """SHA-256 (hex) of the RFC 8785 canonical JSON of what was checked."""
    import rfc8785

    try:
        canonical = rfc8785.dumps(policy_description)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise UsageError(f"the policy description is not canonical JSON: {exc}") from exc
    return hashlib.sha256(canonical).hexdigest()


def build_vsa_statement(*, subjects: Sequence[tuple[str, Mapping[str, str]]],
                        resource_uri: str, policy_uri: str, policy_description: Any,
                        input_attestations: Sequence[Mapping[str, Any]],
                        verified_levels: Sequence[str], time_verified: datetime,
                        verifier_id: str = SEALTRAIL_VERIFIER_ID,
                        verifier_version: Mapping[str, str] | None = None,
                        slsa_version: str = "1.0",
                        policy_sha256: str | None = None) -> bytes:
    """The JSON payload of an in-toto v1 statement whose predicate is a PASSED VSA.

    ``subjects`` are (name, digest set) of the verified artifacts; ``policy_description`` is
    the JSON of the checks made (its RFC 8785 SHA-256 becomes ``policy.digest``);
    ``input_attestations`` are ResourceDescriptors of the provenance read;
    ``time_verified`` comes from the caller's clock. ``policy_sha256`` replaces the digest
    when the policy is a file whose own digest is its identity (``ProvenancePolicy.digest``). Raises :class:`UsageError` for values
    a VSA cannot hold (no subject, empty required fields, an invalid level).
    """
    if not subjects:
        raise UsageError("a VSA needs at least one verified subject")
    for name, digests in subjects:
        if not isinstance(name, str) or not digests or not all(
                isinstance(k, str) and isinstance(v, str) and v for k, v in digests.items()):
            raise UsageError("a VSA subject needs a name and a digest set", actual=name)
    for what, value in (("verifier id", verifier_id), ("resource URI", resource_uri),
                        ("policy URI", policy_uri)):
        if not isinstance(value, str) or not value:
            raise UsageError(f"the VSA's {what} is empty")
    if not isinstance(time_verified, datetime) or time_verified.tzinfo is None:
        raise UsageError("time_verified must be a timezone-aware datetime")
    for level in verified_levels:
        parse_level(level)
    if policy_sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", policy_sha256):
        raise UsageError("the policy digest must be 64 lowercase hex digits", actual=policy_sha256)
    stamp = time_verified.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    verifier: dict[str, Any] = {"id": verifier_id}
    if verifier_version:
        verifier["version"] = dict(verifier_version)
    predicate = {
        "verifier": verifier,
        "timeVerified": stamp,
        "resourceUri": resource_uri,
        "policy": {"uri": policy_uri,
                   "digest": {"sha256": policy_sha256 or policy_digest(policy_description)}},
        "inputAttestations": [dict(item) for item in input_attestations],
        "verificationResult": "PASSED",
        "verifiedLevels": list(verified_levels),
        "slsaVersion": slsa_version,
    }
    statement = {
        "_type": STATEMENT_V1,
        "subject": [{"name": name, "digest": dict(digests)} for name, digests in subjects],
        "predicateType": VSA_PREDICATE_TYPE,
        "predicate": predicate,
    }
    payload = json.dumps(statement, separators=(",", ":"), ensure_ascii=False).encode()
    try:
        _statement(payload)  # what we write, our own reader accepts
    except Error as exc:
        raise UsageError(f"the VSA would not be valid: {exc.message}") from exc
    return payload
