"""sealtrail.provenance.pypi: PEP 740 attestations checked as pypi-attestations checks them.

Real data: tests/vectors/ecosystem/pypi-attestations (attestations and distributions from
pypi-attestations' test assets) and tests/vectors/pypi (its provenance files and a real
certificate); the outcomes asserted are those of pypi-attestations' test_impl.py / test_cli.py
(README.md beside each). Statements no real attestation holds (two subjects, another
predicate type, a misnamed subject) are signed by the fake instance of tests/fakes.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from sealtrail.errors import Error
from sealtrail.models.certificate import FulcioIdentity
from sealtrail.provenance import pypi
from sealtrail.trustroot import load_trusted_root
from sealtrail.verify.policy import IdentityPolicy
from sealtrail.verify.verifier import VerificationResult, Verifier
from tests.fakes.instance import FakeInstance

VECTORS = Path(__file__).resolve().parents[2] / "vectors"
ECO = VECTORS / "ecosystem" / "pypi-attestations"
OWN = VECTORS / "pypi"

GITHUB_REPO = "trailofbits/pypi-attestations"
GITLAB_REPO = "facutuesca/gitlab-oidc-project"
SDIST = "pypi_attestations-0.0.19.tar.gz"
CIRCLECI = pypi.CircleCIPublisher("fdd9283f-e619-46af-8f9c-851f7d3e8b2b",
                                  "8e4f8ab2-8d7c-4827-9f15-de076d6d647f",
                                  "github.com/CircleCI-Public/sign-and-publish-examples",
                                  "refs/heads/pypi")


@pytest.fixture(scope="module")
def production() -> Verifier:
    return Verifier(load_trusted_root(instance="production"))


@pytest.fixture(scope="module")
def staging() -> Verifier:
    return Verifier(load_trusted_root(instance="staging"))


def _verify(verifier: Verifier, attestation: str | pypi.Attestation, dist: str,
            policies: list[Any], *, data: bytes | None = None,
            filename: str | None = None) -> pypi.PyPIResult:
    if isinstance(attestation, str):
        attestation = pypi.parse_attestation((ECO / attestation).read_bytes())
    content = data if data is not None else (ECO / dist).read_bytes()
    return pypi.verify_attestation(verifier, attestation, filename=filename or dist,
                                   sha256_hex=hashlib.sha256(content).hexdigest(),
                                   policies=policies)


def _code(call: Any) -> tuple[str, str]:
    with pytest.raises(Error) as info:
        call()
    return info.value.code, info.value.message


# -- real attestations: the outcomes pypi-attestations' tests assert ---------------------------

@pytest.mark.parametrize("attestation, predicate", [
    (SDIST + ".publish.attestation", pypi.PUBLISH_V1),
    (SDIST + ".slsa.attestation", pypi.SLSA_PROVENANCE_V1),
])
def test_github_publisher_verifies(production: Verifier, attestation: str, predicate: str) -> None:
    result = _verify(production, attestation, SDIST,
                     [pypi.GitHubPublisher(GITHUB_REPO, "release.yml")])
    assert result.predicate_type == predicate
    assert result.subject_name == SDIST
    assert result.verification.identity == (
        f"https://github.com/{GITHUB_REPO}/.github/workflows/release.yml@refs/tags/v0.0.19")


def test_github_publisher_wrong_workflow(production: Verifier) -> None:
    # test_impl.py::test_verify_from_github_publisher_wrong
    code, message = _code(lambda: _verify(production, SDIST + ".publish.attestation", SDIST,
                                          [pypi.GitHubPublisher(GITHUB_REPO, "wrong.yml")]))
    assert code == "IDENTITY_MISMATCH"
    assert message.startswith("Verification failed: Certificate's Build Config URI (https://")
    assert "does not match expected Trusted Publisher (wrong.yml @ " + GITHUB_REPO in message


def test_github_publisher_wrong_repository(production: Verifier) -> None:
    code, message = _code(lambda: _verify(production, SDIST + ".publish.attestation", SDIST,
                                          [pypi.GitHubPublisher("trailofbits/other")]))
    assert code == "IDENTITY_MISMATCH"
    assert "OIDCSourceRepositoryURI does not match" in message


def test_github_publisher_without_workflow_accepts_any_workflow_of_the_repository(
        production: Verifier) -> None:
    _verify(production, SDIST + ".publish.attestation", SDIST, [pypi.GitHubPublisher(GITHUB_REPO)])


def test_github_attested_models_verify(production: Verifier) -> None:
    # test_impl.py::test_verify_github_attested (actions/attest, via the converted bundle)
    name = "pypi_attestation_models-0.0.4a2.tar.gz"
    _verify(production, name + ".attestation", name,
            [pypi.GitHubPublisher("trailofbits/pypi-attestation-models", "release.yml")])


def test_gitlab_publisher(production: Verifier) -> None:
    # test_impl.py::test_verify_from_gitlab_publisher: .18 has GitLab's "//"
    name = "gitlab_oidc_project-0.0.3.tar.gz"
    result = _verify(production, name + ".publish.attestation", name,
                     [pypi.GitLabPublisher(GITLAB_REPO, ".gitlab-ci.yml")])
    assert result.verification.extensions["build_config_uri"] == (
        f"https://gitlab.com/{GITLAB_REPO}//.gitlab-ci.yml@refs/heads/main")


def test_gitlab_publisher_wrong_workflow(production: Verifier) -> None:
    # test_impl.py::test_verify_from_gitlab_publisher_wrong
    name = "gitlab_oidc_project-0.0.3.tar.gz"
    code, message = _code(lambda: _verify(production, name + ".publish.attestation", name,
                                          [pypi.GitLabPublisher(GITLAB_REPO, "wrong.yml")]))
    assert code == "IDENTITY_MISMATCH"
    assert "Build Config URI" in message and "(wrong.yml @ " + GITLAB_REPO in message


def test_gitlab_attestation_under_a_github_publisher_fails_on_the_issuer(
        production: Verifier) -> None:
    name = "gitlab_oidc_project-0.0.3.tar.gz"
    code, message = _code(lambda: _verify(production, name + ".publish.attestation", name,
                                          [pypi.GitHubPublisher(GITLAB_REPO, ".gitlab-ci.yml")]))
    assert code == "ISSUER_MISMATCH"
    assert message == ("Verification failed: Certificate's OIDCIssuerV2 does not match "
                       "(got https://gitlab.com, expected https://token.actions.githubusercontent.com)")


def test_circleci_publisher(production: Verifier) -> None:
    name = "circleci_sign_publish_example-0.0.1.dev137-py3-none-any.whl"
    _verify(production, name + ".publish.attestation", name, [CIRCLECI])
    wrong = CIRCLECI._replace(pipeline_definition_id="00000000-0000-0000-0000-000000000000")
    code, message = _code(lambda: _verify(production, name + ".publish.attestation", name, [wrong]))
    assert code == "IDENTITY_MISMATCH"
    assert "Build Signer URI" in message


def test_email_identity_on_staging_only(production: Verifier, staging: Verifier) -> None:
    # test_impl.py::test_verify (staging=True); the production root lacks the staging log.
    name = "rfc8785-0.1.2-py3-none-any.whl"
    policy = IdentityPolicy(identity="william@yossarian.net", issuer="https://github.com/login/oauth")
    _verify(staging, name + ".attestation", name, [policy])
    assert _code(lambda: _verify(production, name + ".attestation", name, [policy]))[0] == \
        "TLOG_KEY_UNKNOWN"
    other = IdentityPolicy(identity="fake@example.com", issuer="https://github.com/login/oauth")
    # test_impl.py::test_verify_policy_mismatch
    assert _code(lambda: _verify(staging, name + ".attestation", name, [other]))[0] == \
        "IDENTITY_MISMATCH"


def test_digest_mismatch(staging: Verifier) -> None:
    # test_impl.py::test_verify_digest_mismatch: the file's bytes replaced by b"nothing"
    name = "rfc8785-0.1.2-py3-none-any.whl"
    policy = IdentityPolicy(identity="william@yossarian.net", issuer="https://github.com/login/oauth")
    code, message = _code(lambda: _verify(staging, name + ".attestation", name, [policy],
                                          data=b"nothing"))
    assert (code, message) == ("SUBJECT_MISMATCH",
                               "Verification failed: subject does not match distribution digest")


def test_name_mismatch(staging: Verifier) -> None:
    # test_impl.py::test_verify_filename_mismatch: the same bytes under another name
    name = "rfc8785-0.1.2-py3-none-any.whl"
    policy = IdentityPolicy(identity="william@yossarian.net", issuer="https://github.com/login/oauth")
    code, message = _code(lambda: _verify(staging, name + ".attestation", name, [policy],
                                          filename="foo-0.1.2-py3-none-any.whl"))
    assert code == "SUBJECT_MISMATCH"
    assert message == ("Verification failed: subject does not match distribution name: "
                       f"{name} != foo-0.1.2-py3-none-any.whl")


def test_another_spelling_of_the_same_wheel_verifies(staging: Verifier) -> None:
    # test_impl.py::test_verify_different_wheel_tag_order: names compared once parsed
    name = "rfc8785-0.1.2-py3-none-any.whl"
    policy = IdentityPolicy(identity="william@yossarian.net", issuer="https://github.com/login/oauth")
    _verify(staging, name + ".attestation", name, [policy], filename="RFC8785-0.1.2.0-py3-none-any.whl")


def test_google_publisher_from_a_provenance_file(production: Verifier) -> None:
    # test_impl.py::test_verify_from_google_publisher
    name = "gcb_attestation_test-0.0.0.tar.gz"
    [bundle] = pypi.parse_provenance((ECO / (name + ".provenance")).read_bytes())
    assert bundle.publisher == pypi.GooglePublisher(
        "919436158236-compute@developer.gserviceaccount.com")
    [attestation] = bundle.attestations
    _verify(production, attestation, name, [bundle.publisher])
    code, _ = _code(lambda: _verify(production, attestation, name,
                                    [pypi.GooglePublisher("someone@example.com")]))
    assert code == "IDENTITY_MISMATCH"


@pytest.mark.parametrize("provenance, dist, publisher", [
    (OWN / (SDIST + ".provenance"), ECO / SDIST, pypi.GitHubPublisher(GITHUB_REPO, "release.yml")),
    (OWN / "circleci_sign_publish_example-0.0.1.dev137-py3-none-any.whl.provenance",
     ECO / "circleci_sign_publish_example-0.0.1.dev137-py3-none-any.whl", CIRCLECI),
])
def test_provenance_files_verify_under_their_publisher(production: Verifier, provenance: Path,
                                                       dist: Path, publisher: Any) -> None:
    # test_cli.py::test_verify_pypi_command_with_local_files, ..._circleci_ok
    [bundle] = pypi.parse_provenance(provenance.read_bytes())
    assert bundle.publisher == publisher
    for attestation in bundle.attestations:
        _verify(production, attestation, dist.name, [bundle.publisher])


# -- the provenance publisher against the flags (pypi-attestations' CLI messages) ---------------

def test_repository_flag_against_the_publisher() -> None:
    github = pypi.GitHubPublisher(GITHUB_REPO, "release.yml")
    pypi.check_repository_flag(f"https://github.com/{GITHUB_REPO}", None, github)
    pypi.check_repository_flag(f"https://github.com/{GITHUB_REPO}", "release.yml", github)
    # test_cli.py::test_verify_pypi_command_publisher_doesnt_match_user_repository
    with pytest.raises(Error) as info:
        pypi.check_repository_flag(f"https://gitlab.com/{GITHUB_REPO}", None, github)
    assert info.value.message == ("Verification failed: provenance was signed by a github.com "
                                  "repository, but expected a gitlab.com repository")
    with pytest.raises(Error) as info:
        pypi.check_repository_flag("https://github.com/other/repo", None, github)
    assert info.value.message == ('Verification failed: provenance was signed by repository '
                                  f'"{GITHUB_REPO}", expected "other/repo"')
    with pytest.raises(Error) as info:
        pypi.check_repository_flag(f"https://github.com/{GITHUB_REPO}", "other.yml", github)
    assert info.value.code == "IDENTITY_MISMATCH"
    with pytest.raises(Error) as info:
        pypi.check_repository_flag(f"https://github.com/{GITHUB_REPO}", None,
                                   pypi.GooglePublisher("a@example.com"))
    assert info.value.code == "IDENTITY_MISMATCH" and "--cert-identity" in info.value.message


@pytest.mark.parametrize("url", ["https://example.com/trailofbits/pypi-attestations",
                                 "http://github.com/other/repo", "https://github.com",
                                 "https://github.com/", "github.com/a/b"])
def test_repository_flag_must_be_github_or_gitlab_https(url: str) -> None:
    # test_cli.py::test_verify_pypi_command_invalid_repository_argument
    with pytest.raises(Error) as info:
        pypi.publisher_from_repository(url)
    assert info.value.code == "USAGE" and "Unsupported/invalid URL" in info.value.message


def test_repository_flag_picks_the_publisher_by_host() -> None:
    assert pypi.publisher_from_repository("https://github.com/o/r", "w.yml") == \
        pypi.GitHubPublisher("o", "w.yml")._replace(repository="o/r")
    assert pypi.publisher_from_repository("https://gitlab.com/g/sub/p", ".gitlab-ci.yml") == \
        pypi.GitLabPublisher("g/sub/p", ".gitlab-ci.yml")


def test_identity_flags_against_a_google_publisher() -> None:
    google = pypi.GooglePublisher("sa@example.iam.gserviceaccount.com")
    pypi.check_identity_flags("sa@example.iam.gserviceaccount.com", pypi.GOOGLE_ISSUER, google)
    with pytest.raises(Error) as info:
        pypi.check_identity_flags("other@example.com", pypi.GOOGLE_ISSUER, google)
    assert info.value.message.startswith(
        'Verification failed: provenance was signed by service account "sa@example')


# -- publisher policies on a real certificate (test_impl.py::TestGitHubPublisher) ---------------

def _as_result(identity: FulcioIdentity, drop: tuple[str, ...] = ()) -> VerificationResult:
    extensions = {k: v for k, v in identity.extensions.items() if k not in drop}
    return VerificationResult(identity=identity.san, issuer=identity.issuer, extensions=extensions,
                              key_id=None, log_index=None, log_url=None, verified_times=())


def test_github_certificate_without_a_ref_extension_verifies_by_its_digest() -> None:
    cert = x509.load_pem_x509_certificate((OWN / "no-source-repository-ref-extension.pem")
                                          .read_bytes())
    found = FulcioIdentity.from_certificate(cert)
    assert "source_repository_ref" not in found.extensions
    publisher = pypi.GitHubPublisher("SWIFTSIM/swiftgalaxy", "python-publish.yml")
    publisher.check(_as_result(found))
    # Without digest either (test_fails_cert_with_no_digest_or_ref):
    with pytest.raises(Error) as info:
        publisher.check(_as_result(found, drop=("source_repository_digest",)))
    assert info.value.message == ("Verification failed: Certificate must contain either Source "
                                  "Repository Digest or Source Repository Ref")
    with pytest.raises(Error):
        pypi.GitHubPublisher("SWIFTSIM/swiftgalaxy", "other.yml").check(_as_result(found))


# -- statements no real attestation holds: signed by the fake instance --------------------------

GITLAB_CLAIMS = {
    "source_repository_uri": "https://gitlab.com/group/sub/project",
    "source_repository_digest": "a" * 40,
    "source_repository_ref": "refs/tags/v1.0",
    "build_config_uri": "https://gitlab.com/group/sub/project//ci/release.yml@refs/tags/v1.0",
}
GITLAB = pypi.GitLabPublisher("group/sub/project", "ci/release.yml")
DIST = b"wheel bytes"
DIST_NAME = "example_pkg-1.0-py3-none-any.whl"


@pytest.fixture(scope="module")
def inst() -> FakeInstance:
    return FakeInstance()


def _statement(subjects: list[dict[str, Any]] | None = None,
               predicate_type: str = pypi.PUBLISH_V1) -> dict[str, Any]:
    if subjects is None:
        subjects = [{"name": DIST_NAME, "digest": {"sha256": hashlib.sha256(DIST).hexdigest()}}]
    return {"_type": "https://in-toto.io/Statement/v1", "subject": subjects,
            "predicateType": predicate_type, "predicate": None}


def _attestation_of(bundle: dict[str, Any]) -> dict[str, Any]:
    # pypi-attestations' Attestation.from_bundle, in words: the same material renamed.
    material = bundle["verificationMaterial"]
    return {"version": 1,
            "verification_material": {"certificate": material["certificate"]["rawBytes"],
                                      "transparency_entries": material["tlogEntries"]},
            "envelope": {"statement": bundle["dsseEnvelope"]["payload"],
                         "signature": bundle["dsseEnvelope"]["signatures"][0]["sig"]}}


def _signed(inst: FakeInstance, statement: dict[str, Any],
            claims: dict[str, str] = GITLAB_CLAIMS, issuer: str = pypi.GITLAB_ISSUER) -> Any:
    bundle = inst.sign_dsse(statement, identity=claims["build_config_uri"], issuer=issuer,
                            github=claims)
    return pypi.parse_attestation(json.dumps(_attestation_of(bundle)))


def _fake_verify(inst: FakeInstance, attestation: Any, policies: list[Any] | None = None,
                 filename: str = DIST_NAME) -> pypi.PyPIResult:
    verifier = Verifier(inst.trusted_root(), now=inst.now)
    return pypi.verify_attestation(verifier, attestation, filename=filename,
                                   sha256_hex=hashlib.sha256(DIST).hexdigest(),
                                   policies=policies or [GITLAB])


def test_gitlab_round_trip_with_subgroups_and_a_nested_ci_file(inst: FakeInstance) -> None:
    result = _fake_verify(inst, _signed(inst, _statement()))
    assert result.subject_name == DIST_NAME
    # Without the "//" (a GitHub-style URI) the same publisher is refused.
    claims = {**GITLAB_CLAIMS, "build_config_uri":
              "https://gitlab.com/group/sub/project/ci/release.yml@refs/tags/v1.0"}
    code, message = _code(lambda: _fake_verify(inst, _signed(inst, _statement(), claims)))
    assert code == "IDENTITY_MISMATCH" and "Build Config URI" in message


def test_gitlab_build_config_may_name_the_commit(inst: FakeInstance) -> None:
    claims = {**GITLAB_CLAIMS, "build_config_uri":
              f"https://gitlab.com/group/sub/project//ci/release.yml@{'a' * 40}"}
    _fake_verify(inst, _signed(inst, _statement(), claims))


def test_gitlab_needs_both_digest_and_ref(inst: FakeInstance) -> None:
    claims = {k: v for k, v in GITLAB_CLAIMS.items() if k != "source_repository_ref"}
    code, message = _code(lambda: _fake_verify(inst, _signed(inst, _statement(), claims)))
    assert code == "IDENTITY_MISMATCH" and "OIDCSourceRepositoryRef" in message


def test_exactly_one_subject(inst: FakeInstance) -> None:
    digest = {"sha256": hashlib.sha256(DIST).hexdigest()}
    two = _statement([{"name": DIST_NAME, "digest": digest},
                      {"name": "other-1.0.tar.gz", "digest": digest}])
    code, message = _code(lambda: _fake_verify(inst, _signed(inst, two)))
    assert (code, message) == ("SUBJECT_MISMATCH", "Verification failed: too many subjects in "
                                                   "statement (must be exactly one)")


def test_subject_without_a_name(inst: FakeInstance) -> None:
    nameless = _statement([{"digest": {"sha256": hashlib.sha256(DIST).hexdigest()}}])
    code, message = _code(lambda: _fake_verify(inst, _signed(inst, nameless)))
    assert (code, message) == ("SUBJECT_MISMATCH", "Verification failed: invalid subject: "
                                                   "missing name")


def test_subject_that_is_not_a_distribution_name(inst: FakeInstance) -> None:
    bad = _statement([{"name": "foo-bar-1.0-py3-none-any.whl",
                       "digest": {"sha256": hashlib.sha256(DIST).hexdigest()}}])
    code, message = _code(lambda: _fake_verify(inst, _signed(inst, bad)))
    assert code == "SUBJECT_MISMATCH"
    assert message.startswith("Verification failed: invalid subject: Invalid wheel filename")


def test_unknown_predicate_type(inst: FakeInstance) -> None:
    other = _statement(predicate_type="https://example.com/foo")
    code, message = _code(lambda: _fake_verify(inst, _signed(inst, other)))
    assert (code, message) == ("SUBJECT_MISMATCH", "Verification failed: unknown attestation "
                                                   "type: https://example.com/foo")
    # Both known types pass.
    _fake_verify(inst, _signed(inst, _statement(predicate_type=pypi.SLSA_PROVENANCE_V1)))


def test_a_tampered_statement_fails_the_signature(inst: FakeInstance) -> None:
    attestation = _signed(inst, _statement())
    tampered = attestation._replace(statement=attestation.statement.replace(b"example_pkg",
                                                                          b"example_pkh"))
    assert _code(lambda: _fake_verify(inst, tampered))[0] == "SIGNATURE_INVALID"


def test_the_distribution_file_name_must_parse(inst: FakeInstance) -> None:
    attestation = _signed(inst, _statement())
    code, message = _code(lambda: _fake_verify(inst, attestation, filename="example.exe"))
    assert code == "INPUT_INVALID"
    assert "unknown distribution format: example.exe" in message


# -- distribution file names (test_impl.py::test_check_dist_filename and _invalid) --------------

@pytest.mark.parametrize("name", [
    "foo-1.0-py3-none-any.whl", "foo_bar-1.0-py3-none-any.whl", "foo.bar-1.0-py3-none-any.whl",
    "foo-1.0-1-py3-none-any.whl", "foo-1.0-1build-py3-none-any.whl",
    "foo-1.0-py2.py3-none-any.whl", "foo-1.0beta1-py3-none-any.whl",
    "foo-bar-1.0.tar.gz", "foo--bar-1.0.tar.gz", "foo..bar-1.0.zip", "foo-01.0beta1.tar.gz",
    "foo-1!2.0.post1.dev3+local.7.tar.gz",
])
def test_well_formed_distribution_names(name: str) -> None:
    pypi.parse_distribution_filename(name)


@pytest.mark.parametrize("name", [
    "foo", "foo-1.0.TAR.GZ", "foo-1.0.ZIP", "foo-1.0-py3-none-any.WHL",
    "foo-bar-1.0-py3-none-any.whl", "foo__bar-1.0-py3-none-any.whl",
    "foo-charmander-py3-none-any.whl", "foo-1charmander-py3-none-any.whl",
    "foo-charmander.tar.gz", "foo-1charmander.tar.gz", "foo-charmander.zip",
    "foo-1charmander.zip", "foo-1.2.3.junk.zip", "foo-1.2.3.junk.tar.gz",
    "foo-1.2.3.zip.tar.gz", "foo-1.2.3.tar.gz.zip", "-1.0.tar.gz", "foo-1.0-x-py3-none-any.whl",
    "foo-1.0-py3-none.whl", "foo-1.0-py3..x-none-any.whl", "foo-1.0-3py-none-any.whl",
])
def test_malformed_distribution_names(name: str) -> None:
    with pytest.raises(ValueError):
        pypi.parse_distribution_filename(name)


@pytest.mark.parametrize("one, other", [
    ("foo_bar-1.0-py3-none-any.whl", "Foo.Bar-1.0-py3-none-any.whl"),
    ("foo-1.0-py2.py3-none-any.whl", "foo-1.0-py3.py2-none-any.whl"),
    ("foo-1.0-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
     "foo-1.0-cp310-cp310-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"),
    ("foo-1.0-py3-none-any.whl", "foo-1.0.0-PY3-NONE-ANY.whl"),
    ("foo-bar-1.0.tar.gz", "foo_bar-1.0.tar.gz"),
    ("foo-1.0beta1.tar.gz", "foo-1.0b1.tar.gz"),
    ("foo-01.0beta1.tar.gz", "foo-1.0b1.tar.gz"),
    ("foo-1.0-01-py3-none-any.whl", "foo-1.0-1-py3-none-any.whl"),
    ("foo-1.0r1.tar.gz", "foo-1.0.post1.tar.gz"),
    ("foo-1.0dev.tar.gz", "foo-1.0.dev0.tar.gz"),
    ("foo-1.0+ABC.01.tar.gz", "foo-1.0+abc.1.tar.gz"),
    ("foo-v1.0.tar.gz", "foo-1.0.tar.gz"),
])
def test_same_distribution_spelled_two_ways(one: str, other: str) -> None:
    assert pypi.parse_distribution_filename(one) == pypi.parse_distribution_filename(other)


@pytest.mark.parametrize("one, other", [
    ("foo-1.0-py3-none-any.whl", "foo-1.1-py3-none-any.whl"),
    ("foo-1.0-py3-none-any.whl", "fob-1.0-py3-none-any.whl"),
    ("foo-1.0-py3-none-any.whl", "foo-1.0-py2-none-any.whl"),
    ("foo-1.0-py3-none-any.whl", "foo-1.0-py2.py3-none-any.whl"),
    ("foo-1.0-py3-none-any.whl", "foo-1.0-1-py3-none-any.whl"),
    ("foo-1.0-py3-none-any.whl", "foo-1.0.tar.gz"),
    ("foo-1.0a1.tar.gz", "foo-1.0b1.tar.gz"),
    ("foo-1.0.tar.gz", "foo-1!1.0.tar.gz"),
    ("foo-1.0.tar.gz", "foo-1.0.post0.tar.gz"),
    ("foo-1.0.tar.gz", "foo-1.0+local.tar.gz"),
    ("foo-1.0.tar.gz", "foo-1.0.dev0.tar.gz"),
])
def test_different_distributions(one: str, other: str) -> None:
    assert pypi.parse_distribution_filename(one) != pypi.parse_distribution_filename(other)


# -- malformed files (exit 2, BUNDLE_MALFORMED) -------------------------------------------------

def _real_attestation() -> dict[str, Any]:
    return json.loads((ECO / (SDIST + ".publish.attestation")).read_text())


@pytest.mark.parametrize("mutate", [
    lambda a: a.update(version=2),
    lambda a: a.update(version=True),
    lambda a: a.pop("envelope"),
    lambda a: a["verification_material"].update(transparency_entries=[]),
    lambda a: a["verification_material"].update(certificate="not base64!"),
    lambda a: a["envelope"].update(signature=""),
    lambda a: a["envelope"].update(statement=7),
])
def test_malformed_attestations(mutate: Any) -> None:
    data = _real_attestation()
    pypi.parse_attestation(json.dumps(data))  # the unmutated file parses
    mutate(data)
    with pytest.raises(Error) as info:
        pypi.parse_attestation(json.dumps(data))
    assert info.value.code == "BUNDLE_MALFORMED" and info.value.exit_code == 2


@pytest.mark.parametrize("text", [b"", b"{", b"[]", b"\xff", b"{}" + b" " * (5 << 20)])
def test_attestation_that_is_not_a_json_object(text: bytes) -> None:
    with pytest.raises(Error) as info:
        pypi.parse_attestation(text)
    assert info.value.code == "BUNDLE_MALFORMED"


def test_a_certificate_that_does_not_parse_is_malformed(production: Verifier) -> None:
    data = _real_attestation()
    data["verification_material"]["certificate"] = base64.b64encode(b"not DER").decode()
    code, _ = _code(lambda: _verify(production, pypi.parse_attestation(json.dumps(data)), SDIST,
                                    [pypi.GitHubPublisher(GITHUB_REPO)]))
    assert code == "BUNDLE_MALFORMED"


@pytest.mark.parametrize("mutate, words", [
    (lambda p: p.update(attestation_bundles=[]), "no attestation"),
    (lambda p: p.update(attestation_bundles={}), "must be a list"),
    (lambda p: p["attestation_bundles"][0]["publisher"].update(kind="Jenkins"), "kind"),
    (lambda p: p["attestation_bundles"][0]["publisher"].pop("workflow"), "workflow"),
    (lambda p: p["attestation_bundles"][0].update(attestations=[{}]), "version"),
    (lambda p: p.update(version=2), "version"),
])
def test_malformed_provenance(mutate: Any, words: str) -> None:
    data = json.loads((OWN / (SDIST + ".provenance")).read_text())
    pypi.parse_provenance(json.dumps(data))
    mutate(data)
    with pytest.raises(Error) as info:
        pypi.parse_provenance(json.dumps(data))
    assert info.value.code == "BUNDLE_MALFORMED" and words in info.value.message


# -- parity with packaging, the parser pypi-attestations uses (an oracle, not our code) ----------

_PIECES = ["foo", "Foo", "foo_bar", "foo.bar", "foo-bar", "foo__bar", "1.0", "01.0", "1.0.0",
           "1.0b1", "1.0beta1", "1.0-1", "1.0.post1", "1.0.dev0", "1!1.0", "1.0+abc.01",
           "v1.0", "charmander", "1", "py3", "PY3", "py2.py3", "py3.py2", "none", "any",
           "cp310", "manylinux1_x86_64", "", "3py", "x..y"]


@pytest.mark.parametrize("seed", range(40))
def test_names_parse_and_compare_as_packaging_parses_them(seed: int) -> None:
    import random

    utils = pytest.importorskip("packaging.utils")

    def oracle(name: str) -> Any:
        try:
            if name.endswith(".whl"):
                return utils.parse_wheel_filename(name)
            if name.endswith((".tar.gz", ".zip")):
                return utils.parse_sdist_filename(name)
        except ValueError:
            return None
        return None

    def ours(name: str) -> Any:
        try:
            return pypi.parse_distribution_filename(name)
        except ValueError:
            return None

    rng = random.Random(seed)
    names = []
    for _ in range(50):
        parts = [rng.choice(_PIECES) for _ in range(rng.choice([2, 3, 4, 5, 6]))]
        names.append("-".join(parts) + rng.choice([".whl", ".tar.gz", ".zip"]))
    for name in names:
        assert (ours(name) is None) == (oracle(name) is None), name
    for one in names:
        for other in names:
            if ours(one) is not None and ours(other) is not None:
                assert (ours(one) == ours(other)) == (oracle(one) == oracle(other)), (one, other)


# -- never anything but a sealtrail error (no traceback) on arbitrary input -----------------------

from hypothesis import given, settings, strategies as st  # noqa: E402

_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["version", "verification_material", "envelope", "certificate",
                        "transparency_entries", "statement", "signature"]), _JSON)
def test_any_field_value_is_refused_cleanly(field: str, value: Any) -> None:
    data = _real_attestation()
    for holder in (data, data["verification_material"], data["envelope"]):
        if field in holder:
            holder[field] = value
    try:
        pypi.parse_attestation(json.dumps(data)).to_bundle()
    except Error as exc:
        assert exc.exit_code == 2


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_any_provenance_is_parsed_or_refused_cleanly(value: Any) -> None:
    try:
        pypi.parse_provenance(json.dumps({"version": 1, "attestation_bundles": value}))
    except Error as exc:
        assert exc.code == "BUNDLE_MALFORMED"


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="ab1._-+!vV0 ", max_size=30), st.sampled_from([".whl", ".tar.gz", ".zip", ""]))
def test_any_file_name_parses_or_raises_value_error(stem: str, suffix: str) -> None:
    try:
        pypi.parse_distribution_filename(stem + suffix)
    except ValueError:
        pass
