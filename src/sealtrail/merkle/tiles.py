"""C2SP tlog-tiles maths: tile paths, tile and entry-bundle encodings, hashes inside tiles.

Pure: no I/O. SPEC: C2SP tlog-tiles (https://c2sp.org/tlog-tiles). A log's Merkle tree is
cut into *tiles* of height 8: the tile at level ``L`` and index ``N`` holds the (up to)
256 consecutive hashes of tree level ``8*L`` starting at node ``256*N``. Level-0 tiles hold
leaf hashes; a level-1 tile holds the roots of 256 level-0 tiles, and so on. The rightmost
tile of a level is *partial* (width ``W`` < 256) until it fills up. Entry bundles hold the
log entries themselves, 256 per full bundle, aligned with the level-0 tiles.

Paths, as served under the log's URL prefix::

    tile/<L>/<N>[.p/<W>]
    tile/entries/<N>[.p/<W>]

where ``<N>`` is written as zero-padded 3-digit path elements, all but the last prefixed
with ``x`` (index 1234067 -> ``x001/x234/067``).

Malformed untrusted input (a path, a tile or a bundle fetched from the network) raises
:class:`~sealtrail.errors.InputError`; invalid arguments from calling code raise
:class:`~sealtrail.errors.UsageError`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from sealtrail.errors import InputError, UsageError
from sealtrail.merkle._proofs import EMPTY_ROOT, HASH_SIZE, node_hash

__all__ = [
    "ENTRY_BUNDLE_WIDTH",
    "MAX_ENTRY_SIZE",
    "MAX_LEVEL",
    "MAX_TILE_INDEX",
    "TILE_BYTES",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "TileRef",
    "decode_entry_bundle",
    "decode_tile",
    "encode_entry_bundle",
    "encode_index",
    "encode_tile",
    "entries_path",
    "expand_tile",
    "parse_tile_path",
    "perfect_subtrees",
    "root_from_edge",
    "subtree_root",
    "tile_path",
    "tile_width",
]

# SPEC: C2SP tlog-tiles: "tiles have a fixed height of 8 and a maximum width of 256".
TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
TILE_BYTES = TILE_WIDTH * HASH_SIZE
# SPEC: C2SP tlog-tiles: entry bundles hold up to 256 entries, like level-0 tiles.
ENTRY_BUNDLE_WIDTH = TILE_WIDTH
# SPEC: C2SP tlog-tiles: each entry is prefixed by its length as a big-endian uint16.
MAX_ENTRY_SIZE = 0xFFFF
# SPEC: C2SP tlog-tiles: "<L> ... a decimal ASCII integer between 0 and 63".
MAX_LEVEL = 63
# Tree sizes are int64 on every wire format we read, so no level holds more than
# 2**63 nodes and no tile index reaches 2**55 (a 6-element "x.../.../NNN" path).
MAX_TILE_INDEX = (2**63 - 1) >> TILE_HEIGHT
# The longest valid path is "tile/entries/" + 6 elements + ".p/255", well under 64.
_MAX_PATH_CHARS = 64

_LEVEL_RE = re.compile(r"\A(0|[1-9][0-9]?)\Z")
_WIDTH_RE = re.compile(r"\A[1-9][0-9]{0,2}\Z")
_SEGMENT_RE = re.compile(r"\Ax[0-9]{3}\Z")
_LAST_RE = re.compile(r"\A[0-9]{3}\Z")


def _check_int(value: object, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{what} must be an integer", actual=type(value).__name__)
    if not low <= value <= high:
        raise UsageError(f"{what} is out of range", actual=value, expected=f"{low}..{high}")
    return value


def encode_index(index: int) -> str:
    """Encode a tile or bundle index as tlog-tiles path elements (1234067 -> x001/x234/067).

    SPEC: C2SP tlog-tiles: "<N> ... MUST be a non-negative integer encoded into
    zero-padded 3-digit path elements. All but the last path element MUST begin with an x."
    """
    index = _check_int(index, "tile index", 0, MAX_TILE_INDEX)
    parts = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        parts.append(f"x{index % 1000:03d}")
        index //= 1000
    return "/".join(reversed(parts))


def _width_suffix(width: int | None, full: int) -> str:
    if width is None:
        return ""
    width = _check_int(width, "tile width", 1, full)
    # A width of 256 *is* the full tile: it has no ".p/" spelling.
    return "" if width == full else f".p/{width}"


def tile_path(level: int, index: int, width: int | None = None) -> str:
    """The path of a hash tile: ``tile/<L>/<N>`` or, for a partial tile, ``.../<N>.p/<W>``.

    ``width`` None or 256 names the full tile; 1..255 a partial one. Raises
    :class:`~sealtrail.errors.UsageError` for an out-of-range level, index or width.
    """
    level = _check_int(level, "tile level", 0, MAX_LEVEL)
    return f"tile/{level}/{encode_index(index)}{_width_suffix(width, TILE_WIDTH)}"


def entries_path(index: int, width: int | None = None) -> str:
    """The path of an entry bundle: ``tile/entries/<N>[.p/<W>]`` (see :func:`tile_path`)."""
    return f"tile/entries/{encode_index(index)}{_width_suffix(width, ENTRY_BUNDLE_WIDTH)}"


class TileRef(NamedTuple):
    """A parsed tile path. ``level`` is None for an entry bundle; ``width`` None if full."""

    level: int | None
    # The field shadows tuple.index, which mypy reports as an incompatible override; the
    # name is the API (callers unpack ``level, index, width`` and read ``ref.index``).
    index: int  # type: ignore[assignment]
    width: int | None

    @property
    def is_entries(self) -> bool:
        """Whether this names an entry bundle rather than a hash tile."""
        return self.level is None

    @property
    def is_partial(self) -> bool:
        """Whether this names a partial tile or bundle (``.p/<W>``)."""
        return self.width is not None

    def path(self) -> str:
        """The canonical path (parsing it again gives the same reference)."""
        if self.level is None:
            return entries_path(self.index, self.width)
        return tile_path(self.level, self.index, self.width)


def parse_tile_path(path: object) -> TileRef:
    """Parse ``tile/<L>/<N>[.p/<W>]`` or ``tile/entries/<N>[.p/<W>]`` strictly.

    The path is relative (no leading ``/``), bounded in length, and must be in the one
    canonical spelling :func:`tile_path` writes: no leading zeros in ``L`` or ``W``, no
    superfluous ``x000`` elements, ASCII digits only, ``W`` in 1..255.

    Raises :class:`~sealtrail.errors.InputError` for anything else.
    """
    if not isinstance(path, str):
        raise InputError("tile path must be a string", actual=type(path).__name__)
    if len(path) > _MAX_PATH_CHARS:
        raise InputError("tile path is too long", actual=f"{len(path)} characters",
                         expected=f"<= {_MAX_PATH_CHARS}")
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "tile":
        raise InputError("not a tile path", actual=path,
                         expected="tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>]")
    level: int | None
    if parts[1] == "entries":
        level = None
    elif _LEVEL_RE.match(parts[1]) and int(parts[1]) <= MAX_LEVEL:
        level = int(parts[1])
    else:
        raise InputError("tile level is not a decimal number in 0..63", actual=parts[1])
    rest = parts[2:]
    width: int | None = None
    # A partial tile ends in "<last>.p/<W>": the ".p" sits on the last index element.
    if rest[-1:] and len(rest) >= 2 and rest[-2].endswith(".p"):
        w = rest[-1]
        if not _WIDTH_RE.match(w) or not 1 <= int(w) < TILE_WIDTH:
            raise InputError("partial tile width is not a decimal number in 1..255", actual=w)
        width = int(w)
        rest = rest[:-2] + [rest[-2][:-2]]
    if not rest or len(rest) > 6:
        raise InputError("tile index has the wrong number of path elements", actual=path)
    *upper, last = rest
    if not _LAST_RE.match(last) or not all(_SEGMENT_RE.match(s) for s in upper):
        raise InputError("tile index is not zero-padded 3-digit elements with x prefixes",
                         actual=path)
    index = int("".join(s[1:] for s in upper) + last)
    if index > MAX_TILE_INDEX:
        raise InputError("tile index is too large", actual=index,
                         expected=f"<= {MAX_TILE_INDEX}")
    ref = TileRef(level, index, width)
    # One index, one spelling: "x000/001" decodes to 1 but 1 is written "001".
    if ref.path() != path:
        raise InputError("tile path is not in canonical form", actual=path,
                         expected=ref.path())
    return ref


# -- tile contents --------------------------------------------------------------------------


def tile_width(level: int, index: int, tree_size: int) -> int:
    """How many hashes tile (``level``, ``index``) holds in a tree of ``tree_size`` leaves.

    0 if the tile does not exist yet, 256 if it is full, otherwise the partial width.
    """
    nodes = tree_size >> (TILE_HEIGHT * level)
    return max(0, min(TILE_WIDTH, nodes - index * TILE_WIDTH))


def encode_tile(hashes: Sequence[bytes]) -> bytes:
    """Concatenate up to 256 32-byte hashes into a tile.

    Raises :class:`~sealtrail.errors.UsageError` on a wrong hash length or count.
    """
    if not 1 <= len(hashes) <= TILE_WIDTH:
        raise UsageError("a tile holds 1 to 256 hashes", actual=len(hashes))
    for i, h in enumerate(hashes):
        if len(h) != HASH_SIZE:
            raise UsageError(f"tile hash {i} is not 32 bytes", actual=len(h))
    return b"".join(hashes)


def decode_tile(data: bytes, width: int) -> list[bytes]:
    """Split tile bytes into ``width`` hashes, checking the length exactly.

    Raises :class:`~sealtrail.errors.InputError` if ``data`` is not ``32 * width`` bytes.
    """
    width = _check_int(width, "tile width", 1, TILE_WIDTH)
    if not isinstance(data, (bytes, bytearray)) or len(data) != width * HASH_SIZE:
        raise InputError("tile has the wrong size",
                         actual=len(data) if isinstance(data, (bytes, bytearray)) else data,
                         expected=f"{width * HASH_SIZE} bytes")
    return [bytes(data[i:i + HASH_SIZE]) for i in range(0, len(data), HASH_SIZE)]


def encode_entry_bundle(entries: Sequence[bytes]) -> bytes:
    """Encode up to 256 entries as a tlog-tiles entry bundle (u16 length prefixes).

    SPEC: C2SP tlog-tiles: "a sequence of big-endian uint16 length-prefixed log entries".
    Raises :class:`~sealtrail.errors.UsageError` for an empty or oversized bundle or an
    entry longer than 65535 bytes.
    """
    if not 1 <= len(entries) <= ENTRY_BUNDLE_WIDTH:
        raise UsageError("an entry bundle holds 1 to 256 entries", actual=len(entries))
    out = bytearray()
    for i, entry in enumerate(entries):
        if len(entry) > MAX_ENTRY_SIZE:
            raise UsageError(f"entry {i} is too large for an entry bundle",
                             actual=len(entry), expected=f"<= {MAX_ENTRY_SIZE} bytes")
        out += len(entry).to_bytes(2, "big")
        out += entry
    return bytes(out)


def decode_entry_bundle(data: bytes, width: int | None = None) -> list[bytes]:
    """Decode an entry bundle strictly; if ``width`` is given, exactly that many entries.

    Raises :class:`~sealtrail.errors.InputError` on a truncated record, trailing bytes, or
    more than 256 entries (or not ``width`` of them).
    """
    if not isinstance(data, (bytes, bytearray)):
        raise InputError("entry bundle must be bytes", actual=type(data).__name__)
    limit = ENTRY_BUNDLE_WIDTH if width is None else _check_int(
        width, "bundle width", 1, ENTRY_BUNDLE_WIDTH)
    view = memoryview(data)
    entries: list[bytes] = []
    pos = 0
    while pos < len(view):
        if len(entries) == limit:
            raise InputError("entry bundle has too many entries",
                             expected=f"{limit} entries")
        if pos + 2 > len(view):
            raise InputError("entry bundle ends inside a length prefix", actual=pos)
        size = int.from_bytes(view[pos:pos + 2], "big")
        pos += 2
        if pos + size > len(view):
            raise InputError("entry bundle ends inside an entry", actual=len(view) - pos,
                             expected=f"{size} bytes")
        entries.append(bytes(view[pos:pos + size]))
        pos += size
    if width is not None and len(entries) != width:
        raise InputError("entry bundle has the wrong number of entries",
                         actual=len(entries), expected=width)
    return entries


# -- hashes inside tiles --------------------------------------------------------------------


def subtree_root(hashes: Sequence[bytes]) -> bytes:
    """The root of a perfect subtree whose bottom row is ``hashes`` (a power-of-two count).

    Used to hash a full tile up into the node one tile level higher, or to hash part of a
    tile up to an interior node. Raises :class:`~sealtrail.errors.UsageError` if the count
    is not a power of two.
    """
    n = len(hashes)
    if n == 0 or n & (n - 1):
        raise UsageError("a perfect subtree has a power-of-two number of nodes", actual=n)
    row = list(hashes)
    sha256 = hashlib.sha256
    while len(row) > 1:
        row = [sha256(b"\x01" + a + b).digest() for a, b in zip(row[0::2], row[1::2])]
    return row[0]


def expand_tile(data: bytes) -> tuple[bytes, ...]:
    """Every complete row of a (full or partial) tile, bottom-up.

    ``rows[0]`` is the tile itself; ``rows[r]`` holds the ``width >> r`` complete nodes
    ``r`` levels above it (an unpaired last node has no parent yet). A full tile has 9
    rows, the last being its root. Raises :class:`~sealtrail.errors.UsageError` unless
    ``data`` is 1 to 256 hashes.
    """
    if not data or len(data) % HASH_SIZE or len(data) > TILE_BYTES:
        raise UsageError("tile data is not 1 to 256 hashes", actual=len(data))
    sha256 = hashlib.sha256
    row = [data[i:i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]
    rows = [bytes(data)]
    while len(row) > 1:
        # SPEC: RFC 6962 §2.1: interior node = SHA-256(0x01 || left || right).
        row = [sha256(b"\x01" + a + b).digest() for a, b in zip(row[0::2], row[1::2])]
        rows.append(b"".join(row))
    return tuple(rows)


def extend_expanded(rows: Sequence[bytes], data: bytes) -> tuple[bytes, ...]:
    """:func:`expand_tile` of ``data``, reusing ``rows``: the expansion of a prefix of it.

    A node of a complete row depends only on the leaves below it, so growing a partial
    tile keeps every node it had; only the new ones are hashed. Equal to
    ``expand_tile(data)``; raises :class:`~sealtrail.errors.UsageError` if ``rows[0]`` is
    not a prefix of ``data`` or ``data`` is not 1 to 256 hashes.
    """
    if not data or len(data) % HASH_SIZE or len(data) > TILE_BYTES:
        raise UsageError("tile data is not 1 to 256 hashes", actual=len(data))
    if not rows or not data.startswith(rows[0]):
        raise UsageError("the known rows are not those of a prefix of this tile")
    sha256 = hashlib.sha256
    out = [bytes(data)]
    below = bytes(data)
    for level in range(1, TILE_HEIGHT + 1):
        count = len(below) // HASH_SIZE // 2
        if count == 0:
            break
        known = rows[level] if level < len(rows) else b""
        have = len(known) // HASH_SIZE
        # SPEC: RFC 6962 §2.1: interior node = SHA-256(0x01 || left || right).
        fresh = [sha256(b"\x01" + below[2 * i * HASH_SIZE:(2 * i + 2) * HASH_SIZE]).digest()
                 for i in range(have, count)]
        row = known + b"".join(fresh)
        out.append(row)
        below = row
    return tuple(out)


def perfect_subtrees(start: int, end: int) -> Iterator[tuple[int, int]]:
    """Decompose the leaf range [start, end) into maximal perfect subtrees, left to right.

    Yields ``(height, index)``: the node at tree level ``height`` and position ``index``
    (covering leaves ``index << height`` .. ``(index + 1) << height``). ``start`` must be
    aligned so that the decomposition is the RFC 6962 one (a multiple of the largest piece),
    which holds for ``start`` 0 and for every range the RFC 9162 proofs ask for.
    """
    pos = start
    while pos < end:
        # The largest power of two that both fits in what is left and keeps alignment.
        height = (end - pos).bit_length() - 1
        if pos:
            height = min(height, (pos & -pos).bit_length() - 1)
        yield height, pos >> height
        pos += 1 << height


def root_from_edge(size: int, edge: Sequence[bytes]) -> bytes:
    """The tree root from the right edge: the partial tile of every level.

    ``edge[L]`` is the content of the rightmost, incomplete tile of level ``L`` for a tree
    of ``size`` leaves (``32 * ((size >> 8L) % 256)`` bytes, possibly empty). Every perfect
    subtree of the RFC 6962 decomposition lies in one of those partial tiles, so nothing
    else is needed. Raises :class:`~sealtrail.errors.UsageError` if an edge tile has the
    wrong length.
    """
    pieces: list[bytes] = []
    levels = 0
    while size >> (TILE_HEIGHT * levels):
        levels += 1
    if len(edge) < levels:
        raise UsageError("edge has too few levels", actual=len(edge), expected=levels)
    for level in range(levels - 1, -1, -1):
        width = (size >> (TILE_HEIGHT * level)) % TILE_WIDTH
        data = edge[level]
        if len(data) != width * HASH_SIZE:
            raise UsageError(f"edge tile {level} has the wrong size", actual=len(data),
                             expected=width * HASH_SIZE)
        offset = 0
        for bit in range(TILE_HEIGHT - 1, -1, -1):
            if width >> bit & 1:
                count = 1 << bit
                row = [data[(offset + i) * HASH_SIZE:(offset + i + 1) * HASH_SIZE]
                       for i in range(count)]
                pieces.append(subtree_root(row))
                offset += count
    if not pieces:
        return EMPTY_ROOT
    # SPEC: RFC 6962 §2.1: MTH(D[n]) = H(MTH(D[0:k]) || MTH(D[k:n])); unrolled, the root
    # folds the perfect subtrees together from the right.
    root = pieces[-1]
    for piece in reversed(pieces[:-1]):
        root = node_hash(piece, root)
    return root
