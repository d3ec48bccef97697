"""RFC 6962 / RFC 9162 Merkle trees: hashes, inclusion and consistency proofs (pure).

``verify_inclusion`` and ``verify_consistency`` raise
:class:`~sealtrail.errors.TlogInclusionInvalidError` on any failure. ``sealtrail.merkle.tree``
holds a small reference tree (root and proof construction) for tests and in-memory logs.
"""

from sealtrail.merkle._proofs import (
    EMPTY_ROOT,
    HASH_SIZE,
    consistency_proof_length,
    inclusion_proof_length,
    leaf_hash,
    node_hash,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)

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
