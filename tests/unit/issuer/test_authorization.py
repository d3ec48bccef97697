"""The built-in issuer's authorization codes (sealtrail.issuer.authorization): requests are
checked before anything is redirected, codes are single-use, short-lived on an injected clock,
bound to their client, redirect URI and PKCE verifier, and carry the login's nonce."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import jwt
import pytest

from sealtrail.errors import InputError
from sealtrail.issuer import BuiltinIssuer, create_issuer_key
from sealtrail.issuer.authorization import (CODE_LIFETIME, AuthorizationCodes,
                                            AuthorizationError, GrantError,
                                            parse_authorization_request)

ISSUER = BuiltinIssuer("http://127.0.0.1:8080/oidc", create_issuer_key())
VERIFIER = "v" * 64
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()
CALLBACK = "http://localhost:4711/auth/callback"
QUERY = {"response_type": "code", "client_id": "sigstore", "redirect_uri": CALLBACK,
         "scope": "openid email", "state": "st", "nonce": "nn", "code_challenge": CHALLENGE,
         "code_challenge_method": "S256"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def form(code: str, **changes: Any) -> dict[str, str]:
    return {"grant_type": "authorization_code", "code": code, "client_id": "sigstore",
            "redirect_uri": CALLBACK, "code_verifier": VERIFIER, **changes}


@pytest.mark.parametrize("redirect_uri", [
    CALLBACK, "http://127.0.0.1:1/cb", "http://[::1]:5/auth/callback?x=1"])
def test_loopback_redirects_are_accepted(redirect_uri: str) -> None:
    assert parse_authorization_request({**QUERY, "redirect_uri": redirect_uri}).redirect_uri \
        == redirect_uri


@pytest.mark.parametrize("changes", [
    {"client_id": "other"}, {"redirect_uri": "https://evil.example/cb"},
    {"redirect_uri": "http://evil.example:80/cb"}, {"redirect_uri": "http://localhost.evil/cb"},
    {"redirect_uri": "http://user@localhost:1/cb"}, {"redirect_uri": ""},
    {"redirect_uri": "http://localhost:99999/cb"}, {"state": "a\nb"},
])
def test_what_cannot_be_redirected_to_is_shown_instead(changes: dict[str, str]) -> None:
    with pytest.raises(AuthorizationError) as refused:
        parse_authorization_request({**QUERY, **changes})
    assert not refused.value.redirect


@pytest.mark.parametrize("changes, error", [
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"scope": "email"}, "invalid_scope"),
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge": "short"}, "invalid_request"),
])
def test_other_errors_go_back_to_the_client(changes: dict[str, str], error: str) -> None:
    with pytest.raises(AuthorizationError) as refused:
        parse_authorization_request({**QUERY, **changes})
    assert refused.value.redirect and refused.value.error == error


def test_a_code_trades_once_for_a_token_with_the_nonce() -> None:
    codes = AuthorizationCodes(ISSUER, clock=Clock())
    code = codes.issue(parse_authorization_request(QUERY), "dev@example.com")
    token, lifetime = codes.redeem(form(code))
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["email"] == "dev@example.com" and claims["nonce"] == "nn"
    assert claims["aud"] == "sigstore" and lifetime == claims["exp"] - claims["iat"]
    with pytest.raises(GrantError, match="already used"):
        codes.redeem(form(code))


@pytest.mark.parametrize("changes, error", [
    ({"code_verifier": "w" * 64}, "PKCE verification failed"),
    ({"code_verifier": ""}, "code_verifier"),
    ({"redirect_uri": "http://localhost:1/other"}, "another client"),
    ({"client_id": "other"}, "another client"),
    ({"grant_type": "password"}, "only authorization_code"),
])
def test_a_wrong_exchange_is_refused_and_spends_the_code(changes: dict[str, str],
                                                         error: str) -> None:
    codes = AuthorizationCodes(ISSUER, clock=Clock())
    code = codes.issue(parse_authorization_request(QUERY), "dev@example.com")
    with pytest.raises(GrantError, match=error):
        codes.redeem(form(code, **changes))
    if "grant_type" not in changes:  # a guess spends the code: no second try
        with pytest.raises(GrantError, match="already used"):
            codes.redeem(form(code))


def test_codes_expire_on_the_injected_clock() -> None:
    clock = Clock()
    codes = AuthorizationCodes(ISSUER, clock=clock)
    request = parse_authorization_request(QUERY)
    fresh, stale = codes.issue(request, "a@example.com"), codes.issue(request, "b@example.com")
    clock.now += CODE_LIFETIME - 1
    codes.redeem(form(fresh))
    clock.now += 1
    with pytest.raises(GrantError, match="expired"):
        codes.redeem(form(stale))


def test_pending_codes_are_bounded() -> None:
    codes = AuthorizationCodes(ISSUER, clock=Clock(), capacity=2)
    request = parse_authorization_request(QUERY)
    first = codes.issue(request, "a@example.com")
    codes.issue(request, "b@example.com")
    last = codes.issue(request, "c@example.com")
    with pytest.raises(GrantError):
        codes.redeem(form(first))  # the oldest made room
    codes.redeem(form(last))


def test_a_malformed_address_gets_no_code() -> None:
    with pytest.raises(InputError):
        AuthorizationCodes(ISSUER).issue(parse_authorization_request(QUERY), "not an address")
