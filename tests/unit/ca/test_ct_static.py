"""The static-ct-api encodings of the CT log, and the CA logging each precertificate first.

The expected structures are rebuilt here with struct.pack from the specs (RFC 6962 §3.2-3.5,
C2SP static-ct-api), not with the functions under test. SCTs with the leaf_index extension
are checked by sealtrail's verifier and by sigstore-python's SCT check (an oracle).
"""

from __future__ import annotations

import base64
import hashlib
import struct
from datetime import timedelta
from typing import Any, Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sealtrail.ca.authority import CertificateAuthority
from sealtrail.ca.ctlog import (
    MAX_LEAF_INDEX,
    POISON_OID,
    SCT_LIST_OID,
    CTLog,
    leaf_index_extension,
    merkle_leaf_hash,
    parse_leaf_index,
    read_tile_leaf,
    rfc6962_note_key_id,
    tile_leaf,
    timestamped_entry,
)
from sealtrail.ca.identities import IDENTITY_TYPES, IssuerSettings, Principal, principal_from_claims
from sealtrail.ca.keys import create_ca, create_ct_key
from sealtrail.errors import CertificateRequestInvalidError, Error, ServiceUnavailableError
from sealtrail.models.checkpoint import Checkpoint, SignedNote
from sealtrail.models.trusted_root import CertificateAuthority as TrustedCA
from sealtrail.models.trusted_root import TransparencyLog, ValidityWindow
from sealtrail.crypto.keys import PublicKey
from sealtrail.verify._certificate import verify_certificate
from tests.unit.ca._support import NOW, TestCA, email_claims, sigstore_ct_keyring

TS = 1_790_000_000_123
AT = NOW + timedelta(minutes=1)


def spki(key: Any) -> bytes:
    der: bytes = key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return der


def expected_entry(ts: int, key_hash: bytes, tbs: bytes, ext: bytes) -> bytes:
    # SPEC: RFC 6962 §3.4 TimestampedEntry: u64 timestamp, u16 entry_type precert_entry(1),
    # issuer_key_hash[32], u24-prefixed TBS, u16-prefixed CtExtensions.
    return (struct.pack(">QH", ts, 1) + key_hash + len(tbs).to_bytes(3, "big") + tbs
            + struct.pack(">H", len(ext)) + ext)


class MemoryAppender:
    """A LeafAppender over a list: the index is the list's length."""

    def __init__(self) -> None:
        self.leaves: list[bytes] = []

    def __call__(self, build: Callable[[int], bytes]) -> int:
        index = len(self.leaves)
        self.leaves.append(build(index))
        return index


# -- leaf_index ---------------------------------------------------------------------------


@pytest.mark.parametrize("index, wire", [
    (0, b"\x00\x00\x05\x00\x00\x00\x00\x00"),
    (0x0102030405, b"\x00\x00\x05\x01\x02\x03\x04\x05"),
    (MAX_LEAF_INDEX, b"\x00\x00\x05\xff\xff\xff\xff\xff"),
])
def test_leaf_index_extension_wire_format(index: int, wire: bytes) -> None:
    # SPEC: static-ct-api: extension_type leaf_index(0), u16 length 5, uint40 big-endian.
    assert leaf_index_extension(index) == wire
    assert parse_leaf_index(wire) == index


@pytest.mark.parametrize("index", [-1, MAX_LEAF_INDEX + 1, True])
def test_leaf_index_out_of_range(index: Any) -> None:
    with pytest.raises(ValueError):
        leaf_index_extension(index)


