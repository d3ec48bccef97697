"""Reading cosign's detached files, and which log entries record a detached pair."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sealtrail.errors import InputError
from sealtrail.sign.detached import _Pair, read_detached_certificate, read_detached_signature
from tests.samples import RELEASE

BUNDLE = json.loads((RELEASE / "hello.txt.sigstore.json").read_text())
DER = base64.b64decode(BUNDLE["verificationMaterial"]["certificate"]["rawBytes"])
CERT = x509.load_der_x509_certificate(DER)
PEM = CERT.public_bytes(Encoding.PEM)
SIGNATURE = base64.b64decode(BUNDLE["messageSignature"]["signature"])
DIGEST = base64.b64decode(BUNDLE["messageSignature"]["messageDigest"]["digest"])
BODY = json.loads(base64.b64decode(
    BUNDLE["verificationMaterial"]["tlogEntries"][0]["canonicalizedBody"]))
PAIR = _Pair(DIGEST, SIGNATURE, DER, CERT.public_key().public_bytes(
    Encoding.DER, PublicFormat.SubjectPublicKeyInfo))


@pytest.mark.parametrize("text", [PEM, b"\n" + PEM + b"\n", base64.b64encode(PEM),
                                  base64.b64encode(PEM) + b"\n"])
def test_a_certificate_file_is_pem_or_base64_of_pem_as_cosign_writes(text: bytes) -> None:
    assert read_detached_certificate(text) == CERT


@pytest.mark.parametrize("text", [b"", b"not a certificate", base64.b64encode(b"junk"), DER])
def test_anything_else_is_an_input_error(text: bytes) -> None:
    with pytest.raises(InputError):
        read_detached_certificate(text)


def test_a_signature_file_is_base64() -> None:
    assert read_detached_signature(base64.b64encode(SIGNATURE) + b"\n") == SIGNATURE
    for text in (b"", b"%%%"):
        with pytest.raises(InputError):
            read_detached_signature(text)


def test_the_logged_entry_of_the_pair_matches_and_others_do_not() -> None:
    assert PAIR.matches_v1(BODY)
    assert not PAIR._replace(signature=SIGNATURE[:-1] + b"\0").matches_v1(BODY)
    assert not PAIR._replace(digest=b"\0" * 32).matches_v1(BODY)
    assert not PAIR._replace(certificate_der=b"other").matches_v1(BODY)
    assert not PAIR.matches_v1({**BODY, "kind": "dsse"})
    assert not PAIR.matches_v1({"spec": None})


def test_a_rekor_v2_entry_matches_by_certificate_or_its_key() -> None:
    def body(verifier: dict[str, object]) -> dict[str, object]:
        return {"apiVersion": "0.0.2", "kind": "hashedrekord", "spec": {"hashedRekordV002": {
            "data": {"algorithm": "SHA2_256", "digest": base64.b64encode(DIGEST).decode()},
            "signature": {"content": base64.b64encode(SIGNATURE).decode(),
                          "verifier": verifier}}}}

    by_certificate = body({"x509Certificate": {"rawBytes": base64.b64encode(DER).decode()}})
    by_key = body({"publicKey": {"rawBytes": base64.b64encode(PAIR.spki_der).decode()}})
    assert PAIR.matches_v2(by_certificate) and PAIR.matches_v2(by_key)
    assert not PAIR.matches_v2(body({"publicKey": {"rawBytes": "AAAA"}}))
    assert not PAIR.matches_v1(by_certificate) and not PAIR.matches_v2(BODY)
