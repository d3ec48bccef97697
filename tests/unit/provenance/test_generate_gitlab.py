"""attest-provenance's GitLab CI mode (sealtrail.provenance.generate): the job from GitLab's
predefined variables, cross-checked against the id_tokens token's claims, and the predicate of
sealtrail's GitLab buildType (docs/provenance.md "## attest-provenance"), field by field.

SPEC: GitLab docs "Predefined CI/CD variables" and "ID token authentication" (claims);
shared/reference/provenance-formats.md §3 (the Fulcio mapping, the // in ci_config_ref_uri).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from sealtrail.errors import InputError, UsageError
from sealtrail.provenance import generate
from sealtrail.provenance.generate import (
    GITLAB_BUILD_TYPE,
    Subject,
    gitlab_predicate,
    gitlab_run,
)

SHA = "0123456789abcdef0123456789abcdef01234567"
CONFIG_SHA = "89abcdef0123456789abcdef0123456789abcdef"
SERVER = "https://gitlab.example"

ENV = {
    "GITLAB_CI": "true",
    "CI_SERVER_URL": SERVER,
    "CI_PROJECT_PATH": "grp/sub/app",
    "CI_PROJECT_ID": "4242",
    "CI_PROJECT_NAMESPACE": "grp/sub",
    "CI_COMMIT_SHA": SHA,
    "CI_COMMIT_REF_NAME": "v1.2.0",
    "CI_COMMIT_TAG": "v1.2.0",
    "CI_PIPELINE_SOURCE": "push",
    "CI_PIPELINE_ID": "555",
    "CI_JOB_ID": "9001",
    "CI_JOB_URL": f"{SERVER}/grp/sub/app/-/jobs/9001",
    "CI_CONFIG_PATH": ".gitlab-ci.yml",
    "CI_RUNNER_ID": "12",
    "CI_PROJECT_VISIBILITY": "public",
}

CLAIMS = {
    "iss": SERVER, "sub": "project_path:grp/sub/app:ref_type:tag:ref:v1.2.0", "aud": "sigstore",
    "project_path": "grp/sub/app", "project_id": "4242", "namespace_path": "grp/sub",
    "namespace_id": "77", "sha": SHA, "ref": "v1.2.0", "ref_type": "tag", "ref_path":
    "refs/tags/v1.2.0", "pipeline_source": "push", "pipeline_id": "555", "job_id": "9001",
    "runner_id": 12, "runner_environment": "self-hosted", "project_visibility": "public",
    "ci_config_ref_uri": "gitlab.example/grp/sub/app//.gitlab-ci.yml@refs/tags/v1.2.0",
    "ci_config_sha": CONFIG_SHA,
}


def test_predicate_field_by_field() -> None:
    predicate = gitlab_predicate(gitlab_run(ENV, CLAIMS))
    definition = predicate["buildDefinition"]
    assert definition["buildType"] == GITLAB_BUILD_TYPE \
        == "https://sealtrail.dev/buildtypes/gitlab-ci/v1"
    assert definition["externalParameters"] == {
        "source": "https://gitlab.example/grp/sub/app",
        # The certificate's Build Config URI (.18): https:// + ci_config_ref_uri, with the //.
        "ci_config": "https://gitlab.example/grp/sub/app//.gitlab-ci.yml@refs/tags/v1.2.0",
        "ref": "refs/tags/v1.2.0",
    }
    assert definition["internalParameters"] == {"gitlab": {
        "project_id": "4242", "namespace_path": "grp/sub", "pipeline_source": "push",
        "pipeline_id": "555", "job_id": "9001", "runner_id": "12",
        "runner_environment": "self-hosted", "ci_config_sha": CONFIG_SHA}}
    assert definition["resolvedDependencies"] == [
        {"uri": "git+https://gitlab.example/grp/sub/app@refs/tags/v1.2.0",
         "digest": {"gitCommit": SHA}}]
    assert predicate["runDetails"] == {
        "builder": {"id": "https://gitlab.example/grp/sub/app/-/runners/12"},
        "metadata": {"invocationId": "https://gitlab.example/grp/sub/app/-/jobs/9001"}}


def test_branch_pipeline_and_statement() -> None:
    env = {**ENV, "CI_COMMIT_REF_NAME": "main", "CI_COMMIT_TAG": ""}
    run = gitlab_run(env, None)  # no readable token: the variables alone
    assert (run.ref, run.ref_type, run.ci_config_sha) == ("refs/heads/main", "branch", SHA)
    assert run.ci_config_ref_uri == "gitlab.example/grp/sub/app//.gitlab-ci.yml@refs/heads/main"
    statement = json.loads(generate.provenance_statement(
        [Subject("app.tar.gz", {"sha256": "ab" * 32})], gitlab_predicate(run)))
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    assert statement["subject"] == [{"name": "app.tar.gz", "digest": {"sha256": "ab" * 32}}]
    assert statement["predicate"]["buildDefinition"]["resolvedDependencies"][0]["uri"] \
        == "git+https://gitlab.example/grp/sub/app@refs/heads/main"


def test_server_under_a_path() -> None:
    server = "http://127.0.0.1:8080/oidc/gitlab"
    env = {**ENV, "CI_SERVER_URL": server, "CI_JOB_URL": f"{server}/grp/sub/app/-/jobs/9001"}
    claims = {**CLAIMS, "iss": server, "ci_config_ref_uri":
              "127.0.0.1:8080/oidc/gitlab/grp/sub/app//.gitlab-ci.yml@refs/tags/v1.2.0"}
    predicate = gitlab_predicate(gitlab_run(env, claims))
    assert predicate["runDetails"]["builder"]["id"] == f"{server}/grp/sub/app/-/runners/12"


# Each claim that contradicts the variables is refused, naming the variable.
@pytest.mark.parametrize("claim, value, variable", [
    ("iss", "https://other.example", "CI_SERVER_URL"),
    ("project_path", "grp/sub/other", "CI_PROJECT_PATH"),
    ("project_id", "1", "CI_PROJECT_ID"),
    ("namespace_path", "grp", "CI_PROJECT_NAMESPACE"),
    ("sha", "f" * 40, "CI_COMMIT_SHA"),
    ("ref", "v9", "CI_COMMIT_REF_NAME"),
    ("ref_type", "branch", "CI_COMMIT_TAG"),
    ("pipeline_source", "web", "CI_PIPELINE_SOURCE"),
    ("pipeline_id", "1", "CI_PIPELINE_ID"),
    ("job_id", "1", "CI_JOB_ID"),
    ("runner_id", "13", "CI_RUNNER_ID"),
    ("ci_config_ref_uri", "gitlab.example/grp/sub/app//other.yml@refs/tags/v1.2.0",
     "CI_CONFIG_PATH"),
    ("project_visibility", "private", "CI_PROJECT_VISIBILITY"),
])
def test_a_claim_contradicting_a_variable_is_refused(claim: str, value: Any,
                                                     variable: str) -> None:
    with pytest.raises(InputError, match=f"{variable} contradicts the identity token's {claim}"):
        gitlab_run(ENV, {**CLAIMS, claim: value})


@pytest.mark.parametrize("claims, match", [
    ({"iss": SERVER, "email": "a@b.example"}, "not a GitLab CI token"),
    ({**CLAIMS, "ci_config_ref_uri": None}, "no ci_config_ref_uri"),
    ({**CLAIMS, "runner_environment": "github-hosted"}, "runner_environment"),
    ({**CLAIMS, "ci_config_sha": "nothex"}, "ci_config_sha"),
])
def test_unusable_tokens_are_refused(claims: dict[str, Any], match: str) -> None:
    with pytest.raises(InputError, match=match):
        gitlab_run(ENV, claims)


@pytest.mark.parametrize("change, error, match", [
    ({"CI_RUNNER_ID": ""}, UsageError, "CI_RUNNER_ID is not set"),
    ({"CI_SERVER_URL": "ftp://gitlab.example"}, UsageError, "CI_SERVER_URL"),
    ({"CI_PROJECT_PATH": "noslash"}, UsageError, "CI_PROJECT_PATH is malformed"),
    ({"CI_PROJECT_NAMESPACE": "other"}, InputError, "CI_PROJECT_NAMESPACE"),
    ({"CI_COMMIT_TAG": "v2"}, InputError, "CI_COMMIT_TAG"),
    ({"CI_COMMIT_SHA": "XYZ"}, UsageError, "CI_COMMIT_SHA is malformed"),
    ({"CI_JOB_URL": f"{SERVER}/grp/sub/app/-/jobs/1"}, InputError, "CI_JOB_URL"),
    ({"CI_CONFIG_PATH": "ci.yml@grp/other"}, UsageError, "CI_CONFIG_PATH"),
    ({"CI_CONFIG_PATH": "../x.yml"}, UsageError, "CI_CONFIG_PATH"),
    ({"CI_COMMIT_REF_NAME": "a b", "CI_COMMIT_TAG": ""}, UsageError, "CI_COMMIT_REF_NAME"),
])
def test_bad_variables_are_refused(change: dict[str, str], error: type[Exception],
                                   match: str) -> None:
    with pytest.raises(error, match=match):
        gitlab_run({**ENV, **change}, CLAIMS)


def test_missing_variables_are_all_named() -> None:
    with pytest.raises(UsageError, match="CI_JOB_ID, CI_JOB_URL") as info:
        gitlab_run({k: v for k, v in ENV.items() if k not in ("CI_JOB_ID", "CI_JOB_URL")}, None)
    assert "not in a GitLab CI job" in str(info.value)
