"""The log clients' search calls (issue 13): what each answer means, and bounded failures."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sealtrail.clients.rekor import RekorV1Client, RekorV2Client
from sealtrail.errors import LogError
from sealtrail.net.http import Headers, HttpRequest, HttpResponse, RetryPolicy, http_client

DIGEST = "ab" * 32


def client_answering(status: int, answer: Any, seen: list[HttpRequest]) -> Any:
    def transport(request: HttpRequest) -> HttpResponse:
        seen.append(request)
        body = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        return HttpResponse(status, Headers(), body)

    return http_client(RetryPolicy(attempts=1), transport=transport)


def test_v1_search_asks_the_index_by_sha256() -> None:
    seen: list[HttpRequest] = []
    log = RekorV1Client("https://rekor.example/", client_answering(200, ["aa" * 40], seen))
    assert log.search_hash(DIGEST) == ["aa" * 40]
    assert seen[0].method == "POST" and seen[0].url == "https://rekor.example/api/v1/index/retrieve"
    assert json.loads(seen[0].body or b"") == {"hash": f"sha256:{DIGEST}"}


@pytest.mark.parametrize("status", [404, 501])
def test_v1_without_an_index_is_none_not_an_error(status: int) -> None:
    log = RekorV1Client("https://rekor.example", client_answering(status, {}, []))
    assert log.search_hash(DIGEST) is None


@pytest.mark.parametrize("status, answer", [
    (500, {}), (200, {"not": "a list"}), (200, [1, 2]), (200, b"<html>"),
])
def test_v1_search_failures_are_log_errors(status: int, answer: Any) -> None:
    log = RekorV1Client("https://rekor.example", client_answering(status, answer, []))
    with pytest.raises(LogError) as info:
        log.search_hash(DIGEST)
    assert "https://rekor.example" in info.value.message


def test_v1_retrieve_returns_the_entry_maps() -> None:
    seen: list[HttpRequest] = []
    log = RekorV1Client("https://rekor.example", client_answering(200, [{"id": {}}], seen))
    assert log.retrieve({"entryUUIDs": ["id"]}) == [{"id": {}}]
    assert seen[0].url.endswith("/api/v1/log/entries/retrieve")
    with pytest.raises(LogError):
        RekorV1Client("https://rekor.example",
                      client_answering(200, ["x"], [])).retrieve({"entryUUIDs": ["id"]})


def test_v2_search_reads_log_indexes() -> None:
    seen: list[HttpRequest] = []
    log = RekorV2Client("https://log.example/logs/a",
                        client_answering(200, {"logIndexes": ["3", "10"]}, seen))
    assert log.search_hash(DIGEST) == [3, 10]
    assert seen[0].url == f"https://log.example/logs/a/api/v2/log/search?sha256={DIGEST}"


def test_v2_log_without_search_is_none() -> None:  # rekor-tiles has no search
    log = RekorV2Client("https://log.example", client_answering(404, {}, []))
    assert log.search_hash(DIGEST) is None


@pytest.mark.parametrize("answer", [{"logIndexes": ["-1"]}, {"logIndexes": [True]},
                                    {"logIndexes": "3"}, {}, ["3"], {"logIndexes": ["\u0663"]}])
def test_v2_malformed_search_answers_are_log_errors(answer: Any) -> None:
    log = RekorV2Client("https://log.example", client_answering(200, answer, []))
    with pytest.raises(LogError):
        log.search_hash(DIGEST)


def paged(pages: list[tuple[Any, dict[str, str]]], seen: list[HttpRequest]) -> Any:
    def transport(request: HttpRequest) -> HttpResponse:
        seen.append(request)
        answer, headers = pages[len(seen) - 1]
        return HttpResponse(200, Headers(headers), json.dumps(answer).encode())

    return http_client(RetryPolicy(attempts=1), transport=transport)


def test_v1_search_follows_a_sealtrail_logs_pages_up_to_the_limit() -> None:
    link = {"link": '</api/v1/index/retrieve?from=7>; rel="next"'}
    seen: list[HttpRequest] = []
    log = RekorV1Client("http://log.test", paged([(["a"], link), (["b"], link), (["c"], {})],
                                                 seen))
    assert log.search_hash(DIGEST) == ["a", "b", "c"]
    assert [r.url for r in seen][1] == "http://log.test/api/v1/index/retrieve?from=7"
    assert all(json.loads(r.body or b"") == {"hash": f"sha256:{DIGEST}"} for r in seen)
    seen.clear()
    log = RekorV1Client("http://log.test", paged([(["a", "b"], link), (["c"], {})], seen))
    assert log.search_hash(DIGEST, limit=2) == ["a", "b"] and len(seen) == 1


def test_a_link_elsewhere_is_not_followed() -> None:
    seen: list[HttpRequest] = []
    log = RekorV1Client("http://log.test", paged(
        [(["a"], {"link": '<https://evil.test/x?from=1>; rel="next"'})], seen))
    assert log.search_hash(DIGEST) == ["a"] and len(seen) == 1


def test_v2_search_follows_next() -> None:
    seen: list[HttpRequest] = []
    log = RekorV2Client("http://log.test/logs/a", paged(
        [({"logIndexes": ["1"], "next": "2"}, {}), ({"logIndexes": ["5"]}, {})], seen))
    assert log.search_hash(DIGEST) == [1, 5]
    assert seen[1].url == f"http://log.test/logs/a/api/v2/log/search?sha256={DIGEST}&from=2"
