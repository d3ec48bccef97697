"""Client for a Fulcio-compatible certificate authority.

``CAClient(url).request_certificate(csr, token)`` posts a CSR to ``{url}/api/v2/signingCert``
with the identity token as a bearer credential and returns the issued chain (leaf first,
with its SCT embedded). The caller verifies that chain against its trusted root: nothing
here trusts the CA's answer beyond its shape.

SPEC: sigstore-wire.md §1 (Fulcio POST /api/v2/signingCert, the signedCertificateEmbeddedSct
response, errors as ``{"code","message"}``).
"""

from __future__ import annotations

import base64
import json
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sealtrail.errors import (
    CertChainInvalidError,
    CertificateRequestInvalidError,
    SCTInvalidError,
    ServiceUnavailableError,
    TokenInvalidError,
)
from sealtrail.net.http import (
    Headers,
    HttpClient,
    HttpRequest,
    http_client,
    service_message,
)

__all__ = ["CAClient", "SigningCertificate", "parse_certificate_response"]

# A Fulcio answer is a few KiB (three PEM certificates).
MAX_CA_RESPONSE_BYTES = 1024 * 1024
MAX_CHAIN_CERTIFICATES = 10


class SigningCertificate(NamedTuple):
    """What the CA issued: the leaf and the rest of the chain it returned (untrusted)."""

    leaf: x509.Certificate
    chain: tuple[x509.Certificate, ...]


class CAClient:
    """A Fulcio v2 API client (``POST {base_url}/api/v2/signingCert``)."""

    def __init__(self, base_url: str, client: HttpClient | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = client or http_client()
        self._owns_client = client is None

    @property
    def service(self) -> str:
        """How errors name this CA."""
        return f"the CA at {self.base_url}"

    def build_request(self, csr: x509.CertificateSigningRequest, token: str) -> HttpRequest:
        """The HTTP request for ``csr``, authenticated with ``token`` (the client adds its
        User-Agent when sending).

        SPEC: sigstore-wire.md §1: ``{"certificateSigningRequest": base64(PEM CSR)}`` with
        ``Authorization: Bearer <token>`` (what sigstore-python and cosign send).
        """
        pem = csr.public_bytes(serialization.Encoding.PEM)
        body = json.dumps({"certificateSigningRequest": base64.b64encode(pem).decode()},
                          separators=(",", ":")).encode()
        return HttpRequest("POST", self.base_url + "/api/v2/signingCert", Headers({
            "Authorization": f"Bearer {token}", "Accept": "application/json",
            "Content-Type": "application/json"}), body)

    def request_certificate(self, csr: x509.CertificateSigningRequest, token: str) -> SigningCertificate:
        """Ask the CA for a certificate for the key of ``csr``; return the parsed chain.

        Raises :class:`TokenInvalidError` if the CA refuses the token (HTTP 401/403),
        :class:`CertificateRequestInvalidError` for any other refusal (HTTP 4xx),
        :class:`CertChainInvalidError` / :class:`SCTInvalidError` for an answer that is not
        an embedded-SCT chain, and :class:`ServiceUnavailableError` when the CA is unreachable or failing.
        """
        request = self.build_request(csr, token)
        status, _headers, body = self._client.request(
            request.method, request.url, body=request.body, headers=request.headers,
            service=self.service, limit=MAX_CA_RESPONSE_BYTES)
        return self._issued(status, body)

    def _issued(self, status: int, body: bytes) -> SigningCertificate:
        """The chain in the CA's answer, or the error its status means."""
        if status in (401, 403):
            # The token is never echoed: only the CA's explanation.
            raise TokenInvalidError(f"{self.service} refused the identity token: "
                                    f"{service_message(body)}", actual=f"HTTP {status}")
        if 400 <= status < 500:
            raise CertificateRequestInvalidError(
                f"{self.service} refused the certificate request: {service_message(body)}",
                actual=f"HTTP {status}")
        if status not in (200, 201):
            raise ServiceUnavailableError(f"{self.service} failed: {service_message(body)}",
                                          actual=f"HTTP {status}")
        return parse_certificate_response(body, self.service)

    def close(self) -> None:
        """Release the connections if this client created the HTTP client."""
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
