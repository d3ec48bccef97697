"""The interactive browser login (authorization code + PKCE) against a real tiny OIDC
provider on 127.0.0.1, and its place as the last identity token source."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from sealtrail.errors import ServiceUnavailableError, TokenInvalidError
from sealtrail.identity import browser as oidc_browser
from sealtrail.identity.tokens import BROWSER_SOURCE, find_identity_token
from sealtrail.net.http import HttpRequest, HttpResponse
from sealtrail.identity.browser import browser_login, pkce_pair
from tests.fakes.http import fake_client, respond

KEY = ec.generate_private_key(ec.SECP256R1())


class Provider:
    """A minimal OIDC provider: discovery, /authorize (redirects at once, as if the user
    approved) and /token (checks code, redirect_uri, client_id and the PKCE verifier)."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.codes: dict[str, dict[str, str]] = {}
        self.token_requests: list[dict[str, str]] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any] | None = None,
                      location: str | None = None) -> None:
                data = json.dumps(body or {}).encode()
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                if parts.path == "/.well-known/openid-configuration":
                    self._send(200, provider.discovery())
                elif parts.path == "/authorize":
                    status, location = provider.authorize(
                        {k: v[0] for k, v in parse_qs(parts.query).items()})
                    self._send(status, location=location)
                else:
                    self._send(404)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                provider.token_requests.append(form)
                self._send(*provider.token(form))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def discovery(self) -> dict[str, Any]:
        return {"issuer": self.issuer, "authorization_endpoint": self.issuer + "/authorize",
                "token_endpoint": self.issuer + "/token", "jwks_uri": self.issuer + "/keys",
                "response_types_supported": ["code"], "code_challenge_methods_supported": ["S256"]}

    def authorize(self, q: dict[str, str]) -> tuple[int, str | None]:
        assert q["response_type"] == "code" and q["client_id"] == "sigstore"
        assert q["scope"] == "openid email" and q["code_challenge_method"] == "S256"
        assert q["redirect_uri"].startswith("http://localhost:")
        assert q["redirect_uri"].endswith("/auth/callback")
        state = "forged-state" if self.mode == "wrong_state" else q["state"]
        if self.mode == "deny":
            return 302, q["redirect_uri"] + "?" + urlencode(
                {"error": "access_denied", "error_description": "the user said no",
                 "state": state})
        code = secrets.token_urlsafe(16)
        challenge = q["code_challenge"]
        if self.mode == "bad_verifier":  # the provider remembers another challenge
            challenge = pkce_pair()[1]
        self.codes[code] = {"challenge": challenge, "nonce": q["nonce"],
                            "redirect_uri": q["redirect_uri"]}
        return 302, q["redirect_uri"] + "?" + urlencode({"code": code, "state": state})

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant = self.codes.pop(form.get("code", ""), None)
        if grant is None or form.get("grant_type") != "authorization_code" \
                or form.get("redirect_uri") != grant["redirect_uri"] \
                or form.get("client_id") != "sigstore":
            return 400, {"error": "invalid_grant", "error_description": "unknown code"}
        # SPEC: RFC 7636 §4.6: BASE64URL(SHA256(code_verifier)) == code_challenge.
        digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant["challenge"]:
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        now = int(time.time())
        nonce = "someone-else's" if self.mode == "bad_nonce" else grant["nonce"]
        claims = {"iss": self.issuer, "sub": "u1", "aud": "sigstore", "iat": now,
                  "exp": now + 600, "email": "dev@example.com", "email_verified": True,
                  "nonce": nonce}
        return 200, {"access_token": "opaque", "token_type": "Bearer",
                     "id_token": jwt.encode(claims, KEY, algorithm="ES256")}


@pytest.fixture
def provider() -> Iterator[Provider]:
    p = Provider()
    yield p
    p.close()


