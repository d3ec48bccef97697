"""Recovery at open: bring the tiles up to every committed entry (docs/adr/0004, decision 4).

Trusted: the sequenced entries (committed durably before any acknowledgement) and the
tiles that are full at the recorded durable size X (synced before X was recorded).
Everything else is re-derived: every tile and bundle that was not full at X, in every
width, is rewritten or checked (a power loss may have damaged any of them and left it
looking whole). That is bounded: the writer advances X every ``tile_sync.SYNC_SECONDS``
or ``tile_sync.SYNC_OBJECTS`` full tiles. The recorded state may lag the published
checkpoints (saved with ``sync=False``); that is safe because integration over the
committed entries is deterministic, so re-deriving gives every tree published before, and
the next checkpoint is consistent with all of them.

Runs before any thread of the engine starts; the caller then publishes the recovered edge.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from sealtrail.errors import LogStorageError
from sealtrail.log._integrate import Edge, integrate
from sealtrail.log.storage.protocols import SequencerStorage, TileStore
from sealtrail.log.tile_io import TileIO
from sealtrail.merkle import EMPTY_ROOT, HASH_SIZE
from sealtrail.merkle.tiles import (
    ENTRY_BUNDLE_WIDTH,
    TILE_HEIGHT,
    TILE_WIDTH,
    encode_entry_bundle,
    entries_path,
    tile_path,
)

__all__ = ["CATCH_UP_CHUNK", "Recovered", "recover"]

_log = logging.getLogger("sealtrail.log")

#: Leaves integrated per step when catching up at open or rebuilding tiles.
CATCH_UP_CHUNK = 4096


class Recovered(NamedTuple):
    """What open() continues from: every full object at ``edge.size`` is durable."""

    edge: Edge
    sequenced: int


def recover(seq: SequencerStorage, tiles: TileStore, io: TileIO) -> Recovered:
    """Re-derive what the committed entries imply; raises LogStorageError on contradictions.

    Every sequenced entry keeps its index. The root at the recorded integrated size is
    checked on the way; a mismatch rebuilds every tile from the entries.
    """
    state = seq.load_state()
    sequenced = seq.sequenced_size()
    if state is None:
        if tiles.read("checkpoint") is not None and sequenced == 0:
            raise LogStorageError("the tile directory already holds a published log but "
                                  "the sequencer is empty")
        size, root, durable = 0, EMPTY_ROOT, 0
    else:
        size, root = state.size, state.root_hash
        durable = max(0, min(state.durable_size, size))
    if sequenced < size:
        raise LogStorageError("the sequencer holds fewer entries than were integrated",
                              actual=sequenced, expected=f">= {size}")
    written: list[str] = []
    edge = _catch_up(seq, io, io.load_edge(durable), size, written)
    if edge.root() != root:
        _log.warning("the tiles durable at %d entries do not lead to the recorded root "
                     "at %d; rebuilding every tile from the sequenced entries",
                     durable, size)
        written = []
        edge = _catch_up(seq, io, Edge.empty(), size, written)
        if edge.root() != root:
            raise LogStorageError("the sequenced entries do not hash to the recorded root",
                                  actual=edge.root().hex(), expected=root.hex())
        io.cache.clear()
    # Entries committed after the last recorded state (a crash between the steps).
    edge = _catch_up(seq, io, edge, sequenced, written)
    _repair_partials(tiles, edge)
    # The open barrier: once the full objects are synced (and their partials durably
    # gone), everything full at the current size is durable.
    if written:
        for path in written:
            tiles.delete_partials(path)
        tiles.sync(written)
    return Recovered(edge, sequenced)


def _catch_up(seq: SequencerStorage, io: TileIO, edge: Edge, end: int,
              written: list[str]) -> Edge:
    """Integrate entries [edge.size, end) from the sequencer, rewriting full objects.

    Partial tiles are left to :func:`_repair_partials` (intermediate ones are moot).
    """
    while edge.size < end:
        stop = min(end, edge.size + CATCH_UP_CHUNK)
        rows = seq.entries(edge.size, stop)
        if len(rows) != stop - edge.size:
            raise LogStorageError("the sequencer has a gap in its indexes",
                                  actual=len(rows), expected=stop - edge.size)
        result = integrate(edge, [r.leaf_hash for r in rows], [r.body for r in rows])
        written += io.write([w for w in result.writes if w.full], repair=True)
        edge = result.edge
    return edge


def _repair_partials(tiles: TileStore, edge: Edge) -> None:
    """Make every partial version of the edge's tiles right, and the current one exist.

    Tiles that are full now had their partials removed by the caller; what remains are
    the edge's own tiles, which may hold partial files of any width written since the
    last barrier (never synced): each one present is checked against the prefix it must
    be and rewritten if it is not; the current width is written if missing.
    """
    checks: list[tuple[str, bytes, bool]] = []
    for level, data in enumerate(edge.tiles):
        if data:
            index = (edge.size >> (TILE_HEIGHT * level)) // TILE_WIDTH
            widths = len(data) // HASH_SIZE
            for width in range(1, widths + 1):
                checks.append((tile_path(level, index, width),
                               data[:width * HASH_SIZE], width == widths))
    if edge.bundle:
        index = edge.size // ENTRY_BUNDLE_WIDTH
        encoded = encode_entry_bundle(edge.bundle)
        offset = 0
        for width, entry in enumerate(edge.bundle, 1):
            offset += 2 + len(entry)  # SPEC: C2SP tlog-tiles: uint16 length, then entry
            checks.append((entries_path(index, width), encoded[:offset],
                           width == len(edge.bundle)))
    objects = []
    for path, expected, current in checks:
        existing = tiles.read(path)
        if existing != expected and (existing is not None or current):
            objects.append((path, expected))
    if objects:
        _log.warning("rewriting %d missing or damaged partial tiles", len(objects))
        tiles.write_many(objects)
