"""The audit log's integration (hotline.audit_log.integrator.integrate), pure: batch by batch
it produces the same tree, tiles and bundles as all at once, and every path is immutable."""

from __future__ import annotations

import pytest

from hotline.audit_log.integrator import IntegrationError, integrate, partial_paths
from hotline.shared.tlog.compact import root_from_leaf_hashes
from hotline.shared.tlog.hashing import leaf_hash

ENTRIES = [b"entry %d" % n for n in range(70_000)]
LEAVES = [leaf_hash(entry) for entry in ENTRIES]
STEPS = [0, 1, 3, 255, 256, 257, 600, 65_535, 65_536, 65_537, 70_000]


def test_batches_build_the_tree_built_at_once() -> None:
    whole = integrate(0, {}, ENTRIES)
    served: dict[str, bytes] = {}
    for size, new_size in zip(STEPS, STEPS[1:], strict=False):
        partials = {path: served[path] for path in partial_paths(size)}
        step = integrate(size, partials, ENTRIES[size:new_size])
        assert step.size == new_size
        assert step.root == root_from_leaf_hashes(LEAVES[:new_size])
        for path, data in step.resources.items():
            assert served.setdefault(path, data) == data, f"{path} changed"
    # Batches also leave the partial paths of every size between (served, never rewritten).
    assert {path: served[path] for path in whole.resources} == whole.resources
    assert len(served) > len(whole.resources) and whole.root == step.root


def test_partial_paths_name_the_rightmost_partial_tiles_and_bundle() -> None:
    assert partial_paths(70_000) == [
        "tile/0/273.p/112",
        "tile/1/001.p/17",
        "tile/2/000.p/1",
        "tile/entries/273.p/112",
    ]
    assert partial_paths(512) == ["tile/1/000.p/2"]
    assert partial_paths(0) == []


def test_a_missing_partial_tile_is_refused() -> None:
    built = integrate(0, {}, ENTRIES[:300])
    partials = {path: built.resources[path] for path in partial_paths(300)}
    del partials["tile/0/001.p/44"]
    with pytest.raises(IntegrationError, match="tile/0/001.p/44 of the tree of size 300"):
        integrate(300, partials, ENTRIES[300:310])
