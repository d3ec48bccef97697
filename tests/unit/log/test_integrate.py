"""The pure integrator and the range-based proofs, against the reference tree as oracle.

``sealtrail.merkle.tree`` recomputes everything from the RFC 6962 recursive definitions
over a plain list of leaves; nothing here shares code with the tile-based engine except
the hash functions.
"""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sealtrail.errors import UsageError
from sealtrail.log._integrate import Edge, TileWrite, integrate
from sealtrail.merkle.tile_proofs import (
    TileFetcherSource,
    consistency_proof,
    consistency_proof_from_tiles,
    inclusion_proof,
    inclusion_proof_from_tiles,
    range_root,
    root_from_tiles,
)
from sealtrail.merkle import (
    EMPTY_ROOT,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)
from sealtrail.merkle.tiles import decode_entry_bundle, entries_path, tile_path
from sealtrail.merkle.tree import compute_root
from sealtrail.merkle.tree import consistency_proof as oracle_consistency
from sealtrail.merkle.tree import inclusion_proof as oracle_inclusion

MAX = 1500
BODIES = [f"entry {i}".encode() for i in range(MAX)]
LEAVES = [leaf_hash(b) for b in BODIES]
SETTINGS = settings(max_examples=25, deadline=None)


def _path(w: TileWrite) -> str:
    return entries_path(w.index, w.width) if w.level is None else tile_path(w.level, w.index,
                                                                           w.width)


def oracle_node(height: int, index: int) -> bytes:
    return compute_root(LEAVES[index << height:(index + 1) << height])


def build(batches: list[int]) -> tuple[dict[str, bytes], list[tuple[int, bytes]], Edge]:
    """Integrate LEAVES in the given batch sizes; return the objects, roots and edge."""
    store: dict[str, bytes] = {}
    roots = []
    edge = Edge.empty()
    for n in batches:
        start = edge.size
        result = integrate(edge, LEAVES[start:start + n], BODIES[start:start + n])
        for w in result.writes:
            path = _path(w)
            if w.full and path in store:
                # Full tiles are immutable: the integrator must never re-emit one.
                pytest.fail(f"full tile {path} written twice")
            store[path] = w.data
        for level, index, rows in result.expanded:
            assert rows[0] == store[tile_path(level, index)]
        edge = result.edge
        edge.check()
        roots.append((edge.size, result.root))
    return store, roots, edge


def _fit(sizes: list[int]) -> list[int]:
    """Keep the batches that fit in MAX leaves."""
    return [x for x, total in zip(sizes, itertools.accumulate(sizes)) if total <= MAX] or [1]


batch_lists = st.lists(st.integers(1, 300), min_size=1, max_size=12).map(_fit)


@given(batch_lists)
@example([MAX])
@example([255, 1, 256, 1, 254, 300, 433])
@example([1] * 300)
@SETTINGS
def test_integration_matches_the_reference_tree(batches: list[int]) -> None:
    store, roots, edge = build(batches)
    size = edge.size
    # Every intermediate root equals the oracle's.
    for s, root in roots:
        assert root == compute_root(LEAVES[:s])
    # Every full tile holds exactly the oracle's nodes; the newest partial of each tile is
    # the prefix of what it will become.
    for path, data in store.items():
        parts = path.split("/")
        if parts[1] == "entries":
            continue
        level = int(parts[1])
        tile_index = int("".join(p.lstrip("x") for p in parts[2:]).split(".")[0])
        hashes = [data[i:i + 32] for i in range(0, len(data), 32)]
        span = 8 * level
        for j, h in enumerate(hashes):
            assert h == oracle_node(span, tile_index * 256 + j), path
    # Entry bundles decode to the bodies.
    for path, data in store.items():
        if path.startswith("tile/entries/"):
            index = int(path.split("/")[2].split(".")[0])
            entries = decode_entry_bundle(data)
            assert entries == BODIES[index * 256:index * 256 + len(entries)]
    assert len(edge.bundle) == size % 256


def test_integrating_nothing_changes_nothing() -> None:
    _, _, edge = build([300])
    result = integrate(edge, [], [])
    assert result.edge == edge and result.writes == () and result.root == compute_root(
        LEAVES[:300])
    assert Edge.empty().root() == EMPTY_ROOT


