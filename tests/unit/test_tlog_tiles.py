"""C2SP tlog-tiles paths, tile contents and entry bundles (hotline.shared.tlog.tiles)."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from hotline.shared.tlog.compact import CompactRange, NodeID
from hotline.shared.tlog.errors import OutOfRangeError, TileError, TlogError
from hotline.shared.tlog.hashing import leaf_hash
from hotline.shared.tlog.proof import consistency_nodes, inclusion_nodes
from hotline.shared.tlog.tiles import (
    EntryBundle,
    Tile,
    bundle_for_entry,
    decode_bundle,
    encode_bundle,
    entries_path,
    format_tile_index,
    hashes_at_level,
    hashes_from_tiles,
    in_tree,
    new_bundles,
    new_tiles,
    node_hash_from_tile,
    parse_entries_path,
    parse_path,
    parse_tile_index,
    parse_tile_path,
    partial_bundle,
    partial_tiles,
    stored_level,
    tile_data,
    tile_for_node,
    tile_hashes,
    tile_nodes,
    tile_path,
    tile_roots,
    tiles_for_nodes,
    upper_tiles,
)

SIZE = 70_000  # the tree size of the spec's example: three tile levels, partial tiles


class Tree:
    def __init__(self, size: int) -> None:
        self.entries = [b"entry %d" % i for i in range(size)]
        self.stored: dict[NodeID, bytes] = {}
        CompactRange().extend(map(leaf_hash, self.entries), self.stored.__setitem__)

    def get_hashes(self, nodes: Sequence[NodeID]) -> list[bytes]:
        return [self.stored[node] for node in nodes]


@pytest.fixture(scope="module")
def tree() -> Tree:
    return Tree(SIZE)


def test_spec_index_example() -> None:
    # c2sp.org/tlog-tiles: "index 1234067 will be encoded as x001/x234/067".
    assert format_tile_index(1234067) == "x001/x234/067"
    assert parse_tile_index("x001/x234/067") == 1234067
    assert [format_tile_index(n) for n in (0, 7, 999, 1000, 1001000)] == [
        "000",
        "007",
        "999",
        "x001/000",
        "x001/x001/000",
    ]


def test_paths() -> None:
    assert parse_tile_path("tile/0/x001/x234/067") == Tile(0, 1234067)
    assert tile_path(Tile(0, 1234067, 8)) == "tile/0/x001/x234/067.p/8"
    assert tile_path(Tile(63, 5)) == "tile/63/005"
    assert entries_path(EntryBundle(1234067)) == "tile/entries/x001/x234/067"
    assert entries_path(EntryBundle(0, 255)) == "tile/entries/000.p/255"
    assert parse_entries_path("tile/entries/x001/x234/067.p/8") == EntryBundle(1234067, 8)
    assert parse_path("tile/entries/000") == EntryBundle(0)
    assert parse_path("tile/2/000.p/1") == Tile(2, 0, 1)
    assert Tile(0, 0, 1).is_partial and not Tile(0, 0).is_partial


def test_paths_round_trip() -> None:
    rng = random.Random(7)
    indices = [0, 1, 999, 1000, 999999, 1000000, 2**56 - 1] + [
        rng.randrange(2**56) for _ in range(200)
    ]
    for index in indices:
        for width in (1, 9, 255, 256):
            tile = Tile(rng.randrange(64), index, width)
            assert parse_tile_path(tile_path(tile)) == tile
            bundle = EntryBundle(index, width)
            assert parse_entries_path(entries_path(bundle)) == bundle
        assert parse_tile_index(format_tile_index(index)) == index


MALFORMED_PATHS = [
    "",
    "tile",
    "tile/0",
    "tile/0/",
    "/tile/0/000",
    "tiles/0/000",
    "tile/0/0",
    "tile/0/00",
    "tile/0/0000",
    "tile/0/1234067",
    "tile/0/x001/234/067",
    "tile/0/001/x234",
    "tile/0/x000/001",  # not canonical: no leading zero group
    "tile/0/x1/000",
    "tile/0/X001/000",
    "tile/0/+01",
    "tile/0/-01",
    "tile/0/ 01",
    "tile/0/abc",
    "tile/0/000/",
    "tile/00/000",
    "tile/01/000",
    "tile/64/000",
    "tile/-1/000",
    "tile/+1/000",
    "tile/0/000.p/0",
    "tile/0/000.p/256",
    "tile/0/000.p/08",
    "tile/0/000.p/",
    "tile/0/000.p",
    "tile/0/000.p/1/2",
    "tile/0/000.p/ 1",
    "tile/0/000.P/1",
    "tile/0/x001.p/000",
    "tile/0/\u0660\u0660\u0660",
    "tile/entries/0",
    "tile/entries/000.p/256",
    "tile/entries/x000/000",
    "tile/data/000",
    "tile/8/0/000",  # Go sumdb's tile/<H>/<L>/<N> form is not C2SP's
    "tile/0/x072/x057/x594/x037/x927/x936/000",  # beyond 2**56 tiles
]


@pytest.mark.parametrize("path", MALFORMED_PATHS)
def test_malformed_paths_are_refused(path: str) -> None:
    with pytest.raises(TileError):
        parse_path(path)


def test_entries_path_is_not_a_tile_path() -> None:
    with pytest.raises(TileError):
        parse_tile_path("tile/entries/000")
    with pytest.raises(TileError):
        parse_entries_path("tile/0/000")


@pytest.mark.parametrize(
    "fields", [(-1, 0, 256), (64, 0, 256), (0, -1, 256), (0, 2**56, 256), (0, 0, 0), (0, 0, 257)]
)
def test_tile_contract(fields: tuple[int, int, int]) -> None:
    with pytest.raises(TileError):
        Tile(*fields)


def test_spec_tile_counts() -> None:
    # "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial level 0
    # tile of width 112, one full level 1 tile, one partial level 1 tile of width 17, and one
    # partial level 2 tile of width 1."
    tiles = new_tiles(0, 70_000)
    assert tiles == [
        *(Tile(0, n) for n in range(273)),
        Tile(0, 273, 112),
        Tile(1, 0),
        Tile(1, 1, 17),
        Tile(2, 0, 1),
    ]
    # "a tree of size 256 will be represented by a full level 0 tile and a partial level 1
    # tile of width 1."
    assert new_tiles(0, 256) == [Tile(0, 0), Tile(1, 0, 1)]
    assert new_tiles(0, 0) == []
    assert new_tiles(300, 300) == []
    assert new_tiles(300, 600) == [Tile(0, 1), Tile(0, 2, 88), Tile(1, 0, 2)]
    with pytest.raises(OutOfRangeError):
        new_tiles(5, 4)


def test_tree_geometry() -> None:
    """Which tiles and bundles a tree of `size` holds, from the spec's example tree."""
    assert [hashes_at_level(70_000, level) for level in range(4)] == [70_000, 273, 1, 0]
    assert partial_tiles(70_000) == [Tile(0, 273, 112), Tile(1, 1, 17), Tile(2, 0, 1)]
    assert partial_tiles(65_536) == [Tile(2, 0, 1)]  # levels 0 and 1 are all full tiles
    assert partial_tiles(0) == []
    assert partial_bundle(70_000) == EntryBundle(273, 112)
    assert partial_bundle(512) is None and partial_bundle(0) is None
    assert upper_tiles(70_000) == [Tile(1, 0), Tile(1, 1, 17), Tile(2, 0, 1)]
    assert upper_tiles(255) == []
    bundle = EntryBundle(273, 112)
    assert (bundle.start, bundle.leaf_tile) == (69_888, Tile(0, 273, 112))
    assert Tile(1, 1, 17).start == 256


