"""Tests for token endpoint request parsing (sealtrail.issuer.request.TokenRequest)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail.errors import InputError
from sealtrail.issuer import DEFAULT_LIFETIME, TokenRequest, parse_token_request

SHA = "0123456789abcdef0123456789abcdef01234567"
WORKFLOW = {"kind": "github-workflow", "repository": "octo-org/app",
            "workflow": ".github/workflows/release.yml", "ref": "refs/tags/v1.0.0", "sha": SHA}


def test_an_email_request_parses_with_defaults() -> None:
    request = TokenRequest.from_json({"kind": "email", "email": "alice@example.com"})
    assert request.kind == "email"
    assert dict(request.arguments) == {"email": "alice@example.com"}
    assert (request.audience, request.lifetime) == ("sigstore", DEFAULT_LIFETIME)


def test_a_workflow_request_maps_members_to_mint_arguments() -> None:
    request = parse_token_request({**WORKFLOW, "workflow_name": "Release", "run_attempt": 2,
                                   "environment": "prod", "audience": "aud-1", "lifetime": 90})
    assert request.kind == "github-workflow"
    assert dict(request.arguments) == {
        "repository": "octo-org/app", "workflow_path": ".github/workflows/release.yml",
        "ref": "refs/tags/v1.0.0", "sha": SHA, "workflow_name": "Release", "run_attempt": "2",
        "environment": "prod"}
    assert (request.audience, request.lifetime) == ("aud-1", 90)


def test_the_parsed_arguments_cannot_be_changed() -> None:
    request = TokenRequest.from_json({"kind": "email", "email": "alice@example.com"})
    with pytest.raises(TypeError):
        request.arguments["email"] = "mallory@example.com"  # type: ignore[index]


@pytest.mark.parametrize("body, fragment", [
    ([], "JSON object"),
    ("email", "JSON object"),
    (None, "JSON object"),
    ({}, "needs a 'kind'"),
    ({"email": "a@example.com"}, "needs a 'kind'"),
    ({"kind": "saml"}, "unknown token kind"),
    ({"kind": 1}, "unknown token kind"),
    ({"kind": ["email"]}, "unknown token kind"),
    ({"kind": "email"}, "needs email"),
    ({"kind": "email", "email": "a@example.com", "emial_verified": True}, "unknown members"),
    ({"kind": "email", "email": "a@example.com", "repository": "octo/app"}, "unknown members"),
    ({**WORKFLOW, "email": "a@example.com"}, "unknown members"),
    ({**WORKFLOW, "workflow_path": ".github/workflows/x.yml"}, "unknown members"),
    ({"kind": "github-workflow", "repository": "octo/app"}, "needs workflow, ref, sha"),
    ({**WORKFLOW, "sha": "short"}, "sha"),
    ({**WORKFLOW, "ref": "main"}, "ref"),
    ({**WORKFLOW, "repository": "x"}, "repository"),
    ({**WORKFLOW, "workflow": "../x.yml"}, "workflow path"),
    ({**WORKFLOW, "run_id": "12x"}, "run_id"),
    ({**WORKFLOW, "repository_visibility": "hidden"}, "repository_visibility"),
    ({**WORKFLOW, "job_workflow_ref": "nope"}, "job_workflow_ref"),
    ({"kind": "email", "email": "not-an-email"}, "email"),
    ({"kind": "email", "email": "a@example.com", "email_verified": "yes"}, "email_verified"),
    ({"kind": "email", "email": "a@example.com", "audience": ""}, "audience"),
    ({"kind": "email", "email": "a@example.com", "lifetime": 0}, "lifetime"),
    ({"kind": "email", "email": "a@example.com", "lifetime": 10**9}, "lifetime"),
    ({"kind": "email", "email": "a@example.com", "lifetime": "60"}, "lifetime"),
    ({"kind": "email", "email": "x" * 10_000 + "@example.com"}, "too long"),
])
def test_malformed_requests_are_refused_with_one_line(body: Any, fragment: str) -> None:
    with pytest.raises(InputError) as info:
        TokenRequest.from_json(body)
    assert info.value.code == "INPUT_INVALID"
    assert fragment in info.value.message
    text = info.value.diagnostics()
    assert "\n" not in text and len(text) < 400


def test_unknown_member_names_are_evidence_not_message() -> None:
    long_name = "z" * 5000
    with pytest.raises(InputError) as info:
        TokenRequest.from_json({"kind": "email", "email": "a@example.com", long_name: 1})
    assert long_name not in info.value.message
    assert info.value.actual == [long_name]
    assert len(info.value.diagnostics()) < 400


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                  max_size=4),
    max_leaves=12)
_members = st.sampled_from(["kind", "email", "repository", "workflow", "ref", "sha", "audience",
                            "lifetime", "email_verified", "run_id", "actor"])


@settings(max_examples=150, deadline=None)
@given(st.one_of(_json, st.dictionaries(_members, _json, max_size=6),
                 st.fixed_dictionaries({"kind": st.sampled_from(["email", "github-workflow"])},
                                       optional={m: _json for m in ["email", "repository",
                                                                    "workflow", "ref", "sha",
                                                                    "lifetime"]})))
def test_arbitrary_json_is_parsed_or_refused_with_input_error(data: Any) -> None:
    try:
        request = TokenRequest.from_json(json.loads(json.dumps(data)))
    except InputError:
        return
    assert request.kind in ("email", "github-workflow")
