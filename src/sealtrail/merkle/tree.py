"""A reference Merkle tree built straight from the RFC 6962 §2.1 recursive definitions.

It works on an in-memory list of leaf hashes and recomputes subtrees on demand, so every
call is O(n) hashes. That is fine for test fakes and small in-memory logs; a real log
keeps tiles instead. It is deliberately written as the RFC reads (MTH, PATH, PROOF and
SUBPROOF), so it can serve as an oracle for the iterative verifiers in ``_proofs``.
"""

from __future__ import annotations

from collections.abc import Sequence

from sealtrail.errors import UsageError
from sealtrail.merkle._proofs import EMPTY_ROOT, HASH_SIZE, node_hash

__all__ = ["compute_root", "consistency_proof", "inclusion_proof"]


def _split(n: int) -> int:
    """SPEC: RFC 6962 §2.1: "the largest power of two smaller than n" (for n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_leaves(leaf_hashes: Sequence[bytes]) -> list[bytes]:
    leaves = list(leaf_hashes)
    for i, h in enumerate(leaves):
        if not isinstance(h, (bytes, bytearray)) or len(h) != HASH_SIZE:
            raise UsageError(f"leaf hash {i} is not a 32-byte hash")
    return [bytes(h) for h in leaves]


def _mth(leaves: Sequence[bytes]) -> bytes:
    # SPEC: RFC 6962 §2.1: MTH({}) = SHA-256(); MTH({d0}) = leaf hash;
    # MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])).
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = _split(n)
    return node_hash(_mth(leaves[:k]), _mth(leaves[k:]))


def _path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    # SPEC: RFC 6962 §2.1.1: PATH(m, D[n]), listed from the leaf up to the root.
    n = len(leaves)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return _path(m, leaves[:k]) + [_mth(leaves[k:])]
    return _path(m - k, leaves[k:]) + [_mth(leaves[:k])]


def _subproof(m: int, leaves: Sequence[bytes], whole: bool) -> list[bytes]:
    # SPEC: RFC 6962 §2.1.2: SUBPROOF(m, D[n], b).
    n = len(leaves)
    if m == n:
        return [] if whole else [_mth(leaves)]
    k = _split(n)
    if m <= k:
        return _subproof(m, leaves[:k], whole) + [_mth(leaves[k:])]
    return _subproof(m - k, leaves[k:], False) + [_mth(leaves[:k])]


def compute_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash (root) of a list of leaf hashes; SHA-256(b"") when empty."""
    return _mth(_check_leaves(leaf_hashes))


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path for leaf ``index`` in the tree made of all of ``leaf_hashes``.

    Raises :class:`~sealtrail.errors.UsageError` if ``index`` is not a leaf of the tree.
    """
    leaves = _check_leaves(leaf_hashes)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(leaves):
        raise UsageError("leaf index is not inside the tree", actual=index,
                         expected=f"0 <= index < {len(leaves)}")
    return _path(index, leaves)


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """The consistency proof from the first ``old_size`` leaves to all of ``leaf_hashes``.

    An empty old tree, or an old tree equal to the new one, has an empty proof. Raises
    :class:`~sealtrail.errors.UsageError` if ``old_size`` is larger than the tree.
    """
    leaves = _check_leaves(leaf_hashes)
    if isinstance(old_size, bool) or not isinstance(old_size, int) or not (
            0 <= old_size <= len(leaves)):
        raise UsageError("old tree size is not inside the tree", actual=old_size,
                         expected=f"0 <= size <= {len(leaves)}")
    if old_size == 0:
        return []
    # SPEC: RFC 6962 §2.1.2: PROOF(m, D[n]) = SUBPROOF(m, D[n], true).
    return _subproof(old_size, leaves, True)
