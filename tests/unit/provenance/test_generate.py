"""sealtrail.provenance.generate: subjects as slsa-github-generator and actions/attest take them,
and actions/attest's SLSA v1 predicate from a fixed GitHub Actions environment, each rule shown
failing. The signed round trip is tests/integration/test_attest_provenance.py."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from sealtrail.errors import InputError, UsageError
from sealtrail.models.intoto import Statement
from sealtrail.provenance import generate as g
from sealtrail.provenance.intoto_predicates import parse_provenance

A = "a" * 64
B = "B" * 64
SHA = "0123456789abcdef0123456789abcdef01234567"
REPO = "octo-org/octo.repo"
REF = "refs/tags/v1.0.0"
ENV = {
    "GITHUB_SERVER_URL": "https://github.example.com/",
    "GITHUB_REPOSITORY": REPO,
    "GITHUB_REF": REF,
    "GITHUB_SHA": SHA,
    "GITHUB_WORKFLOW_REF": f"{REPO}/.github/workflows/release.yml@{REF}",
    "GITHUB_EVENT_NAME": "push",
    "GITHUB_EVENT_PATH": "/home/runner/work/_temp/_github_workflow/event.json",
    "GITHUB_RUN_ID": "123456",
    "GITHUB_RUN_ATTEMPT": "3",
    "GITHUB_REPOSITORY_ID": "98765",
    "GITHUB_REPOSITORY_OWNER_ID": "4321",
    "RUNNER_ENVIRONMENT": "github-hosted",
}
PAYLOAD = json.dumps({"ref": REF, "repository": {"full_name": REPO, "id": 98765}}).encode()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# -- subjects ----------------------------------------------------------------------------------


def test_base64_subjects() -> None:
    text = f"{A}  dist/app.tar.gz\n{B}\t  app.whl  \n\n"
    assert g.parse_base64_subjects(b64(text)) == [
        g.Subject("dist/app.tar.gz", {"sha256": A}),
        g.Subject("app.whl", {"sha256": B.lower()}),  # lowercased, name trimmed
    ]
    # The first space or tab splits: the rest (spaces included) is the name.
    assert g.parse_base64_subjects(b64(f"{A} my file.bin"))[0].name == "my file.bin"


@pytest.mark.parametrize("text, message", [
    (None, "is not base64"),
    (f"{A}\n", "has no name after its hash"),
    (f"{A[:-1]}  x\n", "is not a SHA-256 digest"),
    (f"{'g' * 64}  x\n", "is not a SHA-256 digest"),
    (f"{A}0  x\n", "is not a SHA-256 digest"),
    (f"{A}  x\n{B}  x\n", "names 'x' twice"),
    (f"{A}  x\n{B}   x \n", "names 'x' twice"),  # trimmed before comparing
    ("\n\n", "holds no subject"),
])
def test_base64_subjects_refused(text: str | None, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        g.parse_base64_subjects("not base64!" if text is None else b64(text))


def test_checksums_file() -> None:
    text = f"{A}  app.tar.gz\r\n\n{B} *app.whl\n{'c' * 128}  app.zip\n"
    assert g.parse_checksums(text, "SUMS") == [
        g.Subject("app.tar.gz", {"sha256": A}),
        g.Subject("app.whl", {"sha256": B.lower()}),  # binary-mode '*' dropped
        g.Subject("app.zip", {"sha512": "c" * 128}),
    ]


@pytest.mark.parametrize("text, message", [
    (f"{A}\n", "SUMS line 1 has no name"),
    (f"{A}  a\n{'d' * 63}  b\n", "SUMS line 2: the hash is not"),
    (f"{A}  a\n{A}  *a\n", "SUMS names 'a' twice"),
    ("", "SUMS holds no subject"),
])
def test_checksums_file_refused(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        g.parse_checksums(text, "SUMS")


def test_merge_subjects() -> None:
    one = g.Subject("a", {"sha256": A})
    assert g.merge_subjects([[one], [one, g.Subject("b", {"sha256": A})]]) == [
        one, g.Subject("b", {"sha256": A})]
    with pytest.raises(UsageError, match="two different subjects are named 'a'"):
        g.merge_subjects([[one], [g.Subject("a", {"sha256": B})]])
    with pytest.raises(UsageError, match="no subjects"):
        g.merge_subjects([[], []])
    many = [g.Subject(str(i), {"sha256": A}) for i in range(g.MAX_SUBJECTS)]
    assert len(g.merge_subjects([many])) == g.MAX_SUBJECTS
    with pytest.raises(UsageError, match="too many subjects"):
        g.merge_subjects([many, [g.Subject("one more", {"sha256": A})]])


# -- the run -----------------------------------------------------------------------------------


def claims(**changes: Any) -> dict[str, Any]:
    """A GitHub workflow token's claims agreeing with ENV."""
    return {"iss": "https://token.actions.githubusercontent.com", "repository": REPO,
            "ref": REF, "sha": SHA, "workflow_ref": ENV["GITHUB_WORKFLOW_REF"],
            "job_workflow_ref": ENV["GITHUB_WORKFLOW_REF"], "event_name": "push",
            "run_id": "123456", "run_attempt": "3", "repository_id": "98765",
            "repository_owner_id": "4321", "runner_environment": "github-hosted", **changes}


