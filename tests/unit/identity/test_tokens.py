"""Identity token sources: their order, GitHub Actions' request, and the errors."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from sealtrail.errors import Error, TokenInvalidError
from sealtrail.net.http import HttpClient, HttpRequest, HttpResponse
from sealtrail.identity.tokens import IdentityToken, TokenSource, find_identity_token
from tests.fakes.http import fake_client, query_of, respond

KEY = ec.generate_private_key(ec.SECP256R1())
NOW = datetime.now(timezone.utc)


def token(**claims: Any) -> str:
    now = int(time.time())
    body = {"iss": "https://issuer.test", "sub": "s", "aud": "sigstore", "iat": now,
            "exp": now + 600, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, KEY, algorithm="ES256")


EXPLICIT, ENV, GITHUB, EXTRA = (token(sub=name) for name in ("explicit", "env", "github", "extra"))
GITHUB_URL = "https://pipelines.actions.test/token?api-version=2.0"


def github_client(calls: list[HttpRequest], status: int = 200,
                  value: Any = GITHUB) -> HttpClient:
    def handler(request: HttpRequest) -> HttpResponse:
        calls.append(request)
        return respond(status, json={"value": value} if status == 200 else {"message": "no"})
    return fake_client(handler)


def extra() -> TokenSource:
    return TokenSource("extra", lambda: (EXTRA, "minted"))


GITHUB_ENV = {"ACTIONS_ID_TOKEN_REQUEST_URL": GITHUB_URL, "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "ghs"}


@pytest.mark.parametrize("explicit,env,expected,source", [
    (EXPLICIT, {"SIGSTORE_ID_TOKEN": ENV, **GITHUB_ENV}, "explicit", "--identity-token"),
    (None, {"SIGSTORE_ID_TOKEN": ENV, **GITHUB_ENV}, "env", "$SIGSTORE_ID_TOKEN"),
    (None, GITHUB_ENV, "github", "GitHub Actions"),
    (None, {"GITLAB_CI": "true", "SIGSTORE_ID_TOKEN": ENV}, "env", "$SIGSTORE_ID_TOKEN"),
    (None, {}, "extra", "extra"),
])
def test_sources_are_tried_in_order(explicit: str | None, env: dict[str, str], expected: str,
                                    source: str) -> None:
    calls: list[HttpRequest] = []
    found, name = find_identity_token(explicit, env=env, client=github_client(calls),
                                      extra_sources=[extra()], now=NOW)
    assert found.claims["sub"] == expected and name == source
    # GitHub is only asked when nothing earlier had a token.
    assert len(calls) == (1 if expected == "github" else 0)


def test_github_actions_request_shape() -> None:
    calls: list[HttpRequest] = []
    find_identity_token(env=GITHUB_ENV, client=github_client(calls), now=NOW)
    (request,) = calls
    assert request.method == "GET"
    assert query_of(request) == {"api-version": "2.0",  # the service's own query is kept
                                 "audience": "sigstore"}
    assert request.url.startswith("https://pipelines.actions.test/token?")
    assert request.headers["authorization"] == "bearer ghs"


def test_github_actions_failures() -> None:
    with pytest.raises(Error, match="refused to issue"):
        find_identity_token(env=GITHUB_ENV, client=github_client([], status=500))
    with pytest.raises(TokenInvalidError, match="without a token"):
        find_identity_token(env=GITHUB_ENV, client=github_client([], value=""))
    with pytest.raises(TokenInvalidError, match="https"):
        find_identity_token(env={**GITHUB_ENV, "ACTIONS_ID_TOKEN_REQUEST_URL": "http://x.test/t"})
    with pytest.raises(TokenInvalidError, match="not a URL"):
        find_identity_token(env={**GITHUB_ENV, "ACTIONS_ID_TOKEN_REQUEST_URL": "https://x:y/t"})


def test_nothing_found_lists_every_source_and_why() -> None:
    env = {"ACTIONS_ID_TOKEN_REQUEST_URL": GITHUB_URL, "GITLAB_CI": "true"}
    with pytest.raises(TokenInvalidError) as info:
        find_identity_token(env=env, extra_sources=[TokenSource("built-in", lambda: (None, "off"))])
    message = info.value.message
    for part in ("--identity-token (not given)", "$SIGSTORE_ID_TOKEN (not set)",
                 "ACTIONS_ID_TOKEN_REQUEST_TOKEN is not", "id-token: write",
                 "declare `id_tokens: SIGSTORE_ID_TOKEN", "built-in (off)",
                 "interactive browser login (skipped: "):
        assert part in message
    assert info.value.code == "TOKEN_INVALID"


def test_expired_token_names_its_expiry() -> None:
    expired = token(exp=int(time.time()) - 120)
    with pytest.raises(TokenInvalidError, match=r"expired at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ") as info:
        find_identity_token(expired, env={}, now=NOW)
    assert "https://issuer.test" in info.value.message
    # Without a clock the token is only parsed (the signer checks it before using it).
    found, _ = find_identity_token(expired, env={})
    with pytest.raises(TokenInvalidError, match="expired at"):
        found.check_fresh(NOW)


@pytest.mark.parametrize("raw,message", [
    ("not-a-jwt", "not a JWT"),
    ("", "empty"),
    (token(iss=None), "no issuer"),
    (token(exp="tomorrow"), "no numeric expiry"),
    ("x" * 70_000, "too long"),
])
def test_malformed_tokens(raw: str, message: str) -> None:
    with pytest.raises(TokenInvalidError, match=message):
        IdentityToken.parse(raw)


def test_identity_prefers_email_and_never_prints_the_token() -> None:
    parsed = IdentityToken.parse(token(email="dev@example.com"))
    assert parsed.identity == "dev@example.com" and parsed.issuer == "https://issuer.test"
    assert IdentityToken.parse(token()).identity == "s"
    assert parsed.raw not in repr(parsed)


def test_an_unread_token_reads_its_claims_when_first_asked() -> None:
    unread = IdentityToken.unread("  " + token() + "\n")
    assert not unread.is_read and "not read" in repr(unread)
    assert unread.issuer == "https://issuer.test" and unread.is_read
    with pytest.raises(TokenInvalidError, match="empty"):
        IdentityToken.unread("  ")


def test_find_identity_token_can_leave_the_token_unread() -> None:
    expired = token(exp=int(time.time()) - 120)
    found, source = find_identity_token(expired, env={}, now=NOW, read=False)
    assert source == "--identity-token" and not found.is_read  # expiry not checked here
    with pytest.raises(TokenInvalidError, match="expired at"):
        found.check_fresh(NOW)
