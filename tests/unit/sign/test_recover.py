"""The signer's answer to a lost Rekor v2 answer: 409 on the retry, then the entry rebuilt
from the log's checkpoint and tiles (``Signer._create_entry`` -> ``recover_v2_entry``).

The fake log logs the entry, drops the connection before answering (``lose_rekor2``), and
answers the client's retry with 409 and the index, as rekor-tiles does. Whatever the log
then serves is untrusted: a recovered entry must verify like any other, and a tampered tile
or a wrong index must fail with the error class of the check it breaks.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, Iterator

import pytest

from sealtrail.errors import (
    LogEntryInvalidError,
    LogError,
    TlogEntryMismatchError,
    TlogInclusionInvalidError,
)
from sealtrail.merkle.tiles import decode_entry_bundle, encode_entry_bundle
from sealtrail.models.trusted_root import TrustedRoot
from sealtrail.sign import Signer, SigningContext
from sealtrail.sign.recover import recover_v2_entry
from sealtrail.sign.statement import build_statement
from sealtrail.verify.policy import IdentityPolicy
from sealtrail.verify.verifier import Verifier
from tests.unit.sign._services import IDENTITY, ISSUER, FakeServices, make_token

POLICY = IdentityPolicy(identity=IDENTITY, issuer=ISSUER)


@pytest.fixture
def signer(services: FakeServices) -> Iterator[Signer]:
    context = SigningContext.from_trust_config(services.trust_config(), 2)
    with Signer(context, identity_token=make_token(), http=services.client()) as made:
        yield made


def verifier(services: FakeServices) -> Verifier:
    return Verifier(TrustedRoot.from_json(json.dumps(services.instance.trusted_root_json())))


def reads(services: FakeServices) -> list[str]:
    base = services.instance.rekor_v2.base_url + "/"
    return [r.url[len(base):] for name, r in services.requests if name == "rekor2-read"]


def test_lost_answer_is_recovered_from_the_tiles_and_verifies(services: FakeServices,
                                                              signer: Signer) -> None:
    signer.certificate()
    services.lose_rekor2 = 1
    digest = hashlib.sha256(b"recovered").digest()
    result = signer.sign_digest(digest, "recovered")
    # The first POST was logged but its answer lost; the retry got 409 with the index.
    assert services.sent("rekor2") == 2
    (index,) = services.v2_bodies.keys()
    entry = result.bundle["verificationMaterial"]["tlogEntries"][0]
    assert result.log_index == index and entry["logIndex"] == str(index)
    assert base64.b64decode(entry["canonicalizedBody"]) == services.v2_bodies[index]
    assert entry["integratedTime"] == "0" and "inclusionPromise" not in entry
    assert entry["kindVersion"] == {"kind": "hashedrekord", "version": "0.0.2"}
    # Read like a monitor reads a log: checkpoint, the entry bundle, the hash tiles.
    fetched = reads(services)
    assert fetched[0] == "checkpoint"
    assert any(p.startswith("tile/entries/") for p in fetched)
    assert any(p.startswith("tile/0/") for p in fetched)
    verified = verifier(services).verify_artifact(b"recovered", result.bundle, POLICY)
    assert verified.log_index == index and verified.identity == IDENTITY


def test_lost_answer_for_a_statement_is_recovered(services: FakeServices, signer: Signer) -> None:
    payload = build_statement([("a.bin", hashlib.sha256(b"a").digest())],
                              "https://slsa.dev/provenance/v1", {"builder": "ci"})
    services.lose_rekor2 = 1
    result = signer.sign_statement(payload)
    assert services.sent("rekor2") == 2
    verifier(services).verify_artifact(b"a", result.bundle, POLICY)


def flip_first_hash_tile(path: str, data: bytes) -> bytes:
    if path.startswith("tile/0/"):
        return bytes([data[0] ^ 1]) + data[1:]
    return data


def test_tampered_hash_tile_fails_the_inclusion_check(services: FakeServices,
                                                      signer: Signer) -> None:
    signer.certificate()
    services.lose_rekor2 = 1
    services.tamper_tile = flip_first_hash_tile
    with pytest.raises(TlogInclusionInvalidError, match="new bundle does not verify") as info:
        signer.sign_digest(hashlib.sha256(b"tampered tile").digest())
    assert info.value.code == "TLOG_INCLUSION_INVALID"


def test_tampered_entry_bundle_fails_the_inclusion_check(services: FakeServices,
                                                         signer: Signer) -> None:
    # Another real entry's body in place of ours: well-formed, but not the leaf the proof
    # and checkpoint commit to.
    other = signer.sign_digest(hashlib.sha256(b"earlier").digest())
    other_body = base64.b64decode(
        other.bundle["verificationMaterial"]["tlogEntries"][0]["canonicalizedBody"])

    def swap_ours(path: str, data: bytes) -> bytes:
        if not path.startswith("tile/entries/"):
            return data
        entries = decode_entry_bundle(data)
        ours = max(services.v2_bodies)  # the entry being recovered
        entries[ours % 256] = other_body
        return encode_entry_bundle(entries)

    services.lose_rekor2 = 1
    services.tamper_tile = swap_ours
    with pytest.raises(TlogInclusionInvalidError, match="new bundle does not verify"):
        signer.sign_digest(hashlib.sha256(b"swapped body").digest())


def test_wrong_index_recovers_another_entry_that_fails_verification(services: FakeServices,
                                                                    signer: Signer) -> None:
    earlier = signer.sign_digest(hashlib.sha256(b"first").digest())
    services.lose_rekor2 = 1
    # The log's 409 names another (genuinely logged) entry than ours.
    services.conflict_index = lambda _ours: earlier.log_index
    with pytest.raises(TlogEntryMismatchError) as info:
        signer.sign_digest(hashlib.sha256(b"second").digest())
    assert info.value.code == "TLOG_ENTRY_MISMATCH"


@pytest.mark.parametrize("point_at,message", [
    (lambda ours: ours + 10_000, "does not cover"),  # beyond the checkpoint
    (lambda ours: ours + 1, "not a log entry body"),  # another client's entry (filler)
])
def test_wrong_index_without_our_entry_is_a_log_error(services: FakeServices, signer: Signer,
                                                      point_at: Any, message: str) -> None:
    signer.certificate()
    services.lose_rekor2 = 1
    services.conflict_index = point_at
    with pytest.raises(LogError, match=message):
        signer.sign_digest(hashlib.sha256(b"lost").digest())


@pytest.mark.parametrize("tamper,message", [
    (lambda path, data: data[:-1] if path.startswith("tile/entries/") else data,
     "malformed tile"),
    (lambda path, data: data + b"\0" * 32 if path.startswith("tile/0/") else data,
     "malformed tile"),
])
def test_malformed_tiles_are_log_errors(services: FakeServices, signer: Signer, tamper: Any,
                                        message: str) -> None:
    signer.certificate()
    services.lose_rekor2 = 1
    services.tamper_tile = tamper
    with pytest.raises(LogError, match=message):
        signer.sign_digest(hashlib.sha256(b"malformed").digest())


def test_log_without_the_tiles_is_a_log_error(services: FakeServices, signer: Signer) -> None:
    signer.certificate()
    services.lose_rekor2 = 1
    services.fail["tiles"] = 404
    with pytest.raises(LogError, match="has no tile/entries/"):
        signer.sign_digest(hashlib.sha256(b"no tiles").digest())


def test_409_without_an_index_is_reported(services: FakeServices, signer: Signer) -> None:
    signer.certificate()
    services.lose_rekor2 = 1
    services.conflict_index = lambda _ours: "somewhere"  # type: ignore[assignment,return-value]
    with pytest.raises(LogEntryInvalidError, match="already holds this entry"):
        signer.sign_digest(hashlib.sha256(b"no index").digest())


def test_recover_needs_the_log_in_the_trusted_root(services: FakeServices,
                                                   signer: Signer) -> None:
    index = signer.sign_digest(hashlib.sha256(b"listed").digest()).log_index
    root = TrustedRoot.from_json(json.dumps(services.instance.trusted_root_json()))
    unlisted = root.__class__.from_json(json.dumps({
        **services.instance.trusted_root_json(),
        "tlogs": [services.instance.rekor_v1.trusted_root_entry()]}))
    with services.client() as http:
        entry = recover_v2_entry(services.instance.rekor_v2.base_url, index, root, http)
        assert entry["logIndex"] == str(index)
        with pytest.raises(LogError, match="does not list the log"):
            recover_v2_entry(services.instance.rekor_v2.base_url, index, unlisted, http)
