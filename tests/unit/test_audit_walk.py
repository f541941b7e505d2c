"""The tree recomputed from its entries (hotline.shared.audit.walk), over logs held in memory:
intact trees of every shape, and each way a served resource can disagree with the entries."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hotline.shared.audit.failures import AuditFailure, Rule
from hotline.shared.audit.walk import TreeWalk, walk_log
from hotline.shared.tlog.compact import root_from_leaf_hashes
from hotline.shared.tlog.hashing import EMPTY_ROOT, leaf_hash
from hotline.shared.tlog.tiles import (
    EntryBundle,
    Tile,
    decode_bundle,
    encode_bundle,
    entries_path,
    new_tiles,
    tile_path,
)
from tests.support.audit import MemoryLog


def leaves(size: int) -> list[bytes]:
    return [b"entry %d" % n for n in range(size)]


def keep_none(first: int, entries: list[bytes]) -> bool:
    return False


@pytest.mark.parametrize("size", [0, 1, 255, 256, 257, 600, 65_536, 65_536 + 300])
def test_an_intact_tree_walks_to_its_root(size: int) -> None:
    log = MemoryLog(leaves(size))
    seen: list[bytes] = []

    def collect(first: int, entries: list[bytes]) -> bool:
        assert first == len(seen)
        seen.extend(entries)
        return False

    walk = TreeWalk(size)
    result = walk_log(size, log.fetch_many, collect, walk=walk)
    assert result.root == log.root == root_from_leaf_hashes([leaf_hash(e) for e in seen])
    assert seen == log.leaves
    assert walk.tiles == len(new_tiles(0, size))
    assert walk.bundles == -(-size // 256)
    assert size or result.root == EMPTY_ROOT


def test_the_tiles_asked_for_the_last_and_the_upper_ones_are_kept() -> None:
    log = MemoryLog(leaves(70_000))
    result = walk_log(70_000, log.fetch_many, lambda first, _: first == 512, keep_level0=[7])
    level0 = sorted(t.index for t in result.tiles if t.level == 0)
    assert level0 == [2, 7, 273]
    assert {t for t in result.tiles if t.level > 0} == {
        t for t in new_tiles(0, 70_000) if t.level > 0
    }
    assert all(log.resources[tile_path(t)] == data for t, data in result.tiles.items())


def edit_bundle(log: MemoryLog, index: int, change: Callable[[list[bytes]], list[bytes]]) -> None:
    bundle = EntryBundle(index, min(log.size - 256 * index, 256))
    path = entries_path(bundle)
    log.resources[path] = encode_bundle(change(decode_bundle(log.resources[path], bundle.width)))


def flip(log: MemoryLog, path: str, position: int) -> None:
    data = bytearray(log.resources[path])
    data[position] ^= 1
    log.resources[path] = bytes(data)


def failure(log: MemoryLog) -> AuditFailure:
    with pytest.raises(AuditFailure) as failed:
        walk_log(log.size, log.fetch_many, keep_none)
    return failed.value


def test_a_changed_entry_disagrees_with_its_tile() -> None:
    log = MemoryLog(leaves(600))
    edit_bundle(log, 1, lambda es: [*es[:6], b"rewritten", *es[7:]])
    found = failure(log)
    assert (found.rule, found.index) == (Rule.TILE, 262)
    assert f"the entry served hashes to {leaf_hash(b'rewritten').hex()}" in found.detail
    assert "but tile/0/001 holds" in found.detail


def test_an_entry_removed_from_a_bundle() -> None:
    log = MemoryLog(leaves(600))
    edit_bundle(log, 0, lambda es: es[:10] + es[11:])
    found = failure(log)
    assert (found.rule, found.index) == (Rule.BUNDLE, 0)
    assert found.detail == "tile/entries/000: entry bundle holds 255 entries, want 256"


def test_a_level0_tile_that_disagrees_with_the_entries() -> None:
    log = MemoryLog(leaves(600))
    flip(log, "tile/0/002.p/88", 32 * 5)
    found = failure(log)
    assert (found.rule, found.index) == (Rule.TILE, 517)


def test_a_level1_tile_that_disagrees_with_the_entries() -> None:
    log = MemoryLog(leaves(600))
    flip(log, "tile/1/000.p/2", 32 + 3)
    found = failure(log)
    assert (found.rule, found.index) == (Rule.TILE, None)
    assert found.detail.startswith("tile/1/000.p/2 holds ")
    assert "for the subtree of entries 256..511, but those entries hash to" in found.detail


def test_a_tile_of_the_wrong_length() -> None:
    log = MemoryLog(leaves(600))
    log.resources["tile/1/000.p/2"] = log.resources["tile/1/000.p/2"][:-1]
    found = failure(log)
    assert found.rule == Rule.TILE and "has 63 bytes" in found.detail


def test_a_resource_the_log_does_not_serve() -> None:
    log = MemoryLog(leaves(600))
    del log.resources["tile/entries/001"]
    found = failure(log)
    assert found.rule == Rule.MISSING
    assert found.detail == "the log does not serve tile/entries/001, which the tree needs"


def test_bundles_out_of_order_are_a_caller_error() -> None:
    log = MemoryLog(leaves(600))
    walk = TreeWalk(600)
    second = EntryBundle(1)
    with pytest.raises(ValueError, match="is not the next bundle"):
        walk.add_bundle(second, log.resources[entries_path(second)], b"")
    with pytest.raises(ValueError, match="only 0 bundles"):
        walk.check_tile(Tile(1, 0, 2), log.resources["tile/1/000.p/2"])