def test_in_tree_holds_every_width_up_to_the_current_one() -> None:
    """A path of an older, smaller tree stays served; a wider or later one is not yet."""
    for resource in (Tile(0, 273, 112), Tile(0, 273, 1), EntryBundle(273, 112), Tile(0, 0)):
        assert in_tree(resource, 70_000), resource
    for resource in (Tile(0, 273, 113), Tile(0, 273), EntryBundle(274, 1), Tile(1, 1, 18)):
        assert not in_tree(resource, 70_000), resource
    assert in_tree(Tile(2, 0, 1), 65_536) and not in_tree(Tile(2, 0, 1), 65_535)


def test_stored_level_and_tile_roots(tree: Tree) -> None:
    levels = [stored_level(NodeID(level, 0)) for level in (0, 1, 7, 8, 9, 16)]
    assert levels == [0, None, None, 1, None, 2]
    level0 = tree.get_hashes(tile_nodes(Tile(0, 0))) + tree.get_hashes(tile_nodes(Tile(0, 1)))
    assert tile_roots(level0) == [tree.stored[NodeID(8, 0)], tree.stored[NodeID(8, 1)]]
    assert tile_roots(level0[:511]) == [tree.stored[NodeID(8, 0)]]  # a partial run has none
    assert tile_roots([]) == []


def test_tile_contents(tree: Tree) -> None:
    for tile in new_tiles(0, SIZE):
        data = tile_data(tile, tree.get_hashes)
        assert len(data) == 32 * tile.width
        hashes = tile_hashes(tile, data)
        assert hashes == tree.get_hashes(tile_nodes(tile))
        if tile.level > 0:  # each hash is the root of a full tile one level down
            first = tile.index * 256
            for i, value in enumerate(hashes):
                below = Tile(tile.level - 1, first + i)
                nodes = tile_nodes(below)
                top = NodeID(nodes[0].level + 8, below.index)
                assert node_hash_from_tile(tile, data, top) == value
                assert tree.stored[top] == value


