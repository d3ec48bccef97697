"""RFC 6962 / RFC 9162 Merkle hashing and proof verification (pure, no I/O).

Every check bounds its input *before* hashing: the exact number of hashes an inclusion or
consistency proof must carry follows from the tree sizes and the index, so an oversized
proof is rejected in constant time instead of being hashed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from sealtrail.errors import TlogInclusionInvalidError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "consistency_proof_length",
    "inclusion_proof_length",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
# SPEC: RFC 6962 §2.1: the hash of an empty list is the hash of an empty string.
EMPTY_ROOT = hashlib.sha256(b"").digest()
# Tree sizes and indexes are int64 on every wire format we read.
_MAX_TREE_SIZE = 2**63 - 1

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

E = TlogInclusionInvalidError


def leaf_hash(data: bytes) -> bytes:
    """The RFC 6962 leaf hash: SHA-256(0x00 || data)."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 6962 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _check_int(value: object, what: str, *, minimum: int) -> int:
    # bool is an int subclass; a True index is a caller bug, not index 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise E(f"{what} must be an integer", actual=type(value).__name__)
    if value < minimum or value > _MAX_TREE_SIZE:
        raise E(f"{what} is out of range", actual=value,
                expected=f"{minimum} <= {what} <= {_MAX_TREE_SIZE}")
    return value


def _check_hash(value: object, what: str) -> bytes:
    if not isinstance(value, (bytes, bytearray)):
        raise E(f"{what} must be bytes", actual=type(value).__name__)
    if len(value) != HASH_SIZE:
        raise E(f"{what} is not a SHA-256 hash", actual=f"{len(value)} bytes",
                expected=f"{HASH_SIZE} bytes")
    return bytes(value)


def _check_proof(proof: object, expected_len: int, what: str) -> list[bytes]:
    if isinstance(proof, (bytes, bytearray, str)) or not isinstance(proof, Sequence):
        raise E(f"{what} must be a sequence of hashes", actual=type(proof).__name__)
    # SPEC: the proof length is fixed by the sizes (RFC 9162 §2.1.3.1 / §2.1.4.1);
    # checked before any hashing so a huge proof costs O(1).
    if len(proof) != expected_len:
        raise E(f"{what} has the wrong number of hashes", actual=len(proof),
                expected=expected_len)
    return [_check_hash(h, f"{what}[{i}]") for i, h in enumerate(proof)]


def _decompose(index: int, size: int) -> tuple[int, int]:
    """Split an inclusion proof for ``index`` in a tree of ``size`` into (inner, border).

    ``inner`` hashes lie below the point where the paths to ``index`` and to the last leaf
    (``size - 1``) part; ``border`` hashes are the left siblings above it (one per set bit).
    """
    inner = (index ^ (size - 1)).bit_length()
    border = bin(index >> inner).count("1")
    return inner, border


def inclusion_proof_length(index: int, tree_size: int) -> int:
    """The exact number of hashes in an inclusion proof for ``index`` in ``tree_size``."""
    inner, border = _decompose(index, tree_size)
    return inner + border


def consistency_proof_length(old_size: int, new_size: int) -> int:
    """The exact number of hashes in a consistency proof from ``old_size`` to ``new_size``."""
    if old_size == 0 or old_size == new_size:
        return 0
    inner, border = _decompose(old_size - 1, new_size)
    # The lowest levels shared by both trees are implied by the old root itself.
    shift = (old_size & -old_size).bit_length() - 1
    inner -= shift
    # When old_size is a power of two, the old root is the first node of the proof and
    # is not transmitted.
    seed = 0 if old_size == 1 << shift else 1
    return seed + inner + border


