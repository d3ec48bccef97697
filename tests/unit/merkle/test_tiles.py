"""Tests for sealtrail.merkle.tiles: C2SP tlog-tiles paths, encodings and tile hashing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail.errors import InputError, UsageError
from sealtrail.merkle import EMPTY_ROOT, leaf_hash
from sealtrail.merkle.tiles import (
    MAX_TILE_INDEX,
    TILE_BYTES,
    TileRef,
    decode_entry_bundle,
    decode_tile,
    encode_entry_bundle,
    encode_index,
    encode_tile,
    entries_path,
    expand_tile,
    extend_expanded,
    parse_tile_path,
    perfect_subtrees,
    root_from_edge,
    subtree_root,
    tile_path,
    tile_width,
)
from sealtrail.merkle.tree import compute_root

SETTINGS = settings(max_examples=150, deadline=None)
LEAVES = [leaf_hash(i.to_bytes(4, "big")) for i in range(1024)]


# -- paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize("index, encoded", [
    (0, "000"),
    (5, "005"),
    (999, "999"),
    (1000, "x001/000"),
    (1234, "x001/234"),
    # SPEC: C2SP tlog-tiles: "index 1234067 will be encoded as x001/x234/067".
    (1234067, "x001/x234/067"),
    (1_000_000, "x001/x000/000"),
    (MAX_TILE_INDEX, "x036/x028/x797/x018/x963/967"),
])
def test_index_encoding_known_answers(index: int, encoded: str) -> None:
    assert encode_index(index) == encoded


@pytest.mark.parametrize("args, path", [
    ((0, 0), "tile/0/000"),
    ((0, 1234067), "tile/0/x001/x234/067"),
    ((0, 1234067, 5), "tile/0/x001/x234/067.p/5"),
    ((1, 0, 1), "tile/1/000.p/1"),
    ((2, 3, 255), "tile/2/003.p/255"),
    ((63, 1), "tile/63/001"),
    ((0, 7, 256), "tile/0/007"),  # width 256 is the full tile
    ((0, 7, None), "tile/0/007"),
])
def test_tile_path_known_answers(args: tuple, path: str) -> None:
    assert tile_path(*args) == path


def test_entries_path_known_answers() -> None:
    assert entries_path(0) == "tile/entries/000"
    assert entries_path(1234067) == "tile/entries/x001/x234/067"
    assert entries_path(0, 17) == "tile/entries/000.p/17"
    assert entries_path(1000, 256) == "tile/entries/x001/000"


@pytest.mark.parametrize("args", [
    (-1, 0), (64, 0), (True, 0), ("0", 0),
    (0, -1), (0, MAX_TILE_INDEX + 1), (0, False), (0, 1.0),
    (0, 0, 0), (0, 0, 257), (0, 0, -3), (0, 0, True),
])
def test_tile_path_rejects_invalid_arguments(args: tuple) -> None:
    with pytest.raises(UsageError):
        tile_path(*args)


@pytest.mark.parametrize("path, ref", [
    ("tile/0/000", TileRef(0, 0, None)),
    ("tile/0/x001/x234/067", TileRef(0, 1234067, None)),
    ("tile/0/x001/x234/067.p/5", TileRef(0, 1234067, 5)),
    ("tile/12/x001/000.p/255", TileRef(12, 1000, 255)),
    ("tile/63/999", TileRef(63, 999, None)),
    ("tile/entries/000", TileRef(None, 0, None)),
    ("tile/entries/x001/x234/067.p/1", TileRef(None, 1234067, 1)),
])
def test_parse_tile_path_known_answers(path: str, ref: TileRef) -> None:
    parsed = parse_tile_path(path)
    assert parsed == ref
    level, index, width = parsed  # the HTTP layer unpacks it like this
    assert (level, index, width) == tuple(ref)
    assert parsed.is_entries == (ref.level is None)
    assert parsed.is_partial == (ref.width is not None)
    assert parsed.path() == path


@given(level=st.one_of(st.none(), st.integers(0, 63)),
       index=st.integers(0, MAX_TILE_INDEX),
       width=st.one_of(st.none(), st.integers(1, 255)))
@SETTINGS
def test_parse_tile_path_round_trips(level: int | None, index: int, width: int | None) -> None:
    path = entries_path(index, width) if level is None else tile_path(level, index, width)
    assert parse_tile_path(path) == TileRef(level, index, width)


@pytest.mark.parametrize("path", [
    "",
    "tile",
    "tile/",
    "tile/0",
    "tile/0/",
    "/tile/0/000",               # absolute
    "tile/0/000/",               # trailing slash
    "tiles/0/000",
    "tile/0/1",                  # not zero-padded
    "tile/0/0001",               # four digits
    "tile/0/x001",               # last element with an x
    "tile/0/001/000",            # upper element without an x
    "tile/0/x000/001",           # superfluous leading x000: not canonical
    "tile/0/xx01/000",
    "tile/0/x1234/000",
    "tile/00/000",               # leading zero in the level
    "tile/01/000",
    "tile/64/000",               # level beyond 63
    "tile/-1/000",
    "tile/+1/000",
    "tile/ 1/000",
    "tile/0/000.p/0",            # width 0
    "tile/0/000.p/256",          # width 256 is the full tile
    "tile/0/000.p/007",          # leading zeros in the width
    "tile/0/000.p/",
    "tile/0/000.p",
    "tile/0/000.p/3/",
    "tile/0/000.p/3/4",
    "tile/0/000.q/3",
    "tile/0/.p/3",
    "tile/entries/",
    "tile/entries/1",
    "tile/entries/000.p/256",
    "tile/entries/x001",
    "tile/0/\u0660\u0660\u0660",  # Arabic-Indic digits are digits to str.isdigit()
    "tile/\u0661/000",
    "tile/0/00\u00b2",
    "tile/0/x999/x999/x999/x999/x999/x999/999",  # too many elements
    "tile/0/x999/x999/x999/x999/x999/999",       # beyond the int64 tree
    "tile/0/../000",
    "tile/0/000\x00",
    "tile/0/" + "x001/" * 20 + "000",              # too long
])
def test_parse_tile_path_rejects_malformed_paths(path: str) -> None:
    with pytest.raises(InputError) as info:
        parse_tile_path(path)
    assert info.value.code == "INPUT_INVALID"


@pytest.mark.parametrize("value", [None, b"tile/0/000", 0, ["tile", "0", "000"]])
def test_parse_tile_path_rejects_non_strings(value: object) -> None:
    with pytest.raises(InputError):
        parse_tile_path(value)


# -- tile contents --------------------------------------------------------------------------


@pytest.mark.parametrize("level, index, size, width", [
    (0, 0, 0, 0), (0, 0, 1, 1), (0, 0, 256, 256), (0, 1, 256, 0), (0, 1, 300, 44),
    (0, 0, 10**6, 256), (1, 0, 255, 0), (1, 0, 256, 1), (1, 0, 65535, 255),
    (1, 0, 65536, 256), (2, 0, 65536, 1), (0, 3906, 10**6, 64),
])
def test_tile_width(level: int, index: int, size: int, width: int) -> None:
    assert tile_width(level, index, size) == width


def test_tiles_encode_and_decode() -> None:
    data = encode_tile(LEAVES[:3])
    assert data == b"".join(LEAVES[:3])
    assert decode_tile(data, 3) == LEAVES[:3]
    assert len(encode_tile(LEAVES[:256])) == TILE_BYTES


@pytest.mark.parametrize("data, width", [
    (b"\x00" * 95, 3), (b"\x00" * 97, 3), (b"\x00" * 64, 3), (b"", 1), ("x" * 32, 1),
])
def test_decode_tile_rejects_a_wrong_size(data: object, width: int) -> None:
    with pytest.raises(InputError):
        decode_tile(data, width)  # type: ignore[arg-type]


def test_encode_tile_rejects_bad_hashes() -> None:
    with pytest.raises(UsageError):
        encode_tile([])
    with pytest.raises(UsageError):
        encode_tile(LEAVES[:257])
    with pytest.raises(UsageError):
        encode_tile([b"\x00" * 31])


def test_entry_bundle_known_answer() -> None:
    # SPEC: C2SP tlog-tiles: big-endian uint16 length prefix before every entry.
    assert encode_entry_bundle([b"ab", b"", b"c"]) == b"\x00\x02ab\x00\x00\x00\x01c"
    assert decode_entry_bundle(b"\x00\x02ab\x00\x00\x00\x01c") == [b"ab", b"", b"c"]
    big = b"x" * 0xFFFF
    assert decode_entry_bundle(encode_entry_bundle([big]), 1) == [big]


@given(st.lists(st.binary(max_size=300), min_size=1, max_size=256))
@settings(max_examples=40, deadline=None)
def test_entry_bundles_round_trip(entries: list[bytes]) -> None:
    data = encode_entry_bundle(entries)
    assert decode_entry_bundle(data) == entries
    assert decode_entry_bundle(data, len(entries)) == entries


@pytest.mark.parametrize("data, width", [
    (b"\x00", None),                         # truncated length prefix
    (b"\x00\x05abc", None),                  # truncated entry
    (b"\x00\x01a\x00", None),                # trailing byte
    (b"\x00\x00" * 257, None),               # more than 256 entries
    (b"\x00\x00" * 3, 2),                    # more than the width
    (b"\x00\x00" * 3, 4),                    # fewer than the width
    (b"", 1),
])
def test_decode_entry_bundle_rejects_malformed_bundles(data: bytes, width: int | None) -> None:
    with pytest.raises(InputError):
        decode_entry_bundle(data, width)


def test_encode_entry_bundle_bounds() -> None:
    with pytest.raises(UsageError):
        encode_entry_bundle([])
    with pytest.raises(UsageError):
        encode_entry_bundle([b""] * 257)
    with pytest.raises(UsageError):
        encode_entry_bundle([b"x" * 0x10000])


# -- hashing inside tiles -------------------------------------------------------------------


def test_subtree_root_and_expand_tile_match_the_reference_tree() -> None:
    full = encode_tile(LEAVES[:256])
    rows = expand_tile(full)
    assert len(rows) == 9
    assert rows[-1] == subtree_root(LEAVES[:256]) == compute_root(LEAVES[:256])
    for r, row in enumerate(rows):
        step = 1 << r
        assert row == b"".join(compute_root(LEAVES[i:i + step]) for i in range(0, 256, step))
    # A partial tile: an unpaired last node has no parent yet.
    rows = expand_tile(encode_tile(LEAVES[:5]))
    assert [len(row) // 32 for row in rows] == [5, 2, 1]
    with pytest.raises(UsageError):
        subtree_root(LEAVES[:3])
    with pytest.raises(UsageError):
        expand_tile(b"\x00" * 33)
    with pytest.raises(UsageError):
        expand_tile(b"")


@pytest.mark.parametrize("start, end, pieces", [
    (0, 0, []),
    (0, 1, [(0, 0)]),
    (0, 7, [(2, 0), (1, 2), (0, 6)]),
    (0, 256, [(8, 0)]),
    (0, 300, [(8, 0), (5, 8), (3, 36), (2, 74)]),
    (4, 8, [(2, 1)]),
    (8, 13, [(2, 2), (0, 12)]),
])
def test_perfect_subtrees(start: int, end: int, pieces: list[tuple[int, int]]) -> None:
    assert list(perfect_subtrees(start, end)) == pieces


@given(st.integers(0, 1024))
@settings(max_examples=60, deadline=None)
def test_root_from_edge_matches_the_reference_tree(size: int) -> None:
    # Build the edge straight from the definition: the partial tile of every level.
    edge = []
    level = 0
    while size >> (8 * level):
        nodes = size >> (8 * level)
        width, index = nodes % 256, nodes // 256
        span = 1 << (8 * level)
        first = index * 256
        edge.append(b"".join(compute_root(LEAVES[(first + j) * span:(first + j + 1) * span])
                             for j in range(width)))
        level += 1
    assert root_from_edge(size, edge) == (compute_root(LEAVES[:size]) if size else EMPTY_ROOT)


def test_root_from_edge_rejects_a_malformed_edge() -> None:
    with pytest.raises(UsageError):
        root_from_edge(3, [])
    with pytest.raises(UsageError):
        root_from_edge(3, [b"".join(LEAVES[:2])])


@settings(max_examples=60, deadline=None)
@given(old=st.integers(min_value=1, max_value=256), new=st.integers(min_value=1, max_value=256))
def test_extending_an_expansion_equals_expanding_afresh(old: int, new: int) -> None:
    old, new = min(old, new), max(old, new)
    leaves = [leaf_hash(b"%d" % i) for i in range(new)]
    known = expand_tile(b"".join(leaves[:old]))
    assert extend_expanded(known, b"".join(leaves)) == expand_tile(b"".join(leaves))


def test_extending_refuses_what_is_not_a_prefix() -> None:
    leaves = [leaf_hash(b"%d" % i) for i in range(8)]
    known = expand_tile(b"".join(leaves[:4]))
    with pytest.raises(UsageError, match="prefix"):
        extend_expanded(known, b"".join(leaves[1:6]))
    with pytest.raises(UsageError, match="1 to 256"):
        extend_expanded(known, b"\x00" * 33)
