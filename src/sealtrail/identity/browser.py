"""Interactive OIDC login in a browser: authorization code with PKCE, for people at a terminal.

The last identity token source of ``sealtrail sign``/``attest``. The flow is the one
sigstore-python runs (sigstore-wire.md §9):

1. OIDC discovery: ``GET {issuer}/.well-known/openid-configuration``;
2. a one-shot HTTP listener on ``127.0.0.1`` (ephemeral port) whose redirect URI is
   ``http://localhost:<port>/auth/callback``;
3. the authorization URL (scope ``openid email``, PKCE S256 challenge, random ``state`` and
   ``nonce``) is printed to stderr -- so a login over SSH works by pasting it into a local
   browser -- and handed to ``open_browser``;
4. the browser comes back to the listener with ``code`` and ``state``; the ``state`` must be
   ours (constant-time comparison), an ``error=`` answer is reported with its description;
5. the code is exchanged at the token endpoint with the PKCE verifier, and the returned
   ``id_token`` must carry our ``nonce``.

The token's signature is not verified here: the CA verifies it. The nonce check only binds
the answer to *this* login request. The token, the code and the verifier are never printed
or logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import sys
import threading
import webbrowser
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from sealtrail.errors import ServiceUnavailableError, TokenInvalidError
from sealtrail.net.http import HttpClient, RetryPolicy, http_client, service_message

__all__ = ["CALLBACK_PATH", "DEFAULT_CLIENT_ID", "SCOPE", "browser_login", "pkce_pair"]

DEFAULT_CLIENT_ID = "sigstore"
SCOPE = "openid email"
CALLBACK_PATH = "/auth/callback"
MAX_DISCOVERY_BYTES = 256 * 1024
MAX_TOKEN_RESPONSE_BYTES = 256 * 1024
MAX_ID_TOKEN_CHARS = 64 * 1024
# What we echo back of a provider's error text (it is foreign input).
MAX_ERROR_CHARS = 300
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def pkce_pair() -> tuple[str, str]:
    """A fresh PKCE ``(code_verifier, code_challenge)`` pair for method S256.

    SPEC: RFC 7636 §4.1-4.2: the verifier is 43-128 unreserved characters (``token_urlsafe``
    yields only ``A-Z a-z 0-9 - _``); the challenge is BASE64URL(SHA256(verifier)) unpadded.
    """
    verifier = secrets.token_urlsafe(48)  # 64 characters, 384 bits
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _clean(value: object) -> str:
    """A foreign string, made safe to show: one line, printable, bounded."""
    text = value if isinstance(value, str) else repr(value)
    text = "".join(ch if ch.isprintable() else "?" for ch in " ".join(text.split()))
    return text[:MAX_ERROR_CHARS]


def _check_url(url: Any, what: str) -> str:
    """``url`` if it is an https URL (or http on the loopback interface, for local issuers)."""
    if not isinstance(url, str) or not url or len(url) > 2048:
        raise ServiceUnavailableError(f"{what} is missing or not a URL", actual=_clean(url))
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise ServiceUnavailableError(f"{what} is not a URL", actual=_clean(url)) from None
    # The authorization code and the PKCE verifier travel to these endpoints: never over
    # plain HTTP to another machine.
    if not host or not (parts.scheme == "https" or (parts.scheme == "http" and host in _LOOPBACK)):
        raise ServiceUnavailableError(f"{what} must be an https URL", actual=_clean(url))
    return url


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        raise ServiceUnavailableError(f"{what} is not a JSON object")
    return data


def _discover(issuer: str, client: HttpClient) -> tuple[str, str]:
    """The issuer's ``(authorization_endpoint, token_endpoint)``.

    SPEC: OpenID Connect Discovery 1.0 §4: the document is at
    ``{issuer}/.well-known/openid-configuration`` and its ``issuer`` must be the issuer asked.
    """
    service = f"the OIDC issuer {issuer}"
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    status, _headers, body = client.request("GET", url, headers={"Accept": "application/json"},
                                            service=service, limit=MAX_DISCOVERY_BYTES)
    if status != 200:
        raise ServiceUnavailableError(f"{service} has no discovery document: "
                                      f"{service_message(body)}", actual=f"HTTP {status}")
    document = _json_object(body, f"{service}'s discovery document")
    named = document.get("issuer")
    if not isinstance(named, str) or named.rstrip("/") != issuer.rstrip("/"):
        raise ServiceUnavailableError(f"{service}'s discovery document names another issuer",
                                      actual=_clean(named), expected=issuer)
    methods = document.get("code_challenge_methods_supported")
    if isinstance(methods, list) and "S256" not in methods:
        raise ServiceUnavailableError(f"{service} does not support PKCE with S256",
                                      actual=_clean(methods))
    return (_check_url(document.get("authorization_endpoint"), f"{service}'s authorization_endpoint"),
            _check_url(document.get("token_endpoint"), f"{service}'s token_endpoint"))


class _CallbackServer(HTTPServer):
    """A one-shot listener for the browser's redirect: keeps the first callback's query."""

    # A port left by an earlier run in TIME_WAIT must not stop us; a live listener still does.
    allow_reuse_address = True

    def __init__(self) -> None:
        # SPEC: RFC 8252 §7.3 / §8.3: a loopback redirect, listening on the loopback
        # interface only, never on all interfaces.
        super().__init__(("127.0.0.1", 0), _CallbackHandler)
        self.params: dict[str, str] | None = None
        self.problem: str | None = None
        self.done = threading.Event()


class _CallbackHandler(BaseHTTPRequestHandler):
    server: _CallbackServer
    # A connection that stalls must not hold the (single-threaded) listener for long.
    timeout = 5
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence: the default logs the request line, which carries the authorization code."""

    def _reply(self, status: int, text: str) -> None:
        body = (f"<!doctype html><meta charset=utf-8><title>sealtrail</title>"
                f"<p>{text}</p>").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        """Take the first ``/auth/callback`` request; anything else is not ours."""
        parts = urlsplit(self.path)
        if parts.path != CALLBACK_PATH:
            self._reply(404, "Not found.")
            return
        if self.server.done.is_set():
            self._reply(409, "This login has already completed.")
            return
        try:
            raw = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False,
                           max_num_fields=20)
        except ValueError:
            raw = None
        if raw is None or any(len(values) != 1 for values in raw.values()):
            # A repeated parameter (two states, two codes) is not an answer we can trust.
            self.server.problem = "the login callback's query is malformed"
        else:
            self.server.params = {key: values[0] for key, values in raw.items()}
        self._reply(200, "sealtrail received the login response. You can close this tab and "
                         "return to the terminal.")
        self.server.done.set()