@pytest.mark.parametrize("extensions, message", [
    (b"", "found 0"),
    (leaf_index_extension(1) + leaf_index_extension(2), "found 2"),
    (b"\x00\x00\x04\x00\x00\x00\x01", "not 5 bytes"),
    (b"\x00\x00", "header"),
    (b"\x00\x00\x05\x00", "inside an extension"),
])
def test_parse_leaf_index_refuses(extensions: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_leaf_index(extensions)


def test_other_extensions_are_skipped() -> None:
    other = b"\x07\x00\x02ab"
    assert parse_leaf_index(other + leaf_index_extension(9) + other) == 9


# -- TimestampedEntry, TileLeaf, Merkle leaf hash ----------------------------------------------


def test_tile_leaf_encoding_and_parse() -> None:
    key_hash, tbs, precert = b"k" * 32, b"\x30\x03\x02\x01\x05", b"\x30\x82precert"
    fps = [b"a" * 32, b"b" * 32]
    ext = leaf_index_extension(42)
    entry = timestamped_entry(TS, key_hash, tbs, ext)
    assert entry == expected_entry(TS, key_hash, tbs, ext)
    leaf_bytes = tile_leaf(entry, precert, fps)
    # SPEC: static-ct-api TileLeaf: TimestampedEntry, then PrecertificateEntry
    # {u24-prefixed pre_certificate, u16-prefixed Fingerprint list}.
    assert leaf_bytes == (entry + len(precert).to_bytes(3, "big") + precert
                          + struct.pack(">H", 64) + fps[0] + fps[1])
    leaf, end = read_tile_leaf(leaf_bytes)
    assert end == len(leaf_bytes)
    assert (leaf.timestamp, leaf.issuer_key_hash, leaf.tbs, leaf.extensions,
            leaf.precertificate, leaf.chain_fingerprints, leaf.timestamped_entry) == (
        TS, key_hash, tbs, ext, precert, tuple(fps), entry)
    assert leaf.leaf_index == 42


def test_data_tile_is_leaves_back_to_back() -> None:
    leaves = [tile_leaf(timestamped_entry(TS + i, b"k" * 32, b"t" * (i + 1),
                                          leaf_index_extension(i)), b"p" * (i + 3), [])
              for i in range(3)]
    data, offset, seen = b"".join(leaves), 0, []
    while offset < len(data):
        leaf, offset = read_tile_leaf(data, offset)
        seen.append(leaf.leaf_index)
    assert seen == [0, 1, 2]


def test_merkle_leaf_hash_is_rfc6962_over_the_timestamped_entry() -> None:
    entry = timestamped_entry(TS, b"k" * 32, b"tbs", leaf_index_extension(7))
    leaf_bytes = tile_leaf(entry, b"precert", [b"f" * 32])
    # SPEC: RFC 6962 §2.1/§3.4: SHA-256(0x00 || version v1(0) || leaf_type
    # timestamped_entry(0) || TimestampedEntry); the precertificate is not hashed.
    assert merkle_leaf_hash(leaf_bytes) == hashlib.sha256(b"\x00\x00\x00" + entry).digest()
    assert merkle_leaf_hash(tile_leaf(entry, b"other", [])) == merkle_leaf_hash(leaf_bytes)


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b[:-1], "truncated"),
    (lambda b: b + b"x", "trailing"),
    (lambda b: b[:8] + b"\x00\x00" + b[10:], "not a precert_entry"),
])
def test_malformed_tile_leaf_is_refused(mutate: Callable[[bytes], bytes], message: str) -> None:
    good = tile_leaf(timestamped_entry(TS, b"k" * 32, b"tbs", b""), b"precert", [b"f" * 32])
    with pytest.raises(ValueError, match=message):
        merkle_leaf_hash(mutate(good))


def test_fingerprints_must_be_whole_hashes() -> None:
    entry = timestamped_entry(TS, b"k" * 32, b"tbs", b"")
    bad = entry + b"\x00\x00\x01p" + b"\x00\x05abcde"
    with pytest.raises(ValueError, match="whole number"):
        read_tile_leaf(bad)
    with pytest.raises(ValueError):
        tile_leaf(entry, b"p", [b"short"])


# -- checkpoints --------------------------------------------------------------------------------


