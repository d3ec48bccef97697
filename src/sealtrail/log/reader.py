"""The read path: entries, search, proofs and tiles, all at the latest published checkpoint.

Readers see one consistent :class:`Snapshot`: the latest published checkpoint plus the
right edge of the tree at its size. The writer replaces the snapshot when it publishes
(one reference assignment, so readers take no lock); nothing beyond the published size
is exposed, even when the sequencer already holds later entries.
"""

from __future__ import annotations

from typing import NamedTuple

from sealtrail.errors import (
    LogEntryNotFoundError,
    LogError,
    LogStorageError,
    UsageError,
)
from sealtrail.log._integrate import Edge
from sealtrail.log.config import MAX_SEARCH_LIMIT, check_search_keys, is_int
from sealtrail.log.storage.protocols import SequencerStorage
from sealtrail.log.tile_io import TileIO
from sealtrail.merkle import HASH_SIZE, leaf_hash
from sealtrail.merkle import tile_proofs as _proofs
from sealtrail.merkle.tiles import (
    ENTRY_BUNDLE_WIDTH,
    MAX_LEVEL,
    MAX_TILE_INDEX,
    TILE_HEIGHT,
    TILE_WIDTH,
    decode_entry_bundle,
    encode_entry_bundle,
    entries_path,
    expand_tile,
    extend_expanded,
    tile_path,
    tile_width,
)

__all__ = ["LogReader", "PublishedCheckpoint", "Snapshot", "StoredEntry"]


class PublishedCheckpoint(NamedTuple):
    """A signed checkpoint the log has published."""

    size: int
    root_hash: bytes
    note: str  # the full signed note
    published_at: float  # unix seconds


class StoredEntry(NamedTuple):
    """A log entry as stored."""

    index: int  # type: ignore[assignment]  # a field named like tuple.index
    body: bytes
    integrated_time: int

    @property
    def leaf_hash(self) -> bytes:
        """SHA-256(0x00 || body): the Rekor UUID in hex."""
        return leaf_hash(self.body)


class Snapshot:
    """What readers see: the published checkpoint and the edge at its size.

    The partial edge tiles are expanded (every complete row hashed) on the first proof that
    needs them. A busy log publishes a checkpoint every few entries, so each snapshot
    extends the previous one's expansion of the same tile rather than redoing it: only the
    nodes over the new leaves are hashed. Only the previous snapshot's expansions are
    kept, never a chain of snapshots.
    """

    __slots__ = ("checkpoint", "edge", "_expanded", "_previous")

    def __init__(self, checkpoint: PublishedCheckpoint, edge: Edge,
                 previous: Snapshot | None = None) -> None:
        self.checkpoint = checkpoint
        self.edge = edge
        self._expanded: dict[int, tuple[int, _proofs.ExpandedTile]] = {}
        self._previous = previous._expanded if previous is not None else None

    def expanded_edge(self, level: int) -> _proofs.ExpandedTile:
        """The edge's partial tile at ``level``, expanded for proofs."""
        found = self._expanded.get(level)
        if found is not None:
            return found[1]
        data = self.edge.tiles[level]
        index = self.edge.size >> (TILE_HEIGHT * (level + 1))
        old = self._previous.get(level) if self._previous is not None else None
        if old is not None and old[0] == index and data.startswith(old[1][0]):
            tile = extend_expanded(old[1], data)
        else:
            tile = expand_tile(data)
        self._expanded[level] = (index, tile)
        return tile


def _check_tile_args(level: int, index: int, width: int | None, max_level: int) -> None:
    if not is_int(level) or not 0 <= level <= max_level:
        raise UsageError("tile level is out of range", actual=level,
                         expected=f"0..{max_level}")
    if not is_int(index) or not 0 <= index <= MAX_TILE_INDEX:
        raise UsageError("tile index is out of range", actual=index)
    if width is not None and (not is_int(width) or not 1 <= width < TILE_WIDTH):
        raise UsageError("partial tile width is out of range", actual=width,
                         expected="1..255 (None for a full tile)")


