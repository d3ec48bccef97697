"""Log search over HTTP, in-process: pages with links to the next, a time bound, and (on an
instance) identities only from certificates the instance's CA issued (issue 13, E)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette

from sealtrail.server import log_api
from sealtrail.server.instance import Instance
from sealtrail.server.log_api import MAX_SEARCH_RESULTS, build_log_app
from sealtrail.server.log_instance import LogDirectory
from tests.fakes.ca import FakeCA
from tests.unit.server._lifespan import running_instance_app

POPULAR = "popular@example.com"
PAGE = MAX_SEARCH_RESULTS


def call(app: Starlette, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, **kwargs)
    return asyncio.run(go())


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Starlette, list[str],
                                                                        list[int]]]:
    """A log directory whose v1 and v2 logs each hold PAGE + 5 entries under POPULAR (and
    a few under other names in between), with the v1 UUIDs and v2 indexes in order."""
    directory = LogDirectory(str(tmp_path_factory.mktemp("logs")))
    directory.create("log.example")
    services = directory.open()
    uuids: list[str] = []
    indexes: list[int] = []
    try:
        for service in services:
            engine = service.engine
            futures = []
            for number in range(PAGE + 10):
                who = POPULAR if number % 200 != 7 else f"other{number}@example.com"
                futures.append((who, engine.submit(b"entry %d" % number, [("identity", who)])))
            results = [(who, future.result(60)) for who, future in futures]
            engine.wait_blocking(max(result.index for _, result in results), 60)
            for who, result in results:
                if who != POPULAR:
                    continue
                if service.api_version == 1:
                    uuids.append(engine.entry(result.index).leaf_hash.hex())
                else:
                    indexes.append(result.index)
        yield build_log_app(services), uuids, indexes
    finally:
        for service in services:
            service.engine.close()


def test_rekor_v1_search_answers_a_page_and_links_the_next(populated: Any) -> None:
    app, uuids, _ = populated
    assert len(uuids) > PAGE
    first = call(app, "POST", "/api/v1/index/retrieve", json={"email": POPULAR})
    assert first.status_code == 200
    assert first.json() == uuids[:PAGE]  # still the plain array Rekor v1 clients read
    link = first.headers["link"]
    assert link.endswith('>; rel="next"') and "/api/v1/index/retrieve?from=" in link
    rest = call(app, "POST", link[1:link.index(">")], json={"email": POPULAR})
    assert rest.status_code == 200 and rest.json() == uuids[PAGE:]
    assert "link" not in rest.headers


def test_rekor_v2_search_answers_a_page_and_names_the_next(populated: Any) -> None:
    app, _, indexes = populated
    first = call(app, "GET", "/logs/log1/api/v2/log/search", params={"identity": POPULAR})
    assert first.status_code == 200
    page = first.json()
    assert page["logIndexes"] == [str(i) for i in indexes[:PAGE]]
    assert page["next"] == str(indexes[PAGE - 1] + 1)
    rest = call(app, "GET", "/logs/log1/api/v2/log/search",
                params={"identity": POPULAR, "from": page["next"]}).json()
    assert rest == {"logIndexes": [str(i) for i in indexes[PAGE:]]}


def test_a_slow_search_is_cut_short_with_a_link_to_the_rest(
        populated: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    app, uuids, _ = populated
    monkeypatch.setattr(log_api, "SEARCH_SECONDS", 0.0)
    seen: list[str] = []
    path = "/api/v1/index/retrieve"
    for _ in range(3):
        answer = call(app, "POST", path, json={"email": POPULAR})
        # Out of time at once: one result a page, so following the links still ends.
        assert len(answer.json()) == 1
        seen += answer.json()
        path = answer.headers["link"][1:answer.headers["link"].index(">")]
    assert seen == uuids[:3]


@pytest.mark.parametrize("start", ["-1", "\u0661", "1.5", "x"])
def test_a_bad_page_start_is_a_400(populated: Any, start: str) -> None:
    app, _, _ = populated
    answer = call(app, "POST", f"/api/v1/index/retrieve?from={start}", json={"email": POPULAR})
    assert answer.status_code == 400 and answer.json()["reason"] == "BAD_REQUEST"
    answer = call(app, "GET", "/logs/log1/api/v2/log/search",
                  params={"identity": POPULAR, "from": start})
    assert answer.status_code == 400


def test_search_runs_off_the_event_loop(populated: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The work of a search page happens in a worker thread, not on the loop's thread.
    import threading

    app, _, _ = populated
    threads: list[threading.Thread] = []
    original = log_api._V1._search_page

    def spy(self: Any, *args: Any) -> Any:
        threads.append(threading.current_thread())
        return original(self, *args)

    monkeypatch.setattr(log_api._V1, "_search_page", spy)
    loop_thread: list[threading.Thread] = []

    async def go() -> None:
        loop_thread.append(threading.current_thread())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            await client.post("/api/v1/index/retrieve", json={"email": POPULAR})

    asyncio.run(go())
    assert threads and threads[0] is not loop_thread[0]


# -- identities on an instance --------------------------------------------------------------

IDENTITY = "someone@example.com"


def _hashedrekord(key: ec.EllipticCurvePrivateKey, pem: bytes, artifact: bytes) -> dict[str, Any]:
    signature = key.sign(artifact, ec.ECDSA(hashes.SHA256()))
    return {"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
        "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(artifact).hexdigest()}},
        "signature": {"content": base64.b64encode(signature).decode(),
                      "publicKey": {"content": base64.b64encode(pem).decode()}}}}


@pytest.fixture
def instance_app(tmp_path: Path) -> Iterator[tuple[Instance, Starlette]]:
    with running_instance_app(str(tmp_path / "instance")) as running:
        yield running


def test_an_instance_files_entries_under_identities_its_ca_issued_only(
        instance_app: tuple[Instance, Starlette]) -> None:
    instance, app = instance_app
    # A certificate from the instance's own CA, as `sign` gets one.
    ours = ec.generate_private_key(ec.SECP256R1())
    token = instance.builtin_issuer("email").mint_email(IDENTITY)
    answer = call(app, "POST", "/api/v2/signingCert", json={
        "credentials": {"oidcIdentityToken": token},
        "publicKeyRequest": {
            "publicKey": {"algorithm": "ECDSA", "content": ours.public_key().public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo).decode()},
            "proofOfPossession": base64.b64encode(
                ours.sign(IDENTITY.encode(), ec.ECDSA(hashes.SHA256()))).decode()}})
    assert answer.status_code == 200, answer.text
    our_pem = answer.json()["signedCertificateEmbeddedSct"]["chain"]["certificates"][0].encode()
    # A certificate anyone can make, naming the same identity.
    theirs = ec.generate_private_key(ec.SECP256R1())
    their_cert = FakeCA().issue_leaf(
        theirs.public_key(), not_before=datetime.now(UTC) - timedelta(seconds=30),
        identity=IDENTITY, issuer=instance.config().oidc_url)
    their_pem = their_cert.public_bytes(serialization.Encoding.PEM)

    logged = {}
    for name, key, pem in (("ours", ours, our_pem), ("theirs", theirs, their_pem)):
        created = call(app, "POST", "/api/v1/log/entries",
                       json=_hashedrekord(key, pem, f"artifact {name}".encode()))
        assert created.status_code == 201, created.text
        logged[name] = next(iter(created.json()))[16:]  # the UUID after the tree id

    found = call(app, "POST", "/api/v1/index/retrieve", json={"email": IDENTITY}).json()
    assert found == [logged["ours"]]
    # The other entry is still found by what it logged: its artifact's digest.
    digest = hashlib.sha256(b"artifact theirs").hexdigest()
    assert call(app, "POST", "/api/v1/index/retrieve",
                json={"hash": f"sha256:{digest}"}).json() == [logged["theirs"]]


def test_a_log_served_alone_files_every_certificate_as_rekor_does(populated: Any) -> None:
    # No CA beside it: nothing to check against, so identities are filed as named.
    from sealtrail.log.entries import canonicalize_v1

    key = ec.generate_private_key(ec.SECP256R1())
    cert = FakeCA().issue_leaf(key.public_key(),
                               not_before=datetime.now(UTC) - timedelta(seconds=30),
                               identity=IDENTITY, issuer="https://issuer.example")
    request = _hashedrekord(key, cert.public_bytes(serialization.Encoding.PEM), b"x")
    assert ("identity", IDENTITY) in canonicalize_v1(request).search_keys
    refused = canonicalize_v1(json.loads(json.dumps(request)), trusted=lambda c: False)
    assert ("identity", IDENTITY) not in refused.search_keys
    assert ("issuer", "https://issuer.example") not in refused.search_keys
    assert any(kind == "key" for kind, _ in refused.search_keys)
