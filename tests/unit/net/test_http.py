"""The shared HTTP client without a network: retries, backoff, limits, error mapping (over its
transport seam) and which proxy the environment selects for a URL."""

from __future__ import annotations

import http.client
import os
import ssl
import subprocess
import sys
from typing import Any

import pytest

from sealtrail.errors import ServiceUnavailableError, UsageError
from sealtrail.net.http import (
    AnswerDroppedError,
    ConnectTimeoutError,
    Headers,
    HttpClient,
    HttpRequest,
    HttpResponse,
    RETRY_STATUSES,
    RetryPolicy,
    USER_AGENT,
    service_message,
)
from tests.fakes.http import respond

URL = "https://svc.test/api"
SERVICE = "the service at https://svc.test"


class Scripted:
    """A transport answering from a script: each item is a response or an exception."""

    def __init__(self, *script: HttpResponse | BaseException) -> None:
        self.script = list(script)
        self.requests: list[HttpRequest] = []

    def __call__(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, BaseException):
            raise item
        return item


def make(transport: Scripted, sleeps: list[float] | None = None, rand: float = 0.5,
         **policy: Any) -> HttpClient:
    return HttpClient(RetryPolicy(**policy), transport=transport,
                      sleep=(sleeps if sleeps is not None else []).append, rand=lambda: rand)


def get(client: HttpClient, limit: int = 1024, **kwargs: Any) -> HttpResponse:
    return client.request("GET", URL, service=SERVICE, limit=limit, **kwargs)


# -- retries and backoff ----------------------------------------------------------------------

def test_backoff_doubles_with_equal_jitter_up_to_the_cap() -> None:
    sleeps: list[float] = []
    transport = Scripted(*[respond(503)] * 5, respond(200, text="ok"))
    response = get(make(transport, sleeps, rand=0.5, attempts=6, backoff=1.0, max_backoff=4.0))
    assert response.status == 200 and response.text == "ok"
    # ceilings 1, 2, 4, 4, 4 -> half plus half of the random half (rand = 0.5)
    assert sleeps == [0.75, 1.5, 3.0, 3.0, 3.0]
    assert len(transport.requests) == 6
    policy = RetryPolicy(backoff=1.0, max_backoff=4.0)
    assert policy.delay(1, lambda: 0.0) == 0.5 and policy.delay(1, lambda: 1.0) == 1.0
    assert policy.delay(10, lambda: 1.0) == 4.0


@pytest.mark.parametrize("status", sorted(RETRY_STATUSES))
def test_every_retry_status_is_retried_and_the_last_answer_returned(status: int) -> None:
    sleeps: list[float] = []
    transport = Scripted(respond(status, json={"message": "busy"}))
    response = get(make(transport, sleeps, attempts=3))
    assert response.status == status and response.json() == {"message": "busy"}
    assert len(transport.requests) == 3 and len(sleeps) == 2


@pytest.mark.parametrize("retry_after,expected", [
    ("3600", 2.0),  # honoured, but capped at max_backoff
    ("1", 1.0),  # honoured
    ("0", 0.375),  # below our own backoff: ours wins
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.375),  # an HTTP date is not read: our backoff
    ("-5", 0.375),
])
def test_retry_after(retry_after: str, expected: float) -> None:
    sleeps: list[float] = []
    transport = Scripted(respond(429, headers={"Retry-After": retry_after}), respond(204))
    assert get(make(transport, sleeps, backoff=0.5, max_backoff=2.0)).status == 204
    assert sleeps == [expected]


@pytest.mark.parametrize("status", [200, 201, 204, 301, 302, 304, 400, 401, 404, 409, 501])
def test_a_definite_answer_is_returned_at_once(status: int) -> None:
    sleeps: list[float] = []
    transport = Scripted(respond(status, headers={"Location": "https://elsewhere.test/"}))
    response = get(make(transport, sleeps))
    # No redirect is followed either: a 3xx comes back as it is.
    assert response.status == status and response.headers["location"] == "https://elsewhere.test/"
    assert len(transport.requests) == 1 and sleeps == []


