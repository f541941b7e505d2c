"""C2SP tlog-tiles: tile and entry-bundle paths, tile contents, and entry bundles.

This module alone formats and parses the paths (`tile/<L>/<N>[.p/<W>]`,
`tile/entries/<N>[.p/<W>]`; N in 3-digit groups, all but the last prefixed `x`, e.g.
`x001/x234/067`), so the server and the auditor cannot disagree on them. It is also the
one owner of tile geometry (which tiles and bundles a tree of `size` leaves holds, their
widths, where a node's hash is stored): nothing else computes `size >> 8L`.

Tiles have height 8: tile (L, N) holds up to 256 hashes, the hash at position i being
node (8*L, 256*N + i) in `compact.NodeID` addressing. The nodes at levels 8L+1 .. 8L+7
are not stored in any tile: they are rehashed from the tile's hashes. A tile is full at
256 hashes (immutable); the rightmost tile of a level is partial in most tree sizes, and
its width in a tree of `size` leaves is (size >> 8L) - 256N, at most 256. An entry bundle N
holds entries [256N, 256N + W), each as a big-endian uint16 length then the bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .compact import GetHashes, NodeID, fetch_hashes, root_from_leaf_hashes
from .errors import OutOfRangeError, TileError
from .hashing import HASH_SIZE

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_TILE_LEVEL = 63
MAX_TILE_INDEX = (1 << 56) - 1  # a 64-bit leaf index divided by 256
MAX_ENTRY_SIZE = 0xFFFF

_LEVEL = re.compile("0|[1-9][0-9]?")
_WIDTH = re.compile("[1-9][0-9]{0,2}")
_GROUP = re.compile("[0-9]{3}")
_X_GROUP = re.compile("x[0-9]{3}")


@dataclass(frozen=True, slots=True, order=True)
class Tile:
    """Tile `index` at tile level `level` (Merkle level 8*level), `width` hashes wide.

    Requires 0 <= level <= 63, 0 <= index < 2**56, 1 <= width <= 256.
    """

    level: int
    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        _check_address(self.index, self.width)
        if not 0 <= self.level <= MAX_TILE_LEVEL:
            raise TileError(f"tile level {self.level} out of range")

    @property
    def is_partial(self) -> bool:
        """True when the tile holds fewer than 256 hashes."""
        return self.width < TILE_WIDTH

    @property
    def start(self) -> int:
        """Position, among the hashes of its level, of the first hash the tile holds."""
        return self.index * TILE_WIDTH


@dataclass(frozen=True, slots=True, order=True)
class EntryBundle:
    """Entry bundle `index`: entries [256*index, 256*index + width).

    Requires 0 <= index < 2**56, 1 <= width <= 256.
    """

    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        _check_address(self.index, self.width)

    @property
    def is_partial(self) -> bool:
        """True when the bundle holds fewer than 256 entries."""
        return self.width < TILE_WIDTH

    @property
    def start(self) -> int:
        """Index of the first entry the bundle holds."""
        return self.index * TILE_WIDTH

    @property
    def leaf_tile(self) -> Tile:
        """The level-0 tile holding the leaf hashes of the bundle's entries."""
        return Tile(0, self.index, self.width)


def format_tile_index(index: int) -> str:
    """Return N as 3-digit path elements, all but the last prefixed `x` (1234067 ->
    `x001/x234/067`). Requires 0 <= index < 2**56."""
    _check_address(index, TILE_WIDTH)
    groups = [f"{index % 1000:03d}"]
    while index >= 1000:
        index //= 1000
        groups.append(f"x{index % 1000:03d}")
    return "/".join(reversed(groups))


def parse_tile_index(text: str) -> int:
    """Parse the path elements of N; only the canonical spelling is accepted."""
    *upper, last = text.split("/")
    if not _GROUP.fullmatch(last) or not all(_X_GROUP.fullmatch(g) for g in upper):
        raise TileError(f"malformed tile index {text!r}")
    index = 0
    for group in [*(g[1:] for g in upper), last]:
        index = index * 1000 + int(group)
    if index > MAX_TILE_INDEX or format_tile_index(index) != text:
        raise TileError(f"non-canonical tile index {text!r}")
    return index


def tile_path(tile: Tile) -> str:
    """Return `tile/<L>/<N>[.p/<W>]`."""
    return f"tile/{tile.level}/{_index_width_path(tile.index, tile.width)}"


def entries_path(bundle: EntryBundle) -> str:
    """Return `tile/entries/<N>[.p/<W>]`."""
    return f"tile/entries/{_index_width_path(bundle.index, bundle.width)}"


def parse_tile_path(path: str) -> Tile:
    """Parse `tile/<L>/<N>[.p/<W>]` strictly (canonical spelling only)."""
    prefix, level, rest = _split_path(path)
    if prefix != "tile" or not _LEVEL.fullmatch(level) or int(level) > MAX_TILE_LEVEL:
        raise TileError(f"malformed tile path {path!r}")
    return Tile(int(level), *_parse_index_width(rest, path))