def root_from_inclusion_proof(leaf_hash: bytes, index: int, tree_size: int,
                              proof: Sequence[bytes]) -> bytes:
    """Compute the root implied by an inclusion proof.

    SPEC: RFC 9162 §2.1.3.2 (verifying an inclusion proof), steps 1-5 minus the final
    comparison with the expected root.

    Raises :class:`~sealtrail.errors.TlogInclusionInvalidError` when the index, size,
    proof length or any hash length is invalid.
    """
    tree_size = _check_int(tree_size, "tree size", minimum=1)
    index = _check_int(index, "leaf index", minimum=0)
    # SPEC: step 1: "If leaf_index is greater than or equal to tree_size, then stop and
    # fail the proof verification."
    if index >= tree_size:
        raise E("leaf index is not inside the tree", actual=index,
                expected=f"< tree size {tree_size}")
    hashes = _check_proof(proof, inclusion_proof_length(index, tree_size), "inclusion proof")
    r = _check_hash(leaf_hash, "leaf hash")
    fn, sn = index, tree_size - 1
    for p in hashes:
        # SPEC: step 4a: running out of tree before running out of proof fails.
        if sn == 0:  # pragma: no cover - impossible once the length was checked
            raise E("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # SPEC: "If LSB(fn) is not set, then right-shift both fn and sn equally
            # until either LSB(fn) is set or fn is 0."
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    # SPEC: step 5: sn must be 0 at the end.
    if sn != 0:  # pragma: no cover - impossible once the length was checked
        raise E("inclusion proof is shorter than the tree is deep")
    return r


def verify_inclusion(leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes],
                     root: bytes) -> None:
    """Check that ``leaf_hash`` sits at ``index`` of the tree of ``tree_size`` with ``root``.

    SPEC: RFC 9162 §2.1.3.2. Raises :class:`~sealtrail.errors.TlogInclusionInvalidError`
    (with the computed and expected root in hex on a mismatch).
    """
    expected = _check_hash(root, "root hash")
    computed = root_from_inclusion_proof(leaf_hash, index, tree_size, proof)
    if computed != expected:
        raise E("inclusion proof does not lead to the root hash", actual=computed.hex(),
                expected=expected.hex())


def verify_consistency(old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes,
                       new_root: bytes) -> None:
    """Check that the tree of ``new_size``/``new_root`` extends ``old_size``/``old_root``.

    SPEC: RFC 9162 §2.1.4.2. Equal sizes need an empty proof and equal roots; an empty old
    tree needs an empty proof and the empty-tree root. Raises
    :class:`~sealtrail.errors.TlogInclusionInvalidError` on any failure.
    """
    old_size = _check_int(old_size, "old tree size", minimum=0)
    new_size = _check_int(new_size, "new tree size", minimum=0)
    if old_size > new_size:
        raise E("old tree is larger than the new tree", actual=old_size,
                expected=f"<= {new_size}")
    hashes = _check_proof(proof, consistency_proof_length(old_size, new_size),
                          "consistency proof")
    old_root = _check_hash(old_root, "old root hash")
    new_root = _check_hash(new_root, "new root hash")

    if old_size == 0:
        # Every tree extends the empty tree; its root is fixed by RFC 6962 §2.1.
        if old_root != EMPTY_ROOT:
            raise E("old root is not the empty-tree root", actual=old_root.hex(),
                    expected=EMPTY_ROOT.hex())
        if new_size == 0 and new_root != EMPTY_ROOT:
            raise E("new root is not the empty-tree root", actual=new_root.hex(),
                    expected=EMPTY_ROOT.hex())
        return
    if old_size == new_size:
        if old_root != new_root:
            raise E("trees of the same size have different roots", actual=new_root.hex(),
                    expected=old_root.hex())
        return

    # SPEC: step 2: "If first is an exact power of 2, then prepend first_hash to the
    # consistency_path array."
    if old_size & (old_size - 1) == 0:
        hashes = [old_root, *hashes]
    # SPEC: steps 3-4.
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # SPEC: step 5.
    fr = sr = hashes[0]
    # SPEC: step 6.
    for c in hashes[1:]:
        if sn == 0:  # pragma: no cover - impossible once the length was checked
            raise E("consistency proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            # SPEC: "If LSB(fn) is not set, then right-shift both fn and sn equally
            # until either LSB(fn) is set or fn is 0."
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # SPEC: step 7.
    if sn != 0:  # pragma: no cover - impossible once the length was checked
        raise E("consistency proof is shorter than the tree is deep")
    if fr != old_root:
        raise E("consistency proof does not lead to the old root", actual=fr.hex(),
                expected=old_root.hex())
    if sr != new_root:
        raise E("consistency proof does not lead to the new root", actual=sr.hex(),
                expected=new_root.hex())
