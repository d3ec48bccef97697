"""Inclusion and consistency proofs computed from tiles.

SPEC: RFC 9162 §2.1.3.1 (inclusion) and §2.1.4.1 (consistency), written over leaf ranges:
every hash a proof carries is the root of a range of leaves, and every such range splits
into a few *perfect* subtrees (RFC 6962 §2.1's split at the largest power of two). A
perfect subtree of height ``h`` is one node; it is found in the tiles of level ``h // 8``,
hashed up ``h % 8`` levels inside its tile.

:class:`TileCache` keeps recently used tiles *expanded* (every interior level computed
once), so a node lookup is a dict hit plus a slice, and a proof at 10^6 entries costs
about what it costs at 10^3: at most ~3 tiles per 8 levels of height, each usually cached.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Protocol

from sealtrail.errors import InputError, UsageError
from sealtrail.merkle import EMPTY_ROOT, HASH_SIZE, node_hash
from sealtrail.merkle.tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    expand_tile,
    perfect_subtrees,
    tile_path,
    tile_width,
)

__all__ = [
    "ExpandedTile",
    "NodeSource",
    "TileCache",
    "TileFetcherSource",
    "consistency_proof",
    "consistency_proof_from_tiles",
    "inclusion_proof",
    "inclusion_proof_from_tiles",
    "node_from_tile",
    "range_root",
    "root_from_tiles",
    "tile_coordinates",
]

# An expanded tile: rows[r] = the concatenated hashes of the complete nodes r levels above
# the tile's bottom row (rows[0] is the tile itself).
ExpandedTile = tuple[bytes, ...]


class NodeSource(Protocol):
    """Anything that can return the hash of a perfect subtree of the current tree."""

    def __call__(self, height: int, index: int) -> bytes:
        """The node at tree level ``height``, position ``index``."""
        ...


def node_from_tile(tile: ExpandedTile, sub_level: int, offset: int) -> bytes:
    """The node ``sub_level`` rows above the bottom, at position ``offset`` in that row."""
    row = tile[sub_level]
    start = offset * HASH_SIZE
    node = row[start:start + HASH_SIZE]
    if len(node) != HASH_SIZE:
        raise UsageError("node is not in this tile", actual=(sub_level, offset))
    return node


class TileCache:
    """A thread-safe LRU of expanded *full* tiles (full tiles never change)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise UsageError("tile cache capacity must be at least 1", actual=capacity)
        self._capacity = capacity
        self._lock = threading.Lock()
        self._tiles: OrderedDict[tuple[int, int], ExpandedTile] = OrderedDict()

    def get(self, level: int, index: int, load: Callable[[], bytes]) -> ExpandedTile:
        """The expanded full tile (``level``, ``index``), loading it with ``load`` on a miss."""
        key = (level, index)
        with self._lock:
            tile = self._tiles.get(key)
            if tile is not None:
                self._tiles.move_to_end(key)
                return tile
        # Load and hash outside the lock; two threads may race to fill one slot, harmlessly.
        tile = expand_tile(load())
        self.put(level, index, tile)
        return tile

    def put(self, level: int, index: int, tile: ExpandedTile) -> None:
        """Insert an already expanded full tile (the integrator has just hashed it)."""
        with self._lock:
            self._tiles[(level, index)] = tile
            self._tiles.move_to_end((level, index))
            while len(self._tiles) > self._capacity:
                self._tiles.popitem(last=False)

    def clear(self) -> None:
        """Forget every tile (after a repair rewrote some)."""
        with self._lock:
            self._tiles.clear()


def tile_coordinates(height: int, index: int) -> tuple[int, int, int, int]:
    """Where node (``height``, ``index``) lives: (tile level, tile index, sub-level, offset).

    The node covers ``2**sub_level`` consecutive hashes of the tile's bottom row starting
    at ``offset << sub_level``; ``offset`` is its position in row ``sub_level``.
    """
    level, sub = divmod(height, TILE_HEIGHT)
    first = index << sub  # first node of the tile level below it
    return level, first >> TILE_HEIGHT, sub, (first & (TILE_WIDTH - 1)) >> sub


def range_root(start: int, end: int, node: NodeSource) -> bytes:
    """MTH of the leaves [start, end), from the perfect subtrees that make it up.

    SPEC: RFC 6962 §2.1: the root folds the maximal perfect subtrees from the right.
    """
    if start == end:
        return EMPTY_ROOT
    width = end - start
    if width & (width - 1) == 0 and start % width == 0:
        # One perfect subtree (most proof nodes are): a single lookup.
        height = width.bit_length() - 1
        return node(height, start >> height)
    pieces = [node(h, i) for h, i in perfect_subtrees(start, end)]
    root = pieces[-1]
    for piece in reversed(pieces[:-1]):
        root = node_hash(piece, root)
    return root


def _split(n: int) -> int:
    # SPEC: RFC 6962 §2.1: k is the largest power of two smaller than n (n > 1).
    return 1 << ((n - 1).bit_length() - 1)


