"""Client for a Fulcio-compatible certificate authority, and the retrying HTTP plumbing that
every signing-service client of this package shares.

``CAClient(url).request_certificate(csr, token)`` posts a CSR to ``{url}/api/v2/signingCert``
with the identity token as a bearer credential and returns the issued chain (leaf first,
with its SCT embedded). The caller verifies that chain against its trusted root: nothing
here trusts the CA's answer beyond its shape.

``http_client()`` builds the ``httpx.Client`` all clients use (CA, TSA, OIDC, Rekor): a
timeout on every request and bounded retries with exponential backoff and jitter when the
service is unreachable (connection refused or reset before an answer) or answers 429 or
502/503/504/500. Requests that reached the service and got a definite answer are never
retried, so a client error is reported at once.

SPEC: sigstore-wire.md §1 (Fulcio POST /api/v2/signingCert, the signedCertificateEmbeddedSct
response, errors as ``{"code","message"}``).
"""

from __future__ import annotations

import base64
import json
import random
import ssl
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sealtrail import __version__
from sealtrail.errors import (
    CertChainInvalidError,
    CertificateRequestInvalidError,
    SCTInvalidError,
    ServiceUnavailableError,
    TokenInvalidError,
)

__all__ = [
    "CAClient",
    "RETRY_STATUSES",
    "RetryPolicy",
    "RetryingTransport",
    "SigningCertificate",
    "http_client",
    "read_limited",
    "service_message",
]

# Statuses that say "not now" rather than "no": the service is overloaded or restarting.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Failures where the request never reached the service (or the connection was dropped
# before any answer): safe to repeat, even for a POST.
_RETRY_EXCEPTIONS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError)

# A Fulcio answer is a few KiB (three PEM certificates).
MAX_CA_RESPONSE_BYTES = 1024 * 1024
MAX_CHAIN_CERTIFICATES = 10
MAX_ERROR_CHARS = 300


class RetryPolicy(NamedTuple):
    """How hard a client tries: ``attempts`` in total, sleeping ``backoff * 2**n`` (capped at
    ``max_backoff``, with jitter) between them; ``timeout`` bounds each request."""

    attempts: int = 4
    backoff: float = 0.25
    max_backoff: float = 4.0
    timeout: float = 30.0

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        "Equal jitter": half the exponential delay plus a random part of the other half, so
        parallel clients that failed together do not come back together.
        """
        ceiling = min(self.max_backoff, self.backoff * (2 ** (attempt - 1)))
        return ceiling / 2 + rand() * ceiling / 2


class RetryingTransport(httpx.BaseTransport):
    """An httpx transport that retries unreachable-service failures with backoff.

    ``sleep`` and ``rand`` are injectable so tests run instantly and deterministically.
    After the last attempt the exception propagates, or the last response is returned, and
    the calling client turns it into a sealtrail error naming the service.
    """

    def __init__(self, inner: httpx.BaseTransport, policy: RetryPolicy | None = None, *,
                 sleep: Callable[[float], None] = time.sleep,
                 rand: Callable[[], float] = random.random) -> None:
        self._inner = inner
        self._policy = policy or RetryPolicy()
        self._sleep = sleep
        self._rand = rand

    def handle_request(self, request: httpx.Request) -> httpx.Response:  # noqa: D102 - httpx API
        attempts = max(1, self._policy.attempts)
        for attempt in range(1, attempts + 1):
            try:
                response = self._inner.handle_request(request)
            except _RETRY_EXCEPTIONS as exc:
                if attempt == attempts:
                    if attempts == 1:
                        raise
                    raise type(exc)(f"{exc or type(exc).__name__} (after {attempts} attempts)",
                                    request=request) from exc
                self._sleep(self._policy.delay(attempt, self._rand))
                continue
            if response.status_code not in RETRY_STATUSES or attempt == attempts:
                return response
            wait = self._policy.delay(attempt, self._rand)
            retry_after = response.headers.get("retry-after", "")
            if retry_after.isdigit():
                # Honour the service's own estimate, but never beyond our cap.
                wait = max(wait, min(float(retry_after), self._policy.max_backoff))
            response.close()
            self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:  # noqa: D102 - httpx API
        self._inner.close()


class _LazyTLSTransport(httpx.BaseTransport):
    """Plain-HTTP requests (a local instance) use a transport whose TLS context is never
    used; the TLS transport, whose creation loads the CA bundle (20-40 ms of start-up), is
    only made on the first https request, with httpx's default certificate verification."""

    def __init__(self, limits: httpx.Limits) -> None:
        self._limits = limits
        self._lock = threading.Lock()
        self._plain: httpx.HTTPTransport | None = None
        self._tls: httpx.HTTPTransport | None = None

    def _transport(self, https: bool) -> httpx.HTTPTransport:
        with self._lock:
            if https:
                if self._tls is None:
                    self._tls = httpx.HTTPTransport(limits=self._limits)
                return self._tls
            if self._plain is None:
                # Only ever used for http:// URLs, so no certificates need loading.
                self._plain = httpx.HTTPTransport(
                    limits=self._limits, verify=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
            return self._plain

    def handle_request(self, request: httpx.Request) -> httpx.Response:  # noqa: D102 - httpx API
        return self._transport(request.url.scheme == "https").handle_request(request)

    def close(self) -> None:  # noqa: D102 - httpx API
        for transport in (self._plain, self._tls):
            if transport is not None:
                transport.close()


def http_client(policy: RetryPolicy | None = None, *, transport: httpx.BaseTransport | None = None,
                sleep: Callable[[float], None] = time.sleep, max_connections: int = 32) -> httpx.Client:
    """An ``httpx.Client`` with timeouts and retries, shared by the signing-service clients.

    ``transport`` replaces the network (tests pass an ``httpx.MockTransport``). The client
    is thread-safe: the signer shares one across its worker threads.
    """
    policy = policy or RetryPolicy()
    inner = transport or _LazyTLSTransport(httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections))
    return httpx.Client(
        transport=RetryingTransport(inner, policy, sleep=sleep),
        timeout=httpx.Timeout(policy.timeout, connect=min(policy.timeout, 10.0)),
        headers={"User-Agent": f"sealtrail/{__version__}"},
        follow_redirects=False,
    )


