"""The retrying HTTP client every client of this package shares (CA, TSA, OIDC, Rekor), on urllib3.

urllib3 does the wire work (connections, TLS, request framing, answer parsing, HTTP and
HTTPS proxies, CONNECT tunnels, HEAD, 204, 304 and 100 Continue); this module keeps only
the policy sealtrail needs:

- **bounded retries** (:class:`RetryPolicy`) with exponential backoff and equal jitter
  when nothing reached the service (connection refused/reset before sending, or closed
  before any answer) or when it answers 429 or 500/502/503/504 (``Retry-After`` honoured,
  up to ``max_backoff``). A request that got a definite answer, or whose answer did not
  come in time, is never repeated: the service may have acted on it. urllib3's own
  retries and redirects are off: a 3xx answer is returned as it is;
- a **timeout** on every socket operation (``RetryPolicy.timeout``; connecting is capped
  at 10 s), and optionally a total ``deadline`` for one exchange;
- **bounded answers**: a body over ``limit`` bytes is refused, from its Content-Length when
  it declares one, before it is read, else as soon as it grows past the limit;
- errors that **name the service** (:class:`ServiceUnavailableError`);
- **one shared set of kept-alive connections** (urllib3 pools, up to
  :data:`MAX_CONNECTIONS_PER_SERVICE` per service), which the signer's worker threads take
  turns on: measured, the pool's lock costs nothing next to a request's own CPU, so there
  are no per-thread pools (ADR 0010);
- the ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` / ``NO_PROXY`` environment variables
  (any case; http:// and https:// proxies), loopback never proxied; TLS verified against
  certifi's bundle (the system store when certifi is not installed).

:func:`pool_manager` and :class:`PoolManagers` build the urllib3 managers; the TUF client
(``trustroot.tuf_client``) uses them too, so both share TLS, proxy and timeout behaviour.

The test seam: ``HttpClient(transport=...)`` replaces the network at the point where the
fully built request (method, validated absolute URL, final headers with the User-Agent,
body) would go out: a callable taking an :class:`HttpRequest` and returning an
:class:`HttpResponse`, or raising one of the exceptions listed in :meth:`HttpClient.request`.

Debug logging (logger ``sealtrail.net``; ``sealtrail -v``) tells retries, proxy choices and
fallbacks; it never shows headers, bodies or query strings (tokens travel there).

SPEC: RFC 9110 §15.6 / §10.2.3 (5xx, 429 and Retry-After), RFC 9112 §9.3 (persistent
connections: a client may retry a request on a new connection when the old one closed
before any response), RFC 9112 §3.2.2 / RFC 9110 §9.3.6 (absolute-form and CONNECT for
proxies).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import os
import random
import re
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

import urllib3
from urllib3 import exceptions as u3

from sealtrail import __version__
from sealtrail.errors import ServiceUnavailableError, UsageError

__all__ = [
    "AnswerDroppedError",
    "ConnectTimeoutError",
    "Headers",
    "HttpClient",
    "HttpRequest",
    "HttpResponse",
    "MAX_CONNECTIONS_PER_SERVICE",
    "MAX_CONNECT_TIMEOUT",
    "PoolManagers",
    "Proxy",
    "ProxySettings",
    "RETRY_STATUSES",
    "RetryPolicy",
    "USER_AGENT",
    "http_client",
    "pool_manager",
    "service_message",
    "timeout_for",
    "tls_context",
]

logger = logging.getLogger("sealtrail.net")

# Statuses that say "not now" rather than "no": the service is overloaded or restarting.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_ERROR_CHARS = 300
USER_AGENT = f"sealtrail/{__version__}"
# Connecting should be quick; a long per-request timeout must not make an unreachable
# address hang that long on every attempt.
MAX_CONNECT_TIMEOUT = 10.0
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Kept-alive connections per service (host and port): the signer's worker threads (up to
#: 64 with --jobs, each with a timestamp and a log request in flight, which a local
#: instance serves on one port) each find one free. Beyond it, urllib3 closes the surplus
#: connections after their request, with a warning on stderr.
MAX_CONNECTIONS_PER_SERVICE = 128
# How many distinct URLs keep their parsed form cached (the services are a handful).
_MAX_CACHED_TARGETS = 512
#: One read: a Rekor answer with its inclusion proof is a few KiB, a trust bundle more.
_READ_BYTES = 64 * 1024
# SPEC: RFC 3986 §2: no spaces or control characters in a URI.
_UNSAFE_URL = re.compile(r"[\x00-\x20\x7f]")
# SPEC: RFC 9110 §5.1 / §5.5: a field name is a token; a value has no CR, LF or NUL.
_FIELD_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_FIELD_VALUE = re.compile(r"[\x00\r\n]")


class RetryPolicy(NamedTuple):
    """How hard a client tries: ``attempts`` in total, sleeping ``backoff * 2**n`` (capped at
    ``max_backoff``, with jitter) between them; ``timeout`` bounds each socket operation."""

    attempts: int = 4
    backoff: float = 0.25
    max_backoff: float = 4.0
    timeout: float = 30.0

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        "Equal jitter": half the exponential delay plus a random part of the other half, so
        parallel clients that failed together do not come back together.
        """
        ceiling = min(self.max_backoff, self.backoff * (2.0 ** (attempt - 1)))
        return ceiling / 2 + rand() * ceiling / 2


