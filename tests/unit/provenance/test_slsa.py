"""sealtrail.provenance.slsa: slsa-verifier's checks, each shown failing with its error name.

The Sigstore step is the real verifier where a real bundle is at hand (the SLSA sample); the
predicate and certificate checks run on statements built here, behind a verifier whose
signature step returns a chosen certificate identity and payload (the checks after it are
the ones under test). The statement builders are reused by the round trip on a local
instance (tests/integration/test_verify_artifact_instance.py).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from sealtrail.errors import UsageError
from sealtrail.models.trusted_root import TrustedRoot
from sealtrail.provenance import errors as pe
from sealtrail.provenance.intoto_predicates import (
    BUILD_TYPE_CONTAINER_BASED,
    BUILD_TYPE_DELEGATOR,
    BUILD_TYPE_GENERIC,
    BUILD_TYPE_GITHUB_WORKFLOW,
    BUILD_TYPE_GITHUB_WORKFLOW_LEGACY,
    BUILD_TYPE_GO,
    SLSA_PROVENANCE_V02,
    SLSA_PROVENANCE_V1,
)
from sealtrail.provenance.slsa import (
    GITHUB_ACTIONS_ISSUER,
    SlsaExpectations,
    parse_semver,
    read_provenance_bundles,
    verify_artifact_provenance,
)
from sealtrail.trustroot.selection import select_trusted_root
from sealtrail.verify.verifier import VerificationResult, Verifier

SAMPLE = Path(__file__).resolve().parents[2] / "vectors" / "slsa" / "slsa-sample"
PUSH = SAMPLE / "gha_generic_v2.1.0_push-v14" / "binary-linux-amd64-push-v14.intoto.jsonl"
TAMPERED = SAMPLE / "derived_tampered_gha_generic_v2.1.0_push-v14" / "tampered-payload.intoto.jsonl"
SAMPLE_DIGEST = "376e7e01348585b6e6643bc6663146b9d525d9b41228bf180eaeb4d4a3706caa"

GENERATOR = "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
GENERIC = GENERATOR + "generator_generic_slsa3.yml"
DELEGATOR = GENERATOR + "delegator_generic_slsa3.yml"
CONTAINER_BASED = GENERATOR + "builder_container-based_slsa3.yml"
REPO = "acme/app"
SHA = "1234567890abcdef1234567890abcdef12345678"
TAG = "refs/tags/v1.2.3"
ARTIFACT = hashlib.sha256(b"the artifact").hexdigest()


# -- statements, in the producers' shapes -----------------------------------------------------


def statement(subjects: list[tuple[str, str]], predicate_type: str,
              predicate: dict[str, Any], kind: str = "https://in-toto.io/Statement/v1") -> bytes:
    return json.dumps({"_type": kind, "predicateType": predicate_type,
                       "subject": [{"name": n, "digest": {"sha256": d}} for n, d in subjects],
                       "predicate": predicate}).encode()


def event_payload(event: str, ref: str, *, base_ref: str = "refs/heads/main",
                  inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The GitHub event as the runner records it (the fields slsa-verifier reads)."""
    if event == "workflow_dispatch":
        return {"inputs": inputs, "ref": ref, "workflow": ".github/workflows/release.yml"}
    if event == "release":
        return {"release": {"tag_name": ref.removeprefix("refs/tags/"),
                            "target_commitish": base_ref.removeprefix("refs/heads/")}}
    return {"ref": ref, "base_ref": base_ref if ref.startswith("refs/tags/") else None,
            "after": SHA}


def generic_v02(subjects: list[tuple[str, str]], *, builder_id: str,
                repository: str = REPO, ref: str = TAG, sha: str = SHA, event: str = "push",
                payload: dict[str, Any] | None = None,
                build_type: str = BUILD_TYPE_GENERIC) -> bytes:
    """slsa-github-generator's generic generator: in-toto v0.1, SLSA v0.2."""
    source = f"git+https://github.com/{repository}@{ref}"
    environment = {
        "github_actor": "octocat", "github_base_ref": "", "github_event_name": event,
        "github_event_payload": payload if payload is not None else event_payload(event, ref),
        "github_head_ref": "", "github_ref": ref,
        "github_ref_type": "tag" if ref.startswith("refs/tags/") else "branch",
        "github_repository_owner": repository.split("/")[0], "github_run_attempt": "1",
        "github_run_id": "100", "github_run_number": "7", "github_sha1": sha,
    }
    return statement(subjects, SLSA_PROVENANCE_V02, {
        "builder": {"id": builder_id}, "buildType": build_type,
        "invocation": {"configSource": {"uri": source, "digest": {"sha1": sha},
                                        "entryPoint": ".github/workflows/release.yml"},
                       "environment": environment},
        "metadata": {"buildInvocationID": "100-1", "completeness": {"parameters": True}},
        "materials": [{"uri": source, "digest": {"sha1": sha}}],
    }, kind="https://in-toto.io/Statement/v0.1")


