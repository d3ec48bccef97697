"""The shared HTTP client (urllib3 underneath) against real servers on 127.0.0.1 (ephemeral
ports): kept-alive connections shared by threads, servers that close idle connections, refused
connections, retries with Retry-After, many threads, oversized and broken answers, timeouts,
HEAD/204/304/1xx answers, and forward proxies (tests/fakes/proxy.py): an http:// proxy
(absolute form), a CONNECT tunnel to an https target, and an https:// proxy.

The servers are the standard library's http.server; the proxy maps the made-up host
``target.test`` to 127.0.0.1, so no traffic leaves the machine. Nothing here waits on the
clock: slow servers wait on events the test sets, and the client's sleeps are recorded.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from sealtrail.errors import ServiceUnavailableError
from sealtrail.net.http import USER_AGENT, HttpClient, RetryPolicy
from tests.fakes.proxy import ForwardProxy, TestCA
from tests.integration.instance_server import free_port

pytestmark = pytest.mark.integration

SERVICE = "the test service"
WAIT = 10.0  # the most any event is waited for (only reached when a test fails)


class QuietServer(ThreadingHTTPServer):
    """Connections the client drops on purpose (oversized answers) are not worth a traceback."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class Server:
    """An HTTP/1.1 server on 127.0.0.1 that records each request with its connection."""

    def __init__(self, *, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.active = 0
        self.lock = threading.Condition()
        self.release = threading.Event()  # lets /slow and /drip finish
        self.connections: set[socket.socket] = set()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive
            timeout = 60  # bounded, though close_idle() is what closes idle connections

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                # Answers go out in two writes (head, body): without this, Nagle's algorithm
                # holds the second until the client's delayed ACK, 40 ms per request.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with owner.lock:
                    owner.active += 1
                    owner.connections.add(self.connection)

            def finish(self) -> None:
                try:
                    super().finish()
                finally:
                    with owner.lock:
                        owner.active -= 1
                        owner.connections.discard(self.connection)
                        owner.lock.notify_all()

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
                elif path == "/slow":  # answers once the test has seen the client give up
                    owner.release.wait(WAIT)
                    self._answer(200, b"late")
                elif path == "/drip":  # a byte every 20 ms (pacing, not synchronisation)
                    self.send_response(200)
                    self.send_header("Content-Length", "100")
                    self.end_headers()
                    for _ in range(100):
                        self.wfile.write(b"d")
                        self.wfile.flush()
                        if owner.release.wait(0.02):
                            break
                    self.close_connection = True
                elif path == "/204":
                    self.send_response(204)
                    self.end_headers()
                elif path == "/304":
                    self.send_response(304)
                    self.send_header("ETag", '"v1"')
                    self.end_headers()
                elif path == "/continue":  # an interim answer first (RFC 9110 §15.2)
                    self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    self._answer(200, b"after 100")
                elif path == "/busy-later":
                    self._answer(503, b"not now", Retry_After="2")
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
                elif path == "/close-always":
                    self.close_connection = True
                elif path in ("/busy-once", "/close-once"):
                    self._answer(200, body)
                else:
                    self._answer(404, b"no")

            do_GET = do_POST = _handle  # noqa: N815

            def do_HEAD(self) -> None:  # noqa: N802
                with owner.lock:
                    owner.requests.append({"port": self.client_address[1], "method": "HEAD",
                                           "path": self.path, "headers": {}, "body": b""})
                # The length the GET answer would have, and no body (RFC 9110 §9.3.2).
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()

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

    def close_idle(self) -> None:
        """Close every connection the server holds (a server ending idle keep-alives), and
        wait until their handlers have finished."""
        with self.lock:
            for connection in self.connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            assert self.lock.wait_for(lambda: self.active == 0, timeout=WAIT)

    def wait_idle(self) -> bool:
        with self.lock:
            return self.lock.wait_for(lambda: self.active == 0, timeout=WAIT)

    def close(self) -> None:
        self.release.set()
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


def client(sleeps: list[float] | None = None, tls: ssl.SSLContext | None = None,
           **policy: Any) -> HttpClient:
    return HttpClient(RetryPolicy(**policy), sleep=(sleeps if sleeps is not None else []).append,
                      tls=tls)


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
    assert len(server.requests) == 51 and len(server.ports()) == 1
    first = server.requests[0]["headers"]
    assert first["user-agent"] == USER_AGENT and first["content-type"] == "text/plain"
    assert first["content-length"] == "2"


def test_a_server_closing_idle_connections_is_transparent(server: Server) -> None:
    sleeps: list[float] = []
    # One attempt only: re-opening the closed connection must not count as one.
    with client(sleeps, attempts=1) as http:
        for _ in range(3):
            assert get(http, server.url + "/ok").text == "ok"
            server.close_idle()  # the server ends the kept-alive connection meanwhile
        post = http.request("POST", server.url + "/echo", body=b"still here",
                            service=SERVICE, limit=100)
        assert post.body == b"still here"
    assert sleeps == []  # no backoff: not a failed attempt
    assert len(server.requests) == 4 and len(server.ports()) == 4  # each on a fresh connection


def test_refused_connections_are_retried_then_reported() -> None:
    port = free_port()  # nothing listens here once the probe is closed
    sleeps: list[float] = []
    with client(sleeps, attempts=3, backoff=0.01) as http:
        with pytest.raises(ServiceUnavailableError) as info:
            get(http, f"http://127.0.0.1:{port}/ok")
    assert len(sleeps) == 2
    assert info.value.message.startswith(f"cannot reach {SERVICE}: ")
    assert "refused" in info.value.message and info.value.message.endswith("(after 3 attempts)")


def test_a_busy_service_is_asked_again_after_its_retry_after(server: Server) -> None:
    sleeps: list[float] = []
    with client(sleeps, attempts=2, backoff=0.1, max_backoff=4.0) as http:
        answer = http.request("POST", server.url + "/busy-once", body=b"again",
                              service=SERVICE, limit=100)
        assert (answer.status, answer.body) == (200, b"again")
        # Retry-After beyond max_backoff is capped; the last answer comes back as it is.
        busy = get(http, server.url + "/busy-later")
    assert busy.status == 503 and busy.headers["retry-after"] == "2"
    assert sleeps == [pytest.approx(0.05, abs=0.05), 2.0]
    assert server.count("/busy-once") == 2 and server.count("/busy-later") == 2


def test_closed_without_an_answer_is_sent_again_at_once(server: Server) -> None:
    # What a kept-alive connection closed by the service just as the request went out
    # looks like: nothing was processed, so it is sent again, without counting an attempt.
    sleeps: list[float] = []
    with client(sleeps, attempts=1) as http:
        assert get(http, server.url + "/ok").text == "ok"
        answer = http.request("POST", server.url + "/close-once", body=b"y", service=SERVICE,
                              limit=100)
    assert (answer.status, answer.body) == (200, b"y")
    assert server.count("/close-once") == 2 and sleeps == []


def test_a_service_that_always_closes_is_retried_then_reported(server: Server) -> None:
    sleeps: list[float] = []
    with client(sleeps, attempts=3, backoff=0.01) as http:
        with pytest.raises(ServiceUnavailableError) as info:
            http.request("POST", server.url + "/close-always", body=b"z", service=SERVICE,
                         limit=100)
    # One immediate resend, then the policy's attempts with their backoff.
    assert server.count("/close-always") == 4 and len(sleeps) == 2
    assert info.value.message.startswith(f"cannot reach {SERVICE}: ")
    assert info.value.message.endswith("(after 3 attempts)")


def test_threads_share_a_client_and_its_connections(server: Server) -> None:
    http = client()
    threads, errors = 8, []
    start = threading.Barrier(threads)

    def work(n: int) -> None:
        try:
            start.wait(timeout=WAIT)
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
    # Kept-alive connections shared by the threads: at most one per thread at a time.
    assert 1 <= len(server.ports()) <= threads
    http.close()
    assert server.wait_idle()  # close() reached every thread's connection


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
    with client(timeout=0.2) as http:
        with pytest.raises(ServiceUnavailableError, match="did not answer in time"):
            get(http, server.url + "/slow")
        server.release.set()
        assert get(http, server.url + "/ok").text == "ok"
    assert server.count("/slow") == 1


def test_a_deadline_bounds_a_trickling_answer(server: Server) -> None:
    # Each byte comes well within the per-operation timeout: only the deadline stops it.
    with client(timeout=30) as http:
        with pytest.raises(ServiceUnavailableError, match="did not answer in time"):
            get(http, server.url + "/drip", deadline=0.2)
        server.release.set()
        assert get(http, server.url + "/ok").text == "ok"
    assert server.count("/drip") == 1


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


def test_head_204_304_and_interim_answers(server: Server) -> None:
    # A HEAD answer declares a length but has no body: read as empty, at once (a client
    # that waited for those 1000 bytes would time out instead).
    with client(timeout=WAIT) as http:
        head = http.request("HEAD", server.url + "/anything", service=SERVICE, limit=10)
        assert (head.status, head.body, head.headers["content-length"]) == (200, b"", "1000")
        assert (get(http, server.url + "/204").status, get(http, server.url + "/204").body) \
            == (204, b"")
        not_modified = get(http, server.url + "/304")
        assert (not_modified.status, not_modified.body) == (304, b"")
        assert not_modified.headers["etag"] == '"v1"'
        after = get(http, server.url + "/continue")
        assert (after.status, after.body) == (200, b"after 100")
        assert get(http, server.url + "/ok").text == "ok"
    assert len(server.ports()) == 1  # every one of them left the connection reusable


# -- TLS and proxies ------------------------------------------------------------------------

@pytest.fixture
def ca(tmp_path: Path) -> TestCA:
    return TestCA(tmp_path)


def test_https_direct_checks_the_certificate_and_the_host_name(ca: TestCA,
                                                              no_proxy_env: Any) -> None:
    tls_server = Server(tls=ca.server_context("localhost"))
    try:
        with client(attempts=1, tls=ca.client_context()) as http:
            for _ in range(2):
                assert get(http, f"https://localhost:{tls_server.port}/ok").text == "ok"
            # The certificate names localhost, not the address: refused, not retried.
            with pytest.raises(ServiceUnavailableError,
                               match="cannot reach .*(certificate|hostname|IP address)"):
                get(http, f"https://127.0.0.1:{tls_server.port}/ok")
        with client(attempts=1) as http:  # certifi's bundle does not know the test CA
            with pytest.raises(ServiceUnavailableError, match="certificate verify failed"):
                get(http, f"https://localhost:{tls_server.port}/ok")
    finally:
        tls_server.close()
    assert len(tls_server.requests) == 2 and len(tls_server.ports()) == 1  # kept alive


def test_http_proxy_carries_plain_http_requests(server: Server,
                                                no_proxy_env: pytest.MonkeyPatch) -> None:
    with ForwardProxy() as proxy:
        no_proxy_env.setenv("HTTP_PROXY", proxy.url.replace("http://", "http://user:secret@"))
        target = f"http://target.test:{server.port}"
        with client() as http:
            assert http.proxy_for(target + "/ok") is not None
            for _ in range(3):
                assert get(http, target + "/ok").text == "ok"
            echoed = http.request("POST", target + "/echo", body=b"via proxy",
                                  service=SERVICE, limit=100)
            assert echoed.body == b"via proxy"
            # Loopback targets never go through the proxy.
            assert get(http, server.url + "/ok").text == "ok"
    # RFC 9112 §3.2.2: absolute-form request-targets, with the proxy's credentials.
    assert [(m, t) for m, t, _, _ in proxy.seen] == \
        [("GET", f"{target}/ok")] * 3 + [("POST", f"{target}/echo")]
    assert {auth for _, _, auth, _ in proxy.seen} == {"Basic dXNlcjpzZWNyZXQ="}
    assert len(proxy.ports()) == 1  # kept alive to the proxy too
    assert len(server.requests) == 5


def test_https_goes_through_a_connect_tunnel(ca: TestCA, no_proxy_env: pytest.MonkeyPatch) -> None:
    tls_server = Server(tls=ca.server_context("target.test"))
    try:
        with ForwardProxy() as proxy:
            no_proxy_env.setenv("HTTPS_PROXY", proxy.url.replace("http://", "http://u:p@"))
            with client(attempts=1, tls=ca.client_context()) as http:
                for _ in range(2):
                    assert get(http, f"https://target.test:{tls_server.port}/ok").text == "ok"
                # Host names are checked through the tunnel too: the certificate names
                # target.test only.
                with pytest.raises(ServiceUnavailableError,
                                   match="cannot reach .*(certificate|hostname)"):
                    get(http, f"https://other.test:{tls_server.port}/ok")
    finally:
        tls_server.close()
    assert [(m, t, a) for m, t, a, _ in proxy.seen] == [
        ("CONNECT", f"target.test:{tls_server.port}", "Basic dTpw"),
        ("CONNECT", f"other.test:{tls_server.port}", "Basic dTpw")]
    assert len(tls_server.requests) == 2 and len(tls_server.ports()) == 1  # one tunnel, kept


def test_an_https_proxy_carries_https_and_http_targets(ca: TestCA, server: Server,
                                                       no_proxy_env: pytest.MonkeyPatch) -> None:
    tls_server = Server(tls=ca.server_context("target.test"))
    try:
        with ForwardProxy(tls=ca.server_context("localhost")) as proxy:
            assert proxy.url.startswith("https://")
            no_proxy_env.setenv("HTTPS_PROXY", proxy.url)
            no_proxy_env.setenv("HTTP_PROXY", proxy.url)
            with client(attempts=1, tls=ca.client_context()) as http:
                # TLS to the proxy, then TLS to the target inside the tunnel.
                for _ in range(2):
                    assert get(http, f"https://target.test:{tls_server.port}/ok").text == "ok"
                # An http target: absolute form, over TLS to the proxy.
                assert get(http, f"http://target.test:{server.port}/ok").text == "ok"
            with client(attempts=1) as http:  # the proxy's certificate is checked too
                with pytest.raises(ServiceUnavailableError, match="certificate verify failed"):
                    get(http, f"https://target.test:{tls_server.port}/ok")
    finally:
        tls_server.close()
    assert [(m, t) for m, t, _, _ in proxy.seen] == [
        ("CONNECT", f"target.test:{tls_server.port}"),
        ("GET", f"http://target.test:{server.port}/ok")]
    assert len(tls_server.requests) == 2 and len(server.requests) == 1


def test_an_unreachable_proxy_is_retried_a_refused_tunnel_is_not(
        no_proxy_env: pytest.MonkeyPatch) -> None:
    no_proxy_env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{free_port()}")  # nobody listens
    sleeps: list[float] = []
    with client(sleeps, attempts=2, backoff=0.01) as http:
        with pytest.raises(ServiceUnavailableError,
                           match=f"^cannot reach {SERVICE}: through the proxy: .*refused"):
            get(http, "https://target.test:1/ok")
    assert len(sleeps) == 1
    with ForwardProxy() as proxy:
        no_proxy_env.setenv("HTTPS_PROXY", proxy.url)
        with client(sleeps, attempts=3) as http:
            # The test proxy tunnels to target.test and other.test only.
            with pytest.raises(ServiceUnavailableError, match="through the proxy: .*403"):
                get(http, "https://elsewhere.test:1/ok")
    assert proxy.seen[0][:2] == ("CONNECT", "elsewhere.test:1")
    assert len(proxy.seen) == 1 and len(sleeps) == 1  # the refusal is definite


def test_the_tuf_fetcher_goes_through_the_same_proxies(
        server: Server, no_proxy_env: pytest.MonkeyPatch) -> None:
    from tuf.api.exceptions import DownloadHTTPError

    from sealtrail.trustroot.tuf_client import _fetcher

    with ForwardProxy() as proxy:
        no_proxy_env.setenv("HTTP_PROXY", proxy.url)
        fetcher = _fetcher(5, "sealtrail/test")
        assert b"".join(fetcher.fetch(f"http://target.test:{server.port}/ok")) == b"ok"
        assert b"".join(fetcher.fetch(server.url + "/big")) == b"x" * 5000  # loopback: direct
        with pytest.raises(DownloadHTTPError):
            b"".join(fetcher.fetch(server.url + "/missing"))
    assert [(m, t) for m, t, _, _ in proxy.seen] == [("GET", f"http://target.test:{server.port}/ok")]
    agent = server.requests[0]["headers"]["user-agent"]
    assert agent.startswith("sealtrail/test python-tuf/")
