"""Tests for the built-in OIDC issuer (sealtrail.issuer.builtin): metadata, keys and minted tokens.

Tokens are checked with PyJWT against the issuer's own JWKS (as a relying party would) and with
sigstore-python's ``IdentityToken``, the check every sigstore-python signer runs first.
"""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt.algorithms import RSAAlgorithm
from sigstore.oidc import IdentityToken

from sealtrail.errors import KeyMalformedError, UsageError
from sealtrail.issuer import (
    MAX_LIFETIME,
    BuiltinIssuer,
    TokenRequest,
    create_issuer_key,
    create_token_secret,
    email_subject,
    issuer_key_id,
    jwk_thumbprint,
    load_issuer_key,
)

URL = "http://127.0.0.1:8080/oidc"
SHA = "0123456789abcdef0123456789abcdef01234567"
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z

# SPEC: sigstore-wire.md §1: the claims Fulcio's github-workflow identity type requires.
FULCIO_GITHUB_CLAIMS = {
    "job_workflow_ref", "sha", "event_name", "repository", "workflow", "ref", "job_workflow_sha",
    "runner_environment", "repository_id", "repository_owner", "repository_owner_id",
    "repository_visibility", "workflow_ref", "workflow_sha", "run_id", "run_attempt",
}


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return create_issuer_key()


@pytest.fixture
def issuer(key: ec.EllipticCurvePrivateKey) -> BuiltinIssuer:
    return BuiltinIssuer(URL, key)


def verify(issuer: BuiltinIssuer, token: str, **options: Any) -> dict[str, Any]:
    """Verify like a relying party: pick the key by kid from the JWKS, check iss/aud/exp."""
    keys = jwt.PyJWKSet.from_dict(issuer.jwks())
    kid = jwt.get_unverified_header(token)["kid"]
    (match,) = [k for k in keys.keys if k.key_id == kid]
    return jwt.decode(token, match.key, algorithms=["ES256"], audience="sigstore",
                      issuer=issuer.discovery()["issuer"], **options)


def workflow(issuer: BuiltinIssuer, **overrides: Any) -> str:
    args: dict[str, Any] = {"repository": "octo-org/app", "workflow_path":
                            ".github/workflows/release.yml", "ref": "refs/tags/v1.0.0", "sha": SHA}
    args.update(overrides)
    return issuer.mint_github_workflow(**args)


# --- metadata and keys ---------------------------------------------------------------------

def test_discovery_names_the_endpoints_under_the_issuer(issuer: BuiltinIssuer) -> None:
    doc = issuer.discovery()
    assert doc["issuer"] == URL
    assert doc["jwks_uri"] == URL + "/jwks"
    assert doc["token_endpoint"] == URL + "/token"
    assert doc["authorization_endpoint"] == URL + "/authorize"
    assert doc["id_token_signing_alg_values_supported"] == ["ES256"]
    assert doc["scopes_supported"] == ["openid", "email"]
    assert doc["subject_types_supported"] == ["public"]
    assert doc["response_types_supported"]
    assert {"iss", "sub", "aud", "email", "email_verified"} | FULCIO_GITHUB_CLAIMS \
        <= set(doc["claims_supported"])
    assert issuer.discovery_url == URL + "/.well-known/openid-configuration"


def test_jwks_holds_the_public_key_with_kid_use_and_alg(issuer: BuiltinIssuer,
                                                        key: ec.EllipticCurvePrivateKey) -> None:
    (jwk,) = issuer.jwks()["keys"]
    assert jwk["kty"] == "EC" and jwk["crv"] == "P-256"
    assert (jwk["kid"], jwk["use"], jwk["alg"]) == (issuer.key_id, "sig", "ES256")
    assert "d" not in jwk  # never the private part
    public = jwt.PyJWK.from_dict(jwk).key
    assert public.public_numbers() == key.public_key().public_numbers()


def test_key_id_defaults_to_the_rfc7638_thumbprint(issuer: BuiltinIssuer,
                                                   key: ec.EllipticCurvePrivateKey) -> None:
    assert issuer.key_id == issuer_key_id(key) == issuer_key_id(key.public_key())
    assert len(issuer.key_id) == 43  # base64url of SHA-256, no padding
    # Stable: the same key always gets the same id; another key another id.
    assert BuiltinIssuer(URL, key).key_id == issuer.key_id
    assert issuer_key_id(create_issuer_key()) != issuer.key_id
    assert BuiltinIssuer(URL, key, "my-key.1").key_id == "my-key.1"


