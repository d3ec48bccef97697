"""Tests for sealtrail.log.entries: Rekor entry requests -> canonical log entry bodies.

Every accepted request's body must parse with the verifier's own parser
(:func:`sealtrail.models.rekor.parse_entry_body`) and describe the same signature, key and
digest; bodies rebuilt from the sigstore-conformance sample must equal the real Rekor bodies
byte for byte; every refusal is a LogEntryInvalidError with a message naming the problem.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import pytest
import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sealtrail.errors import LogEntryInvalidError
from sealtrail.log import entries
from sealtrail.log.entries import CanonicalEntry, canonicalize_v1, canonicalize_v2
from sealtrail.models.rekor import EntryBody, parse_entry_body
from tests.fakes.ca import DEFAULT_IDENTITY, DEFAULT_ISSUER, FakeCA

CASES = Path(__file__).resolve().parent.parent.parent / "vectors" / "conformance"
NOW = datetime(2025, 6, 1, tzinfo=timezone.utc)
INTOTO = "application/vnd.in-toto+json"
ARTIFACT = b"sealtrail log entry artifact\n"
_HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
DELETE = object()


# -- helpers ---------------------------------------------------------------------------------
def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def cert_der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def key_pem(public: Any) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo)


def spki(public: Any) -> bytes:
    return public.public_bytes(serialization.Encoding.DER,
                               serialization.PublicFormat.SubjectPublicKeyInfo)


def key_fingerprint(public: Any) -> str:
    return hashlib.sha256(spki(public)).hexdigest()


def sign_digest(private: Any, digest: bytes, hash_name: str) -> bytes:
    algorithm = Prehashed(_HASHES[hash_name]())
    if isinstance(private, ec.EllipticCurvePrivateKey):
        return private.sign(digest, ec.ECDSA(algorithm))
    return private.sign(digest, padding.PKCS1v15(), algorithm)


def sign_message(private: Any, message: bytes) -> bytes:
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return private.sign(message)
    if isinstance(private, ec.EllipticCurvePrivateKey):
        curve_hash = {"secp256r1": hashes.SHA256, "secp384r1": hashes.SHA384,
                      "secp521r1": hashes.SHA512}[private.curve.name]
        return private.sign(message, ec.ECDSA(curve_hash()))
    return private.sign(message, padding.PKCS1v15(), hashes.SHA256())


def pae(payload_type: str, payload: bytes) -> bytes:
    kind = payload_type.encode()
    return b"DSSEv1 " + str(len(kind)).encode() + b" " + kind + b" " + \
        str(len(payload)).encode() + b" " + payload


def statement(*digests: dict[str, str]) -> bytes:
    return json.dumps({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": f"file{i}", "digest": d} for i, d in enumerate(digests)],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {},
    }).encode()


SUBJECT = hashlib.sha256(b"the attested file").hexdigest()
PAYLOAD = statement({"sha256": SUBJECT})


def mutate(request: Any, path: tuple[Any, ...], value: Any) -> Any:
    out = copy.deepcopy(request)
    node = out
    for step in path[:-1]:
        node = node[step]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


def refused(function: Callable[[Any], CanonicalEntry], request: Any,
            *fragments: str) -> LogEntryInvalidError:
    with pytest.raises(LogEntryInvalidError) as info:
        function(request)
    error = info.value
    assert error.code == "LOG_ENTRY_INVALID"
    text = error.diagnostics()
    assert entries._INTERNAL not in text
    for fragment in fragments:
        assert fragment in text, text
    return error


def parsed(entry: CanonicalEntry) -> EntryBody:
    """Parse with the verifier's parser, and check the body is JCS (RFC 8785)."""
    assert rfc8785.dumps(json.loads(entry.body)) == entry.body
    return parse_entry_body(entry.body, entry.kind, entry.api_version)


# -- keys and certificates (made once per module: RSA generation is slow) -----------------------
@functools.cache
def ca() -> FakeCA:
    return FakeCA()


@functools.cache
def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@functools.cache
def other_p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@functools.cache
def p384() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@functools.cache
def p521() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP521R1())


@functools.cache
def rsa2048() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


@functools.cache
def rsa3072() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 3072)


@functools.cache
def ed() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@functools.cache
def leaf() -> x509.Certificate:
    """A Fulcio-profile certificate for p256()."""
    return ca().issue_leaf(p256().public_key(), not_before=NOW)


# -- request builders ------------------------------------------------------------------------
def v1_hashedrekord(private: Any, verifier_pem: bytes, *, data: bytes = ARTIFACT,
                    algorithm: str = "sha256") -> dict[str, Any]:
    digest = hashlib.new(algorithm, data).digest()
    return {"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
        "data": {"hash": {"algorithm": algorithm, "value": digest.hex()}},
        "signature": {"content": b64(sign_digest(private, digest, algorithm)),
                      "publicKey": {"content": b64(verifier_pem)}}}}


def envelope(payload: bytes, signers: list[Any], payload_type: str = INTOTO) -> dict[str, Any]:
    message = pae(payload_type, payload)
    return {"payload": b64(payload), "payloadType": payload_type,
            "signatures": [{"sig": b64(sign_message(k, message)), "keyid": ""} for k in signers]}


def v1_dsse(env: dict[str, Any], verifier_pems: list[bytes]) -> dict[str, Any]:
    return {"apiVersion": "0.0.1", "kind": "dsse", "spec": {"proposedContent": {
        "envelope": json.dumps(env), "verifiers": [b64(p) for p in verifier_pems]}}}