class Headers(dict[str, str]):
    """Header fields by lower-cased name; lookups ignore case (RFC 9110 §5.1).

    Repeated fields are joined with ", " (RFC 9110 §5.3).
    """

    __slots__ = ()

    def __init__(self, fields: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        super().__init__()
        items = fields.items() if isinstance(fields, Mapping) else fields
        for name, value in items:
            key = name.lower()
            previous = dict.get(self, key)
            dict.__setitem__(self, key, value if previous is None else f"{previous}, {value}")

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and dict.__contains__(self, name.lower())

    def get(self, name: str, default: Any = None) -> Any:  # the dict API, ignoring case
        return dict.get(self, name.lower(), default)


class HttpRequest(NamedTuple):
    """One request as the client sends it (``headers`` include the User-Agent)."""

    method: str
    url: str
    headers: Headers
    body: bytes | None


class HttpResponse(NamedTuple):
    """A complete (bounded) answer: status, headers by lower-cased name, body."""

    status: int
    headers: Headers
    body: bytes

    @property
    def text(self) -> str:
        """The body as text (UTF-8, undecodable bytes replaced)."""
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON; raises ``ValueError`` when it is not."""
        return json.loads(self.body)


class ConnectTimeoutError(TimeoutError):
    """Connecting took longer than allowed: nothing was sent, so the request may be retried."""


class AnswerDroppedError(Exception):
    """The service began to answer (status and headers came) and then the connection broke."""


class _OversizedError(Exception):
    """The answer is larger than the caller's limit (``args[0]`` says by how much)."""


class _MalformedAnswerError(Exception):
    """The bytes that came back are not an HTTP/1.1 response."""


class _ClosedBeforeAnswerError(ConnectionError):
    """The service closed (or reset) the connection before any byte of an answer: nothing
    was processed (RFC 9112 §9.3.1), so the request may be sent again."""


class _DefiniteError(Exception):
    """A failure that repeating would not cure (a TLS refusal, a proxy that refuses)."""


class Proxy(NamedTuple):
    """A forward proxy: its URL (``http://`` or ``https://``, without credentials), where it
    is, and the ``Proxy-Authorization`` it wants (if any)."""

    url: str
    host: str
    port: int
    authorization: str | None


class _Target(NamedTuple):
    """A validated URL: what proxy choice needs."""

    scheme: str
    host: str
    port: int


# -- TLS, proxies, pools: shared with the TUF client ------------------------------------------

_tls_lock = threading.Lock()
_tls: ssl.SSLContext | None = None


def tls_context() -> ssl.SSLContext:
    """The TLS context of every client: certificates and host names verified against
    certifi's bundle, or the system's trust store when certifi is not installed. Made once
    (loading the bundle costs about 20 ms of CPU); an SSLContext is safe to share."""
    global _tls
    if _tls is not None:
        return _tls
    with _tls_lock:
        if _tls is None:
            try:
                import certifi
            except ImportError:
                logger.debug("certifi is not installed: TLS verified against the system's "
                             "trust store")
                _tls = ssl.create_default_context()
            else:
                _tls = ssl.create_default_context(cafile=certifi.where())
        return _tls


def timeout_for(seconds: float, deadline: float | None = None) -> urllib3.Timeout:
    """urllib3's timeout for ``seconds`` per socket operation, connecting capped at
    :data:`MAX_CONNECT_TIMEOUT`, and ``deadline`` (if any) bounding connect and the wait for
    the answer's head together."""
    read = seconds if deadline is None else min(seconds, deadline)
    return urllib3.Timeout(total=deadline, connect=min(read, MAX_CONNECT_TIMEOUT), read=read)


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse_proxy(url: str) -> Proxy:
    """A proxy URL (``http(s)://[user:pass@]host[:port]``; a bare ``host:port`` means http)."""
    raw = url if "://" in url else "http://" + url
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        raise UsageError("the proxy URL from the environment is not a URL",
                         actual=_without_credentials(raw)) from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise UsageError("the proxy set in the environment (HTTPS_PROXY, HTTP_PROXY or "
                         "ALL_PROXY) is not an http:// or https:// proxy, the only kinds "
                         "supported", actual=_without_credentials(raw),
                         expected="http://host:port or https://host:port")
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode()
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = port or _DEFAULT_PORTS[scheme]
    return Proxy(f"{scheme}://{host}:{port}", parts.hostname, port, authorization)


def _without_credentials(url: str) -> str:
    """``url`` for a message: credentials in a proxy URL are never shown."""
    return re.sub(r"//[^@/]*@", "//***@", url)[:100]


# urllib's NO_PROXY matching (suffixes, ports, "*"), as requests and urllib3 users rely on;
# public but missing from typeshed.
_proxy_bypass: Callable[[str, dict[str, str]], bool] = (
    urllib.request.proxy_bypass_environment)  # type: ignore[attr-defined]


class ProxySettings:
    """The proxy settings of the environment, read once (as urllib reads them: lower-case
    names win; HTTP_PROXY is ignored under CGI, httpoxy), and the choice for each target."""

    def __init__(self) -> None:
        self._proxies: dict[str, str] | None = None
        if any(name.lower().endswith("_proxy") for name in os.environ):
            self._proxies = urllib.request.getproxies_environment()
        self._choice: dict[tuple[str, str, int], Proxy | None] = {}

    def proxy_for(self, scheme: str, host: str, port: int) -> Proxy | None:
        """The proxy for ``scheme://host:port``, or None for a direct connection."""
        key = (scheme, host, port)
        try:
            return self._choice[key]
        except KeyError:
            pass
        choice = None
        if self._proxies is not None and not _is_loopback(host):
            where = f"[{host}]" if ":" in host else host
            if not _proxy_bypass(f"{where}:{port}", self._proxies):
                url = self._proxies.get(scheme) or self._proxies.get("all")
                choice = _parse_proxy(url) if url else None
            else:
                logger.debug("%s://%s:%d is in NO_PROXY: connecting directly", scheme, where, port)
        if choice is not None:
            logger.debug("%s://%s:%d goes through the proxy %s", scheme, host, port, choice.url)
        self._choice[key] = choice  # the same answer each time: a benign race under threads
        return choice

    def proxy_for_url(self, url: str) -> Proxy | None:
        """The proxy for ``url`` (http or https), or None."""
        target = _parse_url(url)
        return self.proxy_for(target.scheme, target.host, target.port)


def pool_manager(proxy: Proxy | None, *, tls: ssl.SSLContext | None = None,
                 headers: Mapping[str, str] | None = None,
                 retries: urllib3.Retry | bool = False, maxsize: int = 1,
                 plain_http_only: bool = False) -> urllib3.PoolManager:
    """A urllib3 manager with sealtrail's TLS (certifi, or ``tls``) that connects directly
    (``proxy`` None) or through ``proxy``: absolute-form requests for http targets, CONNECT
    tunnels for https targets (TLS inside TLS when the proxy itself is https).

    ``retries`` False (the default) turns off urllib3's retries and redirects, so that the
    caller's policy decides; ``maxsize`` is the connections kept per service.
    ``plain_http_only``: the manager will only speak plain http (http targets, no proxy or
    an http:// one), so no TLS context is made (loading certifi's bundle costs about 20 ms
    of CPU on the benchmark machine).
    """
    kwargs: dict[str, Any] = {"retries": retries, "maxsize": maxsize,
                              "headers": dict(headers) if headers else None}
    context = None
    if not plain_http_only:
        context = tls or tls_context()
        kwargs["ssl_context"] = context
    if proxy is None:
        return urllib3.PoolManager(**kwargs)
    return urllib3.ProxyManager(
        proxy.url, proxy_headers=({"Proxy-Authorization": proxy.authorization}
                                  if proxy.authorization else None),
        proxy_ssl_context=context, **kwargs)


class PoolManagers:
    """urllib3 managers by route: one for direct connections, one per proxy in use (each
    split by whether it speaks TLS). Thread-safe, as urllib3's managers are."""

    def __init__(self, proxies: ProxySettings, *, tls: ssl.SSLContext | None = None,
                 headers: Mapping[str, str] | None = None,
                 retries: urllib3.Retry | bool = False, maxsize: int = 1) -> None:
        self.proxies = proxies
        self._tls = tls
        self._headers = headers
        self._retries = retries
        self._maxsize = maxsize
        self._lock = threading.Lock()
        # By (proxy, whether TLS is spoken): plain-http managers never load a TLS context.
        self._managers: dict[tuple[Proxy | None, bool], urllib3.PoolManager] = {}

    def for_target(self, scheme: str, host: str, port: int) -> urllib3.PoolManager:
        """The manager that reaches ``scheme://host:port`` (through its proxy, if any)."""
        proxy = self.proxies.proxy_for(scheme, host, port)
        plain = scheme == "http" and (proxy is None or proxy.url.startswith("http:"))
        manager = self._managers.get((proxy, plain))
        if manager is None:
            with self._lock:
                manager = self._managers.get((proxy, plain))
                if manager is None:
                    manager = pool_manager(proxy, tls=self._tls, headers=self._headers,
                                           retries=self._retries, maxsize=self._maxsize,
                                           plain_http_only=plain)
                    self._managers[(proxy, plain)] = manager
        return manager

    def for_url(self, url: str) -> urllib3.PoolManager:
        """The manager that reaches ``url``."""
        target = _parse_url(url)
        return self.for_target(target.scheme, target.host, target.port)

    def close(self) -> None:
        """Close every connection of every manager."""
        with self._lock:
            managers, self._managers = list(self._managers.values()), {}
        for manager in managers:
            # PoolManager.clear() only forgets its pools (they close when collected): close
            # them now, so that the services see the connections end.
            for key in list(manager.pools.keys()):
                pool = manager.pools.get(key)
                if pool is not None:
                    pool.close()
            manager.clear()


def _parse_url(url: str) -> _Target:
    """The scheme, host and port of an absolute http(s) URL; ValueError when it cannot be
    sent (urlsplit would quietly drop CR/LF/TAB, so those are refused first)."""
    if _UNSAFE_URL.search(url):
        raise ValueError(f"URL contains spaces or control characters: {url[:100]!r}")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"unsupported URL scheme in {url[:100]!r} (http or https only)")
    host = parts.hostname
    if not host:
        raise ValueError(f"no host in URL {url[:100]!r}")
    port = parts.port or _DEFAULT_PORTS[scheme]  # ValueError for a bad port
    # The request-target is ASCII (RFC 3986 §2): else UnicodeEncodeError (a ValueError).
    (parts.path + parts.query).encode("ascii")
    return _Target(scheme, host, port)


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _reason(exc: BaseException) -> BaseException:
    """The error under urllib3's wrappers (``ProtocolError("Connection aborted.", inner)``,
    ``NewConnectionError`` raised from the socket's ``OSError``...)."""
    seen = 0
    while seen < 8:  # bounded: chains can be long or cyclic
        seen += 1
        inner: Any = None
        if isinstance(exc, u3.ProxyError):
            inner = exc.original_error
        elif isinstance(exc, u3.ProtocolError) and len(exc.args) > 1:
            inner = exc.args[1]
        elif isinstance(exc, u3.SSLError) and exc.args:
            inner = exc.args[0]
        elif isinstance(exc, u3.NewConnectionError):
            inner = exc.__cause__ or exc.__context__
        if not isinstance(inner, BaseException):
            return exc
        exc = inner
    return exc


