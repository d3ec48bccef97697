"""GitLab CI tokens from the built-in issuer, through the CA, to certificate extensions.

The token is minted by :class:`BuiltinIssuer`, verified by the CA's :class:`TokenVerifier` as
the instance configures its GitLab issuer (typed gitlab-pipeline, the issuer URL as the server
URL) and issued a certificate; each Fulcio extension is then read from the certificate by OID.
SPEC: shared/reference/provenance-formats.md §3 (the GitLab mapping, the ``//`` in the config
URI); Fulcio docs/oid-info.md (.1 raw, .8 on DER UTF8String).
"""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from sealtrail.ca.token_verifier import IssuerConfig, TokenVerifier
from sealtrail.errors import InputError, UsageError
from sealtrail.issuer import BuiltinIssuer, TokenRequest, create_issuer_key
from tests.unit.ca._support import NOW, make_ca

URL = "http://127.0.0.1:8080/oidc/gitlab"
SERVER = "127.0.0.1:8080/oidc/gitlab"
SHA = "0123456789abcdef0123456789abcdef01234567"
CONFIG_SHA = "89abcdef0123456789abcdef0123456789abcdef"
ARC = "1.3.6.1.4.1.57264.1."


@pytest.fixture(scope="module")
def issuer() -> BuiltinIssuer:
    return BuiltinIssuer(URL, create_issuer_key(), clock=lambda: NOW.timestamp())


def claims_of(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def certificate_extensions(issuer: BuiltinIssuer, token: str) -> dict[str, str]:
    """Verify ``token`` as the instance's CA does and read the leaf's Fulcio extensions."""
    local = {issuer.discovery_url: issuer.discovery(browser_login=False),
             issuer.issuer_url + "/jwks": issuer.jwks()}
    verifier = TokenVerifier([IssuerConfig(URL, "gitlab-pipeline", ci_base_url=URL)],
                             local.__getitem__, clock=lambda: NOW.timestamp())
    who = verifier.verify(token)
    leaf = make_ca().authority.issue(ec.generate_private_key(ec.SECP256R1()).public_key(),
                                     who)[0]
    found: dict[str, str] = {}
    for ext in leaf.extensions:
        oid = ext.oid.dotted_string
        if oid.startswith(ARC):
            raw = ext.value.value
            arc = int(oid[len(ARC):])
            found[oid[len(ARC):]] = (raw.decode() if arc < 8
                                     else str(core.UTF8String.load(raw).native))
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    found["san"] = san.get_values_for_type(x509.UniformResourceIdentifier)[0]
    return found


def test_tag_pipeline_certificate_carries_every_gitlab_extension(issuer: BuiltinIssuer) -> None:
    token = issuer.mint_gitlab_pipeline(
        project="grp/sub/app", ref="refs/tags/v1.2.0", sha=SHA, ci_config_sha=CONFIG_SHA,
        project_id=4242, namespace_id=77, job_id=9001, pipeline_id=555,
        project_visibility="internal", runner_environment="self-hosted",
        pipeline_source="web", environment="production")
    config = f"https://{SERVER}/grp/sub/app//.gitlab-ci.yml@refs/tags/v1.2.0"
    assert certificate_extensions(issuer, token) == {
        "san": config,
        "1": URL,  # issuer (raw)
        "8": URL,  # issuer (DER)
        "9": config,  # build signer URI = SAN, with the //
        "10": CONFIG_SHA,
        "11": "self-hosted",
        "12": f"{URL}/grp/sub/app",
        "13": SHA,
        "14": "refs/tags/v1.2.0",
        "15": "4242",
        "16": f"{URL}/grp/sub",
        "17": "77",
        "18": config,
        "19": CONFIG_SHA,
        "20": "web",
        "21": f"{URL}/grp/sub/app/-/jobs/9001",
        "22": "internal",
        "23": "production",
        "24": "project_path:grp/sub/app:ref_type:tag:ref:v1.2.0",
    }


def test_branch_pipeline_without_environment(issuer: BuiltinIssuer) -> None:
    token = issuer.mint_gitlab_pipeline(project="g/p", ref="main", sha=SHA,
                                        ci_config_path="ci/release.yml")
    claims = claims_of(token)
    assert claims["ref_type"] == "branch" and claims["ref"] == "main"
    assert claims["ci_config_ref_uri"] == f"{SERVER}/g/p//ci/release.yml@refs/heads/main"
    assert claims["ci_config_sha"] == SHA  # the config is the project's own at the commit
    assert claims["sub"] == "project_path:g/p:ref_type:branch:ref:main"
    ext = certificate_extensions(issuer, token)
    assert ext["14"] == "refs/heads/main"
    assert ext["san"] == f"https://{SERVER}/g/p//ci/release.yml@refs/heads/main"
    assert "23" not in ext  # no environment claim, no Deployment Environment extension
    # Fulcio's GitLab type has no legacy GitHub extensions.
    assert not {"2", "3", "4", "5", "6"} & set(ext)


def test_claims_as_gitlab_id_tokens_carry_them(issuer: BuiltinIssuer) -> None:
    claims = claims_of(issuer.mint_gitlab_pipeline(project="g/p", ref="refs/tags/v1", sha=SHA))
    for name in ("project_path", "namespace_path", "ref", "ref_type", "sha", "pipeline_source",
                 "ci_config_ref_uri", "ci_config_sha", "runner_environment", "project_id",
                 "namespace_id", "job_id", "pipeline_id", "project_visibility", "iss", "aud"):
        assert claims.get(name), name
    assert (claims["project_path"], claims["namespace_path"]) == ("g/p", "g")
    assert claims["iss"] == URL and claims["aud"] == "sigstore"


@pytest.mark.parametrize("arguments, match", [
    ({"project": "nogroup"}, "group/project"),
    ({"project": "g/../p"}, "group/project"),
    ({"sha": "XYZ"}, "commit id"),
    ({"ref_type": "merge"}, "ref_type"),
    ({"pipeline_source": "bogus"}, "pipeline_source"),
    ({"runner_environment": "github-hosted"}, "runner_environment"),
    ({"ci_config_path": "../x.yml"}, "path"),
])
def test_bad_arguments_are_refused(issuer: BuiltinIssuer, arguments: dict[str, Any],
                                   match: str) -> None:
    base: dict[str, Any] = {"project": "g/p", "ref": "main", "sha": SHA}
    with pytest.raises(UsageError, match=match):
        issuer.mint_gitlab_pipeline(**{**base, **arguments})


def test_http_request_kind(issuer: BuiltinIssuer) -> None:
    request = TokenRequest.from_json({"kind": "gitlab-pipeline", "project": "g/p",
                                      "ref": "refs/tags/v1", "sha": SHA, "job_id": "12"})
    claims = claims_of(issuer.mint(request))
    assert (claims["ref"], claims["ref_type"], claims["job_id"]) == ("v1", "tag", "12")
    with pytest.raises(InputError, match="unknown members"):
        TokenRequest.from_json({"kind": "gitlab-pipeline", "project": "g/p", "ref": "refs/tags/v1",
                                "sha": SHA, "repository": "o/r"})
