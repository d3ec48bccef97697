"""Fuzz the log service's HTTP API with hypothesis: malformed bodies, mutated valid requests,
odd paths and query strings. No request may yield a 5xx, a non-JSON error, or a hang."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any, Iterator

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.log_server import LogServer, b64

pytestmark = pytest.mark.integration

FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
TIMEOUT = httpx.Timeout(10.0)  # a hang shows up as a timeout error, which fails the test

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=40) | st.sampled_from(["", "AAAA", "sha256", "0.0.1", "0.0.2", "=", "-1"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["apiVersion", "kind", "spec", "data", "hash", "algorithm", "value",
                         "signature", "content", "publicKey", "digest", "verifier", "rawBytes",
                         "keyDetails", "envelope", "x"]) | st.text(max_size=8),
        children, max_size=5),
    max_leaves=20)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LogServer]:
    log_server = LogServer(tmp_path_factory.mktemp("fuzz") / "instance")
    log_server.start()
    yield log_server
    log_server.stop()


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=TIMEOUT) as http:
        yield http


def _valid_requests() -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    artifact = b"fuzz"
    signature = key.sign(artifact, ec.ECDSA(hashes.SHA256()))
    return {
        "/api/v1/log/entries": {"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(artifact).hexdigest()}},
            "signature": {"content": b64(signature), "publicKey": {"content": b64(pem)}}}},
        "/logs/log1/api/v2/log/entries": {"hashedRekordRequestV002": {
            "digest": b64(hashlib.sha256(artifact).digest()),
            "signature": {"content": b64(signature), "verifier": {
                "publicKey": {"rawBytes": b64(der)}, "keyDetails": "PKIX_ECDSA_P256_SHA_256"}}}},
        "/api/v1/log/entries/retrieve": {"logIndexes": [0]},
        "/api/v1/index/retrieve": {"hash": "sha256:" + "0" * 64},
    }


VALID = _valid_requests()
POST_PATHS = sorted(VALID)


def _check(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        body = response.json()
        assert body["code"] == response.status_code and isinstance(body["message"], str)


def _mutate(value: Any, path: list[Any], replacement: Any) -> Any:
    if not path:
        return replacement
    head, *rest = path
    if isinstance(value, dict) and value:
        key = sorted(value)[head % len(value)]
        value[key] = _mutate(value[key], rest, replacement)
    elif isinstance(value, list) and value:
        value[head % len(value)] = _mutate(value[head % len(value)], rest, replacement)
    return value


@FUZZ
@given(path=st.sampled_from(POST_PATHS), body=json_values)
def test_random_json_bodies(server: LogServer, client: httpx.Client, path: str, body: Any) -> None:
    _check(client.post(server.url + path, content=json.dumps(body).encode(),
                       headers={"content-type": "application/json"}))


@FUZZ
@given(path=st.sampled_from(POST_PATHS), where=st.lists(st.integers(0, 10), max_size=6),
       replacement=json_values)
def test_mutated_valid_requests(server: LogServer, client: httpx.Client, path: str,
                                where: list[int], replacement: Any) -> None:
    body = _mutate(copy.deepcopy(VALID[path]), where, replacement)
    # Encoded here, as the other tests do: httpx's json= refuses NaN and infinities, which a
    # hostile client sends as the non-standard tokens json.dumps writes (the server refuses them).
    _check(client.post(server.url + path, content=json.dumps(body).encode(),
                       headers={"content-type": "application/json"}))


@FUZZ
@given(path=st.sampled_from(POST_PATHS), raw=st.binary(max_size=300))
def test_random_bytes(server: LogServer, client: httpx.Client, path: str, raw: bytes) -> None:
    _check(client.post(server.url + path, content=raw))


segment = st.text(alphabet="0123456789abcdefx.p/-", max_size=24)


@FUZZ
@given(tail=segment, query=st.dictionaries(
    st.sampled_from(["logIndex", "firstSize", "lastSize", "treeID", "sha256", "identity", "key"]),
    st.text(alphabet="0123456789-abcdef", max_size=25), max_size=3))
def test_random_read_paths(server: LogServer, client: httpx.Client, tail: str, query: dict[str, str]) -> None:
    for base in ("/logs/log1/tile/", "/logs/log1/tile/entries/", "/api/v1/log/entries/",
                 "/api/v1/log/proof", "/api/v1/log/entries", "/logs/log1/api/v2/log/search"):
        _check(client.get(server.url + base + (tail if base.endswith("/") else ""), params=query))
