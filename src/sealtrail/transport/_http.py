"""The retrying HTTP plumbing every client of this package shares (CA, TSA, OIDC, Rekor).

``http_client()`` builds the ``httpx.Client`` they use: a timeout on every request and bounded
retries with exponential backoff and jitter when the service is unreachable (connection
refused or reset before an answer) or answers 429 or 502/503/504/500. Requests that reached
the service and got a definite answer are never retried, so a client error is reported at
once. Transport failures become :class:`ServiceUnavailableError` naming the service.
"""

from __future__ import annotations

import json
import random
import ssl
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

import httpx

from sealtrail import __version__
from sealtrail.errors import ServiceUnavailableError

__all__ = [
    "RETRY_STATUSES",
    "RetryPolicy",
    "RetryingTransport",
    "http_client",
    "read_limited",
    "send",
    "service_message",
]

# Statuses that say "not now" rather than "no": the service is overloaded or restarting.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Failures where the request never reached the service (or the connection was dropped
# before any answer): safe to repeat, even for a POST.
_RETRY_EXCEPTIONS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError)
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