def _wait_for_callback(server: _CallbackServer, timeout: float) -> dict[str, str]:
    if not server.done.wait(timeout):
        raise TokenInvalidError(f"no browser login completed within {timeout:g} s; run the "
                                "command again, or give a token with --identity-token",
                                expected=f"a redirect to the callback within {timeout:g} s")
    if server.problem or server.params is None:
        raise TokenInvalidError(server.problem or "the login callback's query is malformed")
    return server.params


def _check_callback(params: dict[str, str], state: str) -> str:
    """The authorization code of a callback answering *our* request."""
    # SPEC: RFC 6749 §10.12: the state binds the callback to our request (CSRF); it is
    # compared in constant time. An error answer carries the state too (§4.1.2.1).
    got = params.get("state", "")
    if not hmac.compare_digest(got.encode("utf-8", "replace"), state.encode("ascii")):
        raise TokenInvalidError("the login callback's state does not match this login (a "
                                "stale or forged redirect); refused",
                                expected="the state this login sent")
    if "error" in params:
        description = params.get("error_description")
        raise TokenInvalidError(
            f"the issuer refused the login: {_clean(params['error'])}"
            + (f": {_clean(description)}" if description else ""))
    code = params.get("code")
    if not code:
        raise TokenInvalidError("the login callback carries no authorization code")
    return code


