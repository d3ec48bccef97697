"""Integration: the right edge of the tree plus new leaves -> new tiles and a new root (pure).

The state a log needs to append is small: for every tile level, the rightmost tile that is
not yet full (the *edge*), plus the entries of the rightmost, not yet full entry bundle.
Everything to the left of the edge is made of full tiles that never change again.

:func:`integrate` takes an :class:`Edge` and a batch of leaves and returns the tiles and
bundles to write and the new edge. It touches no storage, so every driver shares it and it
can be checked against an independent tree (tests/unit/log/test_integrate.py).

SPEC: C2SP tlog-tiles: a full tile never changes once written; a partial tile of width
``W`` is a prefix of every later version of that tile.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from sealtrail.errors import UsageError
from sealtrail.merkle import HASH_SIZE
from sealtrail.merkle.tiles import (
    ENTRY_BUNDLE_WIDTH,
    TILE_HEIGHT,
    TILE_WIDTH,
    encode_entry_bundle,
    expand_tile,
    root_from_edge,
)

__all__ = ["Edge", "Integration", "TileWrite", "edge_levels", "integrate"]


class TileWrite(NamedTuple):
    """One tile or entry bundle to store. ``level`` None = entry bundle; ``width`` None = full."""

    level: int | None
    index: int  # type: ignore[assignment]  # a field named like tuple.index
    width: int | None
    data: bytes

    @property
    def full(self) -> bool:
        """A full tile or bundle: immutable once written."""
        return self.width is None


class Edge(NamedTuple):
    """The right edge of a tree of ``size`` leaves.

    ``tiles[L]`` is the content of the rightmost partial tile of level ``L``
    (``32 * ((size >> 8L) % 256)`` bytes, empty when that level ends on a full tile), for
    every level that has at least one node. ``bundle`` holds the entries of the partial
    entry bundle (``size % 256`` of them).
    """

    size: int
    tiles: tuple[bytes, ...]
    bundle: tuple[bytes, ...]

    @classmethod
    def empty(cls) -> "Edge":
        """The edge of the empty tree."""
        return cls(0, (), ())

    def root(self) -> bytes:
        """The RFC 6962 root hash of the tree."""
        return root_from_edge(self.size, self.tiles)

    def check(self) -> None:
        """Check the edge's shape against its size; UsageError if it does not fit."""
        levels = edge_levels(self.size)
        if len(self.tiles) != levels:
            raise UsageError("edge has the wrong number of levels", actual=len(self.tiles),
                             expected=levels)
        for level, data in enumerate(self.tiles):
            width = (self.size >> (TILE_HEIGHT * level)) % TILE_WIDTH
            if len(data) != width * HASH_SIZE:
                raise UsageError(f"edge tile {level} has the wrong size", actual=len(data),
                                 expected=width * HASH_SIZE)
        if len(self.bundle) != self.size % ENTRY_BUNDLE_WIDTH:
            raise UsageError("edge bundle has the wrong number of entries",
                             actual=len(self.bundle), expected=self.size % ENTRY_BUNDLE_WIDTH)


class Integration(NamedTuple):
    """The result of :func:`integrate`: what to write, the new edge and its root.

    ``expanded`` holds (level, index, rows) for every newly completed full hash tile: the
    interior rows were computed anyway, and a proof cache can keep them.
    """

    edge: Edge
    root: bytes
    writes: tuple[TileWrite, ...]
    expanded: tuple[tuple[int, int, tuple[bytes, ...]], ...] = ()


def edge_levels(size: int) -> int:
    """The number of tile levels that hold at least one node in a tree of ``size``."""
    levels = 0
    while size >> (TILE_HEIGHT * levels):
        levels += 1
    return levels


def _split_row(base_nodes: int, row: bytes, level: int | None, width: int,
               unit: int) -> tuple[list[TileWrite], bytes]:
    """Cut ``row`` (starting at node ``base_nodes``, tile-aligned) into tiles of ``width``.

    Returns the writes (full tiles, then at most one partial) and the partial remainder.
    """
    writes: list[TileWrite] = []
    first = base_nodes // width
    full_bytes = width * unit
    tail = b""
    for offset in range(0, len(row), full_bytes):
        chunk = row[offset:offset + full_bytes]
        index = first + offset // full_bytes
        if len(chunk) == full_bytes:
            writes.append(TileWrite(level, index, None, chunk))
        else:
            writes.append(TileWrite(level, index, len(chunk) // unit, chunk))
            tail = chunk
    return writes, tail


def integrate(edge: Edge, leaf_hashes: Sequence[bytes], entries: Sequence[bytes]) -> Integration:
    """Append ``leaf_hashes`` (and their ``entries``, for the bundles) to the tree at ``edge``.

    Returns the tiles and bundles that changed (newly completed full tiles and the new
    partial tiles) in bottom-up order, the new edge and the new root. Full tiles left of
    the old edge are never part of the output, so a correct caller never rewrites one.

    Raises :class:`~sealtrail.errors.UsageError` if the inputs do not fit together.
    """
    if len(leaf_hashes) != len(entries):
        raise UsageError("every leaf needs its entry", actual=len(entries),
                         expected=len(leaf_hashes))
    for i, h in enumerate(leaf_hashes):
        if len(h) != HASH_SIZE:
            raise UsageError(f"leaf hash {i} is not 32 bytes", actual=len(h))
    if not leaf_hashes:
        return Integration(edge, edge.root(), ())
    edge.check()
    new_size = edge.size + len(leaf_hashes)
    writes: list[TileWrite] = []
    expanded: list[tuple[int, int, tuple[bytes, ...]]] = []

    # Hash tiles, bottom-up: the new nodes of one level are the roots of the tiles that
    # the level below just completed.
    tiles: list[bytes] = []
    new_nodes = b"".join(leaf_hashes)
    level = 0
    while new_nodes or level < len(edge.tiles):
        old = edge.tiles[level] if level < len(edge.tiles) else b""
        if not new_nodes:
            tiles.append(old)
            level += 1
            continue
        base = (edge.size >> (TILE_HEIGHT * level)) - len(old) // HASH_SIZE
        level_writes, tail = _split_row(base, old + new_nodes, level, TILE_WIDTH, HASH_SIZE)
        writes.extend(level_writes)
        tiles.append(tail)
        roots = []
        for w in level_writes:
            if w.full:
                rows = expand_tile(w.data)
                expanded.append((level, w.index, rows))
                roots.append(rows[-1])
        new_nodes = b"".join(roots)
        level += 1

    # Entry bundles, aligned with level-0 tiles.
    bundle = list(edge.bundle) + list(entries)
    first = (edge.size - len(edge.bundle)) // ENTRY_BUNDLE_WIDTH
    tail_bundle: tuple[bytes, ...] = ()
    for offset in range(0, len(bundle), ENTRY_BUNDLE_WIDTH):
        chunk = bundle[offset:offset + ENTRY_BUNDLE_WIDTH]
        index = first + offset // ENTRY_BUNDLE_WIDTH
        full = len(chunk) == ENTRY_BUNDLE_WIDTH
        writes.append(TileWrite(None, index, None if full else len(chunk),
                                encode_entry_bundle(chunk)))
        if not full:
            tail_bundle = tuple(chunk)

    new_edge = Edge(new_size, tuple(tiles), tail_bundle)
    return Integration(new_edge, new_edge.root(), tuple(writes), tuple(expanded))