def test_thumbprint_matches_the_rfc7638_example() -> None:
    # SPEC: RFC 7638 §3.1 example RSA key and its thumbprint.
    n = ("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJ"
         "ECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW"
         "2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQ"
         "Fh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
    jwk = {"kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"}
    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    # Only the required members count: extra members do not change it.
    RSAAlgorithm.from_jwk(jwk)  # and it is a real key
    assert jwk_thumbprint({**jwk, "use": "sig"}) == jwk_thumbprint(jwk)


def test_thumbprint_refuses_unknown_types_and_missing_members() -> None:
    with pytest.raises(KeyMalformedError) as info:
        jwk_thumbprint({"kty": "oct", "k": "AAAA"})
    assert info.value.code == "KEY_MALFORMED"
    with pytest.raises(KeyMalformedError):
        jwk_thumbprint({"kty": "EC", "crv": "P-256", "x": "AAAA"})  # no y


@pytest.mark.parametrize("bad", [
    ec.generate_private_key(ec.SECP384R1()),
    ed25519.Ed25519PrivateKey.generate(),
    "not a key",
])
def test_only_p256_private_keys_are_accepted(bad: Any) -> None:
    with pytest.raises(KeyMalformedError) as info:
        BuiltinIssuer(URL, bad)
    assert info.value.code == "KEY_MALFORMED"


def test_an_ecdsa_public_key_is_not_a_signing_key(key: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(KeyMalformedError):
        BuiltinIssuer(URL, key.public_key())  # type: ignore[arg-type]
    with pytest.raises(KeyMalformedError):
        issuer_key_id(ed25519.Ed25519PrivateKey.generate().public_key())  # type: ignore[arg-type]


@pytest.mark.parametrize("url", [
    "", "ftp://example.com/oidc", "https://", "https://example.com/oidc/",
    "https://example.com/oidc?x=1", "https://example.com/oidc#frag", "https://u@example.com",
    "https://example.com/o idc", "https://example.com:notaport/oidc", "example.com/oidc",
    "https://example.com/" + "a" * 2100, 42,
])
def test_malformed_issuer_urls_are_refused(key: ec.EllipticCurvePrivateKey, url: Any) -> None:
    with pytest.raises(UsageError) as info:
        BuiltinIssuer(url, key)
    assert info.value.code == "USAGE"


@pytest.mark.parametrize("kid", ["", "a b", "k" * 129, "kid/1", 7])
def test_malformed_key_ids_are_refused(key: ec.EllipticCurvePrivateKey, kid: Any) -> None:
    with pytest.raises(UsageError):
        BuiltinIssuer(URL, key, kid)


def test_load_issuer_key_reads_plain_and_encrypted_pkcs8(key: ec.EllipticCurvePrivateKey) -> None:
    plain = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    locked = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.BestAvailableEncryption(b"pass phrase"))
    assert issuer_key_id(load_issuer_key(plain)) == issuer_key_id(key)
    assert issuer_key_id(load_issuer_key(locked, b"pass phrase")) == issuer_key_id(key)
    with pytest.raises(KeyMalformedError):
        load_issuer_key(locked, b"wrong")
    with pytest.raises(KeyMalformedError):
        load_issuer_key(locked)  # no password
    with pytest.raises(KeyMalformedError):
        load_issuer_key(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    rsa_pem = rsa.generate_private_key(65537, 2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    with pytest.raises(KeyMalformedError):
        load_issuer_key(rsa_pem)


def test_token_secrets_are_fresh_header_safe_and_long() -> None:
    one, two = create_token_secret(), create_token_secret()
    assert one != two and len(one) >= 40
    assert all(0x21 <= b <= 0x7E for b in one)


# --- email tokens --------------------------------------------------------------------------

def test_email_token_verifies_against_the_jwks_and_carries_the_claims(
        key: ec.EllipticCurvePrivateKey) -> None:
    # The issuer's clock is injected: iat is exactly the time it was given, however slowly
    # the suite runs (the relying-party check below still uses the wall clock, so the
    # instant is a current one).
    minted_at = time.time()
    issuer = BuiltinIssuer(URL, key, clock=lambda: minted_at)
    token = issuer.mint_email("alice@example.com")
    header = jwt.get_unverified_header(token)
    assert (header["alg"], header["kid"], header["typ"]) == ("ES256", issuer.key_id, "JWT")
    claims = verify(issuer, token, options={"require": ["iss", "sub", "aud", "iat", "nbf",
                                                        "exp", "email", "email_verified"]})
    assert claims["iss"] == URL and claims["aud"] == "sigstore"
    assert claims["email"] == "alice@example.com" and claims["email_verified"] is True
    assert claims["exp"] - claims["iat"] == 600 and claims["nbf"] == claims["iat"]
    assert claims["iat"] == int(minted_at)
    assert claims["sub"] == email_subject("alice@example.com")
    assert "alice" not in claims["sub"]  # opaque


def test_email_subject_is_stable_per_address(issuer: BuiltinIssuer) -> None:
    first = verify(issuer, issuer.mint_email("alice@example.com"))
    again = verify(issuer, issuer.mint_email("alice@example.com"))
    other = verify(issuer, issuer.mint_email("bob@example.com"))
    assert first["sub"] == again["sub"] != other["sub"]
    assert first["jti"] != again["jti"]  # each token is distinct


def test_sigstore_python_accepts_email_tokens(issuer: BuiltinIssuer) -> None:
    identity = IdentityToken(issuer.mint_email("alice@example.com"))
    assert identity.issuer == URL
    assert identity.in_validity_period()
    # An issuer sigstore-python does not know is identified by sub (its proof-of-possession
    # challenge); our CA must therefore accept sub as the challenge for this issuer too.
    assert identity.identity == email_subject("alice@example.com")


def test_audience_lifetime_and_unverified_email_are_honoured(issuer: BuiltinIssuer) -> None:
    token = issuer.mint_email("carol@example.org", audience="other-client", lifetime=30,
                              email_verified=False)
    claims = jwt.decode(token, issuer.public_key, algorithms=["ES256"], audience="other-client")
    assert claims["exp"] - claims["iat"] == 30 and claims["email_verified"] is False
    with pytest.raises(jwt.InvalidAudienceError):
        verify(issuer, token)  # aud is not "sigstore"


def test_the_clock_sets_iat_nbf_and_exp(key: ec.EllipticCurvePrivateKey) -> None:
    fixed = BuiltinIssuer(URL, key, clock=lambda: NOW + 0.9)
    claims = jwt.decode(fixed.mint_email("a@example.com", lifetime=120), key.public_key(),
                        algorithms=["ES256"], audience="sigstore", options={"verify_exp": False,
                                                                             "verify_iat": False})
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (NOW, NOW, NOW + 120)
    with pytest.raises(jwt.ExpiredSignatureError):
        verify(fixed, fixed.mint_email("a@example.com"))  # minted long ago, now expired


def test_a_token_signed_by_another_key_fails_against_the_jwks(
        issuer: BuiltinIssuer) -> None:
    impostor = BuiltinIssuer(URL, create_issuer_key(), key_id=issuer.key_id)
    with pytest.raises(jwt.InvalidSignatureError):
        verify(issuer, impostor.mint_email("alice@example.com"))


@pytest.mark.parametrize("email", [
    "", "alice", "@example.com", "alice@", "al ice@example.com", "alice@exa_mple.com",
    "alice@-example.com", ".alice@example.com", "al..ice@example.com", "alice.@example.com",
    "a@b@example.com", "alice@example.com\n", "x" * 65 + "@example.com",
    "a@" + ".".join(["b" * 60] * 5), "álice@example.com", None, 12,
])
def test_malformed_emails_are_refused(issuer: BuiltinIssuer, email: Any) -> None:
    with pytest.raises(UsageError) as info:
        issuer.mint_email(email)
    assert info.value.code == "USAGE"
    assert "\n" not in info.value.diagnostics()


@pytest.mark.parametrize("options", [
    {"audience": ""}, {"audience": "has space"}, {"audience": "a" * 256}, {"audience": None},
    {"lifetime": 0}, {"lifetime": -5}, {"lifetime": MAX_LIFETIME + 1}, {"lifetime": 1.5},
    {"lifetime": True}, {"lifetime": "600"}, {"email_verified": "true"}, {"email_verified": 1},
])
def test_bad_audience_lifetime_and_flags_are_refused(issuer: BuiltinIssuer,
                                                     options: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        issuer.mint_email("alice@example.com", **options)


@settings(max_examples=60, deadline=None)
@given(local=st.from_regex(r"[a-z0-9]([a-z0-9._+-]{0,20}[a-z0-9])?", fullmatch=True)
       .filter(lambda s: ".." not in s),
       domain=st.from_regex(r"[a-z0-9]{1,10}(\.[a-z]{2,6}){0,2}", fullmatch=True))
def test_well_formed_emails_round_trip(key: ec.EllipticCurvePrivateKey, local: str,
                                       domain: str) -> None:
    issuer = BuiltinIssuer(URL, key)
    email = f"{local}@{domain}"
    assert verify(issuer, issuer.mint_email(email))["email"] == email


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_text_as_email_is_minted_or_refused_cleanly(key: ec.EllipticCurvePrivateKey,
                                                              text: str) -> None:
    issuer = BuiltinIssuer(URL, key)
    try:
        token = issuer.mint_email(text)
    except UsageError:
        return
    assert verify(issuer, token)["email"] == text


# --- GitHub workflow tokens ----------------------------------------------------------------

def test_workflow_token_has_every_claim_fulcio_needs(issuer: BuiltinIssuer) -> None:
    claims = verify(issuer, workflow(issuer))
    assert FULCIO_GITHUB_CLAIMS <= set(claims)
    assert all(isinstance(claims[name], str) and claims[name] for name in FULCIO_GITHUB_CLAIMS)
    assert claims["sub"] == "repo:octo-org/app:ref:refs/tags/v1.0.0"
    assert claims["job_workflow_ref"] == \
        "octo-org/app/.github/workflows/release.yml@refs/tags/v1.0.0"
    assert claims["workflow_ref"] == claims["job_workflow_ref"]
    assert claims["sha"] == claims["workflow_sha"] == claims["job_workflow_sha"] == SHA
    assert claims["repository"] == "octo-org/app" and claims["repository_owner"] == "octo-org"
    assert claims["event_name"] == "push" and claims["ref_type"] == "tag"
    assert claims["runner_environment"] == "github-hosted"
    assert claims["repository_visibility"] == "public"
    assert claims["workflow"] == ".github/workflows/release.yml"
    assert claims["run_attempt"] == "1" and claims["actor"] == "octo-org"
    for name in ("repository_id", "repository_owner_id", "run_id", "actor_id"):
        assert claims[name].isdigit() and claims[name] != "0"
    assert "environment" not in claims


def test_default_ids_are_stable_and_distinct(issuer: BuiltinIssuer) -> None:
    one, two = verify(issuer, workflow(issuer)), verify(issuer, workflow(issuer))
    names = ("repository_id", "repository_owner_id", "run_id")
    assert [one[n] for n in names] == [two[n] for n in names]
    assert one["repository_id"] != one["repository_owner_id"]
    other = verify(issuer, workflow(issuer, repository="octo-org/other"))
    assert other["repository_id"] != one["repository_id"]
    assert other["repository_owner_id"] == one["repository_owner_id"]  # same owner


def test_sigstore_python_accepts_workflow_tokens(issuer: BuiltinIssuer) -> None:
    identity = IdentityToken(workflow(issuer))
    assert identity.issuer == URL
    assert identity.identity == "repo:octo-org/app:ref:refs/tags/v1.0.0"


def test_every_workflow_option_is_written(issuer: BuiltinIssuer) -> None:
    reusable = "octo-org/shared/.github/workflows/build.yml@refs/heads/main"
    other_sha = "f" * 40
    claims = verify(issuer, workflow(
        issuer, event_name="workflow_dispatch", workflow_name="Release build",
        repository_id=1234, repository_owner_id="5678", repository_visibility="private",
        run_id="99", run_number=7, run_attempt=2, actor="dependabot[bot]", actor_id=49699333,
        runner_environment="self-hosted", job_workflow_ref=reusable, job_workflow_sha=other_sha,
        ref="refs/heads/main"))
    assert claims["event_name"] == "workflow_dispatch" and claims["workflow"] == "Release build"
    assert (claims["repository_id"], claims["repository_owner_id"]) == ("1234", "5678")
    assert claims["repository_visibility"] == "private"
    assert (claims["run_id"], claims["run_number"], claims["run_attempt"]) == ("99", "7", "2")
    assert (claims["actor"], claims["actor_id"]) == ("dependabot[bot]", "49699333")
    assert claims["runner_environment"] == "self-hosted"
    assert claims["job_workflow_ref"] == reusable and claims["job_workflow_sha"] == other_sha
    assert claims["workflow_ref"] == "octo-org/app/.github/workflows/release.yml@refs/heads/main"
    assert claims["workflow_sha"] == SHA and claims["ref_type"] == "branch"


def test_sub_follows_github_for_environments_and_pull_requests(issuer: BuiltinIssuer) -> None:
    env = verify(issuer, workflow(issuer, environment="production"))
    assert env["sub"] == "repo:octo-org/app:environment:production"
    assert env["environment"] == "production"
    pr = verify(issuer, workflow(issuer, event_name="pull_request", ref="refs/pull/12/merge"))
    assert pr["sub"] == "repo:octo-org/app:pull_request"


def test_sha256_repositories_are_accepted(issuer: BuiltinIssuer) -> None:
    assert verify(issuer, workflow(issuer, sha="a" * 64))["sha"] == "a" * 64


@pytest.mark.parametrize("overrides", [
    {"repository": "no-slash"}, {"repository": "a/b/c"}, {"repository": "-owner/app"},
    {"repository": "owner/.."}, {"repository": "o" * 40 + "/app"}, {"repository": "own er/app"},
    {"repository": None},
    {"workflow_path": "/abs/path.yml"}, {"workflow_path": ".github/../x.yml"},
    {"workflow_path": "a//b.yml"}, {"workflow_path": "w@x.yml"}, {"workflow_path": ""},
    {"workflow_path": "a" * 256},
    {"ref": "main"}, {"ref": "refs/heads"}, {"ref": "refs/heads/a..b"}, {"ref": "refs/heads/x@y"},
    {"ref": "refs/heads/.hidden"}, {"ref": "refs/heads/x.lock"}, {"ref": "refs/heads/a b"},
    {"sha": "0123"}, {"sha": SHA.upper()}, {"sha": "g" * 40}, {"sha": 5},
    {"event_name": "Push"}, {"event_name": "push;"}, {"event_name": ""},
    {"workflow_name": "line\nbreak"}, {"workflow_name": ""}, {"workflow_name": "x" * 256},
    {"repository_id": "-1"}, {"repository_id": "12a"}, {"repository_id": -1},
    {"repository_id": 10**20}, {"repository_id": True}, {"repository_owner_id": "01"},
    {"run_id": 1.0}, {"run_number": ""}, {"run_attempt": "x"}, {"actor_id": "1 2"},
    {"repository_visibility": "secret"}, {"runner_environment": "laptop"},
    {"actor": "bad actor"}, {"actor": "x[bot"}, {"environment": "prod/eu"},
    {"environment": ""},
    {"job_workflow_ref": "octo/app/.github/workflows/x.yml"},
    {"job_workflow_ref": "octo/app@refs/heads/main"},
    {"job_workflow_ref": "octo/app/../x.yml@refs/heads/main"},
    {"job_workflow_ref": "octo/app/x.yml@main"}, {"job_workflow_sha": "abc"},
    {"audience": "two words"}, {"lifetime": MAX_LIFETIME + 1},
])
def test_malformed_workflow_arguments_are_refused(issuer: BuiltinIssuer,
                                                  overrides: dict[str, Any]) -> None:
    with pytest.raises(UsageError) as info:
        workflow(issuer, **overrides)
    assert info.value.code == "USAGE"
    assert "\n" not in info.value.diagnostics()


# --- minting a parsed request --------------------------------------------------------------

def test_mint_dispatches_a_parsed_request(issuer: BuiltinIssuer) -> None:
    request = TokenRequest.from_json({"kind": "github-workflow", "repository": "octo-org/app",
                                      "workflow": ".github/workflows/ci.yml",
                                      "ref": "refs/heads/main", "sha": SHA, "lifetime": 60})
    claims = verify(issuer, issuer.mint(request))
    assert claims["job_workflow_ref"] == "octo-org/app/.github/workflows/ci.yml@refs/heads/main"
    assert claims["exp"] - claims["iat"] == 60
    email = verify(issuer, issuer.mint(TokenRequest.from_json({"kind": "email",
                                                               "email": "a@example.com"})))
    assert email["email"] == "a@example.com"


def test_mint_refuses_hand_built_requests_that_do_not_fit(issuer: BuiltinIssuer) -> None:
    with pytest.raises(UsageError):
        issuer.mint(TokenRequest(kind="saml", arguments={}))
    with pytest.raises(UsageError):
        issuer.mint(TokenRequest(kind="email", arguments={"repository": "octo/app"}))
    with pytest.raises(UsageError):
        issuer.mint(TokenRequest(kind="email", arguments={"email": "not an email"}))