def github_v1(subjects: list[tuple[str, str]], *, builder_id: str, build_type: str,
              repository: str = REPO, ref: str = TAG, sha: str = SHA, event: str = "push",
              payload: dict[str, Any] | None = None,
              external: dict[str, Any] | None = None) -> bytes:
    """SLSA v1 from the delegator (BYOB) and container-based builders: the run in
    internalParameters as GITHUB_* variables."""
    internal = {
        "GITHUB_EVENT_NAME": event,
        "GITHUB_EVENT_PAYLOAD": payload if payload is not None else event_payload(event, ref),
        "GITHUB_REF": ref, "GITHUB_REF_TYPE": "tag" if ref.startswith("refs/tags/") else "branch",
        "GITHUB_REPOSITORY": repository, "GITHUB_SHA": sha, "GITHUB_BASE_REF": "",
        "GITHUB_WORKFLOW_REF": f"{repository}/.github/workflows/release.yml@{ref}",
        "GITHUB_RUN_ID": "100", "GITHUB_RUN_ATTEMPT": "1",
    }
    return statement(subjects, SLSA_PROVENANCE_V1, {
        "buildDefinition": {
            "buildType": build_type,
            "externalParameters": external if external is not None else {"inputs": {},
                                                                         "vars": {}},
            "internalParameters": internal,
            "resolvedDependencies": [{"uri": f"git+https://github.com/{repository}@{ref}",
                                      "digest": {"gitCommit": sha}}],
        },
        "runDetails": {"builder": {"id": builder_id},
                       "metadata": {"invocationId": f"https://github.com/{repository}/actions/"
                                                    "runs/100/attempts/1"}},
    })


def attestation_v1(subjects: list[tuple[str, str]], *, builder_id: str,
                   repository: str = REPO, ref: str = TAG, sha: str = SHA,
                   event: str = "push", build_type: str = BUILD_TYPE_GITHUB_WORKFLOW) -> bytes:
    """What actions/attest-build-provenance writes (provenance-formats.md §1)."""
    server = "https://github.com"
    return statement(subjects, SLSA_PROVENANCE_V1, {
        "buildDefinition": {
            "buildType": build_type,
            "externalParameters": {"workflow": {"ref": ref, "repository": f"{server}/{repository}",
                                                "path": ".github/workflows/release.yml"}},
            "internalParameters": {"github": {"event_name": event, "repository_id": "1",
                                              "repository_owner_id": "2",
                                              "runner_environment": "github-hosted"}},
            "resolvedDependencies": [{"uri": f"git+{server}/{repository}@{ref}",
                                      "digest": {"gitCommit": sha}}],
        },
        "runDetails": {"builder": {"id": builder_id},
                       "metadata": {"invocationId": f"{server}/{repository}/actions/runs/100/"
                                                    "attempts/1"}},
    })


# -- a verifier whose signature step is given --------------------------------------------------


def certificate(job_workflow_ref: str, *, repository: str = REPO, ref: str = TAG,
                sha: str = SHA, event: str = "push", runner: str = "github-hosted"
                ) -> tuple[str, dict[str, str]]:
    """The SAN and claim extensions Fulcio writes for a GitHub workflow token."""
    san = "https://github.com/" + job_workflow_ref
    return san, {
        "github_workflow_trigger": event, "github_workflow_sha": sha,
        "github_workflow_name": "release", "github_workflow_repository": repository,
        "github_workflow_ref": ref, "build_signer_uri": san, "runner_environment": runner,
        "source_repository_uri": "https://github.com/" + repository,
        "source_repository_digest": sha, "source_repository_ref": ref, "build_trigger": event,
        "build_config_uri": f"https://github.com/{repository}/.github/workflows/release.yml@{ref}",
    }


class GivenSignature(Verifier):
    """The Sigstore step returns this identity and payload (the bundle itself is real)."""

    def __init__(self, san: str, extensions: dict[str, str], payload: bytes, *,
                 issuer: str = GITHUB_ACTIONS_ISSUER,
                 payload_type: str = "application/vnd.in-toto+json") -> None:
        super().__init__(_public_good())
        self.result = VerificationResult(
            identity=san, issuer=issuer, extensions=extensions, key_id=None, log_index=1,
            log_url="https://rekor.example", verified_times=(datetime(2026, 1, 1, tzinfo=timezone.utc),),
            payload_type=payload_type, payload=payload)

    def verify_dsse(self, bundle: Any, policy: Any, *, payload_type: str | None = None
                    ) -> VerificationResult:
        return self.result


_ROOT: list[TrustedRoot] = []


def _public_good() -> TrustedRoot:
    if not _ROOT:
        _ROOT.append(TrustedRoot.from_json(select_trusted_root(instance="public-good").data))
    return _ROOT[0]


