"""provenance/vsa.py: verify-vsa's checks under slsa-verifier's error names, and the builder.

Every VSA here is crafted and signed in the test, with keys of each type verify-vsa takes
(P-256, P-384, P-521, Ed25519, RSA). Real VSAs (slsa-verifier's testdata) live on GitHub,
which this workplace cannot reach.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from sealtrail.crypto.keys import PublicKey
from sealtrail.errors import UsageError
from sealtrail.provenance import errors as names
from sealtrail.provenance.vsa import (
    VSAOptions,
    build_vsa_statement,
    dsse_key_id,
    parse_level,
    parse_subject_digest,
    policy_digest,
    slsa_build_level,
    verify_vsa_envelope,
)

DIGEST = "a" * 64
OTHER = "b" * 64
VERIFIER = "https://verifier.example/v1"
RESOURCE = "pkg:pypi/demo@1.0"
INTOTO = "application/vnd.in-toto+json"


def _keys() -> dict[str, Any]:
    return {
        "p256": ec.generate_private_key(ec.SECP256R1()),
        "p384": ec.generate_private_key(ec.SECP384R1()),
        "p521": ec.generate_private_key(ec.SECP521R1()),
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }


KEYS = _keys()
HASH_OF = {"p256": hashes.SHA256, "p384": hashes.SHA384, "p521": hashes.SHA512,
           "rsa": hashes.SHA256}


def pem_of(name: str) -> bytes:
    return KEYS[name].public_key().public_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def public(name: str) -> PublicKey:
    return PublicKey.from_key(KEYS[name].public_key())


def pae(payload_type: str, payload: bytes) -> bytes:
    return b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type.encode(), len(payload),
                                   payload)


def sign(name: str, data: bytes, hash_cls: Any = None) -> bytes:
    key = KEYS[name]
    if name == "ed25519":
        return key.sign(data)  # type: ignore[no-any-return]
    chosen = (hash_cls or HASH_OF[name])()
    if name == "rsa":
        return key.sign(data, padding.PKCS1v15(), chosen)  # type: ignore[no-any-return]
    return key.sign(data, ec.ECDSA(chosen))  # type: ignore[no-any-return]


def predicate(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "verifier": {"id": VERIFIER, "version": {"v": "1"}},
        "timeVerified": "2026-12-07T10:00:00Z",
        "resourceUri": RESOURCE,
        "policy": {"uri": "https://policy.example/p", "digest": {"sha256": "c" * 64}},
        "inputAttestations": [{"uri": "https://x.example/a.intoto.jsonl",
                               "digest": {"sha256": "d" * 64}}],
        "verificationResult": "PASSED",
        "verifiedLevels": ["SLSA_BUILD_LEVEL_3", "ACME_REVIEWED"],
        "dependencyLevels": {"SLSA_BUILD_LEVEL_1": 2},
        "slsaVersion": "1.0",
    }
    for key, value in changes.items():
        if value is DROP:
            body.pop(key, None)
        else:
            body[key] = value
    return body


DROP = object()


def statement(pred: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "demo.whl", "digest": {"sha256": DIGEST}},
                    {"name": "demo.tar.gz", "digest": {"sha256": OTHER, "sha512": "e" * 128}}],
        "predicateType": "https://slsa.dev/verification_summary/v1",
        "predicate": predicate() if pred is None else pred,
    }
    for key, value in changes.items():
        if value is DROP:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def envelope(body: Any = None, key: str = "p256", *, keyid: str | None = None,
             payload_type: str = INTOTO, raw: bytes | None = None,
             extra: list[dict[str, str]] | None = None) -> bytes:
    payload = raw if raw is not None else json.dumps(
        statement() if body is None else body).encode()
    sig = sign(key, pae(payload_type, payload))
    signatures = list(extra or [])
    signatures.append({"keyid": dsse_key_id(public(key)) if keyid is None else keyid,
                       "sig": base64.b64encode(sig).decode()})
    return json.dumps({"payloadType": payload_type,
                       "payload": base64.b64encode(payload).decode(),
                       "signatures": signatures}).encode()


def options(*digests: str, verifier: str = VERIFIER, resource: str = RESOURCE,
            levels: tuple[str, ...] = ()) -> VSAOptions:
    return VSAOptions(tuple(parse_subject_digest(d) for d in digests or (f"sha256:{DIGEST}",)),
                      verifier, resource, levels)


def fails(error: type[Exception], data: bytes, opts: VSAOptions | None = None,
          key: str = "p256", **kwargs: Any) -> str:
    with pytest.raises(error) as caught:
        verify_vsa_envelope(data, public(key), opts or options(), **kwargs)
    assert type(caught.value) is error, caught.value  # exactly that name, not a sibling
    return caught.value.diagnostics()  # type: ignore[attr-defined, no-any-return]


# -- signature ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(KEYS))
def test_each_key_type_verifies_a_good_vsa(key: str) -> None:
    verified = verify_vsa_envelope(envelope(key=key), public(key), options())
    assert verified.verifier_id == VERIFIER and verified.resource_uri == RESOURCE
    assert verified.key_id == dsse_key_id(public(key))
    assert verified.time_verified == datetime(2026, 12, 7, 10, tzinfo=timezone.utc)


@pytest.mark.parametrize("key,wrong", [("p256", hashes.SHA384), ("p384", hashes.SHA256),
                                       ("p521", hashes.SHA256), ("rsa", hashes.SHA512)])
def test_the_hash_follows_the_key_type(key: str, wrong: Any) -> None:
    # The same key signing the same PAE with another hash is not accepted.
    payload = json.dumps(statement()).encode()
    sig = sign(key, pae(INTOTO, payload), wrong)
    data = json.dumps({"payloadType": INTOTO, "payload": base64.b64encode(payload).decode(),
                       "signatures": [{"sig": base64.b64encode(sig).decode()}]}).encode()
    fails(names.ErrorNoValidSignature, data, key=key)


@pytest.mark.parametrize("key", sorted(KEYS))
def test_a_tampered_payload_has_no_valid_signature(key: str) -> None:
    data = json.loads(envelope(key=key))
    tampered = json.dumps(statement(predicate(resourceUri="pkg:pypi/evil@1.0"))).encode()
    data["payload"] = base64.b64encode(tampered).decode()
    fails(names.ErrorNoValidSignature, json.dumps(data).encode(), key=key)


def test_another_key_has_no_valid_signature() -> None:
    fails(names.ErrorNoValidSignature, envelope(key="p384", keyid=""), key="p256")


def test_signatures_naming_another_key_id_are_skipped() -> None:
    # A valid signature under a foreign keyid is not even tried...
    data = envelope(keyid="someone-else")
    assert "skipped" in fails(names.ErrorNoValidSignature, data)
    # ...unless --public-key-id names that id; and an empty keyid is always tried.
    assert verify_vsa_envelope(data, public("p256"), options(),
                               key_id="someone-else").key_id == "someone-else"
    verify_vsa_envelope(envelope(keyid=""), public("p256"), options())


def test_one_good_signature_among_others_suffices() -> None:
    bogus = {"keyid": "", "sig": base64.b64encode(b"\x30\x00").decode()}
    verify_vsa_envelope(envelope(extra=[bogus, {"keyid": "x", "sig": "AAAA"}]),
                        public("p256"), options())
    assert envelope(extra=[bogus]).count(b'"sig"') == 2


def test_no_signatures_at_all() -> None:
    data = json.loads(envelope())
    data["signatures"] = []
    fails(names.ErrorNoValidSignature, json.dumps(data).encode())


def test_default_key_id_is_sha256_of_the_spki_unpadded_base64() -> None:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32))).public_key()
    # openssl pkey -pubin -outform DER | openssl dgst -sha256 -binary | base64
    assert dsse_key_id(PublicKey.from_key(key)) == \
        "SHA256:oFCDfYUHBYLM9zlLCYiEfMMSy4glm4lImfbyOc8XkaU"


# -- payload ------------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [
    b"not json", b"[1, 2]", b'{"payloadType": 5, "payload": "", "signatures": []}',
    b'{"payloadType": "application/vnd.in-toto+json", "payload": "!!", "signatures": []}',
])
def test_an_unreadable_envelope_is_an_invalid_dsse_payload(data: bytes) -> None:
    fails(names.ErrorInvalidDssePayload, data)


@pytest.mark.parametrize("make", [
    lambda: envelope(payload_type="application/json"),
    lambda: envelope(raw=b"{not json"),
    lambda: envelope(raw=b'"a string"'),
    lambda: envelope(statement(_type="https://in-toto.io/Statement/v0.1")),
    lambda: envelope(statement(predicateType="https://slsa.dev/provenance/v1")),
    lambda: envelope(statement(predicate="PASSED")),
    lambda: envelope(statement(subject={"name": "x"})),
    lambda: envelope(statement(predicate(verifier={"id": 7}))),
    lambda: envelope(statement(predicate(resourceUri=["x"]))),
    lambda: envelope(statement(predicate(timeVerified="yesterday"))),
    lambda: envelope(statement(predicate(verifiedLevels="SLSA_BUILD_LEVEL_3"))),
    lambda: envelope(statement(predicate(policy={"uri": "u", "digest": {"sha256": 1}}))),
    lambda: envelope(statement(predicate(dependencyLevels={"SLSA_BUILD_LEVEL_1": -1}))),
    lambda: envelope(statement(predicate(verifiedLevels=["SLSA_BUILD_3"]))),
])
def test_a_payload_that_is_not_a_vsa_is_an_invalid_dsse_payload(make: Any) -> None:
    fails(names.ErrorInvalidDssePayload, make())


@pytest.mark.parametrize("pred,stmt", [
    (predicate(verifier={"id": ""}), {}),
    (predicate(verifier=DROP), {}),
    (predicate(resourceUri=DROP), {}),
    (predicate(resourceUri=""), {}),
    (predicate(policy=DROP), {}),
    (predicate(policy={"digest": {"sha256": "c" * 64}}), {}),
    (predicate(verificationResult=DROP), {}),
    (predicate(), {"subject": []}),
])
def test_missing_required_fields(pred: dict[str, Any], stmt: dict[str, Any]) -> None:
    fails(names.ErrorEmptyRequiredField, envelope(statement(pred, **stmt)))


def test_optional_fields_may_be_absent() -> None:
    bare = predicate(timeVerified=DROP, inputAttestations=DROP, dependencyLevels=DROP,
                     slsaVersion=DROP, verifiedLevels=DROP,
                     policy={"uri": "https://policy.example/p"},
                     verifier={"id": VERIFIER})
    verified = verify_vsa_envelope(envelope(statement(bare)), public("p256"), options())
    assert verified.time_verified is None and verified.verified_levels == ()


# -- expectations --------------------------------------------------------------------------------


def test_subject_digests_must_all_be_found() -> None:
    good = envelope()
    verify_vsa_envelope(good, public("p256"),
                        options(f"sha256:{DIGEST}", f"sha512:{'E' * 128}", f"sha256:{OTHER}"))
    fails(names.ErrorMissingSubjectDigest, good, options(f"sha256:{'f' * 64}"))
    fails(names.ErrorMissingSubjectDigest, good, options(f"sha256:{DIGEST}", f"sha1:{'a' * 40}"))
    # The algorithm is part of the match: the right value under another name is not found.
    fails(names.ErrorMissingSubjectDigest, good, options(f"sha512:{DIGEST}"))


def test_verifier_id_must_match() -> None:
    message = fails(names.ErrorMismatchVerifierID, envelope(),
                    options(verifier="https://other.example/v1"))
    assert VERIFIER in message


def test_resource_uri_must_match() -> None:
    fails(names.ErrorMismatchResourceURI, envelope(), options(resource="pkg:pypi/demo@2.0"))


@pytest.mark.parametrize("result", ["FAILED", "passed", "UNKNOWN"])
def test_verification_result_must_be_passed(result: str) -> None:
    fails(names.ErrorInvalidVerificationResult,
          envelope(statement(predicate(verificationResult=result))))


@pytest.mark.parametrize("wanted,ok", [
    (("SLSA_BUILD_LEVEL_3",), True),
    (("SLSA_BUILD_LEVEL_2",), True),  # levels are minimums
    (("SLSA_BUILD_LEVEL_0",), True),
    (("SLSA_BUILD_LEVEL_4",), False),
    (("SLSA_SOURCE_LEVEL_1",), False),  # a track the VSA does not cover
    (("ACME_REVIEWED",), True),  # other values: exact
    (("ACME_REVIEWED", "SLSA_BUILD_LEVEL_2"), True),
    (("ACME",), False),
    (("acme_reviewed",), False),
    (("SLSA_BUILD_LEVEL_UNEVALUATED",), False),
])
def test_verified_levels(wanted: tuple[str, ...], ok: bool) -> None:
    data = envelope()
    if ok:
        verify_vsa_envelope(data, public("p256"), options(levels=wanted))
    else:
        fails(names.ErrorMismatchVerifiedLevels, data, options(levels=wanted))


def test_the_highest_level_of_a_track_counts_and_unevaluated_matches_exactly() -> None:
    data = envelope(statement(predicate(verifiedLevels=[
        "SLSA_BUILD_LEVEL_1", "SLSA_BUILD_LEVEL_3", "SLSA_SOURCE_LEVEL_UNEVALUATED"])))
    verify_vsa_envelope(data, public("p256"), options(levels=("SLSA_BUILD_LEVEL_3",)))
    verify_vsa_envelope(data, public("p256"),
                        options(levels=("SLSA_SOURCE_LEVEL_UNEVALUATED",)))
    fails(names.ErrorMismatchVerifiedLevels, data, options(levels=("SLSA_SOURCE_LEVEL_1",)))


def test_checks_run_in_slsa_verifiers_order() -> None:
    # Everything wrong at once: the signature is reported first, then the payload, then
    # subject, verifier, resource, result, levels.
    bad = statement(predicate(verificationResult="FAILED", verifiedLevels=[]))
    all_wrong = options(f"sha256:{'f' * 64}", verifier="v", resource="r",
                        levels=("SLSA_BUILD_LEVEL_1",))
    fails(names.ErrorNoValidSignature, envelope(bad, key="p384", keyid=""), all_wrong)
    fails(names.ErrorMissingSubjectDigest, envelope(bad), all_wrong)
    fails(names.ErrorMismatchVerifierID, envelope(bad), all_wrong._replace(
        subject_digests=(("sha256", DIGEST),)))
    fails(names.ErrorMismatchResourceURI, envelope(bad), options(resource="r", levels=("X",)))
    fails(names.ErrorInvalidVerificationResult, envelope(bad), options(levels=("X",)))


def test_flag_parsing() -> None:
    assert parse_subject_digest("sha256:abc") == ("sha256", "abc")
    assert parse_subject_digest("gitCommit:a:b") == ("gitCommit", "a:b")
    for text in ("sha256", ":abc", "sha256:", ""):
        with pytest.raises(UsageError):
            parse_subject_digest(text)
    assert parse_level("SLSA_BUILD_LEVEL_2") == "SLSA_BUILD_LEVEL_2"
    assert parse_level("ACME") == "ACME"
    for text in ("SLSA_BUILD_2", "SLSA_BUILD_LEVEL_X", ""):
        with pytest.raises(UsageError):
            parse_level(text)


# -- the builder ---------------------------------------------------------------------------------

WHEN = datetime(2026, 12, 7, 18, 30, 5, 123456, tzinfo=timezone.utc)


def built(**changes: Any) -> bytes:
    arguments: dict[str, Any] = dict(
        subjects=[("demo.whl", {"sha256": DIGEST})], resource_uri=RESOURCE,
        policy_uri="urn:sealtrail:policy:verify-artifact",
        policy_description={"source_uri": "github.com/o/r", "builder_id": None},
        input_attestations=[{"name": "demo.intoto.jsonl", "digest": {"sha256": "d" * 64}}],
        verified_levels=["SLSA_BUILD_LEVEL_3"], time_verified=WHEN)
    arguments.update(changes)
    return build_vsa_statement(**arguments)


def test_a_built_vsa_verifies() -> None:
    payload = built()
    body = json.loads(payload)
    assert body["predicate"]["timeVerified"] == "2026-12-07T18:30:05Z"
    assert body["predicate"]["verifier"] == {"id": "pkg:pypi/sealtrail"}
    assert body["predicate"]["inputAttestations"][0]["digest"] == {"sha256": "d" * 64}
    for key in sorted(KEYS):
        verified = verify_vsa_envelope(envelope(raw=payload, key=key), public(key),
                                       options(verifier="pkg:pypi/sealtrail",
                                               levels=("SLSA_BUILD_LEVEL_2",)))
        assert verified.verified_levels == ("SLSA_BUILD_LEVEL_3",)


def test_policy_digest_is_sha256_of_the_rfc8785_form() -> None:
    description = {"b": [1.0, "é"], "a": None}
    canonical = '{"a":null,"b":[1,"é"]}'.encode()  # RFC 8785: sorted keys, 1.0 -> 1, UTF-8
    assert policy_digest(description) == hashlib.sha256(canonical).hexdigest()
    assert json.loads(built(policy_description=description))["predicate"]["policy"] == {
        "uri": "urn:sealtrail:policy:verify-artifact",
        "digest": {"sha256": hashlib.sha256(canonical).hexdigest()}}
    assert policy_digest({"a": 1}) != policy_digest({"a": 2})


@pytest.mark.parametrize("changes", [
    {"subjects": []}, {"subjects": [("x", {})]}, {"resource_uri": ""},
    {"policy_uri": ""}, {"verified_levels": ["SLSA_BUILD_3"]},
    {"time_verified": datetime(2026, 1, 1)}, {"policy_description": {"x": float("nan")}},
])
def test_the_builder_refuses_what_a_vsa_cannot_hold(changes: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        built(**changes)


@pytest.mark.parametrize("arguments,level", [
    ({"builder_id": "https://github.com/slsa-framework/slsa-github-generator/.github/"
                    "workflows/generator_generic_slsa3.yml@refs/tags/v2.1.0"},
     "SLSA_BUILD_LEVEL_3"),
    ({"github_hosted": True, "reusable_workflow": True}, "SLSA_BUILD_LEVEL_3"),
    ({"github_hosted": True}, "SLSA_BUILD_LEVEL_2"),
    ({"builder_id": "https://gitlab.com/x", "policy_level": "SLSA_BUILD_LEVEL_2"},
     "SLSA_BUILD_LEVEL_2"),
    ({"builder_id": "https://github.com/o/r/.github/workflows/b.yml@refs/tags/v1"},
     "SLSA_BUILD_LEVEL_1"),
])
def test_build_level_mapping(arguments: dict[str, Any], level: str) -> None:
    assert slsa_build_level(**arguments) == level


def test_public_pem_round_trip_for_every_key_type() -> None:
    # The CLI loads --public-key-path as PEM: each key type loads with its own hash.
    expected = {"p256": "sha256", "p384": "sha384", "p521": "sha512", "rsa": "sha256",
                "ed25519": None}
    for name, key in KEYS.items():
        pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        assert PublicKey.from_pem(pem).default_hash == expected[name]


VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "vsa"


def test_committed_vector() -> None:
    key = PublicKey.from_pem((VECTORS / "ed25519.pub").read_bytes())
    data = (VECTORS / "ed25519.vsa.json").read_bytes()
    wanted = VSAOptions(
        (("sha256", "5b5f2a6b4c6e8a1d2f3e4d5c6b7a8f9e0d1c2b3a4f5e6d7c8b9a0f1e2d3c4b5a"),),
        "https://verifier.example/vsa", "pkg:pypi/demo@1.0", ("SLSA_BUILD_LEVEL_1",))
    verified = verify_vsa_envelope(data, key, wanted)
    assert verified.key_id == "SHA256:oFCDfYUHBYLM9zlLCYiEfMMSy4glm4lImfbyOc8XkaU"
    with pytest.raises(names.ErrorMismatchVerifiedLevels):
        verify_vsa_envelope(data, key, wanted._replace(verified_levels=("SLSA_BUILD_LEVEL_3",)))


def test_a_policy_files_own_digest_replaces_the_computed_one() -> None:
    body = json.loads(built(policy_sha256="ab" * 32))
    assert body["predicate"]["policy"]["digest"] == {"sha256": "ab" * 32}
    with pytest.raises(UsageError):
        built(policy_sha256="AB" * 32)
