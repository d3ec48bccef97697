"""The transparency log over HTTP: the Rekor v1 API, the Rekor v2 write API, tlog-tiles reads
and search, for any number of logs in one process.

SPEC: sigstore-wire.md §3 (Rekor v1 openapi.yaml shapes), §4 (rekor-tiles), C2SP tlog-tiles.

Layout of URLs:
- the one *active* Rekor v1 log answers at ``/api/v1/...`` (as rekor.sigstore.dev does); frozen
  v1 shards are reachable there too, by global log index or entry ID;
- each Rekor v2 log lives under ``/logs/<name>``: ``POST /logs/<name>/api/v2/log/entries``,
  ``GET /logs/<name>/checkpoint``, ``/logs/<name>/tile/...`` and the search endpoint
  ``GET /logs/<name>/api/v2/log/search``.
"""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, AsyncIterator
from urllib.parse import urlencode

import rfc8785
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from sealtrail._internal.memo import BoundedMemo
from sealtrail.crypto.keys import PublicKey
from sealtrail.errors import InputError, LogEntryNotFoundError, LogFrozenError
from sealtrail.log.engine import LogEngine
from sealtrail.log.entries import CanonicalEntry, IssuerCheck, canonicalize_v1, canonicalize_v2
from sealtrail.merkle import leaf_hash
from sealtrail.merkle.tiles import parse_tile_path
from sealtrail.server._http import EXCEPTION_HANDLERS, ApiError, is_decimal, read_json

__all__ = ["LogService", "build_log_app", "issued_by"]

# How long a write waits for a checkpoint that covers it (rekor-tiles allows 20 s).
CHECKPOINT_WAIT_SECONDS = 20.0
# SPEC: Rekor v1 openapi: retrieve takes at most 10 UUIDs / indexes / entries.
MAX_RETRIEVE = 10
# One page of search results (docs/log-service.md "Search"): a client asks for the next page
# with ``from=`` as the answer's Link header (and v2's ``next``) says.
MAX_SEARCH_RESULTS = 1000
# A page is cut short, with a link to the rest, once it has taken this long: search runs in
# a worker thread, but threads are few and a page should not hold one for long.
SEARCH_SECONDS = 2.0
FULL_TILE_CACHE = "public, max-age=31536000, immutable"
PARTIAL_TILE_CACHE = "public, max-age=2"
CHECKPOINT_CACHE = "no-cache"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class LogService:
    """One log as served over HTTP."""

    name: str
    api_version: int  # 1 (Rekor v1 API) or 2 (Rekor v2 API + tiles)
    engine: LogEngine
    # Signs Rekor v1 SETs (the checkpoint signer lives in the engine): ECDSA P-256 for v1 logs,
    # Ed25519 for v2 logs.
    private_key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    public_key: PublicKey
    log_id: bytes  # v1: SHA-256(SPKI); v2: the signed-note key id
    tree_id: int = 0  # v1 only
    index_offset: int = 0  # v1 only: global index of this shard's first entry
    frozen: bool = False
    # Whether a signer's certificate was issued by the CA served beside this log (so the
    # identity in it was checked); None when the log runs alone and has no CA to ask. See
    # sealtrail.log.entries.canonicalize_v1 and issued_by().
    trusted: IssuerCheck | None = field(default=None, repr=False)

    @property
    def log_id_hex(self) -> str:
        return self.log_id.hex()

    def entry_id(self, body: bytes) -> str:
        """Rekor v1 entry ID: 16 hex digits of tree ID, then the UUID (leaf hash)."""
        return f"{self.tree_id:016x}{leaf_hash(body).hex()}"

    def sign_set(self, body: bytes, integrated_time: int, global_index: int) -> bytes:
        """SPEC: Rekor v1 SET: the log key signs JCS of body, integratedTime, logID, logIndex."""
        payload = rfc8785.dumps({"body": _b64(body), "integratedTime": integrated_time,
                                 "logID": self.log_id_hex, "logIndex": global_index})
        assert isinstance(self.private_key, ec.EllipticCurvePrivateKey)  # v1 logs only
        return self.private_key.sign(payload, ec.ECDSA(hashes.SHA256()))