def _exchange(token_endpoint: str, client: HttpClient, *, code: str, verifier: str,
              redirect_uri: str, client_id: str, client_secret: str | None) -> str:
    """Trade the code for an id_token at the token endpoint.

    SPEC: RFC 6749 §4.1.3 (form POST: grant_type, code, redirect_uri, client_id) and RFC 7636
    §4.5 (code_verifier). A client secret, when there is one, goes in HTTP Basic (§2.3.1).
    """
    service = f"the OIDC token endpoint {token_endpoint}"
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "client_id": client_id, "code_verifier": verifier}
    headers = {"Accept": "application/json",
               "Content-Type": "application/x-www-form-urlencoded"}
    if client_secret is not None:
        pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    status, _headers, body = client.request("POST", token_endpoint,
                                            body=urlencode(form).encode("ascii"),
                                            headers=headers, service=service,
                                            limit=MAX_TOKEN_RESPONSE_BYTES)
    if 400 <= status < 500:
        # SPEC: RFC 6749 §5.2: {"error": ..., "error_description": ...}.
        try:
            answer = json.loads(body)
        except (ValueError, RecursionError):
            answer = None
        if isinstance(answer, dict) and isinstance(answer.get("error"), str):
            reason = _clean(answer["error"])
            if isinstance(answer.get("error_description"), str):
                reason += ": " + _clean(answer["error_description"])
        else:
            reason = service_message(body)
        raise TokenInvalidError(f"{service} refused the authorization code: {reason}",
                                actual=f"HTTP {status}")
    if status != 200:
        raise ServiceUnavailableError(f"{service} failed: {service_message(body)}",
                                      actual=f"HTTP {status}")
    id_token = _json_object(body, f"{service}'s answer").get("id_token")
    if not isinstance(id_token, str) or not id_token:
        raise TokenInvalidError(f"{service} answered without an id_token")
    if len(id_token) > MAX_ID_TOKEN_CHARS:
        raise TokenInvalidError(f"{service} answered with an oversized id_token",
                                actual=len(id_token), expected=f"<= {MAX_ID_TOKEN_CHARS} characters")
    return id_token


def _check_nonce(id_token: str, nonce: str) -> None:
    """Refuse an id_token that was not issued for this login (OIDC Core §3.1.3.7 item 11)."""
    from sealtrail.identity.tokens import unverified_claims

    # The CA verifies the signature; we only bind the token to our request.
    claims = unverified_claims(id_token, "the issuer's id_token")
    got = claims.get("nonce")
    if not isinstance(got, str) or not hmac.compare_digest(got.encode("utf-8", "replace"),
                                                           nonce.encode("ascii")):
        raise TokenInvalidError("the issuer's id_token does not carry this login's nonce; "
                                "refused", expected="the nonce this login sent",
                                actual="no nonce" if got is None else "another nonce")


def browser_login(issuer_url: str, *, client_id: str = DEFAULT_CLIENT_ID,
                  client_secret: str | None = None,
                  open_browser: Callable[[str], Any] = webbrowser.open,
                  timeout: float = 300, http: HttpClient | None = None) -> str:
    """Log in at ``issuer_url`` in a browser (authorization code + PKCE); return the id_token.

    The authorization URL is printed to stderr and passed to ``open_browser`` (whose failure
    is not fatal: the URL can be opened by hand). Waits up to ``timeout`` seconds for the
    browser's redirect to the local callback. ``http`` replaces the HTTP client used for
    discovery and the token exchange.

    Raises :class:`TokenInvalidError` when the login is refused, times out, or its answer
    does not match this request (state, nonce); :class:`ServiceUnavailableError` when the
    issuer cannot be reached or misbehaves.
    """
    issuer = _check_url(issuer_url, "the OIDC issuer URL")
    owned = http is None
    # No retries: an authorization code is single-use, so a replayed exchange could only fail.
    client = http or http_client(RetryPolicy(attempts=1, timeout=30.0))
    try:
        authorize, token_endpoint = _discover(issuer, client)
        verifier, challenge = pkce_pair()
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        server = _CallbackServer()
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                  name="sealtrail-oidc-callback", daemon=True)
        thread.start()
        try:
            # SPEC: RFC 8252 §7.3: the redirect names "localhost"-style loopback with the port
            # we listen on; sigstore-python registers http://localhost:<port>/auth/callback.
            redirect_uri = f"http://localhost:{server.server_address[1]}{CALLBACK_PATH}"
            query = urlencode({"response_type": "code", "client_id": client_id,
                               "redirect_uri": redirect_uri, "scope": SCOPE, "state": state,
                               "nonce": nonce, "code_challenge": challenge,
                               "code_challenge_method": "S256"})
            url = authorize + ("&" if urlsplit(authorize).query else "?") + query
            print(f"Log in to {issuer} in a browser; if none opens, open this URL:\n  {url}",
                  file=sys.stderr, flush=True)
            try:
                open_browser(url)
            except Exception:  # noqa: BLE001 - no browser is fine: the URL is printed
                pass
            params = _wait_for_callback(server, timeout)
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)
        code = _check_callback(params, state)
        id_token = _exchange(token_endpoint, client, code=code, verifier=verifier,
                             redirect_uri=redirect_uri, client_id=client_id,
                             client_secret=client_secret)
        _check_nonce(id_token, nonce)
        return id_token
    finally:
        if owned:
            client.close()
