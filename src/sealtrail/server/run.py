"""Run an ASGI app with uvicorn on loopback unless told otherwise, and report the bound port.

The server is bounded against clients that hold resources without finishing requests
(:class:`ServerLimits`, docs/instance.md "Connection limits"): request headers are limited
in size and must arrive within a time, so must a request body, idle keep-alive connections
are closed, and connections beyond a limit are answered 503. uvicorn has the idle timeout
and the connection limit; the header size and the two read timeouts come from a small
subclass of its httptools protocol (:func:`_limited_protocol`), which only counts bytes and
runs timers: parsing stays httptools'.

Every log line is JSON (:class:`JsonLogFormatter`), uvicorn's and asyncio's included, and a
request that fails with a 500 is logged once.
"""

from __future__ import annotations

import errno
import gc
import json
import logging
import math
import os
import socket
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from sealtrail._internal.encoding import reject_unknown, require_dict, require_json_int
from sealtrail.errors import ConfigInvalidError, UsageError

if TYPE_CHECKING:
    import asyncio

__all__ = ["JsonLogFormatter", "ServerLimits", "collect_garbage", "configure_logging", "serve"]

log = logging.getLogger("sealtrail.server")

# Named defaults (docs/instance.md "Connection limits"). Request headers of real clients
# are well under 8 KiB; 64 KiB is what nginx allows at most (large_client_header_buffers
# 4 x 16k) and far from the 100 MiB that were accepted before.
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
# From the first byte of a request to the end of its headers (nginx
# client_header_timeout: 60 s; a client on a working link needs milliseconds).
DEFAULT_HEADER_TIMEOUT = 10.0
# From the end of the headers to the end of the body: the largest body is 4 MiB
# (_http.MAX_BODY_BYTES), which needs ~1.1 Mbit/s to arrive in 30 s.
DEFAULT_BODY_TIMEOUT = 30.0
# An idle keep-alive connection (uvicorn's default is 5 s).
DEFAULT_KEEP_ALIVE_TIMEOUT = 5.0
# Open connections served at once; beyond, requests are answered 503. Each costs a file
# descriptor: serve() raises the soft RLIMIT_NOFILE to fit them (plus a reserve for
# storage and TLS-less housekeeping) when the hard limit allows.
DEFAULT_MAX_CONNECTIONS = 4096
_FD_RESERVE = 256
_MAX_TIMEOUT = 3600.0


