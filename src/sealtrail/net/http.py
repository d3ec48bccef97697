"""The small retrying HTTP client every client of this package shares (CA, TSA, OIDC, Rekor).

:class:`HttpClient` opens connections with the standard library (a socket, then TLS for
https; :mod:`http.client` only for connections through a proxy, which it tunnels with
CONNECT), writes each request itself in one send, and has httptools (llhttp, the parser
uvicorn uses) parse the answer; it adds only what the signing clients need:

- **keep-alive connections held per thread** and per ``(scheme, host, port)``: the signer's
  worker threads each reuse their own connection, so the hot path takes no shared lock.
  A kept-alive connection that the server closed while it sat idle is re-opened once,
  transparently, without counting as a failed attempt;
- a **timeout** on every socket operation (``RetryPolicy.timeout``; connecting is capped at
  10 s), and optionally a total ``deadline`` for one exchange;
- **bounded retries** with exponential backoff and equal jitter when the service is
  unreachable (connection refused/reset, or closed before any answer) or answers 429 or
  500/502/503/504 (``Retry-After`` honoured, up to ``max_backoff``). A request that got a
  definite answer, or whose answer did not come in time, is never repeated: the service
  may have acted on it;
- **bounded answers**: a body over ``limit`` bytes is refused, from its Content-Length when
  it declares one, before it is read;
- TLS for https URLs with certificate and hostname verification against certifi's bundle
  (the system store when certifi is not installed), set up on the first https request only;
- the ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` / ``NO_PROXY`` environment variables
  (any case): http:// proxies only, https targets through a CONNECT tunnel, plain-http
  targets by absolute URL; loopback hosts are never proxied;
- no redirects: a 3xx answer is returned as it is.

Transport failures become :class:`ServiceUnavailableError` naming the service. Tests replace
the network with ``HttpClient(transport=...)``: a callable taking an :class:`HttpRequest`
and returning an :class:`HttpResponse`, or raising one of the exceptions listed in
:meth:`HttpClient.request`.

SPEC: RFC 9110 §15.6 / §10.2.3 (5xx, 429 and Retry-After), RFC 9112 §9.3 (persistent
connections: a client may retry a request on a new connection when the old one closed
before any response), RFC 9112 §3.2.2 / RFC 9110 §9.3.6 (absolute-form and CONNECT for
proxies).
"""

from __future__ import annotations

import functools
import json
import os
import random
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from sealtrail import __version__
from sealtrail.errors import ServiceUnavailableError, UsageError

if TYPE_CHECKING:
    import ssl

__all__ = [
    "AnswerDroppedError",
    "ConnectTimeoutError",
    "Headers",
    "HttpClient",
    "HttpRequest",
    "HttpResponse",
    "Proxy",
    "RETRY_STATUSES",
    "RetryPolicy",
    "USER_AGENT",
    "http_client",
    "service_message",
]

# Statuses that say "not now" rather than "no": the service is overloaded or restarting.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_ERROR_CHARS = 300
USER_AGENT = f"sealtrail/{__version__}"
# Connecting should be quick; a long per-request timeout must not make an unreachable
# address hang that long on every attempt.
MAX_CONNECT_TIMEOUT = 10.0
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
# How many distinct URLs keep their parsed form cached (the services are a handful).
_MAX_CACHED_TARGETS = 512
# SPEC: RFC 3986 §2: no spaces or control characters in a URI.
_UNSAFE_URL = re.compile(r"[\x00-\x20\x7f]")


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
        ceiling = min(self.max_backoff, self.backoff * (2 ** (attempt - 1)))
        return ceiling / 2 + rand() * ceiling / 2


class Headers(dict):  # type: ignore[type-arg]
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

    def get(self, name: str, default: Any = None) -> Any:  # noqa: D102 - dict API
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


class Proxy(NamedTuple):
    """An http:// forward proxy: where it is and the credentials it wants (if any)."""

    url: str
    host: str
    port: int
    authorization: str | None