def read_limited(response: httpx.Response, limit: int, service: str) -> bytes:
    """The body of a streamed ``response``, refusing more than ``limit`` bytes."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ServiceUnavailableError(f"{service} sent an oversized answer", actual=f"{declared} bytes",
                    expected=f"<= {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise ServiceUnavailableError(f"{service} sent an oversized answer", actual=f"> {limit} bytes",
                        expected=f"<= {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def service_message(body: bytes) -> str:
    """The human part of a service's error body: its JSON ``message``, else the text."""
    text = body[:4096].decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        text = data["message"]
    text = " ".join(text.split())
    return text[:MAX_ERROR_CHARS] or "(no message)"


def send(client: httpx.Client, request: httpx.Request, service: str,
         limit: int) -> tuple[int, httpx.Headers, bytes]:
    """Send ``request`` (with the client's retries); return status, headers and the bounded
    body. Transport failures become an :class:`ServiceUnavailableError` naming ``service``."""
    try:
        response = client.send(request, stream=True)
    except httpx.TimeoutException as exc:
        raise ServiceUnavailableError(f"{service} did not answer in time ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise ServiceUnavailableError(f"cannot reach {service}: {exc or type(exc).__name__}") from exc
    try:
        body = read_limited(response, limit, service)
    except httpx.HTTPError as exc:
        raise ServiceUnavailableError(f"{service} dropped the connection while answering: {exc}") from exc
    finally:
        response.close()
    return response.status_code, response.headers, body


class SigningCertificate(NamedTuple):
    """What the CA issued: the leaf and the rest of the chain it returned (untrusted)."""

    leaf: x509.Certificate
    chain: tuple[x509.Certificate, ...]


class CAClient:
    """A Fulcio v2 API client (``POST {base_url}/api/v2/signingCert``)."""

    def __init__(self, base_url: str, client: httpx.Client | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = client or http_client()
        self._owns_client = client is None

    @property
    def service(self) -> str:
        """How errors name this CA."""
        return f"the CA at {self.base_url}"

    def build_request(self, csr: x509.CertificateSigningRequest, token: str) -> httpx.Request:
        """The HTTP request for ``csr``, authenticated with ``token``.

        SPEC: sigstore-wire.md §1: ``{"certificateSigningRequest": base64(PEM CSR)}`` with
        ``Authorization: Bearer <token>`` (what sigstore-python and cosign send).
        """
        pem = csr.public_bytes(serialization.Encoding.PEM)
        body = {"certificateSigningRequest": base64.b64encode(pem).decode()}
        return self._client.build_request(
            "POST", self.base_url + "/api/v2/signingCert", json=body,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})

    def request_certificate(self, csr: x509.CertificateSigningRequest, token: str) -> SigningCertificate:
        """Ask the CA for a certificate for the key of ``csr``; return the parsed chain.

        Raises :class:`TokenInvalidError` if the CA refuses the token (HTTP 401/403),
        :class:`CertificateRequestInvalidError` for any other refusal (HTTP 4xx),
        :class:`CertChainInvalidError` / :class:`SCTInvalidError` for an answer that is not
        an embedded-SCT chain, and :class:`ServiceUnavailableError` when the CA is unreachable or failing.
        """
        status, _headers, body = send(self._client, self.build_request(csr, token), self.service,
                                      MAX_CA_RESPONSE_BYTES)
        if status in (401, 403):
            # The token is never echoed: only the CA's explanation.
            raise TokenInvalidError(f"{self.service} refused the identity token: "
                                    f"{service_message(body)}", actual=f"HTTP {status}")
        if 400 <= status < 500:
            raise CertificateRequestInvalidError(
                f"{self.service} refused the certificate request: {service_message(body)}",
                actual=f"HTTP {status}")
        if status not in (200, 201):
            raise ServiceUnavailableError(f"{self.service} failed: {service_message(body)}", actual=f"HTTP {status}")
        return parse_certificate_response(body, self.service)

    def close(self) -> None:
        """Release the connection pool if this client created it."""
        if self._owns_client:
            self._client.close()


def parse_certificate_response(body: bytes, service: str = "the CA") -> SigningCertificate:
    """Parse a ``signedCertificateEmbeddedSct`` answer into certificates (leaf first)."""
    E = CertChainInvalidError
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise E(f"{service} answered with something other than JSON") from exc
    if not isinstance(data, dict):
        raise E(f"{service} answered with a non-object JSON value")
    if "signedCertificateEmbeddedSct" not in data:
        if "signedCertificateDetachedSct" in data:
            # SPEC: sigstore-wire.md §1: only sigstore-go and sigstore-js read detached SCTs;
            # bundles (and sigstore-python) need the SCT inside the certificate.
            raise SCTInvalidError(f"{service} returned a detached SCT; sealtrail needs a "
                                  "certificate with an embedded SCT")
        raise E(f"{service} answer has no signedCertificateEmbeddedSct",
                actual=sorted(data)[:5])
    try:
        pems = data["signedCertificateEmbeddedSct"]["chain"]["certificates"]
    except (KeyError, TypeError) as exc:
        raise E(f"{service} answer has no certificate chain") from exc
    if not isinstance(pems, list) or not all(isinstance(p, str) for p in pems):
        raise E(f"{service} certificate chain must be a list of PEM strings")
    if not 2 <= len(pems) <= MAX_CHAIN_CERTIFICATES:
        raise E(f"{service} returned a chain of the wrong length", actual=len(pems),
                expected=f"2..{MAX_CHAIN_CERTIFICATES} certificates (leaf, CA...)")
    certificates = []
    for index, pem in enumerate(pems):
        try:
            found = x509.load_pem_x509_certificates(pem.encode())
        except ValueError as exc:
            raise E(f"{service} certificate {index} is not a PEM certificate") from exc
        if len(found) != 1:
            raise E(f"{service} chain entry {index} must hold exactly one certificate",
                    actual=len(found))
        certificates.append(found[0])
    return SigningCertificate(certificates[0], tuple(certificates[1:]))
