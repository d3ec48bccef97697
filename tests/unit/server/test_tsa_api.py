"""sealtrail.server.tsa_api in-process (no sockets): the answers the live server cannot easily
be pushed into, such as an expired TSA certificate."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
from asn1crypto import tsp
from starlette.applications import Starlette

from sealtrail.server._http import EXCEPTION_HANDLERS
from sealtrail.server.tsa_api import build_tsa_routes
from sealtrail.tsa.authority import TimestampAuthority
from sealtrail.tsa.keys import create_tsa

QUERY = {"Content-Type": "application/timestamp-query"}


def _request() -> bytes:
    return tsp.TimeStampReq({"version": 1, "message_imprint": {
        "hash_algorithm": {"algorithm": "sha256"},
        "hashed_message": hashlib.sha256(b"sig").digest()}}).dump()


class _Client:
    """Calls the ASGI app in-process through httpx's ASGI transport."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://tsa") as client:
                return await client.post(path, **kwargs)
        return asyncio.run(call())


def _client(when: datetime) -> _Client:
    material = create_tsa("o", "routes", now=datetime(2026, 1, 1, tzinfo=timezone.utc))
    authority = TimestampAuthority(material.leaf_key, material.chain,
                                   clock=lambda: when.timestamp())
    return _Client(Starlette(routes=build_tsa_routes(authority),
                             exception_handlers=EXCEPTION_HANDLERS))


def test_expired_tsa_answers_503_not_a_token() -> None:
    client = _client(datetime(2040, 1, 1, tzinfo=timezone.utc))
    response = client.post("/api/v1/timestamp", content=_request(), headers=QUERY)
    assert response.status_code == 503
    assert response.json()["reason"] == "TSA_UNAVAILABLE"
    assert "not valid now" in response.json()["message"]


def test_valid_tsa_answers_200() -> None:
    client = _client(datetime(2026, 2, 1, tzinfo=timezone.utc) + timedelta(seconds=5))
    response = client.post("/api/v1/timestamp", content=_request(), headers=QUERY)
    assert response.status_code == 200
    assert tsp.TimeStampResp.load(response.content)["status"]["status"].native == "granted"


def test_invalid_content_length_is_400() -> None:
    client = _client(datetime(2026, 2, 1, tzinfo=timezone.utc))
    response = client.post("/api/v1/timestamp", content=_request(),
                           headers={**QUERY, "Content-Length": "abc"})
    assert response.status_code == 400
    assert response.json()["reason"] == "BAD_REQUEST"


def test_media_type_is_case_insensitive() -> None:
    client = _client(datetime(2026, 2, 1, tzinfo=timezone.utc))
    response = client.post("/api/v1/timestamp", content=_request(),
                           headers={"Content-Type": "Application/Timestamp-Query"})
    assert response.status_code == 200
