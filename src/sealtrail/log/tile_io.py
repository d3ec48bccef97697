"""Tiles as the engine reads and writes them: reads that repair, writes that never rewrite.

Shared by the reader (full tiles for proofs and the tile API), the writer (integration
output) and recovery (edges re-derived from durable data). Tiles are derived data
(docs/adr/0004, decision 1): a full tile that is missing or damaged is rebuilt from the
sequenced entries when first read, and a full tile already present is never replaced by
different content (decision 5).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sealtrail.errors import Error, LogStorageError
from sealtrail.log._integrate import Edge, TileWrite, edge_levels
from sealtrail.log.storage.protocols import SequencerStorage, TileStore
from sealtrail.merkle import HASH_SIZE
from sealtrail.merkle import tile_proofs as _proofs
from sealtrail.merkle.tiles import (
    ENTRY_BUNDLE_WIDTH,
    TILE_BYTES,
    TILE_HEIGHT,
    TILE_WIDTH,
    decode_entry_bundle,
    encode_entry_bundle,
    entries_path,
    subtree_root,
    tile_path,
)

__all__ = ["TileIO"]

_log = logging.getLogger("sealtrail.log")


def _split_hashes(data: bytes) -> list[bytes]:
    return [data[i:i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def _valid_full(level: int | None, data: bytes) -> bool:
    """Whether ``data`` is well-formed as a full tile (``level``) or entry bundle (None)."""
    if level is not None:
        return len(data) == TILE_BYTES
    try:
        decode_entry_bundle(data, ENTRY_BUNDLE_WIDTH)
    except Error:
        return False
    return True


class TileIO:
    """The tile store seen through the sequencer: what is missing is re-derived.

    ``cache`` holds expanded full tiles for proofs; it is the reader's, and is cleared
    when recovery rebuilds every tile.
    """

    __slots__ = ("_seq", "_tiles", "cache")

    def __init__(self, seq: SequencerStorage, tiles: TileStore,
                 cache: _proofs.TileCache) -> None:
        self._seq = seq
        self._tiles = tiles
        self.cache = cache

    def full_tile(self, level: int, index: int) -> bytes:
        """A full tile from the store, rebuilt (and rewritten) if missing or damaged."""
        path = tile_path(level, index)
        data = self._tiles.read(path)
        if data is not None and len(data) == TILE_BYTES:
            return data
        _log.warning("tile %s is %s; rebuilding it from the sequenced entries", path,
                     "missing" if data is None else "damaged")
        data = self.derive_tile(level, index, TILE_WIDTH)
        self._repair_object(path, data)
        return data

    def full_bundle(self, index: int) -> bytes:
        """A full entry bundle from the store, rebuilt (and rewritten) if missing or damaged."""
        path = entries_path(index)
        data = self._tiles.read(path)
        if data is not None:
            try:
                decode_entry_bundle(data, ENTRY_BUNDLE_WIDTH)
                return data
            except Error:
                pass
        _log.warning("entry bundle %s is %s; rebuilding it", path,
                     "missing" if data is None else "damaged")
        rows = self._seq.entries(index * ENTRY_BUNDLE_WIDTH, (index + 1) * ENTRY_BUNDLE_WIDTH)
        if len(rows) != ENTRY_BUNDLE_WIDTH:
            raise LogStorageError("the sequencer is missing entries a bundle needs",
                                  actual=len(rows), expected=ENTRY_BUNDLE_WIDTH)
        data = encode_entry_bundle([r.body for r in rows])
        self._repair_object(path, data)
        return data

    def _repair_object(self, path: str, data: bytes) -> None:
        # A repair of a full object that may lie below the durable size: sync it at once,
        # since no barrier is bound to cover it and open() only rewrites beyond that size.
        self._tiles.write_many([(path, data)])
        self._tiles.sync([path])

    def derive_tile(self, level: int, index: int, width: int) -> bytes:
        """The first ``width`` hashes of tile (level, index), from the level below."""
        if level == 0:
            leaves = self._seq.leaf_hashes(index * TILE_WIDTH, index * TILE_WIDTH + width)
            if len(leaves) != width:
                raise LogStorageError("the sequencer is missing entries a tile needs",
                                      actual=len(leaves), expected=width)
            return b"".join(leaves)
        children = range(index * TILE_WIDTH, index * TILE_WIDTH + width)
        return b"".join(subtree_root(_split_hashes(self.full_tile(level - 1, c)))
                        for c in children)

    def load_edge(self, size: int) -> Edge:
        """The edge at ``size``, trusting only what is durable at ``size``.

        Level 0 and the bundle come from the sequencer; a higher level's partial tile is
        derived from the full tiles of the level below (full at ``size``, hence synced),
        never read from its own partial file, which was never synced.
        """
        tiles = []
        for level in range(edge_levels(size)):
            nodes = size >> (TILE_HEIGHT * level)
            width, index = nodes % TILE_WIDTH, nodes // TILE_WIDTH
            tiles.append(self.derive_tile(level, index, width) if width else b"")
        start = size - size % ENTRY_BUNDLE_WIDTH
        bundle = tuple(r.body for r in self._seq.entries(start, size))
        if len(bundle) != size - start:
            raise LogStorageError("the sequencer is missing integrated entries",
                                  actual=len(bundle), expected=size - start)
        return Edge(size, tuple(tiles), bundle)

    def write(self, writes: Sequence[TileWrite], *, repair: bool = False) -> list[str]:
        """Store integration output; returns the paths of its full objects.

        A full tile already present is never changed: an existing full tile of the right
        size with different content means the tile tree belongs to another history, so
        refuse (LogStorageError) rather than rewrite a published tile. One of the wrong
        size is damage and is replaced. ``repair`` rewrites full objects unconditionally
        (open() does so beyond the durable size, where a power loss may have left a
        damaged tile that looks whole). Every full path is returned, written or found
        equal: an equal one may itself be an unsynced write of an earlier, failed cycle.
        """
        objects = []
        full = []
        for w in writes:
            path = (entries_path(w.index, w.width) if w.level is None
                    else tile_path(w.level, w.index, w.width))
            if w.full:
                full.append(path)
                if not repair:
                    existing = self._tiles.read(path)
                    if existing == w.data:
                        continue
                    if existing is not None and _valid_full(w.level, existing):
                        raise LogStorageError("a full tile already holds different "
                                              "content; the tile directory belongs to "
                                              "another history", actual=path)
            objects.append((path, w.data))
        if objects:
            self._tiles.write_many(objects)
        return full