def check(payload: bytes, job_workflow_ref: str, *, digests: list[Any] | None = None,
          cert: dict[str, Any] | None = None, issuer: str = GITHUB_ACTIONS_ISSUER,
          payload_type: str = "application/vnd.in-toto+json", **expected: Any) -> Any:
    san, extensions = certificate(job_workflow_ref, **(cert or {}))
    verifier = GivenSignature(san, extensions, payload, issuer=issuer, payload_type=payload_type)
    expected.setdefault("source_uri", "github.com/" + REPO)
    return verify_artifact_provenance(digests or [ARTIFACT], PUSH.read_bytes(),
                                      SlsaExpectations(**expected), trusted_root=b"",
                                      verifier=verifier)


def fails(error: type[pe.ProvenanceError | pe.ProvenanceInputError], *args: Any,
          **kwargs: Any) -> str:
    with pytest.raises(error) as caught:
        check(*args, **kwargs)
    assert caught.value.code == error.__name__
    return caught.value.diagnostics()


SUBJECTS = [("app.tar.gz", ARTIFACT)]
GENERIC_REF = "slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml@refs/tags/v2.1.0"
GENERIC_ID = "https://github.com/" + GENERIC_REF


# -- the real sample through the real verifier ---------------------------------------------------


def test_real_provenance_verifies_with_the_public_good_root() -> None:
    result = verify_artifact_provenance(
        [SAMPLE_DIGEST], PUSH.read_bytes(),
        SlsaExpectations("github.com/slsa-framework/example-package", source_tag="v14"),
        trusted_root=select_trusted_root(instance="public-good").data)
    assert result.builder_id == GENERIC_ID
    assert (result.commit, result.trigger, result.ref) == \
        ("4d329c75e7ec1725f7c9ce917a8799d408d06be3", "push", "refs/tags/v14")
    assert result.source_uri == "git+https://github.com/slsa-framework/example-package"
    assert result.build_level == 3 and result.predicate_type == SLSA_PROVENANCE_V02
    assert result.statement.subjects[0].digest["sha256"] == SAMPLE_DIGEST
    assert result.subjects[0].name == "gha_generic-binary-linux-amd64-v14"


def test_json_lines_the_first_bundle_that_passes_wins() -> None:
    data = TAMPERED.read_bytes().strip() + b"\n" + PUSH.read_bytes().strip() + b"\n"
    root = select_trusted_root(instance="public-good").data
    expected = SlsaExpectations("github.com/slsa-framework/example-package")
    result = verify_artifact_provenance([SAMPLE_DIGEST], data, expected, trusted_root=root)
    assert result.bundle_line == 2
    # Neither line passes: the last error, saying how many were tried.
    with pytest.raises(pe.ErrorInvalidSignature, match="none of the 2 bundles"):
        verify_artifact_provenance([SAMPLE_DIGEST], TAMPERED.read_bytes().strip() * 1
                                   + b"\n" + TAMPERED.read_bytes(), expected, trusted_root=root)


def test_unreadable_provenance() -> None:
    with pytest.raises(pe.ErrorInvalidFormat):
        read_provenance_bundles(PUSH.read_bytes()[:3000])
    with pytest.raises(pe.ErrorInvalidFormat):
        read_provenance_bundles(b"\n\n")
    with pytest.raises(pe.ErrorInvalidFormat, match="not a Sigstore bundle"):
        read_provenance_bundles(b'{"mediaType": "nope"}')
    assert len(read_provenance_bundles(PUSH.read_bytes())) == 1


def test_a_bundle_without_log_entry_or_timestamp_would_need_a_log_search() -> None:
    data = json.loads(PUSH.read_bytes())
    data["verificationMaterial"]["tlogEntries"] = []
    with pytest.raises(pe.ErrorRekorSearch, match="Pass the Sigstore bundle"):
        verify_artifact_provenance([SAMPLE_DIGEST], json.dumps(data).encode(),
                                   SlsaExpectations("github.com/slsa-framework/example-package"),
                                   trusted_root=select_trusted_root(instance="public-good").data)


def test_a_message_signature_bundle_is_not_provenance() -> None:
    bundle = Path(__file__).resolve().parents[2] / "vectors"
    candidates = [p for p in bundle.rglob("*.sigstore.json")
                  if b"messageSignature" in p.read_bytes()]
    assert candidates
    with pytest.raises(pe.ErrorInvalidDssePayload, match="not a DSSE envelope"):
        verify_artifact_provenance([SAMPLE_DIGEST], candidates[0].read_bytes(),
                                   SlsaExpectations("github.com/o/r"),
                                   trusted_root=select_trusted_root(instance="public-good").data)


# -- generic generator (SLSA v0.2) -------------------------------------------------------------