def test_proof_nodes_from_tiles(tree: Tree) -> None:
    """An auditor rebuilds every proof node from the tiles of the checkpoint's size."""
    rng = random.Random(1)
    sizes = [1, 2, 255, 256, 257, 65535, 65536, 65537, SIZE] + [
        rng.randrange(1, SIZE + 1) for _ in range(30)
    ]
    for size in sizes:
        nodes = list(inclusion_nodes(rng.randrange(size), size).ids)
        nodes += consistency_nodes(rng.randrange(1, size + 1), size).ids
        tiles = tiles_for_nodes(nodes, size)
        fetched = {tile: tile_data(tile, tree.get_hashes) for tile in tiles}
        assert hashes_from_tiles(nodes, fetched, size) == tree.get_hashes(nodes)
        assert all(
            tile.width == min(256, (size >> 8 * tile.level) - 256 * tile.index) for tile in tiles
        )


def test_tile_for_node() -> None:
    assert tile_for_node(NodeID(0, 300), 1000) == Tile(0, 1)
    assert tile_for_node(NodeID(0, 300), 400) == Tile(0, 1, 144)
    assert tile_for_node(NodeID(3, 40), 400) == Tile(0, 1, 144)  # leaves [320, 328)
    assert tile_for_node(NodeID(8, 0), 256) == Tile(1, 0, 1)
    assert tile_for_node(NodeID(9, 1), 1024) == Tile(1, 0, 4)
    with pytest.raises(OutOfRangeError):
        tile_for_node(NodeID(3, 49), 399)  # [392, 400) is not complete in 399 leaves
    with pytest.raises(OutOfRangeError):
        tile_for_node(NodeID(0, 5), 5)


def test_node_hash_from_tile_contract(tree: Tree) -> None:
    tile = Tile(0, 1, 144)
    data = tile_data(tile, tree.get_hashes)
    assert (
        node_hash_from_tile(tile, data, NodeID(4, 20)) == tree.stored[NodeID(4, 20)]
    )  # [320, 336)
    for outside in (NodeID(0, 255), NodeID(0, 400), NodeID(5, 12), NodeID(8, 1)):
        with pytest.raises(TileError):
            node_hash_from_tile(tile, data, outside)
    with pytest.raises(TileError):
        node_hash_from_tile(tile, data[:-1], NodeID(0, 256))
    with pytest.raises(TileError):
        hashes_from_tiles([NodeID(0, 256)], {}, 400)


def test_bundles_round_trip(tree: Tree) -> None:
    entries = [b"", b"x", b"\x00" * 65535, b"last"]
    assert decode_bundle(encode_bundle(entries), 4) == entries
    bundle = bundle_for_entry(SIZE - 1, SIZE)
    assert bundle == EntryBundle(273, 112)
    first = bundle.index * 256
    data = encode_bundle(tree.entries[first : first + bundle.width])
    tile = Tile(0, bundle.index, bundle.width)
    level0 = tile_hashes(tile, tile_data(tile, tree.get_hashes))
    assert [leaf_hash(entry) for entry in decode_bundle(data, bundle.width)] == level0


def test_bundle_math() -> None:
    assert bundle_for_entry(0, 1) == EntryBundle(0, 1)
    assert bundle_for_entry(255, 300) == EntryBundle(0)
    assert bundle_for_entry(256, 300) == EntryBundle(1, 44)
    assert new_bundles(256, 300) == [EntryBundle(1, 44)]
    assert new_bundles(0, 512) == [EntryBundle(0), EntryBundle(1)]
    for index, size in ((0, 0), (5, 5), (-1, 3)):
        with pytest.raises(OutOfRangeError):
            bundle_for_entry(index, size)


@pytest.mark.parametrize(
    ("data", "width"),
    [
        (b"", 1),
        (b"\x00", 1),  # inside a length prefix
        (b"\x00\x02a", 1),  # inside an entry
        (b"\x00\x01a\x00", 1),  # trailing byte
        (b"\x00\x01a\x00\x01b", 1),  # more entries than the width
        (b"\x00\x01a", 2),  # fewer
    ],
)
def test_malformed_bundles_are_refused(data: bytes, width: int) -> None:
    with pytest.raises(TileError):
        decode_bundle(data, width)


def test_bundle_encoding_contract() -> None:
    with pytest.raises(TileError):
        encode_bundle([])
    with pytest.raises(TileError):
        encode_bundle([b""] * 257)
    with pytest.raises(TileError):
        encode_bundle([b"\x00" * 65536])


def test_errors_are_typed() -> None:
    assert issubclass(TileError, TlogError)