@pytest.mark.parametrize("error", [
    ConnectionRefusedError(111, "Connection refused"),
    ConnectionResetError(104, "Connection reset by peer"),
    http.client.RemoteDisconnected("Remote end closed connection without response"),
    BrokenPipeError(32, "Broken pipe"),
])
def test_no_answer_is_retried_then_reported_naming_the_service(error: Exception) -> None:
    sleeps: list[float] = []
    transport = Scripted(error)
    with pytest.raises(ServiceUnavailableError) as info:
        get(make(transport, sleeps, attempts=3))
    assert len(transport.requests) == 3 and len(sleeps) == 2
    assert info.value.message.startswith(f"cannot reach {SERVICE}: ")
    assert info.value.message.endswith("(after 3 attempts)")
    assert info.value.code == "SERVICE_UNAVAILABLE"


def test_no_answer_then_an_answer_succeeds() -> None:
    transport = Scripted(ConnectionRefusedError(111, "refused"), respond(200, content=b"x"))
    assert get(make(transport)).body == b"x"


def test_single_attempt_has_no_attempt_count() -> None:
    with pytest.raises(ServiceUnavailableError) as info:
        get(make(Scripted(ConnectionRefusedError(111, "Connection refused")), attempts=1))
    assert info.value.message == f"cannot reach {SERVICE}: [Errno 111] Connection refused"


def test_read_timeout_is_not_retried() -> None:
    transport = Scripted(TimeoutError("The read operation timed out"))
    sleeps: list[float] = []
    with pytest.raises(ServiceUnavailableError) as info:
        get(make(transport, sleeps))
    # The service may be processing the request: repeating it could do it twice.
    assert info.value.message == f"{SERVICE} did not answer in time (TimeoutError)"
    assert len(transport.requests) == 1 and sleeps == []


def test_connect_timeout_is_retried_then_reported_as_a_timeout() -> None:
    transport = Scripted(ConnectTimeoutError("connecting timed out"))
    sleeps: list[float] = []
    with pytest.raises(ServiceUnavailableError, match="did not answer in time") as info:
        get(make(transport, sleeps, attempts=2))
    assert "connecting timed out, 2 attempts" in info.value.message
    assert len(transport.requests) == 2 and len(sleeps) == 1


def test_a_broken_answer_is_not_retried() -> None:
    transport = Scripted(AnswerDroppedError("IncompleteRead(10 bytes read, 90 more expected)"))
    with pytest.raises(ServiceUnavailableError,
                       match="dropped the connection while answering: IncompleteRead"):
        get(make(transport))
    assert len(transport.requests) == 1


@pytest.mark.parametrize("error", [
    ssl.SSLCertVerificationError("certificate verify failed: unable to get local issuer"),
    http.client.BadStatusLine("garbage"),
    OSError(101, "Network is unreachable"),
])
def test_other_failures_are_reported_once(error: Exception) -> None:
    transport = Scripted(error)
    with pytest.raises(ServiceUnavailableError, match=f"^cannot reach {SERVICE}: "):
        get(make(transport))
    assert len(transport.requests) == 1


def test_a_bug_in_a_fake_transport_is_not_disguised() -> None:
    with pytest.raises(ValueError, match="bug"):
        get(make(Scripted(ValueError("a bug in the test"))))


# -- bounded answers --------------------------------------------------------------------------

def test_answer_over_the_limit_is_refused() -> None:
    with pytest.raises(ServiceUnavailableError, match=f"{SERVICE} sent an oversized answer") as info:
        get(make(Scripted(respond(200, content=b"x" * 1025))), limit=1024)
    assert info.value.actual == "> 1024 bytes" and info.value.expected == "<= 1024 bytes"
    assert get(make(Scripted(respond(200, content=b"x" * 1024))), limit=1024).body == b"x" * 1024


def test_declared_length_over_the_limit_is_refused_before_reading() -> None:
    answer = respond(200, headers={"Content-Length": "999999"})
    with pytest.raises(ServiceUnavailableError, match="oversized") as info:
        get(make(Scripted(answer)), limit=1024)
    assert info.value.actual == "999999 bytes"