def test_generic_generator_passes_with_every_flag() -> None:
    payload = generic_v02(SUBJECTS, builder_id=GENERIC_ID)
    result = check(payload, GENERIC_REF, source_tag="v1.2.3", source_versioned_tag=None,
                   source_branch="main", builder_id=GENERIC + "@v2.1.0")
    assert result.builder_id == GENERIC_ID and result.build_level == 3
    assert result.commit == SHA and result.ref == TAG
    for versioned in ("v1", "v1.2", "v1.2.3", "v1.2.3+build.5"):
        check(payload, GENERIC_REF, source_versioned_tag=versioned)


@pytest.mark.parametrize(("expected", "error"), [
    ({"builder_id": GENERIC + "@v2.0.0"}, pe.ErrorUntrustedReusableWorkflow),
    ({"builder_id": GENERATOR + "builder_go_slsa3.yml"}, pe.ErrorUntrustedReusableWorkflow),
    ({"source_uri": "github.com/acme/other"}, pe.ErrorMismatchSource),
    ({"source_uri": "https://github.com/acme/app"}, pe.ErrorMismatchSource),
    ({"source_tag": "v1.2"}, pe.ErrorMismatchTag),
    ({"source_versioned_tag": "v1.3"}, pe.ErrorMismatchVersionedTag),
    ({"source_versioned_tag": "v1.2.4"}, pe.ErrorMismatchVersionedTag),
    ({"source_versioned_tag": "v2"}, pe.ErrorMismatchVersionedTag),
    ({"source_versioned_tag": "1.2.3"}, pe.ErrorInvalidSemver),
    ({"source_branch": "dev"}, pe.ErrorMismatchBranch),
    ({"workflow_inputs": {"a": "b"}}, pe.ErrorMismatchWorkflowInputs),
    ({"oidc_issuer": "https://issuer.example"}, pe.ErrorInvalidOIDCIssuer),
])
def test_generic_generator_each_mismatch(expected: dict[str, Any],
                                         error: type[pe.ProvenanceError]) -> None:
    fails(error, generic_v02(SUBJECTS, builder_id=GENERIC_ID), GENERIC_REF, **expected)


def test_the_predicate_must_agree_with_the_certificate() -> None:
    other_builder = GENERIC_ID.replace("v2.1.0", "v2.0.0")
    fails(pe.ErrorMismatchBuilderID, generic_v02(SUBJECTS, builder_id=other_builder), GENERIC_REF)
    # The commit and repository the predicate claims are the certificate's.
    fails(pe.ErrorMismatchSource, generic_v02(SUBJECTS, builder_id=GENERIC_ID, sha="f" * 40),
          GENERIC_REF)
    fails(pe.ErrorMismatchSource, generic_v02(SUBJECTS, builder_id=GENERIC_ID,
                                              repository="acme/other"), GENERIC_REF)
    # The buildType is the one the builder makes.
    fails(pe.ErrorInvalidBuildType, generic_v02(SUBJECTS, builder_id=GENERIC_ID,
                                                build_type=BUILD_TYPE_GO), GENERIC_REF)


def test_trigger_and_source_must_be_identical() -> None:
    data = json.loads(generic_v02(SUBJECTS, builder_id=GENERIC_ID))
    data["predicate"]["materials"][0]["uri"] = f"git+https://github.com/{REPO}@refs/tags/v9"
    assert "differ" in fails(pe.ErrorInvalidDssePayload, json.dumps(data).encode(), GENERIC_REF)
    data["predicate"]["materials"][0]["uri"] = f"git+https://github.com/{REPO}"
    fails(pe.ErrorMalformedURI, json.dumps(data).encode(), GENERIC_REF)
    # The trigger naming another repository is a source mismatch, before the comparison.
    data = json.loads(generic_v02(SUBJECTS, builder_id=GENERIC_ID))
    data["predicate"]["invocation"]["configSource"]["uri"] = "git+https://github.com/x/y@" + TAG
    assert "trigger" in fails(pe.ErrorMismatchSource, json.dumps(data).encode(), GENERIC_REF)


def test_statement_shape_errors() -> None:
    payload = generic_v02(SUBJECTS, builder_id=GENERIC_ID)
    assert "no subjects" in fails(pe.ErrorInvalidDssePayload,
                                  generic_v02([], builder_id=GENERIC_ID), GENERIC_REF)
    fails(pe.ErrorInvalidDssePayload, payload, GENERIC_REF, payload_type="application/json")
    fails(pe.ErrorInvalidDssePayload, b"{not json", GENERIC_REF)
    other = json.loads(payload)
    other["predicateType"] = "https://example.com/other"
    fails(pe.ErrorInvalidDssePayload, json.dumps(other).encode(), GENERIC_REF)
    del other["predicate"]["builder"]
    other["predicateType"] = SLSA_PROVENANCE_V02
    fails(pe.ErrorInvalidDssePayload, json.dumps(other).encode(), GENERIC_REF)