def parse_entries_path(path: str) -> EntryBundle:
    """Parse `tile/entries/<N>[.p/<W>]` strictly (canonical spelling only)."""
    prefix, entries, rest = _split_path(path)
    if (prefix, entries) != ("tile", "entries"):
        raise TileError(f"malformed entries path {path!r}")
    return EntryBundle(*_parse_index_width(rest, path))


def parse_path(path: str) -> Tile | EntryBundle:
    """Parse a tile or an entry-bundle path."""
    if path.startswith("tile/entries/"):
        return parse_entries_path(path)
    return parse_tile_path(path)


def hashes_at_level(size: int, level: int) -> int:
    """Return how many hashes tile level `level` of a tree of `size` leaves holds: one per
    perfect subtree of 256**level leaves (Merkle level 8*level). Requires size, level >= 0."""
    return size >> (TILE_HEIGHT * level)


def in_tree(resource: Tile | EntryBundle, size: int) -> bool:
    """True when the tree of `size` leaves holds `resource` at its width (or wider): a
    resource's contents never change, so a path of an older, smaller tree stays valid."""
    level = resource.level if isinstance(resource, Tile) else 0
    return hashes_at_level(size, level) - resource.start >= resource.width


def tile_width(level: int, index: int, size: int) -> int:
    """Return the width of tile (level, index) in a tree of `size` leaves.

    Requires the tile to exist in that tree (at least one hash); else OutOfRangeError.
    """
    width = min(hashes_at_level(size, level) - index * TILE_WIDTH, TILE_WIDTH)
    if width <= 0:
        raise OutOfRangeError(f"tile {level}/{index} is empty in a tree of size {size}")
    return width


def tile_for_node(node: NodeID, size: int) -> Tile:
    """Return the tile (with its width in a tree of `size`) whose hashes give `node`.

    Requires `node` to be stored in that tree: its leaf range ends at or before `size`.
    """
    if node.level < 0 or node.index < 0 or node.coverage()[1] > size:
        raise OutOfRangeError(f"{node} is not a stored node of a tree of size {size}")
    level, shift = divmod(node.level, TILE_HEIGHT)
    index = (node.index << shift) >> TILE_HEIGHT
    return Tile(level, index, tile_width(level, index, size))


def stored_level(node: NodeID) -> int | None:
    """Return the tile level whose tiles hold `node`'s hash; None for a node no tile holds
    (Merkle levels 8L+1 .. 8L+7, rehashed from the tile below)."""
    level, rest = divmod(node.level, TILE_HEIGHT)
    return None if rest else level


def tiles_for_nodes(nodes: Iterable[NodeID], size: int) -> list[Tile]:
    """Return the distinct tiles holding `nodes` in a tree of `size`, in first-use order."""
    return list(dict.fromkeys(tile_for_node(node, size) for node in nodes))


def tile_nodes(tile: Tile) -> list[NodeID]:
    """Return the nodes whose hashes `tile` holds, in order."""
    return [NodeID(tile.level * TILE_HEIGHT, tile.start + i) for i in range(tile.width)]


def tile_data(tile: Tile, get_hashes: GetHashes) -> bytes:
    """Return the contents of `tile` (its hashes concatenated) from stored hashes."""
    return b"".join(fetch_hashes(get_hashes, tile_nodes(tile)))


def tile_hashes(tile: Tile, data: bytes) -> list[bytes]:
    """Split tile contents into its hashes. Requires len(data) == 32 * tile.width."""
    if len(data) != tile.width * HASH_SIZE:
        raise TileError(f"tile {tile_path(tile)} has {len(data)} bytes")
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def node_hash_from_tile(tile: Tile, data: bytes, node: NodeID) -> bytes:
    """Return the hash of `node` from the contents of `tile`, rehashing inside the tile.

    Requires `node` to lie in `tile` within its width, and data of 32 * width bytes.
    """
    level, shift = divmod(node.level, TILE_HEIGHT)
    begin = (node.index << shift) - tile.start
    end = begin + (1 << shift)
    if level != tile.level or not 0 <= begin < end <= tile.width:
        raise TileError(f"{node} is not in tile {tile_path(tile)}")
    return root_from_leaf_hashes(tile_hashes(tile, data)[begin:end])


def hashes_from_tiles(
    nodes: Sequence[NodeID], tiles: Mapping[Tile, bytes], size: int
) -> list[bytes]:
    """Return the hashes of stored `nodes` from fetched tile contents (a GetHashes for
    auditors): `tiles` maps each tile of `tiles_for_nodes(nodes, size)` to its contents."""
    hashes = []
    for node in nodes:
        tile = tile_for_node(node, size)
        data = tiles.get(tile)
        if data is None:
            raise TileError(f"tile {tile_path(tile)} was not provided")
        hashes.append(node_hash_from_tile(tile, data, node))
    return hashes