def test_integrate_rejects_mismatched_inputs() -> None:
    with pytest.raises(UsageError):
        integrate(Edge.empty(), LEAVES[:2], BODIES[:1])
    with pytest.raises(UsageError):
        integrate(Edge.empty(), [b"\x00" * 31], [b"x"])
    with pytest.raises(UsageError):  # an edge whose tiles do not fit its size
        integrate(Edge(3, (b"\x00" * 64,), BODIES[:3]), LEAVES[:1], BODIES[:1])
    with pytest.raises(UsageError):
        integrate(Edge(3, (b"".join(LEAVES[:3]),), BODIES[:2]), LEAVES[:1], BODIES[:1])


def test_big_batches_cross_several_tiles_and_levels() -> None:
    # 65536 + 300 leaves would be slow with the oracle; check the level-2 boundary with a
    # cheap independent root: 256 full level-1 nodes are the roots of 256 level-0 tiles.
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(65536 + 3)]
    bodies = [b"x"] * len(leaves)
    result = integrate(Edge.empty(), leaves[:70000 // 2], bodies[:70000 // 2])
    result = integrate(result.edge, leaves[70000 // 2:], bodies[70000 // 2:])
    tops = [compute_root(leaves[i:i + 256]) for i in range(0, 65536, 256)]
    # RFC 6962: the root of 65539 leaves = H(MTH(first 65536), MTH(last 3)).
    assert result.root == node_hash(compute_root(tops), compute_root(leaves[65536:]))
    assert len(result.edge.tiles) == 3 and len(result.edge.tiles[2]) == 32


# -- proofs over leaf ranges, with the oracle as node source --------------------------------


@given(st.integers(1, MAX), st.randoms(use_true_random=False))
@settings(max_examples=40, deadline=None)
def test_range_proofs_match_the_reference_tree(size: int, rng: random.Random) -> None:
    leaves = LEAVES[:size]
    assert range_root(0, size, oracle_node) == compute_root(leaves)
    for _ in range(5):
        index = rng.randrange(size)
        proof = inclusion_proof(index, size, oracle_node)
        assert proof == oracle_inclusion(leaves, index)
        verify_inclusion(LEAVES[index], index, size, proof, compute_root(leaves))
        old = rng.randint(0, size)
        proof = consistency_proof(old, size, oracle_node)
        assert proof == oracle_consistency(leaves, old)
        verify_consistency(old, size, proof, compute_root(LEAVES[:old]), compute_root(leaves))


def test_range_proof_arguments_are_checked() -> None:
    with pytest.raises(UsageError):
        inclusion_proof(5, 5, oracle_node)
    with pytest.raises(UsageError):
        inclusion_proof(-1, 5, oracle_node)
    with pytest.raises(UsageError):
        consistency_proof(6, 5, oracle_node)
    assert consistency_proof(0, 5, oracle_node) == []
    assert consistency_proof(5, 5, oracle_node) == []
    assert range_root(3, 3, oracle_node) == EMPTY_ROOT


# -- proofs from public tiles (what a monitor does) -----------------------------------------


def test_proofs_from_public_tiles() -> None:
    store, _, edge = build([700, 1, 99])
    size = edge.size
    fetched: list[str] = []

    def fetch(path: str) -> bytes:
        fetched.append(path)
        return store[path]

    root = compute_root(LEAVES[:size])
    assert root_from_tiles(fetch, size) == root
    for index in (0, 255, 256, 699, size - 1):
        proof = inclusion_proof_from_tiles(fetch, index, size)
        verify_inclusion(LEAVES[index], index, size, proof, root)
    for old in (1, 256, 700, 701, size):
        proof = consistency_proof_from_tiles(fetch, old, size)
        verify_consistency(old, size, proof, compute_root(LEAVES[:old]), root)
    assert all(p.startswith("tile/") for p in fetched)
    # One source fetches each tile once.
    fetched.clear()
    source = TileFetcherSource(fetch, size)
    inclusion_proof(3, size, source)
    inclusion_proof(4, size, source)
    assert len(fetched) == len(set(fetched))


def test_tiles_of_the_wrong_size_are_refused() -> None:
    from sealtrail.errors import InputError

    store, _, edge = build([300])
    with pytest.raises(InputError):
        inclusion_proof_from_tiles(lambda path: store[path][:-1], 0, edge.size)
    with pytest.raises(UsageError):
        TileFetcherSource(lambda path: b"", -1)