def test_the_artifact_digest() -> None:
    payload = generic_v02([("a", ARTIFACT), ("b", "ab" * 32)], builder_id=GENERIC_ID)
    result = check(payload, GENERIC_REF, digests=[ARTIFACT, "sha256:" + "ab" * 32,
                                                  {"sha256": bytes.fromhex("ab" * 32)}])
    assert [s.name for s in result.subjects] == ["a", "b", "b"]
    fails(pe.ErrorMismatchHash, payload, GENERIC_REF, digests=["cd" * 32])
    fails(pe.ErrorInvalidHash, payload, GENERIC_REF, digests=["ab" * 16])  # 128 bits
    fails(pe.ErrorInvalidHash, payload, GENERIC_REF, digests=["zz" * 32])


def test_certificate_checks() -> None:
    payload = generic_v02(SUBJECTS, builder_id=GENERIC_ID)
    # The deprecated extensions must agree with their successors.
    san, extensions = certificate(GENERIC_REF)
    extensions["github_workflow_sha"] = "e" * 40
    verifier = GivenSignature(san, extensions, payload)
    with pytest.raises(pe.ErrorInvalidCertificate):
        verify_artifact_provenance([ARTIFACT], PUSH.read_bytes(), SlsaExpectations(
            "github.com/" + REPO), trusted_root=b"", verifier=verifier)
    verifier = GivenSignature("https://gitlab.com/acme/app//.gitlab-ci.yml@refs/heads/main",
                              certificate(GENERIC_REF)[1], payload)
    with pytest.raises(pe.ErrorMalformedURI):
        verify_artifact_provenance([ARTIFACT], PUSH.read_bytes(), SlsaExpectations(
            "github.com/" + REPO), trusted_root=b"", verifier=verifier)


@pytest.mark.parametrize("ref", ["refs/heads/main", "refs/tags/v2.1", "refs/tags/v2.1.0-rc.1",
                                 "refs/tags/2.1.0"])
def test_the_builder_must_be_at_a_full_semver_tag(ref: str) -> None:
    job = GENERIC_REF.replace("refs/tags/v2.1.0", ref)
    payload = generic_v02(SUBJECTS, builder_id="https://github.com/" + job)
    fails(pe.ErrorInvalidRef, payload, job)


def test_a_builder_trusted_by_builder_id_only() -> None:
    job = "acme/builders/.github/workflows/build.yml@refs/tags/v3.0.0"
    payload = generic_v02(SUBJECTS, builder_id="https://github.com/" + job)
    fails(pe.ErrorUntrustedReusableWorkflow, payload, job)
    result = check(payload, job, builder_id="https://github.com/acme/builders/.github/"
                                            "workflows/build.yml")
    # Trusted by the caller's word, not a vetted isolated builder: SLSA Build L2.
    assert result.build_level == 2
    fails(pe.ErrorInvalidBuildType, generic_v02(SUBJECTS, builder_id="https://github.com/" + job,
                                                build_type="https://example.com/custom"),
          job, builder_id="https://github.com/acme/builders/.github/workflows/build.yml")


# -- branches, tags, inputs -------------------------------------------------------------------


def test_branch_of_a_tag_build() -> None:
    release = generic_v02(SUBJECTS, builder_id=GENERIC_ID, event="release",
                          payload=event_payload("release", TAG, base_ref="refs/heads/stable"))
    check(release, GENERIC_REF, cert={"event": "release"}, source_branch="stable")
    fails(pe.ErrorMismatchBranch, release, GENERIC_REF, cert={"event": "release"},
          source_branch="main")
    no_base = generic_v02(SUBJECTS, builder_id=GENERIC_ID, payload={"ref": TAG})
    fails(pe.ErrorInvalidRef, no_base, GENERIC_REF, source_branch="main")


def test_workflow_inputs() -> None:
    ref = "refs/heads/main"
    inputs = {"version": "1.2.3", "dry": True, "count": 3}
    payload = generic_v02(SUBJECTS, builder_id=GENERIC_ID, ref=ref, event="workflow_dispatch",
                          payload=event_payload("workflow_dispatch", ref, inputs=inputs))
    cert = {"ref": ref, "event": "workflow_dispatch"}
    check(payload, GENERIC_REF, cert=cert, workflow_inputs={"version": "1.2.3", "dry": "true",
                                                            "count": "3"})
    fails(pe.ErrorMismatchWorkflowInputs, payload, GENERIC_REF, cert=cert,
          workflow_inputs={"version": "1.2.4"})
    fails(pe.ErrorMismatchWorkflowInputs, payload, GENERIC_REF, cert=cert,
          workflow_inputs={"missing": "x"})
    fails(pe.ErrorInvalidRef, payload, GENERIC_REF, cert=cert, source_tag="v1.2.3")
    check(payload, GENERIC_REF, cert=cert, source_branch="refs/heads/main")