class Browser:
    """Follows the authorization URL like a browser: GET /authorize, then its redirect."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.callback_status: int | None = None

    def __call__(self, url: str) -> bool:
        self.urls.append(url)
        with httpx.Client(trust_env=False, timeout=5) as client:
            answer = client.get(url)
            assert answer.status_code == 302
            self.callback_status = client.get(answer.headers["location"]).status_code
        return True

    @property
    def redirect_port(self) -> int:
        query = parse_qs(urlsplit(self.urls[0]).query)
        return int(urlsplit(query["redirect_uri"][0]).port or 0)


def test_success_returns_the_id_token(provider: Provider, capsys: pytest.CaptureFixture[str]) -> None:
    browser = Browser()
    token = browser_login(provider.issuer, open_browser=browser, timeout=10)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["email"] == "dev@example.com" and browser.callback_status == 200
    # The URL is printed for people without a local browser; the secrets are not.
    err = capsys.readouterr().err
    assert browser.urls[0] in err
    (request,) = provider.token_requests
    for secret in (token, request["code"], request["code_verifier"]):
        assert secret not in err
    assert 43 <= len(request["code_verifier"]) <= 128


def test_token_request_with_client_secret_uses_basic_auth() -> None:
    seen: list[HttpRequest] = []

    def handler(request: HttpRequest) -> HttpResponse:
        seen.append(request)
        return respond(400, json={"error": "invalid_client"})

    client = fake_client(handler)
    with pytest.raises(TokenInvalidError, match="invalid_client"):
        oidc_browser._exchange("https://idp.test/token", client, code="c", verifier="v",
                               redirect_uri="http://localhost:1/auth/callback",
                               client_id="sigstore", client_secret="")
    assert seen[0].headers["authorization"] == "Basic " + base64.b64encode(b"sigstore:").decode()


def test_wrong_state_is_refused(provider: Provider) -> None:
    provider.mode = "wrong_state"
    with pytest.raises(TokenInvalidError, match="state does not match") as info:
        browser_login(provider.issuer, open_browser=Browser(), timeout=10)
    assert info.value.code == "TOKEN_INVALID"
    assert provider.token_requests == []  # the code is never redeemed


def test_access_denied_is_refused_with_its_message(provider: Provider) -> None:
    provider.mode = "deny"
    with pytest.raises(TokenInvalidError, match="refused the login: access_denied: the user said no"):
        browser_login(provider.issuer, open_browser=Browser(), timeout=10)


def test_nonce_mismatch_is_refused(provider: Provider) -> None:
    provider.mode = "bad_nonce"
    with pytest.raises(TokenInvalidError, match="nonce") as info:
        browser_login(provider.issuer, open_browser=Browser(), timeout=10)
    assert info.value.actual == "another nonce"


def test_pkce_verifier_refused_by_the_provider(provider: Provider) -> None:
    provider.mode = "bad_verifier"
    with pytest.raises(TokenInvalidError, match="invalid_grant: PKCE verification failed") as info:
        browser_login(provider.issuer, open_browser=Browser(), timeout=10)
    assert info.value.actual == "HTTP 400"


def test_pkce_pair_is_s256() -> None:
    verifier, challenge = pkce_pair()
    digest = hashlib.sha256(verifier.encode()).digest()
    assert challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert pkce_pair()[0] != verifier


def test_timeout_without_a_browser(provider: Provider) -> None:
    urls: list[str] = []
    started = time.monotonic()
    with pytest.raises(TokenInvalidError, match="no browser login completed within 1 s"):
        browser_login(provider.issuer, open_browser=urls.append, timeout=1)
    assert 0.9 <= time.monotonic() - started < 5 and len(urls) == 1


def test_a_failing_browser_is_not_fatal(provider: Provider) -> None:
    def broken(url: str) -> bool:
        raise OSError("no display")

    with pytest.raises(TokenInvalidError, match="within 0.5 s"):
        browser_login(provider.issuer, open_browser=broken, timeout=0.5)


def _listeners(port: int) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp*) of sockets LISTENing on ``port``."""
    found = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(name)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if int(hex_port, 16) == port and fields[3] == "0A":
                found.append(address)
    return found


def test_callback_listens_on_loopback_only_and_closes(provider: Provider) -> None:
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs Linux /proc/net/tcp")
    seen: list[list[str]] = []
    browser = Browser()

    def look_then_follow(url: str) -> bool:
        browser.urls.append(url)
        seen.append(_listeners(browser.redirect_port))
        browser.urls.clear()
        return browser(url)

    browser_login(provider.issuer, open_browser=look_then_follow, timeout=10)
    assert seen == [["0100007F"]]  # exactly one listener, on 127.0.0.1
    port = browser.redirect_port
    assert _listeners(port) == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_unreachable_issuer() -> None:
    with socket.socket() as probe:  # a port with nothing behind it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ServiceUnavailableError, match="cannot reach"):
        browser_login(f"http://127.0.0.1:{port}", open_browser=Browser(), timeout=1)


