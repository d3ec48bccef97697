"""The built-in OIDC issuer over HTTP: discovery, JWKS, a secret-guarded token endpoint, and
(for the email issuer) a browser login: an authorization endpoint and the code grant.

SPEC: OpenID Connect Discovery 1.0 §4 (``/.well-known/openid-configuration`` under the issuer
URL), RFC 7517 (JWKS), RFC 6750 §2.1 (``Authorization: Bearer``), RFC 6749 §5.1 (token
responses are not cached). The issuer's public URL must end with ``prefix``, e.g.
``http://127.0.0.1:PORT/oidc`` for the default prefix, or discovery will not find it.

The browser login (:mod:`sealtrail.issuer.authorization`) certifies whatever email address is
typed on its page: it is for local testing, and answers only clients on the loopback
interface unless ``login_from_anywhere`` is given. ``POST /token`` takes either the JSON
request of a holder of the token secret, or a form of the code grant (RFC 6749 §4.1.3), whose
code and PKCE verifier are the credential.

Neither the secret, nor codes, nor minted tokens are ever logged.
"""

from __future__ import annotations

import hmac
import html
import ipaddress
import logging
from urllib.parse import parse_qs, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from sealtrail.errors import InputError, UsageError
from sealtrail.issuer import BuiltinIssuer, TokenRequest
from sealtrail.issuer.authorization import (AuthorizationCodes, AuthorizationError,
                                            AuthorizationRequest, GrantError,
                                            check_login_hint, parse_authorization_request)
from sealtrail.server._http import ApiError, read_body, read_json

__all__ = ["MAX_TOKEN_REQUEST_BYTES", "build_oidc_routes"]

log = logging.getLogger("sealtrail.server.oidc")