@pytest.mark.parametrize(("text", "parsed"), [
    ("v1", (1, None, None, "", "")), ("v1.2", (1, 2, None, "", "")),
    ("v1.2.3", (1, 2, 3, "", "")), ("v1.2.3-rc.1+b.7", (1, 2, 3, "rc.1", "b.7")),
    ("v0.0.0", (0, 0, 0, "", "")),
    ("1.2.3", None), ("v01.2.3", None), ("v1.2.3.4", None), ("v1.2-rc", None),
    ("v1.2.3-01", None), ("v", None), ("v1.2.3+", None), ("V1", None),
])
def test_semver_as_go_reads_it(text: str, parsed: Any) -> None:
    assert parse_semver(text) == parsed


def test_versioned_tag_with_a_pre_release() -> None:
    payload = generic_v02(SUBJECTS, builder_id=GENERIC_ID, ref="refs/tags/v2.0.0-rc.1")
    cert = {"ref": "refs/tags/v2.0.0-rc.1"}
    check(payload, GENERIC_REF, cert=cert, source_versioned_tag="v2.0")
    check(payload, GENERIC_REF, cert=cert, source_versioned_tag="v2.0.0-rc.1")
    fails(pe.ErrorMismatchVersionedTag, payload, GENERIC_REF, cert=cert,
          source_versioned_tag="v2.0.0")


# -- delegators (BYOB), container-based, GitHub attestations ----------------------------------

TRW = "https://github.com/acme/tools/.github/workflows/builder.yml"
DELEGATOR_REF = DELEGATOR.removeprefix("https://github.com/") + "@refs/tags/v2.1.0"


def test_delegator_builds_name_the_tool_workflow() -> None:
    payload = github_v1(SUBJECTS, builder_id=TRW + "@refs/tags/v1.0.0",
                        build_type=BUILD_TYPE_DELEGATOR)
    result = check(payload, DELEGATOR_REF, builder_id=TRW + "@v1.0.0", source_tag="v1.2.3")
    assert result.builder_id == TRW + "@refs/tags/v1.0.0" and result.build_level == 3
    assert "empty ID" in fails(pe.ErrorInvalidBuilderID, payload, DELEGATOR_REF)
    fails(pe.ErrorMismatchBuilderID, payload, DELEGATOR_REF,
          builder_id="https://github.com/acme/tools/.github/workflows/other.yml")
    fails(pe.ErrorMismatchBuilderID, payload, DELEGATOR_REF, builder_id=TRW + "@v0.9.0")
    fails(pe.ErrorInvalidBuildType, github_v1(SUBJECTS, builder_id=TRW + "@refs/tags/v1.0.0",
                                              build_type=BUILD_TYPE_CONTAINER_BASED),
          DELEGATOR_REF, builder_id=TRW)


def test_delegator_workflow_inputs_come_from_the_event_payload() -> None:
    ref = "refs/heads/main"
    payload = github_v1(SUBJECTS, builder_id=TRW + "@refs/tags/v1.0.0",
                        build_type=BUILD_TYPE_DELEGATOR, ref=ref, event="workflow_dispatch",
                        payload=event_payload("workflow_dispatch", ref, inputs={"level": "3"}))
    cert = {"ref": ref, "event": "workflow_dispatch"}
    check(payload, DELEGATOR_REF, cert=cert, builder_id=TRW, workflow_inputs={"level": "3"},
          source_branch="main")
    fails(pe.ErrorMismatchWorkflowInputs, payload, DELEGATOR_REF, cert=cert, builder_id=TRW,
          workflow_inputs={"level": "2"})


def test_container_based_builder() -> None:
    job = CONTAINER_BASED.removeprefix("https://github.com/") + "@refs/tags/v2.1.0"
    payload = github_v1(SUBJECTS, builder_id=CONTAINER_BASED + "@refs/tags/v2.1.0",
                        build_type=BUILD_TYPE_CONTAINER_BASED,
                        external={"source": {"uri": f"git+https://github.com/{REPO}@{TAG}"}})
    result = check(payload, job, source_versioned_tag="v1", source_branch="main")
    assert result.build_level == 3 and result.predicate_type == SLSA_PROVENANCE_V1
    fails(pe.ErrorInvalidBuildType, github_v1(SUBJECTS, builder_id=CONTAINER_BASED + "@refs/tags/v2.1.0",
                                              build_type=BUILD_TYPE_DELEGATOR), job)


OWN_WORKFLOW = f"{REPO}/.github/workflows/release.yml@{TAG}"


