"""The instance's Certificate Transparency log: SCTs, and the static-ct-api log entries.

A :class:`CTLog` signs SCTs with the CT log key listed in the trusted root's ``ctlogs``. Given
an ``append`` step (the server layer's tile log, see ``sealtrail.server.ct_log``), it is a
real log: :meth:`CTLog.log_precert` has the precertificate durably sequenced as a
static-ct-api ``TileLeaf`` before it signs the SCT, whose ``leaf_index`` extension names that
entry. Without one (tests, dry runs) it only signs.

This module holds the byte encodings of that log (TimestampedEntry, TileLeaf, the RFC 6962
Merkle leaf hash, the leaf_index extension, the RFC6962NoteSignature of checkpoints); it
does no I/O and imports no storage: the ``log`` package is a sibling layer.

SPEC: RFC 6962 §3.2 (SignedCertificateTimestamp, precert_entry signed data), §3.3
(SignedCertificateTimestampList), §3.4 (MerkleTreeLeaf), §3.5 (TreeHeadSignature), §4.1
(add-pre-chain); C2SP static-ct-api (TileLeaf, leaf_index, checkpoints); sigstore-wire.md §2.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from sealtrail._internal.encoding import b64decode, require_list
from sealtrail.errors import (
    CertificateRequestInvalidError,
    ConfigInvalidError,
    Error,
)
from sealtrail.models.checkpoint import Checkpoint, NoteSignature, SignedNote

__all__ = [
    "CTLog",
    "LeafAppender",
    "MAX_LEAF_INDEX",
    "POISON_OID",
    "SCT_LIST_OID",
    "TileLeaf",
    "add_pre_chain_response",
    "leaf_index_extension",
    "merkle_leaf_hash",
    "parse_leaf_index",
    "precert_tbs",
    "read_tile_leaf",
    "rfc6962_note_key_id",
    "sct_list",
    "tile_leaf",
    "timestamped_entry",
    "tree_head_signed_data",
]

# SPEC: RFC 6962 §3.1: precertificate poison, critical, DER NULL; §3.3: embedded SCT list.
POISON_OID = "1.3.6.1.4.1.11129.2.4.3"
SCT_LIST_OID = "1.3.6.1.4.1.11129.2.4.2"

# SPEC: RFC 5246 §7.4.1.4.1: HashAlgorithm sha256(4), SignatureAlgorithm ecdsa(3).
_TLS_SHA256 = 4
_TLS_ECDSA = 3
# RFC 6962 §3.2 vector bounds: TBSCertificate<1..2^24-1>, CtExtensions<0..2^16-1>.
_MAX_TBS = 2**24 - 1
_MAX_EXTENSIONS = 2**16 - 1
# SPEC: RFC 6962 §3.1 ASN.1Cert<1..2^24-1>; static-ct-api Fingerprint<0..2^16-1>.
_MAX_CERT = 2**24 - 1
_MAX_FINGERPRINTS = (2**16 - 1) // 32
# SPEC: RFC 6962 §3.2 LogEntryType precert_entry(1); §3.4 MerkleLeafType timestamped_entry(0);
# Version v1(0); §3.2/§3.5 SignatureType certificate_timestamp(0), tree_hash(1).
_PRECERT_ENTRY = 1
_V1 = 0
_TIMESTAMPED_ENTRY = 0
_TREE_HASH = 1
# SPEC: static-ct-api: ExtensionType leaf_index(0); LeafIndex is a uint40.
_LEAF_INDEX_TYPE = 0
_LEAF_INDEX_BYTES = 5
MAX_LEAF_INDEX = 2**40 - 1
# SPEC: C2SP signed-note: signature type 0x05 identifies an RFC6962NoteSignature.
_NOTE_TYPE_RFC6962 = b"\x05"
# add-pre-chain: a precertificate and its issuers; Fulcio chains have 3 certificates.
MAX_CHAIN_CERTS = 8
MAX_CERT_BYTES = 64 * 1024

E = CertificateRequestInvalidError


def _spki(public_key: CertificatePublicKeyTypes) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def sct_list(scts: Sequence[bytes]) -> bytes:
    """TLS-encode a ``SignedCertificateTimestampList`` (RFC 6962 §3.3).

    ``opaque SerializedSCT<1..2^16-1>; SerializedSCT sct_list<1..2^16-1>``. The result is
    what the X.509 extension's OCTET STRING wraps.
    """
    if not scts:
        raise ValueError("an SCT list holds at least one SCT")
    if any(not 0 < len(sct) <= 0xFFFF for sct in scts):
        raise ValueError("an SCT is empty or too long")
    body = b"".join(struct.pack(">H", len(sct)) + sct for sct in scts)
    if len(body) > 0xFFFF:
        raise ValueError("SCT list is too long")
    return struct.pack(">H", len(body)) + body


def add_pre_chain_response(sct: bytes) -> dict[str, Any]:
    """The RFC 6962 §4.1 ``add-pre-chain`` JSON response for one TLS-encoded v1 SCT.

    ``{"sct_version": 0, "id": b64(log_id), "timestamp": ms, "extensions": b64,
    "signature": b64(TLS DigitallySigned)}`` (sigstore-wire.md §2).
    """
    # Layout written by CTLog.sign_precert: u8 version, log_id[32], u64 timestamp,
    # u16-prefixed extensions, then the DigitallySigned struct to the end.
    version = sct[0]
    log_id = sct[1:33]
    (timestamp,) = struct.unpack(">Q", sct[33:41])
    (ext_len,) = struct.unpack(">H", sct[41:43])
    extensions = sct[43:43 + ext_len]
    signature = sct[43 + ext_len:]
    return {
        "sct_version": version,
        "id": base64.b64encode(log_id).decode(),
        "timestamp": timestamp,
        "extensions": base64.b64encode(extensions).decode(),
        "signature": base64.b64encode(signature).decode(),
    }


# -- static-ct-api log entries ----------------------------------------------------------------

#: ``append(build) -> index``: the log's sequencing step, injected by the server layer. It
#: stores ``build(index)`` durably at ``index``, the index the entry gets, and returns that
#: index; it raises :class:`~sealtrail.errors.ServiceUnavailableError` when it cannot
#: (storage down, busy). ``build`` may be called more than once and from another thread
#: (the log calls it inside its sequencing transaction): it is a pure, quick function of
#: the index, and every index (up to :data:`MAX_LEAF_INDEX`) encodes to the same length.
LeafAppender = Callable[[Callable[[int], bytes]], int]


def leaf_index_extension(index: int) -> bytes:
    """The ``CtExtensions`` content holding one ``leaf_index`` extension.

    SPEC: static-ct-api: ``Extension { ExtensionType extension_type = leaf_index(0);
    opaque extension_data<0..2^16-1> = uint40 LeafIndex }``, so ``00 0005 <5 bytes>``.
    """
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_LEAF_INDEX:
        raise ValueError(f"leaf index out of range: {index!r}")
    return (struct.pack(">BH", _LEAF_INDEX_TYPE, _LEAF_INDEX_BYTES)
            + index.to_bytes(_LEAF_INDEX_BYTES, "big"))


def parse_leaf_index(extensions: bytes) -> int:
    """The index of the one ``leaf_index`` extension in ``CtExtensions`` content.

    SPEC: static-ct-api: an SCT (and its entry) carries exactly one leaf_index extension.
    Raises ``ValueError`` if there is none, more than one, or the bytes are malformed.
    """
    found: list[int] = []
    pos = 0
    while pos < len(extensions):
        if pos + 3 > len(extensions):
            raise ValueError("CT extensions end inside an extension header")
        kind, size = struct.unpack(">BH", extensions[pos:pos + 3])
        pos += 3
        data = extensions[pos:pos + size]
        if len(data) != size:
            raise ValueError("CT extensions end inside an extension")
        pos += size
        if kind == _LEAF_INDEX_TYPE:
            if size != _LEAF_INDEX_BYTES:
                raise ValueError("the leaf_index extension is not 5 bytes")
            found.append(int.from_bytes(data, "big"))
    if len(found) != 1:
        raise ValueError(f"expected one leaf_index extension, found {len(found)}")
    return found[0]


def timestamped_entry(timestamp_ms: int, issuer_key_hash: bytes, tbs: bytes,
                      extensions: bytes) -> bytes:
    """An RFC 6962 §3.4 ``TimestampedEntry`` of type precert_entry.

    ``uint64 timestamp; LogEntryType entry_type = precert_entry(1); PreCert
    {opaque issuer_key_hash[32]; TBSCertificate tbs_certificate<1..2^24-1>};
    CtExtensions extensions<0..2^16-1>``: the SCT's signed data without its version and
    signature type bytes.
    """
    if not 0 <= timestamp_ms < 2**64:
        raise ValueError("SCT timestamp is out of range")
    if len(issuer_key_hash) != 32:
        raise ValueError("issuer_key_hash must be 32 bytes")
    if not 0 < len(tbs) <= _MAX_TBS:
        raise ValueError("TBSCertificate length is out of range")
    if len(extensions) > _MAX_EXTENSIONS:
        raise ValueError("SCT extensions are too long")
    return b"".join((struct.pack(">QH", timestamp_ms, _PRECERT_ENTRY), issuer_key_hash,
                     len(tbs).to_bytes(3, "big"), tbs, struct.pack(">H", len(extensions)),
                     extensions))


def tile_leaf(entry: bytes, precertificate: bytes, chain_fingerprints: Sequence[bytes]) -> bytes:
    """A static-ct-api ``TileLeaf`` for a precertificate: what the log stores per entry.

    SPEC: static-ct-api: ``TimestampedEntry timestamped_entry; PrecertificateEntry
    {ASN.1Cert pre_certificate<1..2^24-1>; Fingerprint precertificate_chain<0..2^16-1>}``,
    a fingerprint being the SHA-256 of an issuer certificate (served at ``issuer/<hex>``).
    """
    if not 0 < len(precertificate) <= _MAX_CERT:
        raise ValueError("precertificate length is out of range")
    if len(chain_fingerprints) > _MAX_FINGERPRINTS or any(
            len(fp) != 32 for fp in chain_fingerprints):
        raise ValueError("chain fingerprints must be at most 2047 SHA-256 hashes")
    fingerprints = b"".join(chain_fingerprints)
    return b"".join((entry, len(precertificate).to_bytes(3, "big"), precertificate,
                     struct.pack(">H", len(fingerprints)), fingerprints))


class TileLeaf(NamedTuple):
    """A parsed static-ct-api TileLeaf of type precert_entry."""

    timestamp: int
    issuer_key_hash: bytes
    tbs: bytes  # the TBSCertificate without poison or SCT list
    extensions: bytes  # CtExtensions content
    precertificate: bytes  # DER, with the poison extension
    chain_fingerprints: tuple[bytes, ...]
    timestamped_entry: bytes  # the TimestampedEntry bytes, as hashed into the tree

    @property
    def leaf_index(self) -> int:
        """The index its leaf_index extension names (``ValueError`` if malformed)."""
        return parse_leaf_index(self.extensions)

    def merkle_leaf_hash(self) -> bytes:
        """SHA-256(0x00 || MerkleTreeLeaf) (see :func:`merkle_leaf_hash`)."""
        return _hash_timestamped_entry(self.timestamped_entry)


class _Reader:
    """Reads TLS vectors from bytes; every overrun is a ``ValueError``."""

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def take(self, size: int) -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            raise ValueError("TileLeaf is truncated")
        out = self.data[self.pos:self.pos + size]
        self.pos += size
        return out

    def number(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, length_size: int) -> bytes:
        return self.take(self.number(length_size))


def read_tile_leaf(data: bytes, offset: int = 0) -> tuple[TileLeaf, int]:
    """Parse one TileLeaf at ``offset`` of ``data``; return it and the offset after it.

    A data tile is TileLeaf structures back to back: call again from the returned offset.
    Raises ``ValueError`` for a truncated or malformed leaf, or one that is not a
    precert_entry (this log holds no other kind).
    """
    data = bytes(data)
    reader = _Reader(data, offset)
    timestamp = reader.number(8)
    if reader.number(2) != _PRECERT_ENTRY:
        raise ValueError("TileLeaf is not a precert_entry")
    issuer_key_hash = reader.take(32)
    tbs = reader.vector(3)
    if not tbs:
        raise ValueError("TileLeaf has an empty TBSCertificate")
    extensions = reader.vector(2)
    entry = data[offset:reader.pos]
    precertificate = reader.vector(3)
    if not precertificate:
        raise ValueError("TileLeaf has an empty precertificate")
    fingerprints = reader.vector(2)
    if len(fingerprints) % 32:
        raise ValueError("TileLeaf chain fingerprints are not a whole number of hashes")
    chain = tuple(fingerprints[i:i + 32] for i in range(0, len(fingerprints), 32))
    return TileLeaf(timestamp, issuer_key_hash, tbs, extensions, precertificate, chain,
                    entry), reader.pos


def _hash_timestamped_entry(entry: bytes) -> bytes:
    # SPEC: RFC 6962 §2.1 leaf hash SHA-256(0x00 || leaf), §3.4 MerkleTreeLeaf
    # {Version version = v1(0); MerkleLeafType leaf_type = timestamped_entry(0);
    # TimestampedEntry timestamped_entry}.
    return hashlib.sha256(b"\x00" + struct.pack(">BB", _V1, _TIMESTAMPED_ENTRY)
                          + entry).digest()


def merkle_leaf_hash(tile_leaf_bytes: bytes) -> bytes:
    """The RFC 6962 Merkle leaf hash of a stored TileLeaf (the log's ``leaf_hasher``).

    Only the TimestampedEntry is hashed (the precertificate and its chain are not in the
    tree). Raises ``ValueError`` for a malformed or trailing-garbage TileLeaf.
    """
    leaf, end = read_tile_leaf(tile_leaf_bytes)
    if end != len(tile_leaf_bytes):
        raise ValueError("TileLeaf has trailing bytes")
    return leaf.merkle_leaf_hash()


def tree_head_signed_data(timestamp_ms: int, tree_size: int, root_hash: bytes) -> bytes:
    """The RFC 6962 §3.5 ``TreeHeadSignature`` input a CT log key signs.

    ``Version version = v1(0); SignatureType signature_type = tree_hash(1); uint64
    timestamp; uint64 tree_size; opaque sha256_root_hash[32]``.
    """
    if len(root_hash) != 32:
        raise ValueError("root hash must be 32 bytes")
    return struct.pack(">BBQQ", _V1, _TREE_HASH, timestamp_ms, tree_size) + root_hash


def rfc6962_note_key_id(name: str, log_id: bytes) -> bytes:
    """The 4-byte signed-note key id of a CT log's checkpoint signature.

    SPEC: static-ct-api / C2SP signed-note: SHA-256(key name || 0x0A || 0x05 || LogID)[:4].
    """
    return hashlib.sha256(name.encode("utf-8") + b"\n" + _NOTE_TYPE_RFC6962
                          + log_id).digest()[:4]


class CTLog:
    """A CT log key that signs precertificate SCTs and, given ``append``, logs them.

    ``private_key`` must be an ECDSA P-256 key (sigstore-wire.md §2); other types raise
    :class:`ConfigInvalidError`. ``append`` (see :data:`LeafAppender`) is the tile log's
    sequencing step: with it, :meth:`log_precert` and :meth:`add_pre_chain` sign an SCT
    only for an entry durably in the log. Without it they only sign (tests, dry runs).
    """

    def __init__(self, private_key: ec.EllipticCurvePrivateKey,
                 append: LeafAppender | None = None) -> None:
        if not isinstance(private_key, ec.EllipticCurvePrivateKey) \
                or private_key.curve.name != "secp256r1":
            raise ConfigInvalidError("the CT log key must be an ECDSA P-256 key",
                                     actual=type(private_key).__name__)
        self._key = private_key
        self._append = append
        self.public_key = private_key.public_key()
        self.public_key_der = _spki(self.public_key)
        # SPEC: RFC 6962 §3.2: LogID is the SHA-256 hash of the log's DER SPKI.
        self.log_id = hashlib.sha256(self.public_key_der).digest()

    @property
    def keeps_log(self) -> bool:
        """Whether SCTs are signed only for entries durably in a log."""
        return self._append is not None

    def sign_precert(self, tbs: bytes, issuer_spki_der: bytes, timestamp_ms: int,
                     extensions: bytes = b"") -> bytes:
        """Sign a precertificate TBS and return one TLS-encoded v1 SCT (logs nothing).

        ``tbs`` is the DER TBSCertificate without poison or SCT list (what
        ``x509.Certificate.tbs_precertificate_bytes`` returns for the final certificate);
        ``issuer_spki_der`` the DER SPKI of the certificate's issuer.
        """
        issuer_key_hash = hashlib.sha256(issuer_spki_der).digest()
        # SPEC: RFC 6962 §3.2 digitally-signed struct: sct_version v1(0), signature_type
        # certificate_timestamp(0), then the TimestampedEntry fields (timestamp,
        # entry_type precert_entry(1), PreCert, CtExtensions).
        signed = struct.pack(">BB", _V1, 0) + timestamped_entry(
            timestamp_ms, issuer_key_hash, tbs, extensions)
        signature = self._key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return b"".join((
            # SPEC: RFC 6962 §3.2 SignedCertificateTimestamp: version, LogID id[32],
            # uint64 timestamp, CtExtensions, digitally-signed (hash, sig alg, opaque<0..2^16-1>).
            struct.pack(">B", _V1),
            self.log_id,
            struct.pack(">Q", timestamp_ms),
            struct.pack(">H", len(extensions)),
            extensions,
            self._digitally_signed(signature),
        ))

    @staticmethod
    def _digitally_signed(signature: bytes) -> bytes:
        # SPEC: RFC 5246 §4.7 DigitallySigned: SignatureAndHashAlgorithm, opaque<0..2^16-1>.
        return struct.pack(">BBH", _TLS_SHA256, _TLS_ECDSA, len(signature)) + signature

    def log_precert(self, tbs: bytes, precertificate: bytes,
                    issuers: Sequence[x509.Certificate], timestamp_ms: int) -> bytes:
        """Log a precertificate (when this log keeps one) and return its SCT.

        ``tbs`` is the precertificate's TBS without poison (= the final certificate's
        without SCT list), ``precertificate`` its DER (poisoned, signed by ``issuers[0]``),
        ``issuers`` its chain up to the root. The entry is sequenced durably before the SCT
        is signed, and the SCT's ``leaf_index`` extension names it; the stored
        TimestampedEntry carries the same timestamp and extensions (static-ct-api).
        Raises :class:`~sealtrail.errors.ServiceUnavailableError` when the log cannot
        take the entry.
        """
        if not issuers:
            raise ValueError("a precertificate needs its issuer")
        issuer_spki = _spki(issuers[0].public_key())
        if self._append is None:
            return self.sign_precert(tbs, issuer_spki, timestamp_ms)
        issuer_key_hash = hashlib.sha256(issuer_spki).digest()
        fingerprints = [cert.fingerprint(hashes.SHA256()) for cert in issuers]

        # The timestamp is fixed here, before sequencing: the stored entry and the SCT
        # carry the same one (static-ct-api).
        def build(index: int) -> bytes:
            entry = timestamped_entry(timestamp_ms, issuer_key_hash, tbs,
                                      leaf_index_extension(index))
            return tile_leaf(entry, precertificate, fingerprints)

        index = self._append(build)
        if isinstance(index, bool) or not isinstance(index, int) \
                or not 0 <= index <= MAX_LEAF_INDEX:
            raise Error("internal error: the CT log returned an invalid index",
                        actual=repr(index))
        return self.sign_precert(tbs, issuer_spki, timestamp_ms, leaf_index_extension(index))

    def sign_checkpoint(self, body: str, timestamp_ms: int) -> str:
        """Sign checkpoint text as the static-ct-api log whose origin it names.

        The note is signed under the key name = the origin (the log's submission prefix
        without scheme) with an RFC6962NoteSignature: ``uint64 timestamp ||
        DigitallySigned(TreeHeadSignature)``, key id per :func:`rfc6962_note_key_id`.
        Raises :class:`~sealtrail.errors.CheckpointInvalidError` for malformed text.
        """
        checkpoint = Checkpoint.from_body(body)
        signed = tree_head_signed_data(timestamp_ms, checkpoint.size, checkpoint.root_hash)
        signature = self._key.sign(signed, ec.ECDSA(hashes.SHA256()))
        blob = struct.pack(">Q", timestamp_ms) + self._digitally_signed(signature)
        name = checkpoint.origin
        return SignedNote(body, (NoteSignature(name, rfc6962_note_key_id(name, self.log_id),
                                               blob),)).to_text()

    def add_pre_chain(self, chain_b64: Any, accepted_roots: Sequence[x509.Certificate],
                      timestamp_ms: int, *,
                      issuers: Sequence[x509.Certificate] | None = None) -> dict[str, Any]:
        """Handle an RFC 6962 §4.1 ``add-pre-chain`` request body's ``chain``.

        ``chain_b64`` is the JSON array of base64 DER certificates: the precertificate
        (with the critical poison extension), its issuer, ..., a root among
        ``accepted_roots``. Every link must verify. With ``issuers``, every certificate
        after the precertificate must be one of them (the issuers the log serves). The
        precertificate is logged as :meth:`log_precert` does; the signed TBS is its TBS
        with the poison removed. Returns the JSON response (see
        :func:`add_pre_chain_response`). Raises :class:`CertificateRequestInvalidError`,
        or :class:`~sealtrail.errors.ServiceUnavailableError` when the log cannot take
        the entry.
        """
        items = require_list(chain_b64, "chain", E, max_items=MAX_CHAIN_CERTS)
        if len(items) < 2:
            raise E("add-pre-chain needs the precertificate and its issuer chain",
                    actual=len(items), expected=">= 2 certificates")
        ders = [b64decode(item, f"chain[{i}]", E) for i, item in enumerate(items)]
        certs = []
        for i, der in enumerate(ders):
            if len(der) > MAX_CERT_BYTES:
                raise E(f"chain[{i}] is too large", actual=len(der))
            try:
                certs.append(x509.load_der_x509_certificate(der))
            except ValueError as exc:
                raise E(f"chain[{i}] is not a DER certificate") from exc
        for i in range(len(certs) - 1):
            try:
                certs[i].verify_directly_issued_by(certs[i + 1])
            except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm) as exc:
                raise E(f"chain[{i}] is not issued by chain[{i + 1}]") from exc
        # SPEC: RFC 6962 §4.1: the chain must end in a root the log accepts.
        if certs[-1] not in accepted_roots:
            raise E("chain does not end in a root accepted by this CT log")
        if issuers is not None and any(cert not in issuers for cert in certs[1:]):
            raise E("chain holds an issuer certificate this CT log does not serve")
        tbs = precert_tbs(ders[0])
        try:
            sct = self.log_precert(tbs, ders[0], certs[1:], timestamp_ms)
        except ValueError as exc:  # a vector bound of the TileLeaf
            raise E(f"precertificate cannot be logged: {exc}") from exc
        return add_pre_chain_response(sct)


def precert_tbs(precert_der: bytes) -> bytes:
    """The precertificate's TBS with its poison extension removed (RFC 6962 §3.2).

    (``cryptography``'s ``tbs_precertificate_bytes`` wants an SCT list to remove, which a
    precertificate does not have.) Raises :class:`CertificateRequestInvalidError`.

    asn1crypto re-encodes only the part we change; every other field keeps its original
    bytes, so the result equals the final certificate's TBS minus the SCT list.
    """
    try:
        cert = asn1_x509.Certificate.load(precert_der)
        tbs = cert["tbs_certificate"]
        extensions = tbs["extensions"]
        kept = [ext for ext in extensions if ext["extn_id"].dotted != POISON_OID]
        poison = [ext for ext in extensions if ext["extn_id"].dotted == POISON_OID]
    except (ValueError, TypeError, KeyError) as exc:
        raise E("precertificate does not parse") from exc
    if len(poison) != 1 or not poison[0]["critical"].native:
        raise E("precertificate must carry exactly one critical poison extension")
    try:
        stripped = tbs.copy()
        stripped["extensions"] = asn1_x509.Extensions(kept) if kept else None
        der: bytes = stripped.dump(force=False)
        return der
    except (ValueError, TypeError) as exc:
        raise E("precertificate TBS cannot be re-encoded") from exc
