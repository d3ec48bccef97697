"""Tests for sealtrail.merkle: RFC 6962 hashing, RFC 9162 proof verification, reference tree."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sealtrail.merkle as merkle
from sealtrail.errors import TlogInclusionInvalidError, UsageError
from sealtrail.merkle import (
    EMPTY_ROOT,
    consistency_proof_length,
    inclusion_proof_length,
    leaf_hash,
    node_hash,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from sealtrail.merkle.tree import compute_root, consistency_proof, inclusion_proof

E = TlogInclusionInvalidError
SETTINGS = settings(max_examples=60, deadline=None)
MAX_SIZE = 300

# Leaves 0..MAX_SIZE-1 and the roots of every prefix, computed once by the oracle below.
LEAVES = [leaf_hash(i.to_bytes(2, "big")) for i in range(MAX_SIZE)]


# -- an independent oracle ----------------------------------------------------------------
# Bottom-up and iterative, unlike tree.py's top-down recursion: pair neighbours level by
# level and carry an unpaired last node up unchanged (equivalent to RFC 6962's split at
# the largest power of two).


def oracle_root(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = list(leaves)
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level), 2):
            if i + 1 < len(level):
                nxt.append(hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest())
            else:
                nxt.append(level[i])
        level = nxt
    return level[0]


def oracle_path(leaves: list[bytes], index: int) -> list[bytes]:
    level, path = list(leaves), []
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        level = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest()
                 if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
        index //= 2
    return path


ROOTS = [oracle_root(LEAVES[:n]) for n in range(MAX_SIZE + 1)]


def flip(data: bytes, bit: int) -> bytes:
    bit %= len(data) * 8
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@st.composite
def size_and_index(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, MAX_SIZE))
    return size, draw(st.integers(0, size - 1))


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    new = draw(st.integers(1, MAX_SIZE))
    return draw(st.integers(1, new)), new


# -- public surface -----------------------------------------------------------------------


def test_all_is_sorted_and_complete() -> None:
    assert merkle.__all__ == sorted(merkle.__all__)
    for name in merkle.__all__:
        assert hasattr(merkle, name)


# -- known answers -------------------------------------------------------------------------


def test_empty_tree_root() -> None:
    expected = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert compute_root([]).hex() == expected
    assert EMPTY_ROOT.hex() == expected


def test_hash_prefixes() -> None:
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    left, right = b"L" * 32, b"R" * 32
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()


# The classic RFC 6962 test leaves (certificate-transparency-go merkle tests) and the roots
# of their first n leaves; every value was checked against both implementations here.
CT_LEAVES = [
    b"", b"\x00", b"\x10", b"\x20\x21", b"\x30\x31", b"\x40\x41\x42\x43",
    bytes(range(0x50, 0x58)), bytes(range(0x60, 0x70)),
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


@pytest.mark.parametrize("n", range(1, 9))
def test_rfc6962_vectors(n: int) -> None:
    hashes = [leaf_hash(d) for d in CT_LEAVES[:n]]
    assert compute_root(hashes).hex() == CT_ROOTS[n - 1]
    assert oracle_root(hashes).hex() == CT_ROOTS[n - 1]
    for i in range(n):
        root = bytes.fromhex(CT_ROOTS[n - 1])
        verify_inclusion(hashes[i], i, n, inclusion_proof(hashes, i), root)
    for m in range(1, n + 1):
        verify_consistency(m, n, consistency_proof(hashes, m), bytes.fromhex(CT_ROOTS[m - 1]),
                           bytes.fromhex(CT_ROOTS[n - 1]))


# -- the reference tree against the oracle ---------------------------------------------------


def test_compute_root_matches_oracle_for_every_size() -> None:
    for n in range(MAX_SIZE + 1):
        assert compute_root(LEAVES[:n]) == ROOTS[n]


@SETTINGS
@given(size_and_index())
def test_inclusion_proof_matches_oracle(case: tuple[int, int]) -> None:
    size, index = case
    proof = inclusion_proof(LEAVES[:size], index)
    assert proof == oracle_path(LEAVES[:size], index)
    assert len(proof) == inclusion_proof_length(index, size)


def test_tree_rejects_bad_arguments() -> None:
    with pytest.raises(UsageError):
        inclusion_proof(LEAVES[:3], 3)
    with pytest.raises(UsageError):
        inclusion_proof(LEAVES[:3], -1)
    with pytest.raises(UsageError):
        inclusion_proof([], 0)
    with pytest.raises(UsageError):
        consistency_proof(LEAVES[:3], 4)
    with pytest.raises(UsageError):
        compute_root([b"short"])
    assert consistency_proof(LEAVES[:3], 0) == []
    assert consistency_proof(LEAVES[:3], 3) == []


# -- inclusion -------------------------------------------------------------------------------


def test_inclusion_exhaustive_small_trees() -> None:
    for size in range(1, 65):
        for index in range(size):
            proof = inclusion_proof(LEAVES[:size], index)
            verify_inclusion(LEAVES[index], index, size, proof, ROOTS[size])
            assert root_from_inclusion_proof(LEAVES[index], index, size, proof) == ROOTS[size]


@SETTINGS
@given(size_and_index(), st.data())
def test_inclusion_mutations_fail(case: tuple[int, int], data: st.DataObject) -> None:
    size, index = case
    leaf, root = LEAVES[index], ROOTS[size]
    proof = inclusion_proof(LEAVES[:size], index)
    verify_inclusion(leaf, index, size, proof, root)

    bit = data.draw(st.integers(0, 255), label="bit")
    # Any bit of any proof hash.
    for j in range(len(proof)):
        bad = list(proof)
        bad[j] = flip(bad[j], bit)
        with pytest.raises(E) as info:
            verify_inclusion(leaf, index, size, bad, root)
        assert info.value.code == "TLOG_INCLUSION_INVALID"
        assert info.value.expected == root.hex()
    # The leaf, the root.
    with pytest.raises(E):
        verify_inclusion(flip(leaf, bit), index, size, proof, root)
    with pytest.raises(E):
        verify_inclusion(leaf, index, size, proof, flip(root, bit))
    # Another index in the same tree never verifies.
    if size > 1:
        other = data.draw(st.integers(0, size - 2), label="other index")
        other += other >= index
        with pytest.raises(E):
            verify_inclusion(leaf, other, size, proof, root)
    # Another size: the proof cannot verify against that size's real root unless it
    # genuinely is that size's proof too (e.g. the rightmost-path hashes coincide).
    new_size = data.draw(st.integers(1, MAX_SIZE), label="other size")
    if new_size != size:
        genuine = index < new_size and inclusion_proof(LEAVES[:new_size], index) == proof
        if genuine:
            verify_inclusion(leaf, index, new_size, proof, ROOTS[new_size])
        else:
            with pytest.raises(E):
                verify_inclusion(leaf, index, new_size, proof, ROOTS[new_size])
    # Dropping or adding a hash changes the length.
    if proof:
        with pytest.raises(E):
            verify_inclusion(leaf, index, size, proof[:-1], root)
    with pytest.raises(E):
        verify_inclusion(leaf, index, size, [*proof, root], root)


def test_inclusion_size_is_not_bound_by_the_proof_alone() -> None:
    # RFC 9162's algorithm checks (size, root) as a pair: the proof of leaf 0 in a tree of
    # 3 also "verifies" for size 4 if the 3-tree root is supplied. Callers must take size
    # and root from the same signed checkpoint (the verifier does).
    proof = inclusion_proof(LEAVES[:3], 0)
    verify_inclusion(LEAVES[0], 0, 4, proof, ROOTS[3])
    with pytest.raises(E):
        verify_inclusion(LEAVES[0], 0, 4, proof, ROOTS[4])


@pytest.mark.parametrize(
    ("index", "size", "what"),
    [
        (3, 3, "index == size"),
        (10, 3, "index > size"),
        (-1, 3, "negative index"),
        (0, 0, "empty tree"),
        (0, -1, "negative size"),
        (True, 3, "bool index"),
        ("0", 3, "string index"),
        (0, 2**63, "size beyond int64"),
    ],
)
def test_inclusion_rejects_bad_index_and_size(index: object, size: object, what: str) -> None:
    with pytest.raises(E):
        verify_inclusion(LEAVES[0], index, size, [], ROOTS[1])  # type: ignore[arg-type]


def test_inclusion_rejects_bad_hash_lengths() -> None:
    proof = inclusion_proof(LEAVES[:5], 2)
    with pytest.raises(E, match="leaf hash"):
        verify_inclusion(LEAVES[2][:31], 2, 5, proof, ROOTS[5])
    with pytest.raises(E, match="root hash"):
        verify_inclusion(LEAVES[2], 2, 5, proof, ROOTS[5] + b"\x00")
    with pytest.raises(E, match=r"inclusion proof\[1\]"):
        verify_inclusion(LEAVES[2], 2, 5, [proof[0], proof[1][:16], proof[2]], ROOTS[5])
    with pytest.raises(E, match="must be bytes"):
        not_bytes = [proof[0], proof[1].hex(), proof[2]]
        verify_inclusion(LEAVES[2], 2, 5, not_bytes, ROOTS[5])  # type: ignore[arg-type]
    with pytest.raises(E, match="sequence"):
        verify_inclusion(LEAVES[2], 2, 5, b"".join(proof), ROOTS[5])  # type: ignore[arg-type]


def test_huge_inclusion_proof_is_rejected_before_hashing() -> None:
    # A million references to one hash: cheap to build, and it must be refused by length.
    huge = [LEAVES[1]] * 1_000_000
    with pytest.raises(E, match="wrong number of hashes") as info:
        verify_inclusion(LEAVES[0], 0, 2, huge, ROOTS[2])
    assert info.value.actual == 1_000_000
    assert info.value.expected == 1
    with pytest.raises(E, match="wrong number of hashes"):
        root_from_inclusion_proof(LEAVES[0], 0, 2**62, huge)


def test_proof_length_formula_examples() -> None:
    assert inclusion_proof_length(0, 1) == 0
    assert inclusion_proof_length(0, 8) == 3
    assert inclusion_proof_length(4, 5) == 1  # a lonely last leaf: one left sibling
    assert inclusion_proof_length(6, 7) == 2
    assert inclusion_proof_length(5, 7) == 3
    assert consistency_proof_length(4, 8) == 1  # old root is implied for powers of two
    assert consistency_proof_length(3, 8) == 4
    assert consistency_proof_length(0, 8) == 0
    assert consistency_proof_length(8, 8) == 0


# -- consistency -------------------------------------------------------------------------------


def test_consistency_every_pair_small_trees() -> None:
    for new in range(1, 41):
        for old in range(0, new + 1):
            proof = consistency_proof(LEAVES[:new], old)
            assert len(proof) == consistency_proof_length(old, new)
            verify_consistency(old, new, proof, ROOTS[old], ROOTS[new])


@SETTINGS
@given(two_sizes(), st.data())
def test_consistency_mutations_fail(case: tuple[int, int], data: st.DataObject) -> None:
    old, new = case
    proof = consistency_proof(LEAVES[:new], old)
    verify_consistency(old, new, proof, ROOTS[old], ROOTS[new])

    bit = data.draw(st.integers(0, 255), label="bit")
    for j in range(len(proof)):
        bad = list(proof)
        bad[j] = flip(bad[j], bit)
        with pytest.raises(E) as info:
            verify_consistency(old, new, bad, ROOTS[old], ROOTS[new])
        assert info.value.code == "TLOG_INCLUSION_INVALID"
    with pytest.raises(E):
        verify_consistency(old, new, proof, flip(ROOTS[old], bit), ROOTS[new])
    with pytest.raises(E):
        verify_consistency(old, new, proof, ROOTS[old], flip(ROOTS[new], bit))
    # Other sizes, with their real roots: only a genuinely identical proof may pass.
    old2 = data.draw(st.integers(0, MAX_SIZE), label="other old size")
    new2 = data.draw(st.integers(old2, MAX_SIZE), label="other new size")
    if (old2, new2) != (old, new):
        if consistency_proof(LEAVES[:new2], old2) == proof:
            verify_consistency(old2, new2, proof, ROOTS[old2], ROOTS[new2])
        else:
            with pytest.raises(E):
                verify_consistency(old2, new2, proof, ROOTS[old2], ROOTS[new2])
    if proof:
        with pytest.raises(E):
            verify_consistency(old, new, proof[1:], ROOTS[old], ROOTS[new])
    with pytest.raises(E):
        verify_consistency(old, new, [*proof, ROOTS[new]], ROOTS[old], ROOTS[new])


def test_consistency_of_a_forked_log_fails() -> None:
    # Same size, one different leaf: the new tree does not extend the old one.
    forked = list(LEAVES[:20])
    forked[5] = leaf_hash(b"evil")
    proof = consistency_proof(forked, 10)
    with pytest.raises(E, match="old root"):
        verify_consistency(10, 20, proof, ROOTS[10], compute_root(forked))


def test_consistency_edge_cases() -> None:
    # Equal sizes: empty proof and equal roots.
    verify_consistency(7, 7, [], ROOTS[7], ROOTS[7])
    with pytest.raises(E, match="same size"):
        verify_consistency(7, 7, [], ROOTS[7], ROOTS[6])
    with pytest.raises(E, match="wrong number"):
        verify_consistency(7, 7, [ROOTS[7]], ROOTS[7], ROOTS[7])
    # From the empty tree: empty proof, and the old root must be the empty root.
    verify_consistency(0, 9, [], EMPTY_ROOT, ROOTS[9])
    verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    with pytest.raises(E, match="empty-tree"):
        verify_consistency(0, 9, [], ROOTS[1], ROOTS[9])
    with pytest.raises(E, match="empty-tree"):
        verify_consistency(0, 0, [], EMPTY_ROOT, ROOTS[1])
    # Shrinking, negative or non-integer sizes.
    with pytest.raises(E, match="larger"):
        verify_consistency(9, 7, [], ROOTS[9], ROOTS[7])
    with pytest.raises(E):
        verify_consistency(-1, 7, [], ROOTS[0], ROOTS[7])
    with pytest.raises(E):
        verify_consistency(1.0, 7, [], ROOTS[1], ROOTS[7])  # type: ignore[arg-type]
    # Hash lengths.
    proof = consistency_proof(LEAVES[:7], 3)
    with pytest.raises(E, match="old root hash"):
        verify_consistency(3, 7, proof, ROOTS[3][:-1], ROOTS[7])
    with pytest.raises(E, match="new root hash"):
        verify_consistency(3, 7, proof, ROOTS[3], b"")
    with pytest.raises(E, match=r"consistency proof\[0\]"):
        verify_consistency(3, 7, [b"x" * 31, *proof[1:]], ROOTS[3], ROOTS[7])


def test_huge_consistency_proof_is_rejected_before_hashing() -> None:
    huge = [LEAVES[1]] * 1_000_000
    with pytest.raises(E, match="wrong number of hashes") as info:
        verify_consistency(3, 2**62, huge, ROOTS[3], ROOTS[4])
    assert info.value.actual == 1_000_000