# -- the client -----------------------------------------------------------------------------

Transport = Callable[[HttpRequest], HttpResponse]


class HttpClient:
    """A thread-safe HTTP/1.1 client with kept-alive connections and retries.

    ``transport`` replaces the network (tests); ``sleep`` and ``rand`` are injectable so
    retry tests run instantly and deterministically; ``tls`` replaces the TLS context
    (tests trust their own CA). Proxy settings are read from the environment once, here.
    """

    def __init__(self, policy: RetryPolicy | None = None, *, transport: Transport | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 rand: Callable[[], float] = random.random,
                 tls: ssl.SSLContext | None = None) -> None:
        self.policy = policy or RetryPolicy()
        self._transport = transport
        self._sleep = sleep
        self._rand = rand
        self._tls = tls
        self._proxies = ProxySettings()
        self._targets: dict[str, _Target] = {}
        self._pools = PoolManagers(self._proxies, tls=tls, maxsize=MAX_CONNECTIONS_PER_SERVICE)
        self._closed = False

    # -- public API ---------------------------------------------------------------------
    def request(self, method: str, url: str, *, body: bytes | None = None,
                headers: Mapping[str, str] | None = None, service: str, limit: int,
                deadline: float | None = None) -> HttpResponse:
        """Send one request (with retries) and return the complete, bounded answer.

        ``service`` names the service in errors; answers over ``limit`` bytes are refused;
        ``deadline`` (seconds) bounds the whole exchange of one attempt, on top of the
        policy's per-operation timeout. Any status is returned (3xx included); statuses in
        :data:`RETRY_STATUSES` are retried first while attempts remain.

        Raises :class:`ServiceUnavailableError`: "cannot reach {service}: ..." when it cannot
        be reached (after the retries) or the URL or a header cannot be sent,
        "{service} did not answer in time", "{service} sent an oversized answer",
        "{service} dropped the connection while answering". A ``transport`` signals these by
        raising ``ConnectionError`` (no answer: retried), :class:`ConnectTimeoutError`
        (retried), ``TimeoutError``, :class:`AnswerDroppedError`, or another ``OSError`` /
        ``http.client.HTTPException`` (reported, not retried).
        """
        try:
            request = self._prepare(method, url, body=body, headers=headers)
        except ValueError as exc:
            raise _failure(exc, service, limit) from exc
        return self._attempts(request, service, limit, deadline)

    def proxy_for(self, url: str) -> Proxy | None:
        """The proxy a request to ``url`` goes through, or None for a direct connection."""
        return self._proxies.proxy_for_url(url)

    def close(self) -> None:
        """Close every kept-alive connection; the client cannot be used afterwards."""
        self._closed = True
        self._pools.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- attempts -----------------------------------------------------------------------
    def _attempts(self, request: HttpRequest, service: str, limit: int,
                  deadline: float | None) -> HttpResponse:
        policy = self.policy
        attempts = max(1, policy.attempts)
        attempt = 1
        resent = False
        while True:
            try:
                if self._transport is None:
                    response = self._exchange(request, limit, deadline)
                else:
                    response = self._via_transport(request, limit)
            except (ConnectTimeoutError, ConnectionError) as exc:
                if isinstance(exc, _ClosedBeforeAnswerError) and not resent:
                    # Most often a kept-alive connection the service closed as it went
                    # idle, in the instant before our request: sent again at once on
                    # another connection, once per request, not counted as an attempt.
                    logger.debug("%s closed the connection before answering (%s); sending "
                                 "the request again", service, _describe(exc))
                    resent = True
                    continue
                # Nothing reached the service (or it closed before answering): try again.
                if attempt < attempts:
                    wait = policy.delay(attempt, self._rand)
                    logger.debug("%s: attempt %d of %d failed (%s); retrying in %.2f s",
                                 service, attempt, attempts, _describe(exc), wait)
                    self._sleep(wait)
                    attempt += 1
                    continue
                raise _failure(exc, service, limit, attempts) from exc
            except _OversizedError as exc:
                raise _failure(exc, service, limit) from None
            except (OSError, AnswerDroppedError, _MalformedAnswerError, _DefiniteError) as exc:
                raise _failure(exc, service, limit) from exc
            except ValueError as exc:
                if self._transport is not None:
                    raise  # a test's own bug: let it show
                raise _failure(exc, service, limit) from exc  # something that cannot be sent
            except Exception as exc:
                if not _is_http_client_error(exc):
                    raise  # a bug, not a service failure: let it show
                raise _failure(exc, service, limit) from exc
            if response.status not in RETRY_STATUSES or attempt >= attempts:
                return response
            wait = policy.delay(attempt, self._rand)
            retry_after = response.headers.get("retry-after", "")
            if retry_after.isdigit():
                # Honour the service's own estimate, but never beyond our cap.
                wait = max(wait, min(float(retry_after), policy.max_backoff))
            logger.debug("%s answered HTTP %d (attempt %d of %d); retrying in %.2f s",
                         service, response.status, attempt, attempts, wait)
            self._sleep(wait)
            attempt += 1

    def _prepare(self, method: str, url: str, *, body: bytes | None = None,
                 headers: Mapping[str, str] | None = None) -> HttpRequest:
        """The request as it goes out (our User-Agent, field names lower-cased), after the
        URL and the header fields are checked (ValueError for what cannot be sent)."""
        if self._closed:
            raise UsageError("the HTTP client has been closed")
        self._target(url)
        fields = Headers({"User-Agent": USER_AGENT})
        if headers:
            for name, value in headers.items():
                if not _FIELD_NAME.fullmatch(name) or _BAD_FIELD_VALUE.search(value):
                    raise ValueError(f"invalid header field {name!r}")
                dict.__setitem__(fields, name.lower(), value)
        return HttpRequest(method, url, fields, body)

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            target = _parse_url(url)
            if len(self._targets) >= _MAX_CACHED_TARGETS:
                self._targets.clear()
            self._targets[url] = target
        return target

    # -- the test seam ------------------------------------------------------------------
    def _via_transport(self, request: HttpRequest, limit: int) -> HttpResponse:
        assert self._transport is not None
        response = self._transport(request)
        declared = response.headers.get("content-length", "")
        bodiless = request.method == "HEAD" or response.status in (204, 304) \
            or 100 <= response.status < 200
        if declared.isdigit() and int(declared) > limit and not bodiless:
            raise _OversizedError(f"{declared} bytes")
        if len(response.body) > limit:
            raise _OversizedError(f"> {limit} bytes")
        return response

    # -- the network (urllib3) ----------------------------------------------------------
    def _exchange(self, request: HttpRequest, limit: int, deadline: float | None) -> HttpResponse:
        target = self._target(request.url)
        manager = self._pools.for_target(target.scheme, target.host, target.port)
        end = None if deadline is None else time.monotonic() + deadline
        timeout = self.policy.timeout
        try:
            answer = manager.urlopen(
                request.method, request.url, body=request.body, headers=dict(request.headers),
                redirect=False, retries=False, preload_content=False, decode_content=False,
                timeout=timeout_for(timeout, deadline))
        except u3.HTTPError as exc:
            raise _before_answer(exc) from exc
        try:
            # What the body will be by its Content-Length (urllib3 knows that HEAD, 204 and
            # 304 answers have none, whatever they declare); None when it is not declared.
            declared = answer.length_remaining
            if declared is not None and declared > limit:
                raise _OversizedError(f"{declared} bytes")
            body = _read_bounded(answer, limit, end, timeout)
        except BaseException:
            # Half-read: the connection cannot carry another request.
            answer.close()
            answer.release_conn()
            raise
        answer.release_conn()
        return HttpResponse(answer.status, Headers(answer.headers.items()), body)


