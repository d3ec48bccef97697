"""Answering sealtrail's HTTP client in memory: the ``HttpClient(transport=...)`` seam.

A handler takes the :class:`~sealtrail.net.http.HttpRequest` the client would put on the
wire, after the same URL and header checks as in production (method, absolute url, final
headers with the User-Agent and case-insensitive lookup, body), and returns an answer built
with :func:`respond`, or raises what the network would (``ConnectionRefusedError``,
``TimeoutError``...)::

    def handler(request):
        assert request.headers["content-type"] == "application/json"
        return respond(201, json={"ok": True})

    client = fake_client(handler)           # retries sleep instantly
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sealtrail.net.http import Headers, HttpClient, HttpRequest, HttpResponse, RetryPolicy

__all__ = ["Handler", "fake_client", "query_of", "respond"]

Handler = Callable[[HttpRequest], HttpResponse]


def respond(status: int, *, json: Any = None, content: bytes = b"", text: str | None = None,
            headers: Mapping[str, str] | None = None) -> HttpResponse:
    """An answer with a JSON, text or raw body (and a matching Content-Type)."""
    fields = dict(headers or {})
    if json is not None:
        content = jsonlib.dumps(json).encode()
        fields.setdefault("Content-Type", "application/json")
    elif text is not None:
        content = text.encode()
        fields.setdefault("Content-Type", "text/plain; charset=utf-8")
    return HttpResponse(status, Headers(fields), content)


def fake_client(handler: Handler, *, policy: RetryPolicy | None = None,
                sleeps: list[float] | None = None) -> HttpClient:
    """An :class:`HttpClient` answered by ``handler``; its backoff sleeps are recorded in
    ``sleeps`` (when given) instead of slept."""
    record = sleeps if sleeps is not None else []
    return HttpClient(policy, transport=handler, sleep=record.append)


def query_of(request: HttpRequest) -> dict[str, str]:
    """The request URL's query parameters (each must appear once)."""
    params = parse_qs(urlsplit(request.url).query, keep_blank_values=True)
    assert all(len(values) == 1 for values in params.values()), params
    return {name: values[0] for name, values in params.items()}
