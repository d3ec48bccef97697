"""The bytes the HTTP client sends (``_request_head``) and how it reads an answer
(``_AnswerReader``, httptools underneath): framing, bounds, interim answers, and the ways
an answer can end early."""

from __future__ import annotations

import pytest

from sealtrail.net.http import (AnswerDroppedError, Headers, _AnswerReader,
                                       _MalformedAnswerError, _OversizedError, _request_head)


def read(*chunks: bytes, limit: int = 1000, close: bool = False) -> _AnswerReader:
    reader = _AnswerReader(limit)
    for chunk in chunks:
        reader.feed(chunk)
    if close:
        reader.closed()
    return reader


# -- the request -----------------------------------------------------------------------------

def test_request_head_has_host_encoding_and_length() -> None:
    head = _request_head("POST", "/api/v1/timestamp", "tsa.example:8080",
                         Headers({"User-Agent": "sealtrail/0", "Content-Type": "x/y"}), b"12345")
    assert head == (b"POST /api/v1/timestamp HTTP/1.1\r\nHost: tsa.example:8080\r\n"
                    b"user-agent: sealtrail/0\r\ncontent-type: x/y\r\n"
                    b"Accept-Encoding: identity\r\nContent-Length: 5\r\n\r\n")


@pytest.mark.parametrize("method,body,length", [
    ("GET", None, None), ("POST", None, b"0"), ("POST", b"", b"0"), ("PUT", b"ab", b"2"),
])
def test_content_length_as_http_client_sends_it(method: str, body: bytes | None,
                                               length: bytes | None) -> None:
    head = _request_head(method, "/", "h", {}, body)
    assert (b"Content-Length: " + length + b"\r\n" in head) if length else \
        (b"Content-Length" not in head)


def test_fields_the_caller_set_win() -> None:
    head = _request_head("POST", "/", "h", {"Content-Length": "3", "Accept-Encoding": "gzip"},
                         b"abc")
    assert head.count(b"Content-Length") == 1 and b"Accept-Encoding: gzip" in head
    assert b"identity" not in head


@pytest.mark.parametrize("fields,path", [
    ({"Authorization": "Bearer x\r\nX-Injected: 1"}, "/"),
    ({"Bad Name": "v"}, "/"),
    ({"X": "nul\x00"}, "/"),
    ({}, "/caf\u00e9"),
    ({"X": "\u2603"}, "/"),
])
def test_fields_and_targets_that_cannot_be_sent(fields: dict[str, str], path: str) -> None:
    with pytest.raises(ValueError):
        _request_head("GET", path, "h", fields, None)


# -- the answer ------------------------------------------------------------------------------

def test_a_fixed_length_answer_byte_by_byte() -> None:
    raw = b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}"
    reader = _AnswerReader(100)
    for i in range(len(raw)):
        assert not reader.complete
        reader.feed(raw[i:i + 1])
    assert reader.complete and reader.keep_alive
    assert (reader.status, reader.body()) == (201, b'{"a":1}')
    assert reader.headers["content-type"] == "application/json"


def test_a_chunked_answer_and_repeated_fields() -> None:
    reader = read(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nVia: a\r\nVia: b\r\n\r\n"
                  b"3\r\nabc\r\n", b"2\r\nde\r\n0\r\n\r\n")
    assert reader.complete and reader.body() == b"abcde" and reader.headers["via"] == "a, b"


def test_an_interim_answer_is_skipped() -> None:
    reader = read(b"HTTP/1.1 100 Continue\r\n\r\n",
                  b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert reader.complete and (reader.status, reader.body()) == (200, b"ok")


def test_an_answer_that_ends_with_the_connection() -> None:
    reader = read(b"HTTP/1.1 200 OK\r\n\r\nall of ", b"it", close=True)
    assert reader.complete and not reader.keep_alive and reader.body() == b"all of it"


@pytest.mark.parametrize("raw", [
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
    # Bytes after the answer: nothing was pipelined, so the connection is not reused.
    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n",
])
def test_connections_that_are_not_kept(raw: bytes) -> None:
    reader = read(raw)
    assert reader.complete and reader.status == 200 and not reader.keep_alive


def test_a_kept_connection() -> None:
    assert read(b"HTTP/1.1 204 No Content\r\n\r\n").keep_alive


def test_a_declared_length_over_the_limit_is_refused_before_the_body() -> None:
    with pytest.raises(_OversizedError, match="5000 bytes"):
        read(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n", limit=1000)


def test_a_body_growing_over_the_limit_is_refused() -> None:
    reader = _AnswerReader(10)
    reader.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n")
    with pytest.raises(_OversizedError, match="> 10 bytes"):
        reader.feed(b"8\r\n12345678\r\n")


def test_closed_before_any_byte_may_be_retried() -> None:
    with pytest.raises(ConnectionResetError):
        read(close=True)


@pytest.mark.parametrize("chunks", [
    [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345"],
    [b"HTTP/1.1 200 OK\r\nContent-Le"],
    [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc"],
])
def test_closed_in_the_middle_of_an_answer_is_dropped_not_retried(chunks: list[bytes]) -> None:
    with pytest.raises(AnswerDroppedError, match="closed in the middle of the answer"):
        read(*chunks, close=True)


@pytest.mark.parametrize("raw", [
    b"SSH-2.0-OpenSSH_9.6\r\n",
    b"HTTP/1.1 2x0 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
])
def test_what_is_not_http_is_malformed(raw: bytes) -> None:
    with pytest.raises(_MalformedAnswerError, match="not HTTP/1.1"):
        read(raw)