def test_oversized_answers_are_not_retried() -> None:
    transport = Scripted(respond(503, content=b"x" * 2048))
    with pytest.raises(ServiceUnavailableError, match="oversized"):
        get(make(transport), limit=1024)
    assert len(transport.requests) == 1


# -- requests, headers, answers ---------------------------------------------------------------

def test_request_carries_the_user_agent_method_body_and_headers() -> None:
    transport = Scripted(respond(201))
    client = make(transport)
    client.request("POST", URL, body=b"{}", headers={"Content-Type": "application/json"},
                   service=SERVICE, limit=10)
    (request,) = transport.requests
    assert request.method == "POST" and request.url == URL and request.body == b"{}"
    assert request.headers["user-agent"] == USER_AGENT and USER_AGENT.startswith("sealtrail/")
    assert request.headers["CONTENT-TYPE"] == "application/json"
    client.request("GET", URL, headers={"user-agent": "sealtrail-ca"}, service=SERVICE, limit=10)
    assert transport.requests[1].headers["User-Agent"] == "sealtrail-ca"
    assert transport.requests[1].body is None


def test_headers_ignore_case_and_join_repeated_fields() -> None:
    headers = Headers([("Content-Type", "a/b"), ("Vary", "Accept"), ("vary", "Origin")])
    assert headers["content-type"] == headers["CONTENT-TYPE"] == "a/b"
    assert "Content-Type" in headers and "content-length" not in headers and 1 not in headers
    assert headers.get("VARY") == "Accept, Origin" and headers.get("x", "d") == "d"
    assert dict(headers) == {"content-type": "a/b", "vary": "Accept, Origin"}


def test_response_helpers() -> None:
    response = respond(200, json={"a": [1]})
    assert response.json() == {"a": [1]} and response.text == '{"a": [1]}'
    assert HttpResponse(200, Headers(), b"\xff").text == "\ufffd"
    with pytest.raises(ValueError):
        HttpResponse(200, Headers(), b"not json").json()


def test_service_message() -> None:
    assert service_message(b'{"code": 3, "message": "bad\\n  CSR"}') == "bad CSR"
    assert service_message(b"plain   text") == "plain text"
    assert service_message(b"") == "(no message)"
    assert len(service_message(b"x" * 10_000)) == 300


def test_closed_client_refuses_requests() -> None:
    client = make(Scripted(respond(200)))
    client.close()
    with pytest.raises(UsageError, match="closed"):
        get(client)


@pytest.mark.parametrize("url", ["ftp://svc.test/x", "https:///nohost", "http://svc.test:port/",
                                 "http://svc.test/a b\r\nX-Injected: 1"])