def _read_bounded(answer: Any, limit: int, end: float | None, timeout: float) -> bytes:
    """The body of ``answer`` (a urllib3 response), read as it arrives: refused as soon as
    it grows past ``limit``; ``end`` (monotonic) bounds the whole read."""
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            if end is not None:
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the deadline passed")
                connection = answer.connection
                if connection is not None and connection.sock is not None:
                    connection.sock.settimeout(min(left, timeout))
            chunk = answer.read1(_READ_BYTES)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limit:
                raise _OversizedError(f"> {limit} bytes")
            chunks.append(chunk)
    except u3.ReadTimeoutError as exc:
        raise TimeoutError(_describe(exc)) from exc
    except u3.HTTPError as exc:
        # The status and headers came: the service acted on the request, never repeat it.
        raise AnswerDroppedError(_describe(_reason(exc))) from exc


def _before_answer(exc: u3.HTTPError) -> BaseException:
    """What a urllib3 error raised before any answer means to the retry policy."""
    reason = _reason(exc)
    if isinstance(exc, u3.SSLError) or isinstance(reason, ssl.SSLError):
        return _DefiniteError(_describe(reason))  # a certificate we refuse: not retried
    if isinstance(exc, u3.ProxyError):
        if isinstance(reason, u3.ConnectTimeoutError) and \
                not isinstance(reason, u3.NewConnectionError):
            return ConnectTimeoutError(f"connecting to the proxy timed out ({_describe(reason)})")
        if isinstance(reason, ConnectionError):
            # The proxy is unreachable, or closed on us: nothing reached the service.
            return ConnectionError(f"through the proxy: {_describe(reason)}")
        # The proxy answered the tunnel request with a refusal (403, 407...): definite.
        return _DefiniteError(f"through the proxy: {_describe(reason)}")
    if isinstance(exc, u3.NewConnectionError):
        # Refused, unreachable network, unknown name: nothing was sent.
        return ConnectionError(_describe(reason))
    if isinstance(exc, u3.ConnectTimeoutError):
        return ConnectTimeoutError(f"connecting timed out ({_describe(exc)})")
    if isinstance(exc, u3.ReadTimeoutError):
        return TimeoutError(_describe(exc))
    if isinstance(exc, u3.ProtocolError):
        if isinstance(reason, ConnectionError):
            # RFC 9112 §9.3.1: closed (or reset) before any answer: nothing was processed.
            return _ClosedBeforeAnswerError(_describe(reason))
        return _MalformedAnswerError(f"the answer is not HTTP/1.1 ({_describe(reason)})")
    if isinstance(exc, u3.LocationValueError):
        return ValueError(_describe(exc))
    return _DefiniteError(_describe(reason))