def test_github_attestation_of_the_repository_own_workflow() -> None:
    payload = attestation_v1(SUBJECTS, builder_id="https://github.com/" + OWN_WORKFLOW)
    result = check(payload, OWN_WORKFLOW, source_tag="v1.2.3")
    assert result.build_level == 2 and result.build_type == BUILD_TYPE_GITHUB_WORKFLOW
    assert result.builder_id == "https://github.com/" + OWN_WORKFLOW
    check(payload, OWN_WORKFLOW, builder_id=f"https://github.com/{REPO}/.github/workflows/"
                                            "release.yml")
    fails(pe.ErrorUntrustedReusableWorkflow, payload, OWN_WORKFLOW,
          builder_id=f"https://github.com/{REPO}/.github/workflows/other.yml")
    fails(pe.ErrorMismatchBuilderID,
          attestation_v1(SUBJECTS, builder_id=f"https://github.com/{REPO}/.github/workflows/"
                                              f"other.yml@{TAG}"), OWN_WORKFLOW)
    fails(pe.ErrorMismatchSource, payload, OWN_WORKFLOW, source_uri="github.com/acme/other")
    # No event payload: a branch of a tag build is unknown.
    fails(pe.ErrorInvalidRef, payload, OWN_WORKFLOW, source_branch="main")
    fails(pe.ErrorMismatchWorkflowInputs, payload, OWN_WORKFLOW, workflow_inputs={"a": "b"})


def test_github_attestation_levels_and_legacy_build_type() -> None:
    reusable = "acme/shared/.github/workflows/build.yml@refs/tags/v1.0.0"
    payload = attestation_v1(SUBJECTS, builder_id="https://github.com/" + reusable)
    assert check(payload, reusable).build_level == 3  # another repository's, GitHub-hosted
    assert check(payload, reusable, cert={"runner": "self-hosted"}).build_level == 2
    legacy = attestation_v1(SUBJECTS, builder_id="https://github.com/actions/runner/github-hosted",
                            build_type=BUILD_TYPE_GITHUB_WORKFLOW_LEGACY)
    assert check(legacy, OWN_WORKFLOW).build_type == BUILD_TYPE_GITHUB_WORKFLOW_LEGACY


# -- arguments ---------------------------------------------------------------------------------


def test_expectations_no_provenance_could_meet_are_usage_errors() -> None:
    payload = generic_v02(SUBJECTS, builder_id=GENERIC_ID)
    with pytest.raises(UsageError):
        check(payload, GENERIC_REF, source_tag="v1", source_versioned_tag="v1")
    with pytest.raises(UsageError):
        check(payload, GENERIC_REF, source_uri="")
    with pytest.raises(UsageError):
        verify_artifact_provenance("abc", b"", SlsaExpectations("x"), trusted_root=b"")
    with pytest.raises(UsageError):
        verify_artifact_provenance([ARTIFACT], "text", SlsaExpectations("x"), trusted_root=b"")



def test_the_package_exports_the_one_call_api() -> None:
    import sealtrail.provenance as package
    from sealtrail.provenance import slsa

    assert package.verify_artifact_provenance is slsa.verify_artifact_provenance
    assert package.SlsaExpectations is slsa.SlsaExpectations
    assert package.VerifiedProvenance is slsa.VerifiedProvenance
    with pytest.raises(AttributeError, match="no_such_name"):
        package.no_such_name  # noqa: B018


# -- expectations from a policy file ----------------------------------------------------------


def policy_of(text: str) -> Any:
    from sealtrail.provenance.policy import ProvenancePolicy

    return ProvenancePolicy.from_toml(text.encode())


def test_policy_defaults_are_slsa_verifier_s() -> None:
    expected = SlsaExpectations.from_policy(policy_of('version = 1\n[source]\nuri = "github.com/acme/app"\n'
                                                      'tag = "v1.2.3"\n'))
    assert expected.trusted_builders is None and expected.source_tag == "v1.2.3"
    assert expected.oidc_issuer == GITHUB_ACTIONS_ISSUER
    payload = generic_v02(SUBJECTS, builder_id=GENERIC_ID)
    san, extensions = certificate(GENERIC_REF)
    assert verify_artifact_provenance([ARTIFACT], PUSH.read_bytes(), expected, trusted_root=b"",
                                      verifier=GivenSignature(san, extensions, payload)
                                      ).build_level == 3


def _with_policy(text: str, payload: bytes, job: str, **flags: Any) -> Any:
    san, extensions = certificate(job)
    return verify_artifact_provenance(
        [ARTIFACT], PUSH.read_bytes(), SlsaExpectations.from_policy(policy_of(text), **flags),
        trusted_root=b"", verifier=GivenSignature(san, extensions, payload))


CUSTOM_JOB = "acme/builders/.github/workflows/build.yml@refs/heads/main"
CUSTOM = "https://github.com/acme/builders/.github/workflows/build.yml"
CUSTOM_POLICY = f'''version = 1
[source]
uri = "github.com/acme/app"
[[builder]]
id = "{CUSTOM}"
refs = ["refs/heads/main"]
level = 3
'''