class LogReader:
    """Answers reads from the current snapshot, the sequencer and the tiles.

    Thread-safe: any thread (or event loop) may read while the writer publishes.
    """

    __slots__ = ("_seq", "_io", "snapshot")

    def __init__(self, seq: SequencerStorage, io: TileIO) -> None:
        self._seq = seq
        self._io = io
        #: The latest published snapshot; set by the writer (and by open()).
        self.snapshot: Snapshot | None = None

    def current(self) -> Snapshot:
        """The latest snapshot (open() always publishes one before the engine is used)."""
        snap = self.snapshot
        if snap is None:  # pragma: no cover - open() always publishes
            raise LogError("the log has not published a checkpoint yet")
        return snap

    def entry(self, index: int) -> StoredEntry:
        """The entry at ``index``, if the latest checkpoint covers it (see LogEngine)."""
        size = self.current().checkpoint.size
        if not is_int(index) or not 0 <= index < size:
            raise LogEntryNotFoundError("no entry has this index", actual=index,
                                        expected=f"0 <= index < {size}")
        rows = self._seq.entries(index, index + 1)
        if not rows:  # pragma: no cover - the sequencer lost a published entry
            raise LogStorageError("a published entry is missing from the sequencer",
                                  actual=index)
        row = rows[0]
        return StoredEntry(row.index, row.body, row.integrated_time)

    def find(self, leaf_hash: bytes) -> int | None:
        """The index of the published entry with this leaf hash, or None."""
        if not isinstance(leaf_hash, (bytes, bytearray)) or len(leaf_hash) != HASH_SIZE:
            raise UsageError("a leaf hash is 32 bytes", actual=leaf_hash)
        index = self._seq.find(bytes(leaf_hash))
        if index is None or index >= self.current().checkpoint.size:
            return None
        return index

    def search(self, kind: str, value: str, limit: int, start: int = 0) -> list[int]:
        """Indexes of published entries stored under (kind, value), ascending, from
        ``start`` on."""
        ((kind, value),) = check_search_keys([(kind, value)], error=UsageError)
        if not is_int(limit) or not 1 <= limit <= MAX_SEARCH_LIMIT:
            raise UsageError("search limit is out of range", actual=limit,
                             expected=f"1..{MAX_SEARCH_LIMIT}")
        if not is_int(start) or start < 0:
            raise UsageError("search start is out of range", actual=start, expected=">= 0")
        size = self.current().checkpoint.size
        if start >= size:
            return []
        return self._seq.search(kind, value, size, limit, start=start)

    def _node_source(self, snap: Snapshot) -> _proofs.NodeSource:
        size = snap.checkpoint.size
        cache = self._io.cache
        full_tile = self._io.full_tile
        # One proof touches only a few tiles (about one per 8 levels) but asks for ~log2(n)
        # nodes: remember the tiles for the duration of this proof, so a deeper tree costs
        # little more than a shallow one (no lock or LRU bookkeeping per node).
        seen: dict[tuple[int, int], _proofs.ExpandedTile] = {}

        def node(height: int, index: int) -> bytes:
            level, tile_index, sub, offset = _proofs.tile_coordinates(height, index)
            tile = seen.get((level, tile_index))
            if tile is None:
                if tile_width(level, tile_index, size) == TILE_WIDTH:
                    tile = cache.get(level, tile_index,
                                     lambda: full_tile(level, tile_index))
                else:
                    tile = snap.expanded_edge(level)
                seen[(level, tile_index)] = tile
            return _proofs.node_from_tile(tile, sub, offset)

        return node

    @staticmethod
    def _check_size(tree_size: int, what: str, snap: Snapshot) -> int:
        if not is_int(tree_size) or tree_size < 0:
            raise UsageError(f"{what} must be a non-negative integer", actual=tree_size)
        if tree_size > snap.checkpoint.size:
            raise LogEntryNotFoundError(f"{what} is beyond the latest checkpoint",
                                        actual=tree_size,
                                        expected=f"<= {snap.checkpoint.size}")
        return tree_size

    def inclusion_proof(self, index: int, tree_size: int) -> list[bytes]:
        """The inclusion proof (leaf to root) for ``index`` in the tree of ``tree_size``."""
        snap = self.current()
        tree_size = self._check_size(tree_size, "tree size", snap)
        if not is_int(index) or not 0 <= index < tree_size:
            raise UsageError("leaf index is not inside the tree", actual=index,
                             expected=f"0 <= index < {tree_size}")
        return _proofs.inclusion_proof(index, tree_size, self._node_source(snap))

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """The consistency proof from ``old_size`` to ``new_size``."""
        snap = self.current()
        new_size = self._check_size(new_size, "new tree size", snap)
        old_size = self._check_size(old_size, "old tree size", snap)
        if old_size > new_size:
            raise UsageError("old tree size is larger than the new one", actual=old_size,
                             expected=f"<= {new_size}")
        return _proofs.consistency_proof(old_size, new_size, self._node_source(snap))

    def root_at(self, tree_size: int) -> bytes:
        """The root hash of the tree of ``tree_size`` (any size up to the latest)."""
        snap = self.current()
        tree_size = self._check_size(tree_size, "tree size", snap)
        return _proofs.range_root(0, tree_size, self._node_source(snap))

    def read_tile(self, level: int, index: int, width: int | None) -> bytes:
        """Tile bytes as served at ``tile/<L>/<N>[.p/<W>]`` for the latest checkpoint.

        A partial width smaller than the tile's current width is served as the prefix
        (SPEC: C2SP tlog-tiles: tiles only grow, and a partial tile is a prefix of every
        later version of it).
        """
        _check_tile_args(level, index, width, MAX_LEVEL)
        snap = self.current()
        have = tile_width(level, index, snap.checkpoint.size)
        want = TILE_WIDTH if width is None else width
        if have == 0 or want > have or (width is None and have < TILE_WIDTH):
            raise LogEntryNotFoundError("no such tile", actual=tile_path(level, index, width),
                                        expected=f"tree size {snap.checkpoint.size}")
        data = (self._io.full_tile(level, index) if have == TILE_WIDTH
                else snap.edge.tiles[level])
        return data[:want * HASH_SIZE]

    def read_entry_bundle(self, index: int, width: int | None) -> bytes:
        """Entry bundle bytes as served at ``tile/entries/<N>[.p/<W>]`` (see read_tile)."""
        _check_tile_args(0, index, width, 0)
        snap = self.current()
        have = tile_width(0, index, snap.checkpoint.size)
        want = ENTRY_BUNDLE_WIDTH if width is None else width
        if have == 0 or want > have or (width is None and have < ENTRY_BUNDLE_WIDTH):
            raise LogEntryNotFoundError("no such entry bundle",
                                        actual=entries_path(index, width),
                                        expected=f"tree size {snap.checkpoint.size}")
        if have == ENTRY_BUNDLE_WIDTH:
            data = self._io.full_bundle(index)
            return data if want == have else encode_entry_bundle(
                decode_entry_bundle(data, have)[:want])
        return encode_entry_bundle(snap.edge.bundle[:want])
