"""Identity token sources: their order, CI credentials through `id`, and the errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import id as ambient
import jwt
import pytest
import urllib3
from cryptography.hazmat.primitives.asymmetric import ec

from sealtrail.errors import ServiceUnavailableError, TokenInvalidError
from sealtrail.identity.tokens import (AMBIENT_SOURCE, IdentityToken, TokenSource,
                                       find_identity_token)

KEY = ec.generate_private_key(ec.SECP256R1())
# The one clock of these tests: tokens are minted at NOW and checked at NOW (passed as the
# ``now`` the code takes), never against the wall clock, so a slow run cannot move an expiry
# across the instant it is checked at.
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
NOW_SECONDS = int(NOW.timestamp())


def token(**claims: Any) -> str:
    body = {"iss": "https://issuer.test", "sub": "s", "aud": "sigstore", "iat": NOW_SECONDS,
            "exp": NOW_SECONDS + 600, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, KEY, algorithm="ES256")


EXPLICIT, ENV, CI, EXTRA = (token(sub=name) for name in ("explicit", "env", "ci", "extra"))


def extra() -> TokenSource:
    return TokenSource("extra", lambda: (EXTRA, "minted"))


def finds(value: str | None) -> tuple[list[str], Callable[[str], str | None]]:
    """A stand-in for `id.detect_credential` that returns ``value``; and its calls."""
    calls: list[str] = []

    def detect(audience: str) -> str | None:
        calls.append(audience)
        return value
    return calls, detect


def raises(exc: BaseException) -> Callable[[str], str | None]:
    def detect(audience: str) -> str | None:
        raise exc
    return detect


def chained(outer: BaseException, cause: BaseException) -> BaseException:
    """``outer`` as `id` raises it from inside ``except cause`` (implicit chaining)."""
    try:
        try:
            raise cause
        except type(cause):
            raise outer
    except type(outer) as exc:
        return exc


@pytest.mark.parametrize("explicit,env,ci,expected,source", [
    (EXPLICIT, {"SIGSTORE_ID_TOKEN": ENV}, CI, "explicit", "--identity-token"),
    (None, {"SIGSTORE_ID_TOKEN": ENV}, CI, "env", "$SIGSTORE_ID_TOKEN"),
    (None, {}, CI, "ci", AMBIENT_SOURCE),
    (None, {}, None, "extra", "extra"),
])
def test_sources_are_tried_in_order(explicit: str | None, env: dict[str, str],
                                    ci: str | None, expected: str, source: str) -> None:
    calls, detect = finds(ci)
    found, name = find_identity_token(explicit, env=env, detect=detect,
                                      extra_sources=[extra()], now=NOW)
    assert found.claims["sub"] == expected and name == source
    # The CI is only asked when nothing earlier had a token, and for Sigstore's audience.
    assert calls == ([] if expected in ("explicit", "env") else ["sigstore"])


def test_the_id_library_is_the_default_detector(outside_ci: list[str]) -> None:
    with pytest.raises(TokenInvalidError, match=r"CI ambient credentials \(none detected"):
        find_identity_token(env={})
    assert outside_ci == ["sigstore"]  # the conftest's stand-in for id.detect_credential


def test_github_actions_without_the_permission_says_to_add_it(
        monkeypatch: pytest.MonkeyPatch, real_detect: Callable[[str], str | None]) -> None:
    # The real `id` code path: GITHUB_ACTIONS set, no request URL or token. `id` raises
    # before any request, so nothing reaches the network.
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    with pytest.raises(TokenInvalidError) as info:
        find_identity_token(env={}, detect=real_detect)
    message = info.value.message
    assert "add `permissions: id-token: write` to the job" in message
    assert message.startswith("no identity token found; tried: ")
    assert info.value.exit_code == 2
    # Only the request token set (no URL): the same advice.
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "ghs")
    with pytest.raises(TokenInvalidError, match="add `permissions: id-token: write`"):
        find_identity_token(env={}, detect=real_detect)


def test_a_github_job_without_permission_can_still_use_a_later_source() -> None:
    detect = raises(ambient.GitHubOidcPermissionCredentialError("GitHub: missing"))
    assert find_identity_token(env={}, detect=detect, extra_sources=[extra()])[1] == "extra"


def test_nothing_found_lists_every_source_and_why() -> None:
    detect = raises(ambient.AmbientCredentialError(
        "GitLab: Environment variable SIGSTORE_ID_TOKEN not found"))
    with pytest.raises(TokenInvalidError) as info:
        find_identity_token(env={"GITLAB_CI": "true"}, detect=detect,
                            extra_sources=[TokenSource("built-in", lambda: (None, "off"))])
    message = info.value.message
    for part in ("--identity-token (not given)", "$SIGSTORE_ID_TOKEN (not set)",
                 "CI ambient credentials (GitLab: Environment variable SIGSTORE_ID_TOKEN",
                 "declare `id_tokens: SIGSTORE_ID_TOKEN: aud: sigstore` in the job",
                 "built-in (off)", "interactive browser login (skipped: "):
        assert part in message
    assert info.value.code == "TOKEN_INVALID" and info.value.exit_code == 2


@pytest.mark.parametrize("failure,evidence", [
    (chained(ambient.AmbientCredentialError("GitHub: OIDC token request timed out"),
             urllib3.exceptions.MaxRetryError(None, "https://x.test/", "refused")), None),
    (ambient.AmbientCredentialError(
        "GitHub: OIDC token request failed (code=503, body='down')"), "HTTP 503"),
    (ambient.AmbientCredentialError(
        "GCP: OIDC token request failed (code=500, body='')"), "HTTP 500"),
    (json.JSONDecodeError("Expecting value", "<html>", 0), None),  # GCP's unguarded .json()
    (ConnectionResetError(104, "Connection reset by peer"), None),
])
def test_a_failing_ci_token_service_is_a_service_failure(failure: BaseException,
                                                         evidence: str | None) -> None:
    with pytest.raises(ServiceUnavailableError) as info:
        find_identity_token(env={}, detect=raises(failure), extra_sources=[extra()])
    assert info.value.exit_code == 3 and info.value.code == "SERVICE_UNAVAILABLE"
    assert info.value.actual == evidence
    assert "could not get an identity token from the CI's identity token service" \
        in info.value.message


@pytest.mark.parametrize("failure", [
    ambient.AmbientCredentialError("Buildkite: could not find Buildkite agent"),
    ambient.AmbientCredentialError("Token audience claim mismatch (expected sigstore, got x)"),
])
def test_an_unusable_ci_credential_is_a_reason_not_a_failure(failure: BaseException) -> None:
    found, name = find_identity_token(env={}, detect=raises(failure), extra_sources=[extra()])
    assert name == "extra"
    with pytest.raises(TokenInvalidError) as info:
        find_identity_token(env={}, detect=raises(failure))
    assert f"CI ambient credentials ({failure})" in info.value.message


@pytest.mark.parametrize("url,message", [
    ("http://pipelines.actions.test/token", "must be an https URL"),
    ("https://x:y/t", "not a URL"),
    ("file:///etc/passwd", "not a URL"),
])
def test_the_github_request_url_must_not_leak_the_bearer(url: str, message: str) -> None:
    calls, detect = finds(CI)
    env = {"GITHUB_ACTIONS": "true", "ACTIONS_ID_TOKEN_REQUEST_URL": url}
    with pytest.raises(TokenInvalidError, match=message):
        find_identity_token(env=env, detect=detect)
    assert calls == []  # refused before `id` sends the bearer anywhere
    # Plain HTTP to this machine (a test server) is allowed.
    env["ACTIONS_ID_TOKEN_REQUEST_URL"] = "http://127.0.0.1:9/token"
    assert find_identity_token(env=env, detect=detect)[1] == AMBIENT_SOURCE


def test_expired_token_names_its_expiry() -> None:
    expired = token(exp=NOW_SECONDS - 120)
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
    expired = token(exp=NOW_SECONDS - 120)
    found, source = find_identity_token(expired, env={}, now=NOW, read=False)
    assert source == "--identity-token" and not found.is_read  # expiry not checked here
    with pytest.raises(TokenInvalidError, match="expired at"):
        found.check_fresh(NOW)
