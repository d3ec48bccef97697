"""The shared HTTP client against real servers on 127.0.0.1 (ephemeral ports): kept-alive
connections per thread, servers that close idle connections, refused connections, many
threads, oversized and broken answers, timeouts, and a forward proxy (plain-http targets by
absolute URL, https targets through a CONNECT tunnel).

The servers are the standard library's http.server; the proxy maps the made-up host
``target.test`` to 127.0.0.1, so no traffic leaves the machine.
"""

from __future__ import annotations

import datetime
import http.client
import os
import select
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sealtrail.errors import ServiceUnavailableError
from sealtrail.net.http import USER_AGENT, HttpClient, RetryPolicy
from tests.integration.instance_server import free_port

pytestmark = pytest.mark.integration

SERVICE = "the test service"


class QuietServer(ThreadingHTTPServer):
    """Connections the client drops on purpose (oversized answers) are not worth a traceback."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class Server:
    """An HTTP/1.1 server on 127.0.0.1 that records each request with its connection."""

    def __init__(self, *, idle_timeout: float | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.active = 0
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive
            timeout = idle_timeout  # an idle kept-alive connection is closed after this

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                # Answers go out in two writes (head, body): without this, Nagle's algorithm
                # holds the second until the client's delayed ACK, 40 ms per request.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with owner.lock:
                    owner.active += 1

            def finish(self) -> None:
                try:
                    super().finish()
                finally:
                    with owner.lock:
                        owner.active -= 1

            def _answer(self, status: int, body: bytes, **headers: str) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name.replace("_", "-"), value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with owner.lock:
                    owner.requests.append({"port": self.client_address[1], "method": self.command,
                                           "path": self.path,
                                           "headers": {k.lower(): v for k, v in self.headers.items()},
                                           "body": body})
                path = self.path
                if path == "/ok":
                    self._answer(200, b"ok", Content_Type="text/plain")
                elif path == "/echo":
                    self._answer(200, body)
                elif path == "/big":
                    self._answer(200, b"x" * 5000)
                elif path == "/chunked-big":
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for _ in range(5):
                        self.wfile.write(b"3e8\r\n" + b"y" * 1000 + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                elif path == "/slow":
                    time.sleep(1.5)
                    self._answer(200, b"late")
                elif path == "/drip":
                    self.send_response(200)
                    self.send_header("Content-Length", "20")
                    self.end_headers()
                    for _ in range(20):
                        self.wfile.write(b"d")
                        self.wfile.flush()
                        time.sleep(0.03)
                elif path == "/drop":
                    self.send_response(200)
                    self.send_header("Content-Length", "100")
                    self.end_headers()
                    self.wfile.write(b"only ten b")
                    self.wfile.flush()
                    self.close_connection = True
                elif path == "/redirect":
                    self._answer(302, b"", Location="/ok")
                elif path in ("/busy-once", "/close-once") and owner.count(path) == 1:
                    if path == "/busy-once":
                        self._answer(503, b"not now", Retry_After="0")
                    else:  # closes the connection without a byte of an answer
                        self.close_connection = True
                elif path in ("/busy-once", "/close-once"):
                    self._answer(200, body)
                else:
                    self._answer(404, b"no")

            do_GET = do_POST = _handle  # noqa: N815

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def ports(self, path: str | None = None) -> set[int]:
        return {r["port"] for r in self.requests if path is None or r["path"] == path}

    def count(self, path: str) -> int:
        return sum(1 for r in self.requests if r["path"] == path)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    made = Server()
    yield made
    made.close()


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    return monkeypatch


def client(sleeps: list[float] | None = None, **policy: Any) -> HttpClient:
    return HttpClient(RetryPolicy(**policy), sleep=(sleeps if sleeps is not None else []).append)


def get(http: HttpClient, url: str, limit: int = 1 << 20, **kwargs: Any) -> Any:
    return http.request("GET", url, service=SERVICE, limit=limit, **kwargs)


# -- connections ------------------------------------------------------------------------------

def test_one_connection_for_many_requests_from_one_thread(server: Server) -> None:
    with client() as http:
        for i in range(50):
            answer = http.request("POST", server.url + "/echo", body=b"n%d" % i,
                                  headers={"Content-Type": "text/plain"}, service=SERVICE,
                                  limit=100)
            assert answer.status == 200 and answer.body == b"n%d" % i
        assert get(http, server.url + "/ok").text == "ok"
        assert http._tls is None  # plain http never sets up TLS
    assert len(server.requests) == 51 and len(server.ports()) == 1
    assert server.requests[0]["headers"]["user-agent"] == USER_AGENT


def test_answers_leave_no_cyclic_garbage(server: Server) -> None:
    # The signer runs with the garbage collector mostly idle: every answer must be freed
    # by reference counting (the answer reader and its parser used to hold each other).
    import gc

    from sealtrail.net.http import _AnswerReader

    with client() as http:
        get(http, server.url + "/ok")
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for _ in range(20):
                assert get(http, server.url + "/ok").text == "ok"
            gc.collect()
            leaked = [o for o in gc.garbage if isinstance(o, _AnswerReader)]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
    assert leaked == []


def test_forgotten_connections_are_left_open_and_replaced(server: Server) -> None:
    # What a forked signing process does: the parent's connection is neither used nor closed
    # (its socket belongs to the parent's exchanges); the next request opens its own.
    with client() as http:
        assert get(http, server.url + "/ok").text == "ok"
        (inherited,) = [c for _, c in http._opened.values()]
        http.forget_connections()
        assert get(http, server.url + "/ok").text == "ok"
        assert inherited.sock is not None  # untouched
        inherited.close()
    assert len(server.requests) == 2 and len(server.ports()) == 2


def test_a_server_closing_idle_connections_is_transparent(no_proxy_env: Any) -> None:
    idle = Server(idle_timeout=0.1)
    sleeps: list[float] = []
    try:
        # One attempt only: re-opening the stale connection must not count as one.
        with client(sleeps, attempts=1) as http:
            for _ in range(3):
                assert get(http, idle.url + "/ok").text == "ok"
                time.sleep(0.35)  # the server closes the kept-alive connection meanwhile
            post = http.request("POST", idle.url + "/echo", body=b"still here",
                                service=SERVICE, limit=100)
            assert post.body == b"still here"
    finally:
        idle.close()
    assert sleeps == []  # no backoff: not a failed attempt
    assert len(idle.requests) == 4 and len(idle.ports()) == 4  # each on a fresh connection


def test_refused_connections_are_retried_then_reported() -> None:
    port = free_port()  # nothing listens here once the probe is closed
    sleeps: list[float] = []
    with client(sleeps, attempts=3, backoff=0.01) as http:
        with pytest.raises(ServiceUnavailableError) as info:
            get(http, f"http://127.0.0.1:{port}/ok")
    assert len(sleeps) == 2
    assert info.value.message.startswith(f"cannot reach {SERVICE}: ")
    assert "refused" in info.value.message and info.value.message.endswith("(after 3 attempts)")


def test_threads_share_a_client_each_with_its_own_connection(server: Server) -> None:
    http = client()
    threads, errors = 8, []
    start = threading.Barrier(threads)

    def work(n: int) -> None:
        try:
            start.wait(timeout=10)
            for i in range(20):
                body = b"thread %d request %d" % (n, i)
                answer = http.request("POST", server.url + "/echo", body=body,
                                      service=SERVICE, limit=100)
                assert answer.body == body  # no answer crosses over to another thread
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert errors == []
    assert len(server.requests) == threads * 20
    assert len(server.ports()) == threads  # one kept-alive connection per thread
    http.close()
    deadline = time.monotonic() + 5
    while server.active and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.active == 0  # close() reached every thread's connection


# -- answers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("path,actual", [("/big", "5000 bytes"), ("/chunked-big", "> 1000 bytes")])
def test_oversized_answers_are_refused(server: Server, path: str, actual: str) -> None:
    with client() as http:
        with pytest.raises(ServiceUnavailableError, match="sent an oversized answer") as info:
            get(http, server.url + path, limit=1000)
        assert info.value.actual == actual and info.value.expected == "<= 1000 bytes"
        assert len(get(http, server.url + path, limit=5000).body) == 5000
        assert get(http, server.url + "/ok").text == "ok"  # the client carries on
    assert server.count(path) == 2


def test_a_slow_answer_times_out_and_is_not_repeated(server: Server) -> None:
    with client(timeout=0.3) as http:
        began = time.monotonic()
        with pytest.raises(ServiceUnavailableError, match="did not answer in time"):
            get(http, server.url + "/slow")
        assert time.monotonic() - began < 1.4
        assert get(http, server.url + "/ok").text == "ok"
    assert server.count("/slow") == 1


def test_a_deadline_bounds_a_trickling_answer(server: Server) -> None:
    with client(timeout=5) as http:
        began = time.monotonic()
        with pytest.raises(ServiceUnavailableError, match="did not answer in time"):
            get(http, server.url + "/drip", deadline=0.25)
        assert time.monotonic() - began < 0.55  # the whole answer takes 0.6 s
        assert len(get(http, server.url + "/drip", deadline=10).body) == 20
        assert get(http, server.url + "/ok").text == "ok"


def test_a_connection_dropped_mid_answer_is_reported_not_repeated(server: Server) -> None:
    with client() as http:
        with pytest.raises(ServiceUnavailableError, match="dropped the connection while answering"):
            get(http, server.url + "/drop")
    assert server.count("/drop") == 1


def test_redirects_are_not_followed(server: Server) -> None:
    with client() as http:
        answer = get(http, server.url + "/redirect")
    assert answer.status == 302 and answer.headers["location"] == "/ok"
    assert server.count("/ok") == 0


# -- proxies ----------------------------------------------------------------------------------

class ForwardProxy:
    """A tiny forward proxy: absolute-form requests are forwarded, CONNECT is tunnelled.
    Host ``target.test`` (any port) means 127.0.0.1."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str | None, int]] = []  # method, target, auth, port
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _record(self) -> None:
                owner.seen.append((self.command, self.path,
                                   self.headers.get("Proxy-Authorization"), self.client_address[1]))

            def _forward(self) -> None:
                self._record()
                parts = http.client.urlsplit(self.path)  # type: ignore[attr-defined]
                if parts.scheme != "http" or parts.hostname != "target.test":
                    self.send_error(502)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                upstream = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=10)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("proxy-authorization", "connection")}
                upstream.request(self.command, parts.path or "/", body=body, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                upstream.close()
                self.send_response(answer.status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _forward  # noqa: N815

            def do_CONNECT(self) -> None:  # noqa: N802
                self._record()
                host, _, port = self.path.rpartition(":")
                upstream = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
                self.send_response(200, "Connection established")
                self.end_headers()
                self.wfile.flush()
                sockets = [self.connection, upstream]
                try:
                    while True:
                        readable, _, _ = select.select(sockets, [], [], 10)
                        if not readable:
                            break
                        for source in readable:
                            data = source.recv(65536)
                            if not data:
                                return
                            (upstream if source is self.connection else self.connection).sendall(data)
                finally:
                    upstream.close()
                    self.close_connection = True

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    made = ForwardProxy()
    yield made
    made.close()


def test_http_proxy_carries_plain_http_requests(server: Server, proxy: ForwardProxy,
                                                no_proxy_env: pytest.MonkeyPatch) -> None:
    no_proxy_env.setenv("HTTP_PROXY", proxy.url.replace("http://", "http://user:secret@"))
    target = f"http://target.test:{server.port}"
    with client() as http:
        assert http.proxy_for(target + "/ok") is not None
        for _ in range(3):
            assert get(http, target + "/ok").text == "ok"
        echoed = http.request("POST", target + "/echo", body=b"via proxy", service=SERVICE,
                              limit=100)
        assert echoed.body == b"via proxy"
        # Loopback targets never go through the proxy.
        assert get(http, server.url + "/ok").text == "ok"
    # RFC 9112 §3.2.2: absolute-form request-targets, with the proxy's credentials.
    assert [(m, t) for m, t, _, _ in proxy.seen] == \
        [("GET", f"{target}/ok")] * 3 + [("POST", f"{target}/echo")]
    assert {auth for _, _, auth, _ in proxy.seen} == {"Basic dXNlcjpzZWNyZXQ="}
    assert len({port for *_, port in proxy.seen}) == 1  # kept alive to the proxy too
    assert len(server.requests) == 5


def _tls_pair(tmp_path: Path, name: str = "target.test") -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context for ``name``, client context trusting only its CA)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test proxy CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                         critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "leaf.pem", tmp_path / "leaf.key"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_file, key_file)
    client_context = ssl.create_default_context(
        cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return server_context, client_context


def _https_twice_then_refused(client_context: ssl.SSLContext, named: str, other: str,
                              match: str) -> None:
    """Two requests to ``named`` (trusting the test CA instead of certifi's bundle), then one
    to ``other``, which the certificate does not name: refused, not retried."""
    with client(attempts=1) as http:
        http._tls = client_context
        for _ in range(2):
            assert get(http, named + "/ok").text == "ok"
        with pytest.raises(ServiceUnavailableError, match=match):
            get(http, other + "/ok")


def test_https_goes_through_a_connect_tunnel(proxy: ForwardProxy, tmp_path: Path,
                                             no_proxy_env: pytest.MonkeyPatch) -> None:
    server_context, client_context = _tls_pair(tmp_path)
    tls_server = Server(tls=server_context)
    no_proxy_env.setenv("HTTPS_PROXY", proxy.url)
    try:
        # Hostname checking stays on: the certificate names target.test only.
        _https_twice_then_refused(client_context, f"https://target.test:{tls_server.port}",
                                  f"https://other.test:{tls_server.port}",
                                  "cannot reach .*certificate|cannot reach .*hostname")
    finally:
        tls_server.close()
    tunnels = [t for m, t, _, _ in proxy.seen if m == "CONNECT"]
    assert tunnels == [f"target.test:{tls_server.port}", f"other.test:{tls_server.port}"]
    assert len(tls_server.requests) == 2 and len(tls_server.ports()) == 1


def test_https_direct_checks_the_certificate_and_the_host_name(tmp_path: Path,
                                                              no_proxy_env: Any) -> None:
    server_context, client_context = _tls_pair(tmp_path, "localhost")
    tls_server = Server(tls=server_context)
    try:
        # The certificate names localhost, not the address.
        _https_twice_then_refused(client_context, f"https://localhost:{tls_server.port}",
                                  f"https://127.0.0.1:{tls_server.port}",
                                  "cannot reach .*certificate|cannot reach .*hostname|"
                                  "cannot reach .*IP address")
        with client(attempts=1) as http:  # certifi's bundle does not know the test CA
            with pytest.raises(ServiceUnavailableError, match="certificate verify failed"):
                get(http, f"https://localhost:{tls_server.port}/ok")
    finally:
        tls_server.close()
    assert len(tls_server.requests) == 2 and len(tls_server.ports()) == 1  # kept alive


PLAIN_HTTP_LOADS_NO_TLS = r"""
import socket, sys, threading
listener = socket.create_server(("127.0.0.1", 0))
def serve():
    conn, _ = listener.accept()
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(4096)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    conn.close()
threading.Thread(target=serve, daemon=True).start()
from sealtrail.net.http import HttpClient
with HttpClient() as http:
    answer = http.request("GET", "http://127.0.0.1:%d/" % listener.getsockname()[1],
                          service="s", limit=100)
print(answer.body.decode(), "ssl" in sys.modules, "http.client" in sys.modules,
      "encodings.idna" in sys.modules)
"""


def test_plain_http_loads_neither_tls_nor_http_client() -> None:
    # Each costs start-up time (about 9 ms together with http.client's email parser, and
    # 1 ms for the IDNA codec an ASCII host name does not need).
    done = subprocess.run([sys.executable, "-c", PLAIN_HTTP_LOADS_NO_TLS], capture_output=True,
                          text=True, timeout=60, env={k: v for k, v in os.environ.items()
                                                      if not k.lower().endswith("_proxy")})
    assert done.stdout.split() == ["ok", "False", "False", "False"], done.stderr


# -- a request sent early, its answer read later -----------------------------------------------

def _received(server: Server, count: int) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if len(server.requests) >= count:
            return True
        time.sleep(0.005)
    return False


def test_send_early_sends_now_and_reads_the_answer_later(server: Server) -> None:
    with client() as http:
        answer = http.send_early("POST", server.url + "/echo", body=b"early",
                                 headers={"Content-Type": "text/plain"}, service=SERVICE,
                                 limit=100)
        assert _received(server, 1)  # the service has it before anyone waits for the answer
        response = answer()
        assert (response.status, response.body) == (200, b"early")
        assert get(http, server.url + "/ok").text == "ok"
    sent = server.requests[0]
    assert sent["headers"]["user-agent"] == USER_AGENT
    assert sent["headers"]["content-type"] == "text/plain"
    assert len(server.ports()) == 1  # the connection was kept for the next request


def test_send_early_answered_not_now_is_retried_by_request(server: Server) -> None:
    sleeps: list[float] = []
    with client(sleeps, attempts=3, backoff=0.01) as http:
        response = http.send_early("POST", server.url + "/busy-once", body=b"x",
                                   service=SERVICE, limit=100)()
    assert (response.status, response.body) == (200, b"x")
    assert server.count("/busy-once") == 2 and len(sleeps) == 1


def test_send_early_closed_without_an_answer_is_sent_again(server: Server) -> None:
    with client(attempts=2, backoff=0.01) as http:
        response = http.send_early("POST", server.url + "/close-once", body=b"y",
                                   service=SERVICE, limit=100)()
    assert (response.status, response.body) == (200, b"y")
    assert server.count("/close-once") == 2


def test_send_early_to_nobody_reports_as_request_does() -> None:
    port = free_port()  # nothing listens here once the probe is closed
    sleeps: list[float] = []
    with client(sleeps, attempts=3, backoff=0.01) as http:
        answer = http.send_early("GET", f"http://127.0.0.1:{port}/ok", service=SERVICE,
                                 limit=100)
        with pytest.raises(ServiceUnavailableError) as info:
            answer()
    assert info.value.message.startswith(f"cannot reach {SERVICE}: ")
    assert info.value.message.endswith("(after 3 attempts)") and len(sleeps) == 2


def test_send_early_slow_answer_times_out_and_is_not_repeated(server: Server) -> None:
    with client(timeout=0.3) as http:
        answer = http.send_early("GET", server.url + "/slow", service=SERVICE, limit=100)
        with pytest.raises(ServiceUnavailableError, match="did not answer in time"):
            answer()
    assert server.count("/slow") == 1


def test_send_early_dropped_mid_answer_is_reported_not_repeated(server: Server) -> None:
    with client() as http:
        answer = http.send_early("GET", server.url + "/drop", service=SERVICE, limit=1000)
        with pytest.raises(ServiceUnavailableError, match="dropped the connection while answering"):
            answer()
    assert server.count("/drop") == 1