class _Target(NamedTuple):
    """A parsed URL: connection key, where to connect, and the request-target to send."""

    key: tuple[str, str, int]
    https: bool
    host: str
    port: int
    path: str  # origin-form ("/a?b"); absolute-form is built when a proxy is used


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    import ipaddress  # only when proxies are configured

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _proxy_environment() -> dict[str, str] | None:
    """The proxy settings of the environment as urllib reads them (lower-case names win),
    or None when no ``*_proxy`` variable is set.

    urllib.request costs several milliseconds to import: only paid when one is set.
    """
    if not any(name.lower().endswith("_proxy") for name in os.environ):
        return None
    import urllib.request

    return urllib.request.getproxies_environment()


def _parse_proxy(url: str) -> Proxy:
    """A proxy URL (``http://[user:pass@]host[:port]``; a bare ``host:port`` means http)."""
    raw = url if "://" in url else "http://" + url
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        raise UsageError("the proxy URL from the environment is not a URL",
                         actual=url[:100]) from None
    if parts.scheme != "http" or not parts.hostname:
        raise UsageError("the proxy set in the environment (HTTPS_PROXY, HTTP_PROXY or "
                         "ALL_PROXY) is not an http:// proxy, the only kind supported",
                         actual=url[:100], expected="http://host:port")
    authorization = None
    if parts.username is not None:
        import base64
        from urllib.parse import unquote

        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode()
    return Proxy(raw, parts.hostname, port or 80, authorization)


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


Transport = Callable[[HttpRequest], HttpResponse]


class _Connection:
    """A connected socket to a service (TLS for https), as the client keeps it. Connections
    through a proxy are ``http.client`` connections instead, which look the same here (a
    ``sock``, ``close()``)."""

    __slots__ = ("sock", "sealtrail_used")

    def __init__(self, sock: socket.socket) -> None:
        self.sock: socket.socket | None = sock
        self.sealtrail_used = False  # answered, and kept alive for the next request

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()


def _http_client_errors() -> tuple[type[BaseException], ...]:
    """``http.client``'s own errors, when it is in use (only for connections through a
    proxy): without it loaded, none of them can be raised."""
    module = sys.modules.get("http.client")
    return (module.HTTPException,) if module is not None else ()


def _is_tls_error(exc: BaseException) -> bool:
    module = sys.modules.get("ssl")
    return module is not None and isinstance(exc, module.SSLError)