@dataclass(frozen=True)
class ServerLimits:
    """Bounds on what one client connection may hold (checked once, when built)."""

    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    keep_alive_timeout: float = DEFAULT_KEEP_ALIVE_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS

    def __post_init__(self) -> None:
        if isinstance(self.max_header_bytes, bool) or not isinstance(self.max_header_bytes, int) \
                or not 1024 <= self.max_header_bytes <= 16 * 1024 * 1024:
            raise UsageError("the request header limit is out of range",
                             actual=self.max_header_bytes, expected="1024..16777216 bytes")
        if isinstance(self.max_connections, bool) or not isinstance(self.max_connections, int) \
                or not 1 <= self.max_connections <= 1_000_000:
            raise UsageError("the connection limit is out of range",
                             actual=self.max_connections, expected="1..1000000")
        for name in ("header_timeout", "body_timeout", "keep_alive_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0 < value <= _MAX_TIMEOUT:
                raise UsageError(f"{name.replace('_', ' ')} is out of range", actual=value,
                                 expected=f"0 < seconds <= {_MAX_TIMEOUT:g}")

    def to_json(self) -> dict[str, Any]:
        return {"maxHeaderBytes": self.max_header_bytes, "headerTimeout": self.header_timeout,
                "bodyTimeout": self.body_timeout, "keepAliveTimeout": self.keep_alive_timeout,
                "maxConnections": self.max_connections}

    @classmethod
    def from_json(cls, data: Any, source: str) -> ServerLimits:
        """Parse the ``server`` object of a config file strictly (ADR 0002): every field
        optional, JSON numbers (seconds may have a fraction), no unknown fields. Raises
        :class:`ConfigInvalidError` naming ``source``."""
        E = ConfigInvalidError
        config = require_dict(data, source, E)
        reject_unknown(config, _LIMIT_FIELDS, source, E)
        defaults = cls()

        def seconds(key: str, default: float) -> float:
            value = config.get(key, default)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0 < value <= _MAX_TIMEOUT:
                raise E(f"{source}.{key} must be a number of seconds", actual=repr(value),
                        expected=f"0 < seconds <= {_MAX_TIMEOUT:g}")
            return float(value)

        return cls(
            max_header_bytes=require_json_int(
                config.get("maxHeaderBytes", defaults.max_header_bytes),
                f"{source}.maxHeaderBytes", E, minimum=1024, maximum=16 * 1024 * 1024),
            header_timeout=seconds("headerTimeout", defaults.header_timeout),
            body_timeout=seconds("bodyTimeout", defaults.body_timeout),
            keep_alive_timeout=seconds("keepAliveTimeout", defaults.keep_alive_timeout),
            max_connections=require_json_int(
                config.get("maxConnections", defaults.max_connections),
                f"{source}.maxConnections", E, minimum=1, maximum=1_000_000))


_LIMIT_FIELDS = ("maxHeaderBytes", "headerTimeout", "bodyTimeout", "keepAliveTimeout",
                 "maxConnections")


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the exception, if any).

    Structured so that log shippers need no parsing rules; callers never put tokens or keys
    into messages (see docs/instance.md).
    """

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + "Z",
                 "level": record.levelname.lower(), "logger": record.name,
                 "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # ensure_ascii: a message that quotes client input cannot break the line's encoding.
        return json.dumps(entry)


def configure_logging(level: int = logging.WARNING) -> None:
    """Send the services' logs to stderr as JSON lines: ours, uvicorn's and asyncio's
    (they propagate to the root logger: serve() gives uvicorn no logging config of its
    own), Python warnings, and exceptions that end a thread."""
    import time

    handler = logging.StreamHandler()
    formatter = JsonLogFormatter()
    formatter.converter = time.gmtime  # UTC, matching the trailing Z
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)

    def thread_died(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "?"
        log.error("thread %s ended with an error", name,
                  exc_info=(args.exc_type, args.exc_value, args.exc_traceback))  # type: ignore[arg-type]

    threading.excepthook = thread_died


def serve(app: Any, *, host: str = "127.0.0.1", port: int = 0, port_file: str | None = None,
          limits: ServerLimits | None = None) -> None:
    """Serve ``app`` until SIGINT/SIGTERM. ``port=0`` picks a free port; ``port_file`` receives it.

    ``limits`` bound client connections; when not given, the app's
    ``app.state.server_limits`` (set by :meth:`Instance.build_app` from the instance
    config), else the defaults. A port that cannot be listened on (in use, not permitted)
    raises :class:`UsageError` naming the address: the caller chose it.

    The garbage collector runs, whoever calls this: a server lives for
    days and must collect its reference cycles (the CLI's client commands turn it off while
    they start; see sealtrail/cli/_runtime.py and docs/adr/0011).
    """
    collect_garbage()
    import asyncio

    import uvicorn

    if limits is None:
        limits = getattr(getattr(app, "state", None), "server_limits", None) or ServerLimits()
    limits = _fit_descriptor_limit(limits)
    use_uvloop = _has("uvloop")
    http: Any = _limited_protocol(limits) if _has("httptools") else "h11"
    config = uvicorn.Config(
        _LogErrorsOnce(app), host=host, port=port, log_level="warning", access_log=False,
        # None: no handlers of uvicorn's own, so its records reach ours (JSON) at the root.
        log_config=None,
        loop="uvloop" if use_uvloop else "asyncio", http=http,
        timeout_graceful_shutdown=10, lifespan="on",
        timeout_keep_alive=max(1, math.ceil(limits.keep_alive_timeout)),
        # The h11 fallback's own bound on an incomplete request head; without httptools
        # there are no header and body timeouts (docs/instance.md).
        h11_max_incomplete_event_size=limits.max_header_bytes,
        limit_concurrency=None if http != "h11" else limits.max_connections)
    listener = _listen(host, port, config.backlog)
    bound = listener.getsockname()[1]
    if http == "h11":
        log.warning("httptools is not installed: no request header or body timeouts")

    started = asyncio.Event()  # binds to the loop that first waits on it

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                started.set()

    server = Server(config)

    async def main() -> None:
        task = asyncio.create_task(server.serve(sockets=[listener]))
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
        if not started.is_set():
            waiter.cancel()
            await task  # startup failed: raise its error
            return
        if port_file:
            temporary = port_file + ".tmp"
            with open(temporary, "w") as handle:
                handle.write(f"{bound}\n")
            os.replace(temporary, port_file)
        # Last: whoever waits for this line (a supervisor, the tests) finds the port file too.
        log.warning("listening on http://%s:%d", host, bound)
        await task

    # uvicorn's ``loop=`` only applies when uvicorn makes the loop itself; this function makes
    # it (to learn when the server listens), so it must ask for uvloop here or run on
    # asyncio's loop.
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if use_uvloop:
        import uvloop

        loop_factory = uvloop.new_event_loop
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(main())
    finally:
        listener.close()


def _listen(host: str, port: int, backlog: int) -> socket.socket:
    """A listening socket on (host, port), or :class:`UsageError` in one line naming it.

    Bound here rather than by uvicorn, which logs the error and exits with status 1.
    """
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"cannot listen on {shown}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    listener = socket.socket(family, kind, proto)
    try:
        # As uvicorn and asyncio do: a restarted server may bind while the old one's
        # connections linger in TIME_WAIT (it does not let two servers share the port).
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(backlog)
    except OSError as exc:
        listener.close()
        if exc.errno == errno.EADDRINUSE:
            reason = "the address is already in use (another server listens there: stop it " \
                     "or choose another port)"
        else:
            reason = exc.strerror or str(exc)
        raise UsageError(f"cannot listen on {shown}: {reason}") from None
    listener.setblocking(False)
    return listener


def _fit_descriptor_limit(limits: ServerLimits) -> ServerLimits:
    """Raise the soft file-descriptor limit so that ``max_connections`` fit, if the hard
    limit allows; otherwise serve fewer connections (and say so) rather than fail accept()
    with EMFILE, which would leave the server unreachable."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return limits
    wanted = limits.max_connections + _FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < wanted:
        fitting = max(1, soft - _FD_RESERVE)
        log.warning("the file descriptor limit (%d) allows %d connections, not %d", soft,
                    fitting, limits.max_connections)
        return ServerLimits(limits.max_header_bytes, limits.header_timeout,
                            limits.body_timeout, limits.keep_alive_timeout, fitting)
    return limits


