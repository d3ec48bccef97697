"""The TSA over real HTTP: uvicorn on 127.0.0.1 (ephemeral port), both request forms."""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

import httpx
import pytest
import uvicorn
from cryptography import x509
from rfc3161_client import (
    HashAlgorithm,
    TimestampRequestBuilder,
    VerifierBuilder,
    decode_timestamp_response,
)
from starlette.applications import Starlette

from sealtrail.models.rfc3161 import TimestampToken
from sealtrail.models.trusted_root import CertificateAuthority, ValidityWindow
from sealtrail.server._http import EXCEPTION_HANDLERS
from sealtrail.server.tsa_api import build_tsa_routes
from sealtrail.tsa.authority import MAX_REQUEST_BYTES, TimestampAuthority
from sealtrail.tsa.keys import TSAMaterial, create_tsa
from sealtrail.verify._timestamp import verify_timestamp

pytestmark = pytest.mark.integration

SIGNATURE = b"signature bytes to timestamp over HTTP"


class Running(NamedTuple):
    url: str
    material: TSAMaterial
    client: httpx.Client


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    material = create_tsa("sealtrail-test", "http TSA")
    app = Starlette(routes=build_tsa_routes(TimestampAuthority(material.leaf_key, material.chain)),
                    exception_handlers=EXCEPTION_HANDLERS)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # an ephemeral port chosen by the kernel
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url, timeout=10) as client:
        yield Running(url, material, client)
    server.should_exit = True
    thread.join(15)
    sock.close()


def _trusted(material: TSAMaterial) -> list[CertificateAuthority]:
    start = material.root_cert.not_valid_before_utc
    return [CertificateAuthority("http://tsa", material.chain, ValidityWindow(start))]


def _assert_error(response: httpx.Response, status: int, reason: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["code"] == status
    assert body["reason"] == reason
    assert isinstance(body["message"], str) and "\n" not in body["message"]


@pytest.mark.parametrize("cert_req", [True, False])
def test_der_request(running: Running, cert_req: bool) -> None:
    # What sigstore-python (certReq, nonce) and sigstore-go (neither) send.
    query = (TimestampRequestBuilder().data(SIGNATURE).hash_algorithm(HashAlgorithm.SHA256)
             .nonce(nonce=cert_req).cert_request(cert_request=cert_req).build())
    before = datetime.now(timezone.utc).replace(microsecond=0)
    response = running.client.post("/api/v1/timestamp", content=query.as_bytes(),
                                   headers={"Content-Type": "application/timestamp-query"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/timestamp-reply"
    reply = decode_timestamp_response(response.content)
    builder = VerifierBuilder().tsa_certificate(running.material.leaf_cert) \
        .add_root_certificate(running.material.root_cert)
    if cert_req:
        builder = builder.nonce(query.nonce)
        assert reply.tst_info.nonce == query.nonce
    assert builder.build().verify_message(reply, SIGNATURE)
    assert len(reply.signed_data.certificates) == (1 if cert_req else 0)
    gen_time = verify_timestamp(TimestampToken.from_der(response.content), SIGNATURE,
                                _trusted(running.material))
    assert before <= gen_time <= datetime.now(timezone.utc) + timedelta(seconds=1)


def test_json_request(running: Running) -> None:
    # sigstore-js's form, with a charset parameter on the media type.
    body = {"artifactHash": base64.b64encode(hashlib.sha256(SIGNATURE).digest()).decode(),
            "hashAlgorithm": "sha256", "certificates": True, "nonce": 424242}
    response = running.client.post("/api/v1/timestamp", json=body,
                                   headers={"Content-Type": "application/json; charset=utf-8"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/timestamp-reply"
    token = TimestampToken.from_der(response.content)
    assert token.nonce == 424242
    verify_timestamp(token, SIGNATURE, _trusted(running.material))
    verifier = VerifierBuilder().tsa_certificate(running.material.leaf_cert) \
        .add_root_certificate(running.material.root_cert).nonce(424242).build()
    assert verifier.verify_message(decode_timestamp_response(response.content), SIGNATURE)


def test_certchain(running: Running) -> None:
    response = running.client.get("/api/v1/timestamp/certchain")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pem-certificate-chain"
    assert tuple(x509.load_pem_x509_certificates(response.content)) == running.material.chain


def test_malformed_der_is_400(running: Running) -> None:
    response = running.client.post("/api/v1/timestamp", content=b"\x30\x03garbage",
                                   headers={"Content-Type": "application/timestamp-query"})
    _assert_error(response, 400, "TIMESTAMP_REQUEST_INVALID")


def test_sha1_is_400(running: Running) -> None:
    from asn1crypto import tsp

    der = tsp.TimeStampReq({"version": 1, "message_imprint": {
        "hash_algorithm": {"algorithm": "sha1"},
        "hashed_message": hashlib.sha1(SIGNATURE).digest()}}).dump()
    response = running.client.post("/api/v1/timestamp", content=der,
                                   headers={"Content-Type": "application/timestamp-query"})
    _assert_error(response, 400, "TIMESTAMP_REQUEST_INVALID")
    assert "SHA-1" in response.json()["message"]


def test_bad_json_is_400(running: Running) -> None:
    response = running.client.post("/api/v1/timestamp", content=b"{not json",
                                   headers={"Content-Type": "application/json"})
    _assert_error(response, 400, "BAD_REQUEST")
    response = running.client.post("/api/v1/timestamp", json={"hashAlgorithm": "sha256"})
    _assert_error(response, 400, "TIMESTAMP_REQUEST_INVALID")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/octet-stream"])
def test_other_media_types_are_415(running: Running, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = running.client.post("/api/v1/timestamp", content=b"\x30\x00", headers=headers)
    _assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_oversized_bodies_are_413(running: Running) -> None:
    big = b"\x00" * (MAX_REQUEST_BYTES + 1)
    response = running.client.post("/api/v1/timestamp", content=big,
                                    headers={"Content-Type": "application/timestamp-query"})
    _assert_error(response, 413, "BODY_TOO_LARGE")

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer encoding
        for _ in range(5):
            yield b"\x00" * 4096

    response = running.client.post("/api/v1/timestamp", content=chunks(),
                                   headers={"Content-Type": "application/timestamp-query"})
    _assert_error(response, 413, "BODY_TOO_LARGE")
    response = running.client.post("/api/v1/timestamp", content=chunks(),
                                   headers={"Content-Type": "application/json"})
    _assert_error(response, 413, "BODY_TOO_LARGE")


def test_wrong_methods_are_json_errors(running: Running) -> None:
    _assert_error(running.client.get("/api/v1/timestamp"), 405, "METHOD_NOT_ALLOWED")
    _assert_error(running.client.post("/api/v1/timestamp/certchain"), 405,
                  "METHOD_NOT_ALLOWED")


def test_sigstore_python_client(running: Running) -> None:
    # sigstore-python's own TSA client (what `sigstore sign` runs against a signing config's
    # TSA URL), then the same check its verifier makes against the trusted root's TSA chain.
    timestamp = pytest.importorskip("sigstore._internal.timestamp")
    client = timestamp.TimestampAuthorityClient(f"{running.url}/api/v1/timestamp")
    reply = client.request_timestamp(SIGNATURE)
    verifier = VerifierBuilder().tsa_certificate(running.material.leaf_cert) \
        .add_root_certificate(running.material.root_cert).build()
    assert verifier.verify_message(reply, SIGNATURE)
    verify_timestamp(TimestampToken.from_der(reply.as_bytes()), SIGNATURE,
                     _trusted(running.material))
