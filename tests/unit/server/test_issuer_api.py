"""Argument checks of sealtrail.server.issuer_api.build_oidc_routes (no server, no network)."""

from __future__ import annotations

from typing import Any

import pytest

from sealtrail.errors import UsageError
from sealtrail.issuer import BuiltinIssuer, create_issuer_key, create_token_secret
from sealtrail.server.issuer_api import build_oidc_routes

ISSUER = BuiltinIssuer("http://127.0.0.1:8080/oidc", create_issuer_key())


def test_routes_cover_discovery_jwks_and_token() -> None:
    routes = build_oidc_routes(ISSUER, create_token_secret())
    assert [(r.path, sorted(r.methods or ())) for r in routes] == [
        ("/oidc/.well-known/openid-configuration", ["GET", "HEAD"]),
        ("/oidc/jwks", ["GET", "HEAD"]),
        ("/oidc/token", ["POST"]),
    ]
    assert build_oidc_routes(ISSUER, create_token_secret(), prefix="/dev")[2].path == "/dev/token"
    assert build_oidc_routes(ISSUER, create_token_secret(), prefix="")[1].path == "/jwks"


@pytest.mark.parametrize("secret", [b"", b"short", b"x" * 15, b"x" * 1025, b"has space in it!!",
                                    b"trailing-newline-secret\n", "str-secret-of-length-20",
                                    b"\xff" * 20])
def test_unusable_secrets_are_refused_without_echoing_them(secret: Any) -> None:
    with pytest.raises(UsageError) as info:
        build_oidc_routes(ISSUER, secret)
    assert info.value.code == "USAGE"
    assert info.value.actual is None  # the secret is never evidence


@pytest.mark.parametrize("prefix", ["oidc", "/oidc/", None])
def test_malformed_prefixes_are_refused(prefix: Any) -> None:
    with pytest.raises(UsageError):
        build_oidc_routes(ISSUER, create_token_secret(), prefix=prefix)


def test_the_browser_login_answers_only_the_loopback_interface() -> None:
    # It certifies any address typed into it: from another machine it is refused, unless
    # the operator says otherwise.
    import asyncio

    import httpx
    from starlette.applications import Starlette

    from sealtrail.server._http import EXCEPTION_HANDLERS

    async def get(app: Starlette, params: dict[str, str]) -> httpx.Response:
        # Through httpx's ASGI transport, as a client at a documentation address would come.
        transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://issuer") as client:
            return await client.get("/oidc/authorize", params=params)

    query = {"response_type": "code", "client_id": "sigstore", "scope": "openid",
             "redirect_uri": "http://localhost:1/cb", "code_challenge": "c" * 43,
             "code_challenge_method": "S256", "login_hint": "dev@example.com"}
    for anywhere, status in ((False, 403), (True, 302)):
        app = Starlette(routes=build_oidc_routes(ISSUER, create_token_secret(),
                                                 browser_login=True,
                                                 login_from_anywhere=anywhere),
                        exception_handlers=EXCEPTION_HANDLERS)
        answer = asyncio.run(get(app, query))
        assert answer.status_code == status, answer.text
    routes = build_oidc_routes(ISSUER, create_token_secret(), browser_login=True)
    assert routes[-1].path == "/oidc/authorize"
