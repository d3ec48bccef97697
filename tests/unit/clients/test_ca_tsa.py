"""The CA and TSA clients and the retrying HTTP client they share, over its fake transport."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, Callable

import pytest
from asn1crypto import core, tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sealtrail.errors import (
    CertChainInvalidError,
    CertificateRequestInvalidError,
    Error,
    LogError,
    SCTInvalidError,
    TimestampInvalidError,
    TimestampRequestInvalidError,
    TokenInvalidError,
)
from sealtrail.net.http import HttpClient, HttpRequest, HttpResponse, RetryPolicy, http_client
from sealtrail.clients.ca import CAClient
from sealtrail.clients.rekor import RekorV1Client
from sealtrail.clients.tsa import TSAClient, build_request, check_reply
from tests.fakes.http import respond
from tests.fakes.tsa import FakeTSA

CA = "https://ca.test"
TSA = "https://tsa.test/api/v1/timestamp"
TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJl"


def client(handler: Callable[[HttpRequest], HttpResponse], sleeps: list[float] | None = None,
           **policy: Any) -> HttpClient:
    record = sleeps if sleeps is not None else []
    return http_client(RetryPolicy(**policy) if policy else None, transport=handler,
                       sleep=record.append)


def csr() -> x509.CertificateSigningRequest:
    key = ec.generate_private_key(ec.SECP256R1())
    return x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(
        key, hashes.SHA256())


def chain_pems(count: int = 3) -> list[str]:
    from tests.fakes.ca import FakeCA

    ca = FakeCA()
    from datetime import datetime, timezone

    leaf = ca.issue_leaf(ec.generate_private_key(ec.SECP256R1()).public_key(),
                         not_before=datetime.now(timezone.utc))
    certs = [leaf, *ca.chain][:count]
    return [c.public_bytes(serialization.Encoding.PEM).decode() for c in certs]


# -- retries ----------------------------------------------------------------------------------

def test_retries_5xx_and_429_with_growing_bounded_backoff() -> None:
    answers = [503, 429, 502, 201]
    seen: list[int] = []

    def handler(request: HttpRequest) -> HttpResponse:
        seen.append(len(seen))
        status = answers[len(seen) - 1]
        if status != 201:
            return respond(status, json={"message": "busy"})
        return respond(201, json={"signedCertificateEmbeddedSct": {
            "chain": {"certificates": chain_pems()}}})

    sleeps: list[float] = []
    result = CAClient(CA, client(handler, sleeps)).request_certificate(csr(), TOKEN)
    assert result.leaf is not None and len(result.chain) == 2
    assert len(seen) == 4 and len(sleeps) == 3
    policy = RetryPolicy()
    for attempt, slept in enumerate(sleeps, start=1):
        ceiling = min(policy.max_backoff, policy.backoff * 2 ** (attempt - 1))
        assert ceiling / 2 <= slept <= ceiling


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    calls = []

    def handler(request: HttpRequest) -> HttpResponse:
        calls.append(1)
        return respond(429, headers={"Retry-After": "3600"}, json={"message": "slow down"})

    sleeps: list[float] = []
    with pytest.raises(Error) as info:
        CAClient(CA, client(handler, sleeps, attempts=3, max_backoff=2.0)).request_certificate(
            csr(), TOKEN)
    assert len(calls) == 3 and sleeps == [2.0, 2.0]
    assert info.value.actual == "HTTP 429" and "slow down" in info.value.message


def test_connection_errors_are_retried_then_reported_naming_the_service() -> None:
    calls = []

    def handler(request: HttpRequest) -> HttpResponse:
        calls.append(1)
        raise ConnectionRefusedError(111, "Connection refused")

    sleeps: list[float] = []
    with pytest.raises(Error) as info:
        CAClient(CA, client(handler, sleeps, attempts=5)).request_certificate(csr(), TOKEN)
    assert info.value.code == "SERVICE_UNAVAILABLE"
    assert len(calls) == 5 and len(sleeps) == 4
    assert "cannot reach the CA at https://ca.test" in info.value.message


def test_client_errors_are_not_retried() -> None:
    calls = []

    def handler(request: HttpRequest) -> HttpResponse:
        calls.append(1)
        return respond(400, json={"code": 3, "message": "bad CSR"})

    with pytest.raises(CertificateRequestInvalidError, match="bad CSR"):
        CAClient(CA, client(handler)).request_certificate(csr(), TOKEN)
    assert len(calls) == 1


def test_timeouts_are_reported_not_retried() -> None:
    calls = []

    def handler(request: HttpRequest) -> HttpResponse:
        calls.append(1)
        raise TimeoutError("The read operation timed out")

    with pytest.raises(Error, match="did not answer in time"):
        CAClient(CA, client(handler)).request_certificate(csr(), TOKEN)
    assert len(calls) == 1  # the request may have been processed: not repeated


def test_rekor_client_shares_the_retries() -> None:
    calls = []

    def handler(request: HttpRequest) -> HttpResponse:
        calls.append(1)
        return respond(503, json={"message": "restarting"})

    with pytest.raises(LogError, match="HTTP 503"):
        RekorV1Client("https://rekor.test", client(handler, attempts=2)).create_entry({})
    assert len(calls) == 2


# -- the CA client ----------------------------------------------------------------------------

def test_ca_request_shape() -> None:
    captured: list[HttpRequest] = []

    def handler(request: HttpRequest) -> HttpResponse:
        captured.append(request)
        return respond(200, json={"signedCertificateEmbeddedSct": {
            "chain": {"certificates": chain_pems()}}})

    request_csr = csr()
    CAClient(CA + "/", client(handler)).request_certificate(request_csr, TOKEN)
    (request,) = captured
    assert request.method == "POST" and request.url == CA + "/api/v2/signingCert"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    body = json.loads(request.body)
    assert list(body) == ["certificateSigningRequest"]
    sent = x509.load_pem_x509_csr(base64.b64decode(body["certificateSigningRequest"]))
    assert sent == request_csr


@pytest.mark.parametrize("status", [401, 403])
def test_ca_token_refusal_is_a_token_error_without_the_token(status: int) -> None:
    def handler(request: HttpRequest) -> HttpResponse:
        return respond(status, json={"code": 16, "message": "token expired"})

    with pytest.raises(TokenInvalidError) as info:
        CAClient(CA, client(handler)).request_certificate(csr(), TOKEN)
    assert "token expired" in info.value.message and TOKEN not in info.value.diagnostics()


@pytest.mark.parametrize("payload,error,message", [
    ({"signedCertificateDetachedSct": {}}, SCTInvalidError, "detached SCT"),
    ({"other": 1}, CertChainInvalidError, "no signedCertificateEmbeddedSct"),
    ({"signedCertificateEmbeddedSct": {"chain": {}}}, CertChainInvalidError, "no certificate chain"),
    ({"signedCertificateEmbeddedSct": {"chain": {"certificates": "x"}}}, CertChainInvalidError,
     "list of PEM"),
    ({"signedCertificateEmbeddedSct": {"chain": {"certificates": ["not pem", "x"]}}},
     CertChainInvalidError, "not a PEM"),
    ([1, 2], CertChainInvalidError, "non-object"),
])
def test_ca_malformed_answers(payload: Any, error: type[Error], message: str) -> None:
    def handler(request: HttpRequest) -> HttpResponse:
        return respond(200, json=payload)

    with pytest.raises(error, match=message):
        CAClient(CA, client(handler)).request_certificate(csr(), TOKEN)


def test_ca_chain_of_one_is_refused() -> None:
    def handler(request: HttpRequest) -> HttpResponse:
        return respond(200, json={"signedCertificateEmbeddedSct": {
            "chain": {"certificates": chain_pems(1)}}})

    with pytest.raises(CertChainInvalidError, match="wrong length"):
        CAClient(CA, client(handler)).request_certificate(csr(), TOKEN)


def test_ca_answer_that_is_not_json_or_too_large() -> None:
    def text(request: HttpRequest) -> HttpResponse:
        return respond(200, content=b"<html>")

    with pytest.raises(CertChainInvalidError, match="other than JSON"):
        CAClient(CA, client(text)).request_certificate(csr(), TOKEN)

    def huge(request: HttpRequest) -> HttpResponse:
        return respond(200, content=b"x" * (2 * 1024 * 1024))

    with pytest.raises(Error, match="oversized"):
        CAClient(CA, client(huge)).request_certificate(csr(), TOKEN)


# -- the TSA client ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fake_tsa() -> FakeTSA:
    return FakeTSA()


def tsa_handler(fake: FakeTSA, **knobs: Any) -> Callable[[HttpRequest], HttpResponse]:
    def handler(request: HttpRequest) -> HttpResponse:
        assert request.headers["content-type"] == "application/timestamp-query"
        parsed = tsp.TimeStampReq.load(request.body)
        imprint = knobs.pop("imprint", parsed["message_imprint"]["hashed_message"].native)
        nonce = knobs.pop("nonce", parsed["nonce"].native)

        def set_imprint(tst: tsp.TSTInfo) -> None:
            tst["message_imprint"] = {"hash_algorithm": {"algorithm": "sha256"},
                                      "hashed_message": imprint}

        return respond(200, content=fake.response(b"", nonce=nonce, mutate_tst=set_imprint,
                                                         **knobs))
    return handler


def test_timestamp_request_shape() -> None:
    der = build_request(b"signature bytes", 424242)
    parsed = tsp.TimeStampReq.load(der)
    assert parsed["version"].native == "v1"
    assert parsed["message_imprint"]["hash_algorithm"]["algorithm"].native == "sha256"
    assert parsed["message_imprint"]["hashed_message"].native == \
        hashlib.sha256(b"signature bytes").digest()
    assert parsed["nonce"].native == 424242 and parsed["cert_req"].native is True
    for name in ("sha384", "sha512"):
        other = tsp.TimeStampReq.load(build_request(b"signature bytes", 7, name))
        algorithm = other["message_imprint"]["hash_algorithm"]
        assert algorithm["algorithm"].native == name
        # SPEC: RFC 5754 §2: parameters absent or NULL (TSAs refuse anything else).
        assert isinstance(algorithm["parameters"], (core.Void, core.Null))
        assert other["message_imprint"]["hashed_message"].native == \
            hashlib.new(name, b"signature bytes").digest()
    with pytest.raises(TimestampRequestInvalidError):
        build_request(b"x", 1, "sha1")


def test_timestamp_round_trip(fake_tsa: FakeTSA) -> None:
    reply = TSAClient(TSA, client(tsa_handler(fake_tsa))).timestamp(b"sig")
    assert reply.hash_algorithm == "sha256" and reply.nonce is not None
    assert tsp.TimeStampResp.load(reply.der)["status"]["status"].native == "granted"


def test_timestamp_of_something_else_is_refused(fake_tsa: FakeTSA) -> None:
    with pytest.raises(TimestampInvalidError, match="something else") as info:
        TSAClient(TSA, client(tsa_handler(fake_tsa, imprint=b"\1" * 32))).timestamp(b"sig")
    assert info.value.code == "TIMESTAMP_INVALID"


def test_timestamp_with_another_nonce_is_refused(fake_tsa: FakeTSA) -> None:
    with pytest.raises(TimestampInvalidError, match="nonce"):
        TSAClient(TSA, client(tsa_handler(fake_tsa, nonce=7))).timestamp(b"sig", nonce=8)


def _reply_without_token(status: dict[str, Any]) -> bytes:
    # RFC 3161 §2.4.2: timeStampToken is OPTIONAL (absent on refusals); asn1crypto's spec
    # insists on it when encoding, so the SEQUENCE is put together from its encoded status.
    from asn1crypto import core

    return core.Sequence(contents=tsp.PKIStatusInfo(status).dump()).dump()


def test_refused_status_is_reported(fake_tsa: FakeTSA) -> None:
    der = _reply_without_token({"status": "rejection", "status_string": ["unsupported policy"],
                                "fail_info": {"unaccepted_policy"}})
    with pytest.raises(TimestampInvalidError, match="refused to timestamp: rejection; "
                                                    "unsupported policy"):
        check_reply(der, b"sig", 1)


@pytest.mark.parametrize("mutate,message", [
    (lambda ci: ci.__setitem__("content_type", "data"), "not a CMS SignedData"),
])
def test_token_that_is_not_signed_data_is_refused(fake_tsa: FakeTSA, mutate: Any,
                                                  message: str) -> None:
    imprint = hashlib.sha256(b"sig").digest()
    token = fake_tsa.timestamp(b"sig", nonce=5, mutate=mutate)
    from asn1crypto import cms

    der = tsp.TimeStampResp({"status": {"status": "granted"},
                             "time_stamp_token": cms.ContentInfo.load(token)}).dump()
    assert imprint  # the token would otherwise match
    with pytest.raises(TimestampInvalidError, match=message):
        check_reply(der, b"sig", 5)


def test_token_over_other_content_is_refused(fake_tsa: FakeTSA) -> None:
    token = fake_tsa.timestamp(b"sig", nonce=5, e_content_type="data")
    from asn1crypto import cms

    der = tsp.TimeStampResp({"status": {"status": "granted"},
                             "time_stamp_token": cms.ContentInfo.load(token)}).dump()
    with pytest.raises(TimestampInvalidError, match="does not hold a TSTInfo"):
        check_reply(der, b"sig", 5)


@pytest.mark.parametrize("der", [b"", b"garbage", b"\x30\x03\x02\x01\x00"])
def test_garbage_answers_are_refused(der: bytes) -> None:
    with pytest.raises(TimestampInvalidError):
        check_reply(der, b"sig", 1)


def test_granted_without_token_is_refused() -> None:
    der = _reply_without_token({"status": "granted"})
    with pytest.raises(TimestampInvalidError, match="no token|not a valid TimeStampResp"):
        check_reply(der, b"sig", 1)


def test_tsa_http_errors() -> None:
    def bad(request: HttpRequest) -> HttpResponse:
        return respond(400, json={"message": "SHA-1 is not accepted"})

    with pytest.raises(TimestampRequestInvalidError, match="SHA-1"):
        TSAClient(TSA, client(bad)).timestamp(b"sig")

    def down(request: HttpRequest) -> HttpResponse:
        return respond(503, text="maintenance")

    with pytest.raises(Error, match="the TSA at https://tsa.test/api/v1/timestamp failed"):
        TSAClient(TSA, client(down, attempts=2)).timestamp(b"sig")