def test_urls_that_cannot_be_sent_are_refused_without_a_connection(url: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fakes.network import forbid_network

    attempts = forbid_network(monkeypatch)
    with pytest.raises(ServiceUnavailableError, match=f"^cannot reach {SERVICE}: "):
        HttpClient(RetryPolicy(attempts=1)).request("GET", url, service=SERVICE, limit=10)
    assert attempts == []


def test_tls_context_verifies_certificates_and_hostnames() -> None:
    context = HttpClient()._tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 0  # certifi's bundle (or the system's)


# -- proxies ----------------------------------------------------------------------------------

@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name == "REQUEST_METHOD":
            monkeypatch.delenv(name)
    return monkeypatch


def proxy(url: str) -> str | None:
    chosen = HttpClient().proxy_for(url)
    return None if chosen is None else f"{chosen.host}:{chosen.port}"


def test_no_proxy_variables_means_direct(clean_env: pytest.MonkeyPatch) -> None:
    assert proxy("https://fulcio.test/") is None and proxy("http://rekor.test/") is None


def test_proxy_per_scheme_with_all_proxy_as_fallback(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HTTPS_PROXY", "http://tls-proxy.test:3128")
    clean_env.setenv("HTTP_PROXY", "http://plain-proxy.test:8080")
    assert proxy("https://fulcio.test/api") == "tls-proxy.test:3128"
    assert proxy("http://rekor.test/api") == "plain-proxy.test:8080"
    clean_env.delenv("HTTP_PROXY")
    clean_env.setenv("ALL_PROXY", "http://any-proxy.test")
    assert proxy("http://rekor.test/api") == "any-proxy.test:80"
    assert proxy("https://fulcio.test/api") == "tls-proxy.test:3128"


def test_lower_case_variables_win(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HTTPS_PROXY", "http://upper.test:1")
    clean_env.setenv("https_proxy", "http://lower.test:2")
    assert proxy("https://fulcio.test/") == "lower.test:2"


@pytest.mark.parametrize("no_proxy,url,bypassed", [
    ("internal.test", "https://ca.internal.test/", True),  # a domain suffix
    ("internal.test", "https://internal.test/", True),
    (".internal.test", "https://ca.internal.test/", True),
    ("internal.test", "https://notinternal.test/", False),
    ("ca.test:8443", "https://ca.test:8443/", True),
    ("ca.test:8443", "https://ca.test/", False),
    ("other.test, ca.test", "https://ca.test/", True),
    ("*", "https://anything.test/", True),
])
def test_no_proxy(clean_env: pytest.MonkeyPatch, no_proxy: str, url: str, bypassed: bool) -> None:
    clean_env.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    clean_env.setenv("NO_PROXY", no_proxy)
    assert proxy(url) == (None if bypassed else "proxy.test:3128")


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/", "http://localhost/", "https://[::1]:1/",
                                 "http://127.0.0.2/", "http://LOCALHOST:9/"])
def test_loopback_is_never_proxied(clean_env: pytest.MonkeyPatch, url: str) -> None:
    clean_env.setenv("HTTP_PROXY", "http://proxy.test:3128")
    clean_env.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    clean_env.setenv("ALL_PROXY", "http://proxy.test:3128")
    assert proxy(url) is None
    assert proxy("http://10.1.2.3/") == "proxy.test:3128"  # only loopback is exempt


def test_proxy_credentials_and_bare_host_port(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HTTPS_PROXY", "http://user%40corp:p%3Ass@proxy.test:3128")
    chosen = HttpClient().proxy_for("https://fulcio.test/")
    assert chosen is not None and chosen.authorization == "Basic dXNlckBjb3JwOnA6c3M="
    clean_env.setenv("HTTPS_PROXY", "proxy.test:3128")
    chosen = HttpClient().proxy_for("https://fulcio.test/")
    assert chosen is not None and (chosen.host, chosen.port, chosen.authorization) == \
        ("proxy.test", 3128, None)


@pytest.mark.parametrize("value", ["https://proxy.test:443", "socks5://proxy.test:1080",
                                   "http://proxy.test:port"])
def test_unsupported_proxies_are_refused(clean_env: pytest.MonkeyPatch, value: str) -> None:
    clean_env.setenv("HTTPS_PROXY", value)
    with pytest.raises(UsageError, match="proxy"):
        HttpClient().proxy_for("https://fulcio.test/")


def test_cgi_request_ignores_http_proxy(clean_env: pytest.MonkeyPatch) -> None:
    # httpoxy: under CGI, HTTP_PROXY can come from a client's "Proxy:" header.
    clean_env.setenv("REQUEST_METHOD", "GET")
    clean_env.setenv("HTTP_PROXY", "http://attacker.test:80")
    assert proxy("http://rekor.test/") is None


def test_urllib_request_is_imported_only_when_a_proxy_variable_is_set() -> None:
    code = ("import sys; from sealtrail.net.http import HttpClient; HttpClient(); "
            "print('urllib.request' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    plain = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, timeout=60, check=True)
    assert plain.stdout.strip() == "False"
    proxied = subprocess.run([sys.executable, "-c", code], env={**env, "no_proxy": "x.test"},
                             capture_output=True, text=True, timeout=60, check=True)
    assert proxied.stdout.strip() == "True"


def test_send_early_over_a_transport_asks_when_the_answer_is_read() -> None:
    transport = Scripted(respond(503), respond(200, content=b"done"))
    sleeps: list[float] = []
    client = make(transport, sleeps, attempts=2)
    answer = client.send_early("POST", URL, body=b"b", service=SERVICE, limit=100)
    assert transport.requests == []  # a test transport has no socket to send on early
    assert answer().body == b"done"
    assert [r.body for r in transport.requests] == [b"b", b"b"] and len(sleeps) == 1