class HttpClient:
    """A thread-safe HTTP/1.1 client with per-thread keep-alive connections and retries.

    ``transport`` replaces the network (tests); ``sleep`` and ``rand`` are injectable so
    retry tests run instantly and deterministically. Proxy settings are read from the
    environment once, here.
    """

    def __init__(self, policy: RetryPolicy | None = None, *, transport: Transport | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 rand: Callable[[], float] = random.random) -> None:
        self.policy = policy or RetryPolicy()
        self._transport = transport
        self._sleep = sleep
        self._rand = rand
        self._proxies = _proxy_environment()
        self._proxy_choice: dict[tuple[str, str, int], Proxy | None] = {}
        self._targets: dict[str, _Target] = {}
        self._local = threading.local()
        # Every connection any thread opened, so close() can reach them; only touched when
        # a connection is opened or dropped, never on the hot path.
        self._lock = threading.Lock()
        self._opened: dict[int, tuple[threading.Thread, Any]] = {}
        self._tls: ssl.SSLContext | None = None
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
        be reached (after the retries), "{service} did not answer in time",
        "{service} sent an oversized answer", "{service} dropped the connection while
        answering". A ``transport`` signals these by raising ``ConnectionError`` (no answer:
        retried), :class:`ConnectTimeoutError` (retried), ``TimeoutError``,
        :class:`AnswerDroppedError`, or another ``OSError`` / ``http.client.HTTPException``.
        """
        return self._attempts(self._prepare(method, url, body=body, headers=headers), service,
                              limit, deadline)

    def _attempts(self, request: HttpRequest, service: str, limit: int,
                  deadline: float | None,
                  first: Callable[[], HttpResponse] | None = None) -> HttpResponse:
        """:meth:`request`'s attempts; ``first``, when given, makes the first one (it reads
        the answer to a request :meth:`send_early` wrote)."""
        policy = self.policy
        attempts = max(1, policy.attempts)
        attempt = 1
        while True:
            try:
                if first is not None:
                    exchange, first = first, None
                    response = exchange()
                elif self._transport is None:
                    response = self._exchange(request, limit, deadline)
                else:
                    response = self._via_transport(request, limit)
            except (ConnectTimeoutError, ConnectionError) as exc:
                # Nothing reached the service (or it closed before answering): try again.
                if attempt < attempts:
                    self._sleep(policy.delay(attempt, self._rand))
                    attempt += 1
                    continue
                raise _failure(exc, service, limit, attempts) from exc
            except _OversizedError as exc:
                raise _failure(exc, service, limit) from None
            except (OSError, AnswerDroppedError, _MalformedAnswerError) as exc:
                raise _failure(exc, service, limit) from exc
            except ValueError as exc:
                if self._transport is not None:
                    raise  # a test's own bug: let it show
                # A URL (or header) that cannot be sent.
                raise _failure(exc, service, limit) from exc
            except Exception as exc:
                if not isinstance(exc, _http_client_errors()):
                    raise
                raise _failure(exc, service, limit) from exc  # a proxy tunnel that failed
            if response.status not in RETRY_STATUSES or attempt >= attempts:
                return response
            wait = policy.delay(attempt, self._rand)
            retry_after = response.headers.get("retry-after", "")
            if retry_after.isdigit():
                # Honour the service's own estimate, but never beyond our cap.
                wait = max(wait, min(float(retry_after), policy.max_backoff))
            self._sleep(wait)
            attempt += 1

    def _prepare(self, method: str, url: str, *, body: bytes | None = None,
                headers: Mapping[str, str] | None = None) -> HttpRequest:
        """The request as :meth:`request` sends it (our User-Agent, field names lower-cased)."""
        if self._closed:
            raise UsageError("the HTTP client has been closed")
        fields = Headers({"User-Agent": USER_AGENT})
        if headers:
            for name, value in headers.items():
                dict.__setitem__(fields, name.lower(), value)
        return HttpRequest(method, url, fields, body)

    def send_early(self, method: str, url: str, *, body: bytes | None = None,
                   headers: Mapping[str, str] | None = None, service: str,
                   limit: int) -> Callable[[], HttpResponse]:
        """Send a request now; the returned function reads its answer (wait for it then).

        The service works on the request meanwhile, while this thread does something else
        (the CLI loads the signer while the CA issues its certificate). Call the function
        from this thread, before this thread sends another request to the same service. The
        answer, its retries and its errors are :meth:`request`'s, this send being its first
        attempt: a request that could not be sent now, or that the service closed without
        answering, is made again when the answer is read (nothing was processed); one
        answered "not now" (:data:`RETRY_STATUSES`) is retried after the usual back-off.
        """
        request = self._prepare(method, url, body=body, headers=headers)

        def again() -> HttpResponse:
            return self._attempts(request, service, limit, None)

        if self._transport is not None:
            return again
        try:
            target = self._target(url)
            connection = self._kept_alive(target) or self._open(target, self.policy.timeout)
            reader = self._send(target, connection, request, limit, None)
        except Exception:  # noqa: BLE001 - request() tries again and reports as it always does
            return again

        def answered() -> HttpResponse:
            try:
                return self._receive(target, connection, reader, None)
            except ConnectionError:
                # Closed before any answer (RFC 9112 §9.3.1), a kept-alive connection the
                # service had dropped among them: nothing was processed. One fresh
                # connection, not counted as an attempt, as _exchange does.
                return self._exchange(request, limit, None)

        # The early send is the first attempt; its errors and retries are request()'s.
        return lambda: self._attempts(request, service, limit, None, first=answered)

    def proxy_for(self, url: str) -> Proxy | None:
        """The proxy a request to ``url`` goes through, or None for a direct connection."""
        return self._proxy(self._target(url))

    def close(self) -> None:
        """Close every connection, of every thread; the client cannot be used afterwards."""
        self._closed = True
        with self._lock:
            opened = list(self._opened.values())
            self._opened.clear()
        for _, connection in opened:
            connection.close()

    def forget_connections(self) -> None:
        """Drop (without closing) every connection: for a forked child process, whose
        copies of the parent's sockets belong to the parent's exchanges. The child then
        opens its own. Also renews the lock, which the parent's threads may have held."""
        self._lock = threading.Lock()
        self._opened = {}
        self._local = threading.local()

    def __enter__(self) -> "HttpClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the test seam ------------------------------------------------------------------
    def _via_transport(self, request: HttpRequest, limit: int) -> HttpResponse:
        assert self._transport is not None
        response = self._transport(request)
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _OversizedError(f"{declared} bytes")
        if len(response.body) > limit:
            raise _OversizedError(f"> {limit} bytes")
        return response

    # -- the network --------------------------------------------------------------------
    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is not None:
            return target
        if _UNSAFE_URL.search(url):
            # urlsplit would quietly drop CR/LF/TAB; refuse before any connection instead.
            raise ValueError(f"URL contains spaces or control characters: {url[:100]!r}")
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise ValueError(f"unsupported URL scheme in {url[:100]!r} (http or https only)")
        host = parts.hostname
        if not host:
            raise ValueError(f"no host in URL {url[:100]!r}")
        port = parts.port or _DEFAULT_PORTS[scheme]  # ValueError for a bad port
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        target = _Target((scheme, host, port), scheme == "https", host, port, path)
        if len(self._targets) >= _MAX_CACHED_TARGETS:
            self._targets.clear()
        self._targets[url] = target
        return target

    def _proxy(self, target: _Target) -> Proxy | None:
        if self._proxies is None:
            return None
        key = target.key
        if key in self._proxy_choice:
            return self._proxy_choice[key]
        choice = None
        if not _is_loopback(target.host):
            import urllib.request

            where = f"[{target.host}]" if ":" in target.host else target.host
            if not urllib.request.proxy_bypass_environment(f"{where}:{target.port}",
                                                           self._proxies):
                url = self._proxies.get(key[0]) or self._proxies.get("all")
                choice = _parse_proxy(url) if url else None
        self._proxy_choice[key] = choice
        return choice

    def _tls_context(self) -> ssl.SSLContext:
        context = self._tls
        if context is None:
            import ssl  # loaded with the first https request: plain http never needs it

            with self._lock:
                if self._tls is None:
                    try:
                        import certifi
                    except ImportError:  # the system's trust store, then
                        self._tls = ssl.create_default_context()
                    else:
                        self._tls = ssl.create_default_context(cafile=certifi.where())
                context = self._tls
        return context

    def _connections(self) -> dict[tuple[str, str, int], Any]:
        try:
            return self._local.connections  # type: ignore[no-any-return]
        except AttributeError:
            connections: dict[tuple[str, str, int], Any] = {}
            self._local.connections = connections
            return connections

    def _open(self, target: _Target, timeout: float) -> Any:
        """A new, connected connection for ``target`` (through its proxy, if any)."""
        proxy = self._proxy(target)
        connect_timeout = min(timeout, MAX_CONNECT_TIMEOUT)
        try:
            connection = (self._direct(target, connect_timeout) if proxy is None
                          else self._through(proxy, target, connect_timeout))
        except TimeoutError as exc:
            raise ConnectTimeoutError(f"connecting to {target.host}:{target.port} timed out "
                                      f"after {connect_timeout:g} s") from exc
        except ConnectionError:
            raise
        except OSError as exc:
            if _is_tls_error(exc):
                raise  # a certificate we refuse: definite, not retried
            # Unreachable network, unknown name, refused tunnel...: nothing was sent.
            raise ConnectionError(_describe(exc)) from exc
        assert connection.sock is not None
        connection.sock.settimeout(timeout)
        connection.sealtrail_used = False
        with self._lock:
            # Connections of threads that have ended are closed here rather than leaked.
            for ident, (thread, old) in list(self._opened.items()):
                if not thread.is_alive():
                    old.close()
                    del self._opened[ident]
            self._opened[id(connection)] = (threading.current_thread(), connection)
        self._connections()[target.key] = connection
        return connection

    def _direct(self, target: _Target, timeout: float) -> _Connection:
        """A socket to ``target`` itself: TCP, then TLS for https (without ``http.client``,
        whose import with its email parser and ``ssl`` cost about 9 ms of every start-up,
        for what two calls do here)."""
        # An ASCII name goes to getaddrinfo as bytes: a str would load the IDNA codec (about
        # 1 ms of start-up) only to give back the same bytes.
        host = target.host.encode("ascii") if target.host.isascii() else target.host
        sock = socket.create_connection((host, target.port), timeout)
        try:
            # Requests go out in one send each; Nagle's algorithm would only delay them.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if target.https:
                sock = self._tls_context().wrap_socket(sock, server_hostname=target.host)
        except BaseException:
            sock.close()
            raise
        return _Connection(sock)

    def _through(self, proxy: Proxy, target: _Target, timeout: float) -> Any:
        """A connection through ``proxy``: an ``http.client`` one, which speaks CONNECT
        for https targets (tunnel answers are parsed by it, never by hand)."""
        import http.client

        connection: http.client.HTTPConnection
        if target.https:
            connection = http.client.HTTPSConnection(proxy.host, proxy.port, timeout=timeout,
                                                     context=self._tls_context())
            connection.set_tunnel(target.host, target.port, headers=(
                {"Proxy-Authorization": proxy.authorization} if proxy.authorization else None))
        else:
            connection = http.client.HTTPConnection(proxy.host, proxy.port, timeout=timeout)
        try:
            connection.connect()
        except BaseException:
            connection.close()
            raise
        return connection

    def _drop(self, target: _Target, connection: Any) -> None:
        connection.close()
        connections = self._connections()
        if connections.get(target.key) is connection:
            del connections[target.key]
        with self._lock:
            self._opened.pop(id(connection), None)

    def _kept_alive(self, target: _Target) -> Any | None:
        """This thread's answered connection to ``target``, kept alive for the next request,
        or None; one left half-used by an interrupted exchange is closed instead."""
        connection = self._connections().get(target.key)
        if connection is not None and not connection.sealtrail_used:
            self._drop(target, connection)
            return None
        return connection

    def _exchange(self, request: HttpRequest, limit: int, deadline: float | None) -> HttpResponse:
        target = self._target(request.url)
        end = None if deadline is None else time.monotonic() + deadline
        timeout = self.policy.timeout if deadline is None else min(self.policy.timeout, deadline)
        connection = self._kept_alive(target)
        if connection is not None:
            try:
                return self._round_trip(target, connection, request, limit, end)
            except ConnectionError:
                # RFC 9112 §9.3.1: the server closed the idle kept-alive connection (or
                # reset it) before answering: nothing was processed. One fresh
                # connection, not counted as an attempt.
                pass
        return self._round_trip(target, self._open(target, timeout), request, limit, end)

    def _encode(self, target: _Target, request: HttpRequest) -> bytes:
        """The bytes of ``request`` on a connection to ``target`` (ValueError for a field
        that cannot be sent)."""
        proxy = None if target.https else self._proxy(target)
        path = target.path
        fields: Mapping[str, str] = request.headers
        if proxy is not None:
            # RFC 9112 §3.2.2: absolute-form to a forward proxy.
            path = f"http://{_authority(target)}{target.path}"
            if proxy.authorization:
                fields = {**fields, "proxy-authorization": proxy.authorization}
        head = _request_head(request.method, path, _authority(target), fields, request.body)
        return head + request.body if request.body else head

    def _round_trip(self, target: _Target, connection: Any,
                    request: HttpRequest, limit: int, end: float | None) -> HttpResponse:
        return self._receive(target, connection,
                             self._send(target, connection, request, limit, end), end)

    def _send(self, target: _Target, connection: Any,
              request: HttpRequest, limit: int, end: float | None) -> _AnswerReader:
        """Write ``request`` on ``connection``; the reader for its answer."""
        data = self._encode(target, request)
        sock = connection.sock
        if sock is None:  # pragma: no cover - _open connects, _drop forgets
            raise ConnectionResetError("the connection is closed")
        connection.sealtrail_used = False  # type: ignore[attr-defined]  # until answered
        try:
            if end is not None:
                _budget(connection, end, self.policy.timeout)
            # One send for head and body: one segment, one wake-up of the service.
            sock.sendall(data)
        except BaseException:
            self._drop(target, connection)
            raise
        return _AnswerReader(limit)

    def _receive(self, target: _Target, connection: Any,
                 reader: _AnswerReader, end: float | None) -> HttpResponse:
        """Read the answer to the request :meth:`_send` wrote on ``connection``."""
        sock = connection.sock
        if sock is None:  # closed since (the client was closed): nothing can come
            raise ConnectionResetError("the connection is closed")
        try:
            while not reader.complete:
                if end is not None:
                    _budget(connection, end, self.policy.timeout)
                chunk = sock.recv(_RECV_BYTES)
                if not chunk:
                    reader.closed()
                    break
                reader.feed(chunk)
        except BaseException as exc:
            self._drop(target, connection)
            if reader.started and isinstance(exc, OSError) and not isinstance(exc, TimeoutError):
                # The service began to answer: it acted on the request, never repeat it.
                raise AnswerDroppedError(_describe(exc)) from exc
            raise
        finally:
            reader.release()
        if reader.keep_alive:
            if end is not None:
                sock.settimeout(self.policy.timeout)
            connection.sealtrail_used = True  # type: ignore[attr-defined]
        else:
            self._drop(target, connection)
        return HttpResponse(reader.status, reader.headers, reader.body())


