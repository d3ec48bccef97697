"""The timestamp authority over HTTP, as sigstore's timestamp-authority serves it.

SPEC: sigstore-wire.md §5 (timestamp-authority ``pkg/api/timestamp.go``):
- ``POST /api/v1/timestamp`` with ``Content-Type: application/timestamp-query`` (a DER
  TimeStampReq: sigstore-python, sigstore-go) or ``application/json`` (sigstore-js); the
  reply is the DER TimeStampResp as ``application/timestamp-reply``, status 200;
- ``GET /api/v1/timestamp/certchain``: the PEM chain, leaf first.

Domain logic lives in :mod:`sealtrail.tsa`; this module only moves bytes.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sealtrail.errors import ConfigInvalidError
from sealtrail.server._http import ApiError, read_body, read_json
from sealtrail.tsa.authority import MAX_REQUEST_BYTES, TimestampAuthority

__all__ = ["CERTCHAIN_PATH", "TIMESTAMP_PATH", "build_tsa_routes"]

TIMESTAMP_PATH = "/api/v1/timestamp"
CERTCHAIN_PATH = "/api/v1/timestamp/certchain"
QUERY_MEDIA_TYPE = "application/timestamp-query"
REPLY_MEDIA_TYPE = "application/timestamp-reply"
JSON_MEDIA_TYPE = "application/json"
# SPEC: timestamp-authority serves the chain as application/pem-certificate-chain (RFC 8555).
CHAIN_MEDIA_TYPE = "application/pem-certificate-chain"


def build_tsa_routes(authority: TimestampAuthority) -> list[Route]:
    """The TSA's routes, for an app that installs ``sealtrail.server._http.EXCEPTION_HANDLERS``.

    Client errors surface as JSON: a bad request as 400 ``TIMESTAMP_REQUEST_INVALID`` (or
    ``BAD_REQUEST`` for unparsable JSON), an oversized body as 413, a missing or foreign
    Content-Type as 415. A TSA whose certificate has expired answers 503.
    """

    async def timestamp(request: Request) -> Response:
        media_type = _media_type(request)
        if media_type == QUERY_MEDIA_TYPE:
            parsed = authority.parse_der_request(await read_body(request, MAX_REQUEST_BYTES))
        elif media_type == JSON_MEDIA_TYPE:
            parsed = authority.parse_json_request(await read_json(request,
                                                                  limit=MAX_REQUEST_BYTES))
        else:
            raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE",
                           f"Content-Type must be {QUERY_MEDIA_TYPE} or {JSON_MEDIA_TYPE}",
                           headers={"Accept-Post": f"{QUERY_MEDIA_TYPE}, {JSON_MEDIA_TYPE}"})
        try:
            # Signing takes well under a millisecond plus ASN.1 work: cheaper inline than a
            # hop to a worker thread.
            reply = authority.issue(parsed)
        except ConfigInvalidError as exc:
            # Not the client's fault: the TSA cannot issue a token that would verify.
            raise ApiError(503, "TSA_UNAVAILABLE", exc.diagnostics()) from exc
        return Response(reply, status_code=200, media_type=REPLY_MEDIA_TYPE)

    async def certchain(request: Request) -> Response:
        return Response(authority.certchain_pem(), media_type=CHAIN_MEDIA_TYPE)

    return [
        Route(TIMESTAMP_PATH, timestamp, methods=["POST"]),
        Route(CERTCHAIN_PATH, certchain, methods=["GET"]),
    ]


def _media_type(request: Request) -> str:
    # "application/json; charset=utf-8" -> "application/json" (media types are
    # case-insensitive, RFC 9110 §8.3.1).
    value = request.headers.get("content-type", "")
    return value.split(";", 1)[0].strip().lower()