def v1_intoto(payload: bytes, signers: list[tuple[Any, bytes]], *, keyid: str = "",
              payload_type: str = INTOTO) -> dict[str, Any]:
    message = pae(payload_type, payload)
    signatures = []
    for private, pem in signers:
        item = {"sig": b64(b64(sign_message(private, message)).encode()), "publicKey": b64(pem)}
        if keyid:
            item["keyid"] = keyid
        signatures.append(item)
    return {"apiVersion": "0.0.2", "kind": "intoto", "spec": {"content": {
        "envelope": {"payloadType": payload_type, "payload": b64(b64(payload).encode()),
                     "signatures": signatures},
        "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}}}}


def verifier_v2(details: str, *, cert: x509.Certificate | None = None,
                public: Any = None) -> dict[str, Any]:
    if cert is not None:
        return {"x509Certificate": {"rawBytes": b64(cert_der(cert))}, "keyDetails": details}
    return {"publicKey": {"rawBytes": b64(spki(public))}, "keyDetails": details}


def v2_hashedrekord(private: Any, verifier: dict[str, Any], *, hash_name: str = "sha256",
                    data: bytes = ARTIFACT) -> dict[str, Any]:
    digest = hashlib.new(hash_name, data).digest()
    return {"hashedRekordRequestV002": {
        "digest": b64(digest),
        "signature": {"content": b64(sign_digest(private, digest, hash_name)),
                      "verifier": verifier}}}


def v2_dsse(env: dict[str, Any], verifiers: list[dict[str, Any]]) -> dict[str, Any]:
    return {"dsseRequestV002": {"envelope": env, "verifiers": verifiers}}


def default_v1() -> dict[str, Any]:
    return v1_hashedrekord(p256(), cert_pem(leaf()))


def default_v2() -> dict[str, Any]:
    return v2_hashedrekord(p256(), verifier_v2("PKIX_ECDSA_P256_SHA_256", cert=leaf()))


# -- Rekor v1: hashedrekord 0.0.1 ------------------------------------------------------------
def test_v1_hashedrekord_with_fulcio_certificate() -> None:
    request = default_v1()
    entry = canonicalize_v1(request)
    assert (entry.kind, entry.api_version) == ("hashedrekord", "0.0.1")
    body = parsed(entry)
    digest = hashlib.sha256(ARTIFACT).digest()
    assert body.digest_algorithm == "sha256" and body.digest == digest
    (signature,) = body.signatures
    assert signature.signature == base64.b64decode(request["spec"]["signature"]["content"])
    assert signature.verifier.certificate == leaf()
    # A request already in canonical form is logged as is (JCS of the same object).
    assert entry.body == rfc8785.dumps(request)
    assert entry.search_keys == (
        ("sha256", digest.hex()), ("identity", DEFAULT_IDENTITY), ("issuer", DEFAULT_ISSUER),
        ("key", key_fingerprint(p256().public_key())))


@pytest.mark.parametrize("private, algorithm", [
    (p384, "sha384"), (p521, "sha512"), (rsa2048, "sha256"), (rsa2048, "sha512"),
    (p256, "sha512"),
], ids=["p384", "p521", "rsa2048", "rsa2048-sha512", "p256-sha512"])
def test_v1_hashedrekord_with_public_keys(private: Callable[[], Any], algorithm: str) -> None:
    key = private()
    entry = canonicalize_v1(v1_hashedrekord(key, key_pem(key.public_key()), algorithm=algorithm))
    body = parsed(entry)
    assert body.digest_algorithm == algorithm
    assert body.digest == hashlib.new(algorithm, ARTIFACT).digest()
    assert body.signatures[0].verifier.public_key is not None
    assert body.signatures[0].verifier.public_key.spki_der == spki(key.public_key())
    assert entry.search_keys == ((algorithm, body.digest.hex()),
                                 ("key", key_fingerprint(key.public_key())))


def test_v1_hashedrekord_normalises_like_rekor() -> None:
    # SPEC: rekor re-encodes the key as PEM (CanonicalValue) and the signature as standard
    # base64; we also lowercase the hex digest. A one-line CRLF PEM and URL-safe unpadded
    # base64 therefore give the same body as the canonical request.
    canonical = default_v1()
    pem = cert_pem(leaf()).decode()
    lines = pem.strip().split("\n")
    odd_pem = (lines[0] + "\r\n" + "".join(lines[1:-1]) + "\r\n" + lines[-1] + "\r\n").encode()
    sig = base64.b64decode(canonical["spec"]["signature"]["content"])
    odd = mutate(canonical, ("spec", "signature", "publicKey", "content"), b64(odd_pem))
    odd = mutate(odd, ("spec", "signature", "content"),
                 base64.urlsafe_b64encode(sig).decode().rstrip("="))
    odd = mutate(odd, ("spec", "data", "hash", "value"),
                 canonical["spec"]["data"]["hash"]["value"].upper())
    assert canonicalize_v1(odd).body == canonicalize_v1(canonical).body == rfc8785.dumps(canonical)


def test_v1_hashedrekord_ignores_unknown_fields() -> None:
    base = default_v1()
    request = mutate(base, ("spec", "extra"), {"anything": [1, 2]})
    assert canonicalize_v1(request).body == rfc8785.dumps(base)


def _two_certs() -> str:
    return b64(cert_pem(leaf()) + cert_pem(ca().issuer_cert))


@pytest.mark.parametrize("path, value, fragment", [
    (("spec", "signature", "content"), "flip", "does not verify"),
    (("spec", "data", "hash", "value"), hashlib.sha256(b"other").hexdigest(), "does not verify"),
    (("spec", "data", "hash", "value"), "ab" * 31, "wrong length"),
    (("spec", "data", "hash", "value"), "zz" * 32, "hex"),
    (("spec", "data", "hash", "algorithm"), "md5", "not supported"),
    (("spec", "data", "hash", "algorithm"), "SHA2_256", "not supported"),
    (("spec", "data", "hash", "algorithm"), "sha384", "wrong length"),
    (("spec", "signature", "content"), "not base64!", "not valid base64"),
    (("spec", "signature", "content"), "", "must not be empty"),
    (("spec", "signature", "content"), 1234, "must be a base64 string"),
    (("spec", "signature", "publicKey", "content"), "@@@", "not valid base64"),
    (("spec", "signature", "publicKey", "content"), b64(b"hello"), "neither a PEM"),
    (("spec", "signature", "publicKey", "content"),
     b64(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
     "not a valid PEM certificate"),
    (("spec", "signature", "publicKey", "content"), "two-certs", "exactly one certificate"),
    (("spec", "signature", "publicKey", "content"), b64(b"A" * (64 * 1024 + 1)), "too large"),
    (("spec", "signature", "publicKey"), "key", "must be a JSON object"),
    (("spec", "data", "hash", "value"), ["ab"], "must be a string"),
    (("spec", "data"), DELETE, "spec.data is missing"),
    (("spec", "signature"), DELETE, "spec.signature is missing"),
    (("spec", "signature", "publicKey"), DELETE, "spec.signature.publicKey is missing"),
    (("spec", "data", "hash", "algorithm"), DELETE, "algorithm is missing"),
    (("spec", "data", "hash"), None, "spec.data.hash is missing"),
    (("spec",), [], "spec must be a JSON object"),
    (("kind",), DELETE, "kind is missing"),
    (("apiVersion",), 1, "must be a string"),
])
def test_v1_hashedrekord_refusals(path: tuple[str, ...], value: Any, fragment: str) -> None:
    request = default_v1()
    if value == "flip":
        sig = bytearray(base64.b64decode(request["spec"]["signature"]["content"]))
        sig[-1] ^= 1
        value = b64(bytes(sig))
    elif value == "two-certs":
        value = _two_certs()
    refused(canonicalize_v1, mutate(request, path, value), fragment)


def test_v1_hashedrekord_wrong_key() -> None:
    request = v1_hashedrekord(p256(), key_pem(other_p256().public_key()))
    refused(canonicalize_v1, request, "does not verify")


def test_v1_hashedrekord_refuses_ed25519() -> None:
    # Ed25519 signs messages, never a prehash: Rekor v1 hashedrekord cannot check it.
    digest = hashlib.sha256(ARTIFACT).digest()
    request = {"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
        "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
        "signature": {"content": b64(ed().sign(digest)),
                      "publicKey": {"content": b64(key_pem(ed().public_key()))}}}}
    refused(canonicalize_v1, request, "Ed25519 keys cannot sign a prehashed digest")


def test_v1_hashedrekord_refuses_small_rsa() -> None:
    small = rsa.generate_private_key(65537, 1024)
    refused(canonicalize_v1, v1_hashedrekord(small, key_pem(small.public_key())),
            "RSA key is too small")


@pytest.mark.parametrize("kind, version", [
    ("rekord", "0.0.1"), ("hashedrekord", "0.0.2"), ("intoto", "0.0.1"), ("dsse", "0.0.2"),
    ("helm", "0.0.1"),
])
def test_v1_unsupported_kinds(kind: str, version: str) -> None:
    request = mutate(mutate(default_v1(), ("kind",), kind), ("apiVersion",), version)
    error = refused(canonicalize_v1, request, "unsupported entry kind or version",
                    "hashedrekord 0.0.1, dsse 0.0.1, intoto 0.0.2")
    assert error.actual == f"{kind} {version}"


# -- Rekor v1: dsse 0.0.1 --------------------------------------------------------------------
def test_v1_dsse_with_certificate() -> None:
    env = envelope(PAYLOAD, [p256()])
    request = v1_dsse(env, [cert_pem(leaf())])
    entry = canonicalize_v1(request)
    body = parsed(entry)
    assert (entry.kind, entry.api_version) == ("dsse", "0.0.1")
    assert body.payload_hash_algorithm == "sha256"
    assert body.payload_hash == hashlib.sha256(PAYLOAD).digest()
    (signature,) = body.signatures
    assert signature.signature == base64.b64decode(env["signatures"][0]["sig"])
    assert signature.verifier.certificate == leaf()
    spec = json.loads(entry.body)["spec"]
    envelope_hash = hashlib.sha256(request["spec"]["proposedContent"]["envelope"].encode())
    assert spec["envelopeHash"] == {"algorithm": "sha256", "value": envelope_hash.hexdigest()}
    assert entry.search_keys == (
        ("sha256", hashlib.sha256(PAYLOAD).hexdigest()), ("sha256", envelope_hash.hexdigest()),
        ("identity", DEFAULT_IDENTITY), ("issuer", DEFAULT_ISSUER),
        ("key", key_fingerprint(p256().public_key())), ("sha256", SUBJECT))


def test_v1_dsse_several_signers_sorted_by_signature() -> None:
    signers = [p256(), rsa2048(), ed()]
    env = envelope(PAYLOAD, signers)
    # Verifiers in another order than the signatures, plus one that signed nothing.
    pems = [key_pem(ed().public_key()), key_pem(other_p256().public_key()),
            cert_pem(leaf()), key_pem(rsa2048().public_key())]
    entry = canonicalize_v1(v1_dsse(env, pems))
    spec = json.loads(entry.body)["spec"]
    signatures = [item["signature"] for item in spec["signatures"]]
    assert signatures == sorted(s["sig"] for s in env["signatures"])
    expected_verifier = {env["signatures"][0]["sig"]: cert_pem(leaf()),
                         env["signatures"][1]["sig"]: key_pem(rsa2048().public_key()),
                         env["signatures"][2]["sig"]: key_pem(ed().public_key())}
    for item in spec["signatures"]:
        assert base64.b64decode(item["verifier"]) == expected_verifier[item["signature"]]
    body = parsed(entry)
    assert len(body.signatures) == 3
    keys = dict.fromkeys(value for kind, value in entry.search_keys if kind == "key")
    assert list(keys) == [key_fingerprint(k.public_key()) for k in signers]
    assert key_fingerprint(other_p256().public_key()) not in keys


def test_v1_dsse_envelope_hash_is_over_the_string_as_sent() -> None:
    env = envelope(PAYLOAD, [p256()])
    compact = v1_dsse(env, [cert_pem(leaf())])
    spaced = mutate(compact, ("spec", "proposedContent", "envelope"), json.dumps(env, indent=2))
    a, b = canonicalize_v1(compact), canonicalize_v1(spaced)
    assert a.body != b.body
    assert json.loads(a.body)["spec"]["signatures"] == json.loads(b.body)["spec"]["signatures"]


def _dsse_request() -> dict[str, Any]:
    return v1_dsse(envelope(PAYLOAD, [p256()]), [cert_pem(leaf())])


def _envelope_text(**changes: Any) -> str:
    env = envelope(PAYLOAD, [p256()])
    env.update(changes)
    return json.dumps(env)


@pytest.mark.parametrize("path, value, fragment", [
    (("envelope",), "not json", "not a valid JSON DSSE envelope"),
    (("envelope",), '{"payload": "", "payload": ""}', "duplicate key"),
    (("envelope",), '{"payload": NaN}', "NaN is not JSON"),
    (("envelope",), "[]", "must be a JSON object"),
    (("envelope",), {"payload": ""}, "must be a string"),
    (("envelope",), "tampered", "does not verify with any of the listed verifiers"),
    (("envelope",), "sig-by-other", "does not verify with any of the listed verifiers"),
    (("envelope",), _envelope_text(signatures=[]), "must not be empty"),
    (("envelope",), _envelope_text(signatures=[{"sig": "AAAA"}] * 17), "too many items"),
    (("envelope",), _envelope_text(payloadType=7), "payloadType must be a string"),
    (("envelope",), _envelope_text(payload="%%%"), "payload is not valid base64"),
    (("envelope",), "no-sig", "sig is missing"),
    (("envelope",), DELETE, "envelope is missing"),
    (("verifiers",), [], "must not be empty"),
    (("verifiers",), "pem", "must be a JSON array"),
    (("verifiers",), [b64(b"x")] * 17, "too many items"),
    (("verifiers",), [b64(b"nope")], "neither a PEM"),
    (("verifiers",), DELETE, "verifiers is missing"),
])
def test_v1_dsse_refusals(path: tuple[str, ...], value: Any, fragment: str) -> None:
    if value == "tampered":
        env = envelope(PAYLOAD, [p256()])
        env["payload"] = b64(PAYLOAD + b" ")
        value = json.dumps(env)
    elif value == "sig-by-other":
        value = json.dumps(envelope(PAYLOAD, [other_p256()]))
    elif value == "no-sig":
        value = _envelope_text(signatures=[{"keyid": ""}])
    request = mutate(_dsse_request(), ("spec", "proposedContent") + path, value)
    refused(canonicalize_v1, request, fragment)


def test_v1_dsse_refuses_oversized_payload() -> None:
    env = {"payload": "A" * (4 * (entries.MAX_PAYLOAD_BYTES // 3) + 8), "payloadType": INTOTO,
           "signatures": [{"sig": "AAAA"}]}
    request = mutate(_dsse_request(), ("spec", "proposedContent", "envelope"), json.dumps(env))
    refused(canonicalize_v1, request, "payload is too large")


# -- Rekor v1: intoto 0.0.2 ------------------------------------------------------------------
def _intoto_hash(payload: bytes, signatures: list[dict[str, str]]) -> str:
    """sigstore-js calculateDSSEHash: JCS of the envelope, base64 once, PEM as text."""
    return hashlib.sha256(rfc8785.dumps({"payloadType": INTOTO, "payload": b64(payload),
                                         "signatures": signatures})).hexdigest()


def test_v1_intoto_with_certificate() -> None:
    request = v1_intoto(PAYLOAD, [(p256(), cert_pem(leaf()))])
    # The client's envelope hash is not trusted: the log recomputes it.
    request["spec"]["content"]["hash"] = {"algorithm": "sha256", "value": "00" * 32}
    entry = canonicalize_v1(request)
    body = parsed(entry)
    assert (entry.kind, entry.api_version) == ("intoto", "0.0.2")
    assert body.payload_type == INTOTO
    assert body.payload_hash == hashlib.sha256(PAYLOAD).digest()
    (signature,) = body.signatures
    assert signature.verifier.certificate == leaf()
    sig_text = base64.b64decode(request["spec"]["content"]["envelope"]["signatures"][0]["sig"])
    assert signature.signature == base64.b64decode(sig_text)
    content = json.loads(entry.body)["spec"]["content"]
    assert "payload" not in content["envelope"]  # SPEC: the canonical body drops the payload
    assert content["hash"]["value"] == _intoto_hash(PAYLOAD, [
        {"sig": sig_text.decode(), "publicKey": cert_pem(leaf()).decode()}])
    assert entry.search_keys == (
        ("sha256", hashlib.sha256(PAYLOAD).hexdigest()), ("identity", DEFAULT_IDENTITY),
        ("issuer", DEFAULT_ISSUER), ("key", key_fingerprint(p256().public_key())),
        ("sha256", SUBJECT))


def test_v1_intoto_keyid_and_ed25519() -> None:
    request = v1_intoto(PAYLOAD, [(ed(), key_pem(ed().public_key())),
                                  (rsa2048(), key_pem(rsa2048().public_key()))], keyid="k1")
    entry = canonicalize_v1(request)
    content = json.loads(entry.body)["spec"]["content"]
    sent = request["spec"]["content"]["envelope"]["signatures"]
    assert content["envelope"]["signatures"] == sent  # as sent, in order, keyid kept
    assert content["hash"]["value"] == _intoto_hash(PAYLOAD, [
        {"keyid": "k1", "sig": base64.b64decode(s["sig"]).decode(),
         "publicKey": base64.b64decode(s["publicKey"]).decode()} for s in sent])
    assert len(parsed(entry).signatures) == 2


def _intoto_request() -> dict[str, Any]:
    return v1_intoto(PAYLOAD, [(p256(), cert_pem(leaf()))])


_SIG = ("spec", "content", "envelope", "signatures", 0)


@pytest.mark.parametrize("path, value, fragment", [
    (_SIG + ("sig",), "single", "inner base64"),
    (_SIG + ("sig",), "flip", "does not verify over the DSSE PAE"),
    (_SIG + ("publicKey",), b64(key_pem(other_p256().public_key())), "does not verify"),
    (_SIG + ("publicKey",), DELETE, "publicKey is missing"),
    (_SIG + ("keyid",), 5, "keyid must be a string"),
    (("spec", "content", "envelope", "payload"), b64(b64(PAYLOAD + b"x").encode()),
     "does not verify"),
    (("spec", "content", "envelope", "payload"), b64(b"%%%"), "payload (inner base64)"),
    (("spec", "content", "envelope", "payloadType"), "text/plain", "does not verify"),
    (("spec", "content", "envelope", "signatures"), [], "must not be empty"),
    (("spec", "content", "hash"), {"algorithm": "md5", "value": "00" * 16}, "not supported"),
    (("spec", "content", "hash"), {"algorithm": "sha256", "value": "zz" * 32}, "hex"),
    (("spec", "content", "payloadHash"), {"algorithm": "sha256", "value": 3}, "64 hex"),
    (("spec", "content", "envelope"), DELETE, "envelope is missing"),
    (("spec", "content"), "x", "must be a JSON object"),
])
def test_v1_intoto_refusals(path: tuple[Any, ...], value: Any, fragment: str) -> None:
    request = _intoto_request()
    if value == "single":
        # The DSSE sig base64-encoded only once: not what intoto 0.0.2 stores.
        inner = base64.b64decode(request["spec"]["content"]["envelope"]["signatures"][0]["sig"])
        value = b64(base64.b64decode(inner))
    elif value == "flip":
        inner = base64.b64decode(request["spec"]["content"]["envelope"]["signatures"][0]["sig"])
        sig = bytearray(base64.b64decode(inner))
        sig[-1] ^= 1
        value = b64(b64(bytes(sig)).encode())
    refused(canonicalize_v1, mutate(request, path, value), fragment)


# -- Rekor v2: hashedrekord 0.0.2 ------------------------------------------------------------
def test_v2_hashedrekord_with_certificate() -> None:
    request = default_v2()
    entry = canonicalize_v2(request)
    assert (entry.kind, entry.api_version) == ("hashedrekord", "0.0.2")
    body = parsed(entry)
    digest = hashlib.sha256(ARTIFACT).digest()
    assert (body.digest_algorithm, body.digest) == ("sha256", digest)
    assert body.signatures[0].verifier.certificate == leaf()
    inner = request["hashedRekordRequestV002"]
    assert json.loads(entry.body) == {"apiVersion": "0.0.2", "kind": "hashedrekord", "spec": {
        "hashedRekordV002": {"data": {"algorithm": "SHA2_256", "digest": inner["digest"]},
                             "signature": inner["signature"]}}}
    assert entry.search_keys == (
        ("sha256", digest.hex()), ("identity", DEFAULT_IDENTITY), ("issuer", DEFAULT_ISSUER),
        ("key", key_fingerprint(p256().public_key())))


@pytest.mark.parametrize("private, details, hash_name, proto", [
    (p256, "PKIX_ECDSA_P256_SHA_256", "sha256", "SHA2_256"),
    (p384, "PKIX_ECDSA_P384_SHA_384", "sha384", "SHA2_384"),
    (p521, "PKIX_ECDSA_P521_SHA_512", "sha512", "SHA2_512"),
    (rsa2048, "PKIX_RSA_PKCS1V15_2048_SHA256", "sha256", "SHA2_256"),
    (rsa3072, "PKIX_RSA_PKCS1V15_3072_SHA256", "sha256", "SHA2_256"),
], ids=["p256", "p384", "p521", "rsa2048", "rsa3072"])
def test_v2_hashedrekord_with_public_keys(private: Callable[[], Any], details: str,
                                          hash_name: str, proto: str) -> None:
    key = private()
    request = v2_hashedrekord(key, verifier_v2(details, public=key.public_key()),
                              hash_name=hash_name)
    entry = canonicalize_v2(request)
    body = parsed(entry)
    assert body.digest == hashlib.new(hash_name, ARTIFACT).digest()
    assert body.signatures[0].verifier.public_key.spki_der == spki(key.public_key())
    data = json.loads(entry.body)["spec"]["hashedRekordV002"]["data"]
    assert data["algorithm"] == proto
    assert entry.search_keys == ((hash_name, body.digest.hex()),
                                 ("key", key_fingerprint(key.public_key())))


def test_v2_accepts_proto_field_names_and_urlsafe_base64() -> None:
    camel = default_v2()
    inner = camel["hashedRekordRequestV002"]
    snake = {"hashed_rekord_request_v002": {
        "digest": base64.urlsafe_b64encode(base64.b64decode(inner["digest"])).decode().rstrip("="),
        "signature": {"content": inner["signature"]["content"], "verifier": {
            "key_details": "PKIX_ECDSA_P256_SHA_256",
            "x509_certificate": {"raw_bytes": b64(cert_der(leaf()))}}}}}
    assert canonicalize_v2(snake).body == canonicalize_v2(camel).body


_V2SIG = ("hashedRekordRequestV002", "signature")
_V2VER = _V2SIG + ("verifier",)


@pytest.mark.parametrize("path, value, fragment", [
    (_V2VER + ("keyDetails",), "PKIX_ED25519", "pure Ed25519 is not accepted"),
    (_V2VER + ("keyDetails",), "PKIX_ED25519_PH", "Ed25519ph signatures cannot be verified"),
    (_V2VER + ("keyDetails",), "PKIX_RSA_PSS_2048_SHA256", "not an allowed algorithm"),
    (_V2VER + ("keyDetails",), "PUBLIC_KEY_DETAILS_UNSPECIFIED", "not an allowed algorithm"),
    (_V2VER + ("keyDetails",), 5, "must be a PublicKeyDetails enum name"),
    (_V2VER + ("keyDetails",), DELETE, "keyDetails is missing"),
    (_V2VER + ("keyDetails",), "PKIX_ECDSA_P384_SHA_384", "does not match its key details"),
    (_V2VER + ("keyDetails",), "PKIX_RSA_PKCS1V15_2048_SHA256", "does not match its key details"),
    (_V2VER + ("publicKey",), {"rawBytes": "AAAA"}, "exactly one of x509Certificate or publicKey"),
    (_V2VER + ("x509Certificate",), DELETE, "exactly one of x509Certificate or publicKey"),
    (_V2VER + ("x509Certificate", "rawBytes"), "AAAA", "not a DER certificate"),
    (_V2VER + ("x509Certificate", "rawBytes"), "a!", "not valid base64"),
    (_V2VER + ("x509Certificate", "raw_bytes"), "AAAA", "gives both"),
    (_V2VER + ("x509Certificate",), [], "must be a JSON object"),
    (_V2SIG + ("content",), "flip", "does not verify"),
    (_V2SIG + ("content",), DELETE, "content is missing"),
    (("hashedRekordRequestV002", "digest"), b64(b"\x00" * 48), "digest length does not match"),
    (("hashedRekordRequestV002", "digest"), b64(hashlib.sha256(b"x").digest()), "does not verify"),
    (("hashedRekordRequestV002", "digest"), DELETE, "digest is missing"),
    (("hashedRekordRequestV002", "digest"), b64(b"\x00" * 65), "too large"),
    (("hashedRekordRequestV002",), "x", "must be a JSON object"),
])
def test_v2_hashedrekord_refusals(path: tuple[str, ...], value: Any, fragment: str) -> None:
    request = default_v2()
    if value == "flip":
        content = request["hashedRekordRequestV002"]["signature"]["content"]
        sig = bytearray(base64.b64decode(content))
        sig[-1] ^= 1
        value = b64(bytes(sig))
    refused(canonicalize_v2, mutate(request, path, value), fragment)


def test_v2_hashedrekord_wrong_key_and_rsa_size_mismatch() -> None:
    wrong = v2_hashedrekord(p256(), verifier_v2("PKIX_ECDSA_P256_SHA_256",
                                                public=other_p256().public_key()))
    refused(canonicalize_v2, wrong, "does not verify")
    mismatch = v2_hashedrekord(rsa2048(), verifier_v2("PKIX_RSA_PKCS1V15_3072_SHA256",
                                                      public=rsa2048().public_key()))
    refused(canonicalize_v2, mismatch, "does not match its key details")


def test_v2_refuses_pure_ed25519_even_when_valid() -> None:
    message = ARTIFACT
    request = {"hashedRekordRequestV002": {
        "digest": b64(hashlib.sha256(message).digest()),
        "signature": {"content": b64(ed().sign(message)),
                      "verifier": verifier_v2("PKIX_ED25519", public=ed().public_key())}}}
    refused(canonicalize_v2, request, "pure Ed25519")
    dsse = v2_dsse(envelope(PAYLOAD, [ed()]),
                   [verifier_v2("PKIX_ED25519", public=ed().public_key())])
    refused(canonicalize_v2, dsse, "pure Ed25519")


@pytest.mark.parametrize("request_json, fragment", [
    ({}, "no supported entry kind"),
    ({"intotoRequestV002": {}}, "hashedRekordRequestV002 or dsseRequestV002"),
    ({"hashedRekordRequestV002": {}, "dsseRequestV002": {}}, "exactly one entry kind"),
    ({"hashedRekordRequestV002": {}, "hashed_rekord_request_v002": {}}, "gives both"),
    ([], "must be a JSON object"),
    ("hashedRekordRequestV002", "must be a JSON object"),
    (None, "must be a JSON object"),
])
def test_v2_unsupported_requests(request_json: Any, fragment: str) -> None:
    refused(canonicalize_v2, request_json, fragment)


# -- Rekor v2: dsse 0.0.2 (deprecated, sigstore-js) ------------------------------------------
def test_v2_dsse_envelope_order() -> None:
    signers = [p384(), p256()]
    env = envelope(PAYLOAD, signers)
    verifiers = [verifier_v2("PKIX_ECDSA_P256_SHA_256", cert=leaf()),
                 verifier_v2("PKIX_ECDSA_P384_SHA_384", public=p384().public_key())]
    entry = canonicalize_v2(v2_dsse(env, verifiers))
    assert (entry.kind, entry.api_version) == ("dsse", "0.0.2")
    body = parsed(entry)
    assert body.payload_hash == hashlib.sha256(PAYLOAD).digest()
    assert [s.signature for s in body.signatures] == \
        [base64.b64decode(s["sig"]) for s in env["signatures"]]
    assert body.signatures[0].verifier.public_key.spki_der == spki(p384().public_key())
    assert body.signatures[1].verifier.certificate == leaf()
    assert json.loads(entry.body)["spec"] == {"dsseV002": {
        "payloadHash": {"algorithm": "SHA2_256", "digest": b64(hashlib.sha256(PAYLOAD).digest())},
        "signatures": [{"content": env["signatures"][0]["sig"], "verifier": verifiers[1]},
                       {"content": env["signatures"][1]["sig"], "verifier": verifiers[0]}]}}
    assert ("sha256", SUBJECT) in entry.search_keys
    assert ("identity", DEFAULT_IDENTITY) in entry.search_keys


def _v2_dsse_request() -> dict[str, Any]:
    return v2_dsse(envelope(PAYLOAD, [p256()]),
                   [verifier_v2("PKIX_ECDSA_P256_SHA_256", cert=leaf())])


@pytest.mark.parametrize("path, value, fragment", [
    (("envelope", "signatures", 0, "sig"), "other", "does not verify with any of the listed"),
    (("envelope", "payload"), b64(b"changed"), "does not verify with any of the listed"),
    (("envelope", "payload"), "A" * (4 * (entries.MAX_PAYLOAD_BYTES // 3) + 8), "too large"),
    (("envelope", "signatures"), [{"sig": "AAAA"}] * 17, "too many items"),
    (("envelope", "signatures"), "sig", "must be a JSON array"),
    (("envelope",), "{}", "must be a JSON object"),
    (("verifiers",), [verifier_v2("PKIX_ECDSA_P256_SHA_256", cert=leaf())] * 17, "too many"),
    (("verifiers",), [], "must not be empty"),
    (("verifiers", 0, "keyDetails"), "PKIX_ED25519_PH", "Ed25519ph"),
])
def test_v2_dsse_refusals(path: tuple[Any, ...], value: Any, fragment: str) -> None:
    if value == "other":
        value = envelope(PAYLOAD, [other_p256()])["signatures"][0]["sig"]
    request = mutate(_v2_dsse_request(), ("dsseRequestV002",) + path, value)
    refused(canonicalize_v2, request, fragment)


# -- more refusals: text bounds, key types, encodings ----------------------------------------
def test_text_fields_are_bounded() -> None:
    long_type = "t" * (entries.MAX_SHORT_TEXT + 1)
    refused(canonicalize_v2, mutate(_v2_dsse_request(), ("dsseRequestV002", "envelope",
                                                         "payloadType"), long_type),
            "payloadType is too long")
    refused(canonicalize_v2, mutate(_v2_dsse_request(), ("dsseRequestV002", "envelope",
                                                         "payloadType"), ""),
            "payloadType must not be empty")
    refused(canonicalize_v1, mutate(default_v1(), ("kind",), "k" * 2000), "kind is too long")
    env = envelope(PAYLOAD, [p256()])
    env["signatures"][0]["keyid"] = 5
    refused(canonicalize_v1, mutate(_dsse_request(), ("spec", "proposedContent", "envelope"),
                                    json.dumps(env)), "keyid must be a string")


def test_certificate_with_unsupported_key_type() -> None:
    from cryptography.hazmat.primitives.asymmetric import ed448

    cert = ca().issue_leaf(ed448.Ed448PrivateKey.generate().public_key(), not_before=NOW)
    refused(canonicalize_v1, mutate(default_v1(), ("spec", "signature", "publicKey", "content"),
                                    b64(cert_pem(cert))), "unsupported public key type")
    verifier = {"x509Certificate": {"rawBytes": b64(cert_der(cert))},
                "keyDetails": "PKIX_ECDSA_P256_SHA_256"}
    refused(canonicalize_v2, mutate(default_v2(), _V2VER, verifier), "does not match")


def test_v2_public_key_that_is_not_spki() -> None:
    verifier = {"publicKey": {"rawBytes": b64(b"not a key")},
                "keyDetails": "PKIX_ECDSA_P256_SHA_256"}
    refused(canonicalize_v2, mutate(default_v2(), _V2VER, verifier), "public key does not parse")


def test_v1_dsse_envelope_that_is_not_utf8() -> None:
    # A lone surrogate: valid in a JSON string, not encodable as the UTF-8 that is hashed.
    request = mutate(_dsse_request(), ("spec", "proposedContent", "envelope"), "\ud800{}")
    refused(canonicalize_v1, request, "not a valid JSON DSSE envelope")


def test_v1_intoto_pem_must_be_ascii() -> None:
    # cryptography accepts text around the PEM block; the envelope hash needs it as text.
    pem = "é comment\n".encode() + key_pem(p256().public_key())
    request = v1_intoto(PAYLOAD, [(p256(), pem)])
    refused(canonicalize_v1, request, "not an ASCII PEM")


# -- search keys -----------------------------------------------------------------------------
def test_certificate_without_san_is_logged_without_identity() -> None:
    cert = ca().issue_leaf(p256().public_key(), not_before=NOW, san=False)
    entry = canonicalize_v1(v1_hashedrekord(p256(), cert_pem(cert)))
    assert [kind for kind, _ in entry.search_keys] == ["sha256", "key"]


def test_legacy_issuer_extension_is_indexed() -> None:
    cert = ca().issue_leaf(p256().public_key(), not_before=NOW, der_issuer=False,
                           identity="someone@example.com", san_kind="email")
    entry = canonicalize_v2(v2_hashedrekord(p256(), verifier_v2("PKIX_ECDSA_P256_SHA_256",
                                                                  cert=cert)))
    assert ("identity", "someone@example.com") in entry.search_keys
    assert ("issuer", DEFAULT_ISSUER) in entry.search_keys


def test_subject_digests_are_indexed_leniently() -> None:
    sha512 = hashlib.sha512(b"x").hexdigest()
    payload = statement({"SHA256": SUBJECT.upper()}, {"sha512": sha512, "md5": "00" * 16},
                        {"sha256": "short"}, {"sha256": SUBJECT})
    entry = canonicalize_v1(v1_dsse(envelope(payload, [p256()]), [cert_pem(leaf())]))
    digests = [(k, v) for k, v in entry.search_keys if k.startswith("sha")]
    assert digests[2:] == [("sha256", SUBJECT), ("sha512", sha512)]
    assert len(digests) == 4  # payload hash, envelope hash, 2 subjects (one duplicate)


def test_search_keys_stay_within_the_engine_bounds() -> None:
    engine = pytest.importorskip("sealtrail.log.config")
    assert entries.MAX_SEARCH_KEYS == engine.MAX_SEARCH_KEYS
    assert entries.MAX_SEARCH_VALUE_CHARS == engine.MAX_SEARCH_VALUE_CHARS
    many = [{"sha256": hashlib.sha256(str(i).encode()).hexdigest()} for i in range(100)]
    long_identity = "https://example.com/" + "x" * entries.MAX_SEARCH_VALUE_CHARS
    cert = ca().issue_leaf(p256().public_key(), not_before=NOW, identity=long_identity)
    entry = canonicalize_v1(v1_dsse(envelope(statement(*many), [p256()]), [cert_pem(cert)]))
    assert len(entry.search_keys) == entries.MAX_SEARCH_KEYS
    kinds = [kind for kind, _ in entry.search_keys]
    # The signer survives the cut; subjects fill what is left; the over-long SAN is skipped.
    assert kinds[:4] == ["sha256", "sha256", "issuer", "key"]
    assert entry.search_keys[4] == ("sha256", many[0]["sha256"])


@pytest.mark.parametrize("payload, payload_type", [
    (b"not json at all", INTOTO),
    (b'{"subject": "nope"}', INTOTO),
    (b"[1, 2]", INTOTO),
    (PAYLOAD, "application/json"),
])
def test_non_statement_payloads_are_logged_without_subjects(payload: bytes,
                                                            payload_type: str) -> None:
    entry = canonicalize_v1(v1_dsse(envelope(payload, [p256()], payload_type),
                                    [cert_pem(leaf())]))
    assert ("sha256", SUBJECT) not in entry.search_keys
    assert entry.search_keys[0] == ("sha256", hashlib.sha256(payload).hexdigest())


# -- limits and non-JSON input ---------------------------------------------------------------
def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize("function, base", [(canonicalize_v1, default_v1),
                                            (canonicalize_v2, default_v2)], ids=["v1", "v2"])
def test_shape_limits(function: Callable[[Any], CanonicalEntry],
                      base: Callable[[], dict[str, Any]]) -> None:
    refused(function, {**base(), "extra": _nested(40)}, "nests too deeply")
    refused(function, {**base(), "extra": list(range(20_000))}, "too many JSON values")
    refused(function, {**base(), "extra": b"bytes"}, "is not JSON")
    refused(function, {**base(), "extra": {1: "x"}}, "non-string object key")
    refused(function, {**base(), "extra": {"x"}}, "is not JSON")
    refused(function, object(), "is not JSON")


def test_total_text_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(entries, "MAX_TEXT_CHARS", 300)
    refused(canonicalize_v1, default_v1(), "is too large")
    refused(canonicalize_v2, default_v2(), "is too large")


def test_envelope_shape_is_bounded_too() -> None:
    env = envelope(PAYLOAD, [p256()])
    env["extra"] = _nested(40)
    request = mutate(_dsse_request(), ("spec", "proposedContent", "envelope"), json.dumps(env))
    refused(canonicalize_v1, request, "nests too deeply")


# -- byte-for-byte with real Rekor (the sigstore-conformance sample) --------------------------
def _bundle(case: str) -> dict[str, Any]:
    return json.loads((CASES / case / "bundle.sigstore.json").read_text())


def _real_body(bundle: dict[str, Any]) -> bytes:
    return base64.b64decode(bundle["verificationMaterial"]["tlogEntries"][0]["canonicalizedBody"])


def _bundle_cert(bundle: dict[str, Any]) -> x509.Certificate:
    material = bundle["verificationMaterial"]
    raw = (material["certificate"]["rawBytes"] if "certificate" in material
           else material["x509CertificateChain"]["certificates"][0]["rawBytes"])
    return x509.load_der_x509_certificate(base64.b64decode(raw))


V1_HASHEDREKORD_CASES = [
    "happy-path-v0.1", "happy-path-v0.3", "managed-key-happy-path",
    "checkpoint-wrong-roothash_fail", "integrated-time-in-future_fail", "invalid-ct-key_fail",
    "invalid-inclusion-proof_fail", "set-invalid-signature_fail",
]


@pytest.mark.parametrize("case", V1_HASHEDREKORD_CASES)
def test_real_rekor_v1_hashedrekord(case: str) -> None:
    bundle = _bundle(case)
    real = _real_body(bundle)
    # The request a client sends has the body's shape: re-canonicalising it is the identity.
    assert canonicalize_v1(json.loads(real)).body == real
    # And rebuilt from the bundle's own parts.
    signature = bundle["messageSignature"]
    if (CASES / case / "key.pub").exists():
        pem = (CASES / case / "key.pub").read_bytes()
    else:
        pem = cert_pem(_bundle_cert(bundle))
    request = {"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
        "data": {"hash": {"algorithm": "sha256", "value": base64.b64decode(
            signature["messageDigest"]["digest"]).hex()}},
        "signature": {"content": signature["signature"], "publicKey": {"content": b64(pem)}}}}
    assert canonicalize_v1(request).body == real


def test_real_rekor_v1_dsse() -> None:
    bundle = _bundle("happy-path-intoto-in-dsse-v3")
    real = _real_body(bundle)
    # sigstore-python sends the envelope as compact JSON with sorted keys (reproduces the
    # logged envelopeHash).
    request = {"apiVersion": "0.0.1", "kind": "dsse", "spec": {"proposedContent": {
        "envelope": rfc8785.dumps(bundle["dsseEnvelope"]).decode(),
        "verifiers": [b64(cert_pem(_bundle_cert(bundle)))]}}}
    entry = canonicalize_v1(request)
    assert entry.body == real
    assert ("sha256", hashlib.sha256(_artifact()).hexdigest()) in entry.search_keys


@pytest.mark.parametrize("case", ["intoto-with-custom-trust-root",
                                  "intoto-expired-certificate_fail"])
def test_real_intoto_body_minus_payload(case: str) -> None:
    # These bodies come from sigstore-js's test fixtures, which keep the payload; Rekor's
    # intoto 0.0.2 Canonicalize drops it (sigstore-wire.md §3). Everything else, including
    # the envelope hash we recompute, is byte-for-byte the same.
    bundle = _bundle(case)
    real = json.loads(_real_body(bundle))
    env = bundle["dsseEnvelope"]
    logged_sig = real["spec"]["content"]["envelope"]["signatures"][0]
    request = {"apiVersion": "0.0.2", "kind": "intoto", "spec": {"content": {"envelope": {
        "payloadType": env["payloadType"], "payload": b64(env["payload"].encode()),
        "signatures": [{"sig": b64(env["signatures"][0]["sig"].encode()),
                        "publicKey": logged_sig["publicKey"]}]}}}}
    entry = canonicalize_v1(request)
    del real["spec"]["content"]["envelope"]["payload"]
    assert entry.body == rfc8785.dumps(real)
    # The real body itself, payload and all, is accepted as a request and gives the same.
    assert canonicalize_v1(json.loads(_real_body(bundle))).body == entry.body


V2_CASES = [
    "rekor2-happy-path", "rekor2-dsse-happy-path", "bundle-with-sct-with-extensions",
    "rekor2-checkpoint-cosigned", "rekor2-timestamp-with-embedded-cert",
    "rekor2-no-timestamp_fail", "rekor2-checkpoint-missing-origin_fail",
    "rekor2-timestamp-untrusted-tsa-with-embedded-cert_fail",
]


@pytest.mark.parametrize("case", V2_CASES)
def test_real_rekor_v2_hashedrekord(case: str) -> None:
    bundle = _bundle(case)
    real = _real_body(bundle)
    if "messageSignature" in bundle:
        digest = bundle["messageSignature"]["messageDigest"]["digest"]
        signature = bundle["messageSignature"]["signature"]
    else:
        # New clients log a DSSE envelope as hashedrekord over H(PAE) (sigstore-wire.md §4).
        env = bundle["dsseEnvelope"]
        digest = b64(hashlib.sha256(pae(env["payloadType"],
                                        base64.b64decode(env["payload"]))).digest())
        signature = env["signatures"][0]["sig"]
    request = {"hashedRekordRequestV002": {"digest": digest, "signature": {
        "content": signature,
        "verifier": verifier_v2("PKIX_ECDSA_P256_SHA_256", cert=_bundle_cert(bundle))}}}
    assert canonicalize_v2(request).body == real


@pytest.mark.parametrize("case, function, fragment", [
    ("signature-mismatch_fail", "v1", "does not verify"),
    ("dsse-invalid-sig_fail", "dsse", "does not verify with any of the listed verifiers"),
])
def test_real_bad_signatures_are_refused(case: str, function: str, fragment: str) -> None:
    bundle = _bundle(case)
    if function == "v1":
        # The logged body is self-consistent; the bundle's signature is not for its digest.
        request = json.loads(_real_body(bundle))
        request["spec"]["signature"]["content"] = bundle["messageSignature"]["signature"]
    else:
        request = {"apiVersion": "0.0.1", "kind": "dsse", "spec": {"proposedContent": {
            "envelope": rfc8785.dumps(bundle["dsseEnvelope"]).decode(),
            "verifiers": [b64(cert_pem(_bundle_cert(bundle)))]}}}
    refused(canonicalize_v1, request, fragment)


def _artifact() -> bytes:
    return (CASES / "a.txt").read_bytes()


# -- sigstore-python's request builders as an oracle -----------------------------------------
def _sigstore_envelope() -> Any:
    dsse = pytest.importorskip("sigstore.dsse")
    stmt = dsse.StatementBuilder(
        subjects=[dsse.Subject(name="file", digest={"sha256": SUBJECT})],
        predicate_type="https://slsa.dev/provenance/v1", predicate={}).build()
    return dsse._sign(p256(), stmt)


def test_sigstore_python_v1_requests_are_accepted() -> None:
    client_module = pytest.importorskip("sigstore._internal.rekor.client")
    hashes_module = pytest.importorskip("sigstore.hashes")
    models = pytest.importorskip("sigstore_models.common.v1")
    client = client_module.RekorClient("http://127.0.0.1:9")
    digest = hashlib.sha256(ARTIFACT).digest()
    hashed = hashes_module.Hashed(algorithm=models.HashAlgorithm.SHA2_256, digest=digest)
    request = client._build_hashed_rekord_request(
        hashed, sign_digest(p256(), digest, "sha256"), leaf())
    entry = canonicalize_v1(dict(request))
    assert entry.body == rfc8785.dumps(dict(request))

    env = _sigstore_envelope()
    request = dict(client._build_dsse_request(env, leaf()))
    entry = canonicalize_v1(request)
    spec = json.loads(entry.body)["spec"]
    assert spec["envelopeHash"]["value"] == hashlib.sha256(env.to_json().encode()).hexdigest()
    assert parsed(entry).signatures[0].signature == env.signature
    assert ("sha256", SUBJECT) in entry.search_keys


def test_sigstore_python_v2_requests_are_accepted() -> None:
    client_module = pytest.importorskip("sigstore._internal.rekor.client_v2")
    hashes_module = pytest.importorskip("sigstore.hashes")
    models = pytest.importorskip("sigstore_models.common.v1")
    client = client_module.RekorV2Client("http://127.0.0.1:9")
    digest = hashlib.sha256(ARTIFACT).digest()
    hashed = hashes_module.Hashed(algorithm=models.HashAlgorithm.SHA2_256, digest=digest)
    request = dict(client._build_hashed_rekord_request(
        hashed, sign_digest(p256(), digest, "sha256"), leaf()))
    entry = canonicalize_v2(request)
    inner = request["hashedRekordRequestV002"]
    assert entry.body == rfc8785.dumps({"apiVersion": "0.0.2", "kind": "hashedrekord", "spec": {
        "hashedRekordV002": {"data": {"algorithm": "SHA2_256", "digest": inner["digest"]},
                             "signature": inner["signature"]}}})

    env = _sigstore_envelope()
    entry = canonicalize_v2(dict(client._build_dsse_request(env, leaf())))
    body = parsed(entry)
    assert body.digest == hashlib.sha256(env.pae()).digest()
    assert body.signatures[0].signature == env.signature


def test_v1_bodies_match_rekor_openapi_models() -> None:
    """sigstore-python's generated Rekor v1 models (from Rekor's own schemas) accept our bodies."""
    rekor_types = pytest.importorskip("rekor_types")
    bodies = {
        "hashedrekord": canonicalize_v1(default_v1()).body,
        "dsse": canonicalize_v1(_dsse_request()).body,
        "intoto": canonicalize_v1(_intoto_request()).body,
    }
    models = {"hashedrekord": rekor_types.Hashedrekord, "dsse": rekor_types.Dsse,
              "intoto": rekor_types.Intoto}
    for kind, body in bodies.items():
        model = models[kind].model_validate_json(body)
        assert model.kind == kind


# -- fuzzing: nothing but LogEntryInvalidError ever escapes -----------------------------------
_NAMES = st.sampled_from([
    "apiVersion", "kind", "spec", "data", "hash", "algorithm", "value", "signature", "content",
    "publicKey", "proposedContent", "envelope", "verifiers", "payload", "payloadType",
    "signatures", "sig", "keyid", "payloadHash", "hashedRekordRequestV002", "dsseRequestV002",
    "digest", "verifier", "keyDetails", "x509Certificate", "rawBytes", "hashedrekord", "dsse",
    "intoto", "0.0.1", "0.0.2", "sha256", "PKIX_ECDSA_P256_SHA_256", "PKIX_ED25519",
])
_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
            | st.text(max_size=20) | _NAMES | st.sampled_from(["AAAA", "", "=", "-_", "00" * 32]))
_JSON = st.recursive(_SCALARS, lambda children: st.lists(children, max_size=4)
                     | st.dictionaries(_NAMES | st.text(max_size=8), children, max_size=5),
                     max_leaves=25)


def _check_only_ours(function: Callable[[Any], CanonicalEntry], request: Any) -> None:
    try:
        function(request)
    except LogEntryInvalidError as exc:
        assert exc.code == "LOG_ENTRY_INVALID"
        assert entries._INTERNAL not in exc.message


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_JSON)
def test_fuzz_garbage_json(value: Any) -> None:
    _check_only_ours(canonicalize_v1, value)
    _check_only_ours(canonicalize_v2, value)
    _check_only_ours(canonicalize_v1, {"apiVersion": "0.0.1", "kind": "dsse", "spec": value})
    _check_only_ours(canonicalize_v1, {"apiVersion": "0.0.2", "kind": "intoto", "spec": value})
    _check_only_ours(canonicalize_v1, {"apiVersion": "0.0.1", "kind": "hashedrekord",
                                       "spec": value})
    _check_only_ours(canonicalize_v2, {"hashedRekordRequestV002": value})
    _check_only_ours(canonicalize_v2, {"dsseRequestV002": value})


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            out.extend(_paths(child, prefix + (key,)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out.extend(_paths(child, prefix + (index,)))
    return out


@functools.cache
def _templates() -> tuple[tuple[Callable[[Any], CanonicalEntry], dict[str, Any]], ...]:
    env = envelope(PAYLOAD, [p256()])
    return (
        (canonicalize_v1, default_v1()),
        (canonicalize_v1, v1_dsse(env, [cert_pem(leaf())])),
        (canonicalize_v1, v1_intoto(PAYLOAD, [(p256(), cert_pem(leaf()))])),
        (canonicalize_v2, default_v2()),
        (canonicalize_v2, v2_dsse(env, [verifier_v2("PKIX_ECDSA_P256_SHA_256", cert=leaf())])),
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_mutated_valid_requests(data: st.DataObject) -> None:
    function, template = data.draw(st.sampled_from(_templates()))
    path = data.draw(st.sampled_from(_paths(template)))
    replacement = data.draw(_JSON | st.just(DELETE))
    _check_only_ours(function, mutate(template, path, replacement))


# -- the certificate memo ----------------------------------------------------------------------
def test_memoised_certificate_still_checks_key_details_and_signature() -> None:
    # The same certificate is remembered after its first entry (the signer logs many under
    # one): a later request with the same bytes but other keyDetails, or another signature,
    # is still refused, and the remembered identity still becomes a search key.
    first = canonicalize_v2(default_v2())
    again = canonicalize_v2(v2_hashedrekord(p256(), verifier_v2("PKIX_ECDSA_P256_SHA_256",
                                                                cert=leaf()), data=b"other"))
    assert ("identity", DEFAULT_IDENTITY) in first.search_keys
    assert ("identity", DEFAULT_IDENTITY) in again.search_keys
    assert (leaf().public_bytes(serialization.Encoding.DER), "PKIX_ECDSA_P256_SHA_256") \
        in entries._CERTIFICATES
    refused(canonicalize_v2, v2_hashedrekord(p256(), verifier_v2("PKIX_ECDSA_P384_SHA_384",
                                                                 cert=leaf())),
            "does not match its key details")
    flipped = default_v2()
    sig = bytearray(base64.b64decode(flipped["hashedRekordRequestV002"]["signature"]["content"]))
    sig[-1] ^= 1
    flipped["hashedRekordRequestV002"]["signature"]["content"] = b64(bytes(sig))
    refused(canonicalize_v2, flipped, "does not verify")


def test_certificate_memo_is_bounded() -> None:
    for i in range(entries._MEMO_LIMIT + 5):
        entries._CERTIFICATES.put((b"k%d" % i, "x"), None)  # type: ignore[arg-type]
    assert len(entries._CERTIFICATES) <= entries._MEMO_LIMIT
    entries._CERTIFICATES.clear()


def test_memoised_v1_certificate_still_checks_the_signature() -> None:
    first = canonicalize_v1(default_v1())
    assert base64.b64decode(default_v1()["spec"]["signature"]["publicKey"]["content"]) \
        in entries._PEM_CERTIFICATES
    again = canonicalize_v1(v1_hashedrekord(p256(), cert_pem(leaf()), data=b"other"))
    assert ("identity", DEFAULT_IDENTITY) in first.search_keys
    assert ("identity", DEFAULT_IDENTITY) in again.search_keys
    flipped = default_v1()
    sig = bytearray(base64.b64decode(flipped["spec"]["signature"]["content"]))
    sig[-1] ^= 1
    flipped["spec"]["signature"]["content"] = b64(bytes(sig))
    refused(canonicalize_v1, flipped, "does not verify")
