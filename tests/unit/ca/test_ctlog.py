"""The in-process CT log: SCT wire format, signed data, SCT lists and add-pre-chain.

The expected RFC 6962 structures are rebuilt here independently (struct.pack) and the
add-pre-chain path is checked end to end: an SCT for a poisoned precertificate verifies on
the final certificate built from it.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from datetime import timedelta
from typing import Any

import pytest
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sealtrail.ca.ctlog import SCT_LIST_OID, CTLog, add_pre_chain_response, sct_list
from sealtrail.errors import CertificateRequestInvalidError, ConfigInvalidError
from sealtrail.verify._certificate import verify_certificate
from tests.unit.ca._support import NOW, TestCA, make_ca

E = CertificateRequestInvalidError
TS = 1_790_000_000_123


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return make_ca()


def spki(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def test_key_must_be_p256() -> None:
    with pytest.raises(ConfigInvalidError, match="P-256"):
        CTLog(ec.generate_private_key(ec.SECP384R1()))  # type: ignore[arg-type]


def test_log_id_is_sha256_of_spki() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    log = CTLog(key)
    assert log.log_id == hashlib.sha256(spki(key.public_key())).digest()
    assert log.public_key_der == spki(key.public_key())


@pytest.mark.parametrize("extensions", [b"", b"\x00\x01\x02"])
def test_sct_wire_format_and_signature(extensions: bytes) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    log = CTLog(key)
    tbs, issuer = b"\x30\x03\x02\x01\x01", b"issuer-spki"
    sct = log.sign_precert(tbs, issuer, TS, extensions)
    # SPEC: sigstore-wire.md §2: u8 version | log_id[32] | u64 ts | u16+ext | u8 hash=4 |
    # u8 sig=3 | u16+DER signature.
    head = 1 + 32 + 8
    assert sct[0] == 0 and sct[1:33] == log.log_id
    assert struct.unpack(">Q", sct[33:41])[0] == TS
    assert struct.unpack(">H", sct[head:head + 2])[0] == len(extensions)
    rest = sct[head + 2 + len(extensions):]
    assert sct[head + 2:head + 2 + len(extensions)] == extensions
    assert rest[0] == 4 and rest[1] == 3
    (sig_len,) = struct.unpack(">H", rest[2:4])
    signature = rest[4:]
    assert len(signature) == sig_len
    signed = (struct.pack(">BBQH", 0, 0, TS, 1) + hashlib.sha256(issuer).digest()
              + len(tbs).to_bytes(3, "big") + tbs + struct.pack(">H", len(extensions))
              + extensions)
    key.public_key().verify(signature, signed, ec.ECDSA(hashes.SHA256()))


def test_sign_precert_bounds() -> None:
    log = CTLog(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ValueError):
        log.sign_precert(b"", b"i", TS)
    with pytest.raises(ValueError):
        log.sign_precert(b"t", b"i", -1)
    with pytest.raises(ValueError):
        log.sign_precert(b"t", b"i", TS, b"x" * 70000)


def test_sct_list_framing() -> None:
    assert sct_list([b"ab", b"cde"]) == b"\x00\x09" + b"\x00\x02ab" + b"\x00\x03cde"
    with pytest.raises(ValueError):
        sct_list([])
    with pytest.raises(ValueError):
        sct_list([b"x" * 70000])


def test_add_pre_chain_response_shape() -> None:
    log = CTLog(ec.generate_private_key(ec.SECP256R1()))
    sct = log.sign_precert(b"\x30\x00", b"i", TS, b"\x05")
    response = add_pre_chain_response(sct)
    assert set(response) == {"sct_version", "id", "timestamp", "extensions", "signature"}
    assert response["sct_version"] == 0 and response["timestamp"] == TS
    assert base64.b64decode(response["id"]) == log.log_id
    assert base64.b64decode(response["extensions"]) == b"\x05"
    # The signature field is the whole TLS DigitallySigned struct: hash, sig alg, length, DER.
    signed = base64.b64decode(response["signature"])
    assert signed[:2] == b"\x04\x03" and struct.unpack(">H", signed[2:4])[0] == len(signed) - 4


# -- add-pre-chain ------------------------------------------------------------------------------

def precert_and_final(ca: TestCA, *, poison: bool = True, poison_critical: bool = True,
                      signer: Any = None) -> tuple[x509.Certificate, Any]:
    """A poisoned precertificate, and a function that builds the final cert from an SCT."""
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    inter_key = ca.material.intermediate_key
    serial = x509.random_serial_number()

    def builder(extra: list[tuple[x509.ExtensionType, bool]]) -> x509.CertificateBuilder:
        b = (x509.CertificateBuilder().subject_name(x509.Name([]))
             .issuer_name(ca.material.intermediate_cert.subject)
             .public_key(leaf_key.public_key()).serial_number(serial)
             .not_valid_before(NOW).not_valid_after(NOW + timedelta(minutes=10))
             .add_extension(x509.KeyUsage(True, False, False, False, False, False, False,
                                          False, False), critical=True)
             .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.CODE_SIGNING]),
                            critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                 inter_key.public_key()), critical=False)
             .add_extension(x509.SubjectAlternativeName(
                 [x509.RFC822Name("alice@example.com")]), critical=True))
        for ext, critical in extra:
            b = b.add_extension(ext, critical)
        return b

    extra = [(x509.PrecertPoison(), poison_critical)] if poison else []
    precert = builder(extra).sign(signer or inter_key, hashes.SHA384())

    def final(sct: bytes) -> x509.Certificate:
        value = core.OctetString(sct_list([sct])).dump()
        ext = x509.UnrecognizedExtension(x509.ObjectIdentifier(SCT_LIST_OID), value)
        return builder([(ext, False)]).sign(inter_key, hashes.SHA384())

    return precert, final


def b64der(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def rebuild_sct(response: dict[str, Any]) -> bytes:
    ext = base64.b64decode(response["extensions"])
    return (bytes([response["sct_version"]]) + base64.b64decode(response["id"])
            + struct.pack(">Q", response["timestamp"]) + struct.pack(">H", len(ext)) + ext
            + base64.b64decode(response["signature"]))


def test_add_pre_chain_sct_verifies_on_the_final_certificate(ca: TestCA) -> None:
    precert, final = precert_and_final(ca)
    chain = [b64der(precert)] + [b64der(c) for c in ca.material.chain]
    response = ca.ct_log.add_pre_chain(chain, [ca.material.root_cert],
                                       int(NOW.timestamp() * 1000))
    leaf = final(rebuild_sct(response))
    # The poison-stripped precert TBS is byte-identical to the final TBS minus the SCT list.
    verify_certificate(leaf, [ca.trusted_ca], [ca.trusted_ct], NOW + timedelta(minutes=1))


def test_add_pre_chain_needs_a_chain(ca: TestCA) -> None:
    precert, _ = precert_and_final(ca)
    with pytest.raises(E, match="precertificate and its issuer chain"):
        ca.ct_log.add_pre_chain([b64der(precert)], [ca.material.root_cert], TS)
    with pytest.raises(E, match="must be a JSON array"):
        ca.ct_log.add_pre_chain("x", [ca.material.root_cert], TS)
    with pytest.raises(E, match="too many"):
        ca.ct_log.add_pre_chain([b64der(precert)] * 9, [ca.material.root_cert], TS)


def test_add_pre_chain_needs_an_accepted_root(ca: TestCA) -> None:
    precert, _ = precert_and_final(ca)
    chain = [b64der(precert)] + [b64der(c) for c in ca.material.chain]
    other = make_ca()
    with pytest.raises(E, match="not end in a root accepted"):
        ca.ct_log.add_pre_chain(chain, [other.material.root_cert], TS)


def test_add_pre_chain_links_must_verify(ca: TestCA) -> None:
    precert, _ = precert_and_final(ca, signer=ec.generate_private_key(ec.SECP384R1()))
    chain = [b64der(precert)] + [b64der(c) for c in ca.material.chain]
    with pytest.raises(E, match=r"chain\[0\] is not issued by chain\[1\]"):
        ca.ct_log.add_pre_chain(chain, [ca.material.root_cert], TS)


@pytest.mark.parametrize("kwargs", [{"poison": False}, {"poison_critical": False}])
def test_add_pre_chain_needs_a_critical_poison(ca: TestCA, kwargs: dict[str, bool]) -> None:
    precert, _ = precert_and_final(ca, **kwargs)
    chain = [b64der(precert)] + [b64der(c) for c in ca.material.chain]
    with pytest.raises(E, match="poison"):
        ca.ct_log.add_pre_chain(chain, [ca.material.root_cert], TS)


@pytest.mark.parametrize("item, match", [("%%", "not valid base64"),
                                         (base64.b64encode(b"junk").decode(), "not a DER")])
def test_add_pre_chain_malformed_certificates(ca: TestCA, item: str, match: str) -> None:
    chain = [item] + [b64der(c) for c in ca.material.chain]
    with pytest.raises(E, match=match):
        ca.ct_log.add_pre_chain(chain, [ca.material.root_cert], TS)