def _json_response(status: int, reason: str, message: str,
                   extra: tuple[tuple[bytes, bytes], ...] = ()) -> bytes:
    """A whole HTTP/1.1 response with the services' JSON error body, closing the connection
    (for answers written to the transport before any request reached the app)."""
    import http

    body = json.dumps({"code": status, "message": message, "reason": reason}).encode()
    head = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}".encode(),
            b"content-type: application/json", b"content-length: " + str(len(body)).encode(),
            b"connection: close", *(name + b": " + value for name, value in extra)]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def _answering_app(response: bytes) -> Callable[[Any, Any, Any], Any]:
    """An ASGI app that answers every request with ``response`` (from _json_response)."""
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    headers = [tuple(line.split(b": ", 1)) for line in head.split(b"\r\n")[1:]]

    async def answer(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return answer


def _limited_protocol(limits: ServerLimits) -> type:
    """uvicorn's httptools protocol with a request-header size limit, header and body read
    timeouts, a fractional keep-alive timeout and a connection limit answered with JSON.

    SPEC: RFC 9110 §15.5.9 (408: the request was not received in time; close the
    connection), RFC 6585 §5 (431: header fields too large), RFC 9110 §15.6.4 (503 with
    Retry-After). An idle connection with no request begun is closed without an answer,
    as uvicorn closes idle keep-alive connections (RFC 9112 §9.8): a client that pooled it
    would otherwise read a 408 as the answer to its next request.
    """
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    too_many = _json_response(
        503, "TOO_MANY_CONNECTIONS", f"the server holds its limit of {limits.max_connections} "
        "connections; retry later", ((b"retry-after", b"1"),))
    header_slow = _json_response(
        408, "REQUEST_TIMEOUT", f"request headers not received within {limits.header_timeout:g} s")
    body_slow = _json_response(
        408, "REQUEST_TIMEOUT", f"request body not received within {limits.body_timeout:g} s")
    headers_large = _json_response(
        431, "HEADERS_TOO_LARGE", f"request headers exceed {limits.max_header_bytes} bytes")

    unavailable = _answering_app(too_many)
    too_large = _answering_app(headers_large)

    class LimitedHttpToolsProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.timeout_keep_alive = limits.keep_alive_timeout  # type: ignore[assignment]
            self._served_app = self.app
            # Bytes received while waiting for the end of a request's headers.
            self._awaiting_headers = True
            self._request_begun = False
            self._header_bytes = 0
            self._head_size = 0  # the request line's target and the fields, as parsed
            self._completed_in_feed = False
            self._read_timer: asyncio.TimerHandle | None = None

        def _arm(self, seconds: float, expired: Callable[[], None]) -> None:
            self._disarm()
            self._read_timer = self.loop.call_later(seconds, expired)

        def _disarm(self) -> None:
            if self._read_timer is not None:
                self._read_timer.cancel()
                self._read_timer = None

        def _refuse(self, response: bytes) -> None:
            """Answer (unless a response is under way) and close."""
            self._disarm()
            if self.transport.is_closing():
                return
            if self.cycle is None or self.cycle.response_complete or \
                    not self.cycle.response_started:
                self.transport.write(response)
            self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm(limits.header_timeout, self._header_timed_out)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            waiting = self._awaiting_headers
            self._completed_in_feed = False
            super().data_received(data)
            # Counted only while the whole chunk was header bytes (a chunk that ended one
            # request may begin the next: not counted), so memory stays within the limit
            # plus two reads of the transport.
            if waiting and self._awaiting_headers and not self._completed_in_feed \
                    and self.parser is not None:
                self._header_bytes += len(data)
                if self._header_bytes > limits.max_header_bytes:
                    log.warning("refused a request whose headers exceed %d bytes",
                                limits.max_header_bytes)
                    self._refuse(headers_large)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._request_begun = True
            self._head_size = 0
            if self._read_timer is None:  # a keep-alive connection's next request
                self._arm(limits.header_timeout, self._header_timed_out)

        def on_url(self, url: bytes) -> None:
            super().on_url(url)
            self._head_size += len(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            super().on_header(name, value)
            self._head_size += len(name) + len(value) + 4  # ": " and CRLF

        def on_headers_complete(self) -> None:
            self._awaiting_headers = False
            self._header_bytes = 0
            self._arm(limits.body_timeout, self._body_timed_out)
            # A whole head that arrived in one read is only measured here.
            if self._head_size > limits.max_header_bytes:
                log.warning("refused a request whose headers exceed %d bytes",
                            limits.max_header_bytes)
                self.app = too_large
            # uvicorn's own limit_concurrency is off: it answers in plain text.
            elif len(self.connections) > limits.max_connections:
                log.warning("answered 503: %d connections are open (limit %d)",
                            len(self.connections), limits.max_connections)
                self.app = unavailable
            else:
                self.app = self._served_app
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._disarm()
            self._awaiting_headers = True
            self._request_begun = False
            self._completed_in_feed = True

        def _header_timed_out(self) -> None:
            self._read_timer = None
            if self._request_begun:
                self._refuse(header_slow)
            elif not self.transport.is_closing():
                self.transport.close()  # idle, nothing begun: close quietly

        def _body_timed_out(self) -> None:
            self._read_timer = None
            log.warning("closed a connection whose request body did not arrive within %g s",
                        limits.body_timeout)
            self._refuse(body_slow)

    return LimitedHttpToolsProtocol


class _LogErrorsOnce:
    """The outermost ASGI layer: a request that fails is logged once, answered 500 JSON.

    Starlette's ServerErrorMiddleware calls our handler (which logs and answers, see
    ``_http.handle_errors``) and then raises the exception again "so that servers can log
    it": uvicorn would log it a second time, with the same traceback. Here an exception
    the handler has logged stops, and any other is logged; if no answer began, the answer
    is the JSON 500. (An answer that had begun is left incomplete: uvicorn then closes the
    connection, so that the client cannot take it for a whole one, and says so in a line
    of its own.)
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            from sealtrail.server._http import LOGGED_MARK

            if not getattr(exc, LOGGED_MARK, False):
                log.error("unexpected error on %s %s", scope.get("method"),
                          scope.get("path"), exc_info=exc)
            if not started:
                body = json.dumps({"code": 500, "message": "internal error",
                                   "reason": "INTERNAL"}).encode()
                await send({"type": "http.response.start", "status": 500, "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})


def collect_garbage() -> None:
    """Make sure the garbage collector runs, as a process that lives for long needs."""
    gc.enable()


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
