"""The shared HTTP client without a network: retries, backoff, limits, error mapping (over its
transport seam, which sees the request after the URL and header checks), which proxy the
environment selects for a URL, and how the urllib3 managers are configured."""

from __future__ import annotations

import http.client
import logging
import os
import ssl
from typing import Any

import pytest
import urllib3

from sealtrail.errors import ServiceUnavailableError, UsageError
from sealtrail.net.http import (
    MAX_CONNECT_TIMEOUT,
    RETRY_STATUSES,
    USER_AGENT,
    AnswerDroppedError,
    ConnectTimeoutError,
    Headers,
    HttpClient,
    HttpRequest,
    HttpResponse,
    PoolManagers,
    Proxy,
    ProxySettings,
    RetryPolicy,
    pool_manager,
    service_message,
    timeout_for,
    tls_context,
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
                                 "http://svc.test/a b\r\nX-Injected: 1", "https://svc.test/\u00e9"])
def test_urls_that_cannot_be_sent_are_refused_before_the_transport(url: str) -> None:
    # The seam sits below the checks: a fake transport sees only what production would send.
    transport = Scripted(respond(200))
    with pytest.raises(ServiceUnavailableError, match=f"^cannot reach {SERVICE}: "):
        make(transport).request("GET", url, service=SERVICE, limit=10)
    assert transport.requests == []


@pytest.mark.parametrize("headers", [{"Bad Name": "x"}, {"X-Ok": "a\r\nX-Injected: 1"},
                                     {"X-Ok": "nul\x00"}, {"": "empty name"}])
def test_header_fields_that_cannot_be_sent_are_refused_before_the_transport(
        headers: dict[str, str]) -> None:
    transport = Scripted(respond(200))
    with pytest.raises(ServiceUnavailableError, match=f"^cannot reach {SERVICE}: invalid header"):
        get(make(transport), headers=headers)
    assert transport.requests == []
    get(make(transport), headers={"X-Ok": "fine; q=1"})  # what a valid field looks like
    assert len(transport.requests) == 1


def test_urls_that_cannot_be_sent_never_reach_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fakes.network import forbid_network

    attempts = forbid_network(monkeypatch)
    with pytest.raises(ServiceUnavailableError, match=f"^cannot reach {SERVICE}: "):
        HttpClient(RetryPolicy(attempts=1)).request("GET", "http://svc.test:port/",
                                                    service=SERVICE, limit=10)
    assert attempts == []


def test_tls_context_verifies_certificates_and_hostnames() -> None:
    context = tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 0  # certifi's bundle (or the system's)
    assert tls_context() is context  # made once


def test_timeouts_cap_connecting_and_honour_a_deadline() -> None:
    plain = timeout_for(30.0)
    assert (plain.connect_timeout, plain.read_timeout, plain.total) == \
        (MAX_CONNECT_TIMEOUT, 30.0, None)
    short = timeout_for(30.0, deadline=2.0)
    assert (short.connect_timeout, short.total) == (2.0, 2.0)
    assert timeout_for(3.0).connect_timeout == 3.0


def test_retries_are_logged_without_headers_or_query(caplog: pytest.LogCaptureFixture) -> None:
    transport = Scripted(ConnectionRefusedError(111, "refused"), respond(503), respond(200))
    caplog.set_level(logging.DEBUG, logger="sealtrail.net")
    make(transport, attempts=3).request("GET", URL + "?token=secret", service=SERVICE,
                                        limit=10, headers={"Authorization": "Bearer secret"})
    messages = [r.getMessage() for r in caplog.records if r.name == "sealtrail.net"]
    assert len(messages) == 2
    assert "attempt 1 of 3 failed" in messages[0] and "HTTP 503" in messages[1]
    assert not any("secret" in m for m in messages)


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
    assert chosen.url == "http://proxy.test:3128"  # credentials stay out of the URL
    clean_env.setenv("HTTPS_PROXY", "proxy.test:3128")
    chosen = HttpClient().proxy_for("https://fulcio.test/")
    assert chosen is not None and (chosen.host, chosen.port, chosen.authorization) == \
        ("proxy.test", 3128, None)


