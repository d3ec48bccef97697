"""HTTP plumbing shared by the services: bounded JSON bodies and JSON errors.

Every error a client can cause becomes a 4xx JSON response ``{"code": <HTTP status>,
"message": <one line>, "reason": <stable sealtrail code>}``; nothing a client sends may
produce a 500 (tests fuzz the API to hold us to it).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from sealtrail.errors import (
    Error,
    InputError,
    LogEntryInvalidError,
    LogEntryNotFoundError,
    LogFrozenError,
    LogOverloadedError,
    LogStorageError,
    ServiceUnavailableError,
    TokenInvalidError,
    UsageError,
)

__all__ = ["EXCEPTION_HANDLERS", "LOGGED_MARK", "ApiError", "error_response", "handle_errors", "is_decimal",
           "read_body", "read_json"]

log = logging.getLogger("sealtrail.server")

# SPEC: sigstore-wire.md §8: rekor-tiles limits request bodies to 4 MiB.
MAX_BODY_BYTES = 4 * 1024 * 1024


class ApiError(Exception):
    """An HTTP error with a stable reason code, raised inside handlers."""

    def __init__(self, status: int, reason: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.headers = headers or {}


def error_response(status: int, reason: str, message: str,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON error body every service uses."""
    # A message may quote what the client sent; text that UTF-8 cannot encode (a lone
    # surrogate) is escaped rather than allowed to turn the answer into a 500.
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return JSONResponse({"code": status, "message": message, "reason": reason},
                        status_code=status, headers=headers)


def status_for(exc: Error) -> int:
    """Map a sealtrail error to an HTTP status."""
    if isinstance(exc, TokenInvalidError):
        return 401
    if isinstance(exc, LogEntryNotFoundError):
        return 404
    if isinstance(exc, LogFrozenError):
        return 405
    if isinstance(exc, LogOverloadedError):
        # SPEC: RFC 6585 §4: 429 with Retry-After: the log pushes back while more entries
        # wait to be sequenced or integrated than it takes (issue 16), or a checkpoint
        # did not come in time; the client retries later (sealtrail.net.http does).
        return 429
    if isinstance(exc, (ServiceUnavailableError, LogStorageError)):
        # The database or object store is unreachable: nothing was acknowledged, retry.
        return 503
    if isinstance(exc, (InputError, UsageError, LogEntryInvalidError)):
        return 400
    return 500


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The raw body, refusing (413) more than ``limit`` bytes before reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not is_decimal(declared):
            raise ApiError(400, "BAD_REQUEST", "invalid Content-Length")
        if int(declared) > limit:
            raise ApiError(413, "BODY_TOO_LARGE", f"request body exceeds {limit} bytes")
    chunks = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "BODY_TOO_LARGE", f"request body exceeds {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        # The client left (or the server closed a body that came too slowly): nobody reads
        # this answer, and nothing went wrong here, so nothing is logged.
        raise ApiError(400, "CLIENT_DISCONNECTED",
                       "the connection closed before the request body was complete") from None
    return b"".join(chunks)


async def read_json(request: Request, *, limit: int = MAX_BODY_BYTES) -> Any:
    """The request body as JSON, refusing oversized or malformed bodies with a 4xx."""
    body = await read_body(request, limit)
    try:
        # SPEC: RFC 8259 §8.1: JSON exchanged between systems MUST be UTF-8 (a BOM MAY be
        # ignored). Decoded here, strictly: json.loads(bytes) would also take UTF-16 and
        # UTF-8-encoded surrogates.
        # SPEC: RFC 8259 §6: NaN and infinities are not JSON numbers; Python's parser takes
        # the tokens NaN, Infinity and -Infinity unless told not to.
        value = json.loads(body.decode("utf-8-sig"), parse_constant=_refuse_constant)
    except RecursionError:
        raise ApiError(400, "BAD_REQUEST", "request JSON is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "BAD_REQUEST", f"request body is not valid JSON: {exc}") from None
    # Valid UTF-8 cannot hold a surrogate, so one can only come from a \u escape: look at
    # the strings only when the body has such an escape (almost never).
    if _SURROGATE_ESCAPE.search(body) and _has_lone_surrogate(value):
        # SPEC: RFC 8259 §8.2 / RFC 7493 (I-JSON) §2.1: strings MUST NOT hold a lone
        # surrogate; Python parses one anyway, and it cannot be encoded again (in an error
        # message, a database query, a certificate).
        raise ApiError(400, "BAD_REQUEST", "request JSON holds a string with a lone UTF-16 "
                       "surrogate (\\ud800-\\udfff without its pair)")
    return value


def _refuse_constant(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON number (RFC 8259 §6)")


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_lone_surrogate(value: Any) -> bool:
    """Whether a parsed JSON value holds a string (or key) with an unpaired surrogate.

    json.loads joins a valid escaped pair into one character, so any surrogate left in a
    string is a lone one. Iterative: the nesting depth was bounded by the parser.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _LONE_SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def is_decimal(text: str, max_digits: int = 19) -> bool:
    """Whether ``text`` is 1 to ``max_digits`` ASCII digits.

    SPEC: RFC 5234 B.1 (the core rules RFC 9110 uses): DIGIT = %x30-39. ``str.isdigit``
    and ``int`` also take "²" and "١٢" (and ``int`` then fails, or reads a number no
    client meant).
    """
    return 0 < len(text) <= max_digits and text.isascii() and text.isdigit()


async def handle_errors(request: Request, exc: Exception) -> Response:
    """Starlette exception handler: every failure becomes a JSON error, never a traceback."""
    if isinstance(exc, HTTPException):  # routing: unknown path, wrong method
        reason = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "BAD_REQUEST")
        return error_response(exc.status_code, reason, str(exc.detail), dict(exc.headers or {}))
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.reason, exc.message, exc.headers)
    if isinstance(exc, Error):
        status = status_for(exc)
        if status >= 500:
            log.error("request failed: %s: %s", exc.code, exc.diagnostics())
        # SPEC: RFC 9110 §10.2.3: Retry-After on 429 and 503, so clients back off.
        headers = {"Retry-After": RETRY_AFTER_SECONDS} if status in (429, 503) else None
        return error_response(status, exc.code, exc.diagnostics(), headers)
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    # Starlette raises the exception again after this answer; the server's outermost layer
    # (run._LogErrorsOnce) sees the mark and does not log it a second time.
    try:
        setattr(exc, LOGGED_MARK, True)
    except AttributeError:  # pragma: no cover - an exception class with __slots__
        pass
    return error_response(500, "INTERNAL", "internal error")


# Seconds a client should wait after a 429 or 503 from a sealtrail error.
RETRY_AFTER_SECONDS = "1"

# The attribute handle_errors sets on an exception it has logged.
LOGGED_MARK = "_sealtrail_logged"


# Starlette looks handlers up by exception class: ours first, then anything else (a bug) as 500.
EXCEPTION_HANDLERS = {HTTPException: handle_errors, ApiError: handle_errors, Error: handle_errors,
                      Exception: handle_errors}