# -- Rekor v1 -------------------------------------------------------------------------------

class _V1:
    """Handlers of the Rekor v1 API over the active shard plus frozen shards."""

    def __init__(self, active: LogService, shards: list[LogService]) -> None:
        self.active = active
        self.shards = [active, *shards]

    def _entry_json(self, service: LogService, index: int,
                    known: tuple[bytes, int] | None = None) -> dict[str, Any]:
        """The Rekor v1 LogEntry map for ``index``; ``known`` = (body, integrated time)
        spares a storage read when the caller just logged the entry."""
        if known is None:
            stored = service.engine.entry(index)
            known = stored.body, stored.integrated_time
        body, integrated_time = known
        checkpoint = service.engine.latest_checkpoint()
        if index >= checkpoint.size:
            raise LogEntryNotFoundError("entry is not yet integrated", actual=index)
        global_index = service.index_offset + index
        proof = service.engine.inclusion_proof(index, checkpoint.size)
        return {service.entry_id(body): {
            "body": _b64(body),
            "integratedTime": integrated_time,
            "logID": service.log_id_hex,
            "logIndex": global_index,
            "verification": {
                "inclusionProof": {
                    "logIndex": index,
                    "rootHash": checkpoint.root_hash.hex(),
                    "treeSize": checkpoint.size,
                    "hashes": [h.hex() for h in proof],
                    "checkpoint": checkpoint.note,
                },
                "signedEntryTimestamp": _b64(service.sign_set(body, integrated_time, global_index)),
            },
        }}

    def _locate_global(self, global_index: int) -> tuple[LogService, int]:
        for service in self.shards:
            local = global_index - service.index_offset
            if 0 <= local < service.engine.latest_checkpoint().size:
                return service, local
        raise LogEntryNotFoundError("no entry at this log index", actual=global_index)

    def _locate_id(self, entry_id: str) -> tuple[LogService, int]:
        text = entry_id.lower()
        if len(text) not in (64, 80) or any(c not in "0123456789abcdef" for c in text):
            raise ApiError(400, "BAD_REQUEST", "entry ID must be 64 or 80 hex digits")
        tree = int(text[:16], 16) if len(text) == 80 else None
        uuid = bytes.fromhex(text[-64:])
        for service in self.shards:
            if tree is not None and service.tree_id != tree:
                continue
            index = service.engine.find(uuid)
            if index is not None:
                return service, index
        raise LogEntryNotFoundError("no entry with this UUID", actual=entry_id)

    async def create(self, request: Request) -> Response:
        if self.active.frozen:
            raise LogFrozenError("this log is frozen and accepts no entries")
        entry = canonicalize_v1(await read_json(request), trusted=self.active.trusted)
        engine = self.active.engine
        result = await engine.add(entry.body, entry.search_keys)
        entry_id = self.active.entry_id(entry.body)
        location = f"/api/v1/log/entries/{entry_id}"
        if result.duplicate:
            raise ApiError(409, "ALREADY_EXISTS", f"an equivalent entry already exists at index "
                           f"{self.active.index_offset + result.index}",
                           headers={"Location": location, "ETag": entry_id[16:]})
        await engine.wait_for_checkpoint(result.index, CHECKPOINT_WAIT_SECONDS)
        body = self._entry_json(self.active, result.index, (entry.body, result.integrated_time))
        return JSONResponse(body, status_code=201,
                            headers={"ETag": entry_id[16:], "Location": location})

    async def get_by_id(self, request: Request) -> Response:
        service, index = self._locate_id(request.path_params["entry_id"])
        return JSONResponse(self._entry_json(service, index))

    async def get_by_index(self, request: Request) -> Response:
        raw = request.query_params.get("logIndex")
        if raw is None or not is_decimal(raw):
            raise ApiError(400, "BAD_REQUEST", "logIndex must be a non-negative integer")
        service, index = self._locate_global(int(raw))
        return JSONResponse(self._entry_json(service, index))

    async def retrieve(self, request: Request) -> Response:
        query = await read_json(request)
        if not isinstance(query, dict):
            raise ApiError(400, "BAD_REQUEST", "retrieve expects a JSON object")
        found: list[dict[str, Any]] = []
        keys = [k for k in ("entryUUIDs", "logIndexes", "entries") if k in query]
        if len(keys) != 1:
            raise ApiError(400, "BAD_REQUEST", "give exactly one of entryUUIDs, logIndexes, entries")
        items = query[keys[0]]
        if not isinstance(items, list) or len(items) > MAX_RETRIEVE:
            raise ApiError(400, "BAD_REQUEST", f"{keys[0]} must be a list of at most {MAX_RETRIEVE}")
        for item in items:
            try:
                if keys[0] == "entryUUIDs":
                    if not isinstance(item, str):
                        raise ApiError(400, "BAD_REQUEST", "entry UUIDs must be strings")
                    service, index = self._locate_id(item)
                elif keys[0] == "logIndexes":
                    if not isinstance(item, int) or isinstance(item, bool) or item < 0:
                        raise ApiError(400, "BAD_REQUEST", "log indexes must be integers >= 0")
                    service, index = self._locate_global(item)
                else:
                    body = canonicalize_v1(item).body
                    for service in self.shards:
                        found_index = service.engine.find(leaf_hash(body))
                        if found_index is not None:
                            index = found_index
                            break
                    else:
                        continue
            except LogEntryNotFoundError:
                continue
            found.append(self._entry_json(service, index))
        return JSONResponse(found)

    async def log_info(self, request: Request) -> Response:
        checkpoint = self.active.engine.latest_checkpoint()
        inactive = [{**_tree_head(s.engine.latest_checkpoint()), "treeID": str(s.tree_id)}
                    for s in self.shards[1:]]
        return JSONResponse({**_tree_head(checkpoint), "treeID": str(self.active.tree_id),
                             "inactiveShards": inactive})

    async def proof(self, request: Request) -> Response:
        params = request.query_params
        service = self.active
        if params.get("treeID"):
            matches = [s for s in self.shards if str(s.tree_id) == params["treeID"]]
            if not matches:
                raise LogEntryNotFoundError("unknown treeID", actual=params["treeID"])
            service = matches[0]
        size = service.engine.latest_checkpoint().size
        first = _int_param(params, "firstSize", default=1)
        last = _int_param(params, "lastSize", default=size)
        if not 1 <= first <= last <= size:
            raise ApiError(400, "BAD_REQUEST", f"need 1 <= firstSize <= lastSize <= {size}")
        proof = service.engine.consistency_proof(first, last)
        return JSONResponse({"rootHash": service.engine.root_at(last).hex(),
                             "hashes": [h.hex() for h in proof]})

    async def public_key(self, request: Request) -> Response:
        pem = self.active.public_key.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        return Response(pem, media_type="application/x-pem-file")

    async def index_retrieve(self, request: Request) -> Response:
        """SPEC: Rekor v1 openapi ``searchIndex``: the answer is a JSON array of UUIDs, as
        clients expect. It holds one page (docs/log-service.md "Search"); when there is
        more, a ``Link: <...?from=N>; rel="next"`` header (RFC 8288) names the next one,
        which the same query body fetches."""
        query = await read_json(request)
        kind, value = _search_query_v1(query)
        start = _int_param(request.query_params, "from", default=0)
        # In a worker thread: a popular key reads a thousand entries, which on the event
        # loop held every other request (health checks went from 1 ms to 266 ms).
        uuids, next_from = await run_in_threadpool(self._search_page, kind, value, start)
        headers = {}
        if next_from is not None:
            headers["Link"] = f'</api/v1/index/retrieve?from={next_from}>; rel="next"'
        return JSONResponse(uuids, headers=headers)

    def _search_page(self, kind: str, value: str, start: int) -> tuple[list[str], int | None]:
        """UUIDs of the entries filed under (kind, value) from global index ``start`` on, in
        index order, and the global index the next page starts at (None: no more).

        At most MAX_SEARCH_RESULTS, and cut short after SEARCH_SECONDS.
        """
        deadline = time.monotonic() + SEARCH_SECONDS
        uuids: list[str] = []
        last = -1
        for service in sorted(self.shards, key=lambda s: s.index_offset):
            local_start = max(0, start - service.index_offset)
            wanted = MAX_SEARCH_RESULTS - len(uuids)
            for index in service.engine.search(kind, value, wanted, start=local_start):
                # At least one result a page, so that following the links always ends.
                if uuids and time.monotonic() > deadline:
                    return uuids, service.index_offset + index
                uuids.append(service.engine.entry(index).leaf_hash.hex())
                last = service.index_offset + index
            if len(uuids) >= MAX_SEARCH_RESULTS:
                return uuids, last + 1
        return uuids, None

    def routes(self) -> list[Route]:
        return [
            Route("/api/v1/log/entries", self.create, methods=["POST"]),
            Route("/api/v1/log/entries", self.get_by_index, methods=["GET"]),
            Route("/api/v1/log/entries/retrieve", self.retrieve, methods=["POST"]),
            Route("/api/v1/log/entries/{entry_id}", self.get_by_id, methods=["GET"]),
            Route("/api/v1/log", self.log_info, methods=["GET"]),
            Route("/api/v1/log/proof", self.proof, methods=["GET"]),
            Route("/api/v1/log/publicKey", self.public_key, methods=["GET"]),
            Route("/api/v1/index/retrieve", self.index_retrieve, methods=["POST"]),
        ]


