"""The CA over HTTP: Fulcio's v2 REST API and the CT log's add-pre-chain.

Routes (docs/instance.md "URLs"):
- ``POST /api/v2/signingCert``: the identity token comes from the body's
  ``credentials.oidcIdentityToken`` (sigstore-js) or the ``Authorization: Bearer`` header
  (sigstore-python, sigstore-go); the key from a CSR or a ``publicKeyRequest``. The answer
  is the embedded-SCT chain ``[leaf, intermediate, root]`` as PEM.
- ``GET /api/v2/trustBundle``, ``GET /api/v2/configuration``.
- ``POST /ct/v1/add-pre-chain`` (and ``/ct/ct/v1/add-pre-chain``, under the CT log's URL):
  RFC 6962 §4.1 for precertificates issued by the CA; logged in the CT log before the SCT.

Token problems are 401 (``TokenInvalidError``), request problems 400
(``CertificateRequestInvalidError``), a CT log that cannot sequence 503
(``ServiceUnavailableError``: no certificate, no SCT), all as the JSON errors of
:mod:`sealtrail.server._http`.
Token checks and issuance run in a worker thread: the JWKS fetch blocks and signing is CPU.

SPEC: sigstore-wire.md §1 (Fulcio), §2 (CT).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from cryptography import x509
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sealtrail.ca.authority import CertificateAuthority, embedded_sct_response
from sealtrail.ca.token_verifier import IssuerConfig, TokenVerifier
from sealtrail.errors import CertificateRequestInvalidError, ServiceUnavailableError, TokenInvalidError
from sealtrail.server._http import read_json
from sealtrail.net.http import HttpClient, RetryPolicy, http_client

__all__ = ["build_ca_routes", "make_fetch_json"]

log = logging.getLogger("sealtrail.server.ca")

# A signing request is a CSR or a PEM key plus a token: a few KiB.
MAX_REQUEST_BYTES = 256 * 1024
# Discovery documents and JWKS are small; a few keys at most.
MAX_FETCH_BYTES = 1024 * 1024
FETCH_TIMEOUT_SECONDS = 5.0


def make_fetch_json(*, timeout: float = FETCH_TIMEOUT_SECONDS, max_bytes: int = MAX_FETCH_BYTES,
                    client: HttpClient | None = None) -> Callable[[str], Any]:
    """An HTTP ``fetch_json(url)`` for :class:`~sealtrail.ca.token_verifier.TokenVerifier`.

    GET with a total deadline of ``timeout`` seconds, no redirects, a response size limit
    of ``max_bytes`` and status 200 required; raises ``ValueError`` otherwise (the verifier
    turns any failure into a 401 naming the issuer). ``client`` replaces the HTTP client.
    """
    # One attempt: a token check must not wait out retries while its caller waits.
    http = client or http_client(RetryPolicy(attempts=1, timeout=timeout))
    too_large = f"<= {max_bytes} bytes"

    def fetch_json(url: str) -> Any:
        try:
            response = http.request(
                "GET", url, headers={"Accept": "application/json", "User-Agent": "sealtrail-ca"},
                service=url, limit=max_bytes, deadline=timeout)
        except ServiceUnavailableError as exc:
            if exc.expected == too_large:  # the oversized-answer refusal
                raise ValueError(f"response from {url} exceeds {max_bytes} bytes") from None
            raise ValueError(exc.message) from None
        if response.status != 200:
            raise ValueError(f"HTTP {response.status} from {url}")
        try:
            return response.json()
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ValueError(f"response from {url} is not JSON") from exc

    return fetch_json


def _token(request: Request, body: dict[str, Any]) -> str:
    """The identity token: body ``credentials.oidcIdentityToken``, else the Bearer header.

    SPEC: sigstore-wire.md §1 / Fulcio grpc_server.go: the body field wins when set.
    """
    credentials = body.get("credentials")
    if credentials is not None:
        if not isinstance(credentials, dict):
            raise CertificateRequestInvalidError("credentials must be a JSON object")
        token = credentials.get("oidcIdentityToken")
        if token is not None and not isinstance(token, str):
            raise TokenInvalidError("credentials.oidcIdentityToken must be a string")
        if token:
            return token
    header = request.headers.get("authorization")
    if header is None:
        raise TokenInvalidError("no identity token: send 'Authorization: Bearer <token>' or "
                                "credentials.oidcIdentityToken")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenInvalidError("the Authorization header must be 'Bearer <token>'")
    return token.strip()


def build_ca_routes(authority: CertificateAuthority, token_verifier: TokenVerifier,
                    issuers: Sequence[IssuerConfig]) -> list[Route]:
    """The Fulcio v2 and CT routes for ``authority``.

    ``issuers`` is what ``GET /api/v2/configuration`` advertises (normally the verifier's
    issuers). Mount the routes in a Starlette app that uses
    ``sealtrail.server._http.EXCEPTION_HANDLERS``.
    """
    configuration = authority.configuration(issuers, token_verifier.identity_types)
    trust_bundle = authority.trust_bundle()

    async def signing_cert(request: Request) -> JSONResponse:
        body = await read_json(request, limit=MAX_REQUEST_BYTES)
        if not isinstance(body, dict):
            raise CertificateRequestInvalidError("request body must be a JSON object")
        token = _token(request, body)

        def work() -> list[x509.Certificate]:
            principal = token_verifier.verify(token)
            key = authority.parse_request(body, principal)
            chain = authority.issue(key, principal)
            log.info("issued certificate serial=%x san=%s issuer=%s", chain[0].serial_number,
                     principal.san.value, principal.issuer)
            return chain

        chain = await run_in_threadpool(work)
        return JSONResponse(embedded_sct_response(chain))

    async def get_trust_bundle(request: Request) -> JSONResponse:
        return JSONResponse(trust_bundle)

    async def get_configuration(request: Request) -> JSONResponse:
        return JSONResponse(configuration)

    async def add_pre_chain(request: Request) -> JSONResponse:
        body = await read_json(request, limit=MAX_REQUEST_BYTES)
        if not isinstance(body, dict):
            raise CertificateRequestInvalidError("request body must be a JSON object")
        now = authority.clock().astimezone(timezone.utc)
        timestamp_ms = int((now - datetime(1970, 1, 1, tzinfo=timezone.utc))
                           / timedelta(milliseconds=1))
        # Logged like the CA's own precertificates (an SCT is a promise of inclusion): the
        # chain may hold only the CA's certificates, which the CT log serves as issuers.
        response = await run_in_threadpool(
            functools.partial(authority.ct_log.add_pre_chain, body.get("chain"),
                              [authority.chain[-1]], timestamp_ms, issuers=authority.chain))
        return JSONResponse(response)

    return [
        Route("/api/v2/signingCert", signing_cert, methods=["POST"]),
        Route("/api/v2/trustBundle", get_trust_bundle, methods=["GET"]),
        Route("/api/v2/configuration", get_configuration, methods=["GET"]),
        Route("/ct/v1/add-pre-chain", add_pre_chain, methods=["POST"]),
        # SPEC: RFC 6962 §4: <log URL>/ct/v1/...; the trusted root's CT log URL is <base>/ct.
        Route("/ct/ct/v1/add-pre-chain", add_pre_chain, methods=["POST"]),
    ]
