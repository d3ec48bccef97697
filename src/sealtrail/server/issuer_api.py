"""The built-in OIDC issuer over HTTP: discovery, JWKS and a secret-guarded token endpoint.

SPEC: OpenID Connect Discovery 1.0 §4 (``/.well-known/openid-configuration`` under the issuer
URL), RFC 7517 (JWKS), RFC 6750 §2.1 (``Authorization: Bearer``), RFC 6749 §5.1 (token
responses are not cached). The issuer's public URL must end with ``prefix``, e.g.
``http://127.0.0.1:PORT/oidc`` for the default prefix, or discovery will not find it.

Neither the secret nor minted tokens are ever logged.
"""

from __future__ import annotations

import hmac
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sealtrail.errors import UsageError
from sealtrail.issuer import BuiltinIssuer, TokenRequest
from sealtrail.server._http import ApiError, read_json

__all__ = ["MAX_TOKEN_REQUEST_BYTES", "build_oidc_routes"]

log = logging.getLogger("sealtrail.server.oidc")

# A token request is a few hundred bytes; nothing legitimate comes close to this.
MAX_TOKEN_REQUEST_BYTES = 16 * 1024
_MIN_SECRET = 16
_MAX_SECRET = 1024
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="sealtrail-oidc"'}
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_METADATA_CACHE = {"Cache-Control": "public, max-age=300"}


def build_oidc_routes(issuer: BuiltinIssuer, secret: bytes, prefix: str = "/oidc") -> list[Route]:
    """Routes for ``issuer`` under ``prefix``: GET ``/.well-known/openid-configuration``,
    GET ``/jwks``, POST ``/token``.

    ``secret`` guards the token endpoint (sent as ``Authorization: Bearer <secret>``); it must
    be 16-1024 bytes of printable ASCII without spaces, so that it fits in a header. Raises
    :class:`UsageError` otherwise. The app must install ``sealtrail.server._http``'s
    ``EXCEPTION_HANDLERS`` so refusals become JSON errors.
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
    discovery = issuer.discovery()
    jwks = issuer.jwks()

    async def get_discovery(request: Request) -> Response:
        return JSONResponse(discovery, headers=_METADATA_CACHE)

    async def get_jwks(request: Request) -> Response:
        return JSONResponse(jwks, headers=_METADATA_CACHE)

    async def post_token(request: Request) -> Response:
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

    return [
        Route(prefix + "/.well-known/openid-configuration", get_discovery, methods=["GET"]),
        Route(prefix + "/jwks", get_jwks, methods=["GET"]),
        Route(prefix + "/token", post_token, methods=["POST"]),
    ]


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