def _tree_head(checkpoint: Any) -> dict[str, Any]:
    """SPEC: Rekor v1 LogInfo fields for one tree."""
    return {"rootHash": checkpoint.root_hash.hex(), "treeSize": checkpoint.size,
            "signedTreeHead": checkpoint.note}


def _int_param(params: Mapping[str, str], name: str, *, default: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not is_decimal(raw):
        raise ApiError(400, "BAD_REQUEST", f"{name} must be a non-negative integer")
    return int(raw)


def _search_query_v1(query: object) -> tuple[str, str]:
    """SPEC: Rekor v1 SearchIndex: {"hash": "sha256:<hex>"} | {"email"} | {"publicKey"}.

    sealtrail also accepts {"identity": <any certificate SAN>}.
    """
    if not isinstance(query, dict):
        raise ApiError(400, "BAD_REQUEST", "search expects a JSON object")
    if isinstance(query.get("hash"), str):
        algorithm, _, digest = query["hash"].lower().rpartition(":")
        if algorithm not in ("", "sha256") or len(digest) != 64 or \
                any(c not in "0123456789abcdef" for c in digest):
            raise ApiError(400, "BAD_REQUEST", "hash must be sha256:<64 hex digits>")
        return "sha256", digest
    if isinstance(query.get("email"), str):
        return "identity", query["email"]
    if isinstance(query.get("identity"), str):
        return "identity", query["identity"]
    key = query.get("publicKey")
    if isinstance(key, dict) and isinstance(key.get("content"), str):
        try:
            pem_or_der = base64.b64decode(key["content"], validate=True)
        except ValueError:
            raise ApiError(400, "BAD_REQUEST", "publicKey.content must be base64") from None
        return "key", _key_fingerprint(pem_or_der)
    raise ApiError(400, "BAD_REQUEST", "give hash, email, identity or publicKey")


def _key_fingerprint(pem_or_der: bytes) -> str:
    from cryptography import x509

    from sealtrail.errors import KeyMalformedError

    try:
        if b"-----BEGIN CERTIFICATE-----" in pem_or_der:
            key = PublicKey.from_key(x509.load_pem_x509_certificate(pem_or_der).public_key())
        elif pem_or_der.startswith(b"-----"):
            key = PublicKey.from_pem(pem_or_der)
        else:
            key = PublicKey.from_spki_der(pem_or_der)
    except (KeyMalformedError, ValueError) as exc:
        raise ApiError(400, "BAD_REQUEST", "publicKey does not parse") from exc
    return key.key_id.hex()


# -- Rekor v2 and tiles ---------------------------------------------------------------------

class _V2:
    """Handlers of one Rekor v2 log: the write API, tile reads and search."""

    def __init__(self, service: LogService) -> None:
        self.service = service

    def entry_json(self, entry: CanonicalEntry, index: int) -> dict[str, Any]:
        engine = self.service.engine
        checkpoint = engine.latest_checkpoint()
        proof = engine.inclusion_proof(index, checkpoint.size)
        # SPEC: rekor-tiles returns TransparencyLogEntry with EmitUnpopulated: int64 as
        # strings, bytes as base64, inclusionPromise null, integratedTime "0".
        return {
            "logIndex": str(index),
            "logId": {"keyId": _b64(self.service.log_id)},
            "kindVersion": {"kind": entry.kind, "version": entry.api_version},
            "integratedTime": "0",
            "inclusionPromise": None,
            "inclusionProof": {
                "logIndex": str(index),
                "rootHash": _b64(checkpoint.root_hash),
                "treeSize": str(checkpoint.size),
                "hashes": [_b64(h) for h in proof],
                "checkpoint": {"envelope": checkpoint.note},
            },
            "canonicalizedBody": _b64(entry.body),
        }

    async def create(self, request: Request) -> Response:
        if self.service.frozen:
            raise LogFrozenError("this log is frozen and accepts no entries")
        entry = canonicalize_v2(await read_json(request), trusted=self.service.trusted)
        engine = self.service.engine
        result = await engine.add(entry.body, entry.search_keys)
        if result.duplicate:
            raise ApiError(409, "ALREADY_EXISTS",
                           f"an equivalent entry already exists at index {result.index}",
                           headers={"x-log-index": str(result.index)})
        await engine.wait_for_checkpoint(result.index, CHECKPOINT_WAIT_SECONDS)
        return JSONResponse(self.entry_json(entry, result.index), status_code=201)

    async def checkpoint(self, request: Request) -> Response:
        note = self.service.engine.latest_checkpoint().note
        return PlainTextResponse(note, headers={"Cache-Control": CHECKPOINT_CACHE})

    async def tile(self, request: Request) -> Response:
        try:
            ref = parse_tile_path("tile/" + request.path_params["path"])
        except InputError as exc:
            raise ApiError(404, "NOT_FOUND", exc.diagnostics()) from None
        engine = self.service.engine
        data = (engine.read_entry_bundle(ref.index, ref.width) if ref.level is None
                else engine.read_tile(ref.level, ref.index, ref.width))
        # SPEC: C2SP tlog-tiles: full tiles never change, so caches may keep them forever.
        cache = PARTIAL_TILE_CACHE if ref.is_partial else FULL_TILE_CACHE
        return Response(data, media_type="application/octet-stream",
                        headers={"Cache-Control": cache})

    async def search(self, request: Request) -> Response:
        params = request.query_params
        kinds = [k for k in ("sha256", "identity", "key") if k in params]
        if len(kinds) != 1:
            raise ApiError(400, "BAD_REQUEST", "give exactly one of sha256, identity or key")
        value = params[kinds[0]]
        if kinds[0] in ("sha256", "key"):
            value = value.lower()
            if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
                raise ApiError(400, "BAD_REQUEST", f"{kinds[0]} must be 64 hex digits")
        start = _int_param(params, "from", default=0)
        # One range scan of an index, bounded by the page size; still off the event loop,
        # which must not wait for the disk.
        indexes = await run_in_threadpool(self.service.engine.search, kinds[0], value,
                                          MAX_SEARCH_RESULTS, start=start)
        answer: dict[str, Any] = {"logIndexes": [str(i) for i in indexes]}
        headers = {}
        if len(indexes) == MAX_SEARCH_RESULTS:  # a full page: there may be more
            answer["next"] = str(indexes[-1] + 1)
            query = urlencode({kinds[0]: value, "from": answer["next"]})
            headers["Link"] = f'<{request.url.path}?{query}>; rel="next"'
        return JSONResponse(answer, headers=headers)

    def routes(self) -> list[Route]:
        prefix = f"/logs/{self.service.name}"
        return [
            Route(prefix + "/api/v2/log/entries", self.create, methods=["POST"]),
            Route(prefix + "/api/v2/log/search", self.search, methods=["GET"]),
            Route(prefix + "/checkpoint", self.checkpoint, methods=["GET"]),
            Route(prefix + "/tile/{path:path}", self.tile, methods=["GET"]),
        ]


def issued_by(issuers: Sequence[x509.Certificate]) -> IssuerCheck:
    """Whether a certificate was signed by one of ``issuers`` (the CA served beside the log).

    Real Rekor files an entry under whatever its certificate names (it has no CA of its
    own to ask: rekor pkg/pki/x509 ``Subjects`` reads the SANs unchecked), so anyone could
    file entries under someone else's identity with a certificate they made themselves. A
    sealtrail instance serves its CA and its log together; its log files an entry under a
    certificate's identity and issuer only if that CA issued the certificate (the chain is
    checked, not the validity period: the leaf signed at the time, which the log's own
    integrated time records). Other entries remain findable by digest and by key.
    Results are memoised by certificate (a signing run logs many entries under one).
    """
    chosen = tuple(issuers)
    memo: BoundedMemo[bytes, bool] = BoundedMemo(256)

    def trusted(certificate: x509.Certificate) -> bool:
        fingerprint = certificate.fingerprint(hashes.SHA256())
        found = memo.get(fingerprint)
        if found is None:
            found = any(_directly_issued(certificate, issuer) for issuer in chosen)
            memo.put(fingerprint, found)
        return found

    return trusted


def _directly_issued(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        # Another issuer's name, key type or signature: not ours, and not the request's
        # fault (the entry is still logged, filed by digest and key).
        return False
    return True


async def _health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def log_routes(services: list[LogService],
               identity_issuers: Sequence[x509.Certificate] = ()) -> list[Route]:
    """The routes serving ``services``: at most one active (unfrozen) Rekor v1 log.

    ``identity_issuers``: the certificates of the CA served beside the logs; when given,
    entries are filed under a certificate's identity only if the certificate comes from
    them (:func:`issued_by`).
    """
    if identity_issuers:
        check = issued_by(identity_issuers)
        for service in services:
            service.trusted = check
    routes: list[Route] = []
    v1 = [s for s in services if s.api_version == 1]
    if v1:
        active = [s for s in v1 if not s.frozen]
        if len(active) > 1:
            raise ValueError("at most one active Rekor v1 log per process")
        head = active[0] if active else v1[0]
        routes += _V1(head, [s for s in v1 if s is not head]).routes()
    for service in services:
        if service.api_version == 2:
            routes += _V2(service).routes()
    return routes


def build_log_app(services: list[LogService]) -> Starlette:
    """An ASGI app serving only ``services`` (``sealtrail log serve``).

    On shutdown every engine is closed gracefully (its in-flight batch is finished).
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            for service in services:
                service.engine.close()

    routes = [Route("/healthz", _health, methods=["GET"]), *log_routes(services)]
    return Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan)
