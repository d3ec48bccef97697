"""OIDC token validation: every check fails on its own with TokenInvalidError, and the
happy path of each issuer type yields the SAN, challenge and extensions Fulcio would."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from sealtrail.ca.identities import DER, RAW, ClaimExtension, IdentityType, utf8_der
from sealtrail.ca.token_verifier import IssuerConfig, TokenVerifier
from sealtrail.errors import ConfigInvalidError, TokenInvalidError
from tests.unit.ca._support import (
    NOW,
    TestIssuer,
    clock_at,
    email_claims,
    github_claims,
    gitlab_claims,
    unsigned_token,
)

ARC = "1.3.6.1.4.1.57264.1."


class Clock:
    """A settable time.time-like clock."""

    def __init__(self) -> None:
        self.now = NOW.timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def issuer() -> TestIssuer:
    return TestIssuer()


def make_verifier(issuer: TestIssuer, issuer_type: str = "email", clock: Any = None,
                  **config: Any) -> TokenVerifier:
    options = {k: config.pop(k) for k in list(config)
               if k in ("refetch_interval", "jwks_ttl", "failure_backoff", "identity_types",
                        "leeway")}
    return TokenVerifier([IssuerConfig(issuer.url, issuer_type, **config)], issuer.fetch_json,
                         clock=clock or clock_at(NOW), **options)


def rejects(verifier: TokenVerifier, token: str, match: str) -> TokenInvalidError:
    with pytest.raises(TokenInvalidError, match=match) as info:
        verifier.verify(token)
    assert info.value.code == "TOKEN_INVALID"
    # Never echo the token (or its signature) in an error.
    text = json.dumps(info.value.to_json())
    signature = token.rsplit(".", 1)[-1]
    assert token not in text
    assert not signature or signature not in text
    return info.value


# -- happy paths -------------------------------------------------------------------------------

def test_email_token_rs256(issuer: TestIssuer) -> None:
    principal = make_verifier(issuer).verify(issuer.mint(email_claims()))
    assert principal.issuer == issuer.url
    assert principal.issuer_type == "email"
    assert principal.subject == "user-1234"
    assert principal.challenge == "alice@example.com"  # email issuers: the email
    assert principal.alternate_challenges == ("user-1234",)  # what sigstore-js signs
    assert principal.san == ("email", "alice@example.com")
    assert principal.extensions[ARC + "1"] == issuer.url.encode()
    assert principal.extensions[ARC + "8"] == utf8_der(issuer.url)
    assert principal.extensions[ARC + "24"] == utf8_der("user-1234")
    assert list(principal.extensions) == [ARC + "1", ARC + "8", ARC + "24"]


def test_principal_to_json(issuer: TestIssuer) -> None:
    principal = make_verifier(issuer, "github-workflow").verify(issuer.mint(github_claims()))
    described = principal.to_json()
    assert described["san"] == {"kind": "uri", "value": principal.san.value}
    assert described["issuerType"] == "github-workflow"
    assert described["extensions"][ARC + "2"] == "push"  # raw
    assert described["extensions"][ARC + "20"] == "push"  # DER UTF8String
    assert described["extensions"][ARC + "1"] == issuer.url
    json.dumps(described)


def test_exact_issuer_wins_over_wildcard() -> None:
    exact = IssuerConfig("https://a.example.com", "email")
    wildcard = IssuerConfig("https://*.example.com", "uri", subject_domain="https://x.test")
    verifier = TokenVerifier([wildcard, exact], lambda url: {})
    assert verifier.issuer_for("https://a.example.com") is exact
    assert verifier.issuer_for("https://b.example.com") is wildcard


def test_es256_and_eddsa_keys(issuer: TestIssuer) -> None:
    issuer.add_key("ed-1", ed25519.Ed25519PrivateKey.generate(), "EdDSA")
    verifier = make_verifier(issuer)
    assert verifier.verify(issuer.mint(email_claims(), kid="ec-1")).san.kind == "email"
    assert verifier.verify(issuer.mint(email_claims(), kid="ed-1")).san.kind == "email"


def test_audience_list_and_leeway(issuer: TestIssuer) -> None:
    verifier = make_verifier(issuer)
    verifier.verify(issuer.mint(email_claims(), aud=["other", "sigstore"]))
    # Expired 30 s ago, issued 30 s in the future: within the 60 s leeway.
    stamp = int(NOW.timestamp())
    verifier.verify(issuer.mint(email_claims(), exp=stamp - 30, iat=stamp + 30, nbf=stamp + 30))


def test_github_workflow_principal(issuer: TestIssuer) -> None:
    principal = make_verifier(issuer, "github-workflow").verify(issuer.mint(github_claims()))
    workflow = "https://github.com/octo/hello/.github/workflows/release.yml@refs/tags/v1.0.0"
    assert principal.san == ("uri", workflow)
    assert principal.challenge == "repo:octo/hello:ref:refs/tags/v1.0.0"  # sub
    assert principal.alternate_challenges == ()
    ext = principal.extensions
    # SPEC: Fulcio oid-info.md: legacy .1.2-.1.6 raw, .1.9-.1.22 DER UTF8String.
    assert ext[ARC + "2"] == b"push"
    assert ext[ARC + "3"] == b"2222222222222222222222222222222222222222"
    assert ext[ARC + "4"] == b"Release"
    assert ext[ARC + "5"] == b"octo/hello"
    assert ext[ARC + "6"] == b"refs/tags/v1.0.0"
    expected_der = {
        9: workflow,
        10: "1111111111111111111111111111111111111111",
        11: "github-hosted",
        12: "https://github.com/octo/hello",
        13: "2222222222222222222222222222222222222222",
        14: "refs/tags/v1.0.0",
        15: "123456",
        16: "https://github.com/octo",
        17: "654321",
        18: workflow,
        19: "1111111111111111111111111111111111111111",
        20: "push",
        21: "https://github.com/octo/hello/actions/runs/987/attempts/2",
        22: "public",
        24: "repo:octo/hello:ref:refs/tags/v1.0.0",
    }
    for arc, value in expected_der.items():
        assert ext[ARC + str(arc)] == utf8_der(value), arc
    assert len(ext) == 2 + 5 + 14 + 1  # .1.1/.1.8, .1.2-.1.6, .1.9-.1.22, .1.24


def test_github_enterprise_base_url(issuer: TestIssuer) -> None:
    verifier = make_verifier(issuer, "github-workflow", ci_base_url="https://ghe.example.com")
    principal = verifier.verify(issuer.mint(github_claims()))
    assert principal.san.value.startswith("https://ghe.example.com/octo/hello/")


def test_gitlab_pipeline_principal() -> None:
    issuer = TestIssuer(url="https://gitlab.example.com")
    principal = make_verifier(issuer, "gitlab-pipeline").verify(issuer.mint(gitlab_claims()))
    config_uri = "https://gitlab.example.com/grp/proj//.gitlab-ci.yml@refs/heads/main"
    assert principal.san == ("uri", config_uri)
    ext = principal.extensions
    assert ext[ARC + "9"] == utf8_der(config_uri)
    assert ext[ARC + "12"] == utf8_der("https://gitlab.example.com/grp/proj")
    assert ext[ARC + "14"] == utf8_der("refs/heads/main")  # ref_type branch -> refs/heads/
    assert ext[ARC + "16"] == utf8_der("https://gitlab.example.com/grp")
    assert ext[ARC + "21"] == utf8_der("https://gitlab.example.com/grp/proj/-/jobs/5005")
    tag = make_verifier(issuer, "gitlab-pipeline").verify(
        issuer.mint(gitlab_claims(), ref_type="tag", ref="v2"))
    assert tag.extensions[ARC + "14"] == utf8_der("refs/tags/v2")


def test_uri_spiffe_username_principals(issuer: TestIssuer) -> None:
    uri = make_verifier(issuer, "uri", subject_domain="https://svc.example.com")
    principal = uri.verify(issuer.mint({"sub": "https://svc.example.com/builders/1"}))
    assert principal.san == ("uri", "https://svc.example.com/builders/1")
    assert principal.challenge == "https://svc.example.com/builders/1"

    spiffe = make_verifier(issuer, "spiffe", spiffe_trust_domain="example.org")
    principal = spiffe.verify(issuer.mint({"sub": "spiffe://example.org/ns/ci/sa/builder"}))
    assert principal.san == ("uri", "spiffe://example.org/ns/ci/sa/builder")

    username = make_verifier(issuer, "username", subject_domain="example.com")
    principal = username.verify(issuer.mint({"sub": "alice"}))
    assert principal.san == ("othername", "alice!example.com")
    assert principal.challenge == "alice"


def test_wildcard_issuer() -> None:
    issuer = TestIssuer(url="https://oidc.eu-west-1.example.com")
    verifier = TokenVerifier([IssuerConfig("https://oidc.*.example.com", "email")],
                             issuer.fetch_json, clock=clock_at(NOW))
    assert verifier.verify(issuer.mint(email_claims())).issuer == issuer.url
    config = IssuerConfig("https://oidc.*.example.com", "email")
    assert config.matches("https://oidc.us-1.example.com")
    assert not config.matches("https://oidc.a.b.example.com")  # * is one label
    assert not config.matches("https://oidc.a.example.com.evil.test")
    assert not config.matches("https://oidc.a/x.example.com")


def test_issuer_claim_overrides_issuer_extension(issuer: TestIssuer) -> None:
    verifier = make_verifier(issuer, issuer_claim="$.federated_claims.connector_id")
    token = issuer.mint({**email_claims(),
                         "federated_claims": {"connector_id": "https://github.com/login/oauth"}})
    principal = verifier.verify(token)
    assert principal.extensions[ARC + "1"] == b"https://github.com/login/oauth"
    assert principal.issuer == issuer.url
    rejects(verifier, issuer.mint(email_claims()), "issuer claim")


def test_custom_identity_type_is_data(issuer: TestIssuer) -> None:
    buildkite = IdentityType(
        name="buildkite-job", san_kind="uri",
        san_template="https://buildkite.com/{organization_slug}/{pipeline_slug}",
        required_claims=("organization_slug", "pipeline_slug", "build_number"),
        extensions=(ClaimExtension(ARC + "21", "https://buildkite.com/{organization_slug}/"
                                   "{pipeline_slug}/builds/{build_number}", DER),
                    ClaimExtension(ARC + "5", "{pipeline_slug}", RAW)))
    verifier = make_verifier(issuer, "buildkite-job", identity_types={"buildkite-job": buildkite})
    claims = {"sub": "org:acme:pipeline:app", "organization_slug": "acme",
              "pipeline_slug": "app", "build_number": 12}
    principal = verifier.verify(issuer.mint(claims))
    assert principal.san == ("uri", "https://buildkite.com/acme/app")
    assert principal.extensions[ARC + "21"] == utf8_der("https://buildkite.com/acme/app/builds/12")
    assert principal.extensions[ARC + "5"] == b"app"
    rejects(verifier, issuer.mint(claims, build_number=None), "build_number")


# -- time, audience, issuer --------------------------------------------------------------------

def test_expired(issuer: TestIssuer) -> None:
    token = issuer.mint(email_claims(), exp=int(NOW.timestamp()) - 61)
    error = rejects(make_verifier(issuer), token, r"token expired at 2026-11-21T09:58:59Z")
    assert error.actual == "2026-11-21T09:58:59Z"


def test_not_yet_valid(issuer: TestIssuer) -> None:
    token = issuer.mint(email_claims(), nbf=int(NOW.timestamp()) + 600)
    rejects(make_verifier(issuer), token, r"not valid before 2026-11-21T10:10:00Z")


def test_issued_in_the_future(issuer: TestIssuer) -> None:
    token = issuer.mint(email_claims(), iat=int(NOW.timestamp()) + 600)
    rejects(make_verifier(issuer), token, "issued in the future")


@pytest.mark.parametrize("claim", ["exp", "iat", "aud", "sub", "iss"])
def test_missing_standard_claim(issuer: TestIssuer, claim: str) -> None:
    token = issuer.mint(email_claims(), **{claim: None})
    rejects(make_verifier(issuer), token, f"no {'valid ' if claim == 'aud' else ''}{claim}")


@pytest.mark.parametrize("value", ["soon", True, [1]])
def test_exp_must_be_a_number(issuer: TestIssuer, value: Any) -> None:
    rejects(make_verifier(issuer), issuer.mint(email_claims(), exp=value),
            "exp claim must be a number")


def test_wrong_audience(issuer: TestIssuer) -> None:
    token = issuer.mint(email_claims(), aud="x")
    rejects(make_verifier(issuer), token, r"token audience \['x'\] does not include 'sigstore'")
    other = make_verifier(issuer, audience="my-instance")
    other.verify(issuer.mint(email_claims(), aud="my-instance"))


def test_unknown_issuer_fetches_nothing(issuer: TestIssuer) -> None:
    token = issuer.mint(email_claims(), iss="https://evil.test")
    rejects(make_verifier(issuer), token, "unknown issuer https://evil.test")
    assert issuer.fetches == []


def test_discovery_must_name_the_same_issuer(issuer: TestIssuer) -> None:
    issuer.discovery_issuer = "https://other.test"
    rejects(make_verifier(issuer), issuer.mint(email_claims()), "names another issuer")


def test_jwks_uri_must_be_https() -> None:
    issuer = TestIssuer(url="https://issuer.test")
    original = issuer.discovery
    issuer.discovery = lambda: {**original(), "jwks_uri": "http://issuer.test/jwks"}  # type: ignore[method-assign]
    rejects(make_verifier(issuer), issuer.mint(email_claims()), "no usable jwks_uri")


def test_fetch_failure_is_a_token_error_with_backoff(issuer: TestIssuer) -> None:
    calls = []

    def broken(url: str) -> Any:
        calls.append(url)
        raise OSError("connection refused")

    clock = Clock()
    verifier = TokenVerifier([IssuerConfig(issuer.url, "email")], broken, clock=clock)
    token = issuer.mint(email_claims())
    rejects(verifier, token, "cannot fetch the OIDC discovery document of issuer "
                             "https://issuer.test: connection refused")
    rejects(verifier, token, "not retrying")
    assert len(calls) == 1
    clock.now += 6
    rejects(verifier, token, "connection refused")
    assert len(calls) == 2


# -- signature and keys ------------------------------------------------------------------------

def test_bad_signature_other_key(issuer: TestIssuer) -> None:
    rogue = ec.generate_private_key(ec.SECP256R1())
    token = issuer.mint(email_claims(), kid="ec-1", sign_with=rogue)
    rejects(make_verifier(issuer), token, "signature does not verify")


def test_bad_signature_tampered_payload(issuer: TestIssuer) -> None:
    header, _, signature = issuer.mint(email_claims()).split(".")
    forged = base64.urlsafe_b64encode(json.dumps(
        {**email_claims("mallory@example.com"), "iss": issuer.url, "aud": "sigstore",
         "iat": int(NOW.timestamp()), "exp": int(NOW.timestamp()) + 60}).encode()).rstrip(b"=")
    rejects(make_verifier(issuer), f"{header}.{forged.decode()}.{signature}",
            "signature does not verify")


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none(issuer: TestIssuer, alg: str) -> None:
    payload = {**email_claims(), "iss": issuer.url, "aud": "sigstore",
               "iat": int(NOW.timestamp()), "exp": int(NOW.timestamp()) + 60}
    rejects(make_verifier(issuer), unsigned_token(payload, alg), r"not signed \(alg none\)")
    assert issuer.fetches == []


def test_hmac_is_refused(issuer: TestIssuer) -> None:
    # The algorithm-confusion attack: HS256 keyed with the issuer's public key material.
    token = jwt.encode({**email_claims(), "iss": issuer.url, "aud": "sigstore",
                        "iat": int(NOW.timestamp()), "exp": int(NOW.timestamp()) + 60},
                       "public-key-bytes-as-secret-000000", algorithm="HS256",
                       headers={"kid": "rsa-1"})
    rejects(make_verifier(issuer), token, "algorithm HS256 is not allowed")


def test_unknown_kid_refetches_once_then_fails(issuer: TestIssuer) -> None:
    clock = Clock()
    verifier = make_verifier(issuer, clock=clock, refetch_interval=30)
    verifier.verify(issuer.mint(email_claims()))
    assert len(issuer.fetches) == 2  # discovery + JWKS
    issuer.add_key("rsa-2", rsa.generate_private_key(65537, 2048), "RS256", publish=False)
    token = issuer.mint(email_claims(), kid="rsa-2")
    rejects(verifier, token, "unknown key id 'rsa-2' for issuer https://issuer.test")
    assert issuer.fetches[2:] == [issuer.jwks_uri]  # refetched the JWKS once
    rejects(verifier, token, "unknown key id")
    assert len(issuer.fetches) == 3  # rate-limited: no second refetch
    # The issuer rotates: the new key is published; after the interval it is picked up.
    issuer.published.append("rsa-2")
    clock.now += 31
    assert verifier.verify(token).san.value == "alice@example.com"
    assert len(issuer.fetches) == 4


def test_jwks_cache_expires(issuer: TestIssuer) -> None:
    clock = Clock()
    verifier = make_verifier(issuer, clock=clock, jwks_ttl=100)
    verifier.verify(issuer.mint(email_claims()))
    verifier.verify(issuer.mint(email_claims()))
    assert len(issuer.fetches) == 2
    clock.now += 101
    verifier.verify(issuer.mint(email_claims(), now=NOW + timedelta(seconds=101)))
    assert len(issuer.fetches) == 4


def test_key_type_must_match_algorithm(issuer: TestIssuer) -> None:
    # A P-384 key published as ES256 cannot verify ES256 (wrong curve).
    issuer.add_key("p384", ec.generate_private_key(ec.SECP384R1()), "ES384")
    issuer.keys["p384"] = (issuer.keys["p384"][0], "ES384")
    jwks = issuer.jwks()
    for key in jwks["keys"]:
        if key["kid"] == "p384":
            key.pop("alg")
    issuer.jwks = lambda: jwks  # type: ignore[method-assign]
    header = base64.urlsafe_b64encode(b'{"alg":"ES256","kid":"p384"}').rstrip(b"=").decode()
    body = issuer.mint(email_claims(), kid="p384").split(".")[1]
    rejects(make_verifier(issuer), f"{header}.{body}.AAAA", "no ES256 key")


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_small_rsa_jwks_key_is_refused(issuer: TestIssuer) -> None:
    issuer.add_key("rsa-small", rsa.generate_private_key(65537, 1024), "RS256")
    token = issuer.mint(email_claims(), kid="rsa-small")
    rejects(make_verifier(issuer), token, "no RS256 key")


def test_token_without_kid_tries_all_keys(issuer: TestIssuer) -> None:
    token = issuer.mint(email_claims(), kid=None)
    assert make_verifier(issuer).verify(token).challenge == "alice@example.com"


@pytest.mark.parametrize("token, match", [
    ("", "no identity token"),
    ("a.b", "not a compact JWT"),
    ("!!!.???.***", "does not parse"),
    ("x" * 70000, "too large"),
])
def test_malformed_tokens(issuer: TestIssuer, token: str, match: str) -> None:
    with pytest.raises(TokenInvalidError, match=match):
        make_verifier(issuer).verify(token)


def test_crit_header_is_refused(issuer: TestIssuer) -> None:
    token = issuer.mint(email_claims(), headers={"crit": ["exp"]})
    rejects(make_verifier(issuer), token, "critical")


def test_payload_must_be_an_object(issuer: TestIssuer) -> None:
    private, _ = issuer.keys["rsa-1"]
    token = jwt.PyJWS().encode(b"[1, 2]", private, algorithm="RS256", headers={"kid": "rsa-1"})
    rejects(make_verifier(issuer), token, "not a JSON object")


# -- claims per issuer type --------------------------------------------------------------------

def test_email_required(issuer: TestIssuer) -> None:
    rejects(make_verifier(issuer), issuer.mint(email_claims(), email=None),
            "lacks claims required for email issuers: email")


@pytest.mark.parametrize("verified", [False, "false", None])
def test_email_must_be_verified(issuer: TestIssuer, verified: Any) -> None:
    token = issuer.mint({**email_claims(), "email_verified": verified} if verified is not None
                        else {k: v for k, v in email_claims().items() if k != "email_verified"})
    rejects(make_verifier(issuer), token, "email is not verified")
    make_verifier(issuer, skip_email_verified=True).verify(token)


def test_email_verified_as_string_is_accepted(issuer: TestIssuer) -> None:
    make_verifier(issuer).verify(issuer.mint(email_claims(), email_verified="true"))


@pytest.mark.parametrize("email", ["not-an-email", "a@b@c", "élise@example.com", "a @x.com"])
def test_email_must_be_well_formed(issuer: TestIssuer, email: str) -> None:
    rejects(make_verifier(issuer), issuer.mint(email_claims(email)), "well-formed")


def test_github_missing_claims_are_listed(issuer: TestIssuer) -> None:
    token = issuer.mint(github_claims(), run_id=None, sha="")
    error = rejects(make_verifier(issuer, "github-workflow"), token,
                    "lacks claims required for github-workflow issuers: sha, run_id")
    assert error.actual == ["sha", "run_id"]


def test_claim_must_be_a_string(issuer: TestIssuer) -> None:
    token = issuer.mint(github_claims(), repository={"name": "x"})
    rejects(make_verifier(issuer, "github-workflow"), token, "claim repository must be a string")


def test_claim_without_control_characters(issuer: TestIssuer) -> None:
    token = issuer.mint(github_claims(), workflow="a\nb")
    rejects(make_verifier(issuer, "github-workflow"), token, "control characters")


def test_gitlab_unexpected_ref_type() -> None:
    issuer = TestIssuer(url="https://gitlab.example.com")
    token = issuer.mint(gitlab_claims(), ref_type="merge_request")
    rejects(make_verifier(issuer, "gitlab-pipeline"), token, "ref_type has an unexpected value")


def test_gitlab_missing_claims() -> None:
    issuer = TestIssuer(url="https://gitlab.example.com")
    token = issuer.mint(gitlab_claims(), ci_config_ref_uri=None)
    rejects(make_verifier(issuer, "gitlab-pipeline"), token, "ci_config_ref_uri")


@pytest.mark.parametrize("sub", ["https://other.example.com/x", "http://svc.example.com/x",
                                 "not a uri"])
def test_uri_subject_outside_domain(issuer: TestIssuer, sub: str) -> None:
    verifier = make_verifier(issuer, "uri", subject_domain="https://svc.example.com")
    rejects(verifier, issuer.mint({"sub": sub}), "subject domain|not a URI")


@pytest.mark.parametrize("sub, match", [
    ("spiffe://other.org/ns/x", "outside the issuer's trust domain"),
    ("spiffe://example.org", "not a SPIFFE ID"),
    ("spiffe://example.org/../x", "not a SPIFFE ID"),
    ("https://example.org/x", "not a SPIFFE ID"),
])
def test_spiffe_subject_checks(issuer: TestIssuer, sub: str, match: str) -> None:
    verifier = make_verifier(issuer, "spiffe", spiffe_trust_domain="example.org")
    rejects(verifier, issuer.mint({"sub": sub}), match)


def test_username_must_not_contain_bang(issuer: TestIssuer) -> None:
    verifier = make_verifier(issuer, "username", subject_domain="example.com")
    rejects(verifier, issuer.mint({"sub": "alice!evil.com"}), "must not contain '!'")


def test_non_ascii_uri_san_is_refused(issuer: TestIssuer) -> None:
    token = issuer.mint(github_claims(), job_workflow_ref="octo/hé/.github/workflows/x.yml@x")
    rejects(make_verifier(issuer, "github-workflow"), token, "must be ASCII")


# -- configuration -----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    ({"url": "http://issuer.example.com", "issuer_type": "email"}, "https"),
    ({"url": "ftp://x", "issuer_type": "email"}, "https"),
    ({"url": "https://x.test", "issuer_type": ""}, "issuer type"),
    ({"url": "https://x.test", "issuer_type": "email", "audience": ""}, "audience"),
    ({"url": "https://x.test", "issuer_type": "email", "issuer_claim": "federated"},
     "issuer_claim"),
])
def test_issuer_config_validation(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigInvalidError, match=match):
        IssuerConfig(**kwargs)


def test_issuer_config_loopback_http_is_allowed() -> None:
    IssuerConfig("http://127.0.0.1:8080/oidc", "email")


@pytest.mark.parametrize("config, match", [
    (IssuerConfig("https://x.test", "kubernetes"), "unknown type"),
    (IssuerConfig("https://x.test", "uri"), "needs subject_domain"),
    (IssuerConfig("https://x.test", "uri", subject_domain="example.com"), "URL like"),
    (IssuerConfig("https://x.test", "username", subject_domain="a!b"), "domain name"),
    (IssuerConfig("https://x.test", "spiffe"), "needs spiffe_trust_domain"),
])
def test_verifier_validates_issuers(config: IssuerConfig, match: str) -> None:
    with pytest.raises(ConfigInvalidError, match=match):
        TokenVerifier([config], lambda url: {})


def test_duplicate_issuer_is_refused() -> None:
    config = IssuerConfig("https://x.test", "email")
    with pytest.raises(ConfigInvalidError, match="twice"):
        TokenVerifier([config, config], lambda url: {})


def test_issuer_config_dict_round_trip() -> None:
    config = IssuerConfig("https://x.test", "uri", audience="aud",
                          subject_domain="https://x.test", skip_email_verified=True,
                          issuer_claim="$.a.b", ci_base_url="https://ci.test")
    assert IssuerConfig.from_dict(config.to_dict()) == config
    assert IssuerConfig.from_dict({"url": "https://x.test", "type": "email"}).audience == "sigstore"
    with pytest.raises(ConfigInvalidError, match="unknown issuer fields"):
        IssuerConfig.from_dict({"url": "https://x.test", "type": "email", "clientId": "x"})
    with pytest.raises(ConfigInvalidError, match="needs url and type"):
        IssuerConfig.from_dict({"url": "https://x.test"})


def test_identity_type_validation() -> None:
    with pytest.raises(ConfigInvalidError, match="SAN kind"):
        IdentityType(name="x", san_kind="dns", san_template="{sub}")
    with pytest.raises(ConfigInvalidError, match="malformed template"):
        IdentityType(name="x", san_kind="uri", san_template="{sub!r}")
    with pytest.raises(ConfigInvalidError, match="subject rule"):
        IdentityType(name="x", san_kind="uri", san_template="{sub}", subject_rule="magic")
    with pytest.raises(ConfigInvalidError, match="malformed extension"):
        IdentityType(name="x", san_kind="uri", san_template="{sub}",
                     extensions=(ClaimExtension("1.2.x", "{sub}"),))


# -- more single-field mutations ---------------------------------------------------------------

def test_payload_must_be_json(issuer: TestIssuer) -> None:
    private, _ = issuer.keys["rsa-1"]
    token = jwt.PyJWS().encode(b"not json", private, algorithm="RS256", headers={"kid": "rsa-1"})
    with pytest.raises(TokenInvalidError, match="payload is not JSON"):
        make_verifier(issuer).verify(token)


def test_kid_must_be_a_string(issuer: TestIssuer) -> None:
    # PyJWT will not encode such a header: forge it (the signature is never reached).
    body = issuer.mint(email_claims()).split(".")[1]
    header = base64.urlsafe_b64encode(b'{"alg":"RS256","kid":7}').rstrip(b"=").decode()
    rejects(make_verifier(issuer), f"{header}.{body}.AAAA", "Key ID|kid must be a string")


@pytest.mark.parametrize("aud", [[1], {"a": 1}, 5])
def test_audience_must_be_strings(issuer: TestIssuer, aud: Any) -> None:
    rejects(make_verifier(issuer), issuer.mint(email_claims(), aud=aud), "no valid aud")


@pytest.mark.parametrize("document, match", [
    ([], "OIDC discovery document of issuer https://issuer.test is not a JSON object"),
])
def test_discovery_must_be_an_object(issuer: TestIssuer, document: Any, match: str) -> None:
    issuer.discovery = lambda: document  # type: ignore[method-assign]
    rejects(make_verifier(issuer), issuer.mint(email_claims()), match)


@pytest.mark.parametrize("jwks", [{"keys": "x"}, {}, {"keys": [{}] * 101}])
def test_jwks_must_hold_a_bounded_key_list(issuer: TestIssuer, jwks: Any) -> None:
    issuer.jwks = lambda: jwks  # type: ignore[method-assign]
    rejects(make_verifier(issuer), issuer.mint(email_claims()), "no usable keys list")


def test_encryption_keys_are_not_used(issuer: TestIssuer) -> None:
    original = issuer.jwks

    def jwks() -> Any:
        data = original()
        for key in data["keys"]:
            key["use"] = "enc"
        return data

    issuer.jwks = jwks  # type: ignore[method-assign]
    rejects(make_verifier(issuer), issuer.mint(email_claims()), "unknown key id 'rsa-1'")


def test_jwk_alg_must_match_the_token(issuer: TestIssuer) -> None:
    original = issuer.jwks

    def jwks() -> Any:
        data = original()
        for key in data["keys"]:
            if key["kid"] == "rsa-1":
                key["alg"] = "RS512"
        return data

    issuer.jwks = jwks  # type: ignore[method-assign]
    rejects(make_verifier(issuer), issuer.mint(email_claims()), "no RS256 key")


def test_claim_length_is_bounded(issuer: TestIssuer) -> None:
    token = issuer.mint(github_claims(), workflow="w" * 3000)
    rejects(make_verifier(issuer, "github-workflow"), token, "claim workflow is too long")


def test_custom_type_san_must_be_a_uri(issuer: TestIssuer) -> None:
    odd = IdentityType(name="odd", san_kind="uri", san_template="{team}")
    verifier = make_verifier(issuer, "odd", identity_types={"odd": odd})
    rejects(verifier, issuer.mint({"sub": "s", "team": "blue"}), "not a URI with a scheme")


def test_identity_type_unknown_setting() -> None:
    with pytest.raises(ConfigInvalidError, match="unknown issuer setting"):
        IdentityType(name="x", san_kind="uri", san_template="{sub}", requires=("color",))


def test_issuer_cache_is_bounded(issuer: TestIssuer, monkeypatch: pytest.MonkeyPatch) -> None:
    from sealtrail.ca import token_verifier as tokens

    monkeypatch.setattr(tokens, "MAX_CACHED_ISSUERS", 1)
    one = TestIssuer(url="https://one.example.com")
    two = TestIssuer(url="https://two.example.com", keys=one.keys, published=one.published)
    fetched: list[str] = []

    def fetch(url: str) -> Any:
        fetched.append(url)
        return (one if "one." in url else two).fetch_json(url)

    verifier = TokenVerifier([IssuerConfig("https://*.example.com", "email")], fetch,
                             clock=clock_at(NOW))
    verifier.verify(one.mint(email_claims()))
    verifier.verify(two.mint(email_claims()))
    verifier.verify(one.mint(email_claims()))  # evicted by two: fetched again
    assert len(fetched) == 6