def _is_http_client_error(exc: BaseException) -> bool:
    import http.client  # loaded by urllib3 already

    return isinstance(exc, http.client.HTTPException)


def _failure(exc: BaseException, service: str, limit: int,
             attempts: int = 1) -> ServiceUnavailableError:
    """What :meth:`HttpClient.request` raises for ``exc``, its last attempt's error (after
    ``attempts`` attempts), naming ``service``; ``limit`` is the answer's size limit."""
    if isinstance(exc, ConnectTimeoutError):
        return ServiceUnavailableError(f"{service} did not answer in time (connecting timed out"
                                       + (f", {attempts} attempts)" if attempts > 1 else ")"))
    if isinstance(exc, TimeoutError):
        # The service may be working on it: repeating could do it twice.
        return ServiceUnavailableError(f"{service} did not answer in time "
                                       f"({type(exc).__name__})")
    if isinstance(exc, ConnectionError):
        return ServiceUnavailableError(f"cannot reach {service}: {_describe(exc)}"
                                       f"{_after(attempts)}")
    if isinstance(exc, _OversizedError):
        return ServiceUnavailableError(f"{service} sent an oversized answer", actual=exc.args[0],
                                       expected=f"<= {limit} bytes")
    if isinstance(exc, AnswerDroppedError):
        return ServiceUnavailableError(f"{service} dropped the connection while answering: {exc}")
    if isinstance(exc, _MalformedAnswerError):
        # Definite, and not improved by repeating.
        return ServiceUnavailableError(f"{service} sent a malformed answer: {exc}")
    # TLS failures, other socket errors, a URL or header that cannot be sent: definite.
    return ServiceUnavailableError(f"cannot reach {service}: {_describe(exc)}")


def _after(attempts: int) -> str:
    return f" (after {attempts} attempts)" if attempts > 1 else ""


def http_client(policy: RetryPolicy | None = None, *, transport: Transport | None = None,
                sleep: Callable[[float], None] = time.sleep,
                rand: Callable[[], float] = random.random,
                tls: ssl.SSLContext | None = None) -> HttpClient:
    """The :class:`HttpClient` the signing-service clients share (timeouts and retries).

    ``transport`` replaces the network (tests pass a function answering
    :class:`HttpRequest` objects). The client is thread-safe: the signer shares one across
    its worker threads.
    """
    return HttpClient(policy, transport=transport, sleep=sleep, rand=rand, tls=tls)


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
