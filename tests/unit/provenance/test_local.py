"""A local build's provenance under a policy (src/sealtrail/provenance/local.py): each check
of check_local_provenance on statements built here (the Sigstore step is the verifier's own,
exercised by tests/integration/test_local_provenance.py), and the dispatch."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from sealtrail.errors import UsageError
from sealtrail.models.intoto import Statement
from sealtrail.provenance import errors as pe
from sealtrail.provenance.intoto_predicates import parse_provenance
from sealtrail.provenance.local import (
    LOCAL_BUILD_TYPE,
    check_local_provenance,
    is_local_provenance,
)
from sealtrail.provenance.policy import ProvenancePolicy
from sealtrail.provenance.slsa import SlsaExpectations

ISSUER = "https://issuer.example.com"
DEV = "dev@example.com"
HOST_ID = "urn:sealtrail:builder:local:laptop"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
DIGEST = "ab" * 32
REPO = "https://git.example.com/acme/app.git"


def statement(*, build_type: str = LOCAL_BUILD_TYPE, builder: str = HOST_ID,
              ref: str = "refs/heads/main", dirty: bool = False, repository: str = REPO,
              dependency: str | None = None, digest: str = DIGEST,
              predicate_type: str = "https://slsa.dev/provenance/v1") -> Any:
    document = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "app.bin", "digest": {"sha256": digest}}],
        "predicateType": predicate_type,
        "predicate": {
            "buildDefinition": {
                "buildType": build_type,
                "externalParameters": {"source": {"repository": repository, "ref": ref,
                                                  "dirty": dirty}},
                "internalParameters": {"platform": "local", "isolated": False,
                                       "slsaBuildLevel": 1},
                "resolvedDependencies": [{"uri": dependency or f"git+{repository}@{ref or COMMIT}",
                                          "digest": {"gitCommit": COMMIT}}],
            },
            "runDetails": {"builder": {"id": builder}},
        },
    }
    return parse_provenance(Statement.from_payload(json.dumps(document).encode()))


def policy(extra: str = "", minimum: str = "", builder: str = "urn:sealtrail:builder:local:*",
           signer: str = f'identity = "{DEV}", issuer = "{ISSUER}"') -> ProvenancePolicy:
    text = (f'version = 1\n{minimum}\n[source]\nuri = "git.example.com/acme/app"\n'
            f'[[builder]]\nid = "{builder}"\nlevel = 1\nsigners = [{{{signer}}}]\n{extra}')
    return ProvenancePolicy.from_toml(text.encode(), "p.toml")


def expect(p: ProvenancePolicy | None = None, **flags: Any) -> SlsaExpectations:
    return SlsaExpectations.from_policy(p or policy(), **flags).checked()


def check(prov: Any = None, expectations: SlsaExpectations | None = None,
          identity: str = DEV, issuer: str = ISSUER) -> Any:
    return check_local_provenance(prov or statement(), identity, issuer,
                                  [{"sha256": DIGEST}], expectations or expect())


def test_a_trusted_builder_and_signer_pass_at_level_1() -> None:
    facts = check()
    assert facts.builder.level == 1 and facts.builder_id == HOST_ID
    assert (facts.repository, facts.commit, facts.ref, facts.dirty) == (
        REPO, COMMIT, "refs/heads/main", False)
    assert facts.subjects[0].name == "app.bin"


def test_no_local_builder_in_the_policy_names_the_key_that_would_accept_it() -> None:
    other = ProvenancePolicy.from_toml(
        b'version = 1\n[source]\nuri = "git.example.com/acme/app"\n[[builder]]\n'
        b'id = "https://github.com/o/r/.github/workflows/b.yml"\nlevel = 3\n', "p.toml")
    with pytest.raises(pe.ErrorUntrustedReusableWorkflow) as info:
        check(expectations=expect(other))
    assert f'[[builder]] with id = "{HOST_ID}", level = 1 and signers' in info.value.message
    with pytest.raises(pe.ErrorUntrustedReusableWorkflow):
        check(expectations=expect(policy(builder="urn:sealtrail:builder:local:desktop")))


def test_the_signer_must_be_the_builders() -> None:
    with pytest.raises(pe.ErrorUntrustedReusableWorkflow, match="not one of the policy's"):
        check(identity="eve@example.com")
    with pytest.raises(pe.ErrorInvalidOIDCIssuer):
        check(issuer="https://evil.example.com")
    regexp = policy(signer=f'identity-regexp = "^dev@example\\\\.com$", issuer = "{ISSUER}"')
    assert check(expectations=expect(regexp)).builder.level == 1
    with pytest.raises(pe.ErrorUntrustedReusableWorkflow):
        check(expectations=expect(regexp), identity="dev@exampleXcom")


def test_build_type_builder_and_predicate() -> None:
    with pytest.raises(pe.ErrorInvalidBuildType):
        check(statement(build_type="https://actions.github.io/buildtypes/workflow/v1"))
    with pytest.raises(pe.ErrorMismatchBuilderID):
        check(statement(builder="https://github.com/o/r/.github/workflows/b.yml@refs/tags/v1"))
    with pytest.raises(pe.ErrorMismatchBuilderID):
        check(expectations=expect(builder_id="urn:sealtrail:builder:local:other"))
    assert check(expectations=expect(builder_id=HOST_ID)).builder_id == HOST_ID


def test_subjects_must_name_the_artifact() -> None:
    with pytest.raises(pe.ErrorMismatchHash):
        check(statement(digest="cd" * 32))


@pytest.mark.parametrize("uri", ["git.example.com/acme/app", "https://git.example.com/acme/app",
                                 "git+https://GIT.example.com/acme/app.git/",
                                 "ssh://git@git.example.com/acme/app.git"])
def test_source_is_normalised(uri: str) -> None:
    p = ProvenancePolicy.from_toml(
        b'version = 1\n[[builder]]\nid = "urn:sealtrail:builder:local:*"\nlevel = 1\n'
        + f'signers = [{{identity = "{DEV}", issuer = "{ISSUER}"}}]\n'.encode(), "p.toml")
    assert check(expectations=expect(p, source_uri=uri)).repository == REPO


@pytest.mark.parametrize("uri", ["git.example.com/acme/other", "git.example.org/acme/app",
                                 "git.example.com/acme/app/sub", "git.example.com:99999/a"])
def test_another_source_is_refused(uri: str) -> None:
    p = ProvenancePolicy.from_toml(
        b'version = 1\n[[builder]]\nid = "urn:sealtrail:builder:local:*"\nlevel = 1\n'
        + f'signers = [{{identity = "{DEV}", issuer = "{ISSUER}"}}]\n'.encode(), "p.toml")
    with pytest.raises(pe.ErrorMismatchSource):
        check(expectations=expect(p, source_uri=uri))


def test_the_dependency_must_agree_with_the_source() -> None:
    with pytest.raises(pe.ErrorInvalidDssePayload, match="disagree"):
        check(statement(dependency="git+https://git.example.com/acme/other.git@refs/heads/main"))


def test_a_dirty_tree_is_refused_unless_allowed() -> None:
    with pytest.raises(pe.ErrorMismatchSource, match="allow-dirty = true"):
        check(statement(dirty=True))
    assert check(statement(dirty=True), expect(policy("allow-dirty = true"))).dirty


def test_branch_and_tag() -> None:
    assert check(expectations=expect(source_branch="main")).ref == "refs/heads/main"
    with pytest.raises(pe.ErrorMismatchBranch):
        check(expectations=expect(source_branch="dev"))
    with pytest.raises(pe.ErrorInvalidRef):
        check(statement(ref=""), expect(source_branch="main"))
    assert check(statement(ref="refs/tags/v1.0.0"), expect(source_tag="v1.0.0")).ref
    with pytest.raises(pe.ErrorMismatchTag):
        check(expectations=expect(source_tag="v1.0.0"))
    with pytest.raises(UsageError):
        check(expectations=expect(source_versioned_tag="v1"))


def test_minimum_level_above_1_fails() -> None:
    both = policy('[[builder]]\nid = "https://github.com/o/r/.github/workflows/b.yml"\n'
                  "level = 3\n", minimum="minimum-level = 2")
    with pytest.raises(pe.ErrorUntrustedReusableWorkflow, match="L1 < L2"):
        check(expectations=expect(both))


def test_is_local_provenance_reads_the_build_type_only_to_dispatch() -> None:
    def bundle(build_type: str) -> bytes:
        payload = json.dumps({"predicate": {"buildDefinition": {"buildType": build_type}}})
        return json.dumps({
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"certificate": {"rawBytes": base64.b64encode(b"x").decode()},
                                     "tlogEntries": []},
            "dsseEnvelope": {"payload": base64.b64encode(payload.encode()).decode(),
                             "payloadType": "application/vnd.in-toto+json",
                             "signatures": [{"sig": base64.b64encode(b"s").decode()}]},
        }).encode()

    assert is_local_provenance(bundle(LOCAL_BUILD_TYPE))
    assert not is_local_provenance(bundle("https://actions.github.io/buildtypes/workflow/v1"))
    assert not is_local_provenance(b"not json")


def test_verify_provenance_takes_the_local_path_only_under_a_policy(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from sealtrail.provenance import local

    taken: list[str] = []
    monkeypatch.setattr(local, "verify_local_provenance",
                        lambda *a, **k: taken.append("local"))
    monkeypatch.setattr(local, "verify_artifact_provenance",
                        lambda *a, **k: taken.append("github"))
    monkeypatch.setattr(local, "is_local_provenance", lambda data: data == b"local")
    github_only = ProvenancePolicy.from_toml(b'version = 1\n[source]\nuri = "x.org/a"\n', "p")
    for data, expectations, path in (
            (b"local", expect(), "local"),
            (b"local", expect(github_only), "local"),  # refused there, naming the key
            (b"other", expect(), "github")):
        taken.clear()
        local.verify_provenance(["ab" * 32], data, expectations, trusted_root=b"{}")
        assert taken == [path], (data, expectations)
    # No policy: neither path; refused at once, naming the policy that would accept it.
    taken.clear()
    with pytest.raises(pe.ErrorUntrustedReusableWorkflow, match="urn:sealtrail:builder:local:"):
        local.verify_provenance(["ab" * 32], b"local", SlsaExpectations(source_uri="x.org/a"),
                                trusted_root=b"{}")
    assert taken == []