# A token request is a few hundred bytes; nothing legitimate comes close to this.
MAX_TOKEN_REQUEST_BYTES = 16 * 1024
_MIN_SECRET = 16
_MAX_SECRET = 1024
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="sealtrail-oidc"'}
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_METADATA_CACHE = {"Cache-Control": "public, max-age=300"}
# The authorization page: never cached, never framed (clickjacking), no referrer leaking the
# query (it holds the state and the PKCE challenge), and no script or remote content at all.
_PAGE = {"Cache-Control": "no-store", "Pragma": "no-cache", "X-Frame-Options": "DENY",
         "Referrer-Policy": "no-referrer",
         "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                    "frame-ancestors 'none'"}
# A code-grant form is five short fields.
MAX_GRANT_FORM_BYTES = 8 * 1024
_FORM = "application/x-www-form-urlencoded"


def build_oidc_routes(issuer: BuiltinIssuer, secret: bytes, prefix: str = "/oidc", *,
                      browser_login: bool = False, login_from_anywhere: bool = False,
                      codes: AuthorizationCodes | None = None) -> list[Route]:
    """Routes for ``issuer`` under ``prefix``: GET ``/.well-known/openid-configuration``,
    GET ``/jwks``, POST ``/token``, and with ``browser_login`` GET ``/authorize``.

    ``secret`` guards the token endpoint (sent as ``Authorization: Bearer <secret>``); it must
    be 16-1024 bytes of printable ASCII without spaces, so that it fits in a header. Raises
    :class:`UsageError` otherwise. ``browser_login`` adds the authorization-code flow with
    PKCE for email identities (advertised in discovery), answered to loopback clients only
    unless ``login_from_anywhere``; ``codes`` holds its codes (default: a fresh
    :class:`AuthorizationCodes` on the real clock). The app must install
    ``sealtrail.server._http``'s ``EXCEPTION_HANDLERS`` so refusals become JSON errors.
    """
    if not isinstance(secret, bytes) or not _MIN_SECRET <= len(secret) <= _MAX_SECRET \
            or any(not 0x21 <= b <= 0x7E for b in secret):
        # No evidence: the value is the secret itself.
        raise UsageError("the token secret must be 16-1024 bytes of printable ASCII without "
                         "spaces")
    if not isinstance(prefix, str) or (prefix and (not prefix.startswith("/")
                                                   or prefix.endswith("/"))):
        raise UsageError("the OIDC route prefix must start with '/' and not end with '/'",
                         actual=prefix)
    discovery = issuer.discovery(browser_login=browser_login)
    jwks = issuer.jwks()
    if browser_login and codes is None:
        codes = AuthorizationCodes(issuer)

    async def get_discovery(request: Request) -> Response:
        return JSONResponse(discovery, headers=_METADATA_CACHE)

    async def get_jwks(request: Request) -> Response:
        return JSONResponse(jwks, headers=_METADATA_CACHE)

    async def get_authorize(request: Request) -> Response:
        assert codes is not None
        if not login_from_anywhere and not _on_loopback(request):
            return _page(403, "Not here", "<p>This issuer's browser login certifies any address "
                         "typed into it, so it answers only on the machine it runs on.</p>")
        params = _single_values(request.url.query)
        if params is None:
            return _page(400, "Bad request", "<p>A parameter is repeated.</p>")
        try:
            authorization = parse_authorization_request(params)
        except AuthorizationError as exc:
            if exc.redirect:
                return _redirect(params["redirect_uri"], {"error": exc.error,
                                 "error_description": exc.description}, params.get("state"))
            return _page(400, "Bad request", f"<p>{html.escape(exc.description)}</p>")
        hint = params.get("login_hint")
        if not hint:
            return _login_page(request.url.path, authorization, "")
        try:
            email = check_login_hint(hint)
        except InputError:
            return _login_page(request.url.path, authorization,
                               "That is not an email address this issuer can certify.", 400)
        code = codes.issue(authorization, email)
        log.info("issued an authorization code (browser login)")
        return _redirect(authorization.redirect_uri, {"code": code}, authorization.state)

    async def post_token(request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if codes is not None and content_type == _FORM:
            return await _code_grant(request, codes)
        # Authenticate before reading the body: strangers cannot make us parse anything.
        _check_secret(request, secret)
        token_request = TokenRequest.from_json(
            await read_json(request, limit=MAX_TOKEN_REQUEST_BYTES))
        token = issuer.mint(token_request)
        log.info("minted a %s token", token_request.kind)
        # SPEC: RFC 6749 §5.1 response shape; the identity token doubles as the access token
        # so that clients reading either member get a token the CA accepts.
        return JSONResponse({"access_token": token, "id_token": token, "token_type": "Bearer",
                             "expires_in": token_request.lifetime}, headers=_NO_STORE)

    routes = [
        Route(prefix + "/.well-known/openid-configuration", get_discovery, methods=["GET"]),
        Route(prefix + "/jwks", get_jwks, methods=["GET"]),
        Route(prefix + "/token", post_token, methods=["POST"]),
    ]
    if browser_login:
        routes.append(Route(prefix + "/authorize", get_authorize, methods=["GET"]))
    return routes


async def _code_grant(request: Request, codes: AuthorizationCodes) -> Response:
    """The token request of the code grant: RFC 6749 §4.1.3, answered as §5.1 / §5.2."""
    form = _single_values((await read_body(request, MAX_GRANT_FORM_BYTES))
                          .decode("latin-1"))
    try:
        if form is None:
            raise GrantError("invalid_request", "a parameter is missing, repeated or malformed")
        token, lifetime = codes.redeem(form)
    except GrantError as exc:
        return JSONResponse({"error": exc.error, "error_description": exc.description},
                            status_code=400, headers=_NO_STORE)
    log.info("minted an email token (browser login)")
    return JSONResponse({"access_token": token, "id_token": token, "token_type": "Bearer",
                         "expires_in": lifetime}, headers=_NO_STORE)


def _single_values(query: str) -> dict[str, str] | None:
    """A query or form as a dict; None when a parameter is repeated (two states, two codes:
    not something to choose from) or the text does not parse."""
    try:
        raw = parse_qs(query, keep_blank_values=True, max_num_fields=32)
    except ValueError:
        return None
    if any(len(values) != 1 for values in raw.values()):
        return None
    return {key: values[0] for key, values in raw.items()}


def _on_loopback(request: Request) -> bool:
    host = request.client.host if request.client is not None else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _redirect(redirect_uri: str, values: dict[str, str], state: str | None) -> Response:
    # SPEC: RFC 6749 §4.1.2: the answer goes in the redirect URI's query, with the state.
    if state is not None:
        values = {**values, "state": state}
    separator = "&" if urlsplit(redirect_uri).query else "?"
    return RedirectResponse(redirect_uri + separator + urlencode(values), status_code=302,
                            headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


def _page(status: int, title: str, body: str) -> Response:
    return HTMLResponse(f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}"
                        f"</title><h1>{html.escape(title)}</h1>{body}",
                        status_code=status, headers=_PAGE)


def _login_page(action: str, authorization: AuthorizationRequest, problem: str,
                status: int = 200) -> Response:
    """The page a person fills in: the address to certify, and the request's own fields
    (hidden), submitted back to this endpoint as a GET."""
    fields = "".join(f'<input type=hidden name="{html.escape(name)}" '
                     f'value="{html.escape(value)}">'
                     for name, value in authorization.query().items())
    warning = f"<p><strong>{html.escape(problem)}</strong></p>" if problem else ""
    return _page(status, "Log in to the sealtrail built-in issuer",
                 "<p>For local testing: this issuer certifies the address you type, with no "
                 "password.</p>" + warning
                 + f'<form method="get" action="{html.escape(action)}">{fields}'
                 '<label>Email address <input type=email name="login_hint" value="" '
                 'required autofocus></label> <button type=submit>Log in</button></form>')


def _check_secret(request: Request, secret: bytes) -> None:
    header = request.headers.get("authorization")
    if header is None:
        raise ApiError(401, "UNAUTHORIZED", "the token endpoint needs 'Authorization: Bearer "
                       "<secret>'", _CHALLENGE)
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented:
        raise ApiError(401, "UNAUTHORIZED", "the token endpoint needs a Bearer credential",
                       _CHALLENGE)
    # Starlette decodes headers as latin-1, so this recovers the bytes that were sent.
    try:
        sent = presented.strip().encode("latin-1")
    except UnicodeEncodeError:  # pragma: no cover - latin-1-decoded text always re-encodes
        sent = b""
    # SPEC: docs/instance.md: secrets are compared in constant time.
    if not hmac.compare_digest(sent, secret):
        raise ApiError(401, "UNAUTHORIZED", "wrong token secret", _CHALLENGE)