#: One read: a Rekor answer with its inclusion proof is a few KiB, a trust bundle more.
#: Below glibc's mmap threshold (128 KiB), so a read does not map and unmap memory.
_RECV_BYTES = 64 * 1024
# SPEC: RFC 9110 §5.1 / §5.5: a field name is a token; a value has no CR, LF or NUL.
_FIELD_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_FIELD_VALUE = re.compile(r"[\x00\r\n]")
_METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


def _request_head(method: str, path: str, authority: str, fields: Mapping[str, str],
                  body: bytes | None) -> bytes:
    """The request line and header section (RFC 9112 §3, §5), ready to send.

    Host, Accept-Encoding (identity: we never decompress) and Content-Length are added as
    http.client adds them; a field a caller set wins. ValueError for a field that cannot be
    sent (the caller reports it like an unreachable service).
    """
    lines = [f"{method} {path} HTTP/1.1", f"Host: {authority}"]
    given = set()
    for name, value in fields.items():
        if not _FIELD_NAME.fullmatch(name) or _BAD_FIELD_VALUE.search(value):
            raise ValueError(f"invalid header field {name!r}")
        given.add(name.lower())
        lines.append(f"{name}: {value}")
    if "accept-encoding" not in given:
        lines.append("Accept-Encoding: identity")
    if "content-length" not in given and (body or method in _METHODS_WITH_BODY):
        lines.append(f"Content-Length: {len(body or b'')}")
    lines.extend(("", ""))
    path.encode("ascii")  # the request-target is ASCII: else UnicodeEncodeError (a ValueError)
    # Field values go out as ISO-8859-1, as http.client sends them.
    return "\r\n".join(lines).encode("latin-1")