def test_checkpoint_carries_a_verifiable_rfc6962_note_signature() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    log = CTLog(key)
    origin, root = "ct.example/ct", hashlib.sha256(b"root").digest()
    body = Checkpoint(origin, 17, root).to_body()
    note = SignedNote.from_text(log.sign_checkpoint(body, TS))
    assert note.body == body and len(note.signatures) == 1
    signature = note.signatures[0]
    assert signature.name == origin
    # SPEC: static-ct-api: key id = SHA-256(name || 0x0A || 0x05 || LogID)[:4].
    log_id = hashlib.sha256(spki(key.public_key())).digest()
    assert signature.key_hint == hashlib.sha256(origin.encode() + b"\n\x05" + log_id).digest()[:4]
    assert signature.key_hint == rfc6962_note_key_id(origin, log.log_id)
    # RFC6962NoteSignature: u64 timestamp, then DigitallySigned (sha256(4), ecdsa(3), u16 len).
    blob = signature.signature
    (timestamp,) = struct.unpack(">Q", blob[:8])
    assert timestamp == TS and blob[8:10] == b"\x04\x03"
    (length,) = struct.unpack(">H", blob[10:12])
    assert len(blob) == 12 + length
    # SPEC: RFC 6962 §3.5 TreeHeadSignature: v1(0), tree_hash(1), timestamp, size, root.
    signed = struct.pack(">BBQQ", 0, 1, TS, 17) + root
    key.public_key().verify(blob[12:], signed, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(Exception):
        key.public_key().verify(blob[12:], struct.pack(">BBQQ", 0, 1, TS, 18) + root,
                                ec.ECDSA(hashes.SHA256()))


# -- the CA logs before it returns --------------------------------------------------------------


def principal() -> Principal:
    url = "https://accounts.example.com"
    return principal_from_claims(IDENTITY_TYPES["email"], email_claims(),
                                 IssuerSettings(url, url))


def logging_ca(append: Any) -> TestCA:
    material = create_ca("sealtrail.test", "sealtrail test CA", now=NOW - timedelta(days=1))
    ct_log = CTLog(create_ct_key(), append=append)
    authority = CertificateAuthority(material.intermediate_key, material.chain, ct_log,
                                     lambda: NOW)
    window = ValidityWindow(NOW - timedelta(days=1))
    return TestCA(material, ct_log, authority,
                  TrustedCA("https://ca.test", tuple(material.chain), window),
                  TransparencyLog("https://ct.test", PublicKey.from_key(ct_log.public_key),
                                  window, ct_log.log_id))


@pytest.fixture(scope="module")
def logged() -> tuple[TestCA, MemoryAppender]:
    appender = MemoryAppender()
    appender.leaves.extend([b"earlier"] * 3)  # the log is not empty: index 3 comes next
    return logging_ca(appender), appender


def test_issued_certificate_is_logged_first_and_its_sct_names_the_entry(
        logged: tuple[TestCA, MemoryAppender]) -> None:
    from sigstore._internal.sct import verify_sct

    ca, appender = logged
    chain = ca.authority.issue(ec.generate_private_key(ec.SECP256R1()).public_key(),
                               principal())
    leaf = chain[0]
    assert len(appender.leaves) == 4
    stored, end = read_tile_leaf(appender.leaves[3])
    assert end == len(appender.leaves[3])
    # The entry: the certificate's TBS minus SCT list, the issuer's key hash, leaf_index 3.
    assert stored.tbs == leaf.tbs_precertificate_bytes
    assert stored.issuer_key_hash == hashlib.sha256(spki(chain[1].public_key())).digest()
    assert stored.leaf_index == 3
    assert stored.chain_fingerprints == tuple(c.fingerprint(hashes.SHA256()) for c in chain[1:])
    # The precertificate: poisoned (critical), signed by the real intermediate.
    precert = x509.load_der_x509_certificate(stored.precertificate)
    poison = precert.extensions.get_extension_for_oid(x509.ObjectIdentifier(POISON_OID))
    assert poison.critical
    precert.verify_directly_issued_by(chain[1])
    # Same certificate but for the poison (precertificate) and the SCT list (final).
    assert [e for e in precert.extensions if e.oid.dotted_string != POISON_OID] == [
        e for e in leaf.extensions if e.oid.dotted_string != SCT_LIST_OID]
    assert (precert.serial_number, precert.public_key(), precert.not_valid_before_utc) == (
        leaf.serial_number, leaf.public_key(), leaf.not_valid_before_utc)
    # The SCT: same timestamp, the same extensions as the stored entry.
    scts = leaf.extensions.get_extension_for_class(
        x509.PrecertificateSignedCertificateTimestamps).value
    (sct,) = list(scts)
    assert sct.extension_bytes == leaf_index_extension(3) == stored.extensions
    assert int(sct.timestamp.replace(tzinfo=NOW.tzinfo).timestamp() * 1000) == stored.timestamp
    # ... and it verifies, over data that includes the extension (both verifiers).
    assert verify_certificate(leaf, [ca.trusted_ca], [ca.trusted_ct], AT) == chain
    verify_sct(leaf, chain[1:], sigstore_ct_keyring(ca))


def test_sct_signature_covers_the_extension(logged: tuple[TestCA, MemoryAppender]) -> None:
    ca, appender = logged
    leaf = ca.authority.issue(ec.generate_private_key(ec.SECP256R1()).public_key(),
                              principal())[0]
    stored, _ = read_tile_leaf(appender.leaves[-1])
    (sct,) = list(leaf.extensions.get_extension_for_class(
        x509.PrecertificateSignedCertificateTimestamps).value)
    signature = sct.signature
    # SPEC: RFC 6962 §3.2: v1(0), certificate_timestamp(0), then the TimestampedEntry.
    signed = b"\x00\x00" + stored.timestamped_entry
    ca.ct_log.public_key.verify(signature, signed, ec.ECDSA(hashes.SHA256()))
    other = b"\x00\x00" + timestamped_entry(stored.timestamp, stored.issuer_key_hash,
                                            stored.tbs, leaf_index_extension(0))
    with pytest.raises(Exception):
        ca.ct_log.public_key.verify(signature, other, ec.ECDSA(hashes.SHA256()))


def test_no_certificate_when_the_log_cannot_sequence() -> None:
    issued: list[Any] = []

    def failing(build: Callable[[int], bytes]) -> int:
        build(0)
        raise ServiceUnavailableError("the CT log cannot sequence the precertificate")

    ca = logging_ca(failing)
    authority = CertificateAuthority(ca.material.intermediate_key, ca.material.chain,
                                     ca.ct_log, lambda: NOW,
                                     on_issue=lambda leaf, who: issued.append(leaf))
    with pytest.raises(ServiceUnavailableError):
        authority.issue(ec.generate_private_key(ec.SECP256R1()).public_key(), principal())
    assert issued == []


@pytest.mark.parametrize("bad", [-1, None, True, MAX_LEAF_INDEX + 1])
def test_an_invalid_index_from_the_log_is_an_internal_error(bad: Any) -> None:
    ca = logging_ca(lambda build: bad)
    with pytest.raises(Error, match="invalid index") as info:
        ca.authority.issue(ec.generate_private_key(ec.SECP256R1()).public_key(), principal())
    assert not isinstance(info.value, CertificateRequestInvalidError)


def test_add_pre_chain_logs_and_names_the_entry(logged: tuple[TestCA, MemoryAppender]) -> None:
    ca, appender = logged
    chain = ca.material.chain
    fields = (ec.generate_private_key(ec.SECP256R1()).public_key(), chain[0].subject,
              x509.random_serial_number(), NOW, NOW + timedelta(minutes=10))
    # A precertificate as a Fulcio would send it, and its twin without poison.
    precert = ca.authority._builder(*fields, [(x509.PrecertPoison(), True)]).sign(
        ca.material.intermediate_key, hashes.SHA384())
    twin = ca.authority._builder(*fields, []).sign(ca.material.intermediate_key,
                                                   hashes.SHA384())
    body = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
            for c in (precert, *chain)]
    before = len(appender.leaves)
    response = ca.ct_log.add_pre_chain(body, [chain[-1]], TS, issuers=chain)
    assert len(appender.leaves) == before + 1
    assert base64.b64decode(response["extensions"]) == leaf_index_extension(before)
    stored, _ = read_tile_leaf(appender.leaves[-1])
    assert stored.precertificate == precert.public_bytes(serialization.Encoding.DER)
    assert stored.tbs == twin.tbs_certificate_bytes and stored.timestamp == TS
    # A chain naming an issuer the log does not serve is refused, and nothing is logged.
    with pytest.raises(CertificateRequestInvalidError, match="does not serve"):
        ca.ct_log.add_pre_chain(body, [chain[-1]], TS, issuers=chain[1:])
    assert len(appender.leaves) == before + 1


def test_without_a_log_nothing_changes() -> None:
    log = CTLog(create_ct_key())
    assert not log.keeps_log and CTLog(create_ct_key(), append=MemoryAppender()).keeps_log
