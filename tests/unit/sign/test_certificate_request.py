"""The certificate request sent in the background while the signer loads: the same checks and
errors as the signer's own request, and the signer signs with its key and verifies its answer."""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sealtrail.errors import CertChainInvalidError, TokenInvalidError, UsageError
from sealtrail.identity.tokens import IdentityToken
from sealtrail.net.http import HttpClient, HttpRequest, HttpResponse, http_client
from sealtrail.sign import Signer, SigningContext, certificate_request
from sealtrail.sign.certificate_request import CertificateRequest
from tests.fakes.ca import FakeCA
from tests.unit.sign._services import FakeServices, make_token


def context(services: FakeServices, version: int | None = None) -> SigningContext:
    return SigningContext.from_trust_config(services.trust_config(), version)


def token(**kwargs: Any) -> IdentityToken:
    return IdentityToken.parse(make_token(**kwargs))


def spki(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def test_the_signer_signs_with_the_requested_certificate(services: FakeServices) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    request = CertificateRequest(context(services), token(), key=key, http=services.client())
    with Signer(context(services, 2), certificate_request=request,
                http=services.client()) as signer:
        certificate = signer.certificate()
        assert certificate is not None
        assert spki(certificate.public_key()) == spki(key.public_key())
        result = signer.sign_digest(hashlib.sha256(b"artifact").digest())
    assert result.certificate == certificate and result.log_index >= 0
    assert services.sent("ca") == 1  # the signer read the early request's answer


def test_an_expired_token_is_refused_before_anything_is_sent(services: FakeServices) -> None:
    with pytest.raises(TokenInvalidError, match="expired at 20"):
        CertificateRequest(context(services), token(lifetime=-30), http=services.client())
    assert services.requests == []


def test_the_answer_is_verified_by_the_signer(services: FakeServices) -> None:
    trusted = context(services)  # the trusted root as it was
    original = services.instance.ca
    services.instance.ca = FakeCA()  # issues from a CA the trusted root does not know
    try:
        request = CertificateRequest(trusted, token(), http=services.client())
        with Signer(trusted, certificate_request=request, http=services.client()) as signer:
            with pytest.raises(CertChainInvalidError):
                signer.certificate()
    finally:
        services.instance.ca = original
    assert services.sent("rekor1") == 0 and services.sent("rekor2") == 0


def test_a_refusal_reaches_the_signer_and_is_not_asked_again(services: FakeServices) -> None:
    services.fail["ca"] = 401
    request = CertificateRequest(context(services), token(), http=services.client())
    with Signer(context(services), certificate_request=request,
                http=services.client()) as signer:
        with pytest.raises(TokenInvalidError, match="refused the identity token"):
            signer.certificate()
    with pytest.raises(UsageError, match="failed already"):
        request.result()
    assert services.sent("ca") == 1


def test_a_request_to_another_ca_is_refused(services: FakeServices) -> None:
    request = CertificateRequest(context(services), token(), http=services.client())
    other = context(services)._replace(ca_url="https://other-ca.test")
    with pytest.raises(UsageError, match="another CA"):
        Signer(other, certificate_request=request)


@pytest.mark.parametrize("given", [{"identity_token": "t"}, {"private_key": "k"}])
def test_a_request_excludes_a_token_or_a_key(services: FakeServices, given: dict) -> None:
    request = CertificateRequest(context(services), token(), http=services.client())
    with pytest.raises(UsageError, match="either keyless"):
        Signer(context(services), certificate_request=request, **given)


def test_the_request_is_sent_in_the_background(services: FakeServices) -> None:
    # The CA holds its answer until the test lets it go: the request must be made, and
    # the constructor return, while nobody waits for the answer (a request sent from the
    # constructor's own thread would block here until the handler gave up and failed).
    arrived, release = threading.Event(), threading.Event()

    def held(request: HttpRequest) -> HttpResponse:
        arrived.set()
        assert release.wait(timeout=10), "the CA's answer was awaited before it was asked for"
        return services.handle(request)

    request = CertificateRequest(context(services), token(),
                                 http=http_client(transport=held, sleep=lambda _: None))
    assert arrived.wait(timeout=10)
    assert services.sent("ca") == 0  # the CA is still working on it
    release.set()
    issued = request.result()
    assert services.sent("ca") == 1 and request.result() is issued  # read once, kept


def test_its_own_http_client_is_closed_once_the_answer_is_read(
        services: FakeServices, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[HttpClient] = []

    def own_client() -> HttpClient:
        made.append(services.client())
        return made[0]

    monkeypatch.setattr(certificate_request, "http_client", own_client)
    request = CertificateRequest(context(services), token())
    assert request.result().leaf is not None
    with pytest.raises(UsageError, match="closed"):
        made[0].request("GET", "https://ca.test/", service="the CA", limit=10)


# -- an unread token (the CLI's): its claims are read only if the CA refuses it ------------------

@pytest.mark.parametrize("raw, message", [
    (make_token(lifetime=-3600), "expired at 20"),
    ("not.a.jwt", "is not a JWT"),
    (make_token(), "refused the identity token"),
])
def test_a_refused_unread_token_says_why(services: FakeServices, raw: str,
                                         message: str) -> None:
    services.fail["ca"] = 401
    request = CertificateRequest(context(services), IdentityToken.unread(raw),
                                 http=services.client())
    with pytest.raises(TokenInvalidError, match=message):
        request.result()
    assert services.sent("ca") == 1  # an unread token is sent as it is


def test_an_unread_token_is_only_sent_and_stays_unread(services: FakeServices) -> None:
    unread = IdentityToken.unread(make_token())
    request = CertificateRequest(context(services), unread, http=services.client())
    assert request.result().leaf is not None
    assert not unread.is_read
