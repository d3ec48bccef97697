"""Hostile input to the services, in-process (no sockets): every answer is a 4xx JSON error.

Two families that gave 500s (issue 13, E): a query parameter spelled with digits that are not
ASCII (``str.isdigit`` and ``int`` accept "²" and "١٢"), and a lone UTF-16 surrogate escaped
in request JSON (``"\\ud800"`` parses, then cannot be encoded back into an error message or
a SQLite query).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from sealtrail.server.instance import Instance
from sealtrail.server.log_api import build_log_app
from sealtrail.server.log_instance import LogDirectory
from tests.unit.server._lifespan import running_instance_app

# Digits Python's int() accepts but HTTP (RFC 9110's DIGIT is %x30-39) does not.
NON_ASCII_DIGITS = ["\u0661\u0662", "\u00b2", "1\u00b2", "\uff11"]
SURROGATE = b'"\\ud800"'


def call(app: Starlette, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, content=body, headers=headers)
    return asyncio.run(go())


def assert_client_error(response: httpx.Response) -> dict[str, Any]:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    body = response.json()
    assert body["code"] == response.status_code and body["reason"] != "INTERNAL"
    return body


@pytest.fixture(scope="module")
def log_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Starlette]:
    directory = LogDirectory(str(tmp_path_factory.mktemp("logs")))
    directory.create("log.example")
    services = directory.open()
    try:
        yield build_log_app(services)
    finally:
        for service in services:
            service.engine.close()


@pytest.fixture(scope="module")
def instance_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Instance, Starlette]]:
    with running_instance_app(str(tmp_path_factory.mktemp("instance") / "i")) as running:
        yield running


@pytest.mark.parametrize("digits", NON_ASCII_DIGITS)
@pytest.mark.parametrize("path", [
    "/api/v1/log/entries?logIndex={}",
    "/api/v1/log/proof?firstSize={}&lastSize=1",
    "/api/v1/log/proof?firstSize=1&lastSize={}",
])
def test_a_non_ascii_digit_in_a_query_parameter_is_a_400(log_app: Starlette, path: str,
                                                          digits: str) -> None:
    body = assert_client_error(call(log_app, "GET", path.format(digits)))
    assert body["code"] == 400 and "integer" in body["message"]


@pytest.mark.parametrize("path,body", [
    ("/api/v1/log/entries", b'{"kind": ' + SURROGATE + b', "apiVersion": "0.0.1", "spec": {}}'),
    ("/api/v1/log/entries", b'{' + SURROGATE + b': 1}'),
    ("/api/v1/log/entries/retrieve", b'{"entryUUIDs": [' + SURROGATE + b']}'),
    ("/api/v1/index/retrieve", b'{"email": ' + SURROGATE + b'}'),
    ("/api/v1/index/retrieve", b'{"identity": "a\\udc00b"}'),
    ("/logs/log1/api/v2/log/entries", b'{' + SURROGATE + b': {}}'),
    # The same surrogate encoded as UTF-8 bytes (invalid UTF-8, which json.loads(bytes)
    # would take).
    ("/api/v1/index/retrieve", b'{"identity": "\xed\xa0\x80"}'),
])
def test_a_lone_surrogate_in_log_request_json_is_a_400(log_app: Starlette, path: str,
                                                       body: bytes) -> None:
    answer = assert_client_error(call(log_app, "POST", path, body))
    assert answer["code"] == 400
    assert "surrogate" in answer["message"] or "not valid JSON" in answer["message"]


def test_a_surrogate_pair_is_a_character_not_an_error(log_app: Starlette) -> None:
    # "\ud83d\ude00" is one emoji written as a UTF-16 pair: valid JSON text, searched for.
    response = call(log_app, "POST", "/api/v1/index/retrieve",
                    b'{"identity": "\\ud83d\\ude00@example.com"}')
    assert response.status_code == 200 and response.json() == []


def test_a_lone_surrogate_in_instance_request_json_is_a_400(
        instance_app: tuple[Instance, Starlette]) -> None:
    instance, app = instance_app
    secret = instance.token_secret().decode()
    json_type = {"Content-Type": "application/json"}
    for path, body, headers in [
        ("/api/v1/timestamp", b'{"artifactHash": "AAAA", "hashAlgorithm": ' + SURROGATE + b'}',
         json_type),
        ("/api/v1/timestamp", b'{' + SURROGATE + b': "x"}', json_type),
        ("/oidc/token", b'{"kind": ' + SURROGATE + b'}', {"Authorization": f"Bearer {secret}"}),
        ("/api/v2/signingCert", b'{"credentials": {"oidcIdentityToken": ' + SURROGATE + b'}}', {}),
        ("/ct/v1/add-pre-chain", b'{"chain": [' + SURROGATE + b']}', {}),
    ]:
        answer = assert_client_error(call(app, "POST", path, body, headers))
        assert "surrogate" in answer["message"], (path, answer)


def test_an_error_message_that_cannot_be_encoded_still_answers_json() -> None:
    # Defence in depth: should a surrogate reach an error message some other way, the
    # answer is still the JSON error, with the character escaped.
    from sealtrail.server._http import error_response

    response = error_response(400, "BAD_REQUEST", "bad value \ud800")
    assert response.status_code == 400
    assert b"\\ud800" in response.body


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_in_request_json_are_a_400(log_app: Starlette, token: bytes) -> None:
    # SPEC: RFC 8259 §6: not JSON numbers. Python's parser takes them unless told not to, and
    # a value it made from them cannot be written back as JSON.
    answer = assert_client_error(call(log_app, "POST", "/api/v1/index/retrieve",
                                      b'{"email": "a@example.com", "limit": ' + token + b'}'))
    assert answer["code"] == 400 and token.decode().lstrip("-") in answer["message"]
