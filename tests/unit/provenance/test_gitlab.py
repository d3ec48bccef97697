"""A GitLab CI job's provenance at SLSA Build L2 (src/sealtrail/provenance/gitlab.py): each check
of check_gitlab_provenance on statements and certificate extensions built here, each mutated
to fail with slsa-verifier's error name (the Sigstore step is the verifier's own, exercised by
tests/integration/test_verify_gitlab_provenance.py), the policy's GitLab builder and the
dispatch."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from sealtrail.errors import ConfigInvalidError, UsageError
from sealtrail.models.intoto import Statement
from sealtrail.provenance import errors as pe
from sealtrail.provenance.gitlab import GITLAB_BUILD_TYPE, check_gitlab_provenance
from sealtrail.provenance.intoto_predicates import parse_provenance
from sealtrail.provenance.local import LOCAL_BUILD_TYPE, build_type_of
from sealtrail.provenance.policy import ProvenancePolicy
from sealtrail.provenance.slsa import SlsaExpectations

SERVER = "https://gitlab.com"
PROJECT = "acme/tools/app"
SOURCE = f"{SERVER}/{PROJECT}"
REF = "refs/tags/v2.1.0"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
CONFIG = f"{SERVER}/{PROJECT}//.gitlab-ci.yml@{REF}"
DIGEST = "ab" * 32
BUILDER = f"{SOURCE}/-/runners/12"


def predicate(**changes: Any) -> dict[str, Any]:
    """generate.py's gitlab_predicate's shape (docs/provenance.md), with fields changed."""
    external = {"source": changes.get("source", SOURCE),
                "ci_config": changes.get("ci_config", CONFIG), "ref": changes.get("ref", REF)}
    return {
        "buildDefinition": {
            "buildType": changes.get("build_type", GITLAB_BUILD_TYPE),
            "externalParameters": external,
            "internalParameters": {"gitlab": {"runner_environment": "gitlab-hosted"}},
            "resolvedDependencies": [{
                "uri": changes.get("dependency", f"git+{SOURCE}@{REF}"),
                "digest": {"gitCommit": changes.get("commit", COMMIT)}}],
        },
        "runDetails": {"builder": {"id": changes.get("builder", BUILDER)},
                       "metadata": {"invocationId": f"{SOURCE}/-/jobs/9"}},
    }


def statement(digest: str = DIGEST, **changes: Any) -> Any:
    document = {"_type": "https://in-toto.io/Statement/v1",
                "subject": [{"name": "app.tar.gz", "digest": {"sha256": digest}}],
                "predicateType": "https://slsa.dev/provenance/v1",
                "predicate": predicate(**changes)}
    return parse_provenance(Statement.from_payload(json.dumps(document).encode()))


def extensions(**changes: str) -> dict[str, str]:
    """Fulcio's GitLab extensions (FulcioIdentity's names) for the job."""
    values = {"build_config_uri": CONFIG, "build_signer_uri": CONFIG,
              "runner_environment": "gitlab-hosted", "source_repository_uri": SOURCE,
              "source_repository_digest": COMMIT, "source_repository_ref": REF,
              "build_trigger": "push", "run_invocation_uri": f"{SOURCE}/-/jobs/9"}
    values.update(changes)
    return values


def expect(policy: str | None = None, **flags: Any) -> SlsaExpectations:
    if policy is not None:
        parsed = ProvenancePolicy.from_toml(policy.encode(), "p.toml")
        return SlsaExpectations.from_policy(parsed, **flags).checked()
    flags.setdefault("source_uri", "gitlab.com/acme/tools/app")
    return SlsaExpectations(**flags).checked()


def check(prov: Any = None, expected: SlsaExpectations | None = None, *,
          identity: str = CONFIG, issuer: str = SERVER, ext: dict[str, str] | None = None) -> Any:
    return check_gitlab_provenance(prov or statement(), identity, issuer,
                                   ext if ext is not None else extensions(),
                                   [{"sha256": DIGEST}], expected or expect())


def test_a_gitlab_job_passes_at_level_2() -> None:
    facts = check(expected=expect(source_tag="v2.1.0"))
    assert (facts.builder_id, facts.repository, facts.commit, facts.ref, facts.level) == (
        BUILDER, SOURCE, COMMIT, REF, 2)
    assert facts.subjects[0].name == "app.tar.gz" and facts.trigger == "push"


@pytest.mark.parametrize("issuer, given", [
    ("https://token.actions.githubusercontent.com", None),  # default: gitlab.com's
    ("https://gitlab.example.com", None),
    (SERVER, "https://gitlab.example.com"),
])
def test_the_issuer_must_be_the_expected_gitlab(issuer: str, given: str | None) -> None:
    flags = {"oidc_issuer": given} if given else {}
    with pytest.raises(pe.ErrorInvalidOIDCIssuer):
        check(issuer=issuer, expected=expect(**flags))


def test_a_self_managed_issuer_passes_when_expected() -> None:
    server = "https://gitlab.example.com"
    config = CONFIG.replace(SERVER, server)
    ext = {k: v.replace(SERVER, server) for k, v in extensions().items()}
    prov = statement(source=f"{server}/{PROJECT}", ci_config=config,
                     dependency=f"git+{server}/{PROJECT}@{REF}",
                     builder=BUILDER.replace(SERVER, server))
    facts = check(prov, expect(source_uri=f"gitlab.example.com/{PROJECT}", oidc_issuer=server),
                  identity=config, issuer=server, ext=ext)
    assert facts.builder_id.startswith(server)


@pytest.mark.parametrize("identity, ext", [
    (f"{SOURCE}/.gitlab-ci.yml@{REF}", extensions(build_config_uri=f"{SOURCE}/.gitlab-ci.yml@{REF}")),  # no //
    ("https://github.com/acme/app/.github/workflows/r.yml@" + REF, extensions()),  # SAN != .18
    (CONFIG, extensions(build_config_uri="")),
])
def test_the_certificate_must_be_a_pipelines(identity: str, ext: dict[str, str]) -> None:
    with pytest.raises(pe.ErrorMismatchCertificate):
        check(identity=identity, ext=ext)


def test_the_build_type_must_be_sealtrails_gitlab_one() -> None:
    with pytest.raises(pe.ErrorInvalidBuildType):
        check(statement(build_type=LOCAL_BUILD_TYPE))


@pytest.mark.parametrize("builder", [
    "https://gitlab.com/other/app/-/runners/12",  # another project
    "https://evil.example.com/acme/tools/app/-/runners/12",  # another server
    f"{SOURCE}/-/jobs/12",
    f"{SOURCE}/-/runners/",
])
def test_the_builder_must_be_a_runner_of_the_certificates_project(builder: str) -> None:
    with pytest.raises(pe.ErrorMismatchBuilderID):
        check(statement(builder=builder))


def test_builder_id_flag_must_match() -> None:
    check(expected=expect(builder_id=BUILDER))
    with pytest.raises(pe.ErrorMismatchBuilderID):
        check(expected=expect(builder_id=f"{SOURCE}/-/runners/13"))


def test_a_self_hosted_runner_is_refused_unless_the_policy_allows_it() -> None:
    ext = extensions(runner_environment="self-hosted")
    with pytest.raises(pe.ErrorUntrustedReusableWorkflow, match="self-hosted"):
        check(ext=ext)
    base = f'version = 1\n[source]\nuri = "gitlab.com/{PROJECT}"\n[[builder]]\n' \
           f'id = "{SOURCE}/-/runners/*"\n'
    with pytest.raises(pe.ErrorUntrustedReusableWorkflow):
        check(ext=ext, expected=expect(base))
    assert check(ext=ext, expected=expect(base + "allow-self-hosted = true\n")).level == 2


def test_the_artifact_must_be_a_subject() -> None:
    with pytest.raises(pe.ErrorMismatchHash):
        check(statement(digest="cd" * 32))


def test_the_source_must_be_the_expected_one() -> None:
    with pytest.raises(pe.ErrorMismatchSource):
        check(expected=expect(source_uri="gitlab.com/acme/tools/other"))
    # Scheme, .git and the host's case name the same repository.
    check(expected=expect(source_uri="git+https://GitLab.com/acme/tools/app.git"))


def test_the_certificate_source_must_be_the_config_project() -> None:
    with pytest.raises(pe.ErrorMismatchCertificate):
        check(ext=extensions(source_repository_uri=f"{SERVER}/acme/tools/other"),
              expected=expect(source_uri="gitlab.com/acme/tools/other"))


@pytest.mark.parametrize("changes", [
    {"source": f"{SERVER}/acme/tools/other"},
    {"dependency": f"git+{SERVER}/acme/tools/other@{REF}"},
    {"dependency": f"git+{SOURCE}@refs/heads/main"},
    {"dependency": f"{SOURCE}@{REF}"},
])
def test_the_predicates_source_must_be_the_certificates(changes: dict[str, str]) -> None:
    with pytest.raises(pe.ErrorMismatchSource):
        check(statement(**changes))


@pytest.mark.parametrize("changes, ext", [
    ({"commit": "f" * 40}, {}),
    ({}, {"source_repository_digest": "f" * 40}),
    ({"ref": "refs/heads/main"}, {}),
    ({"ci_config": f"{SOURCE}//other.yml@{REF}"}, {}),
])
def test_commit_ref_and_config_must_be_the_certificates(changes: dict[str, str],
                                                        ext: dict[str, str]) -> None:
    with pytest.raises(pe.ErrorMismatchCertificate):
        check(statement(**changes), ext=extensions(**ext))


def test_external_parameters_are_required() -> None:
    prov = statement()
    del prov.statement.predicate["buildDefinition"]["externalParameters"]["ci_config"]
    with pytest.raises(pe.ErrorInvalidDssePayload):
        check(prov)


def test_tag_branch_and_versioned_tag_against_the_certificates_ref() -> None:
    check(expected=expect(source_tag="refs/tags/v2.1.0"))
    check(expected=expect(source_versioned_tag="v2.1"))
    with pytest.raises(pe.ErrorMismatchTag):
        check(expected=expect(source_tag="v2.1.1"))
    with pytest.raises(pe.ErrorMismatchVersionedTag):
        check(expected=expect(source_versioned_tag="v3"))
    with pytest.raises(pe.ErrorInvalidRef):
        check(expected=expect(source_branch="main"))
    branch = "refs/heads/main"
    ext = extensions(source_repository_ref=branch,
                     build_config_uri=CONFIG.replace(REF, branch))
    prov = statement(ref=branch, ci_config=CONFIG.replace(REF, branch),
                     dependency=f"git+{SOURCE}@{branch}")
    check(prov, expect(source_branch="main"), identity=CONFIG.replace(REF, branch), ext=ext)
    with pytest.raises(pe.ErrorMismatchBranch):
        check(prov, expect(source_branch="dev"), identity=CONFIG.replace(REF, branch), ext=ext)
    with pytest.raises(pe.ErrorInvalidRef):
        check(prov, expect(source_versioned_tag="v2"), identity=CONFIG.replace(REF, branch),
              ext=ext)


def test_workflow_inputs_do_not_apply() -> None:
    with pytest.raises(UsageError):
        check(expected=expect(workflow_inputs={"a": "b"}))


def test_a_policy_must_list_a_gitlab_builder_and_its_level_counts() -> None:
    github = ('version = 1\n[source]\nuri = "gitlab.com/acme/tools/app"\n[[builder]]\n'
              'id = "https://github.com/o/r/.github/workflows/b.yml"\n')
    with pytest.raises(pe.ErrorUntrustedReusableWorkflow, match="runners"):
        check(expected=expect(github))
    other = github.replace("https://github.com/o/r/.github/workflows/b.yml",
                           "https://gitlab.com/other/app/-/runners/*")
    with pytest.raises(pe.ErrorUntrustedReusableWorkflow):
        check(expected=expect(other))
    level1 = other.replace("other/app", PROJECT) + "level = 1\n"
    assert check(expected=expect(level1)).level == 1
    with pytest.raises(pe.ErrorUntrustedReusableWorkflow, match="minimum-level"):
        check(expected=expect(level1)._replace(minimum_level=2))


def test_policy_gitlab_builder_is_strict_and_explained() -> None:
    base = 'version = 1\n[[builder]]\nid = "https://gitlab.com/g/p/-/runners/*"\n'
    policy = ProvenancePolicy.from_toml(base.encode())
    (builder,) = policy.builders
    assert builder.gitlab and builder.level == 2 and not builder.allow_self_hosted
    assert any("GitLab CI job" in line and "self-hosted runners are refused" in line
               for line in policy.explain())
    assert policy.to_json()["builders"][0]["allow_self_hosted"] is False
    for bad in ("level = 3\n", "allow-self-hosted = 1\n", "refs = [\"x\"]\n"):
        with pytest.raises(ConfigInvalidError):
            ProvenancePolicy.from_toml((base + bad).encode())
    with pytest.raises(ConfigInvalidError):
        ProvenancePolicy.from_toml(base.replace("https://", "").encode())


def test_dispatch_reads_the_build_type() -> None:
    def bundle(build_type: str) -> bytes:
        payload = json.dumps({"predicate": {"buildDefinition": {"buildType": build_type}}})
        return json.dumps({"dsseEnvelope": {
            "payload": base64.b64encode(payload.encode()).decode()}}).encode()

    assert build_type_of(bundle(GITLAB_BUILD_TYPE)) == GITLAB_BUILD_TYPE
    assert build_type_of(bundle(LOCAL_BUILD_TYPE)) == LOCAL_BUILD_TYPE
    assert build_type_of(b"\n".join([bundle("x"), bundle(GITLAB_BUILD_TYPE)])) == \
        GITLAB_BUILD_TYPE
    assert build_type_of(bundle("https://slsa-framework.github.io/x")) is None
    assert build_type_of(b"not json") is None


def test_verify_provenance_sends_gitlab_provenance_to_its_path_with_or_without_policy(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from sealtrail.provenance import gitlab, local

    taken: list[str] = []
    monkeypatch.setattr(gitlab, "verify_gitlab_provenance", lambda *a, **k: taken.append("gl"))
    monkeypatch.setattr(local, "verify_local_provenance", lambda *a, **k: taken.append("local"))
    monkeypatch.setattr(local, "verify_artifact_provenance", lambda *a, **k: taken.append("gh"))
    monkeypatch.setattr(local, "build_type_of", lambda data: data.decode() or None)
    with_policy = expect('version = 1\n[source]\nuri = "gitlab.com/g/p"\n')
    for data, expectations, path in ((GITLAB_BUILD_TYPE.encode(), expect(), "gl"),
                                     (GITLAB_BUILD_TYPE.encode(), with_policy, "gl"),
                                     (b"", expect(), "gh")):
        taken.clear()
        local.verify_provenance(["ab" * 32], data, expectations, trusted_root=b"{}")
        assert taken == [path]