@functools.cache
def _httptools() -> tuple[Any, tuple[type[Exception], ...]]:
    """httptools' response parser and the errors it raises; imported with the first
    exchange (C, llhttp), not at start-up."""
    import httptools

    return httptools.HttpResponseParser, (httptools.HttpParserError, httptools.HttpParserUpgrade)


class _MalformedAnswerError(Exception):
    """The bytes that came back are not an HTTP/1.1 response."""


class _Surplus(Exception):
    """Bytes after a complete answer (see ``_AnswerReader.on_message_begin``)."""


class _AnswerReader:
    """One HTTP/1.1 response, parsed by httptools (llhttp) as its bytes arrive.

    Bounded: a declared Content-Length over ``limit`` is refused when the headers are
    complete, a body that grows past it as soon as it does. Interim (1xx) responses are
    skipped (RFC 9110 §15.2).
    """

    def __init__(self, limit: int) -> None:
        parser_class, self._errors = _httptools()
        self._limit = limit
        self._parser = parser_class(self)
        self.started = False  # any byte of the answer came
        self.complete = False
        self.keep_alive = False
        self.status = 0
        self.headers = Headers()
        self._fields: list[tuple[str, str]] = []
        self._chunks: list[bytes] = []
        self._size = 0
        self._until_close = False  # the body ends when the connection does

    # -- httptools callbacks -----------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.complete:
            # Bytes after the answer (nothing was pipelined): this connection is not
            # reusable. Stop parsing them.
            self.keep_alive = False
            raise _Surplus()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self.headers = Headers(self._fields)
        if 100 <= self.status < 200:
            return  # interim: its message completes next, then the real answer begins
        declared = self.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._limit:
            raise _OversizedError(f"{declared} bytes")
        self._until_close = (not declared and "transfer-encoding" not in self.headers
                             and self.status not in (204, 304))

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._limit:
            raise _OversizedError(f"> {self._limit} bytes")
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:  # skip the interim answer
            self._fields = []
            self.status = 0
            return
        self.complete = True
        self.keep_alive = self._parser.should_keep_alive()

    # -- driving -----------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        self.started = True
        try:
            self._parser.feed_data(data)
        except self._errors as exc:
            # A callback's own exception comes back as the context of the parser's error.
            cause = exc.__context__
            if isinstance(cause, _Surplus):
                return
            if isinstance(cause, _OversizedError):
                raise cause from None
            raise _MalformedAnswerError(f"the answer is not HTTP/1.1 ({exc})") from exc

    def closed(self) -> None:
        """The service closed the connection."""
        if not self.started:
            # RFC 9112 §9.3.1: closed before any answer: nothing was processed.
            raise ConnectionResetError("the service closed the connection without answering")
        if self.status and self._until_close:
            self.complete, self.keep_alive = True, False
            return
        raise AnswerDroppedError("the connection closed in the middle of the answer"
                                 + (f" ({self._size} body bytes read)" if self.status else ""))

    def body(self) -> bytes:
        return b"".join(self._chunks)

    def release(self) -> None:
        """Drop the parser, which holds this reader's callbacks: without this reference
        cycle, each answer is freed at once instead of waiting for the garbage collector."""
        self._parser = None  # type: ignore[assignment]


def _authority(target: _Target) -> str:
    """``host[:port]`` of ``target`` as written in a URL (IPv6 in brackets)."""
    host = f"[{target.host}]" if ":" in target.host else target.host
    return host if target.port == _DEFAULT_PORTS["http"] else f"{host}:{target.port}"


def _budget(connection: Any, end: float, cap: float) -> None:
    """Set the socket timeout to what is left of the deadline (TimeoutError if nothing)."""
    left = end - time.monotonic()
    if left <= 0:
        raise TimeoutError("the deadline passed")
    if connection.sock is not None:
        connection.sock.settimeout(min(left, cap))


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
                rand: Callable[[], float] = random.random) -> HttpClient:
    """The :class:`HttpClient` the signing-service clients share (timeouts and retries).

    ``transport`` replaces the network (tests pass a function answering
    :class:`HttpRequest` objects). The client is thread-safe: the signer shares one across
    its worker threads.
    """
    return HttpClient(policy, transport=transport, sleep=sleep, rand=rand)


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
