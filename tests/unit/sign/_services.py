"""In-memory signing services behind the HTTP client's fake transport, for signer unit tests.

``FakeServices`` answers the requests a signer sends, as the real services would:

- CA (``POST https://ca.fake.test/api/v2/signingCert``): checks the bearer token and the CSR
  self-signature, issues a Fulcio-profile leaf with ``tests.fakes.ca.FakeCA``;
- TSA (``POST https://tsa.fake.test/api/v1/timestamp``): parses the DER request and answers
  with a ``tests.fakes.tsa.FakeTSA`` token over the requested imprint, echoing the nonce;
- Rekor v1 and v2 (``tests.fakes.instance.FakeRekor``): the request is canonicalised by the
  log's own ``sealtrail.log.entries`` (which also checks the signature), then logged. The
  Rekor v2 log also serves its signed ``checkpoint`` and C2SP tlog-tiles (hash tiles and
  entry bundles), answers a resubmitted entry with 409 and its index in ``x-log-index``
  (as rekor-tiles does), and can lose answers (``lose_rekor2``: the entry is logged, then the
  connection drops before the answer), which is what sends the signer to recover the entry
  from the tiles.

Knobs break one answer each (``ca_knobs`` for the leaf, ``ca_key`` to certify another key,
``tsa_knobs`` for the token, ``tamper_entry`` for the log entry, ``fail`` for statuses,
``tamper_tile`` for served tiles, ``conflict_index`` for the index a 409 names), and
``requests`` records every request so tests can assert what was (not) sent.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import jwt
from asn1crypto import tsp
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sealtrail.log.entries import canonicalize_v1, canonicalize_v2
from sealtrail.merkle.tiles import TILE_HEIGHT, encode_entry_bundle, encode_tile, parse_tile_path
from sealtrail.merkle.tree import compute_root
from sealtrail.net.http import HttpClient, HttpRequest, HttpResponse, http_client
from tests.fakes.http import respond
from tests.fakes.instance import FakeInstance, FakeRekor

CA_URL = "https://ca.fake.test"
TSA_URL = "https://tsa.fake.test/api/v1/timestamp"
ISSUER = "https://issuer.fake.test"
IDENTITY = "signer@example.com"


def make_token(*, email: str = IDENTITY, issuer: str = ISSUER, lifetime: int = 600,
               key: Any = None) -> str:
    """An identity token (its signature is not checked by the fake CA nor by the client)."""
    now = int(time.time())
    return jwt.encode({"iss": issuer, "sub": "subject-1", "aud": "sigstore", "email": email,
                       "email_verified": True, "iat": now, "nbf": now, "exp": now + lifetime},
                      key or ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# Entry-bundle stand-in for the log's other entries (fillers), whose bodies the fake log
# does not keep: recovery only ever reads the body of its own entry, and the inclusion proof
# (from the real leaf hashes) is what binds that body to the log.
OTHER_ENTRY = b'{"other":"entry"}'


class FakeServices:
    """CA + TSA + Rekor v1/v2 answering through the HTTP client's fake transport."""

    def __init__(self, instance: FakeInstance) -> None:
        self.instance = instance
        self.requests: list[tuple[str, HttpRequest]] = []
        self.ca_knobs: dict[str, Any] = {}
        self.ca_key: Any = None  # certify this public key instead of the CSR's
        self.tsa_knobs: dict[str, Any] = {}
        self.tamper_entry: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self.fail: dict[str, int] = {}  # service (or "tiles") -> HTTP status to answer with
        self.tokens: list[str] = []
        self.lose_rekor2 = 0  # this many Rekor v2 answers are lost after the entry is logged
        self.conflict_index: Callable[[int], int] | None = None  # the index a 409 names
        self.tamper_tile: Callable[[str, bytes], bytes] | None = None  # (path, data) -> data
        # Rekor v2 entries logged through these services: index -> body, body -> index.
        self.v2_bodies: dict[int, bytes] = {}
        self.v2_index: dict[bytes, int] = {}

    # -- documents -------------------------------------------------------------------------
    def signing_config(self, *, rekor_versions: tuple[int, ...] = (1, 2),
                       tsa: bool = True) -> dict[str, Any]:
        start = {"start": "2020-01-01T00:00:00Z"}
        urls = {1: self.instance.rekor_v1.base_url, 2: self.instance.rekor_v2.base_url}
        return {
            "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
            "caUrls": [{"url": CA_URL, "majorApiVersion": 1, "validFor": start, "operator": "fake"}],
            "oidcUrls": [],
            "rekorTlogUrls": [{"url": urls[v], "majorApiVersion": v, "validFor": start,
                               "operator": "fake"} for v in rekor_versions],
            "tsaUrls": ([{"url": TSA_URL, "majorApiVersion": 1, "validFor": start,
                          "operator": "fake"}] if tsa else []),
            "rekorTlogConfig": {"selector": "ANY"},
            "tsaConfig": {"selector": "ANY"},
        }

    def trust_config(self, **knobs: Any) -> bytes:
        return json.dumps({
            "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
            "trustedRoot": self.instance.trusted_root_json(),
            "signingConfig": self.signing_config(**knobs),
        }).encode()

    def client(self) -> HttpClient:
        return http_client(transport=self.handle, sleep=lambda _: None)

    def sent(self, service: str) -> int:
        return sum(1 for name, _ in self.requests if name == service)

    # -- routing ---------------------------------------------------------------------------
    def handle(self, request: HttpRequest) -> HttpResponse:
        url = request.url
        v2 = self.instance.rekor_v2.base_url
        if request.method == "GET" and url.startswith(v2 + "/"):
            self.requests.append(("rekor2-read", request))
            path = url[len(v2) + 1:]
            if path.startswith("tile/") and "tiles" in self.fail:
                return respond(self.fail["tiles"], text="tiles failing")
            return self._rekor2_read(path)
        if url == CA_URL + "/api/v2/signingCert":
            service, answer = "ca", self._ca
        elif url == TSA_URL:
            service, answer = "tsa", self._tsa
        elif url == self.instance.rekor_v1.base_url + "/api/v1/log/entries":
            service, answer = "rekor1", self._rekor1
        elif url == self.instance.rekor_v2.base_url + "/api/v2/log/entries":
            service, answer = "rekor2", self._rekor2
        else:
            return respond(404, json={"code": 404, "message": "no such endpoint"})
        self.requests.append((service, request))
        if service in self.fail:
            status = self.fail[service]
            return respond(status, json={"code": status, "message": f"{service} failing"})
        return answer(request)

    @staticmethod
    def _now() -> datetime:
        return datetime.now(timezone.utc).replace(microsecond=0)

    def _ca(self, request: HttpRequest) -> HttpResponse:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return respond(401, json={"code": 16, "message": "no token"})
        self.tokens.append(auth[7:])
        body = json.loads(request.body)
        csr = x509.load_pem_x509_csr(base64.b64decode(body["certificateSigningRequest"]))
        if not csr.is_signature_valid:
            return respond(400, json={"code": 3, "message": "bad proof of possession"})
        key = self.ca_key or csr.public_key()
        options = {"identity": IDENTITY, "san_kind": "email", "issuer": ISSUER, **self.ca_knobs}
        leaf = self.instance.ca.issue_leaf(key, not_before=self._now() - timedelta(seconds=1),
                                           **options)
        chain = [leaf, *self.instance.ca.chain]
        pems = [c.public_bytes(serialization.Encoding.PEM).decode() for c in chain]
        return respond(201, json={"signedCertificateEmbeddedSct": {
            "chain": {"certificates": pems}}})

    def _tsa(self, request: HttpRequest) -> HttpResponse:
        parsed = tsp.TimeStampReq.load(request.body)
        imprint = parsed["message_imprint"]["hashed_message"].native
        nonce = parsed["nonce"].native
        knobs = dict(self.tsa_knobs)
        nonce = knobs.pop("nonce", nonce)
        status = knobs.pop("status", "granted")
        imprint = knobs.pop("imprint", imprint)

        def set_imprint(tst: tsp.TSTInfo) -> None:
            tst["message_imprint"] = {"hash_algorithm": {"algorithm": "sha256"},
                                      "hashed_message": imprint}

        reply = self.instance.tsa.response(b"", status=status, nonce=nonce, gen_time=self._now(),
                                           embed_certs=True, mutate_tst=set_imprint, **knobs)
        return respond(200, content=reply,
                              headers={"Content-Type": "application/timestamp-reply"})

    def _entry(self, rekor: FakeRekor, body: bytes, kind: str, version: str) -> dict[str, Any]:
        entry = rekor.entry_json(body, kind, version, int(self._now().timestamp()))
        return self.tamper_entry(entry) if self.tamper_entry else entry

    def _rekor1(self, request: HttpRequest) -> HttpResponse:
        canonical = canonicalize_v1(json.loads(request.body))
        entry = self._entry(self.instance.rekor_v1, canonical.body, canonical.kind,
                            canonical.api_version)
        proof = entry["inclusionProof"]

        def hexed(value: str) -> str:
            return base64.b64decode(value).hex()

        # SPEC: sigstore-wire.md §3 LogEntry: hex ids and hashes, int64 as numbers.
        return respond(201, json={"a" * 64: {
            "body": entry["canonicalizedBody"],
            "integratedTime": int(entry["integratedTime"]),
            "logID": hexed(entry["logId"]["keyId"]),
            "logIndex": int(entry["logIndex"]),
            "verification": {
                "inclusionProof": {"logIndex": int(proof["logIndex"]),
                                   "rootHash": hexed(proof["rootHash"]),
                                   "treeSize": int(proof["treeSize"]),
                                   "hashes": [hexed(h) for h in proof["hashes"]],
                                   "checkpoint": proof["checkpoint"]["envelope"]},
                "signedEntryTimestamp": entry["inclusionPromise"]["signedEntryTimestamp"]}}})

    def _rekor2(self, request: HttpRequest) -> HttpResponse:
        canonical = canonicalize_v2(json.loads(request.body))
        known = self.v2_index.get(canonical.body)
        if known is not None:
            # rekor-tiles: a duplicate is refused with 409 and the existing entry's index.
            named = self.conflict_index(known) if self.conflict_index else known
            return respond(409, json={"code": 409, "message": "an equivalent entry already "
                                      "exists in the transparency log"},
                           headers={"X-Log-Index": str(named)})
        entry = self._entry(self.instance.rekor_v2, canonical.body, canonical.kind,
                            canonical.api_version)
        index = int(entry["logIndex"])
        self.v2_bodies[index] = canonical.body
        self.v2_index[canonical.body] = index
        if self.lose_rekor2:
            # Logged, but the answer never reaches the client (a dropped connection).
            self.lose_rekor2 -= 1
            raise ConnectionResetError(104, "Connection reset by peer")
        # SPEC: sigstore-wire.md §4: EmitUnpopulated: integratedTime "0", promise null.
        return respond(201, json={**entry, "integratedTime": "0", "inclusionPromise": None})

    def _rekor2_read(self, path: str) -> HttpResponse:
        """``GET <log>/checkpoint`` and ``GET <log>/tile/...`` (SPEC: C2SP tlog-tiles)."""
        rekor = self.instance.rekor_v2
        leaves = list(rekor.leaves)
        if path == "checkpoint":
            note = rekor.checkpoint(len(leaves), compute_root(leaves))
            return respond(200, content=note.encode(), headers={"Content-Type": "text/plain"})
        try:
            ref = parse_tile_path(path)
        except Exception:  # noqa: BLE001 - anything unparsable is simply not there
            return respond(404, text="not found")
        first = ref.index * 256
        if ref.level is None:
            width = ref.width or 256
            if first + width > len(leaves):
                return respond(404, text="not found")
            data = encode_entry_bundle([self.v2_bodies.get(i, OTHER_ENTRY)
                                        for i in range(first, first + width)])
        else:
            span = 1 << (TILE_HEIGHT * ref.level)  # leaves under one hash of this level
            width = ref.width or 256
            if (first + width) * span > len(leaves):
                return respond(404, text="not found")
            data = encode_tile([compute_root(leaves[i * span:(i + 1) * span])
                                for i in range(first, first + width)])
        if self.tamper_tile is not None:
            data = self.tamper_tile(path, data)
        return respond(200, content=data)
