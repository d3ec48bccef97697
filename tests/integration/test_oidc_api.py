"""The built-in OIDC issuer served by a real uvicorn server on 127.0.0.1 (ephemeral port).

A relying party's view: discovery first, then the JWKS it names, then tokens minted over HTTP
verified against that JWKS (PyJWT's own JWKS client) and accepted by sigstore-python.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
import uvicorn
from sigstore.oidc import IdentityToken
from starlette.applications import Starlette

from sealtrail.issuer import BuiltinIssuer, create_issuer_key, create_token_secret, email_subject
from sealtrail.server._http import EXCEPTION_HANDLERS
from sealtrail.server.issuer_api import MAX_TOKEN_REQUEST_BYTES, build_oidc_routes

pytestmark = pytest.mark.integration

SHA = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Served:
    issuer_url: str
    secret: bytes
    client: httpx.Client

    def mint(self, body: Any, *, secret: bytes | None = None, **kwargs: Any) -> httpx.Response:
        auth = {"Authorization": "Bearer " + (secret or self.secret).decode()}
        return self.client.post(self.issuer_url + "/token", json=body, headers=auth, **kwargs)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    # Bind first so the issuer URL (which must name the port) is known before the app exists.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    issuer_url = f"http://127.0.0.1:{port}/oidc"
    secret = create_token_secret()
    issuer = BuiltinIssuer(issuer_url, create_issuer_key())
    app = Starlette(routes=build_oidc_routes(issuer, secret), exception_handlers=EXCEPTION_HANDLERS)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off",
                                           access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    # trust_env=False: no proxy from the environment may sit between us and loopback.
    with httpx.Client(timeout=10, trust_env=False) as client:
        yield Served(issuer_url, secret, client)
    server.should_exit = True
    thread.join(20)
    sock.close()


def discover(served: Served) -> dict[str, Any]:
    response = served.client.get(served.issuer_url + "/.well-known/openid-configuration")
    assert response.status_code == 200
    return response.json()


def verify_like_a_relying_party(served: Served, token: str) -> dict[str, Any]:
    """OIDC discovery -> jwks_uri -> key by kid -> signature, iss, aud, exp."""
    doc = discover(served)
    assert doc["issuer"] == served.issuer_url
    signing_key = jwt.PyJWKClient(doc["jwks_uri"], cache_keys=False).get_signing_key_from_jwt(token)
    return jwt.decode(token, signing_key.key, algorithms=doc["id_token_signing_alg_values_supported"],
                      audience="sigstore", issuer=doc["issuer"],
                      options={"require": ["iss", "sub", "aud", "iat", "exp"]})


def test_discovery_and_jwks_are_served(served: Served) -> None:
    doc = discover(served)
    assert doc["jwks_uri"] == served.issuer_url + "/jwks"
    assert doc["token_endpoint"] == served.issuer_url + "/token"
    jwks = served.client.get(doc["jwks_uri"])
    assert jwks.status_code == 200 and jwks.headers["content-type"] == "application/json"
    (key,) = jwks.json()["keys"]
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-256", "ES256", "sig")
    assert "d" not in key


def test_an_email_token_minted_over_http_verifies(served: Served) -> None:
    response = served.mint({"kind": "email", "email": "alice@example.com", "lifetime": 300})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "id_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300
    assert body["access_token"] == body["id_token"]
    claims = verify_like_a_relying_party(served, body["id_token"])
    assert claims["email"] == "alice@example.com" and claims["email_verified"] is True
    assert claims["sub"] == email_subject("alice@example.com")
    assert claims["exp"] - claims["iat"] == 300
    assert IdentityToken(body["id_token"]).issuer == served.issuer_url


def test_a_workflow_token_minted_over_http_verifies(served: Served) -> None:
    response = served.mint({"kind": "github-workflow", "repository": "octo-org/app",
                            "workflow": ".github/workflows/release.yml",
                            "ref": "refs/tags/v1.0.0", "sha": SHA, "event_name": "release"})
    assert response.status_code == 200, response.text
    token = response.json()["id_token"]
    claims = verify_like_a_relying_party(served, token)
    assert claims["sub"] == "repo:octo-org/app:ref:refs/tags/v1.0.0"
    assert claims["job_workflow_ref"] == \
        "octo-org/app/.github/workflows/release.yml@refs/tags/v1.0.0"
    assert claims["event_name"] == "release" and claims["sha"] == SHA
    assert IdentityToken(token).identity == claims["sub"]


def test_neither_secret_nor_tokens_are_logged(served: Served,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = served.mint({"kind": "email", "email": "alice@example.com"}).json()["id_token"]
    served.mint({"kind": "email", "email": "alice@example.com"}, secret=b"x" * 20)
    assert served.secret.decode() not in caplog.text
    assert token not in caplog.text and token.split(".")[2] not in caplog.text


def _error(response: httpx.Response, status: int, reason: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert (body["code"], body["reason"]) == (status, reason)
    assert "\n" not in body["message"]
    return body["message"]


def test_a_missing_secret_is_refused(served: Served) -> None:
    response = served.client.post(served.issuer_url + "/token",
                                  json={"kind": "email", "email": "alice@example.com"})
    _error(response, 401, "UNAUTHORIZED")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", [
    "Bearer wrong-secret-wrong-secret", "Token {secret}", "Basic dXNlcjpwYXNz", "bearer", "",
    "Bearer {secret} {secret}",
])
def test_a_wrong_secret_or_scheme_is_refused(served: Served, header: str) -> None:
    header = header.replace("{secret}", served.secret.decode())
    response = served.client.post(served.issuer_url + "/token", headers={"Authorization": header},
                                  json={"kind": "email", "email": "alice@example.com"})
    _error(response, 401, "UNAUTHORIZED")


def test_the_secret_with_one_byte_changed_is_refused(served: Served) -> None:
    altered = served.secret[:-1] + (b"A" if served.secret[-1:] != b"A" else b"B")
    _error(served.mint({"kind": "email", "email": "alice@example.com"}, secret=altered),
           401, "UNAUTHORIZED")
    _error(served.mint({"kind": "email", "email": "alice@example.com"},
                       secret=served.secret + b"x"), 401, "UNAUTHORIZED")


def test_the_scheme_name_is_case_insensitive(served: Served) -> None:
    response = served.client.post(served.issuer_url + "/token",
                                  headers={"Authorization": "BEARER " + served.secret.decode()},
                                  json={"kind": "email", "email": "alice@example.com"})
    assert response.status_code == 200


def test_a_malformed_body_is_refused(served: Served) -> None:
    auth = {"Authorization": "Bearer " + served.secret.decode()}
    _error(served.client.post(served.issuer_url + "/token", content=b"{not json", headers=auth),
           400, "BAD_REQUEST")
    _error(served.mint(["email"]), 400, "INPUT_INVALID")
    _error(served.mint({"kind": "email", "email": "not an email"}), 400, "INPUT_INVALID")
    message = _error(served.mint({"kind": "email", "email": "a@example.com", "admin": True}),
                     400, "INPUT_INVALID")
    assert "unknown members" in message


def test_an_unknown_kind_is_refused(served: Served) -> None:
    message = _error(served.mint({"kind": "saml", "email": "a@example.com"}), 400, "INPUT_INVALID")
    assert "unknown token kind" in message


def test_an_oversized_body_is_refused(served: Served) -> None:
    huge = {"kind": "email", "email": "a@example.com", "pad": "x" * MAX_TOKEN_REQUEST_BYTES}
    _error(served.mint(huge), 413, "BODY_TOO_LARGE")
    # Streamed without a Content-Length, the limit still holds.
    auth = {"Authorization": "Bearer " + served.secret.decode()}
    chunks = iter([json.dumps(huge).encode()[i:i + 4096]
                   for i in range(0, len(json.dumps(huge)), 4096)])
    _error(served.client.post(served.issuer_url + "/token", content=chunks, headers=auth),
           413, "BODY_TOO_LARGE")


def test_strangers_are_refused_before_the_body_is_read(served: Served) -> None:
    huge = {"kind": "email", "pad": "x" * (2 * MAX_TOKEN_REQUEST_BYTES)}
    _error(served.client.post(served.issuer_url + "/token", json=huge), 401, "UNAUTHORIZED")


def test_other_methods_and_paths_are_json_errors(served: Served) -> None:
    _error(served.client.get(served.issuer_url + "/token"), 405, "METHOD_NOT_ALLOWED")
    _error(served.client.get(served.issuer_url + "/authorize"), 404, "NOT_FOUND")