def new_tiles(old_size: int, new_size: int) -> list[Tile]:
    """Return the tiles that appear or grow when the tree grows from `old_size` to `new_size`.

    Requires 0 <= old_size <= new_size. With old_size == 0: every tile of the tree.
    """
    if not 0 <= old_size <= new_size:
        raise OutOfRangeError(f"need 0 <= old_size <= new_size, got {old_size}, {new_size}")
    tiles: list[Tile] = []
    level = 0
    while hashes_at_level(new_size, level):
        old, new = hashes_at_level(old_size, level), hashes_at_level(new_size, level)
        if old != new:
            full, width = divmod(new, TILE_WIDTH)
            tiles.extend(Tile(level, n) for n in range(old // TILE_WIDTH, full))
            if width:
                tiles.append(Tile(level, full, width))
        level += 1
    return tiles


def upper_tiles(size: int) -> list[Tile]:
    """Return every tile of level 1 and above in a tree of `size` (full and partial), in
    level order."""
    return [tile for tile in new_tiles(0, size) if tile.level > 0]


def partial_tiles(size: int) -> list[Tile]:
    """Return the rightmost tile of every level of a tree of `size` that is partial (none
    when every level is full): together they hold the tree's compact range."""
    tiles = []
    level = 0
    while hashes_at_level(size, level):
        full, width = divmod(hashes_at_level(size, level), TILE_WIDTH)
        if width:
            tiles.append(Tile(level, full, width))
        level += 1
    return tiles


def partial_bundle(size: int) -> EntryBundle | None:
    """Return the rightmost bundle of a tree of `size` when it is partial, else None."""
    full, width = divmod(size, TILE_WIDTH)
    return EntryBundle(full, width) if width else None


def tile_roots(hashes: Sequence[bytes]) -> list[bytes]:
    """Return the hashes one tile level up from a level's `hashes` (from its first): the
    root of each full run of 256; a partial run at the end has none."""
    full = len(hashes) // TILE_WIDTH
    return [
        root_from_leaf_hashes(hashes[n * TILE_WIDTH : (n + 1) * TILE_WIDTH]) for n in range(full)
    ]


def bundle_for_entry(index: int, size: int) -> EntryBundle:
    """Return the entry bundle (with its width in a tree of `size`) holding entry `index`.

    Requires 0 <= index < size.
    """
    if not 0 <= index < size:
        raise OutOfRangeError(f"entry {index} out of range for size {size}")
    bundle = index // TILE_WIDTH
    return EntryBundle(bundle, tile_width(0, bundle, size))


def new_bundles(old_size: int, new_size: int) -> list[EntryBundle]:
    """Return the entry bundles that appear or grow from `old_size` to `new_size` entries.

    Requires 0 <= old_size <= new_size.
    """
    return [EntryBundle(t.index, t.width) for t in new_tiles(old_size, new_size) if t.level == 0]


def encode_bundle(entries: Sequence[bytes]) -> bytes:
    """Return the bundle of `entries`: each a big-endian uint16 length, then its bytes.

    Requires 1 to 256 entries of at most 65535 bytes each.
    """
    if not 0 < len(entries) <= TILE_WIDTH:
        raise TileError(f"a bundle holds 1 to {TILE_WIDTH} entries, got {len(entries)}")
    parts = []
    for entry in entries:
        if len(entry) > MAX_ENTRY_SIZE:
            raise TileError(f"entry of {len(entry)} bytes exceeds {MAX_ENTRY_SIZE}")
        parts.append(len(entry).to_bytes(2, "big") + entry)
    return b"".join(parts)


def decode_bundle(data: bytes, width: int) -> list[bytes]:
    """Split a bundle into its entries. Requires exactly `width` entries, no trailing bytes."""
    entries = []
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise TileError("entry bundle ends inside a length prefix")
        end = pos + 2 + int.from_bytes(data[pos : pos + 2], "big")
        if end > len(data):
            raise TileError("entry bundle ends inside an entry")
        entries.append(data[pos + 2 : end])
        pos = end
    if len(entries) != width:
        raise TileError(f"entry bundle holds {len(entries)} entries, want {width}")
    return entries


def _check_address(index: int, width: int) -> None:
    """Raise TileError unless 0 <= index <= MAX_TILE_INDEX and 1 <= width <= 256."""
    if not 0 <= index <= MAX_TILE_INDEX:
        raise TileError(f"tile index {index} out of range")
    if not 0 < width <= TILE_WIDTH:
        raise TileError(f"tile width {width} out of range")


def _index_width_path(index: int, width: int) -> str:
    """Return `<N>` plus `.p/<W>` when partial."""
    suffix = f".p/{width}" if width < TILE_WIDTH else ""
    return format_tile_index(index) + suffix


def _split_path(path: str) -> tuple[str, str, str]:
    """Split `a/b/rest` into (a, b, rest); raise TileError with fewer parts."""
    parts = path.split("/", 2)
    if len(parts) != 3:
        raise TileError(f"malformed tile path {path!r}")
    return parts[0], parts[1], parts[2]


def _parse_index_width(text: str, path: str) -> tuple[int, int]:
    """Parse `<N>[.p/<W>]`: a partial width is 1..255, spelled without leading zeros."""
    index_text, partial, width_text = text.rpartition(".p/")
    if not partial:
        return parse_tile_index(text), TILE_WIDTH
    if not _WIDTH.fullmatch(width_text) or int(width_text) >= TILE_WIDTH:
        raise TileError(f"malformed partial width in {path!r}")
    return parse_tile_index(index_text), int(width_text)
