"""Integration: append sequenced entries to the tree, producing the tiles and entry bundles.

As in Tessera (`storage/internal/integrate.go`), integration is separate from sequencing,
batched, and a function that takes its I/O as parameters:

- `integrate(size, partials, entries)` is pure. Given the tree of `size` leaves, the
  contents of its rightmost (partial) tiles and bundle, and the next entries, it returns the
  new size, root, and every tile and bundle that appears or grows, keyed by C2SP path.
  The compact range of the old tree is read from those partial tiles: every node of a
  compact range lies in the rightmost tile of its level, so nothing else is needed.
- `integrate_batch(size, read_entries, read_resources, write_resources, limit)` reads what
  it needs, calls `integrate`, writes the result and returns it; the caller then publishes
  the checkpoint, which is the commit point. A crash before it leaves resources that the
  next pass writes again, byte for byte (paths carry their width, so every resource, full
  or partial, is immutable).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from hotline.shared.tlog.compact import CompactRange, NodeID
from hotline.shared.tlog.hashing import HASH_SIZE, leaf_hash
from hotline.shared.tlog.tiles import (
    EntryBundle,
    Tile,
    decode_bundle,
    encode_bundle,
    entries_path,
    hashes_at_level,
    hashes_from_tiles,
    new_bundles,
    new_tiles,
    partial_bundle,
    partial_tiles,
    stored_level,
    tile_path,
)


class IntegrationError(RuntimeError):
    """The stored tree cannot be extended: a resource it needs is missing or malformed."""


@dataclass(frozen=True)
class Integration:
    """The tree after a batch: its size, root, and the resources (path -> bytes) to write."""

    size: int
    root: bytes
    resources: dict[str, bytes]


def partial_paths(size: int) -> list[str]:
    """Paths `integrate` needs from the tree of `size`: its partial tiles and bundle."""
    bundle = partial_bundle(size)
    paths = [tile_path(tile) for tile in partial_tiles(size)]
    return paths + ([entries_path(bundle)] if bundle else [])


def integrate(size: int, partials: Mapping[str, bytes], entries: Sequence[bytes]) -> Integration:
    """Append `entries` to the tree of `size` leaves; return the new tree and resources.

    Requires `partials` to hold every path of `partial_paths(size)`, as the store holds them.
    """
    old = _partial_contents(size, partials)
    compact = CompactRange.from_stored(size, lambda nodes: hashes_from_tiles(nodes, old, size))
    added: dict[int, list[bytes]] = {}

    def visit(node: NodeID, value: bytes) -> None:
        level = stored_level(node)
        if level is not None:  # only these are tile contents
            added.setdefault(level, []).append(value)

    compact.extend((leaf_hash(entry) for entry in entries), visit)
    new_size = compact.size
    resources = {
        tile_path(tile): _grown_tile(tile, size, old, added) for tile in new_tiles(size, new_size)
    }
    for bundle in new_bundles(size, new_size):
        resources[entries_path(bundle)] = _grown_bundle(bundle, size, partials, entries)
    return Integration(new_size, compact.root(), resources)


def _partial_contents(size: int, partials: Mapping[str, bytes]) -> dict[Tile, bytes]:
    """The partial tiles of the tree of `size`, checked for presence and length."""
    contents = {}
    for tile in partial_tiles(size):
        data = partials.get(tile_path(tile))
        if data is None or len(data) != HASH_SIZE * tile.width:
            raise IntegrationError(f"{tile_path(tile)} of the tree of size {size} is missing")
        contents[tile] = data
    return contents


def _grown_tile(
    tile: Tile, size: int, old: Mapping[Tile, bytes], added: dict[int, list[bytes]]
) -> bytes:
    """Contents of `tile` (at its new width): what it held at `size`, then the new hashes."""
    first_new = hashes_at_level(size, tile.level)  # level index of the first added hash
    before = first_new - tile.start  # hashes it held at `size`
    held = old[Tile(tile.level, tile.index, before)] if before > 0 else b""
    begin = max(tile.start, first_new) - first_new
    new = added.get(tile.level, [])[begin : begin + tile.width - max(before, 0)]
    data = held + b"".join(new)
    if len(data) != HASH_SIZE * tile.width:
        raise IntegrationError(f"{tile_path(tile)} would hold {len(data)} bytes")
    return data


def _grown_bundle(
    bundle: EntryBundle, size: int, partials: Mapping[str, bytes], entries: Sequence[bytes]
) -> bytes:
    """Contents of `bundle` at its new width: its old entries, then the new ones."""
    before = max(size - bundle.start, 0)
    held: list[bytes] = []
    if before:
        old = EntryBundle(bundle.index, before)
        data = partials.get(entries_path(old))
        if data is None:
            raise IntegrationError(f"{entries_path(old)} of the tree of size {size} is missing")
        held = decode_bundle(data, before)
    offset = bundle.start + before - size  # index in `entries` of the bundle's first new one
    return encode_bundle([*held, *entries[offset : offset + bundle.width - before]])


ReadEntries = Callable[[int, int], Awaitable[list[bytes]]]
"""(start, limit) -> the sequenced entries start, start + 1, ... (at most limit, contiguous)."""

ReadResources = Callable[[Sequence[str]], Awaitable[dict[str, bytes]]]
WriteResources = Callable[[Mapping[str, bytes]], Awaitable[None]]


async def integrate_batch(
    size: int,
    read_entries: ReadEntries,
    read_resources: ReadResources,
    write_resources: WriteResources,
    limit: int,
) -> Integration | None:
    """Integrate up to `limit` entries beyond `size`; None when none are waiting.

    The resources are written before returning; publishing the checkpoint is the caller's.
    """
    entries = await read_entries(size, limit)
    if not entries:
        return None
    partials = await read_resources(partial_paths(size))
    integration = integrate(size, partials, entries)
    await write_resources(integration.resources)
    return integration