def test_missing_variables_are_named_at_once() -> None:
    env = {k: v for k, v in ENV.items() if k not in ("GITHUB_SHA", "RUNNER_ENVIRONMENT")}
    env["GITHUB_RUN_ID"] = ""
    assert g.missing_github_variables(env) == ["GITHUB_SHA", "GITHUB_RUN_ID",
                                               "RUNNER_ENVIRONMENT"]
    with pytest.raises(UsageError, match="GITHUB_SHA, GITHUB_RUN_ID, RUNNER_ENVIRONMENT are not "
                                         "set"):
        g.github_run(env, PAYLOAD, None)
    assert g.missing_github_variables(ENV) == []


@pytest.mark.parametrize("name, value, message", [
    ("GITHUB_SERVER_URL", "http://github.com", "not an https:// server URL"),
    ("GITHUB_SERVER_URL", "https://github.com/path", "not an https:// server URL"),
    ("GITHUB_REPOSITORY", "octo-org", "GITHUB_REPOSITORY is malformed"),
    ("GITHUB_REF", "v1.0.0", "GITHUB_REF is malformed"),
    ("GITHUB_SHA", SHA.upper(), "GITHUB_SHA is malformed"),
    ("GITHUB_WORKFLOW_REF", f"{REPO}/.github/workflows/release.yml", "GITHUB_WORKFLOW_REF is "
                                                                     "malformed"),
    ("GITHUB_EVENT_NAME", "push; rm", "GITHUB_EVENT_NAME is malformed"),
    ("GITHUB_RUN_ID", "12a", "GITHUB_RUN_ID is malformed"),
    ("GITHUB_RUN_ATTEMPT", "0", "GITHUB_RUN_ATTEMPT is malformed"),
    ("GITHUB_REPOSITORY_ID", "-1", "GITHUB_REPOSITORY_ID is malformed"),
    ("GITHUB_REPOSITORY_OWNER_ID", "x", "GITHUB_REPOSITORY_OWNER_ID is malformed"),
    ("RUNNER_ENVIRONMENT", "laptop", "RUNNER_ENVIRONMENT is malformed"),
])
def test_malformed_variables(name: str, value: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        g.github_run({**ENV, name: value}, PAYLOAD, None)


def test_the_workflow_must_be_the_repositorys() -> None:
    with pytest.raises(InputError, match="another repository than GITHUB_REPOSITORY"):
        g.github_run({**ENV, "GITHUB_WORKFLOW_REF": "evil/repo/.github/workflows/x.yml@"
                                                    + REF}, PAYLOAD, None)


@pytest.mark.parametrize("claim, variable", [
    ("repository", "GITHUB_REPOSITORY"), ("ref", "GITHUB_REF"), ("sha", "GITHUB_SHA"),
    ("workflow_ref", "GITHUB_WORKFLOW_REF"), ("event_name", "GITHUB_EVENT_NAME"),
    ("run_id", "GITHUB_RUN_ID"), ("run_attempt", "GITHUB_RUN_ATTEMPT"),
    ("repository_id", "GITHUB_REPOSITORY_ID"),
    ("repository_owner_id", "GITHUB_REPOSITORY_OWNER_ID"),
    ("runner_environment", "RUNNER_ENVIRONMENT"),
])
def test_a_variable_contradicting_the_token_is_refused(claim: str, variable: str) -> None:
    g.github_run(ENV, PAYLOAD, claims())  # agreeing: accepted
    with pytest.raises(InputError, match=f"{variable} contradicts the identity token's "
                                         f"{claim} claim"):
        g.github_run(ENV, PAYLOAD, claims(**{claim: "something-else"}))


def test_a_token_that_is_not_a_workflow_token_is_refused() -> None:
    email = {"iss": "https://oauth2.sigstore.dev/auth", "email": "dev@example.com"}
    with pytest.raises(InputError, match="not a GitHub Actions workflow token"):
        g.github_run(ENV, PAYLOAD, email)


def test_claims_as_numbers_and_absent_claims() -> None:
    run = g.github_run(ENV, PAYLOAD, claims(run_id=123456, repository_id=98765))
    assert run.run_id == "123456"
    # A claim the token lacks cannot contradict (only what both say is compared).
    partial = {k: v for k, v in claims().items() if k not in ("sha", "job_workflow_ref")}
    assert g.github_run(ENV, PAYLOAD, partial).job_workflow_ref == ENV["GITHUB_WORKFLOW_REF"]


def test_the_job_workflow_comes_from_the_token() -> None:
    reusable = "octo-org/builders/.github/workflows/build.yml@refs/tags/v2"
    assert g.github_run(ENV, PAYLOAD, None).job_workflow_ref == ENV["GITHUB_WORKFLOW_REF"]
    assert g.github_run(ENV, PAYLOAD, claims(job_workflow_ref=reusable)).job_workflow_ref \
        == reusable
    with pytest.raises(InputError, match="job_workflow_ref claim is malformed"):
        g.github_run(ENV, PAYLOAD, claims(job_workflow_ref="no-ref"))


@pytest.mark.parametrize("payload, message", [
    (b"{", "is not JSON"),
    (b"[]", "is not a JSON object"),
    (json.dumps({"repository": {"full_name": "octo-org/other"}}).encode(),
     "its repository.full_name"),
    (json.dumps({"repository": {"id": 1}}).encode(), "its repository.id"),
    (json.dumps({"ref": "refs/heads/main"}).encode(), "its ref"),
])
def test_event_payload_refused(payload: bytes, message: str) -> None:
    with pytest.raises((UsageError, InputError), match=message):
        g.github_run(ENV, payload, None)


def test_the_repositorys_visibility_comes_from_the_payload() -> None:
    assert g.github_run(ENV, PAYLOAD, None).visibility == ""
    private = json.dumps({"repository": {"full_name": REPO, "visibility": "private"}}).encode()
    assert g.github_run(ENV, private, None).visibility == "private"


def test_event_payload_of_other_events_is_not_held_to_a_ref() -> None:
    # A release event's payload has no ref of its own to compare.
    env = {**ENV, "GITHUB_EVENT_NAME": "release"}
    assert g.github_run(env, json.dumps({"ref": "x"}).encode(), None).event_name == "release"
    with pytest.raises(InputError, match="its ref"):
        g.github_run(ENV, json.dumps({"ref": "x"}).encode(), None)


# -- the statement -----------------------------------------------------------------------------


def test_the_predicate_field_by_field() -> None:
    run = g.github_run(ENV, PAYLOAD, claims(
        job_workflow_ref="octo-org/builders/.github/workflows/build.yml@refs/tags/v2"))
    predicate = g.github_predicate(run)
    definition, details = predicate["buildDefinition"], predicate["runDetails"]
    assert set(predicate) == {"buildDefinition", "runDetails"}
    assert definition["buildType"] == "https://actions.github.io/buildtypes/workflow/v1"
    assert definition["externalParameters"] == {"workflow": {
        "ref": REF, "repository": f"https://github.example.com/{REPO}",  # trailing / dropped
        "path": ".github/workflows/release.yml"}}
    assert definition["internalParameters"] == {"github": {
        "event_name": "push", "repository_id": "98765", "repository_owner_id": "4321",
        "runner_environment": "github-hosted"}}
    assert definition["resolvedDependencies"] == [
        {"uri": f"git+https://github.example.com/{REPO}@{REF}", "digest": {"gitCommit": SHA}}]
    assert set(definition) == {"buildType", "externalParameters", "internalParameters",
                               "resolvedDependencies"}
    assert details == {
        "builder": {"id": "https://github.example.com/octo-org/builders/.github/workflows/"
                          "build.yml@refs/tags/v2"},
        "metadata": {"invocationId": f"https://github.example.com/{REPO}/actions/runs/123456/"
                                     "attempts/3"}}


def test_the_workflow_path_drops_only_the_repository_prefix() -> None:
    # SPEC: provenance.ts: workflow_ref.replace(`${repository}/`, '').split('@')[0]
    env = {**ENV, "GITHUB_REPOSITORY": "o/r", "GITHUB_WORKFLOW_REF":
           "o/r/.github/workflows/o/r/x.yml@refs/heads/a@b"}
    run = g.github_run(env, b"{}", None)
    assert g.github_predicate(run)["buildDefinition"]["externalParameters"]["workflow"][
        "path"] == ".github/workflows/o/r/x.yml"


def test_the_statement_reads_back_as_slsa_provenance() -> None:
    run = g.github_run(ENV, PAYLOAD, claims())
    subjects = [g.Subject("app.tar.gz", {"sha256": A}), g.Subject("app.zip", {"sha512": "c" * 128})]
    payload = g.provenance_statement(subjects, g.github_predicate(run))
    data = json.loads(payload)
    assert list(data) == ["_type", "subject", "predicateType", "predicate"]
    assert data["_type"] == "https://in-toto.io/Statement/v1"
    assert data["subject"] == [{"name": "app.tar.gz", "digest": {"sha256": A}},
                               {"name": "app.zip", "digest": {"sha512": "c" * 128}}]
    provenance = parse_provenance(Statement.from_payload(payload))
    assert provenance.builder_id == f"https://github.example.com/{ENV['GITHUB_WORKFLOW_REF']}"
    assert provenance.trigger_uri() == f"git+https://github.example.com/{REPO}@{REF}"
    assert provenance.github().ref_type == "tag" and provenance.source_commit() == SHA
    with pytest.raises(UsageError, match="at least one subject"):
        g.provenance_statement([], g.github_predicate(run))


# -- a local build -----------------------------------------------------------------------------


@pytest.mark.parametrize("remote, expected", [
    ("https://github.com/o/r.git", "https://github.com/o/r.git"),
    ("https://user:ghp_token@github.com/o/r.git", "https://github.com/o/r.git"),
    ("https://ghp_token@git.example.com:8443/o/r?x=1#f", "https://git.example.com:8443/o/r"),
    ("ssh://git@github.com:22/o/r.git", "ssh://git@github.com:22/o/r.git"),
    ("ssh://git:pw@github.com/o/r.git", "ssh://git@github.com/o/r.git"),
    ("git@github.com:o/r.git", "ssh://git@github.com/o/r.git"),
    ("github.com:o/r.git", "ssh://github.com/o/r.git"),
    ("git://git.example.com/r.git", "git://git.example.com/r.git"),
])
def test_source_repository(remote: str, expected: str) -> None:
    assert g.source_repository(remote) == expected


@pytest.mark.parametrize("remote", ["/srv/git/r.git", "../r", "file:///srv/git/r.git",
                                    "C:/git/r", "", "https://exa mple.com/r"])
def test_source_repository_refused(remote: str) -> None:
    with pytest.raises(UsageError):
        g.source_repository(remote)


LOCAL = g.LocalBuild("git@github.com:o/r.git", "refs/heads/main", SHA, False, "build-box")


def test_local_predicate() -> None:
    predicate = g.local_predicate(LOCAL)
    assert predicate == {
        "buildDefinition": {
            "buildType": g.LOCAL_BUILD_TYPE,
            "externalParameters": {"source": {"repository": "ssh://git@github.com/o/r.git",
                                              "ref": "refs/heads/main", "dirty": False}},
            "internalParameters": {"platform": "local", "isolated": False, "slsaBuildLevel": 1},
            "resolvedDependencies": [{"uri": "git+ssh://git@github.com/o/r.git@refs/heads/main",
                                      "digest": {"gitCommit": SHA}}],
        },
        "runDetails": {"builder": {"id": "urn:sealtrail:builder:local:build-box"}},
    }
    detached = g.local_predicate(LOCAL._replace(ref="", dirty=True))
    assert detached["buildDefinition"]["externalParameters"]["source"]["dirty"] is True
    assert detached["buildDefinition"]["resolvedDependencies"][0]["uri"].endswith("@" + SHA)
    provenance = parse_provenance(Statement.from_payload(
        g.provenance_statement([g.Subject("a", {"sha256": A})], predicate)))
    assert provenance.build_type == g.LOCAL_BUILD_TYPE
    assert provenance.source_commit() == SHA


@pytest.mark.parametrize("change, message", [
    ({"commit": "HEAD"}, "the commit is not a git object id"),
    ({"ref": "main"}, "the ref is malformed"),
    ({"host": "-bad host"}, "the host name is malformed"),
    ({"repository": "/srv/r.git"}, "not a network URL"),
])
def test_local_predicate_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        g.local_predicate(LOCAL._replace(**change))