def _path(m: int, lo: int, hi: int, node: NodeSource) -> Iterator[bytes]:
    # SPEC: RFC 6962 §2.1.1 PATH(m, D[lo:hi]), yielded leaf-first. Iterative: walk down
    # to the leaf recording the sibling ranges, then emit them bottom-up.
    siblings: list[tuple[int, int]] = []
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < lo + k:
            siblings.append((lo + k, hi))
            hi = lo + k
        else:
            siblings.append((lo, lo + k))
            lo = lo + k
    for a, b in reversed(siblings):
        yield range_root(a, b, node)


def inclusion_proof(index: int, tree_size: int, node: NodeSource) -> list[bytes]:
    """The RFC 9162 inclusion proof for leaf ``index`` in the tree of ``tree_size``.

    Raises :class:`~sealtrail.errors.UsageError` unless ``0 <= index < tree_size``.
    """
    if not 0 <= index < tree_size:
        raise UsageError("leaf index is not inside the tree", actual=index,
                         expected=f"0 <= index < {tree_size}")
    return list(_path(index, 0, tree_size, node))


def consistency_proof(old_size: int, new_size: int, node: NodeSource) -> list[bytes]:
    """The RFC 9162 consistency proof from ``old_size`` to ``new_size``.

    Empty when ``old_size`` is 0 or equal to ``new_size``. Raises
    :class:`~sealtrail.errors.UsageError` unless ``0 <= old_size <= new_size``.
    """
    if not 0 <= old_size <= new_size:
        raise UsageError("old tree size is not inside the new tree", actual=old_size,
                         expected=f"0 <= old size <= {new_size}")
    if old_size in (0, new_size):
        return []
    # SPEC: RFC 6962 §2.1.2 SUBPROOF(m, D[lo:hi], b), iteratively: record the ranges the
    # recursion would append on its way back up, then emit them in that order.
    m, lo, hi, whole = old_size, 0, new_size, True
    siblings: list[tuple[int, int]] = []
    base: list[tuple[int, int]] = []
    while True:
        if m == hi:
            # SPEC: "If m = n, SUBPROOF(m, D[n], true) = {}, SUBPROOF(m, D[n], false) =
            # {MTH(D[n])}".
            if not whole:
                base.append((lo, hi))
            break
        k = _split(hi - lo)
        if m - lo <= k:
            siblings.append((lo + k, hi))
            hi = lo + k
        else:
            siblings.append((lo, lo + k))
            lo, whole = lo + k, False
    # The recursion returns its innermost result first, then each level's sibling.
    return [range_root(a, b, node) for a, b in base + siblings[::-1]]


# -- proofs from a remote log's tiles (monitors, tests) ------------------------------------


class TileFetcherSource:
    """A :class:`NodeSource` over the public tiles of a tree of ``tree_size`` leaves.

    ``fetch(path)`` returns the bytes at a tlog-tiles path (``tile/<L>/<N>[.p/<W>]``)
    relative to the log's prefix, e.g. with an HTTP client. Each tile is fetched at most
    once per source. The tiles are untrusted: a proof built from them must still be
    verified against signed checkpoints (``sealtrail.merkle.verify_*``); a tile of the
    wrong size raises :class:`~sealtrail.errors.InputError`.
    """

    def __init__(self, fetch: Callable[[str], bytes], tree_size: int) -> None:
        if isinstance(tree_size, bool) or not isinstance(tree_size, int) or tree_size < 0:
            raise UsageError("tree size must be a non-negative integer", actual=tree_size)
        self._fetch = fetch
        self._size = tree_size
        self._tiles: dict[tuple[int, int], ExpandedTile] = {}

    def __call__(self, height: int, index: int) -> bytes:
        """The node at tree level ``height``, position ``index``."""
        level, tile_index, sub, offset = tile_coordinates(height, index)
        tile = self._tiles.get((level, tile_index))
        if tile is None:
            width = tile_width(level, tile_index, self._size)
            if width == 0:
                raise UsageError("node is outside the tree", actual=(height, index))
            path = tile_path(level, tile_index, None if width == TILE_WIDTH else width)
            data = self._fetch(path)
            if not isinstance(data, (bytes, bytearray)) or len(data) != width * HASH_SIZE:
                raise InputError("fetched tile has the wrong size", actual=f"{path}: "
                                 f"{len(data) if isinstance(data, (bytes, bytearray)) else data}",
                                 expected=f"{width * HASH_SIZE} bytes")
            tile = self._tiles[(level, tile_index)] = expand_tile(bytes(data))
        return node_from_tile(tile, sub, offset)


def inclusion_proof_from_tiles(fetch: Callable[[str], bytes], index: int,
                               tree_size: int) -> list[bytes]:
    """An inclusion proof built from a log's public tiles (see :class:`TileFetcherSource`)."""
    return inclusion_proof(index, tree_size, TileFetcherSource(fetch, tree_size))


def consistency_proof_from_tiles(fetch: Callable[[str], bytes], old_size: int,
                                 new_size: int) -> list[bytes]:
    """A consistency proof built from a log's public tiles of the ``new_size`` tree."""
    return consistency_proof(old_size, new_size, TileFetcherSource(fetch, new_size))


def root_from_tiles(fetch: Callable[[str], bytes], tree_size: int) -> bytes:
    """The root hash of the tree of ``tree_size``, from its public tiles."""
    return range_root(0, tree_size, TileFetcherSource(fetch, tree_size))