def test_policy_builders_their_refs_and_levels() -> None:
    payload = generic_v02(SUBJECTS, builder_id="https://github.com/" + CUSTOM_JOB)
    # Trusted by the policy at its ref (not a semver tag), earning the policy's level.
    assert _with_policy(CUSTOM_POLICY, payload, CUSTOM_JOB).build_level == 3
    lower = CUSTOM_POLICY.replace("level = 3", "level = 2")
    assert _with_policy(lower, payload, CUSTOM_JOB).build_level == 2
    with pytest.raises(pe.ErrorUntrustedReusableWorkflow, match="requires at least L3"):
        _with_policy("minimum-level = 3\n" + lower.replace("level = 2", "level = 2\n[[builder]]\n"
                                                           f'id = "{GENERIC}"\n'),
                     payload, CUSTOM_JOB)
    other = CUSTOM_JOB.replace("refs/heads/main", "refs/heads/dev")
    with pytest.raises(pe.ErrorInvalidRef, match="policy accepts"):
        _with_policy(CUSTOM_POLICY, generic_v02(SUBJECTS, builder_id="https://github.com/" + other),
                     other)
    # The slsa-github-generator builders are not trusted by a policy that lists others.
    with pytest.raises(pe.ErrorUntrustedReusableWorkflow, match="policy's"):
        _with_policy(CUSTOM_POLICY, generic_v02(SUBJECTS, builder_id=GENERIC_ID), GENERIC_REF)


def test_policy_predicate_types_issuer_and_flags() -> None:
    payload = generic_v02(SUBJECTS, builder_id=GENERIC_ID)
    v1_only = ('version = 1\npredicate-types = ["https://slsa.dev/provenance/v1"]\n'
               '[source]\nuri = "github.com/acme/app"\n')
    with pytest.raises(pe.ErrorInvalidDssePayload, match="predicate type"):
        _with_policy(v1_only, payload, GENERIC_REF)
    issuer = 'version = 1\n[identity]\nissuer = "https://issuer.example"\n'
    with pytest.raises(pe.ErrorInvalidOIDCIssuer):
        _with_policy(issuer, payload, GENERIC_REF, source_uri="github.com/acme/app")
    # Flags add what the policy leaves open; the same field both ways is refused.
    with pytest.raises(pe.ErrorMismatchTag):
        _with_policy(CUSTOM_POLICY.replace(f'id = "{CUSTOM}"', f'id = "{GENERIC}"')
                     .replace('refs = ["refs/heads/main"]', 'refs = ["semver-tags"]'),
                     payload, GENERIC_REF, source_tag="v9")
    with pytest.raises(UsageError, match="both"):
        SlsaExpectations.from_policy(policy_of(CUSTOM_POLICY), source_uri="github.com/x/y")
    with pytest.raises(UsageError, match="required"):
        SlsaExpectations.from_policy(policy_of("version = 1\n"))
    with pytest.raises(UsageError, match="verify-attestation"):
        SlsaExpectations.from_policy(policy_of('version = 1\n[identity]\nrepo = "acme/app"\n'),
                                     source_uri="github.com/acme/app")


def test_policy_names_the_tool_workflow_of_delegator_builds() -> None:
    payload = github_v1(SUBJECTS, builder_id=TRW + "@refs/tags/v1.0.0",
                        build_type=BUILD_TYPE_DELEGATOR)
    policy = (f'version = 1\n[source]\nuri = "github.com/acme/app"\n'
              f'[[builder]]\nid = "{DELEGATOR}"\n[[builder]]\nid = "{TRW}"\nlevel = 2\n')
    result = _with_policy(policy, payload, DELEGATOR_REF)
    assert result.builder_id == TRW + "@refs/tags/v1.0.0" and result.build_level == 2
    with pytest.raises(pe.ErrorMismatchBuilderID, match="policy"):
        _with_policy(policy.replace(TRW, TRW.replace("builder.yml", "other.yml")), payload,
                     DELEGATOR_REF)


def test_policy_with_builders_must_list_an_attestation_s_signing_workflow() -> None:
    payload = attestation_v1(SUBJECTS, builder_id="https://github.com/" + OWN_WORKFLOW)
    with pytest.raises(pe.ErrorUntrustedReusableWorkflow):
        _with_policy(CUSTOM_POLICY, payload, OWN_WORKFLOW)
    listed = CUSTOM_POLICY.replace(CUSTOM, f"https://github.com/{REPO}/.github/workflows/"
                                          "release.yml").replace('"refs/heads/main"', '"refs/tags/*"')
    assert _with_policy(listed, payload, OWN_WORKFLOW).build_level == 3  # the policy's word


def test_a_delegator_the_policy_does_not_list_is_not_trusted_through_builder_id() -> None:
    payload = github_v1(SUBJECTS, builder_id=TRW + "@refs/tags/v1.0.0",
                        build_type=BUILD_TYPE_DELEGATOR)
    policy = f'version = 1\n[source]\nuri = "github.com/acme/app"\n[[builder]]\nid = "{TRW}"\n'
    with pytest.raises(pe.ErrorUntrustedReusableWorkflow):
        _with_policy(policy, payload, DELEGATOR_REF, builder_id=TRW)
