"""The tree, recomputed from its entries: every entry bundle re-hashed, every tile of every
level compared with the hashes recomputed from the entries, and the root recomputed.

`TreeWalk` is the check itself, fed one resource at a time (the audit log's start-up check
feeds it from its own store); `walk_log` feeds it a whole tree through a `FetchMany` (what
`hotline audit verify` and `prove` download). A disagreement raises AuditFailure naming the
entry (or tile) and what differs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from hotline.shared.tlog.compact import CompactRange, range_nodes
from hotline.shared.tlog.errors import TlogError
from hotline.shared.tlog.hashing import leaf_hash
from hotline.shared.tlog.tiles import (
    EntryBundle,
    Tile,
    decode_bundle,
    entries_path,
    hashes_from_tiles,
    new_bundles,
    tile_hashes,
    tile_nodes,
    tile_path,
    tile_roots,
    tiles_for_nodes,
    upper_tiles,
)

from .failures import AuditFailure, Rule

FetchMany = Callable[[Sequence[str]], Iterable[bytes | None]]
"""Returns the contents of each path, in order (lazily is fine); None when it is not served."""

Progress = Callable[[int], None]
"""Called with the number of entries checked since the previous call."""

OnBundle = Callable[[int, list[bytes]], bool]
"""Sees (index of the first entry, entries) of every bundle in order; True keeps its tile."""


class TreeWalk:
    """Recompute the tree of `size` leaves from its entry bundles and check every tile.

    Feed `add_bundle` with each bundle of `tree_bundles` in order, with its level-0 tile;
    then check each tile of `upper_tiles(size)` with `check_tile`; then `root()`.
    """

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"tree size must be >= 0, got {size}")
        self.size = size
        self.bundles = 0  # bundles checked so far
        self.tiles = 0  # tiles checked so far
        self.tree_bundles = new_bundles(0, size)  # every bundle of the tree, in order
        # Hashes of tile level L >= 1 (index L; roots of full tiles one level below). Of
        # level 0 only the last bundle's leaf hashes are kept: the right border needs no more.
        self._levels: list[list[bytes]] = [[], []]
        self._last_leaves: list[bytes] = []

    def add_bundle(self, bundle: EntryBundle, data: bytes, tile: bytes) -> list[bytes]:
        """Check bundle `bundle` (the next one) against its level-0 tile; return its entries."""
        if self.bundles >= len(self.tree_bundles) or bundle != self.tree_bundles[self.bundles]:
            raise ValueError(f"{entries_path(bundle)} is not the next bundle of size {self.size}")
        try:
            entries = decode_bundle(data, bundle.width)
        except TlogError as exc:
            raise AuditFailure(
                Rule.BUNDLE, f"{entries_path(bundle)}: {exc}", bundle.start
            ) from None
        leaves = [leaf_hash(entry) for entry in entries]
        self._check_leaves(bundle, tile, leaves)
        self._levels[1].extend(tile_roots(leaves))
        self._last_leaves = leaves
        self.bundles += 1
        self.tiles += 1
        return entries

    def _check_leaves(self, bundle: EntryBundle, data: bytes, leaves: list[bytes]) -> None:
        """Raise unless the served level-0 tile holds exactly the recomputed leaf hashes."""
        if data == b"".join(leaves):
            return
        tile = bundle.leaf_tile
        served = self._split(tile, data)
        for offset, (computed, held) in enumerate(zip(leaves, served, strict=True)):
            if computed != held:
                raise AuditFailure(
                    Rule.TILE,
                    f"the entry served hashes to {computed.hex()}, but {tile_path(tile)} "
                    f"holds {held.hex()}: the entries and the tiles disagree",
                    bundle.start + offset,
                )

    def check_tile(self, tile: Tile, data: bytes) -> None:
        """Check one tile of level >= 1 against the hashes recomputed from the entries.

        Requires every bundle to have been added.
        """
        self._require_complete()
        served = self._split(tile, data)
        for node, mine, held in zip(tile_nodes(tile), self._recomputed(tile), served, strict=True):
            if mine != held:
                first, end = node.coverage()
                raise AuditFailure(
                    Rule.TILE,
                    f"{tile_path(tile)} holds {held.hex()} for the subtree of entries "
                    f"{first}..{end - 1}, but those entries hash to {mine.hex()}",
                )
        self.tiles += 1

    def root(self) -> bytes:
        """The RFC 9162 root of the recomputed tree. Requires every bundle to be added."""
        self._require_complete()
        nodes = range_nodes(0, self.size)
        tiles = {t: b"".join(self._recomputed(t)) for t in tiles_for_nodes(nodes, self.size)}
        hashes = hashes_from_tiles(nodes, tiles, self.size)
        return CompactRange(self.size, hashes).root()

    def _recomputed(self, tile: Tile) -> list[bytes]:
        """The hashes `tile` must hold, from the entries (of level 0: the last bundle's)."""
        if tile.level == 0:
            if tile != self.tree_bundles[-1].leaf_tile:
                raise ValueError(f"only the last bundle's leaf hashes are kept, not {tile}")
            return self._last_leaves
        while len(self._levels) <= tile.level:
            self._levels.append(tile_roots(self._levels[-1]))
        return self._levels[tile.level][tile.start : tile.start + tile.width]

    def _split(self, tile: Tile, data: bytes) -> list[bytes]:
        try:
            return tile_hashes(tile, data)
        except TlogError as exc:
            raise AuditFailure(Rule.TILE, f"{tile_path(tile)}: {exc}") from None

    def _require_complete(self) -> None:
        if self.bundles != len(self.tree_bundles):
            raise ValueError(f"only {self.bundles} bundles of the tree were added")


@dataclass
class WalkResult:
    """What `walk_log` kept: the root, and the tiles asked to be kept."""

    root: bytes
    tiles: dict[Tile, bytes]


def walk_log(
    size: int,
    fetch_many: FetchMany,
    on_bundle: OnBundle,
    progress: Progress | None = None,
    keep_level0: Iterable[int] = (),
    walk: TreeWalk | None = None,
) -> WalkResult:
    """Download and check the whole tree of `size`; return its root and the kept tiles.

    `on_bundle(first index, entries)` sees every entry in order; when it returns True that
    bundle's level-0 tile is kept, as are those in `keep_level0`, the last one and every
    upper tile (together: what inclusion and consistency proofs into those bundles need).
    Raises AuditFailure on the first integrity failure (a resource not served, a malformed
    bundle, a tile that disagrees with the entries).
    """
    walk = walk or TreeWalk(size)
    bundles = walk.tree_bundles
    wanted = set(keep_level0)
    kept: dict[Tile, bytes] = {}
    paths = [p for b in bundles for p in (entries_path(b), tile_path(b.leaf_tile))]
    contents = iter(fetch_many(paths))
    for bundle in bundles:
        data = served(entries_path(bundle), next(contents))
        tile_data = served(tile_path(bundle.leaf_tile), next(contents))
        entries = walk.add_bundle(bundle, data, tile_data)
        last = bundle == bundles[-1]  # the right border of every proof lies in it
        if on_bundle(bundle.start, entries) or bundle.index in wanted or last:
            kept[bundle.leaf_tile] = tile_data
        if progress is not None:
            progress(len(entries))
    uppers = upper_tiles(size)
    for tile, fetched in zip(uppers, fetch_many([tile_path(t) for t in uppers]), strict=True):
        data = served(tile_path(tile), fetched)
        walk.check_tile(tile, data)
        kept[tile] = data
    return WalkResult(walk.root(), kept)


def served(path: str, data: bytes | None) -> bytes:
    """`data`, the contents of `path`; raises AuditFailure(Rule.MISSING) when not served."""
    if data is None:
        raise AuditFailure(Rule.MISSING, f"the log does not serve {path}, which the tree needs")
    return data