def test_https_proxies_are_supported(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HTTPS_PROXY", "https://proxy.test")
    assert HttpClient().proxy_for("https://fulcio.test/") == \
        Proxy("https://proxy.test:443", "proxy.test", 443, None)


@pytest.mark.parametrize("value", ["socks5://proxy.test:1080", "http://user:pw@proxy.test:port",
                                   "user:pw@proxy.test:port"])
def test_unsupported_proxies_are_refused(clean_env: pytest.MonkeyPatch, value: str) -> None:
    clean_env.setenv("HTTPS_PROXY", value)
    with pytest.raises(UsageError, match="proxy") as info:
        HttpClient().proxy_for("https://fulcio.test/")
    assert "pw" not in str(info.value.actual)  # credentials are never shown


def test_cgi_request_ignores_http_proxy(clean_env: pytest.MonkeyPatch) -> None:
    # httpoxy: under CGI, HTTP_PROXY can come from a client's "Proxy:" header.
    clean_env.setenv("REQUEST_METHOD", "GET")
    clean_env.setenv("HTTP_PROXY", "http://attacker.test:80")
    assert proxy("http://rekor.test/") is None


def test_proxy_choice_is_logged(clean_env: pytest.MonkeyPatch,
                                caplog: pytest.LogCaptureFixture) -> None:
    clean_env.setenv("HTTPS_PROXY", "http://user:secret@proxy.test:3128")
    clean_env.setenv("NO_PROXY", "inside.test")
    caplog.set_level(logging.DEBUG, logger="sealtrail.net")
    settings = ProxySettings()
    settings.proxy_for("https", "fulcio.test", 443)
    settings.proxy_for("https", "fulcio.test", 443)  # decided once
    settings.proxy_for("https", "ca.inside.test", 443)
    messages = [r.getMessage() for r in caplog.records if r.name == "sealtrail.net"]
    assert messages == ["https://fulcio.test:443 goes through the proxy http://proxy.test:3128",
                        "https://ca.inside.test:443 is in NO_PROXY: connecting directly"]


# -- the urllib3 managers (shared with the TUF client) -------------------------------------

def test_a_direct_manager_leaves_retries_and_redirects_to_the_policy() -> None:
    manager = pool_manager(None)
    assert type(manager) is urllib3.PoolManager
    retries = manager.connection_pool_kw["retries"]
    assert retries.total is False and retries.redirect == 0
    assert manager.connection_pool_kw["ssl_context"] is tls_context()
    assert manager.connection_pool_kw["maxsize"] == 1


def test_a_proxy_manager_carries_the_credentials_and_the_tls_context() -> None:
    context = ssl.create_default_context()
    proxy = Proxy("https://proxy.test:8443", "proxy.test", 8443, "Basic dTpw")
    manager = pool_manager(proxy, tls=context, headers={"User-Agent": "x"})
    assert isinstance(manager, urllib3.ProxyManager)
    assert str(manager.proxy) == "https://proxy.test:8443"
    assert manager.proxy_headers == {"Proxy-Authorization": "Basic dTpw"}
    assert manager.proxy_ssl_context is context
    assert manager.connection_pool_kw["ssl_context"] is context
    assert manager.headers == {"User-Agent": "x"}


def test_managers_are_made_once_per_proxy(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    managers = PoolManagers(ProxySettings())
    through = managers.for_url("https://fulcio.test/a")
    assert managers.for_url("https://rekor.test/b") is through
    assert isinstance(through, urllib3.ProxyManager)
    direct = managers.for_url("https://127.0.0.1:9/")
    assert direct is not through and not isinstance(direct, urllib3.ProxyManager)
    assert direct.connection_pool_kw["ssl_context"] is tls_context()
    # Plain http has its own manager, without a TLS context.
    plain = managers.for_url("http://127.0.0.1:9/")
    assert plain is not direct and "ssl_context" not in plain.connection_pool_kw
    assert managers.for_url("http://localhost:8/x") is plain
    managers.close()
    assert managers.for_url("https://fulcio.test/a") is not through  # new after close()

