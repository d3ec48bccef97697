"""Clients for Rekor v1 and Rekor v2 logs, returning bundle ``tlogEntries`` items.

SPEC: sigstore-wire.md §3 (v1 LogEntry) and §4 (v2 TransparencyLogEntry); protobuf-specs
TransparencyLogEntry (bundle JSON: int64 as strings, bytes as base64).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sealtrail.errors import LogEntryInvalidError, LogError, ServiceUnavailableError
from sealtrail.net.http import HttpClient, HttpResponse, http_client

__all__ = ["MAX_LOG_RESPONSE_BYTES", "MAX_RETRIEVE", "RekorV1Client", "RekorV2Client",
           "tlog_entry_from_v1"]

# An entry answer carries the canonicalized body (a DSSE envelope of up to 16 MiB of payload,
# base64 inside base64) plus its proof: generous, but bounded.
MAX_LOG_RESPONSE_BYTES = 64 * 1024 * 1024
# SPEC: Rekor v1 openapi: /api/v1/log/entries/retrieve takes at most 10 items per call.
MAX_RETRIEVE = 10
# A search answer is a list of entry IDs or log indexes: bounded well below an entry's.
MAX_SEARCH_RESPONSE_BYTES = 4 * 1024 * 1024
# Pages of search results followed at most (a sealtrail log cuts a slow page short).
MAX_SEARCH_PAGES = 20
_NEXT_LINK = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')


def _next_from(response: HttpResponse, path: str) -> str | None:
    """The ``from`` of a ``Link: <path?from=N>; rel="next"`` header, if it names ``path``."""
    match = _NEXT_LINK.search(response.headers.get("link") or "")
    if match is None:
        return None
    target = urlsplit(match.group(1))
    if target.path != path:
        return None
    start = parse_qs(target.query).get("from", [""])[0]
    return start if start.isascii() and start.isdecimal() else None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def tlog_entry_from_v1(response: Any) -> dict[str, Any]:
    """Convert a Rekor v1 ``{entryID: LogEntry}`` map into a bundle tlog entry."""
    try:
        ((_, entry),) = response.items()
        body = base64.b64decode(entry["body"], validate=True)
        kind_version = json.loads(body)
        verification = entry["verification"]
        proof = verification["inclusionProof"]
        return {
            "logIndex": str(entry["logIndex"]),
            "logId": {"keyId": _b64(bytes.fromhex(entry["logID"]))},
            "kindVersion": {"kind": kind_version["kind"], "version": kind_version["apiVersion"]},
            "integratedTime": str(entry["integratedTime"]),
            "inclusionPromise": {"signedEntryTimestamp": verification["signedEntryTimestamp"]},
            "inclusionProof": {
                "logIndex": str(proof["logIndex"]),
                "rootHash": _b64(bytes.fromhex(proof["rootHash"])),
                "treeSize": str(proof["treeSize"]),
                "hashes": [_b64(bytes.fromhex(h)) for h in proof["hashes"]],
                "checkpoint": {"envelope": proof["checkpoint"]},
            },
            "canonicalizedBody": entry["body"],
        }
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise LogError(f"Rekor v1 response is malformed: {exc}") from exc


class _Client:
    def __init__(self, base_url: str, client: HttpClient | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        # The shared client: timeouts, and retries when the log is unreachable or busy.
        self._client = client or http_client()

    def _send(self, method: str, path: str, body: bytes | None = None, *,
              limit: int = MAX_LOG_RESPONSE_BYTES) -> HttpResponse:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            return self._client.request(method, self.base_url + path, body=body,
                                        headers=headers, service=f"the log at {self.base_url}",
                                        limit=limit)
        except ServiceUnavailableError as exc:
            # Log clients report every log failure as a LogError; the message says which
            # ("cannot reach the log at ...", "... did not answer in time").
            raise LogError(exc.message, expected=exc.expected, actual=exc.actual) from exc

    def _post(self, path: str, payload: Any) -> HttpResponse:
        response = self._send("POST", path,
                              json.dumps(payload, separators=(",", ":")).encode())
        if response.status == 409:
            raise LogEntryInvalidError("the log already holds this entry",
                                       actual=response.headers.get("location")
                                       or response.headers.get("x-log-index"))
        if response.status >= 400:
            raise LogError(f"the log refused the entry (HTTP {response.status}): "
                           f"{response.text[:300]}")
        return response

    def _get(self, path: str) -> HttpResponse:
        response = self._send("GET", path)
        if response.status >= 400:
            raise LogError(f"the log could not return the entry (HTTP {response.status})")
        return response

    def _answer(self, response: HttpResponse, what: str) -> Any:
        """The JSON of a 200 answer to a search or read; a LogError otherwise."""
        if response.status != 200:
            raise LogError(f"the log at {self.base_url} could not {what} "
                           f"(HTTP {response.status})")
        try:
            return response.json()
        except ValueError as exc:
            raise LogError(f"the log at {self.base_url} answered {what} with something other "
                           "than JSON") from exc

    def close(self) -> None:
        self._client.close()


class RekorV1Client(_Client):
    """POST /api/v1/log/entries and friends."""

    def create_entry(self, proposed: dict[str, Any]) -> dict[str, Any]:
        """Log ``proposed`` ({apiVersion, kind, spec}); return the bundle tlog entry."""
        try:
            response = self._post("/api/v1/log/entries", proposed)
        except LogEntryInvalidError as exc:
            # 409: the log already holds this very entry -- typically our own earlier attempt,
            # whose answer was lost. The entry (same body, same signature) is what we want.
            location = exc.actual if isinstance(exc.actual, str) else None
            if not location or not location.startswith("/api/v1/log/entries/"):
                raise
            response = self._get(location)
        try:
            return tlog_entry_from_v1(response.json())
        except ValueError as exc:
            raise LogError("Rekor v1 response is not JSON") from exc


    def search_hash(self, sha256_hex: str, limit: int = 100) -> list[str] | None:
        """Entry IDs (UUIDs) of the entries filed under this SHA-256 artifact digest
        (``POST /api/v1/index/retrieve``), at most ``limit``, following a sealtrail log's
        pages (``Link: <...?from=N>; rel="next"``; Rekor answers in one piece); None when
        the log has no search index (404/501)."""
        body = json.dumps({"hash": f"sha256:{sha256_hex}"}).encode()
        found: list[str] = []
        start: str | None = None
        for _ in range(MAX_SEARCH_PAGES):
            path = "/api/v1/index/retrieve" + (f"?from={start}" if start else "")
            response = self._send("POST", path, body, limit=MAX_SEARCH_RESPONSE_BYTES)
            if response.status in (404, 501) and start is None:
                return None
            page = self._answer(response, "search its index")
            if not isinstance(page, list) or not all(isinstance(u, str) for u in page):
                raise LogError(f"the log at {self.base_url} answered the search with something "
                               "other than a list of entry IDs")
            found += page
            start = _next_from(response, "/api/v1/index/retrieve")
            if start is None or len(found) >= limit or not page:
                break
        return found[:limit]

    def retrieve(self, query: dict[str, list[Any]]) -> list[dict[str, Any]]:
        """``POST /api/v1/log/entries/retrieve``: the ``{entryID: LogEntry}`` maps found for
        ``{"entryUUIDs": [...]}``, ``{"logIndexes": [...]}`` or ``{"entries": [...]}`` (at
        most :data:`MAX_RETRIEVE` items)."""
        response = self._send("POST", "/api/v1/log/entries/retrieve",
                              json.dumps(query, separators=(",", ":")).encode())
        found = self._answer(response, "retrieve entries")
        if not isinstance(found, list) or not all(isinstance(e, dict) for e in found):
            raise LogError(f"the log at {self.base_url} answered retrieve with something "
                           "other than a list of entries")
        return found


class RekorV2Client(_Client):
    """POST <log>/api/v2/log/entries."""

    def create_entry(self, request: dict[str, Any]) -> dict[str, Any]:
        """Log ``request`` (hashedRekordRequestV002 / dsseRequestV002); return the tlog entry."""
        response = self._post("/api/v2/log/entries", request)
        try:
            entry = response.json()
        except ValueError as exc:
            raise LogError("Rekor v2 response is not JSON") from exc
        if not isinstance(entry, dict):
            raise LogError("Rekor v2 response is not a JSON object")
        # A bundle carries no inclusionPromise for v2 entries.
        return {k: v for k, v in entry.items() if not (k == "inclusionPromise" and v is None)}

    def search_hash(self, sha256_hex: str, limit: int = 100) -> list[int] | None:
        """Log indexes of the entries filed under this SHA-256 digest (a sealtrail log's
        ``GET <log>/api/v2/log/search?sha256=``), at most ``limit``, following its pages
        (``next``); None when the log offers no search (404, as rekor-tiles)."""
        found: list[int] = []
        start: str | None = None
        for _ in range(MAX_SEARCH_PAGES):
            query = f"sha256={sha256_hex}" + (f"&from={start}" if start else "")
            response = self._send("GET", f"/api/v2/log/search?{query}",
                                  limit=MAX_SEARCH_RESPONSE_BYTES)
            if response.status in (404, 405, 501) and start is None:
                return None
            answer = self._answer(response, "search its entries")
            indexes = answer.get("logIndexes") if isinstance(answer, dict) else None
            page: list[int] = []
            for item in indexes if isinstance(indexes, list) else [None]:
                if isinstance(item, str) and item.isascii() and item.isdecimal():
                    page.append(int(item))
                elif isinstance(item, int) and not isinstance(item, bool) and item >= 0:
                    page.append(item)
                else:
                    raise LogError(f"the log at {self.base_url} answered the search with "
                                   "something other than a list of log indexes")
            found += page
            following = answer.get("next")
            start = following if isinstance(following, str) and following.isascii() and \
                following.isdecimal() else None
            if start is None or len(found) >= limit or not page:
                break
        return found[:limit]

    def checkpoint(self) -> str:
        """The log's latest checkpoint (a signed note), as text."""
        response = self._send("GET", "/checkpoint", limit=MAX_SEARCH_RESPONSE_BYTES)
        if response.status != 200:
            raise LogError(f"the log at {self.base_url} could not return its checkpoint "
                           f"(HTTP {response.status})")
        return response.text

    def tile(self, path: str) -> bytes:
        """The bytes at a tlog-tiles path under the log (``tile/...``)."""
        response = self._send("GET", "/" + path)
        if response.status != 200:
            raise LogError(f"the log at {self.base_url} could not return {path} "
                           f"(HTTP {response.status})")
        return bytes(response.body)