def test_issuer_must_be_https_off_loopback() -> None:
    with pytest.raises(ServiceUnavailableError, match="https"):
        browser_login("http://idp.example.com", open_browser=Browser(), timeout=1)


@pytest.mark.parametrize("change,message", [
    ({"issuer": "https://other.test"}, "names another issuer"),
    ({"token_endpoint": "http://idp.example.com/token"}, "token_endpoint must be an https"),
    ({"authorization_endpoint": None}, "authorization_endpoint is missing"),
    ({"code_challenge_methods_supported": ["plain"]}, "S256"),
])
def test_bad_discovery_documents(provider: Provider, change: dict[str, Any], message: str) -> None:
    original = provider.discovery
    provider.discovery = lambda: {**original(), **change}  # type: ignore[method-assign]
    with pytest.raises(ServiceUnavailableError, match=message):
        browser_login(provider.issuer, open_browser=Browser(), timeout=1)


# -- its place among the token sources -------------------------------------------------------

def _token() -> str:
    now = int(time.time())
    return jwt.encode({"iss": "https://idp.test", "sub": "s", "exp": now + 600}, KEY,
                      algorithm="ES256")


def _logins() -> tuple[list[str], Any]:
    calls: list[str] = []

    def login(issuer: str) -> str:
        calls.append(issuer)
        return _token()

    return calls, login


def test_browser_login_is_the_last_source_at_a_terminal() -> None:
    calls, login = _logins()
    token, source = find_identity_token(env={"CI": "false"}, oidc_issuer="https://idp.test",
                                        interactive=True, login=login)
    assert source == BROWSER_SOURCE and calls == ["https://idp.test"]
    assert token.issuer == "https://idp.test"
    # An earlier source wins without any login.
    _, source = find_identity_token(env={"SIGSTORE_ID_TOKEN": _token()},
                                    oidc_issuer="https://idp.test", interactive=True, login=login)
    assert source == "$SIGSTORE_ID_TOKEN" and len(calls) == 1


@pytest.mark.parametrize("env,interactive,issuer,reason", [
    ({}, False, "https://idp.test", "skipped: not on a terminal"),
    ({"CI": "true"}, True, "https://idp.test", "skipped: in CI"),
    ({"CI": ""}, True, "https://idp.test", "skipped: in CI"),
    ({}, True, None, "skipped: no OIDC issuer URL known"),
])
def test_browser_login_is_skipped(env: dict[str, str], interactive: bool, issuer: str | None,
                                  reason: str) -> None:
    calls, login = _logins()
    with pytest.raises(TokenInvalidError) as info:
        find_identity_token(env=env, oidc_issuer=issuer, interactive=interactive, login=login)
    assert f"{BROWSER_SOURCE} ({reason}" in info.value.message and calls == []


def test_terminal_is_detected_from_stdin_and_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    class Stream:
        def __init__(self, tty: bool) -> None:
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    calls, login = _logins()
    for stdin, stderr in ((False, True), (True, False)):
        monkeypatch.setattr("sys.stdin", Stream(stdin))
        monkeypatch.setattr("sys.stderr", Stream(stderr))
        with pytest.raises(TokenInvalidError, match="not on a terminal"):
            find_identity_token(env={}, oidc_issuer="https://idp.test", login=login)
    monkeypatch.setattr("sys.stdin", Stream(True))
    monkeypatch.setattr("sys.stderr", Stream(True))
    assert find_identity_token(env={}, oidc_issuer="https://idp.test", login=login)[1] \
        == BROWSER_SOURCE
    assert len(calls) == 1


@pytest.mark.parametrize("query,message", [
    ("state={state}&state=other&code=c", "query is malformed"),  # a repeated parameter
    ("state={state}", "no authorization code"),
])
def test_malformed_callbacks_are_refused(provider: Provider, query: str, message: str) -> None:
    def straight_to_callback(url: str) -> bool:
        q = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        with httpx.Client(trust_env=False, timeout=5) as client:
            # Other paths are not the callback: they neither count nor end the wait.
            assert client.get(q["redirect_uri"].replace("/auth/callback", "/favicon.ico")) \
                .status_code == 404
            client.get(q["redirect_uri"] + "?" + query.format(state=q["state"]))
        return True

    with pytest.raises(TokenInvalidError, match=message):
        browser_login(provider.issuer, open_browser=straight_to_callback, timeout=10)
    assert provider.token_requests == []
